package webhook

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// A change over more edges than one worker takes is read, converted and judged in parts:
// its cut set is the one the evaluator gives the same flows in one piece, change after
// change (the kept memos of each part see the next change).
func TestSplitDecisionAsOnePiece(t *testing.T) {
	c := flows.New(flows.Options{MaxEdges: 1 << 16})
	grpc := []evaluator.ContainerPort{{Name: "grpc", Port: 7070, Protocol: corev1.ProtocolTCP}}
	var obs []flows.Observation
	// Two workers at least, on any machine.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	for i := range 5 * minEdgesPerWorker {
		src := flows.PeerID{Kind: flows.PeerWorkload, Namespace: fmt.Sprintf("ns-%d", i%7), Name: fmt.Sprintf("Deployment/svc-%04d", i)}
		dst := flows.PeerID{Kind: flows.PeerWorkload, Namespace: "bench", Name: fmt.Sprintf("Deployment/app-%02d", i%40)}
		srcInfo := &flows.PeerInfo{Labels: map[string]string{"app": src.Name, "team": fmt.Sprint(i % 3)}, Ports: grpc}
		dstInfo := &flows.PeerInfo{Labels: map[string]string{"app": fmt.Sprintf("app-%02d", i%40), "tier": []string{"web", "api"}[i%2]}, Ports: grpc}
		if i%3 == 0 { // out of bench
			src, dst, srcInfo, dstInfo = dst, src, dstInfo, srcInfo
		}
		obs = append(obs, flows.Observation{Src: src, SrcInfo: srcInfo, Dst: dst, DstInfo: dstInfo, Port: 7070, Protocol: corev1.ProtocolTCP, Seen: now.Add(-time.Minute)})
	}
	c.Add(obs...)
	view := newTestView()
	view.nsLabels["bench"] = map[string]string{ModeKey: "enforce"}
	for i := range 7 {
		view.nsLabels[fmt.Sprintf("ns-%d", i)] = map[string]string{"team": fmt.Sprint(i % 3)}
	}
	g := NewGuard(Options{Cache: c, View: view, Mode: Enforce, Now: func() time.Time { return now }})

	api := &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "api"}}
	changes := []*networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "deny"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "api"}, Spec: networkingv1.NetworkPolicySpec{PodSelector: *api,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "1"}}}}}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "egress"}, Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "2"}}, NamespaceSelector: &metav1.LabelSelector{}}}}}}},
	}
	for round := range 2 {
		for _, p := range changes {
			c, err := g.NewChange("bench", nil, p)
			if err != nil {
				t.Fatal(err)
			}
			d := g.decideChange(c)
			sc := d.scratch
			if len(sc.edges) < 2*minEdgesPerWorker {
				t.Fatalf("%s: %d edges, too few to split", p.Name, len(sc.edges))
			}
			var fl []evaluator.Flow
			for _, e := range sc.edges {
				fl = append(fl, evaluator.Flow{Src: view.Endpoint(e.Src, e.SrcInfo), Dst: view.Endpoint(e.Dst, e.DstInfo), Port: e.Port, Protocol: e.Protocol})
			}
			want := evaluator.DiffWith(c.Before, c.After, view.World(), fl, evaluator.DiffOptions{})
			if d.summary.Cut != want.Summary.Cut || d.summary.Candidates != want.Summary.Candidates || want.Summary.Cut == 0 && p.Name != "egress" {
				t.Errorf("round %d, %s: cut %d of %d candidates, in one piece %d of %d", round, p.Name, d.summary.Cut, d.summary.Candidates, want.Summary.Cut, want.Summary.Candidates)
			}
			var got []flows.Edge
			for _, cf := range d.cuts {
				got = append(got, *cf.edge)
			}
			var wantEdges []flows.Edge
			for _, i := range want.CutIndexes {
				wantEdges = append(wantEdges, sc.edges[i])
			}
			key := func(e flows.Edge) string { return e.Src.String() + ">" + e.Dst.String() }
			if !slices.Equal(sortedKeys(got, key), sortedKeys(wantEdges, key)) {
				t.Errorf("round %d, %s: the cut edges differ from the evaluator's in one piece", round, p.Name)
			}
			g.putScratch(sc)
		}
	}
}

func sortedKeys(es []flows.Edge, key func(flows.Edge) string) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = key(e)
	}
	slices.Sort(out)
	return out
}

// refEndpoints answers what was put in this read only: by slice, past it by map, and
// nothing of the read before.
func TestRefEndpoints(t *testing.T) {
	r := &refEndpoints{gen: 1}
	a, b := &evaluator.Endpoint{Name: "a"}, &evaluator.Endpoint{Name: "b"}
	r.put(3, a)
	r.put(maxDenseRef+5, b)
	if r.get(3) != a || r.get(maxDenseRef+5) != b || r.get(2) != nil || r.get(7) != nil {
		t.Fatalf("after put: 3→%v, far→%v, 2→%v", r.get(3), r.get(maxDenseRef+5), r.get(2))
	}
	r.reset()
	if r.get(3) != nil || r.get(maxDenseRef+5) != nil {
		t.Fatal("a reset read still answers the last read's refs")
	}
	r.put(1000, b)
	if r.get(1000) != b || r.get(3) != nil {
		t.Fatal("growing the slice lost or invented an entry")
	}
	r.gen = ^uint32(0)
	r.reset()
	if r.gen != 1 || r.get(1000) != nil {
		t.Fatalf("after the stamp wrapped: gen %d, 1000→%v", r.gen, r.get(1000))
	}
}
