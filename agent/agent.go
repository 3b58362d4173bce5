package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/netlink"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/ti-mo/conntrack"

	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/internal/backoff"
	"github.com/netpol-guard/netpol-guard/internal/option"
)

// Defaults for Options.
const (
	DefaultWebhookPort      = 9443
	DefaultInterval         = 10 * time.Second
	DefaultResyncInterval   = 10 * time.Minute
	DefaultMaxBufferedEdges = 100_000
	DefaultMaxBatch         = 20_000
	DefaultPushTimeout      = 30 * time.Second
	DefaultMinBackoff       = backoff.DefaultMin
	DefaultMaxBackoff       = backoff.DefaultMax
	DefaultShutdownTimeout  = 5 * time.Second
	DefaultReadBuffer       = 8 << 20
	// HealthGrace is how long /healthz tolerates the conntrack reader being down (starting,
	// or reopening after an error) before failing.
	HealthGrace = 30 * time.Second
)

// HostLookup looks up the addresses of a host name; *net.Resolver is one.
type HostLookup interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Options configures an Agent.
type Options struct {
	// WebhookService and Namespace name the webhook's headless Service: its ready endpoints,
	// resolved as <WebhookService>.<Namespace>.svc on every interval, are the replicas
	// pushed to, each at https://<ip>:<WebhookPort>/v1/flows.
	WebhookService, Namespace string
	// WebhookPort is the replicas' HTTPS port (the webhook's --port). Default 9443.
	WebhookPort int
	// WebhookURLs, when not empty, are the replicas' base URLs (https://host:port), used
	// instead of resolving WebhookService.
	WebhookURLs []string
	// ServerName is the name the replicas' certificates are verified against. Default
	// <WebhookService>.<Namespace>.svc; with WebhookURLs, each URL's host.
	ServerName string
	// CAFile is the CA bundle that signed the webhook's certificate, reloaded when it
	// changes. Empty: the system roots.
	CAFile string
	// TokenFile holds the bearer token (a projected ServiceAccount token), read afresh for
	// every push. Required.
	TokenFile string
	// NodeName is sent with every push as the flow source within the agent's user.
	NodeName string
	// Interval is how long edges are aggregated before being pushed. Default 10s.
	Interval time.Duration
	// ResyncInterval is how often the table is dumped again, so that idle long-lived
	// connections stay fresh in the webhook's flow cache. Default 10m; negative: never.
	ResyncInterval time.Duration
	// MaxBufferedEdges bounds the edges waiting to be pushed, for all replicas together
	// (past it the least recently seen are dropped), and on its own the distinct edges of
	// one interval (past it new edges are dropped). Drops are counted. Default 100 000.
	MaxBufferedEdges int
	// MaxBatch bounds the flow records of one push. Default 20 000.
	MaxBatch int
	// PushTimeout bounds one push. Default 30s.
	PushTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before retrying a replica after a failed
	// push; it doubles with each failure. Defaults 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
	// ShutdownTimeout bounds the last push when Run's context is done. Default 5s.
	ShutdownTimeout time.Duration
	// ReadBuffer is the conntrack event socket's receive buffer in bytes (set with
	// SO_RCVBUFFORCE, which CAP_NET_ADMIN allows). Default 8 MiB.
	ReadBuffer int
	// Registry receives the agent's metrics. Nil: a new registry, with the Go runtime and
	// process collectors, served by MetricsHandler.
	Registry *prometheus.Registry
	// HostLookup resolves the headless Service. Nil: net.DefaultResolver.
	HostLookup HostLookup
	// Netlink configures the conntrack sockets, e.g. the network namespace to read (tests).
	// Nil: the agent's own network namespace, the host's with hostNetwork.
	Netlink *netlink.Config
	// Log is the logger; the package logger when zero.
	Log logr.Logger
}

// Agent reads conntrack and pushes the edges it sees to the webhook. Create it with New and
// start it with Run.
type Agent struct {
	opts    Options
	log     logr.Logger
	reg     *prometheus.Registry
	metrics *metrics
	agg     *aggregator
	push    *pusher
	urls    []*url.URL
	self    atomic.Pointer[selfSet]

	dial       func() (ctConn, error)
	localAddrs func() ([]netip.Addr, error)

	dumped      atomic.Bool  // a complete dump was read
	alive       atomic.Bool  // the reader follows events and has dumped
	aliveAt     atomic.Int64 // Unix nanoseconds when the reader was last alive (or started)
	lastResolve string       // the last resolution problem, to log changes only
}

