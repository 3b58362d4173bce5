// Package harness runs netpol-guard end to end on this machine: a real kube-apiserver and
// etcd (envtest, with the binaries e2e/tools/build.sh builds from Go module sources), the
// real netpol-guard binary as a subprocess serving its admission webhook and flow API over
// HTTPS with a test CA, its ValidatingWebhookConfiguration, cluster objects from files with
// pod addresses set through the status subresource, ServiceAccount tokens for the flow push
// API, and the real kubectl. StartChartPod runs a rendered chart pod's container as a
// kubelet would (its volumes, env, user and ServiceAccount), without a container runtime.
//
// The e2e tests (package e2e), the load benchmark (e2e/load) and the local demo (e2e/demo)
// use it. It knows nothing of testing.T: every step returns an error and reports progress
// through Logf, so a program can drive it as well as a test.
package harness
