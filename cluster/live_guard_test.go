package cluster

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netpol-guard/netpol-guard/flows"
)

func TestLivePolicySetFollowsPolicyChanges(t *testing.T) {
	l, _ := newTestLive(LiveOptions{})
	deny := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deny", ResourceVersion: "1"}}
	other := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "pay", Name: "deny", ResourceVersion: "1"}}
	if n := l.PolicySet().Len(); n != 0 {
		t.Fatalf("%d policies before any", n)
	}
	l.upsertPolicy(deny)
	l.upsertPolicy(other)
	first := l.PolicySet()
	if first.Len() != 2 || first.Get("shop", "deny") != deny {
		t.Fatalf("compiled set %v", first.Policies())
	}
	if l.PolicySet() != first {
		t.Error("an unchanged set was compiled again")
	}
	l.deletePolicy(types.NamespacedName{Namespace: "shop", Name: "deny"})
	if ps := l.PolicySet(); ps.Len() != 1 || ps.Get("shop", "deny") != nil || ps.Get("pay", "deny") != other {
		t.Errorf("after delete: %v", ps.Policies())
	}
	// A policy the evaluator rejects is left out; its namespace's others stay.
	bad := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "pay", Name: "bad", ResourceVersion: "1"},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "nope"}}}}}}}
	l.upsertPolicy(bad)
	if ps := l.PolicySet(); ps.Len() != 1 || ps.Get("pay", "deny") != other {
		t.Errorf("with an invalid policy: %v", ps.Policies())
	}
}

func TestLiveWebhookBackend(t *testing.T) {
	l, _ := newTestLive(LiveOptions{})
	l.upsertPod(livePodObj("gatekeeper", "controller", func(p *corev1.Pod) { p.Labels = map[string]string{"control-plane": "controller-manager"} }))
	l.upsertPod(livePodObj("gatekeeper", "audit", func(p *corev1.Pod) { p.Labels = map[string]string{"control-plane": "audit"} }))
	l.upsertService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "gatekeeper", Name: "webhook"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"control-plane": "controller-manager"}}})
	controller := flows.PeerID{Kind: flows.PeerWorkload, Namespace: "gatekeeper", Name: "Pod/controller"}
	audit := flows.PeerID{Kind: flows.PeerWorkload, Namespace: "gatekeeper", Name: "Pod/audit"}
	if _, ok := l.WebhookBackend(controller); ok {
		t.Fatal("a backend before any webhook configuration names its Service")
	}
	l.upsertValidating(&admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "gatekeeper"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "validation.gatekeeper.sh",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "gatekeeper", Name: "webhook"}}}},
	})
	if name, ok := l.WebhookBackend(controller); !ok || name != "validation.gatekeeper.sh" {
		t.Errorf("controller: %q %v", name, ok)
	}
	if _, ok := l.WebhookBackend(audit); ok {
		t.Error("the audit pods, which the Service does not select, count as a backend")
	}
	l.deleteWebhookConfig("validating")(types.NamespacedName{Name: "gatekeeper"})
	if _, ok := l.WebhookBackend(controller); ok {
		t.Error("still a backend after the configuration was deleted")
	}
}

func TestLiveNamespaceLabelsAndNodeAddress(t *testing.T) {
	l, _ := newTestLive(LiveOptions{})
	l.upsertNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"netpol-guard.io/mode": "enforce"}}})
	if got := l.NamespaceLabels("shop"); got["netpol-guard.io/mode"] != "enforce" || got[corev1.LabelMetadataName] != "shop" {
		t.Errorf("labels %v", got)
	}
	l.upsertNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: "192.168.0.4"}}}})
	if a, ok := l.NodeAddress("n1"); !ok || a.String() != "192.168.0.4" {
		t.Errorf("node address %v %v", a, ok)
	}
}
