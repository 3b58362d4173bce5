package e2e

// End-to-end tests of the admission webhook: the real netpol-guard binary runs as a
// subprocess in front of a real kube-apiserver and etcd, registered by a
// ValidatingWebhookConfiguration with failurePolicy Fail (a broken webhook fails every test
// loudly); flows arrive through the authenticated push API with real ServiceAccount tokens;
// the real kubectl applies and deletes policies. One control plane and webhook serve every
// scenario, each in a namespace of its own whose label makes its mode stricter than the
// global audit, or leaves it).

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/flows"
)

const (
	modeKey     = "netpol-guard.io/mode"
	bypassKey   = "netpol-guard.io/allow-cut"
	webhookName = "networkpolicies.netpol-guard.io"
)

// whScenario is a namespace of its own: frontend and checkout talk to cart on TCP/7070.
type whScenario struct {
	ns   string
	mode string // the namespace's netpol-guard.io/mode label; empty: the global mode
}

var whScenarios = []whScenario{
	{"e2e-enforce", "enforce"},
	{"e2e-warn", "warn"},
	{"e2e-audit", ""},
	{"e2e-dryrun", "warn"},
	{"e2e-delete", "enforce"},
	{"e2e-bypass", "enforce"},
	{"e2e-bypass-right", "enforce"},
	{"e2e-override", "enforce"},
	{"e2e-silent", "enforce"},
	{"e2e-degraded", "enforce"}, // judged by a second webhook that wants 1h of history
}

var setLoggerOnce sync.Once

