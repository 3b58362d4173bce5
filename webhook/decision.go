package webhook

import (
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// Change is a NetworkPolicy change of one namespace compiled against the cluster's policies
// as they were when it was made: the policy sets before and after, and the pods it selects
// (with the old podSelector or the new). An admission makes one and judges it at once;
// package staged keeps one per staged policy and judges edges against it as they arrive, so
// both decide by the same steps. A Change is immutable and safe for concurrent use; make a
// new one when the cluster's policies change.
type Change struct {
	Namespace     string
	Before, After *evaluator.PolicySet
	// Old and New are the policy as it is (nil: create) and as it would be (nil: delete).
	Old, New *networkingv1.NetworkPolicy
	selects  func(*evaluator.Endpoint) bool
}

// NewChange compiles the change of a policy of namespace ns from oldPolicy (nil: create) to
// newPolicy (nil: delete) against the view's policies now.
func (g *Guard) NewChange(ns string, oldPolicy, newPolicy *networkingv1.NetworkPolicy) (*Change, error) {
	before, after, err := g.policySets(oldPolicy, newPolicy)
	if err != nil {
		return nil, err
	}
	selects, err := selectedBy(oldPolicy, newPolicy)
	if err != nil {
		return nil, err
	}
	return &Change{Namespace: ns, Before: before, After: after, Old: oldPolicy, New: newPolicy, selects: selects}, nil
}

// Decision is what a change would cut among the cached edges, as an admission decides it.
type Decision struct {
	// Cuts are every cut edge. The first MaxListed of them are those a message lists —
	// the cluster's own paths first, then the most recently seen — and carry their Reason.
	Cuts     []Cut
	Summary  evaluator.DiffSummary
	Coverage Coverage
}

// Cut is one cached edge a change would cut.
type Cut struct {
	Edge flows.Edge
	// Reason says why the edge is denied after the change; empty for cuts not explained.
	Reason string
	// Protection names a path the cluster itself depends on (DNS, an admission webhook,
	// node traffic); empty for ordinary flows.
	Protection string
}

// Coverage is what a decision rests on.
type Coverage struct {
	// Since is when the cache's oldest observation was seen; History how long before the
	// decision that is.
	Since   time.Time
	History time.Duration
	// Edges is how many cached edges the change could affect and were judged.
	Edges int
	// NeverSeen are the selected workloads with no cached flow.
	NeverSeen []string
	// Unresolved counts flows that resolved to no workload.
	Unresolved uint64
}

// Decide judges c over every cached edge it can affect, by the steps an admission takes.
// It counts as a running evaluation, so admissions meanwhile do not split their work.
func (g *Guard) Decide(c *Change) Decision {
	g.running.Add(1)
	d := g.decideChange(c)
	g.running.Add(-1)
	defer g.putScratch(d.scratch)
	out := Decision{
		Cuts:    make([]Cut, len(d.cuts)),
		Summary: d.summary,
		Coverage: Coverage{
			Since: d.coverage.since, History: d.coverage.history, Edges: d.coverage.edges,
			NeverSeen: d.coverage.neverSeen, Unresolved: d.coverage.unresolved,
		},
	}
	for i, cf := range d.cuts {
		out.Cuts[i] = Cut{Edge: *cf.edge, Protection: cf.protection}
		if cf.after != nil {
			out.Cuts[i].Reason = cf.after.Denial()
		}
	}
	return out
}

// Judge judges one cached edge as Decide judges each: whether c would cut it and, if so,
// why. memo carries what the evaluator learnt from one call to the next; it is not safe for
// concurrent use.
func (g *Guard) Judge(c *Change, e *flows.Edge, memo *evaluator.Memo) (cut bool, reason string) {
	view := g.opts.View
	src, dst := view.Endpoint(e.Src, e.SrcInfo), view.Endpoint(e.Dst, e.DstInfo)
	if !c.Selects(src) && !c.Selects(dst) {
		return false, ""
	}
	fl := [1]evaluator.Flow{{Src: src, Dst: dst, Port: e.Port, Protocol: e.Protocol}}
	res := evaluator.DiffWith(c.Before, c.After, view.World(), fl[:], evaluator.DiffOptions{Memo: memo})
	if len(res.CutIndexes) == 0 {
		return false, ""
	}
	explained := res.Explain(0)
	return true, explained.After.Denial()
}

// Selects reports whether ep is a pod of the change's namespace that the changed policy
// selects: only flows into or out of those pods can change their verdict.
func (c *Change) Selects(ep *evaluator.Endpoint) bool {
	return ep.Namespace == c.Namespace && c.selects(ep)
}
