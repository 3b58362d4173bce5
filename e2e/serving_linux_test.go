package e2e

// End-to-end tests of the webhook's serving certificate as a cluster deploys it: the API
// server calls the webhook through its Service (clientConfig.service), so it verifies a
// certificate for netpol-guard.netpol-guard.svc against the configuration's caBundle, as in
// a cluster. The Service has a fixed ClusterIP inside envtest's service range, and that
// address is put on this machine's loopback: the API server's service resolver connects to
// the ClusterIP, where the real netpol-guard binary listens on port 443.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/e2e/harness"
)

const (
	// guardServiceIP is the webhook Service's ClusterIP: in envtest's
	// --service-cluster-ip-range 10.0.0.0/24, and put on the loopback.
	guardServiceIP = "10.0.0.100"
	guardService   = "netpol-guard"
	guardDNSName   = guardService + "." + harness.GuardNamespace + ".svc"
	guardSecret    = "netpol-guard-tls"
	guardVWC       = "netpol-guard"
	expiryMetric   = "netpol_guard_serving_certificate_expiry_timestamp_seconds"
)

func TestWebhookServingCertificate(t *testing.T) {
	assets := requireAssets(t)
	if os.Geteuid() != 0 {
		skipOrFailCI(t, "needs root: the Service's ClusterIP goes on the loopback and the webhook listens on port 443")
	}
	ctx := t.Context()
	start := time.Now()
	cp, built := startControlPlane(t, assets)

	removeAddr, err := harness.AddLoopbackAddress(guardServiceIP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeAddr(); err != nil {
			t.Errorf("removing %s from the loopback: %v", guardServiceIP, err)
		}
	})
	if err := cp.CreateClusterIPService(ctx, harness.GuardNamespace, guardService, guardServiceIP, 443, 443); err != nil {
		t.Fatal(err)
	}
	token, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, harness.AgentAccount)
	if err != nil {
		t.Fatal(err)
	}
	// Two enforced namespaces whose frontend and checkout talk to cart, and namespaces that
	// only new versions of a webhook configuration select (probes of what the API server
	// has picked up).
	snap := &cluster.Objects{}
	for i, ns := range []string{"e2e-selfsigned", "e2e-rotate"} {
		snap.Namespaces = append(snap.Namespaces, harness.Namespace(ns, map[string]string{modeKey: "enforce"}))
		snap.Pods = append(snap.Pods, scenarioPods(ns, 40+i)...)
	}
	for _, ns := range []string{"e2e-selfsigned-m1", "e2e-rotate-m1", "e2e-rotate-m2"} {
		snap.Namespaces = append(snap.Namespaces, harness.Namespace(ns, nil))
	}
	if err := cp.CreateCluster(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	t.Logf("set up in %s", time.Since(start).Round(100*time.Millisecond))

	t.Run("self-signed: bootstraps its CA, injects the caBundle and repairs it", func(t *testing.T) {
		const ns = "e2e-selfsigned"
		registerServiceWebhook(t, cp, harness.ServiceWebhookOptions{Name: guardVWC, NamespaceSelector: harness.OnlyNamespaces(ns)})
		wh := startServing(t, cp, "self-signed", harness.ServingOptions{TLSArgs: []string{
			"--self-signed", "--namespace", harness.GuardNamespace, "--service-name", guardService,
			"--secret-name", guardSecret, "--webhook-config", guardVWC,
		}})

		// The Secret it bootstrapped: a CA, and a certificate for the Service it signed.
		sec, err := cp.Clientset.CoreV1().Secrets(harness.GuardNamespace).Get(ctx, guardSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the self-signed Secret: %v", err)
		}
		if sec.Type != corev1.SecretTypeTLS {
			t.Errorf("Secret type %q, want %q", sec.Type, corev1.SecretTypeTLS)
		}
		for _, k := range []string{"tls.crt", "tls.key", "ca.crt", "ca.key"} {
			if len(sec.Data[k]) == 0 {
				t.Errorf("Secret %s has no %s", guardSecret, k)
			}
		}
		caPEM := sec.Data["ca.crt"]
		trust, err := harness.TrustPEM(caPEM)
		if err != nil {
			t.Fatal(err)
		}
		leaf := parseCert(t, sec.Data["tls.crt"])
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: guardDNSName, Roots: trust.Pool}); err != nil {
			t.Errorf("the Secret's certificate does not verify for %s against its ca.crt: %v", guardDNSName, err)
		}
		// The caBundle it injected is the Secret's CA.
		if got := caBundle(t, cp, guardVWC); !bytes.Equal(got, caPEM) {
			t.Fatalf("caBundle of %s:\n%s\nwant the Secret's ca.crt:\n%s", guardVWC, got, caPEM)
		}
		// It serves that certificate, at the ClusterIP.
		wh.Trust(trust, guardDNSName)
		served, err := wh.PeerCertificate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !served.Equal(leaf) {
			t.Errorf("served certificate (serial %x) is not the Secret's (serial %x)", served.SerialNumber, leaf.SerialNumber)
		}
		wantMetric(t, wh, expiryMetric, float64(leaf.NotAfter.Unix()))

		// The API server calls it over TLS it verified with that caBundle (failurePolicy
		// Fail: a call that failed would say so), and a cutting policy is rejected.
		if err := wh.WaitCalled(ctx, cp, ns, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		pushScenarioFlows(t, wh, token, ns, 40)
		wantRejected(t, kubectlApply(t, cp, denyIngress(ns, "default-deny", nil)),
			"would cut 2 active flows, e.g. e2e-selfsigned/frontend → e2e-selfsigned/cart TCP/7070")
		wantAbsent(t, cp, ns, "default-deny")

		// A `helm upgrade` resets the caBundle: the webhook puts it back. The same update
		// selects a probe namespace, so a call there proves the API server runs with the
		// repaired configuration (without a caBundle no call could succeed).
		updateWebhookConfig(t, cp, guardVWC, func(wh *admissionregistrationv1.ValidatingWebhook) {
			wh.ClientConfig.CABundle = nil
			wh.NamespaceSelector = harness.OnlyNamespaces(ns, ns+"-m1")
		})
		testutil.Eventually(t, 15*time.Second, "the caBundle restored", func() bool { return bytes.Equal(caBundle(t, cp, guardVWC), caPEM) })
		if err := wh.WaitCalled(ctx, cp, ns+"-m1", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		wantRejected(t, kubectlApply(t, cp, denyIngress(ns, "default-deny", nil)), "would cut 2 active flows")
		after, err := cp.Clientset.CoreV1().Secrets(harness.GuardNamespace).Get(ctx, guardSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after.Data["ca.crt"], caPEM) || !bytes.Equal(after.Data["tls.crt"], sec.Data["tls.crt"]) {
			t.Errorf("repairing the caBundle changed the Secret's CA or certificate")
		}
		if n := strings.Count(wh.Logs(), "Injected caBundle"); n < 2 {
			t.Errorf("the webhook logged %d caBundle injections, want the bootstrap's and the repair's", n)
		}
	})

	t.Run("cert-dir: a rotation as cert-manager and the kubelet do it, without a restart", func(t *testing.T) {
		const ns = "e2e-rotate"
		names := []string{guardService, guardService + "." + harness.GuardNamespace, guardDNSName, guardDNSName + ".cluster.local"}
		ca1, cert1 := issue(t, "e2e cert-manager CA 1", 24*time.Hour, names)
		vol, err := harness.NewSecretVolume(filepath.Join(cp.Dir, "serving-certs"), tlsSecretData(cert1, ca1))
		if err != nil {
			t.Fatal(err)
		}
		registerServiceWebhook(t, cp, harness.ServiceWebhookOptions{Name: "netpol-guard-certdir", CABundle: ca1.CertPEM, NamespaceSelector: harness.OnlyNamespaces(ns)})
		trust1, err := harness.TrustPEM(ca1.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		wh := startServing(t, cp, "cert-dir", harness.ServingOptions{TLSArgs: []string{"--cert-dir", vol.Dir}, CA: trust1, ServerName: guardDNSName})
		pid := wh.PID()
		if err := wh.WaitCalled(ctx, cp, ns, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		pushScenarioFlows(t, wh, token, ns, 41)
		admissions := func(phase string) {
			t.Helper()
			wantRejected(t, kubectlApply(t, cp, denyIngress(ns, "default-deny", nil)),
				"would cut 2 active flows, e.g. e2e-rotate/frontend → e2e-rotate/cart TCP/7070")
			quiet := quietPolicy(ns, "quiet-"+phase)
			wantSilent(t, kubectlApply(t, cp, quiet))
			wantPresent(t, cp, ns, quiet.Name)
		}
		admissions("ca1")
		wantMetric(t, wh, expiryMetric, float64(cert1.Cert.NotAfter.Unix()))

		// 1. The new CA joins the caBundle before anything it signed is served.
		ca2, cert2 := issue(t, "e2e cert-manager CA 2", 48*time.Hour, names)
		bundle := append(append([]byte{}, ca1.CertPEM...), ca2.CertPEM...)
		updateWebhookConfig(t, cp, "netpol-guard-certdir", func(w *admissionregistrationv1.ValidatingWebhook) {
			w.ClientConfig.CABundle = bundle
			w.NamespaceSelector = harness.OnlyNamespaces(ns, ns+"-m1")
		})
		if err := wh.WaitCalled(ctx, cp, ns+"-m1", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		// 2. cert-manager rewrites the Secret; the kubelet swaps ..data.
		if err := vol.Update(tlsSecretData(cert2, ca2)); err != nil {
			t.Fatal(err)
		}
		trust12, err := harness.TrustPEM(bundle)
		if err != nil {
			t.Fatal(err)
		}
		wh.Trust(trust12, guardDNSName)
		testutil.Eventually(t, 15*time.Second, "the webhook serving the new certificate", func() bool {
			c, err := wh.PeerCertificate(ctx)
			return err == nil && c.Equal(cert2.Cert)
		})
		wantMetric(t, wh, expiryMetric, float64(cert2.Cert.NotAfter.Unix()))
		// (The API server may still ride keep-alive connections opened before the swap;
		// step 3's new caBundle makes it open new ones, which must verify the new
		// certificate: with a bundle that lacks CA 2 they fail.)
		admissions("ca1-and-ca2")

		// 3. The old CA leaves the caBundle: the API server now trusts only CA 2, so every
		// call it makes verifies the new certificate.
		updateWebhookConfig(t, cp, "netpol-guard-certdir", func(w *admissionregistrationv1.ValidatingWebhook) {
			w.ClientConfig.CABundle = ca2.CertPEM
			w.NamespaceSelector = harness.OnlyNamespaces(ns, ns+"-m2")
		})
		if err := wh.WaitCalled(ctx, cp, ns+"-m2", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		admissions("ca2")

		// A client that trusts only the old CA is refused now: the old certificate is gone.
		wh.Trust(trust1, guardDNSName)
		if _, err := wh.PeerCertificate(ctx); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("a client trusting only CA 1: %v; want an unknown authority", err)
		}
		if !wh.Running() || wh.PID() != pid {
			t.Errorf("the webhook restarted: pid %d, then %d (running %v)", pid, wh.PID(), wh.Running())
		}
	})
}

// startServing starts the binary on the Service's port with serving options srv, reached at
// the ClusterIP, stops it when the (sub)test ends and dumps its log if it failed.
func startServing(t *testing.T, cp *harness.ControlPlane, name string, srv harness.ServingOptions) *harness.Webhook {
	t.Helper()
	srv.Port, srv.Host = 443, guardServiceIP
	wh, err := harness.StartWebhookServing(t.Context(), cp, harness.WebhookOptions{Name: name, Mode: "warn"}, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of webhook %s ---\n%s", wh.Name, wh.Logs())
		}
		if err := wh.Stop(); err != nil {
			t.Errorf("stopping webhook %s: %v", wh.Name, err)
		}
	})
	return wh
}

// registerServiceWebhook registers the webhook by the netpol-guard Service, port 443, until
// the (sub)test ends.
func registerServiceWebhook(t *testing.T, cp *harness.ControlPlane, opts harness.ServiceWebhookOptions) {
	t.Helper()
	opts.Namespace, opts.Service, opts.Port = harness.GuardNamespace, guardService, 443
	if err := harness.RegisterService(t.Context(), cp, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: opts.Name}}
		if err := cp.Client.Delete(context.Background(), vwc); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting ValidatingWebhookConfiguration %s: %v", opts.Name, err)
		}
	})
}

