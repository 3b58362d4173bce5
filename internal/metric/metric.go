// Package metric makes netpol-guard's Prometheus metrics, named
// netpol_guard_<subsystem>_<name> and registered as they are made, so that a package's
// constructor states each of its metrics once, by name and help. It is a leaf (the
// Prometheus client only), so the node agent links nothing of the webhook's through it.
package metric

import "github.com/prometheus/client_golang/prometheus"

// Namespace begins the name of every netpol-guard metric.
const Namespace = "netpol_guard"

// Factory makes the metrics of one subsystem ("agent", "flows", "goldmane") and registers
// each with Registerer; with a nil Registerer they count without being exposed, as tests
// want them.
type Factory struct {
	Subsystem  string
	Registerer prometheus.Registerer
}

// Counter makes and registers the counter netpol_guard_<subsystem>_<name>.
func (f Factory) Counter(name, help string) prometheus.Counter {
	return register(f, prometheus.NewCounter(prometheus.CounterOpts(f.opts(name, help))))
}

// CounterVec makes and registers the counter netpol_guard_<subsystem>_<name>, partitioned
// by labels.
func (f Factory) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(f, prometheus.NewCounterVec(prometheus.CounterOpts(f.opts(name, help)), labels))
}

// Gauge makes and registers the gauge netpol_guard_<subsystem>_<name>.
func (f Factory) Gauge(name, help string) prometheus.Gauge {
	return register(f, prometheus.NewGauge(prometheus.GaugeOpts(f.opts(name, help))))
}

func (f Factory) opts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: Namespace, Subsystem: f.Subsystem, Name: name, Help: help}
}

func register[C prometheus.Collector](f Factory, c C) C {
	if f.Registerer != nil {
		f.Registerer.MustRegister(c)
	}
	return c
}
