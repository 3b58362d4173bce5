// Package evaluator implements Kubernetes NetworkPolicy semantics: it compiles a set of
// networking.k8s.io/v1 NetworkPolicies, decides whether a flow is allowed and explains why,
// and diffs two policy sets into the flows a change would cut.
//
// It is pure: no client, no I/O, no clock. The webhook, the offline CLI and the tests all
// ask the same questions of it, so the decision a CI pipeline sees is the decision the
// admission webhook makes.
package evaluator
