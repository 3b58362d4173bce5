package staged

import (
	"cmp"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// selectorIndex finds the staged policies of one namespace that may select a pod, by a
// label their podSelectors require: only flows into or out of the pods a change selects
// (with the old podSelector or the new) can change their verdict, so a new edge is judged
// against those alone, not against every staged policy of its ends' namespaces.
type selectorIndex struct {
	// byLabel holds each staged policy under one label every pod it selects carries.
	byLabel map[label][]*entry
	// any are the staged policies with a podSelector that requires no label.
	any []*entry
}

type label struct{ key, value string }

// indexOf returns the index of namespace ns's judged staged policies, nil if it has none.
// The caller holds ev.mu.
func (ev *Evaluator) indexOf(ns string) *selectorIndex {
	if idx, ok := ev.index[ns]; ok {
		return idx
	}
	entries := ev.byNS[ns]
	if len(entries) == 0 {
		return nil
	}
	keys := make([]types.NamespacedName, 0, len(entries))
	for k, e := range entries {
		if e.change != nil {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return cmp.Compare(a.Name, b.Name) })
	idx := &selectorIndex{byLabel: map[label][]*entry{}}
	for _, k := range keys {
		e := entries[k]
		var ls []label
		anyPod := false
		for _, p := range []*networkingv1.NetworkPolicy{e.change.Old, e.change.New} {
			if p == nil {
				continue
			}
			l, ok := requiredLabel(&p.Spec.PodSelector)
			if !ok {
				anyPod = true
				break
			}
			if !slices.Contains(ls, l) {
				ls = append(ls, l)
			}
		}
		if anyPod {
			idx.any = append(idx.any, e)
			continue
		}
		for _, l := range ls {
			idx.byLabel[l] = append(idx.byLabel[l], e)
		}
	}
	ev.index[ns] = idx
	return idx
}

// requiredLabel is a label every pod sel selects carries (the least by key, so the same
// selector is always filed the same): one of its matchLabels, or an In expression of one
// value. ok is false when sel requires none, as {} does.
func requiredLabel(sel *metav1.LabelSelector) (l label, ok bool) {
	consider := func(k, v string) {
		if !ok || k < l.key {
			l, ok = label{k, v}, true
		}
	}
	for k, v := range sel.MatchLabels {
		consider(k, v)
	}
	for _, r := range sel.MatchExpressions {
		if r.Operator == metav1.LabelSelectorOpIn && len(r.Values) == 1 {
			consider(r.Key, r.Values[0])
		}
	}
	return l, ok
}