// New checks opts and returns an Agent.
func New(opts Options) (*Agent, error) {
	if opts.TokenFile == "" {
		return nil, errors.New("a token file is required")
	}
	if opts.WebhookPort == 0 {
		opts.WebhookPort = DefaultWebhookPort
	}
	if opts.WebhookPort < 1 || opts.WebhookPort > 65535 {
		return nil, fmt.Errorf("webhook port %d: must be between 1 and 65535", opts.WebhookPort)
	}
	var urls []*url.URL
	for _, s := range opts.WebhookURLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("webhook URL %q: %w", s, err)
		}
		if u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("webhook URL %q: want https://host[:port]", s)
		}
		if !strings.HasSuffix(u.Path, flowapi.FlowsPath) {
			u.Path = strings.TrimSuffix(u.Path, "/") + flowapi.FlowsPath
			u.RawPath = ""
		}
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		if opts.WebhookService == "" || opts.Namespace == "" {
			return nil, errors.New("the webhook Service and its namespace, or webhook URLs, are required")
		}
		if opts.ServerName == "" {
			opts.ServerName = opts.WebhookService + "." + opts.Namespace + ".svc"
		}
	}
	option.Default(&opts.Interval, DefaultInterval)
	if opts.ResyncInterval == 0 {
		opts.ResyncInterval = DefaultResyncInterval
	}
	option.Default(&opts.MaxBufferedEdges, DefaultMaxBufferedEdges)
	option.Default(&opts.MaxBatch, DefaultMaxBatch)
	option.Default(&opts.PushTimeout, DefaultPushTimeout)
	opts.MinBackoff, opts.MaxBackoff = backoff.Bounds(opts.MinBackoff, opts.MaxBackoff)
	option.Default(&opts.ShutdownTimeout, DefaultShutdownTimeout)
	option.Default(&opts.ReadBuffer, DefaultReadBuffer)
	if opts.Registry == nil {
		opts.Registry = newRegistry()
	}
	if opts.HostLookup == nil {
		opts.HostLookup = net.DefaultResolver
	}
	l := opts.Log
	if l.GetSink() == nil {
		l = log
	}
	m := newMetrics(opts.Registry)
	source := opts.NodeName
	if len(source) > 128 { // the push API's limit on X-Flow-Source
		source = source[:128]
	}
	a := &Agent{
		opts: opts, log: l, reg: opts.Registry, metrics: m, urls: urls,
		agg: newAggregator(opts.MaxBufferedEdges),
		push: &pusher{
			log: l.WithName("push"), metrics: m, tokenFile: opts.TokenFile, caFile: opts.CAFile,
			serverName: opts.ServerName, source: source, maxBatch: opts.MaxBatch, timeout: opts.PushTimeout,
			retry:   backoff.Backoff{Min: opts.MinBackoff, Max: opts.MaxBackoff, Jitter: jitter},
			targets: map[string]*target{}, orphan: newEdgeBuffer(), max: opts.MaxBufferedEdges,
		},
		localAddrs: interfaceAddrs,
	}
	a.dial = func() (ctConn, error) {
		c, err := conntrack.Dial(opts.Netlink)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	a.aliveAt.Store(time.Now().UnixNano())
	return a, nil
}

// Run reads conntrack and pushes edges every interval until ctx is done, then pushes what
// is left (within the shutdown timeout) and returns. It fails at once when the conntrack
// socket cannot be opened. A CA bundle that is not there yet (a self-signed webhook fills
// its Secret after the agents start) is waited for: edges are buffered and the file read
// again every interval. Later errors are retried, logged and counted.
func (a *Agent) Run(ctx context.Context) error {
	c, err := a.dial()
	if err != nil {
		return fmt.Errorf("opening conntrack netlink socket (needs CAP_NET_ADMIN in the host network namespace): %w", err)
	}
	c.Close()
	if err := a.push.reloadCA(); err != nil {
		a.log.Error(err, "Webhook CA bundle not loaded yet: buffering edges and reading it again every interval", "caFile", a.opts.CAFile)
	}
	a.aliveAt.Store(time.Now().UnixNano())
	a.log.Info("Starting node flow agent", "webhookService", a.opts.WebhookService, "namespace", a.opts.Namespace,
		"webhookURLs", a.opts.WebhookURLs, "node", a.opts.NodeName, "interval", a.opts.Interval.String(),
		"maxBufferedEdges", a.opts.MaxBufferedEdges)

	pushCtx, stopPush := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPush()
	a.cycle(ctx) // replicas and the self filter first, then conntrack
	a.push.start(pushCtx)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		a.readConntrack(ctx)
	}()

	ticker := time.NewTicker(a.opts.Interval)
	defer ticker.Stop()
	for ctx.Err() == nil {
		select {
		case <-ticker.C:
			a.cycle(ctx)
		case <-ctx.Done():
		}
	}
	<-readerDone

	// Last push, to the replicas already known: flush the interval and give the workers
	// until the shutdown timeout.
	a.push.add(a.agg.flush())
	deadline := time.Now().Add(a.opts.ShutdownTimeout)
	for a.push.pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := a.push.pending(); n > 0 {
		a.log.Info("Stopping with edges not pushed", "edges", n)
	}
	stopPush()
	a.push.wait()
	a.log.Info("Node flow agent stopped")
	return nil
}

