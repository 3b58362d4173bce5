package e2e

// End-to-end tests of staged policies: the real binary soaks StagedNetworkPolicies (their
// CRD from the chart, installed into the real API server) against flows pushed through the
// push API, writes what they would cut to their status, keeps it across a restart, and
// `netpol-guard staged promote` applies a clean one through the admission webhook.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"github.com/netpol-guard/netpol-guard/staged"
)

func TestStaged(t *testing.T) {
	assets := requireAssets(t)
	ctx := t.Context()
	cp, built := startControlPlane(t, assets)
	// The OpenReports Report CRD, as the module ships it.
	reportsDir, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/openreports/reports-api").Output()
	if err != nil {
		t.Fatalf("finding the reports-api module: %v", err)
	}
	reportCRDs := filepath.Join(strings.TrimSpace(string(reportsDir)), "config", "crd")
	if _, err := envtest.InstallCRDs(cp.Config, envtest.CRDInstallOptions{Paths: []string{"../charts/netpol-guard/crds", reportCRDs}, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := reportsv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	// Two namespaces of the scenario shop: frontend and checkout talk to cart on TCP/7070.
	const ns, delNS = "e2e-staged", "e2e-staged-delete"
	snap := &cluster.Objects{}
	for i, n := range []string{ns, delNS} {
		snap.Namespaces = append(snap.Namespaces, harness.Namespace(n, nil))
		snap.Pods = append(snap.Pods, scenarioPods(n, 40+i)...)
	}
	snap.Policies = append(snap.Policies, allowCartFrom(delNS, "allow-frontend", "frontend"), allowCartFrom(delNS, "allow-checkout", "checkout"))
	if err := cp.CreateCluster(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	bin, err := cp.Binary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	whOpts := harness.WebhookOptions{Name: "netpol-guard-staged", Args: []string{"--staged-status-interval", "3s"}}
	reg := harness.RegisterOptions{NamespaceSelector: harness.OnlyNamespaces(ns, delNS), ProbeNamespace: ns}
	wh := startWebhook(t, cp, whOpts, reg)
	token, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, harness.AgentAccount)
	if err != nil {
		t.Fatal(err)
	}
	push := func(w *harness.Webhook, recs []flows.Record) {
		t.Helper()
		body, err := harness.EncodeFlows(recs)
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.PushFlows(ctx, token, body)
		if err != nil || res.Status != 200 || res.Accepted != len(recs) || res.Unresolved != 0 {
			t.Fatalf("push: %v %+v", err, res)
		}
	}
	now := time.Now()
	push(wh, append(scenarioFlows(ns, 40, now), scenarioFlows(delNS, 41, now)...))

	get := func(namespace, name string) *v1alpha1.StagedNetworkPolicy {
		s := &v1alpha1.StagedNetworkPolicy{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// waitStatus waits for the status of the staged policy's current generation to say that
	// it would cut want flows.
	waitStatus := func(namespace, name string, want int32, within time.Duration) *v1alpha1.StagedNetworkPolicy {
		t.Helper()
		var s *v1alpha1.StagedNetworkPolicy
		testutil.Eventually(t, within, fmt.Sprintf("staged %s/%s would cut %d flows", namespace, name, want), func() bool {
			s = get(namespace, name)
			return s.Status.ObservedGeneration == s.Generation && s.Status.SoakingSince != nil && s.Status.WouldCut.Flows == want
		})
		return s
	}
	cuts := func(s *v1alpha1.StagedNetworkPolicy) []string {
		var out []string
		for _, cf := range s.Status.WouldCut.Top {
			out = append(out, fmt.Sprintf("%s/%s → %s/%s %s/%d", cf.Src.Namespace, cf.Src.Workload, cf.Dst.Namespace, cf.Dst.Workload, cf.Protocol, cf.Port))
		}
		return out
	}

	deny := &v1alpha1.StagedNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default-deny"},
		Spec: v1alpha1.StagedNetworkPolicySpec{StagedAction: v1alpha1.StagedSet, Template: &v1alpha1.NetworkPolicyTemplate{
			Spec: denyIngress(ns, "default-deny", nil).Spec,
		}},
	}

	t.Run("the API server validates the template against the action", func(t *testing.T) {
		bad := deny.DeepCopy()
		bad.Name, bad.Spec.StagedAction = "bad", v1alpha1.StagedDelete
		err := c.Create(ctx, bad)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "template is required when stagedAction is Set") {
			t.Errorf("a Delete with a template: %v, want invalid", err)
		}
	})

	var soakingSince metav1.Time
	t.Run("a staged default-deny shows the flows it would cut", func(t *testing.T) {
		if err := c.Create(ctx, deny.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		s := waitStatus(ns, "default-deny", 2, 60*time.Second)
		got := strings.Join(cuts(s), "\n")
		for _, want := range []string{ns + "/Deployment/frontend → " + ns + "/Deployment/cart TCP/7070", ns + "/Deployment/checkout → " + ns + "/Deployment/cart TCP/7070"} {
			if !strings.Contains(got, want) {
				t.Errorf("status lists\n%s\nwant %s", got, want)
			}
		}
		if s.Status.CleanSince != nil || !strings.Contains(s.Status.WouldCut.Top[0].Reason, "default-deny") {
			t.Errorf("status %+v: want no cleanSince and a reason naming the policy", s.Status)
		}
		if len(s.Status.Conditions) != 1 || s.Status.Conditions[0].Status != metav1.ConditionTrue {
			t.Errorf("conditions %+v, want WouldCut True", s.Status.Conditions)
		}
		soakingSince = *s.Status.SoakingSince

		// Its OpenReports Report, owned by it, fails with the cut flows.
		report := &reportsv1alpha1.Report{}
		testutil.EventuallyNoError(t, 30*time.Second, "the staged policy's Report listing 2 cuts", func() error {
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: staged.ReportName("default-deny")}, report); err != nil {
				return err
			}
			if report.Summary.Fail != 2 {
				return fmt.Errorf("summary %+v", report.Summary)
			}
			return nil
		})
		r := report.Results[0]
		if report.Source != staged.ReportSource || r.Policy != "default-deny" || r.Result != "fail" || !strings.Contains(r.Description, "default-deny") ||
			r.Properties["port"] != "7070" || r.Properties["protocol"] != "TCP" || r.Properties["lastSeen"] == "" || len(r.Subjects) != 2 || r.Subjects[1].Name != "cart" {
			t.Errorf("report result %+v of source %q", r, report.Source)
		}
		if o := report.OwnerReferences; len(o) != 1 || o[0].UID != s.UID {
			t.Errorf("report owners %+v, want the staged policy", o)
		}
	})

	t.Run("a new flow it would cut shows up within 10s", func(t *testing.T) {
		// cart → frontend on http: never seen before.
		ip := func(host int) string { return fmt.Sprintf("10.244.%d.%d", 20+40, host) }
		pushed := time.Now()
		push(wh, []flows.Record{{Src: flows.Peer{IP: ip(12)}, Dst: flows.Peer{IP: ip(10)}, Port: 8080, Protocol: "TCP", LastSeen: pushed, Count: 1}})
		s := waitStatus(ns, "default-deny", 3, 10*time.Second)
		t.Logf("the new flow was in status %s after the push", time.Since(pushed).Round(100*time.Millisecond))
		if top := cuts(s)[0]; top != ns+"/Deployment/cart → "+ns+"/Deployment/frontend TCP/8080" {
			t.Errorf("most recent cut %q, want the new flow", top)
		}
	})

	t.Run("a restarted webhook keeps soakingSince and the cut set", func(t *testing.T) {
		if err := wh.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := cp.Client.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: whOpts.Name}}); err != nil {
			t.Fatal(err)
		}
		// No snapshot: the new webhook's cache starts empty, and status is the record.
		wh = startWebhook(t, cp, whOpts, reg)
		testutil.EventuallyNoError(t, 30*time.Second, "the restarted webhook judging the staged policies", func() error {
			v, err := wh.Metric(ctx, "netpol_guard_staged_would_cut_flows")
			if err == nil && v != 3 {
				err = fmt.Errorf("would cut %v flows", v)
			}
			return err
		})
		time.Sleep(4 * time.Second) // past a status interval
		s := waitStatus(ns, "default-deny", 3, time.Second)
		if !s.Status.SoakingSince.Equal(&soakingSince) || s.Status.CleanSince != nil {
			t.Errorf("after the restart soakingSince %v, cleanSince %v; want %v and none", s.Status.SoakingSince, s.Status.CleanSince, soakingSince)
		}
	})

	t.Run("a fixed template turns it clean", func(t *testing.T) {
		s := get(ns, "default-deny")
		// Allow every pod of the namespace in.
		s.Spec.Template.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}}
		if err := c.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		s = waitStatus(ns, "default-deny", 0, 30*time.Second)
		if s.Status.CleanSince == nil || s.Status.Conditions[0].Status != metav1.ConditionFalse {
			t.Errorf("clean status %+v: want cleanSince and WouldCut False", s.Status)
		}
	})

	t.Run("staged list shows the state", func(t *testing.T) {
		out, err := exec.CommandContext(ctx, bin, "staged", "list", "-A", "--kubeconfig", cp.Kubeconfig).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "default-deny") || !strings.Contains(string(out), "clean for") {
			t.Errorf("staged list: %v\n%s", err, out)
		}
	})

	t.Run("promote refuses a soak shorter than --min-clean, then creates the policy and removes the staged one", func(t *testing.T) {
		out, err := exec.CommandContext(ctx, bin, "staged", "promote", "default-deny", "-n", ns, "--kubeconfig", cp.Kubeconfig).CombinedOutput()
		if code := exitStatus(err); code != 1 || !strings.Contains(string(out), "less than --min-clean 24h") {
			t.Errorf("promote with the default --min-clean: exit %d\n%s", code, out)
		}
		out, err = exec.CommandContext(ctx, bin, "staged", "promote", "default-deny", "-n", ns, "--min-clean", "0s", "--kubeconfig", cp.Kubeconfig).CombinedOutput()
		if err != nil {
			t.Fatalf("promote: %v\n%s", err, out)
		}
		wantPresent(t, cp, ns, "default-deny")
		np := &networkingv1.NetworkPolicy{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default-deny"}, np); err != nil || len(np.Spec.Ingress) != 1 {
			t.Errorf("promoted policy %+v, %v", np.Spec, err)
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default-deny"}, &v1alpha1.StagedNetworkPolicy{}); !apierrors.IsNotFound(err) {
			t.Errorf("the staged policy after promotion: %v, want not found", err)
		}
	})

	t.Run("staging the delete of an allow policy shows what deleting it would cut", func(t *testing.T) {
		del := &v1alpha1.StagedNetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: delNS, Name: "allow-frontend"},
			Spec:       v1alpha1.StagedNetworkPolicySpec{StagedAction: v1alpha1.StagedDelete},
		}
		// The restarted webhook's cache holds only what was pushed to it since.
		push(wh, scenarioFlows(delNS, 41, time.Now()))
		if err := c.Create(ctx, del); err != nil {
			t.Fatal(err)
		}
		s := waitStatus(delNS, "allow-frontend", 1, 30*time.Second)
		if got := cuts(s); len(got) != 1 || got[0] != delNS+"/Deployment/frontend → "+delNS+"/Deployment/cart TCP/7070" {
			t.Errorf("cuts %v, want frontend → cart", got)
		}
		out, err := exec.CommandContext(ctx, bin, "staged", "promote", "allow-frontend", "-n", delNS, "--min-clean", "0s", "--kubeconfig", cp.Kubeconfig).CombinedOutput()
		if code := exitStatus(err); code != 1 || !strings.Contains(string(out), "would cut 1 flows") {
			t.Errorf("promote of a cutting delete: exit %d\n%s", code, out)
		}
	})
}

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
