package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/netpol-guard/netpol-guard/server"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// stringList is a repeatable (and comma-separated) flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Type() string   { return "strings" }
func (s *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// replacingList is a stringList whose first Set replaces the default; "" empties it.
type replacingList struct {
	list *[]string
	set  bool
}

func (r *replacingList) String() string { return strings.Join(*r.list, ",") }
func (r *replacingList) Type() string   { return "strings" }
func (r *replacingList) Set(v string) error {
	if !r.set {
		*r.list, r.set = nil, true
	}
	return (*stringList)(r.list).Set(v)
}

// modeFlag is a webhook.Mode flag.
type modeFlag struct{ m *webhook.Mode }

func (f modeFlag) String() string {
	if f.m == nil {
		return ""
	}
	return string(*f.m)
}
func (f modeFlag) Set(v string) (err error) { *f.m, err = webhook.ParseMode(v); return err }
func (f modeFlag) Type() string             { return "mode" }

// prefixList is a repeatable (and comma-separated) flag of CIDRs.
type prefixList struct{ p *[]netip.Prefix }

func (f prefixList) String() string {
	if f.p == nil {
		return ""
	}
	parts := make([]string, len(*f.p))
	for i, p := range *f.p {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}
func (f prefixList) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return err
		}
		*f.p = append(*f.p, p)
	}
	return nil
}
func (f prefixList) Type() string { return "cidr" }

