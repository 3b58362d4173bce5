package webhook

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
)

// fixedView is testView with a policy set compiled and a world built once, as Live's are
// between changes (testView compares its labels at every call).
type fixedView struct {
	*testView
	ps *evaluator.PolicySet
	w  *evaluator.World
}

func (v *fixedView) PolicySet() *evaluator.PolicySet { return v.ps }
func (v *fixedView) World() *evaluator.World         { return v.w }

// BenchmarkClusterDecision is one admission of a ClusterNetworkPolicy whose subject is one
// namespace (10k candidate edges: 100 workloads, each talking to 100 others) in a cache of
// 1M edges over 50 more namespaces, with an Admin tier policy already in place. It reports
// the median and 99th percentile of the in-process decision, and its CPU time (GC included).
func BenchmarkClusterDecision(b *testing.B) {
	c := flows.New(flows.Options{MaxEdges: 1 << 21})
	grpc := []evaluator.ContainerPort{{Name: "grpc", Port: 7070, Protocol: corev1.ProtocolTCP}}
	view := newTestView()
	view.nsLabels["bench"] = map[string]string{}
	const total = 1_000_000
	obs := make([]flows.Observation, 0, 100_000)
	for i := range total {
		src := flows.PeerID{Kind: flows.PeerWorkload, Namespace: fmt.Sprintf("ns-%02d", i%50), Name: fmt.Sprintf("Deployment/svc-%04d", i%5000)}
		dst := flows.PeerID{Kind: flows.PeerWorkload, Namespace: fmt.Sprintf("ns-%02d", (i+7)%50), Name: fmt.Sprintf("Deployment/svc-%04d", (i/5000+i)%5000)}
		if i < 10_000 {
			dst = flows.PeerID{Kind: flows.PeerWorkload, Namespace: "bench", Name: fmt.Sprintf("Deployment/app-%03d", i%100)}
		}
		view.nsLabels[src.Namespace] = map[string]string{}
		obs = append(obs, flows.Observation{Src: src, SrcInfo: &flows.PeerInfo{Labels: map[string]string{"app": src.Name}, Ports: grpc},
			Dst: dst, DstInfo: &flows.PeerInfo{Labels: map[string]string{"app": dst.Name, "tier": "api"}, Ports: grpc},
			Port: 7070 + int32(i/250_000), Protocol: corev1.ProtocolTCP, Seen: now.Add(-time.Duration(i%3600) * time.Second)})
		if len(obs) == cap(obs) {
			c.Add(obs...)
			obs = obs[:0]
		}
	}
	c.Add(obs...)
	if n := c.Len(); n < total*9/10 {
		b.Fatalf("cache holds %d edges", n)
	}
	existing := cnp("monitoring", cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionAccept, "scrape"), func(p *v1beta1.ClusterNetworkPolicy) {
		p.Spec.Priority = 1
		p.Spec.Subject = v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}
		p.Spec.Ingress[0].From = []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}}
	})
	ps, err := evaluator.CompileAll(nil, []*evaluator.ClusterPolicy{evaluator.ClusterPolicyFromV1beta1(existing)})
	if err != nil {
		b.Fatal(err)
	}
	g := NewGuard(Options{Cache: c, View: &fixedView{testView: view, ps: ps, w: view.World()}, Mode: Enforce, Now: func() time.Time { return now }})
	// The building of the cache left a heap's worth of garbage: collect it now, not while
	// decisions are timed, as a webhook does long before its first admission.
	runtime.GC()
	onBench := func(p *v1beta1.ClusterNetworkPolicy) {
		p.Spec.Subject = v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "bench"}}}
	}
	for _, tc := range []struct {
		name string
		p    *v1beta1.ClusterNetworkPolicy
	}{
		{"admin-deny", cnp("deny", onBench, cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionDeny, "all"))},
		{"admin-accept", cnp("accept", onBench, cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionAccept, "all"))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := cnpRequest(admissionv1.Create, nil, tc.p)
			var took []time.Duration
			cpu := testutil.ProcessCPU()
			for b.Loop() {
				start := time.Now()
				g.Handle(b.Context(), req)
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64((testutil.ProcessCPU()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}
