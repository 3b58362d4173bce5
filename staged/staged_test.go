package staged

import (
	"fmt"
	"net/netip"
	"path"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// world is a tiny fake cluster view: workloads labelled app=<name>, policies as given.
type world struct {
	mu  sync.Mutex
	ps  *evaluator.PolicySet
	w   *evaluator.World
	eps map[flows.PeerID]*evaluator.Endpoint
}

var _ webhook.View = (*world)(nil)

func newWorld(t testing.TB, namespaces []string, policies ...*networkingv1.NetworkPolicy) *world {
	ps, err := evaluator.Compile(policies)
	if err != nil {
		t.Fatal(err)
	}
	w := &evaluator.World{NamespaceLabels: map[string]map[string]string{}}
	for _, ns := range namespaces {
		w.NamespaceLabels[ns] = map[string]string{corev1.LabelMetadataName: ns}
	}
	return &world{ps: ps, w: w, eps: map[flows.PeerID]*evaluator.Endpoint{}}
}

func (v *world) PolicySet() *evaluator.PolicySet { return v.ps }
func (v *world) World() *evaluator.World         { return v.w }
func (v *world) Endpoint(id flows.PeerID, _ *flows.PeerInfo) *evaluator.Endpoint {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ep, ok := v.eps[id]; ok {
		return ep
	}
	ep := &evaluator.Endpoint{Kind: evaluator.External, IP: id.IP}
	if id.Kind == flows.PeerWorkload {
		ep = &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: id.Namespace, Name: id.Name, Labels: map[string]string{"app": path.Base(id.Name)}}
	}
	v.eps[id] = ep
	return ep
}
func (v *world) WorkloadsIn(string) []flows.PeerID           { return nil }
func (v *world) NamespaceLabels(ns string) map[string]string { return v.w.NamespaceLabels[ns] }
func (v *world) WebhookBackend(flows.PeerID) (string, bool)  { return "", false }

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func workload(ns, name string) flows.PeerID {
	return flows.PeerID{Kind: flows.PeerWorkload, Namespace: ns, Name: name}
}

func denyIngress(ns, name string) *v1alpha1.StagedNetworkPolicy {
	return &v1alpha1.StagedNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1, UID: types.UID(ns + "/" + name)},
		Spec: v1alpha1.StagedNetworkPolicySpec{StagedAction: v1alpha1.StagedSet, Template: &v1alpha1.NetworkPolicyTemplate{
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}},
	}
}

func setup(t testing.TB, namespaces []string, staged ...*v1alpha1.StagedNetworkPolicy) (*Evaluator, *flows.Cache) {
	return setupIn(newWorld(t, namespaces), staged...)
}

func setupIn(v *world, staged ...*v1alpha1.StagedNetworkPolicy) (*Evaluator, *flows.Cache) {
	cache := flows.New(flows.Options{})
	g := webhook.NewGuard(webhook.Options{Cache: cache, View: v, MaxListed: v1alpha1.MaxTop, Now: func() time.Time { return t0 }})
	ev := New(Options{Guard: g, View: v, Cache: cache, Now: func() time.Time { return t0 }})
	for _, s := range staged {
		ev.Upsert(s)
	}
	return ev, cache
}

