package goldmane

import (
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/metric"
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
	f := metric.Factory{Subsystem: "goldmane", Registerer: reg}
	return &Metrics{
		flows:         f.Counter("flows_total", "Flows received from Goldmane."),
		skipped:       f.CounterVec("flows_skipped_total", "Goldmane flows not added to the flow cache, by reason.", "reason"),
		verdicts:      f.CounterVec("verdicts_total", "Calico dataplane verdicts compared with netpol-guard's prediction for the same flow.", "dataplane", "predicted"),
		disagreements: f.Counter("verdict_disagreements_total", "Flows Calico's dataplane and netpol-guard's prediction disagree on."),
	}
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
