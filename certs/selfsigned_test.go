package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const testSecretName = "netpol-guard-tls"

func newSelfSigned(t *testing.T, cs kubernetes.Interface, ns, vwc string, tweaks ...func(*SelfSigned)) *SelfSigned {
	s := &SelfSigned{
		Client:            cs,
		Namespace:         ns,
		SecretName:        testSecretName,
		ServiceName:       "netpol-guard",
		WebhookConfigName: vwc,
		Log:               testr.New(t),
	}
	for _, tweak := range tweaks {
		tweak(s)
	}
	return s
}

func startSelfSigned(t *testing.T, s *SelfSigned) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Start(t.Context()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("SelfSigned.Start: %v", err)
		}
	})
}

func serverName(s *SelfSigned) string { return s.DNSNames()[2] }

func getSecret(t *testing.T, cs kubernetes.Interface, ns string) *corev1.Secret {
	t.Helper()
	sec, err := cs.CoreV1().Secrets(ns).Get(t.Context(), testSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func getWebhookConfig(t *testing.T, cs kubernetes.Interface, name string) *admissionregistrationv1.ValidatingWebhookConfiguration {
	t.Helper()
	vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return vwc
}

// published returns the caBundle every webhook of the configuration holds, or an error if
// they differ.
func published(t *testing.T, cs kubernetes.Interface, name string) ([]byte, error) {
	t.Helper()
	vwc := getWebhookConfig(t, cs, name)
	bundle := vwc.Webhooks[0].ClientConfig.CABundle
	for _, wh := range vwc.Webhooks {
		if !bytes.Equal(wh.ClientConfig.CABundle, bundle) {
			return nil, fmt.Errorf("webhook %s holds another caBundle", wh.Name)
		}
	}
	return bundle, nil
}

// inStep checks that replicas serve what the Secret holds and that the webhook
// configuration's caBundle is the Secret's ca.crt, and returns the served certificate.
func inStep(t *testing.T, cs kubernetes.Interface, ns, vwc string, replicas ...*SelfSigned) (*x509.Certificate, error) {
	t.Helper()
	sec, err := cs.CoreV1().Secrets(ns).Get(t.Context(), testSecretName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	m := materialFromSecret(sec.Data)
	if m.Serving == nil {
		return nil, errors.New("the Secret holds no usable serving certificate")
	}
	for i, s := range replicas {
		if got := serving(s.GetCertificate); !got.Equal(m.Serving.Cert) {
			return nil, fmt.Errorf("replica %d serves %s, the Secret holds %s", i, describe(got), describe(m.Serving.Cert))
		}
		if err := s.Ready(); err != nil {
			return nil, fmt.Errorf("replica %d: %w", i, err)
		}
	}
	bundle, err := published(t, cs, vwc)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(bundle, sec.Data[keyCACert]) {
		return nil, errors.New("the caBundle is not the Secret's ca.crt")
	}
	return m.Serving.Cert, nil
}

// The replica runs as a user that holds only the RBAC the chart grants (chartRBAC).
func TestSelfSignedBootstrapsSecretAndInjectsCABundle(t *testing.T) {
	cs := apiServer(t)
	ns, vwc := newNamespace(t, cs), newWebhookConfig(t, cs)
	certDir := filepath.Join(t.TempDir(), "certs")
	restricted := clientWithChartRBAC(t, cs, ns, testSecretName, vwc)
	s := newSelfSigned(t, restricted, ns, vwc, func(s *SelfSigned) { s.CertDir = certDir })
	if err := s.Ready(); err == nil {
		t.Fatal("ready before start")
	}
	startSelfSigned(t, s)

	var cert *x509.Certificate
	testutil.EventuallyNoError(t, 30*time.Second, "bootstrap", func() (err error) {
		cert, err = inStep(t, cs, ns, vwc, s)
		return err
	})
	sec := getSecret(t, cs, ns)
	if sec.Type != corev1.SecretTypeTLS {
		t.Errorf("secret type %q", sec.Type)
	}
	for _, k := range []string{keyTLSCert, keyTLSKey, keyCACert, keyCAKey} {
		if len(sec.Data[k]) == 0 {
			t.Errorf("secret lacks %s", k)
		}
	}
	if !s.NotAfter().Equal(cert.NotAfter) {
		t.Errorf("NotAfter %v, want %v", s.NotAfter(), cert.NotAfter)
	}
	if got := time.Until(cert.NotAfter); got < 360*day || got > 366*day {
		t.Errorf("serving certificate valid for %v, want a year", got)
	}
	for _, k := range []string{keyTLSCert, keyTLSKey, keyCACert} {
		if b, err := os.ReadFile(filepath.Join(certDir, k)); err != nil || !bytes.Equal(b, sec.Data[k]) {
			t.Errorf("CertDir %s differs from the Secret (%v)", k, err)
		}
	}

	// A real handshake, for each name of the Service, trusting only the published caBundle.
	bundle, _ := published(t, cs, vwc)
	addr := serveTLS(t, s.GetCertificate)
	for _, name := range s.DNSNames() {
		if got, err := handshake(addr, poolOf(bundle), name, time.Now); err != nil || !got.Equal(cert) {
			t.Errorf("handshake as %s: %v", name, err)
		}
	}

	// A `helm upgrade` resets the caBundle: the watch restores it, long before the hourly check.
	reset := getWebhookConfig(t, cs, vwc)
	for i := range reset.Webhooks {
		reset.Webhooks[i].ClientConfig.CABundle = nil
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(t.Context(), reset, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyNoError(t, 15*time.Second, "caBundle restored", func() error {
		_, err := inStep(t, cs, ns, vwc, s)
		return err
	})
}

func TestSelfSignedReplicasShareOneSecretAndNeverFight(t *testing.T) {
	cs := apiServer(t)
	ns, vwc := newNamespace(t, cs), newWebhookConfig(t, cs)
	clock := newFakeClock()
	var replicas []*SelfSigned
	for range 3 {
		replicas = append(replicas, newSelfSigned(t, cs, ns, vwc, func(s *SelfSigned) {
			s.Now = clock.Now
			s.CheckInterval = 100 * time.Millisecond
		}))
	}
	var wg sync.WaitGroup
	for _, s := range replicas {
		wg.Go(func() { startSelfSigned(t, s) })
	}
	wg.Wait()

	var first *x509.Certificate
	testutil.EventuallyNoError(t, 30*time.Second, "replicas in step", func() (err error) {
		first, err = inStep(t, cs, ns, vwc, replicas...)
		return err
	})
	stable := func(what string) {
		t.Helper()
		// The replicas keep checking every 100ms; none of them writes again.
		rv := getSecret(t, cs, ns).ResourceVersion
		time.Sleep(time.Second)
		if now := getSecret(t, cs, ns).ResourceVersion; now != rv {
			t.Errorf("%s: the Secret was written again (resourceVersion %s → %s)", what, rv, now)
		}
	}
	stable("after bootstrap")

	// All replicas find the serving certificate due at once; one rewrites it, the others
	// accept the result.
	clock.SetTime(renewalTime(first, DefaultRotateBefore).Add(time.Minute))
	var next *x509.Certificate
	testutil.EventuallyNoError(t, 30*time.Second, "replicas in step after renewal", func() (err error) {
		if next, err = inStep(t, cs, ns, vwc, replicas...); err == nil && next.Equal(first) {
			err = errors.New("not renewed yet")
		}
		return err
	})
	stable("after renewal")
	bundle, _ := published(t, cs, vwc)
	for i, s := range replicas {
		addr := serveTLS(t, s.GetCertificate)
		if got, err := handshake(addr, poolOf(bundle), serverName(s), clock.Now); err != nil || !got.Equal(next) {
			t.Errorf("replica %d: handshake: %v", i, err)
		}
	}
}

func TestSelfSignedRenewsServingCertificateBeforeExpiry(t *testing.T) {
	cs := apiServer(t)
	ns, vwc := newNamespace(t, cs), newWebhookConfig(t, cs)
	clock := newFakeClock()
	s := newSelfSigned(t, cs, ns, vwc, func(s *SelfSigned) {
		s.Now = clock.Now
		s.CheckInterval = 100 * time.Millisecond
	})
	startSelfSigned(t, s)
	var first *x509.Certificate
	testutil.EventuallyNoError(t, 30*time.Second, "bootstrap", func() (err error) {
		first, err = inStep(t, cs, ns, vwc, s)
		return err
	})
	caBefore := getSecret(t, cs, ns).Data[keyCACert]

	// Just before RotateBefore nothing changes; just after, the certificate is renewed.
	clock.SetTime(first.NotAfter.Add(-DefaultRotateBefore - time.Minute))
	time.Sleep(500 * time.Millisecond)
	if got := serving(s.GetCertificate); !got.Equal(first) {
		t.Fatal("renewed before RotateBefore")
	}
	clock.SetTime(first.NotAfter.Add(-DefaultRotateBefore + time.Minute))
	var next *x509.Certificate
	testutil.EventuallyNoError(t, 30*time.Second, "renewed", func() (err error) {
		if next, err = inStep(t, cs, ns, vwc, s); err == nil && next.Equal(first) {
			err = errors.New("not renewed yet")
		}
		return err
	})
	if !bytes.Equal(getSecret(t, cs, ns).Data[keyCACert], caBefore) {
		t.Error("the CA changed with the serving certificate")
	}
	bundle, _ := published(t, cs, vwc)
	addr := serveTLS(t, s.GetCertificate)
	if got, err := handshake(addr, poolOf(bundle), serverName(s), clock.Now); err != nil || !got.Equal(next) {
		t.Errorf("handshake after renewal: %v", err)
	}
}

// Two replicas sync in turn while the clock runs 230 days in 12-hour steps through two CA
// rotations. At every step each replica's certificate passes a real handshake against the
// caBundle the API server holds, and the transitions happen in order.
func TestSelfSignedCARotationKeepsBothCAsBundled(t *testing.T) {
	cs := apiServer(t)
	ns, vwc := newNamespace(t, cs), newWebhookConfig(t, cs)
	clock := newFakeClock()
	var replicas []*SelfSigned
	var addrs []string
	for range 2 {
		s := newSelfSigned(t, cs, ns, vwc, func(s *SelfSigned) {
			s.Now = clock.Now
			s.CAValidity = 100 * day
			s.CertValidity = 30 * day
			s.RotateBefore = 10 * day
			s.CAPropagationDelay = time.Hour
		})
		if err := s.setDefaults(); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, s)
		addrs = append(addrs, serveTLS(t, s.GetCertificate))
	}
	syncAll := func() {
		t.Helper()
		for i, s := range replicas {
			if _, err := s.sync(t.Context()); err != nil {
				t.Fatalf("replica %d: sync at %v: %v", i, clock.Now(), err)
			}
		}
	}
	// check verifies every replica against the published bundle and says which CA signed
	// what they serve: 0 the newest, 1 the one before.
	check := func() (bundled, signer int) {
		t.Helper()
		bundle, err := published(t, cs, vwc)
		if err != nil {
			t.Fatal(err)
		}
		cas := parseCertificates(bundle)
		signer = -1
		for i, s := range replicas {
			got, err := handshake(addrs[i], poolOf(bundle), serverName(s), clock.Now)
			if err != nil {
				t.Fatalf("replica %d at %v: handshake against the published caBundle: %v", i, clock.Now(), err)
			}
			for j, ca := range cas {
				if signedBy(got, ca) {
					if signer != -1 && signer != j {
						t.Fatalf("replicas serve certificates of different CAs at %v", clock.Now())
					}
					signer = j
				}
			}
		}
		return len(cas), signer
	}

	var caRotations, waited, switched, dropped int
	prevBundled := 1
	for step := range 460 {
		syncAll()
		bundled, signer := check()
		switch {
		case bundled == 2 && prevBundled == 1:
			caRotations++
			if signer != 1 {
				t.Fatalf("step %d: the new CA was bundled and its certificate served at once", step)
			}
			// Within CAPropagationDelay the old certificate stays.
			clock.Step(time.Minute)
			syncAll()
			if _, signer := check(); signer != 1 {
				t.Fatalf("step %d: switched to the new CA before it propagated", step)
			}
			waited++
		case bundled == 2 && signer == 0 && prevBundled == 2:
			switched++
		case bundled == 1 && prevBundled == 2:
			dropped++
		}
		prevBundled = bundled
		clock.Step(12 * time.Hour)
	}
	t.Logf("CA rotations %d, waited for propagation %d, steps served by the new CA while both bundled %d, old CA dropped %d",
		caRotations, waited, switched, dropped)
	if caRotations < 2 || waited != caRotations || switched == 0 || dropped < 2 {
		t.Errorf("CA rotations %d, waited %d, switched steps %d, drops %d", caRotations, waited, switched, dropped)
	}
}

// The node agents dial the headless flows Service and verify the certificate for its name:
// ExtraDNSNames are in the certificate, and a change of them issues it again by the same CA.
// Without an API server: the names and the plan.
func TestSelfSignedExtraDNSNames(t *testing.T) {
	flows := []string{"netpol-guard-flows.netpol-guard.svc", "*.netpol-guard-flows.netpol-guard.svc"}
	s := &SelfSigned{ServiceName: "netpol-guard", Namespace: "netpol-guard", ExtraDNSNames: append(slices.Clone(flows), "", testServerName, flows[0])}
	want := append(slices.Clone(testDNSNames), flows...)
	if got := s.DNSNames(); !slices.Equal(got, want) {
		t.Fatalf("DNSNames %v, want %v (extras after the Service's names, no empties or repeats)", got, want)
	}
	p := policy{DNSNames: s.DNSNames(), CAValidity: 100 * day, CertValidity: 30 * day, RotateBefore: 10 * day}
	now := time.Now()
	boot := mustPlan(t, p, material{}, now, never)
	roots := poolOf(boot.Next.bundlePEM())
	for _, name := range []string{testServerName, flows[0], "10-244-0-7.netpol-guard-flows.netpol-guard.svc"} {
		if _, err := boot.Next.Serving.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: now}); err != nil {
			t.Errorf("certificate does not verify for %s: %v", name, err)
		}
	}
	if again := mustPlan(t, p, boot.Next, now.Add(day), never); again.Changed {
		t.Errorf("same names: changed (%v)", again.Reasons)
	}

	s.ExtraDNSNames = append(s.ExtraDNSNames, "netpol-guard-flows.netpol-guard.svc.cluster.local")
	p.DNSNames = s.DNSNames()
	d := mustPlan(t, p, boot.Next, now.Add(day), never)
	if !d.Changed || d.Next.Serving == boot.Next.Serving || d.Next.CA != boot.Next.CA || d.Waiting {
		t.Fatalf("name added: changed %v, reissued %v, same CA %v, waiting %v", d.Changed, d.Next.Serving != boot.Next.Serving, d.Next.CA == boot.Next.CA, d.Waiting)
	}
	if !slices.Contains(d.Next.Serving.Cert.DNSNames, "netpol-guard-flows.netpol-guard.svc.cluster.local") {
		t.Errorf("reissued certificate names %v", d.Next.Serving.Cert.DNSNames)
	}
}

// The same on a real API server: the Secret's certificate carries the extra names, passes a
// handshake for them against the published caBundle, and is reissued (same CA, caBundle
// unchanged) when a replica with one more name syncs, as after a `helm upgrade`.
func TestSelfSignedExtraDNSNamesReissueOnChange(t *testing.T) {
	cs := apiServer(t)
	ns, vwc := newNamespace(t, cs), newWebhookConfig(t, cs)
	flows := []string{"netpol-guard-flows." + ns + ".svc", "*.netpol-guard-flows." + ns + ".svc"}
	replica := func(extra ...string) *SelfSigned {
		s := newSelfSigned(t, cs, ns, vwc, func(s *SelfSigned) { s.ExtraDNSNames = extra })
		if err := s.setDefaults(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	check := func(s *SelfSigned, names ...string) *x509.Certificate {
		t.Helper()
		cert, err := inStep(t, cs, ns, vwc, s)
		if err != nil {
			t.Fatal(err)
		}
		if !sameNames(cert.DNSNames, s.DNSNames()) {
			t.Errorf("certificate names %v, want %v", cert.DNSNames, s.DNSNames())
		}
		bundle, _ := published(t, cs, vwc)
		addr := serveTLS(t, s.GetCertificate)
		for _, name := range names {
			if got, err := handshake(addr, poolOf(bundle), name, time.Now); err != nil || !got.Equal(cert) {
				t.Errorf("handshake as %s: %v", name, err)
			}
		}
		return cert
	}

	first := check(replica(flows...), "netpol-guard."+ns+".svc", flows[0], "10-244-1-5.netpol-guard-flows."+ns+".svc")
	caBefore := getSecret(t, cs, ns).Data[keyCACert]
	more := "netpol-guard-flows." + ns + ".svc.cluster.local"
	next := check(replica(append(slices.Clone(flows), more)...), more, flows[0])
	if next.Equal(first) {
		t.Error("a new DNS name did not reissue the certificate")
	}
	if !bytes.Equal(getSecret(t, cs, ns).Data[keyCACert], caBefore) {
		t.Error("a new DNS name changed the CA")
	}
}
