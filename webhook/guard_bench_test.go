package webhook

import (
	"fmt"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// BenchmarkDecision is one admission over 10k candidate edges (100 workloads of the
// namespace, each talking to 100 others) in a cache of 200k: the webhook's own cost, without
// HTTPS. e2e/load measures the same over the wire with 1M edges.
func BenchmarkDecision(b *testing.B) {
	c := flows.New(flows.Options{MaxEdges: 1 << 21})
	grpc := []evaluator.ContainerPort{{Name: "grpc", Port: 7070, Protocol: corev1.ProtocolTCP}}
	var obs []flows.Observation
	for i := range 200_000 {
		src := flows.PeerID{Kind: flows.PeerWorkload, Namespace: fmt.Sprintf("ns-%02d", i%50), Name: fmt.Sprintf("Deployment/svc-%04d", i%5000)}
		srcInfo := &flows.PeerInfo{Labels: map[string]string{"app": src.Name}, Ports: grpc}
		dst := flows.PeerID{Kind: flows.PeerWorkload, Namespace: fmt.Sprintf("ns-%02d", (i+7)%50), Name: fmt.Sprintf("Deployment/svc-%04d", (i/5000+i)%5000)}
		if i < 10_000 {
			dst = flows.PeerID{Kind: flows.PeerWorkload, Namespace: "bench", Name: fmt.Sprintf("Deployment/app-%03d", i%100)}
		}
		obs = append(obs, flows.Observation{Src: src, SrcInfo: srcInfo, Dst: dst, DstInfo: &flows.PeerInfo{Labels: map[string]string{"app": dst.Name, "tier": "api"}, Ports: grpc},
			Port: 7070, Protocol: corev1.ProtocolTCP, Seen: now.Add(-time.Duration(i%3600) * time.Second)})
	}
	c.Add(obs...)
	view := newTestView()
	view.nsLabels["bench"] = map[string]string{ModeKey: "enforce"}
	g := NewGuard(Options{Cache: c, View: view, Mode: Warn, Now: func() time.Time { return now }})
	for _, tc := range []struct {
		name string
		p    *networkingv1.NetworkPolicy
	}{
		{"default-deny", &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "deny"}}},
		{"allow-all", &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "all"},
			Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := request(admissionv1.Create, nil, tc.p, true)
			for b.Loop() {
				g.Handle(b.Context(), req)
			}
		})
	}
}
