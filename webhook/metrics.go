package webhook

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the guard's Prometheus metrics.
type Metrics struct {
	Requests *prometheus.CounterVec
	Latency  prometheus.Histogram
	CutFlows prometheus.Counter
	// Relaxations are overrides that asked for a laxer mode, by source and result
	// (applied, ignored).
	Relaxations *prometheus.CounterVec
	// Bypasses are uses of the bypass annotation on a cut enforce would reject, by result
	// (allowed, denied, unverified).
	Bypasses *prometheus.CounterVec
}

// NewMetrics registers the guard's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netpol_guard_admission_requests_total",
			Help: "NetworkPolicy admission requests, by operation, mode and outcome (allowed, rejected, warned, audited, bypassed, degraded, skipped, timeout, busy, error).",
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
		Relaxations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netpol_guard_mode_relaxations_total",
			Help: "Namespace labels and policy annotations that asked for a laxer mode than the level above them, by source and result (applied, ignored); dry runs excluded.",
		}, []string{"source", "result"}),
		Bypasses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netpol_guard_bypasses_total",
			Help: "Bypass annotations on cuts enforce would reject, by result (allowed, denied, unverified: the right could not be checked); dry runs excluded.",
		}, []string{"result"}),
	}
	reg.MustRegister(m.Requests, m.Latency, m.CutFlows, m.Relaxations, m.Bypasses)
	return m
}
