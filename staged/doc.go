// Package staged soaks StagedNetworkPolicies against live traffic: it judges each staged
// change as the admission webhook would judge applying it (webhook.Guard's NewChange,
// Decide and Judge — one code path), first over the whole flow cache, then edge by edge as
// the cache adds edges, and over again when a staged policy, the cluster's policies or
// labels change. A new edge is judged against every staged change that may select one of
// its ends at once (an evaluator.DeltaJudge over the changes' policy sets, answering as
// the Guard's Cuts does), and recorded once however many of them cut it. Every webhook replica evaluates; one (the leader) writes what it found to
// the staged policies' status, which is the record that survives restarts and failover.
//
// Package server wires it to the manager; `netpol-guard staged` reads the status it writes.
package staged

import ctrl "sigs.k8s.io/controller-runtime"

var log = ctrl.Log.WithName("staged")
