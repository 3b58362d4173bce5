package webhook

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// clusterView is testView with cluster policies in its policy set.
type clusterView struct {
	*testView
	cluster []*evaluator.ClusterPolicy
}

func (v *clusterView) PolicySet() *evaluator.PolicySet {
	v.mu.Lock()
	defer v.mu.Unlock()
	ps, err := evaluator.CompileAll(v.policies, v.cluster)
	if err != nil {
		panic(err)
	}
	return ps
}

func newClusterFixture(t *testing.T, mode Mode, cache *flows.Cache, cnps []*v1beta1.ClusterNetworkPolicy, nps ...*networkingv1.NetworkPolicy) fixture {
	t.Helper()
	log = testr.New(t)
	view := &clusterView{testView: newTestView(nps...)}
	for _, p := range cnps {
		view.cluster = append(view.cluster, evaluator.ClusterPolicyFromV1beta1(p))
	}
	rec := events.NewFakeRecorder(10)
	g := NewGuard(Options{Cache: cache, View: view, Mode: mode, Recorder: rec, Now: func() time.Time { return now }})
	return fixture{guard: g, view: view.testView, recorder: rec}
}

// cnp is an Admin tier ClusterNetworkPolicy at priority 10 whose subject is namespace shop.
func cnp(name string, tweaks ...func(*v1beta1.ClusterNetworkPolicy)) *v1beta1.ClusterNetworkPolicy {
	p := &v1beta1.ClusterNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy.networking.k8s.io/v1beta1", Kind: "ClusterNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: 10, Subject: v1beta1.ClusterNetworkPolicySubject{
			Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
		}},
	}
	for _, t := range tweaks {
		t(p)
	}
	return p
}

func cnpIngress(action v1beta1.ClusterNetworkPolicyRuleAction, name string) func(*v1beta1.ClusterNetworkPolicy) {
	return func(p *v1beta1.ClusterNetworkPolicy) {
		p.Spec.Ingress = append(p.Spec.Ingress, v1beta1.ClusterNetworkPolicyIngressRule{
			Name: name, Action: action, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}},
		})
	}
}

func cnpAnnotated(k, v string) func(*v1beta1.ClusterNetworkPolicy) {
	return func(p *v1beta1.ClusterNetworkPolicy) { p.Annotations = map[string]string{k: v} }
}

func clusterRequest(op admissionv1.Operation, kind metav1.GroupVersionKind, old, new any) admission.Request {
	raw := func(p any) runtime.RawExtension {
		if p == nil {
			return runtime.RawExtension{}
		}
		b, _ := json.Marshal(p)
		return runtime.RawExtension{Raw: b}
	}
	dryRun := false
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-1", Kind: kind, Operation: op, UserInfo: authenticationv1.UserInfo{Username: "alice@example.com"},
		Object: raw(new), OldObject: raw(old), DryRun: &dryRun,
	}}
}

var cnpKind = metav1.GroupVersionKind{Group: "policy.networking.k8s.io", Version: "v1beta1", Kind: "ClusterNetworkPolicy"}

func cnpRequest(op admissionv1.Operation, old, new *v1beta1.ClusterNetworkPolicy) admission.Request {
	var o, n any
	if old != nil {
		o = old
	}
	if new != nil {
		n = new
	}
	return clusterRequest(op, cnpKind, o, n)
}

func TestAdminDenyThatCutsFlowsIsRejectedNamingTheRule(t *testing.T) {
	f := newClusterFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)), nil)
	resp := f.guard.Handle(t.Context(), cnpRequest(admissionv1.Create, nil, cnp("lockdown", cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionDeny, "no-ingress"))))
	if resp.Allowed {
		t.Fatalf("admitted: %+v", resp.Result)
	}
	msg := resp.Result.Message
	for _, want := range []string{"Cut by create cnp/lockdown", "shop/web → shop/cart TCP/8080", `admin cnp/lockdown priority 10 ingress[0] "no-ingress" Deny`, "payments/api → shop/cart"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	// Probes from cart's own node are never cut; nor is egress to DNS by an ingress rule.
	if strings.Contains(msg, "node/node-a") || strings.Contains(msg, "coredns") {
		t.Errorf("message lists a flow the change cannot cut:\n%s", msg)
	}
}

func TestClusterPolicyAnnotationAndGlobalModeDecideNotNamespaceLabels(t *testing.T) {
	f := newClusterFixture(t, Warn, shopCache(now.Add(-48*time.Hour)), nil)
	f.view.nsLabels["shop"] = map[string]string{ModeKey: "enforce"} // does not apply to a cluster-scoped policy
	resp := f.guard.Handle(t.Context(), cnpRequest(admissionv1.Create, nil, cnp("lockdown", cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionDeny, ""))))
	if !resp.Allowed || len(resp.Warnings) == 0 {
		t.Fatalf("global warn: allowed %v, warnings %v", resp.Allowed, resp.Warnings)
	}
	resp = f.guard.Handle(t.Context(), cnpRequest(admissionv1.Create, nil, cnp("lockdown", cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionDeny, ""), cnpAnnotated(ModeKey, "enforce"))))
	if resp.Allowed {
		t.Fatal("annotated enforce: admitted")
	}
}

