// Package certs provides the webhook's serving certificate, in one of two modes. Directory
// serves the pair cert-manager keeps in a mounted Secret (tls.crt, tls.key, ca.crt) and
// reloads it when the kubelet swaps the volume's files on rotation, without dropping a
// request. SelfSigned (`--self-signed`) bootstraps a CA and a serving certificate for the
// webhook Service, keeps them in one Secret shared by every replica (first writer wins,
// optimistic concurrency after that), rotates them before they expire and keeps the
// ValidatingWebhookConfiguration's caBundle in step, publishing a new CA before anything it
// signs is served. Both hand controller-runtime's webhook server a GetCertificate and report
// readiness and expiry; main.go wires one of them from flags.
package certs

import ctrl "sigs.k8s.io/controller-runtime/pkg/log"

var log = ctrl.Log.WithName("certs")

// Verbosity levels, named once.
const (
	levelInfo  = 0
	levelWarn  = 1
	levelDebug = 4
)
