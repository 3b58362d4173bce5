package follow

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSOptions are the TLS settings of a flow stream. Files are read again at each connection
// attempt, so certificates rotated in a mounted Secret are picked up on the next reconnect.
type TLSOptions struct {
	// CAFiles are PEM bundles of the CAs that sign the server's certificate; empty trusts
	// the system roots.
	CAFiles []string
	// CertFile and KeyFile are a PEM client certificate and key for mutual TLS; both or
	// neither.
	CertFile, KeyFile string
	// ServerName overrides the name the server's certificate is checked against. Empty: the
	// host of the address.
	ServerName string
}

// Config builds the client's tls.Config; server names the server in errors ("Goldmane").
func (o *TLSOptions) Config(server string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if len(o.CAFiles) > 0 {
		pool := x509.NewCertPool()
		for _, f := range o.CAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading %s CA: %w", server, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("reading %s CA %s: no PEM certificate found", server, f)
			}
		}
		cfg.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading %s client certificate: %w", server, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, errors.New(server + " client certificate: both a certificate and a key file are needed")
	}
	return cfg, nil
}

// ClientCert says whether a client certificate is configured.
func (o *TLSOptions) ClientCert() bool { return o != nil && o.CertFile != "" && o.KeyFile != "" }
