package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// AgentOptions configures StartAgent.
type AgentOptions struct {
	// Name tells agents apart (log file); default "agent".
	Name string
	// Netns, when set, is the network namespace (ip netns) the agent runs in, as a
	// DaemonSet pod with hostNetwork runs in its node's: it reads that namespace's conntrack
	// table. The process is `ip netns exec <Netns> netpol-guard agent ...`, which execs the
	// agent in place.
	Netns string
	// WebhookURLs are --webhook-url.
	WebhookURLs []string
	// CAFile, ServerName, TokenFile and NodeName are the flags of the same names.
	CAFile, ServerName, TokenFile, NodeName string
	// Interval is --interval; default 1s.
	Interval time.Duration
	// MetricsAddr and ProbeAddr are bound inside Netns; default 127.0.0.1:9090 and :9091.
	MetricsAddr, ProbeAddr string
	// Args are more flags, appended last.
	Args []string
}

// StartAgent runs `netpol-guard agent` (in opts.Netns when set) and returns once it runs;
// the control plane stops it on Stop.
func StartAgent(ctx context.Context, cp *ControlPlane, opts AgentOptions) (*Process, error) {
	bin, err := cp.Binary(ctx)
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "agent"
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = "127.0.0.1:9090"
	}
	if opts.ProbeAddr == "" {
		opts.ProbeAddr = "127.0.0.1:9091"
	}
	args := []string{"agent",
		"--webhook-url", strings.Join(opts.WebhookURLs, ","),
		"--token-file", opts.TokenFile,
		"--interval", opts.Interval.String(),
		"--metrics-bind-address", opts.MetricsAddr,
		"--health-probe-bind-address", opts.ProbeAddr,
	}
	for _, f := range []struct{ flag, v string }{{"--ca-file", opts.CAFile}, {"--server-name", opts.ServerName}, {"--node-name", opts.NodeName}} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	args = append(args, opts.Args...)
	argv := append([]string{bin}, args...)
	if opts.Netns != "" {
		argv = append([]string{"ip", "netns", "exec", opts.Netns}, argv...)
	}
	dir := filepath.Join(cp.Dir, opts.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p, err := startProcess(cp, "netpol-guard agent "+opts.Name, argv, filepath.Join(dir, "agent.log"))
	if err != nil {
		return nil, err
	}
	// An agent that cannot start (flags, conntrack) exits at once.
	select {
	case <-p.exited:
		return nil, fmt.Errorf("netpol-guard agent exited at start: %v\n--- log ---\n%s", p.exitErr, p.Logs())
	case <-time.After(300 * time.Millisecond):
	}
	cp.logf("Agent %s (pid %d) running: %s", p.Name, p.PID(), strings.Join(argv, " "))
	return p, nil
}

// MetricSum reads a Prometheus text exposition: the sum of the samples of a metric
// ("netpol_guard_agent_edges_pushed_total"), or the value of one series when name carries
// its labels as exposed ("netpol_guard_agent_conntrack_ignored_total{reason=\"self\"}").
func MetricSum(body, name string) float64 {
	var sum float64
	for line := range strings.SplitSeq(body, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		switch {
		case !ok || rest == "":
			continue
		case strings.Contains(name, "{") && rest[0] != ' ':
			continue
		case rest[0] != ' ' && rest[0] != '{':
			continue
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
