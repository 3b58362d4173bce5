package server

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// policyView is a view loaded from objects whose policies a test swaps, as informers do.
type policyView struct {
	*cluster.Live
	ps *evaluator.PolicySet
}

func (v *policyView) PolicySet() *evaluator.PolicySet { return v.ps }

func shopView(t *testing.T) *policyView {
	t.Helper()
	pod := func(name, ip string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: labels},
			Spec:       corev1.PodSpec{NodeName: "worker-1"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
		}
	}
	live := cluster.LiveFromObjects(&cluster.Objects{Pods: []*corev1.Pod{
		pod("web-1", "10.244.1.2", map[string]string{"app": "web"}),
		pod("db-1", "10.244.1.3", map[string]string{"app": "db"}),
	}}, cluster.LiveOptions{})
	return &policyView{Live: live, ps: live.PolicySet()}
}

func compile(t *testing.T, policies ...*networkingv1.NetworkPolicy) *evaluator.PolicySet {
	t.Helper()
	ps, err := evaluator.Compile(policies)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

var webToDB = flows.Record{
	Src: flows.Peer{Namespace: "shop", Pod: "web-1"}, Dst: flows.Peer{Namespace: "shop", Pod: "db-1"},
	Port: 5432, Protocol: flows.ProtocolTCP,
}

func TestPredictionFollowsPolicyChanges(t *testing.T) {
	v := shopView(t)
	p := &predictor{view: v}
	if allowed, ok := p.allowed(webToDB); !ok || !allowed {
		t.Fatalf("no policies: allowed, ok = %v, %v; want true, true", allowed, ok)
	}
	first := p.eval
	p.allowed(webToDB)
	if p.eval != first {
		t.Error("the same policies: a new Evaluation, want the memoised one reused")
	}

	v.ps = compile(t, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deny-all"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	})
	if allowed, ok := p.allowed(webToDB); !ok || allowed {
		t.Errorf("after a default deny in shop: allowed, ok = %v, %v; want false, true", allowed, ok)
	}
	if p.eval == first {
		t.Error("new policies judged with the old Evaluation")
	}
}

func TestPredictionSkipsFlowsTheViewCannotResolve(t *testing.T) {
	p := &predictor{view: shopView(t)}
	rec := webToDB
	rec.Dst = flows.Peer{Namespace: "shop", Labels: map[string]string{"app": "db"}} // Goldmane's aggregated "db-*"
	if _, ok := p.allowed(rec); ok {
		t.Error("a labels-only peer was predicted, want no prediction")
	}
}
