// Package webhook is the admission guardrail: a validating webhook for CREATE, UPDATE and
// DELETE of NetworkPolicies and of cluster policies (ClusterNetworkPolicy, and the legacy
// AdminNetworkPolicy and BaselineAdminNetworkPolicy) that builds the policy set as it is and
// as it would be, asks the evaluator which cached flows the change cuts, and answers by
// mode — enforce rejects, warn admits with kubectl warnings, audit admits and records.
// Flows a domainNames rule decides are warned of, never denied. It adapts; the evaluator
// decides.
// Label changes of Namespaces, Pods and workload pod templates are judged the same way
// (Guard.Relabels): the same policies, the flows judged with the labels as they are and as
// they would be.
//
// Package server wires it to the live cluster view (package cluster), the flow cache (package
// flows) and controller-runtime's webhook server.
package webhook

import (
	"context"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
)

var log = ctrl.Log.WithName("webhook")

// logger is the logger of the request ctx belongs to: controller-runtime's webhook server
// gives each admission one that names the request's uid, object and user, so every line of
// a decision carries them. Outside a request, the package's.
func logger(ctx context.Context) logr.Logger {
	if l, err := logr.FromContext(ctx); err == nil {
		return l.WithName("webhook")
	}
	return log
}

// Verbosity levels, named once.
const (
	levelInfo  = 0
	levelDebug = 4
)
