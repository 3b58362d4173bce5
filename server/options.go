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

	// Mode is the global mode; a namespace label or policy annotation may make it stricter.
	Mode webhook.Mode
	// AllowModeRelaxation lets a namespace label or policy annotation relax the mode too.
	AllowModeRelaxation bool
	// BypassCacheTTL is how long an answer to "may this user bypass?" is reused.
	BypassCacheTTL time.Duration
	// MaxInFlightAdmissions caps concurrent evaluations; past it changes are admitted
	// unchecked with a warning.
	MaxInFlightAdmissions int
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
	// AdmissionClientCA, when set, is a PEM bundle: admission reviews are then answered only
	// for a client certificate it signed (the API server's, from its admission
	// configuration), with a common name in AdmissionClientNames if that is not empty;
	// others get 403. The flow API on the same port does not need one.
	AdmissionClientCA    string
	AdmissionClientNames []string
	// MaxConnections caps the HTTPS port's open connections (each node agent keeps one
	// per replica); 0: no cap.
	MaxConnections int
	// ReadHeaderTimeout bounds a connection's TLS handshake and each request's header,
	// ReadTimeout each request's body, IdleTimeout a kept-alive connection's wait for the
	// next request.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration

	// CacheWindow is how long an edge is kept after it was last seen; CacheMaxEdges caps
	// the cache in edges, CacheMaxBytes (when positive) in estimated heap bytes.
	CacheWindow   time.Duration
	CacheMaxEdges int
	CacheMaxBytes int64
	// CacheMaxExternalPeers bounds the external addresses held one by one; past it new ones
	// are held by /24 or /48 (flows.Options.MaxExternalPeers). 0: no bound.
	CacheMaxExternalPeers int
	// SnapshotPath is the file the cache is restored from and written to; empty: none.
	SnapshotPath     string
	SnapshotInterval time.Duration

	// FlowWriters may push the flows of the node their token is bound to (node agents);
	// FlowWritersAnyNode may push any flows (a Hubble Relay-like pusher); FlowReaders may
	// export them. Writing does not imply reading: see flowapi.HandlerOptions.
	FlowWriters, FlowWritersAnyNode, FlowReaders []string
	// TokenAudiences are the audiences pushers' tokens must carry; empty: the API
	// server's own, so that any token for the API server would do.
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

	// Staged evaluates StagedNetworkPolicies, when their CRD is installed; the leader
	// writes their status, at most once per StagedStatusInterval each.
	Staged               bool
	StagedStatusInterval time.Duration
	// LeaderElection elects the replica that writes status by a Lease in
	// LeaderElectionNamespace; without it this replica writes.
	LeaderElection          bool
	LeaderElectionNamespace string

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

// DefaultTokenAudience is the audience flow pushers' tokens must carry by default: a token
// made for netpol-guard is useless against the API server, and one stolen from the API
// server's audience is useless here.
const DefaultTokenAudience = "netpol-guard"

// DefaultOptions are the webhook's flags' defaults.
func DefaultOptions() Options {
	return Options{
		Mode:                  webhook.Warn,
		MinHistory:            time.Hour,
		MaxListed:             5,
		DecisionBudget:        3 * time.Second,
		BypassCacheTTL:        10 * time.Second,
		MaxInFlightAdmissions: 8,
		Port:                  9443,
		MaxConnections:        4096,
		ReadHeaderTimeout:     10 * time.Second,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           90 * time.Second,
		TLS: TLSOptions{
			CertDir:       "/tmp/k8s-webhook-server/serving-certs",
			ServiceName:   "netpol-guard",
			SecretName:    "netpol-guard-tls",
			WebhookConfig: "netpol-guard",
		},
		Staged:                 true,
		StagedStatusInterval:   10 * time.Second,
		CacheWindow:            flows.DefaultWindow,
		CacheMaxEdges:          flows.DefaultMaxEdges,
		CacheMaxBytes:          flows.DefaultMaxBytes,
		CacheMaxExternalPeers:  flows.DefaultMaxExternalPeers,
		SnapshotInterval:       time.Minute,
		MaxPushBytes:           flowapi.DefaultMaxBodyBytes,
		TokenAudiences:         []string{DefaultTokenAudience},
		IPGrace:                5 * time.Minute,
		DiscoveryInterval:      cluster.DefaultDiscoveryInterval,
		Goldmane:               GoldmaneOptions{Backfill: goldmane.DefaultBackfill},
		MetricsBindAddress:     "127.0.0.1:8080",
		HealthProbeBindAddress: ":8081",
		ShutdownDelay:          5 * time.Second,
		GracefulTimeout:        30 * time.Second,
	}
}