func newWebhookCommand() *cobra.Command {
	o := server.DefaultOptions()
	o.TLS.Namespace = os.Getenv("POD_NAMESPACE")
	var zapOpts zap.Options
	cmd := &cobra.Command{
		Use:   "webhook [flags]",
		Short: "Serve the validating admission webhook and the flow API",
		Long:  "Serve the validating admission webhook for NetworkPolicies, the flow push/export API, metrics and health probes.",
		Example: `  # As the chart runs it, with cert-manager's certificate mounted
  netpol-guard webhook --mode enforce --cert-dir /certs --snapshot-path /var/lib/netpol-guard/flows.snapshot \
    --flow-writers system:serviceaccount:netpol-guard:agent

  # Bootstrapping its own CA
  netpol-guard webhook --self-signed --namespace netpol-guard`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.TLS.SelfSigned && o.TLS.Namespace == "" {
				return errors.New("--self-signed needs --namespace (or $POD_NAMESPACE)")
			}
			if err := checkFlowSources(o); err != nil {
				return err
			}
			if o.LeaderElection && o.TLS.Namespace == "" {
				return errors.New("--leader-elect needs --namespace (or $POD_NAMESPACE)")
			}
			o.LeaderElectionNamespace = o.TLS.Namespace
			ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
			log := ctrl.Log.WithName("main")
			ctx, shutdownNow := shutdownSignals(log)
			o.ShutdownNow = shutdownNow
			if err := server.Run(ctx, o); err != nil {
				log.Error(err, "Webhook stopped")
				return exitCode(1)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file; in-cluster config when empty")
	fs.Var(modeFlag{&o.Mode}, "mode", "global mode: enforce, warn, audit or off (a namespace label or policy annotation netpol-guard.io/mode may make it stricter)")
	fs.BoolVar(&o.AllowModeRelaxation, "allow-mode-relaxation", false, "let a namespace label or policy annotation netpol-guard.io/mode relax the mode too (off < audit < warn < enforce); relaxations are recorded")
	fs.DurationVar(&o.BypassCacheTTL, "bypass-cache-ttl", o.BypassCacheTTL, "how long an answer to whether a user holds the bypass right (a SubjectAccessReview) is reused")
	fs.IntVar(&o.MaxInFlightAdmissions, "max-inflight-admissions", o.MaxInFlightAdmissions, "evaluations run at once; past it a change is admitted unchecked with a warning (outcome busy); negative: no cap")
	fs.DurationVar(&o.MinHistory, "min-history", o.MinHistory, "flow history needed before enforce rejects; with less, enforce warns instead")
	fs.IntVar(&o.MaxListed, "max-listed", o.MaxListed, "cut flows listed in a rejection (warnings list as many, plus two)")
	fs.DurationVar(&o.DecisionBudget, "decision-budget", o.DecisionBudget, "longest an evaluation may take when the API server sends no timeout; past it the change is admitted with a warning")
	fs.IntVar(&o.Port, "port", o.Port, "HTTPS port for admission reviews and the flow API")
	fs.StringVar(&o.AdmissionClientCA, "admission-client-ca", "", "PEM bundle that signs the API server's client certificate for webhooks; when set, admission reviews without such a certificate get 403 (the flow API needs none)")
	fs.Var((*stringList)(&o.AdmissionClientNames), "admission-client-names", "with --admission-client-ca, the common names the API server's client certificate may have (repeatable, or comma-separated); empty: any it signed")
	fs.IntVar(&o.MaxConnections, "max-connections", o.MaxConnections, "most open connections on the HTTPS port (each node agent keeps one per replica); 0: no cap")
	fs.StringVar(&o.TLS.CertDir, "cert-dir", o.TLS.CertDir, "directory with tls.crt and tls.key (a mounted cert-manager Secret), reloaded on rotation")
	fs.BoolVar(&o.TLS.SelfSigned, "self-signed", false, "bootstrap a CA and serving certificate, kept in --secret-name and injected into --webhook-config's caBundle, instead of --cert-dir")
	fs.StringVar(&o.TLS.Namespace, "namespace", o.TLS.Namespace, "namespace netpol-guard runs in (default $POD_NAMESPACE)")
	fs.StringVar(&o.TLS.ServiceName, "service-name", o.TLS.ServiceName, "the webhook Service, for the self-signed certificate's DNS names")
	fs.Var((*stringList)(&o.TLS.ExtraDNSNames), "extra-dns-name", "with --self-signed, one more DNS name for the certificate (repeatable, or comma-separated), e.g. the headless Service the node agents dial")
	fs.StringVar(&o.TLS.SecretName, "secret-name", o.TLS.SecretName, "Secret holding the self-signed CA and certificate")
	fs.StringVar(&o.TLS.WebhookConfig, "webhook-config", o.TLS.WebhookConfig, "ValidatingWebhookConfiguration whose caBundle --self-signed keeps in step")
	fs.DurationVar(&o.CacheWindow, "cache-window", o.CacheWindow, "how long a flow is remembered after it was last seen")
	fs.IntVar(&o.CacheMaxEdges, "cache-max-edges", o.CacheMaxEdges, "flow cache cap in edges; past it the least recently seen go first")
	fs.Int64Var(&o.CacheMaxBytes, "cache-max-bytes", o.CacheMaxBytes, "flow cache cap in estimated heap bytes (netpol_guard_cache_bytes); past it the least recently seen edges go first; 0: none")
	fs.IntVar(&o.CacheMaxExternalPeers, "cache-max-external-peers", o.CacheMaxExternalPeers, "external addresses the flow cache holds one by one; past it new ones are held by /24 (IPv4) or /48 (IPv6), except where a policy's ipBlock splits the network; 0: no bound")
	fs.StringVar(&o.SnapshotPath, "snapshot-path", "", "file the flow cache is snapshotted to and restored from; empty: no snapshots")
	fs.DurationVar(&o.SnapshotInterval, "snapshot-interval", o.SnapshotInterval, "how often the flow cache is snapshotted (and expired)")
	fs.Var((*stringList)(&o.FlowWriters), "flow-writers", "users allowed to push the flows of the node their token is bound to (repeatable), e.g. the node agent's system:serviceaccount:netpol-guard:netpol-guard-agent")
	fs.Var((*stringList)(&o.FlowWritersAnyNode), "flow-writers-any-node", "users allowed to push any flows, with no node binding (repeatable), e.g. a Hubble Relay-like pusher")
	fs.Var((*stringList)(&o.FlowReaders), "flow-readers", "users allowed to export flows (repeatable); writers are not readers unless listed here")
	fs.Var(&replacingList{list: &o.TokenAudiences}, "token-audience", "audience the pushers' tokens must carry (repeatable, or comma-separated); \"\": the API server's own")
	fs.Int64Var(&o.MaxPushBytes, "max-push-bytes", o.MaxPushBytes, "largest flow push body, before and after decompression")
	fs.DurationVar(&o.IPGrace, "ip-grace", o.IPGrace, "how long a deleted pod's IP still resolves to its workload, for late flows")
	fs.DurationVar(&o.DiscoveryInterval, "discovery-interval", o.DiscoveryInterval, "how often to look whether ClusterNetworkPolicy and AdminNetworkPolicy CRDs are installed, to watch them")
	fs.Var(prefixList{&o.PodCIDRs}, "pod-cidr", "cluster pod CIDR (repeatable); addresses inside it that match no pod are unresolved, not external. Nodes' spec.podCIDRs are added")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "address of the Prometheus metrics endpoint (and pprof with --profiling), unauthenticated: localhost unless opened, e.g. :8080 behind a NetworkPolicy; 0 disables it")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "address of /healthz and /readyz")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", o.ShutdownDelay, "on SIGTERM, report not ready and keep serving this long before draining, so no new admissions arrive")
	fs.DurationVar(&o.GracefulTimeout, "graceful-timeout", o.GracefulTimeout, "longest the shutdown waits for in-flight requests and the last snapshot")
	fs.BoolVar(&o.Staged, "staged", o.Staged, "evaluate StagedNetworkPolicies against the flows and write their status (when their CRD is installed)")
	fs.DurationVar(&o.StagedStatusInterval, "staged-status-interval", o.StagedStatusInterval, "least time between two status writes of one StagedNetworkPolicy")
	fs.BoolVar(&o.LeaderElection, "leader-elect", false, "elect, by a Lease in --namespace, the one replica that writes StagedNetworkPolicy status; without it every replica writes")
	fs.StringVar(&o.Hubble.Address, "hubble-relay-address", "", "Hubble Relay address (host:port) to follow for flows; empty: no Hubble")
	fs.StringVar(&o.Hubble.CAFile, "hubble-tls-ca", "", "CA file for Hubble Relay's TLS; empty with no other TLS flag: plaintext")
	fs.StringVar(&o.Hubble.CertFile, "hubble-tls-cert", "", "client certificate for mTLS to Hubble Relay")
	fs.StringVar(&o.Hubble.KeyFile, "hubble-tls-key", "", "client key for mTLS to Hubble Relay")
	fs.StringVar(&o.Hubble.ServerName, "hubble-tls-server-name", "", "server name to verify Hubble Relay's certificate against")
	fs.StringVar(&o.Goldmane.Address, "goldmane-address", "", "Calico Goldmane address (host:port) to follow for flows, over mutual TLS; empty: no Goldmane")
	fs.StringVar(&o.Goldmane.CAFile, "goldmane-tls-ca", "", "CA file for Goldmane's certificate (calico-system's tigera-ca-bundle); empty: the system roots")
	fs.StringVar(&o.Goldmane.CertFile, "goldmane-tls-cert", "", "client certificate for mTLS to Goldmane (required with --goldmane-address)")
	fs.StringVar(&o.Goldmane.KeyFile, "goldmane-tls-key", "", "client key for mTLS to Goldmane (required with --goldmane-address)")
	fs.StringVar(&o.Goldmane.ServerName, "goldmane-tls-server-name", "", "server name to verify Goldmane's certificate against; empty: the address's host")
	fs.DurationVar(&o.Goldmane.Backfill, "goldmane-backfill", o.Goldmane.Backfill, "how far back the first Goldmane stream asks for flows")
	fs.StringVar(&o.Antrea.Address, "antrea-flow-aggregator-address", "", "Antrea Flow Aggregator address (host:port) to follow for flows, over TLS; empty: no Antrea")
	fs.StringVar(&o.Antrea.CAFile, "antrea-flow-aggregator-tls-ca", "", "CA file for the Flow Aggregator's certificate (flow-aggregator-ca's ca.crt); empty: the system roots")
	fs.StringVar(&o.Antrea.ServerName, "antrea-flow-aggregator-tls-server-name", "", "server name to verify the Flow Aggregator's certificate against; empty: the address's host")
	fs.StringVar(&o.Antrea.CertFile, "antrea-flow-aggregator-tls-cert", "", "client certificate for mTLS to the Flow Aggregator")
	fs.StringVar(&o.Antrea.KeyFile, "antrea-flow-aggregator-tls-key", "", "client key for mTLS to the Flow Aggregator")
	fs.BoolVar(&o.Profiling, "profiling", false, "serve Go's pprof profiles under /debug/pprof/ on the metrics address")
	goFlags := flag.NewFlagSet("zap", flag.ContinueOnError)
	zapOpts.BindFlags(goFlags)
	fs.AddGoFlagSet(goFlags)
	return cmd
}

