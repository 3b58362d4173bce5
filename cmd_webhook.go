package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/netpol-guard/netpol-guard/certs"
	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/flowapi/tokenreview"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/flows/hubble"
	"github.com/netpol-guard/netpol-guard/webhook"
)

type webhookFlags struct {
	kubeconfig       string
	mode             string
	minHistory       time.Duration
	maxListed        int
	budget           time.Duration
	port             int
	certDir          string
	selfSigned       bool
	namespace        string
	serviceName      string
	extraDNSNames    stringList
	secretName       string
	webhookConfig    string
	window           time.Duration
	maxEdges         int
	snapshotPath     string
	snapshotInterval time.Duration
	writers          stringList
	readers          stringList
	maxPushBytes     int64
	ipGrace          time.Duration
	podCIDRs         stringList
	metricsAddr      string
	probeAddr        string
	shutdownDelay    time.Duration
	hubbleAddr       string
	hubbleCA         string
	hubbleCert       string
	hubbleKey        string
	hubbleServerName string
	tokenAudiences   stringList
	gracefulTimeout  time.Duration
	profiling        bool
	zap              zap.Options
}

// stringList is a repeatable (and comma-separated) flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

func webhookCommand(args []string, stderr io.Writer) int {
	var f webhookFlags
	fs := newFlagSet("webhook", "netpol-guard webhook [flags]\n\nServe the validating admission webhook for NetworkPolicies, the flow push/export API, metrics and health probes.", stderr)
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; in-cluster config when empty")
	fs.StringVar(&f.mode, "mode", string(webhook.Warn), "global mode: enforce, warn, audit or off (a namespace label or policy annotation netpol-guard.io/mode overrides it)")
	fs.DurationVar(&f.minHistory, "min-history", time.Hour, "flow history needed before enforce rejects; with less, enforce warns instead")
	fs.IntVar(&f.maxListed, "max-listed", 5, "cut flows listed in a rejection (warnings list as many, plus two)")
	fs.DurationVar(&f.budget, "decision-budget", 3*time.Second, "longest an evaluation may take when the API server sends no timeout; past it the change is admitted with a warning")
	fs.IntVar(&f.port, "port", 9443, "HTTPS port for admission reviews and the flow API")
	fs.StringVar(&f.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key (a mounted cert-manager Secret), reloaded on rotation")
	fs.BoolVar(&f.selfSigned, "self-signed", false, "bootstrap a CA and serving certificate, kept in --secret-name and injected into --webhook-config's caBundle, instead of --cert-dir")
	fs.StringVar(&f.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace netpol-guard runs in (default $POD_NAMESPACE)")
	fs.StringVar(&f.serviceName, "service-name", "netpol-guard", "the webhook Service, for the self-signed certificate's DNS names")
	fs.Var(&f.extraDNSNames, "extra-dns-name", "with --self-signed, one more DNS name for the certificate (repeatable, or comma-separated), e.g. the headless Service the node agents dial")
	fs.StringVar(&f.secretName, "secret-name", "netpol-guard-tls", "Secret holding the self-signed CA and certificate")
	fs.StringVar(&f.webhookConfig, "webhook-config", "netpol-guard", "ValidatingWebhookConfiguration whose caBundle --self-signed keeps in step")
	fs.DurationVar(&f.window, "cache-window", flows.DefaultWindow, "how long a flow is remembered after it was last seen")
	fs.IntVar(&f.maxEdges, "cache-max-edges", flows.DefaultMaxEdges, "flow cache cap in edges; past it the least recently seen go first")
	fs.StringVar(&f.snapshotPath, "snapshot-path", "", "file the flow cache is snapshotted to and restored from; empty: no snapshots")
	fs.DurationVar(&f.snapshotInterval, "snapshot-interval", time.Minute, "how often the flow cache is snapshotted (and expired)")
	fs.Var(&f.writers, "flow-writers", "users allowed to push flows (repeatable), e.g. system:serviceaccount:netpol-guard:netpol-guard-agent")
	fs.Var(&f.readers, "flow-readers", "users allowed to export flows, besides the writers (repeatable)")
	fs.Var(&f.tokenAudiences, "token-audience", "audience the pushers' tokens must carry (repeatable); empty: the API server's default")
	fs.Int64Var(&f.maxPushBytes, "max-push-bytes", 8<<20, "largest flow push body, before and after decompression")
	fs.DurationVar(&f.ipGrace, "ip-grace", 5*time.Minute, "how long a deleted pod's IP still resolves to its workload, for late flows")
	fs.Var(&f.podCIDRs, "pod-cidr", "cluster pod CIDR (repeatable); addresses inside it that match no pod are unresolved, not external. Nodes' spec.podCIDRs are added")
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.DurationVar(&f.shutdownDelay, "shutdown-delay", 5*time.Second, "on SIGTERM, report not ready and keep serving this long before draining, so no new admissions arrive")
	fs.DurationVar(&f.gracefulTimeout, "graceful-timeout", 30*time.Second, "longest the shutdown waits for in-flight requests and the last snapshot")
	fs.StringVar(&f.hubbleAddr, "hubble-relay-address", "", "Hubble Relay address (host:port) to follow for flows; empty: no Hubble")
	fs.StringVar(&f.hubbleCA, "hubble-tls-ca", "", "CA file for Hubble Relay's TLS; empty with no other TLS flag: plaintext")
	fs.StringVar(&f.hubbleCert, "hubble-tls-cert", "", "client certificate for mTLS to Hubble Relay")
	fs.StringVar(&f.hubbleKey, "hubble-tls-key", "", "client key for mTLS to Hubble Relay")
	fs.StringVar(&f.hubbleServerName, "hubble-tls-server-name", "", "server name to verify Hubble Relay's certificate against")
	fs.BoolVar(&f.profiling, "profiling", false, "serve Go's pprof profiles under /debug/pprof/ on the metrics address")
	f.zap.BindFlags(fs)
	if code, done := parse(fs, args); done {
		return code
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
	log := ctrl.Log.WithName("main")
	if err := serveWebhook(f); err != nil {
		log.Error(err, "Webhook stopped")
		return 1
	}
	return 0
}

func serveWebhook(f webhookFlags) error {
	log := ctrl.Log.WithName("main")
	mode, err := webhook.ParseMode(f.mode)
	if err != nil {
		return fmt.Errorf("--mode: %w", err)
	}
	if f.selfSigned && f.namespace == "" {
		return errors.New("--self-signed needs --namespace (or $POD_NAMESPACE)")
	}
	if f.kubeconfig != "" {
		os.Setenv("KUBECONFIG", f.kubeconfig)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client config: %w", err)
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	// Serving certificates: a watched directory (cert-manager's Secret, mounted), or
	// self-signed and shared by the replicas through one Secret.
	var tlsSource certs.Source
	if f.selfSigned {
		tlsSource = &certs.SelfSigned{
			Client: clientset, Namespace: f.namespace, SecretName: f.secretName,
			ServiceName: f.serviceName, ExtraDNSNames: f.extraDNSNames, WebhookConfigName: f.webhookConfig, Log: ctrl.Log.WithName("certs"),
		}
	} else {
		tlsSource = &certs.Directory{Dir: f.certDir, Log: ctrl.Log.WithName("certs")}
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	graceful := f.gracefulTimeout
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: f.metricsAddr, ExtraHandlers: profilingHandlers(f.profiling)},
		HealthProbeBindAddress:  f.probeAddr,
		GracefulShutdownTimeout: &graceful,
		Cache:                   cluster.CacheOptions(),
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Port:    f.port,
			TLSOpts: []func(*tls.Config){certs.TLSOption(tlsSource), disableHTTP2},
		}),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.Add(tlsSource); err != nil {
		return err
	}

	var podCIDRs []netip.Prefix
	for _, c := range f.podCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return fmt.Errorf("--pod-cidr %q: %w", c, err)
		}
		podCIDRs = append(podCIDRs, p)
	}
	live, err := cluster.NewLive(mgr.GetCache(), cluster.LiveOptions{IPGrace: f.ipGrace, PodCIDRs: podCIDRs})
	if err != nil {
		return err
	}
	cache := flows.New(flows.Options{Window: f.window, MaxEdges: f.maxEdges})
	snap := &flows.Snapshotter{Cache: cache, Path: f.snapshotPath, Interval: f.snapshotInterval, Log: ctrl.Log.WithName("flows"), Loaded: make(chan struct{})}
	snap.Restore()
	if err := mgr.Add(snap); err != nil {
		return err
	}

	flows.RegisterMetrics(metrics.Registry, cache, time.Now)
	guard := webhook.NewGuard(webhook.Options{
		Cache: cache, View: live, Mode: mode, MinHistory: f.minHistory, MaxListed: f.maxListed, Budget: f.budget,
		Recorder: mgr.GetEventRecorder("netpol-guard"),
		Metrics:  webhook.NewMetrics(metrics.Registry),
	})
	metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "netpol_guard_serving_certificate_expiry_timestamp_seconds",
		Help: "When the webhook's serving certificate expires (Unix time); 0 until one is loaded.",
	}, func() float64 {
		if t := tlsSource.NotAfter(); !t.IsZero() {
			return float64(t.Unix())
		}
		return 0
	}))
	server := mgr.GetWebhookServer()
	server.Register(webhook.ValidatePath, &admission.Webhook{Handler: guard, WithContextFunc: deadlineFromTimeout})
	auth := flowapi.NewCachingAuthenticator(&tokenreview.Authenticator{Client: clientset, Audiences: f.tokenAudiences}, flowapi.AuthCacheOptions{})
	server.Register(flowapi.FlowsPath, flowapi.NewHandler(flowapi.HandlerOptions{
		Cache: cache, Resolver: live, Authenticator: auth, Writers: f.writers, Readers: f.readers,
		MaxBodyBytes: f.maxPushBytes, NodeAddress: live.NodeAddress,
		Metrics: flowapi.NewMetrics(metrics.Registry), Log: ctrl.Log.WithName("flows"),
	}))

	if f.hubbleAddr != "" {
		h, err := newHubbleSource(f, cache, live)
		if err != nil {
			return err
		}
		if err := mgr.Add(h); err != nil {
			return err
		}
	}

	var stopping atomic.Bool
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	ready := func(*http.Request) error {
		switch {
		case stopping.Load():
			return errors.New("shutting down")
		case !live.HasSynced():
			return errors.New("informers not synced")
		case !closed(snap.Loaded):
			return errors.New("flow cache snapshot not loaded")
		}
		return tlsSource.Ready()
	}
	if err := mgr.AddReadyzCheck("guard", ready); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook-server", server.StartedChecker()); err != nil {
		return err
	}

	// On SIGTERM: report not ready, keep serving for the shutdown delay so endpoints drop
	// this replica, then stop; the server drains in-flight requests and the snapshotter
	// writes its last snapshot.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		stopping.Store(true)
		log.Info("Shutting down", "signal", s.String(), "shutdownDelay", f.shutdownDelay)
		select {
		case <-time.After(f.shutdownDelay):
		case <-sig:
		}
		cancel()
	}()
	log.Info("Serving webhook", "port", f.port, "mode", mode, "selfSigned", f.selfSigned, "snapshotPath", f.snapshotPath, "hubble", f.hubbleAddr != "")
	return mgr.Start(ctx)
}

