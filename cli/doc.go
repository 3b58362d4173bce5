// Package cli runs the webhook's decision offline, on files: `netpol-guard evaluate` judges
// every observed flow under a cluster's policies, and `netpol-guard check` reports what
// applying (or deleting) policies would cut, for CI pipelines. main.go parses the flags and
// calls in here; this package loads the inputs, asks the evaluator, and renders the answer.
package cli
