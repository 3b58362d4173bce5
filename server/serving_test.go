package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/netpol-guard/netpol-guard/e2e/harness"
)

// clientCert issues a client certificate for commonName from a fresh CA; it returns the
// certificate and the CA's pool.
func clientCert(t *testing.T, commonName string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: commonName}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// startHTTPS runs an httpsServer with a serving certificate for 127.0.0.1 until the test
// ends; it returns its base URL and the pool that trusts it.
func startHTTPS(t *testing.T, s *httpsServer) (string, *x509.CertPool) {
	t.Helper()
	ca, err := harness.NewCA("serving test")
	if err != nil {
		t.Fatal(err)
	}
	issued, err := ca.Issue(time.Hour, []string{"localhost"}, net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(issued.CertPEM, issued.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s.host, s.port = "127.0.0.1", freePorts(t, 1)[0]
	s.tlsOpts = append([]func(*tls.Config){func(c *tls.Config) { c.Certificates = []tls.Certificate{pair} }}, s.tlsOpts...)
	if s.mux == nil {
		s.mux = http.NewServeMux()
	}
	if s.shutdownTimeout == 0 {
		s.shutdownTimeout = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for s.StartedChecker()(nil) != nil {
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return fmt.Sprintf("https://127.0.0.1:%d", s.port), roots
}

func TestServerAnswersAdmissionReviewsOnlyForTheAPIServersCertificate(t *testing.T) {
	apiserver, pool := clientCert(t, "kube-apiserver")
	other, _ := clientCert(t, "kube-apiserver") // same name, another CA
	s := &httpsServer{tlsOpts: []func(*tls.Config){verifyClientCertIfGiven(pool)}}
	s.mux = http.NewServeMux()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	refused := 0
	s.Register("/validate", requireClientCert([]string{"kube-apiserver"}, func() { refused++ }, ok))
	s.Register("/open", requireClientCert(nil, nil, ok))
	s.Register("/v1/flows", ok)
	base, roots := startHTTPS(t, s)

	get := func(cert *tls.Certificate, path string) (int, error) {
		tc := &tls.Config{RootCAs: roots}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := c.Post(base+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, tt := range []struct {
		name string
		cert *tls.Certificate
		path string
		want int
	}{
		{"no certificate, admission path", nil, "/validate", 403},
		{"no certificate, flow API", nil, "/v1/flows", 200},
		{"the API server's certificate", &apiserver, "/validate", 200},
		{"a certificate of the CA, any name allowed", &apiserver, "/open", 200},
	} {
		if got, err := get(tt.cert, tt.path); err != nil || got != tt.want {
			t.Errorf("%s: %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
	if _, err := get(&other, "/validate"); err == nil {
		t.Error("a certificate another CA signed was accepted at the handshake")
	}
	if refused != 1 {
		t.Errorf("refused counted %d, want 1", refused)
	}

	// A name the CA signed but not allowed.
	wrongName := &httpsServer{tlsOpts: []func(*tls.Config){verifyClientCertIfGiven(pool)}}
	wrongName.mux = http.NewServeMux()
	wrongName.Register("/validate", requireClientCert([]string{"someone-else"}, nil, ok))
	base, roots = startHTTPS(t, wrongName)
	if got, err := get(&apiserver, "/validate"); err != nil || got != 403 {
		t.Errorf("a common name not allowed: %d, %v; want 403", got, err)
	}
}

func TestServerDropsABodyThatNeverArrivesButNotALongResponse(t *testing.T) {
	s := &httpsServer{readHeaderTimeout: time.Second, readTimeout: 300 * time.Millisecond}
	s.mux = http.NewServeMux()
	s.Register("/push", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		io.WriteString(w, "read")
	}))
	s.Register("/export", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Longer than the read timeout: the request's context must stay alive.
		select {
		case <-time.After(800 * time.Millisecond):
			io.WriteString(w, "exported")
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
		}
	}))
	base, roots := startHTTPS(t, s)

	// A body that never arrives: header promises 100 bytes, 1 is sent.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	reply, _ := io.ReadAll(conn)
	if !strings.Contains(string(reply), "408") && len(reply) != 0 || time.Since(start) > 3*time.Second {
		t.Errorf("a stalled body held the connection %s and got %q", time.Since(start), reply)
	}

	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := c.Get(base + "/export")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "exported" {
		t.Errorf("a response longer than the read timeout: %d %q", resp.StatusCode, b)
	}
	resp, err = c.Post(base+"/push", "text/plain", strings.NewReader("flows"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "read" {
		t.Errorf("a body that arrives: %d %q", resp.StatusCode, b)
	}
}

func TestServerCapsOpenConnections(t *testing.T) {
	s := &httpsServer{maxConns: 2, readHeaderTimeout: 5 * time.Second}
	s.mux = http.NewServeMux()
	s.Register("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	base, roots := startHTTPS(t, s)
	addr := strings.TrimPrefix(base, "https://")
	// The StartedChecker's dial has closed; hold the two allowed connections open.
	var held []*tls.Conn
	for range 2 {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	third, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	tc := tls.Client(third, &tls.Config{RootCAs: roots})
	tc.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if err := tc.Handshake(); err == nil {
		t.Fatal("a third connection was served past a cap of 2")
	}
	// Freed slots go to the waiting connection first, then to a new one.
	third.Close()
	held[0].Close()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := c.Get(base + "/")
	if err != nil {
		t.Fatalf("after one connection closed: %v", err)
	}
	resp.Body.Close()
}