// deadlineFromTimeout gives the request context the deadline the API server set with the
// ?timeout= query parameter, so the guard answers before the API server gives up.
func deadlineFromTimeout(ctx context.Context, r *http.Request) context.Context {
	d, err := time.ParseDuration(r.URL.Query().Get("timeout"))
	if err != nil || d <= 0 {
		return ctx
	}
	return deadlineContext{Context: ctx, deadline: time.Now().Add(d)}
}

// deadlineContext reports a deadline without arming a timer: the guard only reads it.
type deadlineContext struct {
	context.Context
	deadline time.Time
}

func (c deadlineContext) Deadline() (time.Time, bool) { return c.deadline, true }

// profilingHandlers serves net/http/pprof when enabled.
func profilingHandlers(enabled bool) map[string]http.Handler {
	if !enabled {
		return nil
	}
	return map[string]http.Handler{
		"/debug/pprof/":        http.HandlerFunc(pprof.Index),
		"/debug/pprof/cmdline": http.HandlerFunc(pprof.Cmdline),
		"/debug/pprof/profile": http.HandlerFunc(pprof.Profile),
		"/debug/pprof/symbol":  http.HandlerFunc(pprof.Symbol),
		"/debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
	}
}

// disableHTTP2 keeps the server on HTTP/1.1: HTTP/2's rapid-reset and stream floods are not
// worth the exposure for a webhook (as controller-runtime's scaffolding advises).
func disableHTTP2(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// newHubbleSource follows Hubble Relay and feeds what it reports into the cache.
func newHubbleSource(f webhookFlags, cache *flows.Cache, r flows.Resolver) (*hubble.Client, error) {
	var tlsOpts *hubble.TLSOptions
	if f.hubbleCA != "" || f.hubbleCert != "" || f.hubbleKey != "" || f.hubbleServerName != "" {
		tlsOpts = &hubble.TLSOptions{CertFile: f.hubbleCert, KeyFile: f.hubbleKey, ServerName: f.hubbleServerName}
		if f.hubbleCA != "" {
			tlsOpts.CAFiles = []string{f.hubbleCA}
		}
	}
	source := "hubble/" + f.hubbleAddr
	return hubble.New(hubble.Options{Address: f.hubbleAddr, TLS: tlsOpts, Log: ctrl.Log.WithName("hubble")}, func(_ context.Context, recs []flows.Record) {
		flows.Ingest(cache, r, source, recs, time.Now())
	})
}