// flowSourceFlags are one flow source's flags, for checking them together.
type flowSourceFlags struct {
	prefix                    string // of the TLS flags: "hubble" for --hubble-tls-ca
	addressFlag, address      string
	ca, cert, key, serverName string
	needsClientCert           bool
}

// checkFlowSources rejects flow source flags that cannot work together: a client
// certificate without its key (or the reverse), TLS settings for a source with no address,
// and Goldmane without the client certificate its mutual TLS requires.
func checkFlowSources(o server.Options) error {
	for _, s := range []flowSourceFlags{
		{"hubble", "hubble-relay-address", o.Hubble.Address, o.Hubble.CAFile, o.Hubble.CertFile, o.Hubble.KeyFile, o.Hubble.ServerName, false},
		{"goldmane", "goldmane-address", o.Goldmane.Address, o.Goldmane.CAFile, o.Goldmane.CertFile, o.Goldmane.KeyFile, o.Goldmane.ServerName, true},
		{"antrea-flow-aggregator", "antrea-flow-aggregator-address", o.Antrea.Address, o.Antrea.CAFile, o.Antrea.CertFile, o.Antrea.KeyFile, o.Antrea.ServerName, false},
	} {
		switch {
		case (s.cert == "") != (s.key == ""):
			return fmt.Errorf("--%[1]s-tls-cert and --%[1]s-tls-key go together: give both or neither", s.prefix)
		case s.address == "" && s.ca+s.cert+s.key+s.serverName != "":
			return fmt.Errorf("--%s-tls-* given without --%s", s.prefix, s.addressFlag)
		case s.address != "" && s.needsClientCert && s.cert == "":
			return fmt.Errorf("--%[2]s needs --%[1]s-tls-cert and --%[1]s-tls-key: it serves mutual TLS only", s.prefix, s.addressFlag)
		}
	}
	if o.Goldmane.Backfill <= 0 {
		return errors.New("--goldmane-backfill must be positive")
	}
	return nil
}

// shutdownSignals returns a context that ends on the first SIGTERM or SIGINT, and a channel
// closed on the second.
func shutdownSignals(log logr.Logger) (context.Context, <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	now := make(chan struct{})
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		log.Info("Shutting down", "signal", s.String())
		cancel()
		<-sig
		close(now)
	}()
	return ctx, now
}
