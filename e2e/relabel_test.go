package e2e

// End-to-end tests of relabel judging: the real binary behind the real API server, with
// webhook entries for Namespaces and workloads gated by the chart's matchConditions (label
// changes only), flows pushed through the push API, and the real kubectl labelling and
// patching.

import (
	"fmt"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// The label comparisons the chart's entries make.
const (
	labelsChanged         = "(has(object.metadata.labels) ? object.metadata.labels : {}) != (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {})"
	templateLabelsChanged = "(has(object.spec.template.metadata) && has(object.spec.template.metadata.labels) ? object.spec.template.metadata.labels : {}) != (has(oldObject.spec.template.metadata) && has(oldObject.spec.template.metadata.labels) ? oldObject.spec.template.metadata.labels : {})"
)

func TestRelabel(t *testing.T) {
	assets := requireAssets(t)
	ctx := t.Context()
	cp, built := startControlPlane(t, assets)

	// rl-shop: frontend → cart; rl-pay: api → rl-shop/cart, let in by team=payments.
	enforce := map[string]string{modeKey: "enforce"}
	snap := &cluster.Objects{
		Namespaces: []*corev1.Namespace{
			harness.Namespace("rl-shop", enforce),
			harness.Namespace("rl-pay", map[string]string{modeKey: "enforce", "team": "payments"}),
			harness.Namespace("rl-probe", nil),
		},
		Pods: []*corev1.Pod{
			harness.DeploymentPod("rl-shop", "frontend", "6d8f7c9b5", "x2k4p", map[string]string{"name": "frontend", "app": "frontend"}, "node-a", "10.244.40.10"),
			harness.DeploymentPod("rl-shop", "cart", "5c7d9f8b4", "h7j2k", map[string]string{"app": "cart"}, "node-a", "10.244.40.12"),
			harness.DeploymentPod("rl-pay", "api", "84b5d6f7c9", "p5r6t", map[string]string{"app": "api"}, "node-b", "10.244.41.10"),
		},
	}
	port := int32(7070)
	allow := func(name string, peer networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "rl-shop", Name: name},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{peer}}},
			},
		}
	}
	snap.Policies = []*networkingv1.NetworkPolicy{
		allow("allow-frontend", networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "frontend"}}}),
		allow("allow-payments", networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}}),
	}
	if err := cp.CreateCluster(ctx, snap); err != nil {
		t.Fatal(err)
	}
	// The Deployment itself (no controller runs here: its pod above stands for what it made).
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "rl-shop", Name: "frontend"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "frontend"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"name": "frontend", "app": "frontend"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "frontend", Image: "registry.example.com/frontend:1"}}},
			},
		},
	}
	if err := cp.Client.Create(ctx, deploy); err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	wh := startWebhook(t, cp, harness.WebhookOptions{Mode: "warn", MinHistory: time.Millisecond}, harness.RegisterOptions{ProbeNamespace: "rl-probe"})
	registerRelabels(t, cp, wh)

	token, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, harness.AgentAccount)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body, err := harness.EncodeFlows([]flows.Record{
		{Src: flows.Peer{IP: "10.244.40.10"}, Dst: flows.Peer{IP: "10.244.40.12"}, Port: port, LastSeen: now, Count: 40},
		{Src: flows.Peer{Namespace: "rl-pay", Pod: "api-84b5d6f7c9-p5r6t"}, Dst: flows.Peer{Namespace: "rl-shop", Workload: "Deployment/cart"}, Port: port, LastSeen: now.Add(-time.Minute), Count: 9},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := wh.PushFlows(ctx, token, body); err != nil || res.Status != 200 || res.Accepted != 2 || res.Unresolved != 0 {
		t.Fatalf("push: %+v %v", res, err)
	}

	t.Run("kubectl label ns that breaks a cross-namespace allow is rejected, naming the flow", func(t *testing.T) {
		res := kubectl(t, cp, "label", "ns", "rl-pay", "team=billing", "--overwrite")
		wantRejectedBy(t, res, "namespaces.relabel.netpol-guard.io",
			"relabel Namespace rl-pay would cut 1 active flow, e.g. rl-pay/api → rl-shop/cart TCP/7070",
			"was allowed by rl-shop/allow-payments ingress[0]")
	})

	t.Run("kubectl patch of a Deployment template that escapes an allow is rejected, naming the flow", func(t *testing.T) {
		res := kubectl(t, cp, "patch", "deployment", "frontend", "-n", "rl-shop", "--type=merge",
			"-p", `{"spec":{"template":{"metadata":{"labels":{"app":"frontend-v2"}}}}}`)
		wantRejectedBy(t, res, "workloads.relabel.netpol-guard.io",
			"relabel Deployment rl-shop/frontend would cut 1 active flow, e.g. rl-shop/frontend → rl-shop/cart TCP/7070",
			"now ingress isolated by rl-shop/allow-frontend, rl-shop/allow-payments and no rule allows it",
			`annotate the Deployment netpol-guard.io/allow-cut="<reason>"`)
	})

	t.Run("an update that changes no labels never reaches the webhook", func(t *testing.T) {
		before, err := wh.Metric(ctx, "netpol_guard_admission_requests_total")
		if err != nil {
			t.Fatal(err)
		}
		wantAdmitted(t, kubectl(t, cp, "annotate", "deployment", "frontend", "-n", "rl-shop", "example.com/owner=web-team"))
		wantAdmitted(t, kubectl(t, cp, "patch", "deployment", "frontend", "-n", "rl-shop", "--type=merge",
			"-p", `{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":20}}}}`))
		after, err := wh.Metric(ctx, "netpol_guard_admission_requests_total")
		if err != nil {
			t.Fatal(err)
		}
		if after != before {
			t.Errorf("netpol_guard_admission_requests_total moved from %v to %v on updates that change no labels", before, after)
		}
	})
}

// registerRelabels registers the webhook's namespace and workload entries as the chart
// does, and waits until the API server calls them.
func registerRelabels(t *testing.T, cp *harness.ControlPlane, wh *harness.Webhook) {
	t.Helper()
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	fail := admissionregistrationv1.Fail
	cluster, namespaced := admissionregistrationv1.ClusterScope, admissionregistrationv1.NamespacedScope
	entry := func(name, path, condition string, rule admissionregistrationv1.Rule) admissionregistrationv1.ValidatingWebhook {
		url := wh.URL + path
		return admissionregistrationv1.ValidatingWebhook{
			Name:         name,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: wh.CA.CertPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update}, Rule: rule,
			}},
			MatchConditions:         []admissionregistrationv1.MatchCondition{{Name: "labels-changed", Expression: condition}},
			NamespaceSelector:       harness.ExcludeNamespaces("kube-system", harness.GuardNamespace),
			SideEffects:             &sideEffects,
			FailurePolicy:           &fail,
			TimeoutSeconds:          new(int32(5)),
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "netpol-guard-relabel"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			entry("namespaces.relabel.netpol-guard.io", webhook.RelabelNamespacePath, labelsChanged,
				admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"namespaces"}, Scope: &cluster}),
			entry("workloads.relabel.netpol-guard.io", webhook.RelabelWorkloadPath, templateLabelsChanged,
				admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}, Scope: &namespaced}),
		},
	}
	if err := cp.Client.Create(t.Context(), vwc); err != nil {
		t.Fatal(err)
	}
	// A dry-run relabel of a namespace nothing flows from; once the counter moves, the API
	// server is calling the entries.
	base, err := wh.Metric(t.Context(), "netpol_guard_admission_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		kubectl(t, cp, "label", "ns", "rl-probe", fmt.Sprintf("probe=p%d", i), "--overwrite", "--dry-run=server")
		if n, err := wh.Metric(t.Context(), "netpol_guard_admission_requests_total"); err != nil {
			t.Fatal(err)
		} else if n > base {
			return
		}
		if i > 300 {
			t.Fatal("the API server did not call the relabel webhook within 30s of registering it")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
