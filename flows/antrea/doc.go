// Package antrea feeds netpol-guard's flow cache from Antrea: a Client follows the Flow
// Aggregator's FlowStreamService.GetFlows stream over TLS and hands batches of flow records
// to a callback (the webhook passes them to flows.Ingest), turning Antrea's flows into
// flows.Record by the rules of Convert.
package antrea

import ctrl "sigs.k8s.io/controller-runtime/pkg/log"

var log = ctrl.Log.WithName("antrea")

// Verbosity levels, as cert-manager names them: errors are logged with Error.
const (
	levelWarn  = 1
	levelDebug = 4
)
