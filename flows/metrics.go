package flows

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers gauges and counters of the cache with reg, read from its
// Coverage when scraped; now measures the history.
func RegisterMetrics(reg prometheus.Registerer, cache *Cache, now func() time.Time) {
	gauge := func(name, help string, f func(Coverage) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(cache.Coverage()) })
	}
	counter := func(name, help string, f func(Coverage) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(cache.Coverage()) })
	}
	reg.MustRegister(
		gauge("netpol_guard_cache_edges", "Edges held in the flow cache.", func(c Coverage) float64 { return float64(c.Edges) }),
		gauge("netpol_guard_cache_bytes", "Heap the flow cache is estimated to hold (what --cache-max-bytes caps).", func(c Coverage) float64 { return float64(c.Bytes) }),
		gauge("netpol_guard_cache_peers", "Workloads, nodes and addresses the cached edges connect.", func(c Coverage) float64 { return float64(c.Peers) }),
		gauge("netpol_guard_cache_history_seconds", "How far back the flows the cache holds reach.", func(c Coverage) float64 { return c.History(now()).Seconds() }),
		counter("netpol_guard_cache_evicted_edges_total", "Edges evicted to stay under the cap, least recently seen first.", func(c Coverage) float64 { return float64(c.Evicted) }),
		counter("netpol_guard_cache_expired_edges_total", "Edges expired past the window.", func(c Coverage) float64 { return float64(c.Expired) }),
		counter("netpol_guard_flows_clamped_total", "Flows, from every source, whose lastSeen lay in the future and was taken as now.", func(c Coverage) float64 { return float64(c.Clamped) }),
		counter("netpol_guard_cache_unresolved_flows_total", "Flows, from every source, whose addresses resolved to nothing known.", func(c Coverage) float64 { return float64(c.Unresolved) }),
	)
}
