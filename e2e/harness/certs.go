package harness

import (
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TestCA is a CA made for one run, and the serving certificate it signed for 127.0.0.1 and
// localhost.
type TestCA struct {
	// CertPEM is the CA certificate: the webhook configuration's caBundle, and what clients
	// of the webhook trust.
	CertPEM []byte
	// Pool holds the CA certificate.
	Pool *x509.CertPool
}

// WriteServingCerts makes a CA and a serving certificate for 127.0.0.1, ::1 and localhost,
// and writes the certificate and key to dir as tls.crt and tls.key (what cert-manager's
// Secret holds, and what netpol-guard webhook --cert-dir reads), and the CA as ca.crt.
func WriteServingCerts(dir string) (*TestCA, error) {
	ca, err := NewCA("netpol-guard e2e CA")
	if err != nil {
		return nil, err
	}
	serving, err := ca.Issue(24*time.Hour, []string{"localhost"}, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
	if err != nil {
		return nil, err
	}
	test := &TestCA{CertPEM: ca.CertPEM, Pool: x509.NewCertPool()}
	test.Pool.AddCert(ca.Cert)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{
		"tls.crt": serving.CertPEM,
		"tls.key": serving.KeyPEM,
		"ca.crt":  ca.CertPEM,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return test, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}