// cycle is one interval's work: refresh the replicas, the CA and the self filter, then hand
// the interval's edges to the replicas.
func (a *Agent) cycle(ctx context.Context) {
	if err := a.push.reloadCA(); err != nil {
		a.log.Error(err, "Cannot reload the webhook CA bundle: keeping the one loaded")
	}
	urls, addrs, err := a.resolve(ctx)
	switch {
	case err != nil:
		if msg := err.Error(); msg != a.lastResolve {
			a.log.Error(err, "Cannot resolve the webhook replicas: keeping the last known")
			a.lastResolve = msg
		}
	case len(urls) == 0:
		if a.lastResolve != "none" {
			a.log.Info("No webhook replica is ready: buffering edges")
			a.lastResolve = "none"
		}
	default:
		a.lastResolve = ""
		a.push.setTargets(urls)
		a.updateSelf(addrs)
	}
	a.push.add(a.agg.flush())
}

// resolve returns the replicas' push URLs and the addresses and ports the agent connects to.
func (a *Agent) resolve(ctx context.Context) (urls []string, addrs []netip.AddrPort, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if len(a.urls) > 0 {
		for _, u := range a.urls {
			urls = append(urls, u.String())
			port, _ := strconv.ParseUint(u.Port(), 10, 16)
			if port == 0 {
				port = 443
			}
			ips := []string{u.Hostname()}
			if _, err := netip.ParseAddr(u.Hostname()); err != nil {
				ips, _ = a.opts.HostLookup.LookupHost(ctx, u.Hostname()) // for the self filter only
			}
			addrs = append(addrs, addrPorts(ips, uint16(port))...)
		}
		return urls, addrs, nil
	}
	host := a.opts.WebhookService + "." + a.opts.Namespace + ".svc"
	ips, err := a.opts.HostLookup.LookupHost(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, nil, nil // a headless Service without ready endpoints
		}
		return nil, nil, fmt.Errorf("resolving webhook replicas %s: %w", host, err)
	}
	addrs = addrPorts(ips, uint16(a.opts.WebhookPort))
	for _, ap := range addrs {
		urls = append(urls, "https://"+ap.String()+flowapi.FlowsPath)
	}
	slices.Sort(urls)
	return slices.Compact(urls), addrs, nil
}

func addrPorts(ips []string, port uint16) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.AddrPortFrom(ip.Unmap(), port))
		}
	}
	return out
}

// updateSelf refreshes the filter for the agent's own connections to the webhook.
func (a *Agent) updateSelf(targets []netip.AddrPort) {
	s := &selfSet{local: map[netip.Addr]struct{}{}, targets: map[netip.AddrPort]struct{}{}}
	for _, t := range targets {
		s.targets[t] = struct{}{}
	}
	local, err := a.localAddrs()
	if err != nil {
		a.log.Error(err, "Cannot list the node's addresses: the self filter keeps the last known")
		if old := a.self.Load(); old != nil {
			s.local = old.local
		}
	}
	for _, l := range local {
		s.local[l] = struct{}{}
	}
	a.self.Store(s)
}

func interfaceAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

func (a *Agent) setAlive(v bool) {
	a.alive.Store(v)
	a.aliveAt.Store(time.Now().UnixNano())
}

// Healthz reports whether the conntrack reader is alive: following events after a complete
// dump, or down (starting, reopening after an error) for less than HealthGrace.
func (a *Agent) Healthz(*http.Request) error {
	if a.alive.Load() {
		return nil
	}
	if down := time.Since(time.Unix(0, a.aliveAt.Load())); down > HealthGrace {
		return fmt.Errorf("conntrack reader not running for %s", down.Round(time.Second))
	}
	return nil
}

// Readyz reports whether a push ever succeeded, or none was attempted yet.
func (a *Agent) Readyz(*http.Request) error {
	if a.push.attempted.Load() && !a.push.succeeded.Load() {
		return errors.New("no push to the webhook has succeeded yet")
	}
	return nil
}

// ProbeHandler serves /healthz (Healthz) and /readyz (Readyz).
func (a *Agent) ProbeHandler() http.Handler {
	mux := http.NewServeMux()
	probe := func(check func(*http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			if err := check(r); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, err)
				return
			}
			fmt.Fprintln(w, "ok")
		}
	}
	mux.Handle("/healthz", probe(a.Healthz))
	mux.Handle("/readyz", probe(a.Readyz))
	return mux
}

// MetricsHandler serves the agent's Prometheus metrics.
func (a *Agent) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{})
}
