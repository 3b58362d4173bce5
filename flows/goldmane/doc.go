// Package goldmane feeds netpol-guard's flow cache from Calico's Goldmane, the flow
// aggregator of Calico's Whisker: a Client follows Goldmane's Flows.Stream over mutual TLS
// and hands batches of flow records to a callback (the webhook passes them to
// flows.Ingest), and ReadJSON reads the JSON lines Goldmane's emitter pushes. Both turn
// Goldmane flows into flows.Record by the rules of Convert, which also keeps the verdict
// Calico's dataplane gave each flow, so the webhook can score its own predictions against
// it (Options.OnVerdict, Metrics.CompareVerdict).
package goldmane

import ctrl "sigs.k8s.io/controller-runtime/pkg/log"

var log = ctrl.Log.WithName("goldmane")

// Verbosity levels, as cert-manager names them: errors are logged with Error.
const (
	levelInfo  = 2
	levelDebug = 4
)