// startControlPlane starts kube-apiserver and etcd for one test, stopped when it ends, and
// builds the netpol-guard binary meanwhile: built delivers the build's error.
func startControlPlane(t *testing.T, assets string) (cp *harness.ControlPlane, built <-chan error) {
	t.Helper()
	setLoggerOnce.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	cp, err := harness.StartControlPlane(harness.ControlPlaneOptions{Assets: assets, Dir: t.TempDir(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	done := make(chan error, 1)
	go func() { _, err := cp.Binary(t.Context()); done <- err }()
	return cp, done
}

func TestWebhook(t *testing.T) {
	assets := requireAssets(t)
	ctx := t.Context()
	start := time.Now()
	cp, built := startControlPlane(t, assets)

	// The example shop (enforced by its namespace label), and the scenarios' namespaces.
	shop, err := cluster.Load("../examples/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range shop.Namespaces {
		if ns.Name == "shop" {
			ns.Labels[modeKey] = "enforce"
		}
	}
	if err := cp.CreateCluster(ctx, shop); err != nil {
		t.Fatal(err)
	}
	snap := &cluster.Objects{}
	for i, s := range whScenarios {
		labels := map[string]string{}
		if s.mode != "" {
			labels[modeKey] = s.mode
		}
		snap.Namespaces = append(snap.Namespaces, harness.Namespace(s.ns, labels))
		snap.Pods = append(snap.Pods, scenarioPods(s.ns, i)...)
	}
	// Two policies that each allow one flow into cart (and so isolate it).
	snap.Policies = append(snap.Policies,
		allowCartFrom("e2e-delete", "allow-frontend", "frontend"),
		allowCartFrom("e2e-delete", "allow-checkout", "checkout"))
	if err := cp.CreateCluster(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}

	wh := startWebhook(t, cp, harness.WebhookOptions{Mode: "audit", MinHistory: time.Millisecond, Args: []string{"--bypass-cache-ttl", "2s"}},
		harness.RegisterOptions{NamespaceSelector: harness.ExcludeNamespaces(append([]string{"kube-system", harness.GuardNamespace, "e2e-degraded"}, oneDecisionNamespaces...)...)})
	degraded := startWebhook(t, cp, harness.WebhookOptions{Name: "netpol-guard-degraded", Mode: "warn", MinHistory: time.Hour},
		harness.RegisterOptions{NamespaceSelector: harness.OnlyNamespaces("e2e-degraded"), ProbeNamespace: "e2e-degraded"})

	// Flows, pushed as the node agent would push them.
	token, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, harness.AgentAccount)
	if err != nil {
		t.Fatal(err)
	}
	example, err := harness.ReadFlows("../examples/flows.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	recs := harness.ShiftFlows(example, now)
	for i, s := range whScenarios {
		recs = append(recs, scenarioFlows(s.ns, i, now)...)
	}
	body, err := harness.EncodeFlows(recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*harness.Webhook{wh, degraded} {
		res, err := w.PushFlows(ctx, token, body)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != 200 || res.Accepted != len(recs) || res.Unresolved != 0 {
			t.Fatalf("push to %s: %d %s; want 200 with %d accepted, 0 unresolved", w.Name, res.Status, res.Body, len(recs))
		}
	}
	t.Logf("set up in %s: %d flows pushed", time.Since(start).Round(100*time.Millisecond), len(recs))

	t.Run("enforce rejects a default-deny that cuts a flow, naming it", func(t *testing.T) {
		t.Parallel()
		res := kubectlApply(t, cp, denyIngress("e2e-enforce", "default-deny", nil))
		wantRejected(t, res, "would cut 2 active flows, e.g. e2e-enforce/frontend → e2e-enforce/cart TCP/7070 (last seen",
			"e2e-enforce/checkout → e2e-enforce/cart TCP/7070",
			"Cut by create e2e-enforce/default-deny (mode enforce, from the namespace label)",
			"2 edges considered",
			`To apply it anyway, annotate the policy netpol-guard.io/allow-cut="<reason>"`)
		wantAbsent(t, cp, "e2e-enforce", "default-deny")
		waitEvent(t, cp, "e2e-enforce", "default-deny", "CutRejected")
	})

	t.Run("the example default-deny is rejected and the lock-down done right admitted", func(t *testing.T) {
		t.Parallel()
		res := kubectl(t, cp, "apply", "-f", "../examples/proposed/shop-default-deny.yaml")
		wantRejected(t, res, "would cut 10 active flows", "[DNS] shop/frontend → kube-system/coredns UDP/53",
			"shop/cart → shop/redis TCP/6379", "This change cuts DNS.")
		res = kubectl(t, cp, "apply", "-f", "../examples/proposed/shop-default-deny-with-egress.yaml")
		wantSilent(t, res)
		wantPresent(t, cp, "shop", "allow-egress")
		wantPresent(t, cp, "shop", "default-deny")
	})

	t.Run("warn admits with warnings", func(t *testing.T) {
		t.Parallel()
		res := kubectlApply(t, cp, denyIngress("e2e-warn", "default-deny", nil))
		wantAdmitted(t, res)
		wantWarnings(t, res, "Warning: netpol-guard: would cut 2 active flows, e.g. e2e-warn/frontend → e2e-warn/cart TCP/7070",
			"Warning: cut e2e-warn/checkout → e2e-warn/cart TCP/7070",
			"Warning: coverage: ")
		wantPresent(t, cp, "e2e-warn", "default-deny")
		waitEvent(t, cp, "e2e-warn", "default-deny", "WouldCutFlows")
	})

	t.Run("audit admits and records", func(t *testing.T) {
		t.Parallel()
		res := kubectlApply(t, cp, denyIngress("e2e-audit", "default-deny", nil))
		wantSilent(t, res)
		wantPresent(t, cp, "e2e-audit", "default-deny")
		ev := waitEvent(t, cp, "e2e-audit", "default-deny", "CutAudited")
		if !strings.Contains(ev.Note, "create e2e-audit/default-deny audited: would cut 2 active flows") {
			t.Errorf("CutAudited note: %q", ev.Note)
		}
	})

	t.Run("dry-run=server rejects in enforce without persisting", func(t *testing.T) {
		t.Parallel()
		res := kubectlApply(t, cp, denyIngress("e2e-enforce", "dry-run-deny", nil), "--dry-run=server")
		wantRejected(t, res, "would cut 2 active flows, e.g. e2e-enforce/frontend → e2e-enforce/cart TCP/7070")
		wantAbsent(t, cp, "e2e-enforce", "dry-run-deny")
	})

	t.Run("dry-run=server warns in warn mode without persisting or recording", func(t *testing.T) {
		t.Parallel()
		res := kubectlApply(t, cp, denyIngress("e2e-dryrun", "dry-run-deny", nil), "--dry-run=server")
		wantAdmitted(t, res)
		if !strings.Contains(res.Stdout, "(server dry run)") {
			t.Errorf("not a server dry run:\n%s", res)
		}
		wantWarnings(t, res, "Warning: netpol-guard: would cut 2 active flows, e.g. e2e-dryrun/frontend → e2e-dryrun/cart TCP/7070")
		wantAbsent(t, cp, "e2e-dryrun", "dry-run-deny")
		// Events leave in order: once the real change's Event is there, a dry run's would be.
		wantAdmitted(t, kubectlApply(t, cp, denyIngress("e2e-dryrun", "real-deny", nil)))
		waitEvent(t, cp, "e2e-dryrun", "real-deny", "WouldCutFlows")
		for _, ev := range listEvents(t, cp, "e2e-dryrun") {
			if ev.Regarding.Name == "dry-run-deny" {
				t.Errorf("a dry run was recorded: Event %s %s: %s", ev.Name, ev.Reason, ev.Note)
			}
		}
	})

	t.Run("deleting one of two allowing policies is caught", func(t *testing.T) {
		t.Parallel()
		res := kubectl(t, cp, "delete", "networkpolicy", "allow-frontend", "-n", "e2e-delete")
		wantRejected(t, res, "would cut 1 active flow, e.g. e2e-delete/frontend → e2e-delete/cart TCP/7070",
			"Cut by delete e2e-delete/allow-frontend (mode enforce, from the namespace label)",
			"was allowed by e2e-delete/allow-frontend ingress[0]")
		wantPresent(t, cp, "e2e-delete", "allow-frontend")
	})

	t.Run("the bypass annotation admits and records the reason", func(t *testing.T) {
		t.Parallel()
		const reason = "INC-4711: cart is being drained"
		res := kubectlApply(t, cp, denyIngress("e2e-bypass", "default-deny", map[string]string{bypassKey: reason}))
		wantAdmitted(t, res)
		wantWarnings(t, res, "Warning: netpol-guard: admitted by netpol-guard.io/allow-cut (INC-4711: cart is being drained); would cut 2 flows")
		wantPresent(t, cp, "e2e-bypass", "default-deny")
		ev := waitEvent(t, cp, "e2e-bypass", "default-deny", "CutBypassed")
		if want := fmt.Sprintf("Bypassed by %s: %q.", harness.AdminUser, reason); !strings.Contains(ev.Note, want) {
			t.Errorf("CutBypassed note %q does not contain %q", ev.Note, want)
		}
	})

	t.Run("the namespace label makes the global mode stricter, and the policy annotation cannot relax it", func(t *testing.T) {
		t.Parallel()
		res := kubectlApply(t, cp, denyIngress("e2e-override", "default-deny", nil), "--dry-run=server")
		wantRejected(t, res, "(mode enforce, from the namespace label)")
		for _, mode := range []string{"warn", "off"} {
			res = kubectlApply(t, cp, denyIngress("e2e-override", "default-deny", map[string]string{modeKey: mode}))
			wantRejected(t, res, "(mode enforce, from the namespace label)")
			wantWarnings(t, res, "Warning: netpol-guard: ignoring policy annotation netpol-guard.io/mode="+mode+": laxer than enforce")
			wantAbsent(t, cp, "e2e-override", "default-deny")
		}
	})

	t.Run("the bypass annotation needs the bypass right, which editing policies does not carry", func(t *testing.T) {
		t.Parallel()
		const ns, user = "e2e-bypass-right", "policy-editor"
		grant := func(name string, rules ...rbacv1.PolicyRule) {
			t.Helper()
			role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}
			binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
				Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}}
			for _, o := range []client.Object{role, binding} {
				if err := cp.Client.Create(t.Context(), o); err != nil {
					t.Fatal(err)
				}
			}
		}
		grant("edit-policies", rbacv1.PolicyRule{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "create", "patch", "update"}})
		p := denyIngress(ns, "editor-deny", map[string]string{bypassKey: "I may edit policies"})
		res := kubectlApply(t, cp, p, "--as", user)
		wantRejected(t, res, "The policy carries netpol-guard.io/allow-cut, but policy-editor may not bypass",
			`RBAC verb "bypass" on networkpolicies.netpol-guard.io in namespace e2e-bypass-right`)
		wantAbsent(t, cp, ns, "editor-deny")

		grant("bypass", rbacv1.PolicyRule{APIGroups: []string{"netpol-guard.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"bypass"}})
		// The webhook reuses its answer for --bypass-cache-ttl (2s here).
		deadline := time.Now().Add(30 * time.Second)
		for {
			res = kubectlApply(t, cp, p, "--as", user)
			if res.ExitCode == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		wantAdmitted(t, res)
		wantWarnings(t, res, "Warning: netpol-guard: admitted by netpol-guard.io/allow-cut (I may edit policies); would cut 2 flows")
		waitEvent(t, cp, ns, "editor-deny", "CutBypassed")
	})

	t.Run("a policy that cuts nothing is admitted silently", func(t *testing.T) {
		t.Parallel()
		p := allowCartFrom("e2e-silent", "allow-cart", "frontend", "checkout")
		res := kubectlApply(t, cp, p)
		wantSilent(t, res)
		wantPresent(t, cp, "e2e-silent", "allow-cart")
	})

	t.Run("enforce with too little history degrades to a warning", func(t *testing.T) {
		t.Parallel()
		res := kubectlApply(t, cp, denyIngress("e2e-degraded", "default-deny", nil))
		wantAdmitted(t, res)
		wantWarnings(t, res, "Warning: netpol-guard: enforce degraded to warn: ", " of history < 1h; would cut 2 flows")
	})

	t.Run("the webhook and check cut the same flows on a random world", func(t *testing.T) {
		t.Parallel()
		testOneDecision(t, cp, token)
	})

	t.Run("a node agent's pod-bound token pushes only its node's flows", func(t *testing.T) {
		t.Parallel()
		testNodeBoundPush(t, cp)
	})

	t.Run("the flow API authenticates and validates pushes", func(t *testing.T) {
		t.Parallel()
		line := `{"src":{"namespace":"e2e-warn","workload":"Deployment/frontend"},"dst":{"namespace":"e2e-warn","workload":"Deployment/cart"},"port":7070}` + "\n"
		other, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, "not-a-writer")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, token, body string
			status            int
			want              string
		}{
			{"a token the API server rejects", "not-a-valid-token", line, 401, "invalid bearer token"},
			{"a ServiceAccount that is not a flow writer", other, line, 403, `user "system:serviceaccount:netpol-guard:not-a-writer" may not write flows`},
			{"a malformed line, named", token, line + `{"src":{"ip":"10.244.0.1"},"dst":{"ip":"not an address"},"port":80}` + "\n", 400, "line 2: dst.ip"},
		} {
			res, err := wh.PushFlows(ctx, tc.token, []byte(tc.body))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if res.Status != tc.status || !strings.Contains(res.Error, tc.want) {
				t.Errorf("%s: %d %s; want %d with %q", tc.name, res.Status, strings.TrimSpace(res.Body), tc.status, tc.want)
			}
			if tc.status == 400 && (res.Line != 2 || res.Field != "dst.ip") {
				t.Errorf("%s: line %d field %q; want line 2 field dst.ip", tc.name, res.Line, res.Field)
			}
		}
	})
}

// startWebhook starts a webhook and registers it, and dumps its log if the test fails.
func startWebhook(t *testing.T, cp *harness.ControlPlane, opts harness.WebhookOptions, reg harness.RegisterOptions) *harness.Webhook {
	t.Helper()
	wh, err := harness.StartWebhook(t.Context(), cp, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of webhook %s ---\n%s", wh.Name, wh.Logs())
		}
	})
	if err := wh.Register(t.Context(), cp, reg); err != nil {
		t.Fatal(err)
	}
	return wh
}