func TestDeleteOfAnAdminAcceptUnderABaselineDenyCuts(t *testing.T) {
	accept := cnp("allow-all", cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionAccept, ""))
	baseline := cnp("baseline-deny", cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionDeny, ""), func(p *v1beta1.ClusterNetworkPolicy) { p.Spec.Tier = v1beta1.BaselineTier })
	f := newClusterFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)), []*v1beta1.ClusterNetworkPolicy{accept, baseline})
	resp := f.guard.Handle(t.Context(), cnpRequest(admissionv1.Delete, accept, nil))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "baseline cnp/baseline-deny") {
		t.Errorf("delete: allowed %v, message %v", resp.Allowed, resp.Result)
	}
}

func TestNetworkPolicyUnderAnAdminAcceptCutsNothing(t *testing.T) {
	accept := cnp("allow-all", cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionAccept, ""))
	f := newClusterFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)), []*v1beta1.ClusterNetworkPolicy{accept})
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, policy("deny-all"), false))
	if !resp.Allowed || len(resp.Warnings) != 0 {
		t.Errorf("allowed %v, warnings %v, result %v", resp.Allowed, resp.Warnings, resp.Result)
	}
	// Without the Admin Accept the same policy is rejected.
	f = newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	if resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, policy("deny-all"), false)); resp.Allowed {
		t.Error("without the Admin Accept: admitted")
	}
}

func TestAdminPassLetsTheNetworkPolicyDecide(t *testing.T) {
	pass := cnp("pass", cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionPass, ""))
	f := newClusterFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)), []*v1beta1.ClusterNetworkPolicy{pass})
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, policy("deny-all"), false))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "passed by admin cnp/pass") {
		t.Errorf("allowed %v, result %v", resp.Allowed, resp.Result)
	}
}

func TestDomainNamesFlowsAreWarnedOfNeverDenied(t *testing.T) {
	c := observingSince(flows.New(flows.Options{}), now.Add(-48*time.Hour))
	c.Add(flows.Observation{Src: wl("shop", "Deployment/web"), Dst: flows.PeerID{Kind: flows.PeerExternal, IP: netip.MustParseAddr("203.0.113.7")}, Port: 443, Protocol: corev1.ProtocolTCP, Seen: now.Add(-time.Minute)})
	p := cnp("egress-allowlist", func(p *v1beta1.ClusterNetworkPolicy) {
		p.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{
			{Name: "api", Action: v1beta1.ClusterNetworkPolicyRuleActionAccept, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{DomainNames: []v1beta1.DomainName{"api.example.com"}}}},
			{Name: "rest", Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{"0.0.0.0/0"}}}},
		}
	})
	f := newClusterFixture(t, Enforce, c, nil)
	resp := f.guard.Handle(t.Context(), cnpRequest(admissionv1.Create, nil, p))
	if !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	w := strings.Join(resp.Warnings, "\n")
	if !strings.Contains(w, "1 flow uncertain") || !strings.Contains(w, "shop/web → 203.0.113.7 TCP/443") {
		t.Errorf("warnings:\n%s", w)
	}
}

func TestAdminNetworkPolicyIsJudgedAsItsTier(t *testing.T) {
	anp := &v1alpha1.AdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-shop"},
		Spec: v1alpha1.AdminNetworkPolicySpec{Priority: 5, Subject: v1alpha1.AdminNetworkPolicySubject{
			Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
		}, Ingress: []v1alpha1.AdminNetworkPolicyIngressRule{{Name: "all", Action: v1alpha1.AdminNetworkPolicyRuleActionDeny,
			From: []v1alpha1.AdminNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}}}},
	}
	f := newClusterFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)), nil)
	kind := metav1.GroupVersionKind{Group: "policy.networking.k8s.io", Version: "v1alpha1", Kind: "AdminNetworkPolicy"}
	resp := f.guard.Handle(t.Context(), clusterRequest(admissionv1.Create, kind, nil, anp))
	if resp.Allowed || !strings.Contains(resp.Result.Message, `admin anp/deny-shop priority 5 ingress[0] "all" Deny`) {
		t.Errorf("allowed %v, result %v", resp.Allowed, resp.Result)
	}
}

func TestClusterWideSubjectReadsEveryMatchingNamespaceOnce(t *testing.T) {
	// payments/api → shop/cart is read from both namespaces; it must be judged once.
	p := cnp("deny-everything", cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionDeny, ""), func(p *v1beta1.ClusterNetworkPolicy) {
		p.Spec.Subject = v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}
	})
	f := newClusterFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)), nil)
	d := f.guard.decideCluster(nil, evaluator.ClusterPolicyFromV1beta1(p))
	if d.err != nil {
		t.Fatal(d.err)
	}
	seen := map[string]int{}
	for _, c := range d.cuts {
		seen[flowName(c.edge)]++
	}
	if seen["payments/api → shop/cart TCP/8080"] != 1 || len(d.cuts) != 4 {
		t.Errorf("cuts %v, want 4, payments/api → shop/cart once", seen)
	}
}
