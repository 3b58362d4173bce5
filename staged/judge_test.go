package staged

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// judgeWorld is a cluster of two namespaces whose workloads carry app and tier labels, with
// policies that isolate some of them and allow some flows.
func judgeWorld(t testing.TB) (*world, []flows.PeerID) {
	t.Helper()
	np := func(ns, name string, sel map[string]string, tweak func(*networkingv1.NetworkPolicySpec)) *networkingv1.NetworkPolicy {
		p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: sel}}}
		tweak(&p.Spec)
		return p
	}
	from := func(sel map[string]string) []networkingv1.NetworkPolicyPeer {
		return []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: sel}}}
	}
	port := func(n int) []networkingv1.NetworkPolicyPort {
		p := intstr.FromInt(n)
		return []networkingv1.NetworkPolicyPort{{Port: &p}}
	}
	policies := []*networkingv1.NetworkPolicy{
		np("shop", "allow-cart", map[string]string{"app": "cart"}, func(s *networkingv1.NetworkPolicySpec) {
			s.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: from(map[string]string{"tier": "web"}), Ports: port(7070)}}
		}),
		np("shop", "backend-egress", map[string]string{"tier": "backend"}, func(s *networkingv1.NetworkPolicySpec) {
			s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
			s.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}}}
		}),
		np("pay", "allow-api", map[string]string{"app": "api"}, func(s *networkingv1.NetworkPolicySpec) {
			s.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "shop"}}}}}}
		}),
		np("pay", "isolate-api", map[string]string{"app": "api"}, func(s *networkingv1.NetworkPolicySpec) {}),
	}
	v := newWorld(t, []string{"shop", "pay"}, policies...)
	var ids []flows.PeerID
	for _, w := range []struct{ ns, app, tier string }{
		{"shop", "frontend", "web"}, {"shop", "cart", "backend"}, {"shop", "redis", "data"},
		{"shop", "checkout", "backend"}, {"pay", "api", "backend"}, {"pay", "ledger", "data"},
	} {
		id := workload(w.ns, "Deployment/"+w.app)
		v.eps[id] = &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: w.ns, Name: id.Name, Labels: map[string]string{"app": w.app, "tier": w.tier}}
		ids = append(ids, id)
	}
	return v, append(ids, flows.PeerID{Kind: flows.PeerExternal, IP: netip.MustParseAddr("203.0.113.25")})
}

// judgeStaged are staged changes of every kind: new policies selecting by one label, by
// expressions and every pod, for ingress and egress; a replacement of a policy; deletes of
// policies (one whose pods stay isolated by another) and of one that does not exist.
func judgeStaged() []*v1alpha1.StagedNetworkPolicy {
	set := func(ns, name string, sel metav1.LabelSelector, types ...networkingv1.PolicyType) *v1alpha1.StagedNetworkPolicy {
		s := denyIngress(ns, name)
		s.Spec.Template.Spec = networkingv1.NetworkPolicySpec{PodSelector: sel, PolicyTypes: types}
		return s
	}
	del := func(ns, name string) *v1alpha1.StagedNetworkPolicy {
		s := denyIngress(ns, name)
		s.Spec = v1alpha1.StagedNetworkPolicySpec{StagedAction: v1alpha1.StagedDelete}
		return s
	}
	in, eg := networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress
	tighter := set("shop", "allow-cart", metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}}, in)
	p := intstr.FromInt(8080)
	tighter.Spec.Template.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "frontend"}}}}, Ports: []networkingv1.NetworkPolicyPort{{Port: &p}},
	}}
	return []*v1alpha1.StagedNetworkPolicy{
		set("shop", "deny-redis", metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}, in),
		set("shop", "deny-backend-egress", metav1.LabelSelector{MatchLabels: map[string]string{"tier": "backend"}}, eg),
		set("shop", "deny-all", metav1.LabelSelector{}, in, eg),
		set("shop", "not-web", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web"}}}}, in),
		tighter,
		del("shop", "backend-egress"),
		del("pay", "allow-api"),
		del("pay", "missing"),
		set("pay", "deny-ledger-egress", metav1.LabelSelector{MatchLabels: map[string]string{"app": "ledger"}}, eg),
	}
}

