package webhook

import (
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/suggest"
)

// suggestFix is the way forward for a change that cuts: the smallest addition that keeps
// the cut flows, verified by the evaluator over the same candidate flows (package suggest).
// What it would also open is counted over the namespace's workloads and the flows' ends.
// Nil when nothing is cut or no fix could be built.
func (g *Guard) suggestFix(ns string, before, after *evaluator.PolicySet, oldPolicy, newPolicy *networkingv1.NetworkPolicy, fl []evaluator.Flow, res *evaluator.DiffResult) *suggest.Fix {
	if len(res.CutIndexes) == 0 {
		return nil
	}
	view := g.opts.View
	var known []*evaluator.Endpoint
	for _, id := range view.WorkloadsIn(ns) {
		known = append(known, view.Endpoint(id, nil))
	}
	fix, err := suggest.ForCut(suggest.Request{
		Before: before, After: after, World: view.World(), Flows: fl, Cut: res.CutIndexes, Known: known,
		Changes: []suggest.Change{{Old: oldPolicy, New: newPolicy}},
	})
	if err != nil || len(fix.Rules) == 0 {
		log.V(levelDebug).Info("No fix for a cut", "err", err)
		return nil
	}
	return fix
}
