// Package server assembles the netpol-guard webhook: from an Options value it builds the
// controller-runtime manager, the live cluster view, the flow cache with its snapshots, the
// admission guard, the flow API, the flow sources (Hubble, Goldmane, Antrea), the serving
// certificates, metrics and probes, and runs them until its context ends. `netpol-guard
// webhook` parses its flags into Options and calls Run; tests call Run in-process against a
// real API server.
package server

import ctrl "sigs.k8s.io/controller-runtime"

var log = ctrl.Log.WithName("server")

// Verbosity levels, as cert-manager names them: errors are logged with Error.
const levelDebug = 4