func TestStagedDefaultDenyCutsCachedAndNewEdges(t *testing.T) {
	ev, cache := setup(t, []string{"shop"}, denyIngress("shop", "default-deny"))
	cache.Add(flows.Observation{Src: workload("shop", "Deployment/frontend"), Dst: workload("shop", "Deployment/cart"), Port: 7070, Seen: t0})
	ev.EvaluateDue()
	key := types.NamespacedName{Namespace: "shop", Name: "default-deny"}
	st, ok := ev.Status(key, v1alpha1.StagedNetworkPolicyStatus{})
	if !ok || st.WouldCut.Flows != 1 || st.CleanSince != nil || st.WouldCut.Top[0].Reason == "" {
		t.Fatalf("status %+v, want 1 cut with its reason", st)
	}
	// A new edge, judged as it arrives.
	ev.JudgeEdges([]flows.Edge{{Src: workload("shop", "Deployment/cart"), Dst: workload("shop", "Deployment/redis"), Port: 6379, Protocol: corev1.ProtocolTCP, LastSeen: t0.Add(time.Minute)}})
	st, _ = ev.Status(key, st)
	if st.WouldCut.Flows != 2 || st.WouldCut.Top[0].Dst.Workload != "Deployment/redis" {
		t.Fatalf("status %+v, want the new edge first", st)
	}
	// An edge out of another namespace into nothing staged is not judged by it.
	ev.JudgeEdges([]flows.Edge{{Src: workload("other", "Deployment/a"), Dst: flows.PeerID{IP: netip.MustParseAddr("203.0.113.25")}, Port: 587, Protocol: corev1.ProtocolTCP}})
	if st, _ = ev.Status(key, st); st.WouldCut.Flows != 2 {
		t.Fatalf("status %+v after an unrelated edge", st)
	}
}

func TestStatusOfTheSameGenerationCarriesOverARestart(t *testing.T) {
	s := denyIngress("shop", "default-deny")
	soaking := metav1.NewTime(t0.Add(-time.Hour))
	s.Status = v1alpha1.StagedNetworkPolicyStatus{
		ObservedGeneration: 1, SoakingSince: &soaking,
		WouldCut: v1alpha1.WouldCut{Flows: 1, Top: []v1alpha1.CutFlow{{
			Src: v1alpha1.Peer{Namespace: "shop", Workload: "Deployment/frontend"}, Dst: v1alpha1.Peer{Namespace: "shop", Workload: "Deployment/cart"},
			Port: 7070, Protocol: "TCP", LastSeen: metav1.NewTime(t0.Add(-time.Minute)), Count: 3,
		}}},
	}
	ev, _ := setup(t, []string{"shop"}, s) // an empty cache: it started over
	ev.EvaluateDue()
	st, ok := ev.Status(types.NamespacedName{Namespace: "shop", Name: "default-deny"}, s.Status)
	if !ok || st.WouldCut.Flows != 1 || !st.SoakingSince.Equal(&soaking) || st.CleanSince != nil {
		t.Fatalf("status %+v, want the remembered cut and soak", st)
	}
}

func TestDeleteOfAMissingPolicyCutsNothing(t *testing.T) {
	s := denyIngress("shop", "gone")
	s.Spec = v1alpha1.StagedNetworkPolicySpec{StagedAction: v1alpha1.StagedDelete}
	ev, cache := setup(t, []string{"shop"}, s)
	cache.Add(flows.Observation{Src: workload("shop", "Deployment/frontend"), Dst: workload("shop", "Deployment/cart"), Port: 7070, Seen: t0})
	ev.EvaluateDue()
	st, ok := ev.Status(types.NamespacedName{Namespace: "shop", Name: "gone"}, v1alpha1.StagedNetworkPolicyStatus{})
	if !ok || st.WouldCut.Flows != 0 || st.CleanSince == nil {
		t.Fatalf("status %+v, want clean", st)
	}
}

func TestNewEdgesAreJudgedByTheStagedPoliciesThatMaySelectAnEnd(t *testing.T) {
	cart := denyIngress("shop", "cart")
	cart.Spec.Template.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}}
	notRedis := denyIngress("shop", "not-redis")
	notRedis.Spec.Template.Spec.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"redis"}}}}
	ev, _ := setup(t, []string{"shop"}, cart, notRedis)
	ev.EvaluateDue()
	ev.JudgeEdges([]flows.Edge{
		{Src: workload("shop", "Deployment/frontend"), Dst: workload("shop", "Deployment/cart"), Port: 7070, Protocol: corev1.ProtocolTCP, LastSeen: t0},
		{Src: workload("shop", "Deployment/cart"), Dst: workload("shop", "Deployment/redis"), Port: 6379, Protocol: corev1.ProtocolTCP, LastSeen: t0},
	})
	for name, want := range map[string]int32{"cart": 1, "not-redis": 1} {
		st, ok := ev.Status(types.NamespacedName{Namespace: "shop", Name: name}, v1alpha1.StagedNetworkPolicyStatus{})
		if !ok || st.WouldCut.Flows != want || st.WouldCut.Top[0].Dst.Workload != "Deployment/cart" || st.WouldCut.Top[0].Reason == "" {
			t.Errorf("%s: status %+v, want the edge into cart cut, explained", name, st)
		}
	}
}

