package evaluator_test

import (
	"maps"
	"net/netip"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	. "github.com/netpol-guard/netpol-guard/evaluator"
)

func TestDiffRelabel(t *testing.T) {
	pod := func(ns, name string, kv ...string) *Endpoint {
		return &Endpoint{Kind: Pod, Namespace: ns, Name: name, Labels: pairs(kv)}
	}
	web, cart := pod("shop", "Deployment/web", "app", "web"), pod("shop", "Deployment/cart", "app", "cart")
	api := pod("payments", "Deployment/api", "app", "api")
	world := &World{NamespaceLabels: map[string]map[string]string{"shop": {"team": "shop"}, "payments": {"team": "payments"}}}
	allowWebIntoCart := makePolicy("allow-web", ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: pods("app", "web")}))
	allowTeamShopIntoAPI := makePolicy("allow-shop", inNamespace("payments"), selecting(metav1.LabelSelector{}),
		ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: pods("team", "shop")}))
	denyPaid := makePolicy("deny-paid", selecting(*pods("tier", "paid")), emptyIngress)

	for _, tc := range []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		flow     Flow
		// relabel gives the after side: the flow's ends and the world as they would be.
		relabel func(f Flow, w *World) (Flow, *World)
		wantCut bool
		// wantAfter is in the explanation of the cut.
		wantAfter string
	}{{
		name:     "relabel that keeps the allowing label cuts nothing",
		policies: []*networkingv1.NetworkPolicy{allowWebIntoCart},
		flow:     Flow{Src: web, Dst: cart, Port: 8080},
		relabel: func(f Flow, w *World) (Flow, *World) {
			f.Src = Relabelled(f.Src, map[string]string{"app": "web", "version": "v2"})
			return f, w
		},
	}, {
		name:     "source relabelled out of the podSelector that allowed it is cut",
		policies: []*networkingv1.NetworkPolicy{allowWebIntoCart},
		flow:     Flow{Src: web, Dst: cart, Port: 8080},
		relabel: func(f Flow, w *World) (Flow, *World) {
			f.Src = Relabelled(f.Src, map[string]string{"app": "web-v2"})
			return f, w
		},
		wantCut:   true,
		wantAfter: "ingress isolated by shop/allow-web and no rule allows it",
	}, {
		name:     "destination relabelled out of every policy is no longer isolated",
		policies: []*networkingv1.NetworkPolicy{allowWebIntoCart},
		flow:     Flow{Src: web, Dst: cart, Port: 8080},
		relabel: func(f Flow, w *World) (Flow, *World) {
			f.Dst = Relabelled(f.Dst, map[string]string{"app": "cart-v2"})
			return f, w
		},
	}, {
		name:     "relabel into a policy's selection isolates and cuts",
		policies: []*networkingv1.NetworkPolicy{denyPaid},
		flow:     Flow{Src: web, Dst: cart, Port: 8080},
		relabel: func(f Flow, w *World) (Flow, *World) {
			f.Dst = Relabelled(f.Dst, map[string]string{"app": "cart", "tier": "paid"})
			return f, w
		},
		wantCut:   true,
		wantAfter: "ingress isolated by shop/deny-paid",
	}, {
		name:     "namespace that loses the label a namespaceSelector matched is cut",
		policies: []*networkingv1.NetworkPolicy{allowTeamShopIntoAPI},
		flow:     Flow{Src: web, Dst: api, Port: 443},
		relabel: func(f Flow, w *World) (Flow, *World) {
			return f, w.WithNamespaceLabels("shop", map[string]string{"team": "retail"})
		},
		wantCut:   true,
		wantAfter: "ingress isolated by payments/allow-shop",
	}, {
		name:     "relabel of a namespace no selector reads cuts nothing",
		policies: []*networkingv1.NetworkPolicy{allowTeamShopIntoAPI},
		flow:     Flow{Src: web, Dst: api, Port: 443},
		relabel: func(f Flow, w *World) (Flow, *World) {
			return f, w.WithNamespaceLabels("shop", map[string]string{"team": "shop", "cost-centre": "42"})
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := Compile(tc.policies)
			if err != nil {
				t.Fatal(err)
			}
			after, afterWorld := tc.relabel(tc.flow, world)
			for _, memo := range []*Memo{nil, NewMemo()} {
				res := DiffRelabel(State{ps, world, []Flow{tc.flow}}, State{ps, afterWorld, []Flow{after}}, DiffOptions{Memo: memo})
				if got := len(res.CutIndexes) == 1; got != tc.wantCut {
					t.Fatalf("cut = %v, want %v", got, tc.wantCut)
				}
				if !tc.wantCut {
					continue
				}
				c := res.Explain(0)
				if !c.Before.Allowed || c.After.Allowed || !strings.Contains(c.After.Denial(), tc.wantAfter) {
					t.Errorf("explained as before %s / after %s; want after %q", c.Before.Reason(), c.After.Reason(), tc.wantAfter)
				}
				if c.Flow != after {
					t.Errorf("explained flow %v, want the flow as it would be", c.Flow)
				}
			}
		})
	}
}