func judgeEdges(ids []flows.PeerID) []flows.Edge {
	var edges []flows.Edge
	for i, src := range ids {
		for _, dst := range ids {
			if src == dst {
				continue
			}
			for _, port := range []int32{80, 7070} {
				at := t0.Add(time.Duration(i) * time.Second)
				edges = append(edges, flows.Edge{Src: src, Dst: dst, Port: port, Protocol: corev1.ProtocolTCP, FirstSeen: at, LastSeen: at, Count: 1})
			}
		}
	}
	return edges
}

func newEvaluator(v *world, cache *flows.Cache, staged ...*v1alpha1.StagedNetworkPolicy) *Evaluator {
	g := webhook.NewGuard(webhook.Options{Cache: cache, View: v, MaxListed: v1alpha1.MaxTop, Now: func() time.Time { return t0 }})
	ev := New(Options{Guard: g, View: v, Cache: cache, Now: func() time.Time { return t0 }})
	for _, s := range staged {
		ev.Upsert(s)
	}
	return ev
}

// cutIDs lists the edges the findings of a staged policy name, in order, and their count.
func cutIDs(t *testing.T, ev *Evaluator, key types.NamespacedName) ([]string, int) {
	t.Helper()
	f, total, ok := ev.Findings(key, 1000)
	if !ok || !f.Evaluated || f.Invalid != "" {
		t.Fatalf("%s: findings %+v", key, f)
	}
	var out []string
	for _, c := range f.Cuts {
		out = append(out, fmt.Sprintf("%s → %s %d", c.Edge.Src, c.Edge.Dst, c.Edge.Port))
	}
	return out, total
}

// Every edge judged as it arrives is found cut or not as a full evaluation over a cache
// holding them all finds it, for every kind of staged change.
func TestNewEdgesAreJudgedAsTheFullEvaluationJudgesThem(t *testing.T) {
	v, ids := judgeWorld(t)
	edges := judgeEdges(ids)
	staged := judgeStaged()

	incremental := newEvaluator(v, flows.New(flows.Options{}), staged...)
	incremental.EvaluateDue()
	for i := 0; i < len(edges); i += 7 {
		incremental.JudgeEdges(edges[i:min(i+7, len(edges))])
	}

	cache := flows.New(flows.Options{})
	for _, e := range edges {
		cache.Add(flows.Observation{Src: e.Src, Dst: e.Dst, Port: e.Port, Protocol: e.Protocol, Seen: e.LastSeen})
	}
	full := newEvaluator(v, cache, staged...)
	full.EvaluateDue()

	cutSome := 0
	for _, s := range staged {
		key := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
		got, gotN := cutIDs(t, incremental, key)
		want, wantN := cutIDs(t, full, key)
		if gotN != wantN || !slices.Equal(got, want) {
			t.Errorf("%s: judged edge by edge, %d cut:\n%v\nby a full evaluation, %d cut:\n%v", key, gotN, got, wantN, want)
		}
		if wantN > 0 {
			cutSome++
		}
	}
	// Three cut nothing: a deny where another policy allows, and deletes that lift an
	// isolation or find nothing to delete.
	if cutSome < len(staged)-3 {
		t.Errorf("only %d of %d staged policies cut anything: the test has gone blind", cutSome, len(staged))
	}
}