// BenchmarkJudgeNewEdge: one new edge judged against the staged policies whose namespace
// is one of its ends' — 100 staged policies, all in the edge's namespace and selecting its
// destination (the worst case), all there selecting other pods, one in each of 100
// namespaces (the usual one), or each there replacing one of 100 policies that all allow
// the edge (tightened versions of policies in place: judged, and none cuts); and the worst
// case again between workloads of three pods each.
func BenchmarkJudgeNewEdge(b *testing.B) {
	for _, c := range []struct {
		name                            string
		spread, others, replacing, pods bool
	}{
		{name: "100-staged-in-the-edges-namespace"},
		{name: "100-staged-in-the-edges-namespace-selecting-other-pods", others: true},
		{name: "100-staged-in-100-namespaces", spread: true},
		{name: "100-staged-each-replacing-one-of-100-allowing-policies", replacing: true},
		{name: "100-staged-in-the-edges-namespace-workloads-of-3-pods", pods: true},
	} {
		b.Run(c.name, func(b *testing.B) {
			var namespaces []string
			var staged []*v1alpha1.StagedNetworkPolicy
			var current []*networkingv1.NetworkPolicy
			for i := range 100 {
				ns := "ns-000"
				if c.spread {
					ns = fmt.Sprintf("ns-%03d", i)
				}
				namespaces = append(namespaces, ns)
				s := denyIngress(ns, fmt.Sprintf("staged-%03d", i))
				app := "app-1"
				if c.others {
					app = fmt.Sprintf("app-%d", 2+i)
				}
				s.Spec.Template.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
				staged = append(staged, s)
				if c.replacing {
					allow := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.Name}, Spec: *s.Spec.Template.Spec.DeepCopy()}
					allow.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
					current = append(current, allow)
				}
			}
			v := newWorld(b, namespaces, current...)
			if c.pods {
				for _, name := range append([]string{"app-1"}, clients()...) {
					id := workload("ns-000", "Deployment/"+name)
					ep := &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "ns-000", Name: id.Name, Labels: map[string]string{"app": name}}
					for k := range 3 {
						pod := *ep
						pod.Pod, pod.IP = fmt.Sprintf("%s-%d", name, k), netip.AddrFrom4([4]byte{10, 0, byte(len(v.eps)), byte(k)})
						ep.Pods = append(ep.Pods, &pod)
					}
					v.eps[id] = ep
				}
			}
			ev, _ := setupIn(v, staged...)
			ev.EvaluateDue()
			if f, _, _ := ev.Findings(types.NamespacedName{Namespace: namespaces[0], Name: "staged-000"}, 0); f.Invalid != "" {
				b.Fatal(f.Invalid)
			}
			// Distinct edges, each cut (unless replacing): no edge is judged twice.
			edges := make([]flows.Edge, 100_000)
			names := clients()
			for i := range edges {
				edges[i] = flows.Edge{Src: workload("ns-000", "Deployment/"+names[i/1000]), Dst: workload("ns-000", "Deployment/app-1"), Port: int32(1 + i%1000), Protocol: corev1.ProtocolTCP, LastSeen: t0}
			}
			i := 0
			for b.Loop() {
				ev.JudgeEdges(edges[i%len(edges) : i%len(edges)+1])
				i++
			}
			if c.replacing {
				if _, total, _ := ev.Findings(types.NamespacedName{Namespace: namespaces[0], Name: "staged-000"}, 0); total != 0 {
					b.Fatalf("%d cut, want none", total)
				}
			}
		})
	}
}

// clients names the workloads BenchmarkJudgeNewEdge's edges come from.
func clients() []string {
	out := make([]string, 100)
	for i := range out {
		out[i] = fmt.Sprintf("client-%d", i)
	}
	return out
}
