package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/netutil"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// httpsServer serves admission reviews and the flow API on one port. It is
// controller-runtime's webhook server with the limits that one lacks: a cap on open
// connections, a deadline on reading each request's header and body, and an idle timeout,
// so a client that connects and sends nothing, or a body that never arrives, cannot hold a
// connection forever.
type httpsServer struct {
	host    string
	port    int
	tlsOpts []func(*tls.Config)
	// maxConns caps open connections; past it new ones wait in the listen backlog.
	maxConns int
	// readHeaderTimeout bounds the TLS handshake and a request's header; readTimeout a
	// request's body.
	readHeaderTimeout, readTimeout, idleTimeout time.Duration
	// shutdownTimeout bounds the drain of in-flight requests.
	shutdownTimeout time.Duration

	mux     *http.ServeMux
	mu      sync.Mutex
	started bool
}

var _ ctrlwebhook.Server = (*httpsServer)(nil)

func (s *httpsServer) NeedLeaderElection() bool             { return false }
func (s *httpsServer) WebhookMux() *http.ServeMux           { return s.mux }
func (s *httpsServer) Register(path string, h http.Handler) { s.mux.Handle(path, h) }

// Start serves until ctx ends, then drains in-flight requests.
func (s *httpsServer) Start(ctx context.Context) error {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, opt := range s.tlsOpts {
		opt(cfg)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.host, strconv.Itoa(s.port)))
	if err != nil {
		return err
	}
	if s.maxConns > 0 {
		ln = netutil.LimitListener(ln, s.maxConns)
	}
	// HTTP/1.1 only (see disableHTTP2): without this, ServeTLS would offer h2.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Protocols:         protocols,
		Handler:           bodyDeadline(s.mux, s.readTimeout),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: s.readHeaderTimeout,
		IdleTimeout:       s.idleTimeout,
		MaxHeaderBytes:    1 << 20,
		TLSConfig:         cfg,
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Error(err, "Draining the webhook server")
		}
	}()
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	log.Info("Serving HTTPS", "address", ln.Addr().String(), "maxConnections", s.maxConns)
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-drained
	return nil
}

// StartedChecker is healthy once the server accepts TLS connections.
func (s *httpsServer) StartedChecker() healthz.Checker {
	return func(*http.Request) error {
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if !started {
			return errors.New("webhook server not started yet")
		}
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(s.host, strconv.Itoa(s.port)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a liveness dial, not trust
		if err != nil {
			return fmt.Errorf("webhook server not reachable: %w", err)
		}
		return conn.Close()
	}
}

// bodyDeadline gives each request with a body d to deliver it. Not http.Server's
// ReadTimeout: that deadline stays armed while the handler runs, and when it passes during
// a long response (a flow export) the server cancels the request's context. This one is
// lifted once the body has been read.
func bodyDeadline(next http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(d)); err == nil {
				r.Body = &liftOnEOF{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// liftOnEOF calls lift once, when the body has been read to its end or closed.
type liftOnEOF struct {
	io.ReadCloser
	once sync.Once
	lift func()
}

func (b *liftOnEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.lift)
	}
	return n, err
}

func (b *liftOnEOF) Close() error {
	b.once.Do(b.lift)
	return b.ReadCloser.Close()
}

// clientCAs reads the PEM bundle that signs the API server's client certificate.
func clientCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}

// verifyClientCertIfGiven asks clients for a certificate and verifies any given against
// pool, without requiring one: the flow API on the same port authenticates node agents by
// bearer token. requireClientCert demands it where it matters.
func verifyClientCertIfGiven(pool *x509.CertPool) func(*tls.Config) {
	return func(c *tls.Config) {
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
}

// requireClientCert answers 403 to a request without a client certificate verified at the
// handshake, or whose common name is not in names (any name, when names is empty).
func requireClientCert(names []string, refused func(), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cn string
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			cn = r.TLS.VerifiedChains[0][0].Subject.CommonName
			if len(names) == 0 || slices.Contains(names, cn) {
				next.ServeHTTP(w, r)
				return
			}
		}
		if refused != nil {
			refused()
		}
		if l := log.V(1); l.Enabled() {
			l.Info("Refused an admission review from a client that is not the API server", "remoteAddr", r.RemoteAddr, "commonName", cn)
		}
		http.Error(w, "admission reviews are accepted only from the API server's client certificate", http.StatusForbidden)
	})
}
