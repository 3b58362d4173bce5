// Package load benchmarks the running webhook: AdmissionReviews over HTTPS against the real
// netpol-guard binary whose flow cache holds a million edges, restored from a snapshot, in
// front of a real kube-apiserver. It reports latency percentiles and requests per second.
// The benchmark is heavy and runs only with NETPOL_GUARD_LOAD=1:
//
//	export KUBEBUILDER_ASSETS="$(bash e2e/tools/build.sh)"
//	NETPOL_GUARD_LOAD=1 go test ./e2e/load -run TestLoad -v -timeout 20m
package load
