// Package hubble feeds netpol-guard's flow cache from Cilium's Hubble: a Client follows Hubble
// Relay's Observer.GetFlows stream and hands batches of flow records to a callback (the webhook
// passes them to flows.Ingest), and ReadJSON reads the JSON lines `hubble observe -o json` and
// the Hubble exporter write (`netpol-guard flows import --format hubble`, the CLI's --flows).
// Both turn Hubble flows into flows.Record by the same rules, those of Convert.
package hubble

import ctrl "sigs.k8s.io/controller-runtime/pkg/log"

var log = ctrl.Log.WithName("hubble")

// Verbosity levels, as cert-manager names them: errors are logged with Error.
const (
	levelWarn  = 1
	levelInfo  = 2
	levelDebug = 4
)
