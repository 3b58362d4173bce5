package evaluator

// CutOne reports whether the change from before to after cuts flow f: what DiffWith reports
// of a one-flow input, by the same steps (differ.run), but on the caller's goroutine and
// without the result DiffWith builds. It is for judging flows one at a time as they are
// seen, where a goroutine and a DiffResult per flow would cost more than the judging. kept,
// when not nil, is kept from call to call as DiffOptions.Memo is; it is not safe for
// concurrent use. To judge many flows against one change, or one flow against many changes,
// a Delta and a DeltaJudge work the change out once.
//
// When after was derived from before by With (or before from after), only the namespaces
// With touched are compared for changed policies, not every namespace of the sets.
func CutOne(before, after *PolicySet, w *World, f Flow, kept *Memo) bool {
	d, ok := newDiffer(before, after)
	if !ok {
		return false
	}
	return d.cutOne(before, after, w, f, kept)
}

// newDiffer works out what differs between before and after; ok is false when nothing
// does, so no flow can be cut.
func newDiffer(before, after *PolicySet) (d differ, ok bool) {
	changed := changedOf(before, after)
	var changedCl []*compiledCluster
	tiered := before.cluster != nil || after.cluster != nil
	if tiered {
		changedCl = changedClusters(before.cluster, after.cluster)
	}
	if len(changed) == 0 && len(changedCl) == 0 {
		return differ{}, false
	}
	d = differ{changed: changed, tiered: tiered, changedCluster: changedCl}
	// A direction no changed policy has (in its old or new version) cannot change for any
	// pod: that side is judged once, not before and after.
	for _, cp := range changed {
		d.ingressChanged = d.ingressChanged || cp.ingress
		d.egressChanged = d.egressChanged || cp.egress
	}
	return d, true
}

// cutOne judges f by d.run, as DiffWith judges each flow.
func (d *differ) cutOne(before, after *PolicySet, w *World, f Flow, kept *Memo) bool {
	m := kept.begin(w, before, after)
	eb := Evaluation{ps: before, w: w, m: m}
	ea := Evaluation{ps: after, w: w, m: m}
	flows := [1]Flow{f}
	p := d.run(&eb, &ea, flows[:], 0, 1, false)
	return len(p.cut) > 0
}

// changedOf is changedPolicies, looking only at the namespaces With touched when one set
// was derived from the other.
func changedOf(before, after *PolicySet) []*compiledPolicy {
	var touched []string
	switch {
	case before == after:
		return nil
	case after.base == before:
		touched = after.changed
	case before.base == after:
		touched = before.changed
	default:
		return changedPolicies(before, after)
	}
	var out []*compiledPolicy
	for _, ns := range touched {
		b, a := before.byNS[ns], after.byNS[ns]
		switch {
		case a == b:
		case b == nil:
			out = append(out, a.policies...)
		default:
			out = append(out, diffNamespace(b, a)...)
		}
	}
	return out
}
