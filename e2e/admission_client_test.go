package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// TestWebhookAnswersOnlyTheAPIServer runs kube-apiserver with an AdmissionConfiguration
// that presents a client certificate to webhooks, and the webhook with
// --admission-client-ca: the API server's reviews are judged; a client that reaches the port
// without that certificate gets 403 — no verdict naming flows, no Event — while the flow
// API on the same port still takes the agents' bearer tokens.
func TestWebhookAnswersOnlyTheAPIServer(t *testing.T) {
	assets := requireAssets(t)
	ctx := t.Context()
	setLoggerOnce.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	cp, err := harness.StartControlPlane(harness.ControlPlaneOptions{Assets: assets, Dir: t.TempDir(), Logf: t.Logf, WebhookClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	const ns = "e2e-client-cert"
	snap := &cluster.Objects{Namespaces: []*corev1.Namespace{harness.Namespace(ns, map[string]string{modeKey: "enforce"})}, Pods: scenarioPods(ns, 0)}
	if err := cp.CreateCluster(ctx, snap); err != nil {
		t.Fatal(err)
	}
	wh := startWebhook(t, cp, harness.WebhookOptions{Name: "netpol-guard-client-cert", Mode: "audit",
		Args: []string{"--admission-client-ca", cp.WebhookClientCAFile, "--admission-client-names", harness.WebhookClientName}},
		harness.RegisterOptions{NamespaceSelector: harness.OnlyNamespaces(ns, "default")})

	// The flow API needs no client certificate.
	token, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, harness.AgentAccount)
	if err != nil {
		t.Fatal(err)
	}
	body, err := harness.EncodeFlows(scenarioFlows(ns, 0, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := wh.PushFlows(ctx, token, body); err != nil || res.Status != 200 {
		t.Fatalf("push without a client certificate: %+v, %v", res, err)
	}

	// A caller that is not the API server posts a non-dry-run review with a bypass in a
	// user's name of its choosing.
	p := denyIngress(ns, "default-deny", map[string]string{bypassKey: "forged"})
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	review, err := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:  "6a1d7e3b-0000-4c2e-9f31-0b4f2a5e8d0c",
			Kind: metav1.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}, Resource: metav1.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
			Name: p.Name, Namespace: ns, Operation: admissionv1.Create, DryRun: new(false),
			UserInfo: authenticationv1.UserInfo{Username: "mallory"}, Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := wh.HTTPClient.Post(wh.URL+webhook.ValidatePath+"?timeout=5s", "application/json", bytes.NewReader(review))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || strings.Contains(string(answer), "would cut") {
		t.Errorf("a review without the API server's certificate: %s %s", resp.Status, answer)
	}

	// The API server's own review is judged.
	res := kubectlApply(t, cp, denyIngress(ns, "default-deny", nil))
	wantRejected(t, res, "would cut 2 active flows")
	waitEvent(t, cp, ns, "default-deny", "CutRejected")
	for _, ev := range listEvents(t, cp, ns) {
		if strings.Contains(ev.Note, "mallory") || strings.Contains(ev.Note, "forged") {
			t.Errorf("the forged review was recorded: Event %s %s: %s", ev.Name, ev.Reason, ev.Note)
		}
	}
	if n, err := wh.Metric(ctx, "netpol_guard_admission_refused_total"); err != nil || n != 1 {
		t.Errorf("netpol_guard_admission_refused_total %v, %v; want 1", n, err)
	}
}