// scenarioPods are Deployments frontend, checkout and cart of namespace ns, the i-th
// scenario: one pod each, at 10.244.(20+i).10, .11 and .12.
func scenarioPods(ns string, i int) []*corev1.Pod {
	ip := func(host int) string { return fmt.Sprintf("10.244.%d.%d", 20+i, host) }
	http := corev1.ContainerPort{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}
	grpc := corev1.ContainerPort{Name: "grpc", ContainerPort: 7070, Protocol: corev1.ProtocolTCP}
	return []*corev1.Pod{
		harness.DeploymentPod(ns, "frontend", "6d8f7c9b5", "x2k4p", map[string]string{"app": "frontend"}, "node-a", ip(10), http),
		harness.DeploymentPod(ns, "checkout", "84b5d6f7c9", "p5r6t", map[string]string{"app": "checkout"}, "node-b", ip(11), grpc),
		harness.DeploymentPod(ns, "cart", "5c7d9f8b4", "h7j2k", map[string]string{"app": "cart"}, "node-a", ip(12), grpc),
	}
}

// scenarioFlows: frontend → cart by address (resolved through the pods' address history),
// seen now; checkout → cart by pod and workload name, seen 30 s ago.
func scenarioFlows(ns string, i int, now time.Time) []flows.Record {
	ip := func(host int) string { return fmt.Sprintf("10.244.%d.%d", 20+i, host) }
	return []flows.Record{
		{Src: flows.Peer{IP: ip(10)}, Dst: flows.Peer{IP: ip(12)}, Port: 7070, Protocol: "TCP", LastSeen: now, Count: 120},
		{Src: flows.Peer{Namespace: ns, Pod: "checkout-84b5d6f7c9-p5r6t"}, Dst: flows.Peer{Namespace: ns, Workload: "Deployment/cart"}, Port: 7070, LastSeen: now.Add(-30 * time.Second), Count: 7},
	}
}

