// Package follow keeps a gRPC flow stream open for the flow sources that stream from a
// server (Hubble Relay, Goldmane, Antrea's Flow Aggregator): it dials with TLS, reconnects
// with jittered exponential backoff, and hands the records a source decodes to a callback in batches. Each
// source says how to open its stream (and from when to backfill); follow knows nothing of
// their protos.
package follow

import ctrl "sigs.k8s.io/controller-runtime/pkg/log"

var log = ctrl.Log.WithName("follow")

// Verbosity levels, as cert-manager names them: errors are logged with Error.
const (
	levelInfo = 2
)
