package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netpol-guard/netpol-guard/flows"
)

// Metrics are the guard's Prometheus metrics.
type Metrics struct {
	Requests *prometheus.CounterVec
	Latency  prometheus.Histogram
	CutFlows prometheus.Counter
}

// NewMetrics registers the guard's metrics, and gauges of the cache, with reg.
func NewMetrics(reg prometheus.Registerer, cache *flows.Cache, now func() time.Time) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netpol_guard_admission_requests_total",
			Help: "NetworkPolicy admission requests, by operation, mode and outcome (allowed, rejected, warned, audited, bypassed, degraded, skipped, timeout, error).",
		}, []string{"operation", "mode", "outcome"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "netpol_guard_admission_decision_seconds",
			Help:    "Time to decide a NetworkPolicy admission request.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		CutFlows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netpol_guard_cut_flows_reported_total",
			Help: "Flows reported as cut by NetworkPolicy changes (dry runs excluded).",
		}),
	}
	reg.MustRegister(m.Requests, m.Latency, m.CutFlows)
	if cache != nil {
		gauge := func(name, help string, f func(flows.Coverage) float64) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(cache.Coverage()) })
		}
		counter := func(name, help string, f func(flows.Coverage) float64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(cache.Coverage()) })
		}
		reg.MustRegister(
			gauge("netpol_guard_cache_edges", "Edges held in the flow cache.", func(c flows.Coverage) float64 { return float64(c.Edges) }),
			gauge("netpol_guard_cache_peers", "Workloads, nodes and addresses the cached edges connect.", func(c flows.Coverage) float64 { return float64(c.Peers) }),
			gauge("netpol_guard_cache_history_seconds", "How long the flow cache has been observing.", func(c flows.Coverage) float64 { return now().Sub(c.Since).Seconds() }),
			counter("netpol_guard_cache_evicted_edges_total", "Edges evicted to stay under the cap, least recently seen first.", func(c flows.Coverage) float64 { return float64(c.Evicted) }),
			counter("netpol_guard_cache_expired_edges_total", "Edges expired past the window.", func(c flows.Coverage) float64 { return float64(c.Expired) }),
			counter("netpol_guard_cache_unresolved_flows_total", "Flows, from every source, whose addresses resolved to nothing known.", func(c flows.Coverage) float64 { return float64(c.Unresolved) }),
		)
	}
	return m
}