// denyIngress isolates every pod of ns for ingress and allows none.
func denyIngress(ns, name string, annotations map[string]string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
}

// allowCartFrom allows the apps named into cart on its named port grpc.
func allowCartFrom(ns, name string, apps ...string) *networkingv1.NetworkPolicy {
	port := intstr.FromString("grpc")
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: "app", Operator: metav1.LabelSelectorOpIn, Values: apps,
				}}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
			}},
		},
	}
}

func kubectl(t *testing.T, cp *harness.ControlPlane, args ...string) harness.KubectlResult {
	t.Helper()
	res, err := cp.Kubectl(t.Context(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// kubectlApply applies an object with kubectl apply -f - (and more flags).
func kubectlApply(t *testing.T, cp *harness.ControlPlane, obj any, flags ...string) harness.KubectlResult {
	t.Helper()
	manifest, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cp.KubectlStdin(t.Context(), string(manifest), append([]string{"apply", "-f", "-"}, flags...)...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func wantRejected(t *testing.T, res harness.KubectlResult, want ...string) {
	t.Helper()
	wantRejectedBy(t, res, webhookName, want...)
}

// wantRejectedBy checks that the webhook named rejected the request, saying each of want.
func wantRejectedBy(t *testing.T, res harness.KubectlResult, name string, want ...string) {
	t.Helper()
	prefix := fmt.Sprintf("admission webhook %q denied the request: ", name)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, prefix) {
		t.Errorf("want a rejection by %s:\n%s", name, res)
		return
	}
	for _, w := range want {
		if !strings.Contains(res.Stderr, w) {
			t.Errorf("rejection does not say %q:\n%s", w, res)
		}
	}
}

func wantAdmitted(t *testing.T, res harness.KubectlResult) {
	t.Helper()
	if res.ExitCode != 0 {
		t.Errorf("want admitted:\n%s", res)
	}
}

// wantSilent: admitted, with nothing on stderr (no warnings).
func wantSilent(t *testing.T, res harness.KubectlResult) {
	t.Helper()
	if res.ExitCode != 0 || res.Stderr != "" {
		t.Errorf("want admitted silently:\n%s", res)
	}
}

// wantWarnings checks kubectl printed each wanted text in a warning, and that the
// warnings keep to the webhook's limits: at most 5 + 2 of them, each at most 120
// characters.
func wantWarnings(t *testing.T, res harness.KubectlResult, want ...string) {
	t.Helper()
	var warnings []string
	for line := range strings.SplitSeq(res.Stderr, "\n") {
		if w, ok := strings.CutPrefix(line, "Warning: "); ok {
			warnings = append(warnings, w)
			if n := utf8.RuneCountInString(w); n > 120 {
				t.Errorf("warning of %d characters: %q", n, w)
			}
		}
	}
	if len(warnings) == 0 || len(warnings) > 7 {
		t.Errorf("want 1 to 7 warnings, got %d:\n%s", len(warnings), res)
	}
	for _, w := range want {
		if !strings.Contains(res.Stderr, w) {
			t.Errorf("no warning says %q:\n%s", w, res)
		}
	}
}

func wantPresent(t *testing.T, cp *harness.ControlPlane, ns, name string) {
	t.Helper()
	if err := cp.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &networkingv1.NetworkPolicy{}); err != nil {
		t.Errorf("NetworkPolicy %s/%s: %v", ns, name, err)
	}
}

func wantAbsent(t *testing.T, cp *harness.ControlPlane, ns, name string) {
	t.Helper()
	err := cp.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &networkingv1.NetworkPolicy{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("NetworkPolicy %s/%s: want not found, got %v", ns, name, err)
	}
}

func listEvents(t *testing.T, cp *harness.ControlPlane, ns string) []eventsv1.Event {
	t.Helper()
	list, err := cp.Clientset.EventsV1().Events(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing Events in %s: %v", ns, err)
	}
	return list.Items
}

// waitEvent waits for the webhook's Event (events.k8s.io/v1) about a policy with a reason.
func waitEvent(t *testing.T, cp *harness.ControlPlane, ns, policy, reason string) eventsv1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		var seen []string
		for _, ev := range listEvents(t, cp, ns) {
			if ev.Regarding.Kind == "NetworkPolicy" && ev.Regarding.Name == policy && ev.Reason == reason {
				if ev.ReportingController != "netpol-guard" && ev.ReportingController != "" {
					t.Logf("Event %s reported by %q", ev.Name, ev.ReportingController)
				}
				return ev
			}
			seen = append(seen, fmt.Sprintf("%s %s/%s: %s", ev.Reason, ev.Regarding.Kind, ev.Regarding.Name, ev.Note))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no Event %s for NetworkPolicy %s/%s after 20s; Events there:\n%s", reason, ns, policy, strings.Join(seen, "\n"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
