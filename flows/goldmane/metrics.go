package goldmane

import (
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netpol-guard/netpol-guard/flows"
)

// Metrics are a Goldmane source's Prometheus metrics: the flows it could not turn into
// records, by reason, and how the webhook's predictions fare against Calico's verdicts.
// A nil *Metrics counts nothing.
type Metrics struct {
	flows         prometheus.Counter
	skipped       *prometheus.CounterVec
	verdicts      *prometheus.CounterVec
	disagreements prometheus.Counter
}

// NewMetrics makes the metrics and registers them with reg (controller-runtime's
// metrics.Registry in the webhook):
//
//   - netpol_guard_goldmane_flows_total: flows received from Goldmane;
//   - netpol_guard_goldmane_flows_skipped_total{reason}: flows not added as records, by
//     SkipReason (notWorkload, noPeer, denied, …);
//   - netpol_guard_goldmane_verdicts_total{dataplane,predicted}: verdicts compared, each
//     "allow" or "deny";
//   - netpol_guard_goldmane_verdict_disagreements_total: those where the two differ.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		flows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netpol_guard_goldmane_flows_total",
			Help: "Flows received from Goldmane.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netpol_guard_goldmane_flows_skipped_total",
			Help: "Goldmane flows not added to the flow cache, by reason.",
		}, []string{"reason"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netpol_guard_goldmane_verdicts_total",
			Help: "Calico dataplane verdicts compared with netpol-guard's prediction for the same flow.",
		}, []string{"dataplane", "predicted"}),
		disagreements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netpol_guard_goldmane_verdict_disagreements_total",
			Help: "Flows Calico's dataplane and netpol-guard's prediction disagree on.",
		}),
	}
	reg.MustRegister(m.flows, m.skipped, m.verdicts, m.disagreements)
	return m
}

func (m *Metrics) countFlow(skip SkipReason) {
	if m == nil {
		return
	}
	m.flows.Inc()
	if skip != NotSkipped {
		m.skipped.WithLabelValues(skip.String()).Inc()
	}
}

// CompareVerdict counts a flow whose verdict Calico's dataplane reported (dataplaneAllowed,
// as Options.OnVerdict gets it) and netpol-guard predicted (predictedAllowed) from the
// policies it knows, logs a disagreement with the flow, and says whether the two agree.
// A disagreement means the evaluator's view of the cluster or of the policy semantics
// differs from Calico's for that flow (or that the policies changed in between).
func (m *Metrics) CompareVerdict(log logr.Logger, rec flows.Record, dataplaneAllowed, predictedAllowed bool) bool {
	agree := dataplaneAllowed == predictedAllowed
	if m != nil {
		m.verdicts.WithLabelValues(allowDeny(dataplaneAllowed), allowDeny(predictedAllowed)).Inc()
		if !agree {
			m.disagreements.Inc()
		}
	}
	if !agree {
		log.V(levelInfo).Info("Calico's verdict differs from the prediction", "src", rec.Src, "dst", rec.Dst,
			"port", rec.Port, "protocol", rec.Protocol, "dataplane", allowDeny(dataplaneAllowed), "predicted", allowDeny(predictedAllowed))
	}
	return agree
}

func allowDeny(allowed bool) string {
	if allowed {
		return "allow"
	}
	return "deny"
}
