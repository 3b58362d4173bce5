package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	clocktesting "k8s.io/utils/clock/testing"
	"net"
	"net/http"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
// newFakeClock is a clock tests set and step, starting now.
func newFakeClock() *clocktesting.FakeClock { return clocktesting.NewFakeClock(time.Now()) }

// serveTLS serves HTTPS on a loopback port with getCert and returns its address.
func serveTLS(t *testing.T, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// handshake makes a real TLS handshake with addr, verifying the server against roots for
// serverName at the time now gives, and returns the server's certificate.
func handshake(addr string, roots *x509.CertPool, serverName string, now func() time.Time) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: serverName, Time: now, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	peers := conn.ConnectionState().PeerCertificates
	if len(peers) == 0 {
		return nil, errors.New("no peer certificate")
	}
	return peers[0], nil
}

func poolOf(pemData []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	return pool
}
