package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sync/atomic"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/certs"
	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/flowapi/tokenreview"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/flows/goldmane"
	"github.com/netpol-guard/netpol-guard/flows/hubble"
	"github.com/netpol-guard/netpol-guard/internal/metric"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// Run serves the webhook until ctx ends, then reports not ready and keeps serving for
// opts.ShutdownDelay so endpoints drop this replica, stops, drains in-flight requests and
// writes the last snapshot. It returns nil after a clean shutdown.
//
// Run registers the webhook's metrics in controller-runtime's global registry, so a process
// runs it once.
func Run(ctx context.Context, opts Options) error {
	if opts.TLS.SelfSigned && opts.TLS.Namespace == "" {
		return errors.New("self-signed certificates need a namespace")
	}
	cfg, err := restConfig(opts)
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
	if t := opts.TLS; t.SelfSigned {
		tlsSource = &certs.SelfSigned{
			Client: clientset, Namespace: t.Namespace, SecretName: t.SecretName,
			ServiceName: t.ServiceName, ExtraDNSNames: t.ExtraDNSNames, WebhookConfigName: t.WebhookConfig, Log: ctrl.Log.WithName("certs"),
		}
	} else {
		tlsSource = &certs.Directory{Dir: t.CertDir, Log: ctrl.Log.WithName("certs")}
	}

	tlsOpts := []func(*tls.Config){certs.TLSOption(tlsSource), disableHTTP2}
	if opts.AdmissionClientCA != "" {
		pool, err := clientCAs(opts.AdmissionClientCA)
		if err != nil {
			return fmt.Errorf("admission client CA: %w", err)
		}
		tlsOpts = append(tlsOpts, verifyClientCertIfGiven(pool))
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	if err := cluster.AddClusterPolicyTypes(scheme); err != nil {
		return err
	}
	if err := reportsv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	graceful := opts.GracefulTimeout
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsBindAddress, ExtraHandlers: profilingHandlers(opts.Profiling)},
		HealthProbeBindAddress:  opts.HealthProbeBindAddress,
		GracefulShutdownTimeout: &graceful,
		Cache:                   cluster.CacheOptions(),
		WebhookServer: &httpsServer{
			host: opts.Host, port: opts.Port, tlsOpts: tlsOpts, maxConns: opts.MaxConnections,
			readHeaderTimeout: opts.ReadHeaderTimeout, readTimeout: opts.ReadTimeout, idleTimeout: opts.IdleTimeout,
			shutdownTimeout: opts.GracefulTimeout, mux: http.NewServeMux(),
		},
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// The leader only writes staged policies' status: let a successor take over at once.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.Add(tlsSource); err != nil {
		return err
	}

	live, err := cluster.NewLive(mgr.GetCache(), cluster.LiveOptions{IPGrace: opts.IPGrace, PodCIDRs: opts.PodCIDRs})
	if err != nil {
		return err
	}
	// Cluster policies are CRDs a cluster may lack: watched while served.
	if err := mgr.Add(live.WatchClusterPolicies(mgr.GetCache(), clientset.Discovery(), opts.DiscoveryInterval)); err != nil {
		return err
	}
	cache := flows.New(flows.Options{Window: opts.CacheWindow, MaxEdges: opts.CacheMaxEdges, MaxBytes: opts.CacheMaxBytes,
		// External addresses a current policy's range splits stay exact when aggregated.
		MaxExternalPeers: opts.CacheMaxExternalPeers, SplitsPrefix: func(p netip.Prefix) bool { return live.PolicySet().SplitsPrefix(p) }})
	snap := &flows.Snapshotter{Cache: cache, Path: opts.SnapshotPath, Interval: opts.SnapshotInterval, Log: ctrl.Log.WithName("flows"), Loaded: make(chan struct{})}
	snap.Restore()
	if err := mgr.Add(everyReplica{snap}); err != nil {
		return err
	}

	flows.RegisterMetrics(metrics.Registry, cache, time.Now)
	guard := webhook.NewGuard(webhook.Options{
		Cache: cache, View: live, Mode: opts.Mode, MinHistory: opts.MinHistory, MaxListed: opts.MaxListed, Budget: opts.DecisionBudget,
		AllowModeRelaxation: opts.AllowModeRelaxation, MaxInFlight: opts.MaxInFlightAdmissions,
		Bypass:   webhook.NewSubjectAccessReviews(clientset.AuthorizationV1().SubjectAccessReviews(), opts.BypassCacheTTL, nil),
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
	if err := setupStaged(mgr, cfg, cache, live, func() bool { return live.HasSynced() && closed(snap.Loaded) }, opts); err != nil {
		return err
	}
	server := mgr.GetWebhookServer()
	var admissions http.Handler = &admission.Webhook{Handler: guard, WithContextFunc: deadlineFromTimeout}
	var relabels http.Handler = &admission.Webhook{Handler: guard.Relabels(), WithContextFunc: deadlineFromTimeout}
	if opts.AdmissionClientCA != "" {
		refused := metric.Factory{Subsystem: "admission", Registerer: metrics.Registry}.Counter("refused_total",
			"Admission reviews refused (403) for want of the API server's client certificate.")
		admissions = requireClientCert(opts.AdmissionClientNames, refused.Inc, admissions)
		relabels = requireClientCert(opts.AdmissionClientNames, refused.Inc, relabels)
	}
	server.Register(webhook.ValidatePath, admissions)
	for _, path := range []string{webhook.RelabelNamespacePath, webhook.RelabelPodPath, webhook.RelabelWorkloadPath, webhook.RelabelNodePath} {
		server.Register(path, relabels)
	}
	flowMetrics := flowapi.NewMetrics(metrics.Registry)
	auth := flowapi.NewCachingAuthenticator(&tokenreview.Authenticator{Client: clientset, Audiences: opts.TokenAudiences},
		flowapi.AuthCacheOptions{CheckToken: flowapi.CheckJWT, Metrics: flowMetrics})
	server.Register(flowapi.FlowsPath, flowapi.NewHandler(flowapi.HandlerOptions{
		Cache: cache, Resolver: live, Authenticator: auth, Placement: live,
		Writers: opts.FlowWriters, AnyNodeWriters: opts.FlowWritersAnyNode, Readers: opts.FlowReaders,
		MaxBodyBytes: opts.MaxPushBytes, NodeAddress: live.NodeAddress,
		Formats: []flowapi.Format{{Name: "goldmane", Detect: goldmane.LooksLike, Read: goldmane.ReadJSON}},
		Metrics: flowMetrics, Log: ctrl.Log.WithName("flows"),
	}))

	// addSource runs a flow source the options name with the manager, unless making it failed.
	addSource := func(source manager.Runnable, err error) error {
		if err != nil {
			return err
		}
		return mgr.Add(source)
	}
	if opts.Hubble.Address != "" {
		if err := addSource(newHubbleSource(opts.Hubble, cache, live)); err != nil {
			return err
		}
	}
	if opts.Goldmane.Address != "" {
		if err := addSource(newGoldmaneSource(opts.Goldmane, cache, live, goldmane.NewMetrics(metrics.Registry))); err != nil {
			return err
		}
	}
	if opts.Antrea.Address != "" {
		if err := addSource(newAntreaSource(opts.Antrea, cache, live)); err != nil {
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

	// When ctx ends: report not ready, keep serving for the shutdown delay so endpoints
	// drop this replica, then stop; the server drains in-flight requests and the
	// snapshotter writes its last snapshot.
	mgrCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
		case <-mgrCtx.Done():
			return
		}
		stopping.Store(true)
		log.Info("Shutting down", "shutdownDelay", opts.ShutdownDelay)
		delay := time.NewTimer(opts.ShutdownDelay)
		defer delay.Stop()
		select {
		case <-delay.C:
		case <-opts.ShutdownNow:
		case <-mgrCtx.Done():
		}
		stop()
	}()
	log.Info("Serving webhook", "port", opts.Port, "mode", opts.Mode, "admissionClientCert", opts.AdmissionClientCA != "", "selfSigned", opts.TLS.SelfSigned, "snapshotPath", opts.SnapshotPath,
		"hubble", opts.Hubble.Address != "", "goldmane", opts.Goldmane.Address != "", "antrea", opts.Antrea.Address != "")
	return mgr.Start(mgrCtx)
}

// Client-side rate limit of the webhook's API client, unless its configuration sets one:
// the flow API's TokenReviews are driven by callers from outside, so they must not reach
// the API server unbounded even if every limit before them failed.
const (
	clientQPS   = 50
	clientBurst = 100
)

// restConfig is opts.Config, or the client configuration loaded from opts.Kubeconfig, or as
// controller-runtime finds it, with a client-side rate limit (clientQPS, clientBurst) unless
// one is configured.
func restConfig(opts Options) (*rest.Config, error) {
	if opts.Config != nil {
		return opts.Config, nil
	}
	var cfg *rest.Config
	var err error
	if opts.Kubeconfig == "" {
		cfg, err = ctrl.GetConfig()
	} else {
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: opts.Kubeconfig}, &clientcmd.ConfigOverrides{}).ClientConfig()
	}
	if err != nil {
		return nil, err
	}
	if cfg.QPS <= 0 && cfg.RateLimiter == nil {
		cfg.QPS, cfg.Burst = clientQPS, clientBurst
	}
	return cfg, nil
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
func newHubbleSource(o HubbleOptions, cache *flows.Cache, r flows.Resolver) (*hubble.Client, error) {
	var tlsOpts *hubble.TLSOptions
	if o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.ServerName != "" {
		tlsOpts = &hubble.TLSOptions{CertFile: o.CertFile, KeyFile: o.KeyFile, ServerName: o.ServerName}
		if o.CAFile != "" {
			tlsOpts.CAFiles = []string{o.CAFile}
		}
	}
	source := "hubble/" + o.Address
	return hubble.New(hubble.Options{Address: o.Address, TLS: tlsOpts, Log: ctrl.Log.WithName("hubble")}, func(_ context.Context, recs []flows.Record) {
		flows.Ingest(cache, r, source, recs, time.Now())
	})
}
