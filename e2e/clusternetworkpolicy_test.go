package e2e

// ClusterNetworkPolicies against the real API server: the webhook starts on a cluster
// without their CRD and judges NetworkPolicies as ever, notices the CRD once it is
// installed (network-policy-api's own, from the module), and then judges cluster policies
// — and NetworkPolicies under them — through the tiers.

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/webhook"
)

const clusterWebhookName = "clusterpolicies.netpol-guard.io"

// cnpScenarios are namespaces of their own, each enforced by its label (for the
// NetworkPolicies in them; cluster policies take their mode from their annotation).
var cnpScenarios = []string{"cnp-deny", "cnp-pass", "cnp-baseline", "cnp-accept"}

func TestClusterNetworkPolicy(t *testing.T) {
	assets := requireAssets(t)
	ctx := t.Context()
	cp, built := startControlPlane(t, assets)

	snap := &cluster.Objects{}
	for i, ns := range cnpScenarios {
		snap.Namespaces = append(snap.Namespaces, harness.Namespace(ns, map[string]string{modeKey: "enforce"}))
		snap.Pods = append(snap.Pods, scenarioPods(ns, 40+i)...)
	}
	// In cnp-baseline cart is isolated by a NetworkPolicy that lets frontend in.
	snap.Policies = append(snap.Policies, allowCartFrom("cnp-baseline", "allow-frontend", "frontend"))
	if err := cp.CreateCluster(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	wh := startWebhook(t, cp, harness.WebhookOptions{Mode: "warn", Args: []string{"--discovery-interval", "1s"}},
		harness.RegisterOptions{NamespaceSelector: harness.OnlyNamespaces(cnpScenarios...), ProbeNamespace: "cnp-accept"})

	token, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, harness.AgentAccount)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var recs []flows.Record
	for i, ns := range cnpScenarios {
		recs = append(recs, scenarioFlows(ns, 40+i, now)...)
	}
	// cnp-baseline: cart → checkout, into a pod no NetworkPolicy isolates.
	recs = append(recs, flows.Record{Src: flows.Peer{Namespace: "cnp-baseline", Workload: "Deployment/cart"}, Dst: flows.Peer{Namespace: "cnp-baseline", Workload: "Deployment/checkout"},
		Port: 7070, Protocol: "TCP", LastSeen: now, Count: 3})
	body, err := harness.EncodeFlows(recs)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := wh.PushFlows(ctx, token, body); err != nil || res.Status != 200 || res.Accepted != len(recs) {
		t.Fatalf("push: %v %+v", err, res)
	}

	// Without the CRD the webhook runs and judges NetworkPolicies.
	res := kubectlApply(t, cp, denyIngress("cnp-accept", "default-deny", nil), "--dry-run=server")
	wantRejected(t, res, "would cut 2 active flows")

	crd := filepath.Join(goModCache(t), "sigs.k8s.io", "network-policy-api@v0.3.0", "config", "crd", "standard", "policy.networking.k8s.io_clusternetworkpolicies.yaml")
	if _, err := envtest.InstallCRDs(cp.Config, envtest.CRDInstallOptions{Paths: []string{crd}, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
	registerClusterWebhook(t, cp, wh)

	t.Run("an Admin Deny that cuts live flows is rejected, naming its tier and rule", func(t *testing.T) {
		p := admin("deny-cart", "cnp-deny", 10, rule("no-ingress", v1beta1.ClusterNetworkPolicyRuleActionDeny))
		res := eventually(t, func() (harness.KubectlResult, bool) {
			res := kubectlApply(t, cp, p)
			return res, res.ExitCode != 0
		})
		wantRejectedBy(t, res, clusterWebhookName, "would cut 2 active flows", "Cut by create cnp/deny-cart (mode enforce, from the policy annotation)",
			`ingress decided by admin cnp/deny-cart priority 10 ingress[0] "no-ingress" Deny`, "cnp-deny/frontend → cnp-deny/cart TCP/7070")
	})

	t.Run("an Admin Accept is noticed, and a NetworkPolicy under it cuts nothing", func(t *testing.T) {
		wantSilent(t, kubectlApply(t, cp, admin("accept-all", "cnp-accept", 20, rule("all", v1beta1.ClusterNetworkPolicyRuleActionAccept))))
		// The view learns of it from the informer the CRD's arrival started.
		res := eventually(t, func() (harness.KubectlResult, bool) {
			res := kubectlApply(t, cp, denyIngress("cnp-accept", "default-deny", nil))
			return res, res.ExitCode == 0
		})
		wantSilent(t, res)
	})

	t.Run("an Admin Pass lets the NetworkPolicy decide", func(t *testing.T) {
		wantSilent(t, kubectlApply(t, cp, admin("pass", "cnp-pass", 30, rule("to-netpol", v1beta1.ClusterNetworkPolicyRuleActionPass))))
		res := eventually(t, func() (harness.KubectlResult, bool) {
			res := kubectlApply(t, cp, denyIngress("cnp-pass", "default-deny", nil), "--dry-run=server")
			return res, strings.Contains(res.Stderr, "passed by")
		})
		wantRejected(t, res, "would cut 2 active flows", "ingress passed by admin cnp/pass priority 30 ingress[0] \"to-netpol\" Pass, isolated by cnp-pass/default-deny")
	})

	t.Run("a Baseline Deny cuts only pods no NetworkPolicy isolates", func(t *testing.T) {
		p := admin("baseline-deny", "cnp-baseline", 10, rule("default", v1beta1.ClusterNetworkPolicyRuleActionDeny))
		p.Spec.Tier = v1beta1.BaselineTier
		res := kubectlApply(t, cp, p, "--dry-run=server")
		wantRejectedBy(t, res, clusterWebhookName, "would cut 1 active flow, e.g. cnp-baseline/cart → cnp-baseline/checkout TCP/7070",
			`ingress decided by baseline cnp/baseline-deny priority 10 ingress[0] "default" Deny`)
		if strings.Contains(res.Stderr, "cnp-baseline/frontend → cnp-baseline/cart") {
			t.Errorf("cut a flow into cart, which its NetworkPolicy decides:\n%s", res)
		}
	})
}

// admin is an Admin tier ClusterNetworkPolicy over namespace ns, enforced by its
// annotation, with ingress rules from every namespace.
func admin(name, ns string, priority int32, rules ...v1beta1.ClusterNetworkPolicyIngressRule) *v1beta1.ClusterNetworkPolicy {
	return &v1beta1.ClusterNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy.networking.k8s.io/v1beta1", Kind: "ClusterNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{modeKey: "enforce"}},
		Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: priority,
			Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
			Ingress: rules},
	}
}