// An edge that several staged policies cut is held once; each keeps it until its own
// change goes, and it is forgotten when the last does.
func TestAnEdgeCutByManyStagedPoliciesIsKeptUntilTheLastGoes(t *testing.T) {
	a, b := denyIngress("shop", "a"), denyIngress("shop", "b")
	ev, _ := setup(t, []string{"shop"}, a, b)
	ev.EvaluateDue()
	edge := flows.Edge{Src: workload("shop", "Deployment/frontend"), Dst: workload("shop", "Deployment/cart"), Port: 7070, Protocol: corev1.ProtocolTCP, LastSeen: t0, Count: 1}
	ev.JudgeEdges([]flows.Edge{edge})
	// Seen again as new (evicted and back): the counts are the latest.
	again := edge
	again.LastSeen, again.Count = t0.Add(time.Minute), 5
	ev.JudgeEdges([]flows.Edge{again})
	for _, s := range []*v1alpha1.StagedNetworkPolicy{a, b} {
		f, total, _ := ev.Findings(types.NamespacedName{Namespace: "shop", Name: s.Name}, 5)
		if total != 1 || f.Cuts[0].Edge.Count != 5 || f.Cuts[0].Reason == "" {
			t.Fatalf("%s: %d cut, %+v; want the edge once with its latest count, explained", s.Name, total, f.Cuts)
		}
	}
	if len(ev.held) != 1 {
		t.Fatalf("%d edges held, want 1", len(ev.held))
	}

	ev.Remove(types.NamespacedName{Namespace: "shop", Name: "a"})
	if _, total, _ := ev.Findings(types.NamespacedName{Namespace: "shop", Name: "b"}, 5); total != 1 {
		t.Fatalf("b: %d cut after a went, want 1", total)
	}
	// A new generation of b that cuts nothing (it selects no pod) lets the edge go.
	b2 := b.DeepCopy()
	b2.Generation = 2
	b2.Spec.Template.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "none"}}
	ev.Upsert(b2)
	ev.EvaluateDue()
	if _, total, _ := ev.Findings(types.NamespacedName{Namespace: "shop", Name: "b"}, 5); total != 0 {
		t.Fatalf("b: %d cut, want none", total)
	}
	if len(ev.held) != 0 {
		t.Fatalf("%d edges held after every cut went, want none", len(ev.held))
	}
	// A staged policy added later takes a freed slot and starts with no cuts.
	c := denyIngress("shop", "c")
	ev.Upsert(c)
	ev.EvaluateDue()
	ev.JudgeEdges([]flows.Edge{{Src: workload("shop", "Deployment/cart"), Dst: workload("shop", "Deployment/redis"), Port: 6379, Protocol: corev1.ProtocolTCP, LastSeen: t0}})
	if _, total, _ := ev.Findings(types.NamespacedName{Namespace: "shop", Name: "c"}, 5); total != 1 {
		t.Fatalf("c: %d cut, want 1", total)
	}
}

// New edges judged while staged policies come and go and findings are read end with each
// staged policy holding exactly the edges it cuts.
func TestNewEdgesJudgedWhileStagedPoliciesChange(t *testing.T) {
	var staged []*v1alpha1.StagedNetworkPolicy
	for i := range 20 {
		s := denyIngress("shop", fmt.Sprintf("deny-%02d", i))
		s.Spec.Template.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i%4)}}
		staged = append(staged, s)
	}
	ev, _ := setup(t, []string{"shop"}, staged...)
	ev.EvaluateDue()
	var edges []flows.Edge
	for i := range 400 {
		edges = append(edges, flows.Edge{Src: workload("shop", fmt.Sprintf("Deployment/client-%d", i)), Dst: workload("shop", fmt.Sprintf("Deployment/app-%d", i%4)), Port: 80, Protocol: corev1.ProtocolTCP, LastSeen: t0})
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < len(edges); i += 10 {
			ev.JudgeEdges(edges[i : i+10])
		}
	})
	wg.Go(func() {
		for i := range 10 {
			ev.Remove(types.NamespacedName{Namespace: "shop", Name: staged[i].Name})
			ev.Upsert(staged[i])
			ev.EvaluateDue()
		}
	})
	wg.Go(func() {
		for range 50 {
			for _, s := range staged {
				ev.Findings(types.NamespacedName{Namespace: "shop", Name: s.Name}, 3)
			}
		}
	})
	wg.Wait()
	// Each staged policy cuts the edges into its app that it has been judged against: all
	// 100 once every edge has been judged and the full evaluations run over an empty cache.
	ev.JudgeEdges(edges)
	held := 0
	for _, s := range staged {
		if _, total, _ := ev.Findings(types.NamespacedName{Namespace: "shop", Name: s.Name}, 3); total != 100 {
			t.Errorf("%s: %d cut, want 100", s.Name, total)
		}
		held += 100
	}
	refs := 0
	for _, ce := range ev.held {
		refs += ce.refs
	}
	if len(ev.held) != len(edges) || refs != held {
		t.Errorf("%d edges held %d times, want %d held %d times", len(ev.held), refs, len(edges), held)
	}
}
