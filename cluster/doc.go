// Package cluster is netpol-guard's view of the cluster: the namespaces, nodes, pods (by
// their workloads) and NetworkPolicies the evaluator judges flows against, and the one set
// of rules that resolves the peers a flow source reports (a pod, a workload, an IP at a
// time) into cache identities and evaluator endpoints.
//
// Live is that view. The webhook feeds it from informers (NewLive); the offline commands
// load their cluster files into it (LiveFromObjects), so `netpol-guard check` and the
// webhook resolve and judge a flow by the same code. Load and Decode read the files.
package cluster

import ctrl "sigs.k8s.io/controller-runtime/pkg/log"

var log = ctrl.Log.WithName("cluster")
