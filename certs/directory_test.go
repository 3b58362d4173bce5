package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
)

const testServerName = "netpol-guard.netpol-guard.svc"

var testDNSNames = []string{"netpol-guard", "netpol-guard.netpol-guard", testServerName, testServerName + ".cluster.local"}

// testPKI issues pairs the way cert-manager would: a CA and serving certificates it signs.
type testPKI struct {
	t  *testing.T
	ca *keyPair
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := newCA(time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, ca: ca}
}

func (p *testPKI) issue() *keyPair {
	p.t.Helper()
	s, err := newServing(p.ca, testDNSNames, time.Now(), time.Hour)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

// files is the volume content cert-manager's Secret gives.
func (p *testPKI) files(s *keyPair) map[string][]byte {
	return map[string][]byte{keyTLSCert: s.CertPEM, keyTLSKey: s.KeyPEM, keyCACert: p.ca.CertPEM}
}

func startDirectory(t *testing.T, d *Directory) {
	t.Helper()
	d.Log = testr.New(t)
	done := make(chan error, 1)
	go func() { done <- d.Start(t.Context()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("Directory.Start: %v", err)
		}
	})
}

// serving is what d serves now, or nil.
func serving(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *x509.Certificate {
	c, err := get(&tls.ClientHelloInfo{})
	if err != nil || c == nil {
		return nil
	}
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	return leaf
}

func waitServing(t *testing.T, get func(*tls.ClientHelloInfo) (*tls.Certificate, error), want *x509.Certificate) {
	t.Helper()
	testutil.EventuallyNoError(t, 10*time.Second, "serving the new certificate", func() error {
		if got := serving(get); got == nil || !got.Equal(want) {
			return fmt.Errorf("serving %v, want serial %v", describe(got), want.SerialNumber)
		}
		return nil
	})
}

func describe(c *x509.Certificate) string {
	if c == nil {
		return "nothing"
	}
	return "serial " + c.SerialNumber.String()
}

func TestDirectoryWaitsForFilesThenServesThem(t *testing.T) {
	pki := newTestPKI(t)
	vol := newKubeletVolume(t)
	d := &Directory{Dir: vol.dir, PollInterval: time.Hour}
	startDirectory(t, d)

	if err := d.Ready(); err == nil {
		t.Fatal("Ready with an empty directory")
	}
	if _, err := d.GetCertificate(&tls.ClientHelloInfo{}); err == nil {
		t.Fatal("GetCertificate succeeded with an empty directory")
	}
	if !d.NotAfter().IsZero() {
		t.Fatalf("NotAfter = %v with nothing loaded", d.NotAfter())
	}

	first := pki.issue()
	vol.write(pki.files(first))
	testutil.EventuallyNoError(t, 10*time.Second, "ready", d.Ready)
	waitServing(t, d.GetCertificate, first.Cert)
	if !d.NotAfter().Equal(first.Cert.NotAfter) {
		t.Errorf("NotAfter = %v, want %v", d.NotAfter(), first.Cert.NotAfter)
	}
}

// The poll interval is an hour: only the reaction to the kubelet's ..data swap can pick the
// new pairs up within the deadline. Clients make a fresh verified handshake per request
// throughout, and none may fail.
func TestDirectoryFollowsKubeletSymlinkSwapWithoutDroppingRequests(t *testing.T) {
	pki := newTestPKI(t)
	vol := newKubeletVolume(t)
	first := pki.issue()
	vol.write(pki.files(first))

	d := &Directory{Dir: vol.dir, PollInterval: time.Hour}
	startDirectory(t, d)
	testutil.EventuallyNoError(t, 10*time.Second, "ready", d.Ready)
	addr := serveTLS(t, d.GetCertificate)

	// Clients trust the first CA and, from the third rotation on, a second one.
	nextPKI := newTestPKI(t)
	roots := x509.NewCertPool()
	roots.AddCert(pki.ca.Cert)
	roots.AddCert(nextPKI.ca.Cert)
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: testServerName, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("https://" + addr + "/")
				if err == nil {
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				ok.Add(1)
			}
		})
	}

	for i := range 5 {
		if i == 2 {
			pki = nextPKI
		}
		next := pki.issue()
		vol.write(pki.files(next))
		waitServing(t, d.GetCertificate, next.Cert)
		got, err := handshake(addr, roots, testServerName, time.Now)
		if err != nil {
			t.Fatalf("rotation %d: handshake: %v", i, err)
		}
		if !got.Equal(next.Cert) {
			t.Fatalf("rotation %d: handshake got %s, want %s", i, describe(got), describe(next.Cert))
		}
		if !d.NotAfter().Equal(next.Cert.NotAfter) {
			t.Errorf("rotation %d: NotAfter = %v, want %v", i, d.NotAfter(), next.Cert.NotAfter)
		}
		// Let some requests through on this certificate before the next swap.
		base := ok.Load()
		testutil.EventuallyNoError(t, 10*time.Second, "requests served", func() error {
			if n := ok.Load() - base; n < 10 {
				return fmt.Errorf("%d requests", n)
			}
			return nil
		})
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed across rotations, first: %v", failed.Load(), failed.Load()+ok.Load(), *firstErr.Load())
	}
	if ok.Load() == 0 {
		t.Error("no request was made during the rotations")
	}
	t.Logf("%d requests served across 5 rotations", ok.Load())
}

func TestDirectoryKeepsServingThePreviousPairWhenTheNewOneDoesNotMatch(t *testing.T) {
	pki := newTestPKI(t)
	vol := newKubeletVolume(t)
	first := pki.issue()
	vol.write(pki.files(first))
	d := &Directory{Dir: vol.dir, PollInterval: time.Hour}
	startDirectory(t, d)
	waitServing(t, d.GetCertificate, first.Cert)

	// A certificate with the previous key: the pair does not match and must not be served.
	broken := pki.issue()
	vol.write(map[string][]byte{keyTLSCert: broken.CertPEM, keyTLSKey: first.KeyPEM, keyCACert: pki.ca.CertPEM})
	good := pki.issue()
	vol.write(pki.files(good))
	testutil.EventuallyNoError(t, 10*time.Second, "serving the good pair", func() error {
		got := serving(d.GetCertificate)
		switch {
		case got.Equal(broken.Cert):
			t.Fatal("served a certificate whose key does not match")
		case !got.Equal(good.Cert):
			return fmt.Errorf("serving %s", describe(got))
		}
		return nil
	})
	if err := d.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func TestDirectoryReloadsFilesReplacedInPlace(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	first := pki.issue()
	if err := writeFiles(dir, pki.files(first)); err != nil {
		t.Fatal(err)
	}
	d := &Directory{Dir: dir, PollInterval: time.Hour}
	startDirectory(t, d)
	waitServing(t, d.GetCertificate, first.Cert)

	next := pki.issue()
	if err := writeFiles(dir, pki.files(next)); err != nil {
		t.Fatal(err)
	}
	waitServing(t, d.GetCertificate, next.Cert)
}

func TestDirectoryIsNotReadyOnceTheCertificateExpired(t *testing.T) {
	pki := newTestPKI(t)
	vol := newKubeletVolume(t)
	first := pki.issue()
	vol.write(pki.files(first))
	clock := newFakeClock()
	d := &Directory{Dir: vol.dir, Now: clock.Now}
	startDirectory(t, d)
	testutil.EventuallyNoError(t, 10*time.Second, "ready", d.Ready)

	clock.SetTime(first.Cert.NotAfter)
	if err := d.Ready(); err == nil {
		t.Error("Ready with an expired certificate")
	}
}