func rule(name string, action v1beta1.ClusterNetworkPolicyRuleAction) v1beta1.ClusterNetworkPolicyIngressRule {
	return v1beta1.ClusterNetworkPolicyIngressRule{Name: name, Action: action, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}}
}

// eventually retries try until it reports done, for at most 30 s, and returns its last
// result: the API server picks up webhook configurations, and the webhook new CRDs and
// policies, asynchronously.
func eventually(t *testing.T, try func() (harness.KubectlResult, bool)) harness.KubectlResult {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, done := try()
		if done || time.Now().After(deadline) {
			return res
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// registerClusterWebhook sends cluster policy changes to wh, as the chart's second webhook
// does: cluster-scoped, no namespaceSelector.
func registerClusterWebhook(t *testing.T, cp *harness.ControlPlane, wh *harness.Webhook) {
	t.Helper()
	url := wh.URL + webhook.ValidatePath
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	fail := admissionregistrationv1.Fail
	scope := admissionregistrationv1.ClusterScope
	equivalent := admissionregistrationv1.Equivalent
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "netpol-guard-cluster-policies"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         clusterWebhookName,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: wh.CA.CertPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"policy.networking.k8s.io"}, APIVersions: []string{"v1beta1"},
					Resources: []string{"clusternetworkpolicies"}, Scope: &scope},
			}},
			SideEffects: &sideEffects, FailurePolicy: &fail, MatchPolicy: &equivalent,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if err := cp.Client.Create(t.Context(), vwc); err != nil {
		t.Fatal(err)
	}
}

func goModCache(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
