package certs

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"
)

// Source is a serving certificate that keeps itself current: Directory or SelfSigned.
// Add it to the manager (it runs on every replica), hand GetCertificate to the webhook
// server with TLSOption, and gate readiness on Ready with Checker.
type Source interface {
	// Start keeps the certificate current until ctx is done.
	Start(ctx context.Context) error
	// GetCertificate returns the certificate to serve; it fails until one is loaded.
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Ready fails until a valid certificate is loaded (and, for SelfSigned, its CA is
	// published to the webhook configuration).
	Ready() error
	// NotAfter is when the certificate being served expires; zero until one is loaded.
	NotAfter() time.Time
	// NeedLeaderElection is false: every replica serves.
	NeedLeaderElection() bool
}

// TLSOption sets src as the certificate of a tls.Config; for controller-runtime's webhook
// server Options.TLSOpts, where it also stops the server from watching a CertDir itself.
func TLSOption(src Source) func(*tls.Config) {
	return func(c *tls.Config) { c.GetCertificate = src.GetCertificate }
}

// Checker is src's Ready as a controller-runtime healthz.Checker.
func Checker(src Source) func(*http.Request) error {
	return func(*http.Request) error { return src.Ready() }
}
