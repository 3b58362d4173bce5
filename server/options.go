package server

import (
	"net/netip"
	"time"

	"k8s.io/client-go/rest"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/flows/goldmane"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// Options is everything the webhook server is configured with; `netpol-guard webhook`'s
// flags fill it. Start from DefaultOptions: a zero field means zero, not the default.
type Options struct {
	// Config reaches the API server. Nil: loaded from Kubeconfig, or else as
	// controller-runtime does ($KUBECONFIG, in-cluster, ~/.kube/config).
	Config     *rest.Config
	Kubeconfig string

	// Mode is the global mode; a namespace label or policy annotation overrides it.
	Mode webhook.Mode
	// MinHistory is the flow history needed before enforce rejects.
	MinHistory time.Duration
	// MaxListed is how many cut flows a rejection lists.
	MaxListed int
	// DecisionBudget bounds an evaluation when the API server sends no timeout.
	DecisionBudget time.Duration

	// Host and Port are where the HTTPS server (admission reviews at webhook.ValidatePath,
	// the flow API at flowapi.FlowsPath) listens; Host "" is every interface.
	Host string
	Port int
	// TLS is where the serving certificate comes from.
	TLS TLSOptions

	// CacheWindow is how long an edge is kept after it was last seen; CacheMaxEdges caps
	// the cache.
	CacheWindow   time.Duration
	CacheMaxEdges int
	// SnapshotPath is the file the cache is restored from and written to; empty: none.
	SnapshotPath     string
	SnapshotInterval time.Duration

	// FlowWriters may push flows, FlowReaders (and the writers) export them.
	FlowWriters, FlowReaders []string
	// TokenAudiences are the audiences pushers' tokens must carry; empty: the API
	// server's default.
	TokenAudiences []string
	// MaxPushBytes is the largest push body, before and after decompression.
	MaxPushBytes int64

	// IPGrace is how long a deleted pod's IP still resolves to its workload.
	IPGrace time.Duration
	// PodCIDRs are the pod networks (nodes' spec.podCIDRs are added).
	PodCIDRs []netip.Prefix
	// DiscoveryInterval is how often the API server is asked whether it serves the
	// cluster policy kinds (their CRDs come and go); 0: cluster.DefaultDiscoveryInterval.
	DiscoveryInterval time.Duration

	// Hubble, when Address is set, is followed for flows.
	Hubble HubbleOptions
	// Goldmane, when Address is set, is followed for flows, and the verdicts Calico's
	// dataplane gave them are compared with the webhook's predictions.
	Goldmane GoldmaneOptions
	// Antrea, when Address is set, is the Flow Aggregator followed for flows.
	Antrea AntreaOptions

	// MetricsBindAddress serves Prometheus metrics ("0" disables it);
	// HealthProbeBindAddress serves /healthz and /readyz.
	MetricsBindAddress     string
	HealthProbeBindAddress string
	// Profiling serves net/http/pprof under /debug/pprof/ on the metrics address.
	Profiling bool

	// ShutdownDelay is how long Run keeps serving, reporting not ready, after its context
	// ends, so endpoints drop this replica before it drains. Closing ShutdownNow cuts the
	// delay short (main closes it on a second signal).
	ShutdownDelay time.Duration
	ShutdownNow   <-chan struct{}
	// GracefulTimeout bounds the drain of in-flight requests and the last snapshot.
	GracefulTimeout time.Duration
}

// TLSOptions choose the serving certificate: a watched directory (a mounted cert-manager
// Secret), or, with SelfSigned, a CA and certificate bootstrapped into a Secret shared by
// the replicas.
type TLSOptions struct {
	// CertDir holds tls.crt and tls.key, reloaded on rotation.
	CertDir string
	// SelfSigned keeps a CA and certificate in SecretName in Namespace, valid for
	// ServiceName (and ExtraDNSNames), and WebhookConfig's caBundle in step.
	SelfSigned    bool
	Namespace     string
	ServiceName   string
	ExtraDNSNames []string
	SecretName    string
	WebhookConfig string
}

// HubbleOptions reach Hubble Relay. No CA, certificate, key or server name: plaintext.
type HubbleOptions struct {
	Address                   string
	CAFile, CertFile, KeyFile string
	ServerName                string
}

// GoldmaneOptions reach Calico's Goldmane, which serves mutual TLS only: CertFile and
// KeyFile are required with Address.
type GoldmaneOptions struct {
	Address                   string
	CAFile, CertFile, KeyFile string
	ServerName                string
	// Backfill is how far back the first stream asks for flows.
	Backfill time.Duration
}

// AntreaOptions reach Antrea's Flow Aggregator, which serves TLS only; a client
// certificate (CertFile and KeyFile) is optional.
type AntreaOptions struct {
	Address                   string
	CAFile, CertFile, KeyFile string
	ServerName                string
}

// DefaultOptions are the webhook's flags' defaults.
func DefaultOptions() Options {
	return Options{
		Mode:           webhook.Warn,
		MinHistory:     time.Hour,
		MaxListed:      5,
		DecisionBudget: 3 * time.Second,
		Port:           9443,
		TLS: TLSOptions{
			CertDir:       "/tmp/k8s-webhook-server/serving-certs",
			ServiceName:   "netpol-guard",
			SecretName:    "netpol-guard-tls",
			WebhookConfig: "netpol-guard",
		},
		CacheWindow:            flows.DefaultWindow,
		CacheMaxEdges:          flows.DefaultMaxEdges,
		SnapshotInterval:       time.Minute,
		MaxPushBytes:           flowapi.DefaultMaxBodyBytes,
		IPGrace:                5 * time.Minute,
		DiscoveryInterval:      cluster.DefaultDiscoveryInterval,
		Goldmane:               GoldmaneOptions{Backfill: goldmane.DefaultBackfill},
		MetricsBindAddress:     ":8080",
		HealthProbeBindAddress: ":8081",
		ShutdownDelay:          5 * time.Second,
		GracefulTimeout:        30 * time.Second,
	}
}