func TestDiffRelabelSkipsFlowsThatCannotChange(t *testing.T) {
	a := &Endpoint{Kind: Pod, Namespace: "shop", Name: "Deployment/a", Labels: map[string]string{"app": "a"}}
	b := &Endpoint{Kind: Pod, Namespace: "shop", Name: "Deployment/b", Labels: map[string]string{"app": "b"}}
	ps, _ := Compile([]*networkingv1.NetworkPolicy{makePolicy("deny", selecting(metav1.LabelSelector{}), emptyIngress)})
	w := &World{}
	fl := []Flow{{Src: a, Dst: b, Port: 80}}
	res := DiffRelabel(State{ps, w, fl}, State{ps, w, fl}, DiffOptions{})
	if res.Summary.Candidates != 0 || res.Summary.Flows != 1 {
		t.Errorf("summary %+v: a flow with the same ends, world and policies was evaluated", res.Summary)
	}
}

func TestRelabelledCarriesTheLabelsToEachPod(t *testing.T) {
	ep := &Endpoint{Kind: Pod, Namespace: "shop", Name: "Deployment/a", Labels: map[string]string{"app": "a"}}
	ep.Pods = []*Endpoint{{Kind: Pod, Namespace: "shop", Name: "Deployment/a", Labels: ep.Labels, IP: netip.MustParseAddr("10.0.0.1")}}
	got := Relabelled(ep, map[string]string{"app": "b"})
	if got == ep || got.Labels["app"] != "b" || got.Pods[0] == ep.Pods[0] || got.Pods[0].Labels["app"] != "b" || got.Pods[0].IP != ep.Pods[0].IP {
		t.Errorf("relabelled %+v (pod %+v)", got, got.Pods[0])
	}
	if ep.Labels["app"] != "a" || ep.Pods[0].Labels["app"] != "a" {
		t.Error("the original endpoint was modified")
	}
}

func TestApplyLabelChangeKeepsWhatControllersAdd(t *testing.T) {
	current := map[string]string{"app": "checkout", "track": "stable", "pod-template-hash": "5c8d"}
	oldT := map[string]string{"app": "checkout", "track": "stable"}
	newT := map[string]string{"app": "checkout-v2"}
	got := ApplyLabelChange(current, oldT, newT)
	want := map[string]string{"app": "checkout-v2", "pod-template-hash": "5c8d"}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if current["app"] != "checkout" {
		t.Error("current was modified")
	}
}

func TestDiffRelabelOfANodeLabel(t *testing.T) {
	cw := newClusterWorld()
	nodeB := &Endpoint{Kind: Node, Name: "node-b", NodeName: "node-b", IP: netip.MustParseAddr("10.9.0.2")}
	ps, err := CompileAll(nil, []*ClusterPolicy{
		makeCNP("workers", cOut(accept, nil, toNodes("role", "worker"))),
		makeCNP("no-nodes", baseline, cOut(deny, nil, toNodes())),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ps.HasNodePeers() {
		t.Error("HasNodePeers: false for a set with nodes peers")
	}
	if other, _ := CompileAll(nil, []*ClusterPolicy{makeCNP("nets", cOut(deny, nil, toNets("10.9.0.0/16")))}); other.HasNodePeers() {
		t.Error("HasNodePeers: true for a set whose only peer is networks")
	}
	fl := []Flow{{Src: cw.cart, Dst: nodeB, Port: 10250}}
	for _, tc := range []struct {
		name    string
		after   *World
		wantCut bool
	}{
		{"node that leaves the accepted role is cut", cw.w.WithNodeLabels("node-b", map[string]string{"role": "infra"}), true},
		{"node that keeps the accepted role is not", cw.w.WithNodeLabels("node-b", map[string]string{"role": "worker", "zone": "b"}), false},
		{"namespace relabel keeps the nodes' labels", cw.w.WithNamespaceLabels("shop", map[string]string{"team": "retail"}), false},
	} {
		for _, memo := range []*Memo{nil, NewMemo()} {
			if memo != nil { // a kept memo that has judged the flow as it is
				DiffRelabel(State{ps, cw.w, fl}, State{ps, cw.w, fl}, DiffOptions{Memo: memo})
			}
			res := DiffRelabel(State{ps, cw.w, fl}, State{ps, tc.after, fl}, DiffOptions{Memo: memo})
			if got := len(res.CutIndexes) == 1; got != tc.wantCut {
				t.Errorf("%s (kept memo %v): cut %v, want %v", tc.name, memo != nil, got, tc.wantCut)
			}
		}
	}
	if cw.w.NodeLabels["node-b"]["role"] != "worker" {
		t.Error("WithNodeLabels modified the world it was given")
	}
}
