package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/netpol-guard/netpol-guard/agent"
	"github.com/netpol-guard/netpol-guard/cli"
)

func newAgentCommand(stderr io.Writer) *cobra.Command {
	var (
		opts        agent.Options
		metricsAddr string
		probeAddr   string
		zapOpts     zap.Options
	)
	cmd := &cobra.Command{
		Use:   "agent --webhook-service SVC --namespace NS --token-file FILE [flags]",
		Short: "Node flow agent: push the flows kernel conntrack sees to the webhook",
		Long:  "Read the node's conntrack table and push the flows it sees to every webhook replica.\nNeeds the host network and CAP_NET_ADMIN.",
		Example: `  # As the chart's DaemonSet runs it
  netpol-guard agent --webhook-service netpol-guard-agents --namespace netpol-guard \
    --token-file /var/run/secrets/netpol-guard/token --ca-file /etc/netpol-guard/ca/ca.crt`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return status(runAgent(opts, metricsAddr, probeAddr, zapOpts, stderr))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.WebhookService, "webhook-service", "", "the webhook's headless Service: its ready endpoints, resolved by DNS as <svc>.<namespace>.svc, are the replicas pushed to")
	fs.StringVar(&opts.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace of --webhook-service (default $POD_NAMESPACE)")
	fs.IntVar(&opts.WebhookPort, "webhook-port", agent.DefaultWebhookPort, "the replicas' HTTPS port (the webhook's --port)")
	fs.Func("webhook-url", "push to this base URL (https://host:port) instead of resolving --webhook-service (repeatable, or comma-separated)", func(v string) error {
		for u := range strings.SplitSeq(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				opts.WebhookURLs = append(opts.WebhookURLs, u)
			}
		}
		return nil
	})
	fs.StringVar(&opts.ServerName, "server-name", "", "name the webhook's certificate is verified against (default <svc>.<namespace>.svc; with --webhook-url, the URL's host)")
	fs.StringVar(&opts.CAFile, "ca-file", "", "CA bundle that signed the webhook's certificate, reloaded when it changes; system roots when empty")
	fs.StringVar(&opts.TokenFile, "token-file", "", "file holding the bearer token (a projected ServiceAccount token), read afresh for every push (required)")
	fs.StringVar(&opts.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name, sent as the flow source (default $NODE_NAME)")
	fs.DurationVar(&opts.Interval, "interval", agent.DefaultInterval, "how long edges are aggregated before each push")
	fs.DurationVar(&opts.ResyncInterval, "resync-interval", agent.DefaultResyncInterval, "how often the conntrack table is dumped again, keeping idle connections fresh; negative: never")
	fs.IntVar(&opts.MaxBufferedEdges, "max-buffered-edges", agent.DefaultMaxBufferedEdges, "most edges held while the webhook is unreachable, for all replicas together; past it the least recently seen are dropped")
	fs.StringVar(&metricsAddr, "metrics-bind-address", "127.0.0.1:9090", "address of the Prometheus metrics endpoint (the agent runs in the node's network: :9090 serves it on the node's addresses); 0 disables it")
	fs.StringVar(&probeAddr, "health-probe-bind-address", ":9091", "address of /healthz and /readyz; 0 disables them")
	goFlags := flag.NewFlagSet("zap", flag.ContinueOnError)
	zapOpts.BindFlags(goFlags)
	fs.AddGoFlagSet(goFlags)
	return cmd
}

func runAgent(opts agent.Options, metricsAddr, probeAddr string, zapOpts zap.Options, stderr io.Writer) int {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("main")

	a, err := agent.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return cli.ExitBadInput
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	servers := []*http.Server{}
	for _, s := range []struct {
		name, addr string
		handler    http.Handler
	}{{"metrics", metricsAddr, a.MetricsHandler()}, {"probes", probeAddr, a.ProbeHandler()}} {
		if s.addr == "" || s.addr == "0" {
			continue
		}
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			log.Error(err, "Cannot listen", "endpoint", s.name, "address", s.addr)
			return 1
		}
		srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, IdleTimeout: time.Minute}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error(err, "Endpoint stopped", "endpoint", s.name)
			}
		}()
		log.Info("Serving", "endpoint", s.name, "address", ln.Addr().String())
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range servers {
			_ = srv.Shutdown(shutdownCtx)
		}
	}()

	if err := a.Run(ctx); err != nil {
		log.Error(err, "Agent stopped")
		return 1
	}
	return 0
}
