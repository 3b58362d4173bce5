package webhook

import (
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/suggest"
)

// maxFixCuts bounds the cut flows an admission works out a fix for. A fix is built and
// verified flow by flow, and an admission answers within the API server's deadline: past
// this many cuts (a lock-down of a busy namespace) the answer points to `check --suggest`,
// which has the time, rather than spend the budget the decision itself needs.
const maxFixCuts = 256

// suggestFix is the way forward for a change that cuts: the smallest addition that keeps
// the cut flows, verified by the evaluator over the same candidate flows (package suggest).
// What it would also open is counted over the namespace's workloads and the flows' ends.
// Nil when nothing is cut, too much is cut to fix here, or no fix could be built.
func (g *Guard) suggestFix(ns string, before, after *evaluator.PolicySet, oldPolicy, newPolicy *networkingv1.NetworkPolicy, fl []evaluator.Flow, res *evaluator.DiffResult) *suggest.Fix {
	if len(res.CutIndexes) == 0 || len(res.CutIndexes) > maxFixCuts {
		return nil
	}
	view := g.opts.View
	var known []*evaluator.Endpoint
	for _, id := range view.WorkloadsIn(ns) {
		known = append(known, view.Endpoint(id, nil))
	}
	memo := g.memos.Get().(*evaluator.Memo)
	defer g.memos.Put(memo)
	fix, err := suggest.ForCut(suggest.Request{
		Before: before, After: after, World: view.World(), Flows: fl, Cut: res.CutIndexes, Known: known,
		Changes: []suggest.Change{{Old: oldPolicy, New: newPolicy}}, Memo: memo, Workers: g.workers(),
	})
	if err != nil || len(fix.Rules) == 0 {
		log.V(levelDebug).Info("No fix for a cut", "err", err)
		return nil
	}
	return fix
}
