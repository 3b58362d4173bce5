package evaluator

// Policies select by labels, so traffic is cut not only by changing policies but by changing
// labels: a namespace that loses the label a namespaceSelector matched, a workload whose pods
// fall out of the podSelector that allowed them, or into one that isolates them. Diff
// assumes the endpoints are fixed and the policy set changes; here the endpoints change (and
// the policies may too, when a change does both), so each flow is given as it is and as it
// would be, and judged under each side.

// State is the cluster as one side of a relabel sees it: its policies, its namespaces' labels
// and nodes, and the observed flows with their ends labelled as on that side.
type State struct {
	Policies *PolicySet
	World    *World
	Flows    []Flow
}

// RelabelResult is what a relabel would cut.
type RelabelResult struct {
	// CutIndexes are the positions of the cut flows, in order.
	CutIndexes []int
	Summary    DiffSummary

	eb, ea        *Evaluation
	before, after []Flow
}

// DiffRelabel returns the flows allowed before and denied after, where before.Flows[i] and
// after.Flows[i] are the same traffic with its ends as they are and as they would be. A flow
// whose ends, world and policies are all the same on both sides cannot change and is not
// evaluated. opts.Memo, when set, serves the before side (the cluster as it is, which a
// webhook's kept memo already knows) and, when both sides share a World, the after side too;
// Explain and Workers are not used.
func DiffRelabel(before, after State, opts DiffOptions) RelabelResult {
	n := min(len(before.Flows), len(after.Flows))
	res := RelabelResult{before: before.Flows[:n], after: after.Flows[:n]}
	res.Summary.Flows = n
	if before.Policies != after.Policies {
		res.Summary.PoliciesChanged = len(changedPolicies(before.Policies, after.Policies))
	}
	var mb, ma *memo
	switch {
	case opts.Memo != nil && before.World == after.World:
		mb = opts.Memo.begin(before.World, before.Policies, after.Policies)
		ma = mb
	case opts.Memo != nil:
		mb, ma = opts.Memo.begin(before.World, before.Policies), newMemo()
	case before.World == after.World:
		mb = newMemo()
		ma = mb
	default:
		mb, ma = newMemo(), newMemo()
	}
	res.eb = &Evaluation{ps: before.Policies, w: before.World, m: mb}
	res.ea = &Evaluation{ps: after.Policies, w: after.World, m: ma}
	fixed := before.World == after.World && before.Policies == after.Policies
	for i := range n {
		fb, fa := res.before[i], res.after[i]
		if fixed && fb.Src == fa.Src && fb.Dst == fa.Dst {
			continue
		}
		res.Summary.Candidates++
		// Most flows survive most relabels: ask the after side first.
		if !res.ea.Allowed(fa) && res.eb.Allowed(fb) {
			res.CutIndexes = append(res.CutIndexes, i)
		}
	}
	res.Summary.Cut = len(res.CutIndexes)
	return res
}

// Explain returns cut flow i (a position in the input) with its verdicts: before on the flow
// as it is, after on the flow as it would be. The Cut's Flow is the flow as it would be. Not
// safe for concurrent use with other calls on the same result.
func (r *RelabelResult) Explain(i int) Cut {
	return Cut{Index: i, Flow: r.after[i], Before: r.eb.Verdict(r.before[i]), After: r.ea.Verdict(r.after[i])}
}

// Relabelled returns a copy of ep with labels, and its pods (which carry the workload's
// labels) with them too; ep itself is not modified. Give the copy to every flow of the
// workload on the after side, so that it is judged, and memoised, once.
func Relabelled(ep *Endpoint, labels map[string]string) *Endpoint {
	if ep == nil {
		return nil
	}
	out := *ep
	out.Labels = labels
	if len(ep.Pods) > 0 {
		out.Pods = make([]*Endpoint, len(ep.Pods))
		for i, p := range ep.Pods {
			pod := *p
			pod.Labels = labels
			out.Pods[i] = &pod
		}
	}
	return &out
}

// WithNamespaceLabels returns a copy of w in which namespace ns has labels; w is not
// modified. The namespaces' label maps are shared with w.
func (w *World) WithNamespaceLabels(ns string, labels map[string]string) *World {
	out := &World{NamespaceLabels: map[string]map[string]string{}}
	if w != nil {
		out.NamespaceLabels = make(map[string]map[string]string, len(w.NamespaceLabels)+1)
		for k, v := range w.NamespaceLabels {
			out.NamespaceLabels[k] = v
		}
		out.NodeAddresses = w.NodeAddresses
	}
	out.NamespaceLabels[ns] = labels
	return out
}

// ApplyLabelChange returns current with the change from oldLabels to newLabels applied: keys
// that oldLabels has and newLabels lacks are removed, newLabels' keys set; keys in neither
// are kept. This is how a workload's pods are labelled once its pod template changes: what a
// controller adds beside the template (pod-template-hash, controller-revision-hash, job-name)
// stays. current is not modified.
func ApplyLabelChange(current, oldLabels, newLabels map[string]string) map[string]string {
	out := make(map[string]string, len(current)+len(newLabels))
	for k, v := range current {
		if _, removed := oldLabels[k]; removed {
			if _, kept := newLabels[k]; !kept {
				continue
			}
		}
		out[k] = v
	}
	for k, v := range newLabels {
		out[k] = v
	}
	return out
}
