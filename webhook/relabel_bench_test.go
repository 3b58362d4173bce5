package webhook

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// compiledView is the test view with its policies compiled and its world built once, as
// Live keeps them between changes.
type compiledView struct {
	*testView
	ps    *evaluator.PolicySet
	world *evaluator.World
}

func (v *compiledView) PolicySet() *evaluator.PolicySet { return v.ps }
func (v *compiledView) World() *evaluator.World         { return v.world }

// BenchmarkRelabel is one relabel decision over a cache of 1M edges among 100k workloads of
// 200 namespaces: namespace tenant's 20 workloads have 1k edges each (half in from other
// namespaces, half out to them), and every other namespace admits the pods of tenant labelled
// tier=front through a namespaceSelector on team=tenant. The webhook's own cost, without
// HTTPS.
func BenchmarkRelabel(b *testing.B) {
	const namespaces, perNS, edges = 200, 500, 1_000_000
	c := observingSince(flows.New(flows.Options{MaxEdges: 1 << 21}), now.Add(-48*time.Hour))
	infos := map[flows.PeerID]*flows.PeerInfo{}
	peer := func(ns, name string, labels map[string]string) (flows.PeerID, *flows.PeerInfo) {
		id := flows.PeerID{Kind: flows.PeerWorkload, Namespace: ns, Name: "Deployment/" + name}
		if infos[id] == nil {
			infos[id] = &flows.PeerInfo{Labels: labels}
		}
		return id, infos[id]
	}
	other := func(r *rand.Rand) (flows.PeerID, *flows.PeerInfo) {
		n := fmt.Sprintf("svc-%03d", r.IntN(perNS))
		return peer(fmt.Sprintf("ns-%03d", r.IntN(namespaces)), n, map[string]string{"app": n})
	}
	r := rand.New(rand.NewPCG(1, 2))
	seen := now.Add(-time.Minute)
	batch := make([]flows.Observation, 0, 10_000)
	flush := func() { c.Add(batch...); batch = batch[:0] }
	add := func(o flows.Observation) {
		o.Port, o.Protocol, o.Seen = 8080+int32(r.IntN(8)), corev1.ProtocolTCP, seen
		if batch = append(batch, o); len(batch) == cap(batch) {
			flush()
		}
	}
	for w := range 20 {
		name := fmt.Sprintf("app-%02d", w)
		id, info := peer("tenant", name, map[string]string{"app": name, "tier": "front"})
		for i := range 1000 {
			// tenant talks to 2k workloads of 20 namespaces, on several ports.
			n := fmt.Sprintf("svc-%03d", r.IntN(100))
			o, oinfo := peer(fmt.Sprintf("ns-%03d", r.IntN(20)), n, map[string]string{"app": n})
			if i%2 == 0 {
				add(flows.Observation{Src: o, SrcInfo: oinfo, Dst: id, DstInfo: info})
			} else {
				add(flows.Observation{Src: id, SrcInfo: info, Dst: o, DstInfo: oinfo})
			}
		}
	}
	for c.Len()+len(batch) < edges {
		s, sinfo := other(r)
		d, dinfo := other(r)
		add(flows.Observation{Src: s, SrcInfo: sinfo, Dst: d, DstInfo: dinfo})
	}
	flush()

	view := newTestView()
	view.nsLabels["tenant"] = map[string]string{"team": "tenant", ModeKey: "enforce"}
	var policies []*networkingv1.NetworkPolicy
	for i := range namespaces {
		ns := fmt.Sprintf("ns-%03d", i)
		view.nsLabels[ns] = map[string]string{"team": ns}
		policies = append(policies, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "allow-tenant-front"},
			Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{}},
				{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "tenant"}}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}},
			}}}},
		})
	}
	ps, err := evaluator.Compile(policies)
	if err != nil {
		b.Fatal(err)
	}
	cv := &compiledView{testView: view, ps: ps}
	cv.world = view.World()
	g := NewGuard(Options{Cache: c, View: cv, Mode: Warn, Now: func() time.Time { return now }})
	h := g.Relabels()
	b.Logf("cache: %d edges", c.Len())

	tenantDeployment := func(labels map[string]string) *appsv1.Deployment {
		d := deployment("app-00", labels, nil)
		d.Namespace = "tenant"
		return d
	}
	front := map[string]string{"app": "app-00", "tier": "front"}
	for _, tc := range []struct {
		name     string
		group    string
		kind     string
		old, new client.Object
		wantCut  bool
	}{
		{"workload-1k-edges/nothing-cut", "apps", "Deployment", tenantDeployment(front), tenantDeployment(map[string]string{"app": "app-00", "tier": "front", "v": "2"}), false},
		{"workload-1k-edges/500-cut", "apps", "Deployment", tenantDeployment(front), tenantDeployment(map[string]string{"app": "app-00"}), true},
		{"namespace-20k-edges/nothing-cut", "", "Namespace", namespace("tenant", view.nsLabels["tenant"]), namespace("tenant", map[string]string{"team": "tenant", ModeKey: "enforce", "cost": "42"}), false},
		{"namespace-20k-edges/10k-cut", "", "Namespace", namespace("tenant", view.nsLabels["tenant"]), namespace("tenant", map[string]string{"team": "retail", ModeKey: "enforce"}), true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := relabelRequest(tc.group, tc.kind, tc.old, tc.new)
			if resp := h.Handle(b.Context(), req); resp.Allowed == tc.wantCut {
				b.Fatalf("allowed %v, want %v: %v", resp.Allowed, !tc.wantCut, resp.Result)
			}
			for b.Loop() {
				h.Handle(b.Context(), req)
			}
		})
	}
}
