// Package cluster is netpol-guard's view of the cluster: the namespaces, pods, nodes and
// NetworkPolicies the evaluator judges flows against, and the resolution of the peers a flow
// source reports (a pod, a workload, labels, an IP) into evaluator endpoints. Today the view
// is offline — a Snapshot loaded from what `kubectl get -o yaml` prints, used by the
// `netpol-guard evaluate` and `check` commands via `--cluster FILE`; an informer-backed live
// view for the webhook will sit next to it and resolve peers by the same rules.
package cluster

import ctrl "sigs.k8s.io/controller-runtime/pkg/log"

var log = ctrl.Log.WithName("cluster")
