package evaluator

import (
	"maps"
	"reflect"
	"slices"
)

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
	given         []Flow // after, as the caller gave it
	// relabelled are the namespaces whose labels differ between the sides' worlds, when
	// the two sides share one memo: what the memo holds of their labels is dropped between
	// sides, so that each side reads its own.
	relabelled []string
}

// DiffRelabel returns the flows allowed before and denied after, where before.Flows[i] and
// after.Flows[i] are the same traffic with its ends as they are and as they would be. A flow
// whose ends, world and policies are all the same on both sides cannot change and is not
// evaluated. opts.Memo, when set, serves both sides (the cluster as it is, which a webhook's
// kept memo already knows); Explain and Workers are not used.
//
// What the evaluator learns about an endpoint as a rule's peer depends on its namespace's
// labels, and nothing else learnt depends on them. So when the worlds differ only in some
// namespaces' labels, the sides share one memo: the after side is given its own endpoints for
// the pods of those namespaces (copies, learnt afresh), and every other endpoint is judged
// from what the before side knows.
func DiffRelabel(before, after State, opts DiffOptions) RelabelResult {
	n := min(len(before.Flows), len(after.Flows))
	res := RelabelResult{before: before.Flows[:n], after: after.Flows[:n], given: after.Flows[:n]}
	res.Summary.Flows = n
	if before.Policies != after.Policies {
		res.Summary.PoliciesChanged = len(changedPolicies(before.Policies, after.Policies))
	}
	relabelled, shared := relabelledNamespaces(before.World, after.World)
	var mb, ma *memo
	if shared {
		mb = opts.Memo.begin(before.World, before.Policies, after.Policies)
		ma = mb
	} else {
		mb, ma = opts.Memo.begin(before.World, before.Policies), newMemo()
	}
	if shared && len(relabelled) > 0 {
		res.relabelled = relabelled
		res.after = ownEnds(res.after, relabelled)
	}
	res.eb = &Evaluation{ps: before.Policies, w: before.World, m: mb}
	res.ea = &Evaluation{ps: after.Policies, w: after.World, m: ma}

	// The after side first, for every flow that can change (most flows survive most
	// relabels), then the before side for those it denies.
	fixed := before.World == after.World && before.Policies == after.Policies
	var denied []int
	res.switchSides()
	for i := range n {
		fb, fa := before.Flows[i], after.Flows[i]
		if fixed && fb.Src == fa.Src && fb.Dst == fa.Dst {
			continue
		}
		res.Summary.Candidates++
		if !res.ea.Allowed(res.after[i]) {
			denied = append(denied, i)
		}
	}
	res.switchSides()
	for _, i := range denied {
		if res.eb.Allowed(res.before[i]) {
			res.CutIndexes = append(res.CutIndexes, i)
		}
	}
	res.Summary.Cut = len(res.CutIndexes)
	return res
}

// switchSides drops what the shared memo holds of the relabelled namespaces' labels: the
// next side to ask reads them from its own world.
func (r *RelabelResult) switchSides() {
	for _, ns := range r.relabelled {
		delete(r.eb.m.nsLabels, ns)
	}
}

// relabelledNamespaces lists the namespaces whose labels differ between two worlds, and
// reports whether the worlds may share a memo: they are one, or differ only in namespace
// labels. Node labels decide nodes peers, which the memo keeps per endpoint, so worlds whose
// node labels differ learn apart.
func relabelledNamespaces(wb, wa *World) ([]string, bool) {
	if wb == wa {
		return nil, true
	}
	if wb == nil || wa == nil || !sameMap(wb.NodeAddresses, wa.NodeAddresses) || !sameMap(wb.NodeLabels, wa.NodeLabels) {
		return nil, false
	}
	var out []string
	for ns, l := range wa.NamespaceLabels {
		if b, ok := wb.NamespaceLabels[ns]; !ok || !sameMap(b, l) {
			out = append(out, ns)
		}
	}
	for ns := range wb.NamespaceLabels {
		if _, ok := wa.NamespaceLabels[ns]; !ok {
			out = append(out, ns)
		}
	}
	return out, true
}

// sameMap reports whether two maps are one (shared by copies of a world) or equal.
func sameMap[V any, M ~map[string]V](a, b M) bool {
	if reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// ownEnds returns flows with every pod end in one of the namespaces replaced by a copy, one
// per endpoint.
func ownEnds(flows []Flow, namespaces []string) []Flow {
	copies := map[*Endpoint]*Endpoint{}
	own := func(ep *Endpoint) *Endpoint {
		if ep == nil || ep.Kind != Pod || !slices.Contains(namespaces, ep.Namespace) {
			return ep
		}
		c, ok := copies[ep]
		if !ok {
			c = Relabelled(ep, ep.Labels)
			copies[ep] = c
		}
		return c
	}
	out := make([]Flow, len(flows))
	for i, f := range flows {
		f.Src, f.Dst = own(f.Src), own(f.Dst)
		out[i] = f
	}
	return out
}

// Explain returns cut flow i (a position in the input) with its verdicts: before on the flow
// as it is, after on the flow as it would be. The Cut's Flow is the flow as it would be. Not
// safe for concurrent use with other calls on the same result.
func (r *RelabelResult) Explain(i int) Cut {
	r.switchSides()
	after := r.ea.Verdict(r.after[i])
	r.switchSides()
	return Cut{Index: i, Flow: r.given[i], Before: r.eb.Verdict(r.before[i]), After: after}
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
	out := w.shallowCopy()
	out.NamespaceLabels = withEntry(out.NamespaceLabels, ns, labels)
	return out
}

// WithNodeLabels returns a copy of w in which node has labels; w is not modified. The other
// nodes' label maps, the namespaces' labels and the node addresses are shared with w.
func (w *World) WithNodeLabels(node string, labels map[string]string) *World {
	out := w.shallowCopy()
	out.NodeLabels = withEntry(out.NodeLabels, node, labels)
	return out
}

// shallowCopy returns a copy of w sharing its maps; an empty World for nil.
func (w *World) shallowCopy() *World {
	if w == nil {
		return &World{}
	}
	out := *w
	return &out
}

// withEntry returns a copy of m with k set to v; m is not modified.
func withEntry[V any](m map[string]V, k string, v V) map[string]V {
	out := make(map[string]V, len(m)+1)
	maps.Copy(out, m)
	out[k] = v
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