// updateWebhookConfig changes the configuration's (only) webhook, retrying on conflicts
// with the webhook's own patches.
func updateWebhookConfig(t *testing.T, cp *harness.ControlPlane, name string, change func(*admissionregistrationv1.ValidatingWebhook)) {
	t.Helper()
	for range 5 {
		var vwc admissionregistrationv1.ValidatingWebhookConfiguration
		if err := cp.Client.Get(t.Context(), client.ObjectKey{Name: name}, &vwc); err != nil {
			t.Fatal(err)
		}
		change(&vwc.Webhooks[0])
		err := cp.Client.Update(t.Context(), &vwc)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatalf("updating ValidatingWebhookConfiguration %s: %v", name, err)
		}
	}
	t.Fatalf("updating ValidatingWebhookConfiguration %s: conflicts kept coming", name)
}

func caBundle(t *testing.T, cp *harness.ControlPlane, name string) []byte {
	t.Helper()
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := cp.Client.Get(t.Context(), client.ObjectKey{Name: name}, &vwc); err != nil {
		t.Fatal(err)
	}
	return vwc.Webhooks[0].ClientConfig.CABundle
}

// pushScenarioFlows pushes scenario i's flows into ns as the agent would.
func pushScenarioFlows(t *testing.T, wh *harness.Webhook, token, ns string, i int) {
	t.Helper()
	recs := scenarioFlows(ns, i, time.Now())
	body, err := harness.EncodeFlows(recs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := wh.PushFlows(t.Context(), token, body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.Accepted != len(recs) || res.Unresolved != 0 {
		t.Fatalf("push: %d %s; want 200 with %d accepted", res.Status, res.Body, len(recs))
	}
}

// quietPolicy isolates pods that do not exist: it cuts nothing.
func quietPolicy(ns, name string) *networkingv1.NetworkPolicy {
	p := denyIngress(ns, name, nil)
	p.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "batch"}}
	return p
}

func issue(t *testing.T, caName string, validity time.Duration, names []string) (*harness.CA, *harness.Issued) {
	t.Helper()
	ca, err := harness.NewCA(caName)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(validity, names)
	if err != nil {
		t.Fatal(err)
	}
	return ca, cert
}

// tlsSecretData is what cert-manager writes into a kubernetes.io/tls Secret.
func tlsSecretData(cert *harness.Issued, ca *harness.CA) map[string][]byte {
	return map[string][]byte{"tls.crt": cert.CertPEM, "tls.key": cert.KeyPEM, "ca.crt": ca.CertPEM}
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("no PEM block in %q", data)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantMetric(t *testing.T, wh *harness.Webhook, name string, want float64) {
	t.Helper()
	got, err := wh.Metric(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// skipOrFailCI skips the test, or fails it where CI is set, where every e2e test must run.
func skipOrFailCI(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why + " (CI is set: the test must run there)")
	}
	t.Skip(why)
}
