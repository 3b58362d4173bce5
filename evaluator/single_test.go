package evaluator

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CutOne answers as DiffWith does of each flow alone, for sets derived by With and not, with
// a memo kept across flows and changes.
func TestCutOneAgreesWithDiffWith(t *testing.T) {
	pod := func(ns, app string) *Endpoint {
		return &Endpoint{Kind: Pod, Namespace: ns, Name: app, Labels: map[string]string{"app": app}}
	}
	np := func(ns, name, app string, types ...networkingv1.PolicyType) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}, PolicyTypes: types},
		}
	}
	allowFrom := np("shop", "allow-cart", "cart", networkingv1.PolicyTypeIngress)
	allowFrom.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "frontend"}}}}}}
	current := []*networkingv1.NetworkPolicy{allowFrom, np("pay", "deny-egress", "api", networkingv1.PolicyTypeEgress)}
	base, err := Compile(current)
	if err != nil {
		t.Fatal(err)
	}
	w := &World{NamespaceLabels: map[string]map[string]string{"shop": {"name": "shop"}, "pay": {"name": "pay"}}}
	var eps []*Endpoint
	for _, ns := range []string{"shop", "pay"} {
		for _, app := range []string{"frontend", "cart", "api"} {
			eps = append(eps, pod(ns, app))
		}
	}
	var fl []Flow
	for _, s := range eps {
		for _, d := range eps {
			if s != d {
				fl = append(fl, Flow{Src: s, Dst: d, Port: 80, Protocol: corev1.ProtocolTCP})
			}
		}
	}
	recompiled := func(ps []*networkingv1.NetworkPolicy) *PolicySet {
		s, err := Compile(ps)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	memo := NewMemo()
	for i, newPolicy := range []*networkingv1.NetworkPolicy{
		np("shop", "deny-cart", "cart", networkingv1.PolicyTypeIngress),
		np("shop", "deny-all", "frontend", networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress),
		np("pay", "deny-api", "api", networkingv1.PolicyTypeIngress),
	} {
		after, err := base.With(nil, newPolicy)
		if err != nil {
			t.Fatal(err)
		}
		deleted, err := base.With(allowFrom, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j, pair := range [][2]*PolicySet{{base, after}, {base, deleted}, {after, base}, {base, recompiled(append(current[:2:2], newPolicy))}} {
			want := map[int]bool{}
			for _, k := range DiffWith(pair[0], pair[1], w, fl, DiffOptions{}).CutIndexes {
				want[k] = true
			}
			for k, f := range fl {
				for _, m := range []*Memo{memo, nil} {
					if got := CutOne(pair[0], pair[1], w, f, m); got != want[k] {
						t.Errorf("change %d pair %d flow %s/%s → %s/%s (memo %v): CutOne %v, DiffWith %v", i, j, f.Src.Namespace, f.Src.Name, f.Dst.Namespace, f.Dst.Name, m != nil, got, want[k])
					}
				}
			}
		}
	}
}
