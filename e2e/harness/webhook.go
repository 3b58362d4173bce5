package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// The netpol-guard namespace and the flow agent's ServiceAccount, as the chart names them.
const (
	GuardNamespace = "netpol-guard"
	AgentAccount   = "agent"
	// AgentUser is the agent ServiceAccount's user, the webhook's flow writer.
	AgentUser = "system:serviceaccount:" + GuardNamespace + ":" + AgentAccount
)

// BinaryEnv names a prebuilt netpol-guard binary to use instead of building one.
const BinaryEnv = "NETPOL_GUARD_BINARY"

// Binary returns the netpol-guard binary: $NETPOL_GUARD_BINARY, else one built from this
// module with go build, once per test process and shared by every control plane in it.
func (cp *ControlPlane) Binary(ctx context.Context) (string, error) {
	cp.binOnce.Do(func() {
		if bin := os.Getenv(BinaryEnv); bin != "" {
			cp.bin = bin
			return
		}
		cp.bin, cp.binErr = processBinary(ctx)
		if cp.binErr == nil {
			cp.logf("Using %s", cp.bin)
		}
	})
	return cp.bin, cp.binErr
}

var (
	processBinOnce sync.Once
	processBin     string
	processBinErr  error
)

// processBinary builds the binary the first time a test of this process asks for it, into a
// directory of its own (left for the OS to clean: tests of the process may still run it).
func processBinary(ctx context.Context) (string, error) {
	processBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "netpol-guard-e2e-bin-")
		if err != nil {
			processBinErr = err
			return
		}
		processBin, processBinErr = BuildBinary(ctx, dir)
	})
	return processBin, processBinErr
}

// BuildBinary builds the netpol-guard command of the main module (found from the working
// directory) into dir and returns its path.
func BuildBinary(ctx context.Context, dir string) (string, error) {
	root, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("finding the netpol-guard module: go list -m: %w", err)
	}
	bin := filepath.Join(dir, "netpol-guard")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = strings.TrimSpace(string(root))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build netpol-guard: %w\n%s", err, out)
	}
	return bin, nil
}

// WebhookOptions configures StartWebhook.
type WebhookOptions struct {
	// Name tells instances apart (directory, webhook configuration); default "netpol-guard".
	Name string
	// Mode is --mode; default warn.
	Mode string
	// MinHistory is --min-history. The cache's history starts when the webhook starts, so
	// tests that want enforce to reject keep it tiny; default 1ms.
	MinHistory time.Duration
	// SnapshotPath is --snapshot-path: restored on start.
	SnapshotPath string
	// FlowWriters are --flow-writers (node-bound writers); default none.
	FlowWriters []string
	// AnyNodeWriters are --flow-writers-any-node; default AgentUser, whose tokens the
	// harness issues bound to no node.
	AnyNodeWriters []string
	// PodCIDR is --pod-cidr; default 10.244.0.0/16.
	PodCIDR string
	// Args are more flags, appended last (a later flag wins).
	Args []string
	// ReadyTimeout bounds the wait for /readyz; default 2m.
	ReadyTimeout time.Duration
}

// Webhook is a running `netpol-guard webhook` process.
type Webhook struct {
	Name string
	// URL is the HTTPS base URL, https://127.0.0.1:<port>.
	URL         string
	Port        int
	MetricsAddr string
	ProbeAddr   string
	// CA signed the serving certificate.
	CA *TestCA
	// HTTPClient trusts CA and keeps connections alive.
	HTTPClient *http.Client
	// Process is the running binary: its arguments, log, Stop.
	*Process

	logf func(string, ...any)
}

// setDefaults fills in the options left empty; readyTimeout is the wait for /readyz.
func (opts *WebhookOptions) setDefaults(readyTimeout time.Duration) {
	if opts.Name == "" {
		opts.Name = "netpol-guard"
	}
	if opts.Mode == "" {
		opts.Mode = "warn"
	}
	if opts.MinHistory == 0 {
		opts.MinHistory = time.Millisecond
	}
	if opts.AnyNodeWriters == nil {
		opts.AnyNodeWriters = []string{AgentUser}
	}
	if opts.PodCIDR == "" {
		opts.PodCIDR = "10.244.0.0/16"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = readyTimeout
	}
}

// StartWebhook runs `netpol-guard webhook` against the control plane with serving
// certificates from a test CA, on free ports, and waits until /readyz answers 200
// (informers synced, snapshot loaded). The control plane stops it on Stop.
func StartWebhook(ctx context.Context, cp *ControlPlane, opts WebhookOptions) (*Webhook, error) {
	bin, err := cp.Binary(ctx)
	if err != nil {
		return nil, err
	}
	opts.setDefaults(2 * time.Minute)
	dir := filepath.Join(cp.Dir, "webhook-"+opts.Name)
	certDir := filepath.Join(dir, "certs")
	ca, err := WriteServingCerts(certDir)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	w := &Webhook{
		Name: opts.Name, Port: ports[0], CA: ca,
		URL:         "https://127.0.0.1:" + strconv.Itoa(ports[0]),
		MetricsAddr: "127.0.0.1:" + strconv.Itoa(ports[1]),
		ProbeAddr:   "127.0.0.1:" + strconv.Itoa(ports[2]),
		logf:        cp.logf,
	}
	w.HTTPClient = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12},
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	args := append([]string{"webhook", "--kubeconfig", cp.Kubeconfig, "--cert-dir", certDir}, webhookArgs(w, opts)...)
	if err := w.launch(ctx, cp, bin, args, filepath.Join(dir, "webhook.log"), opts.ReadyTimeout); err != nil {
		return nil, err
	}
	return w, nil
}

// webhookArgs are the flags every test webhook runs with, after those that set up TLS.
func webhookArgs(w *Webhook, opts WebhookOptions) []string {
	args := []string{
		"--port", strconv.Itoa(w.Port),
		"--metrics-bind-address", w.MetricsAddr,
		"--health-probe-bind-address", w.ProbeAddr,
		"--mode", opts.Mode,
		"--min-history", opts.MinHistory.String(),
		"--token-audience", TokenAudience,
		"--pod-cidr", opts.PodCIDR,
		"--shutdown-delay", "0s",
		"--graceful-timeout", "10s",
	}
	if len(opts.FlowWriters) > 0 {
		args = append(args, "--flow-writers", strings.Join(opts.FlowWriters, ","))
	}
	if len(opts.AnyNodeWriters) > 0 {
		args = append(args, "--flow-writers-any-node", strings.Join(opts.AnyNodeWriters, ","))
	}
	if opts.SnapshotPath != "" {
		args = append(args, "--snapshot-path", opts.SnapshotPath)
	}
	return append(args, opts.Args...)
}

// launch starts the webhook binary with args and waits until /readyz answers 200.
func (w *Webhook) launch(ctx context.Context, cp *ControlPlane, bin string, args []string, logPath string, readyTimeout time.Duration) error {
	start := time.Now()
	p, err := startProcess(cp, "netpol-guard webhook "+w.Name, append([]string{bin}, args...), logPath)
	if err != nil {
		return err
	}
	w.Process = p
	if err := w.waitReady(ctx, readyTimeout); err != nil {
		_ = w.Stop()
		return fmt.Errorf("%w\n--- webhook log (%s) ---\n%s", err, w.LogPath, w.Logs())
	}
	cp.logf("Webhook %s (pid %d) ready at %s in %s (netpol-guard %s)", w.Name, w.PID(), w.URL,
		time.Since(start).Round(100*time.Millisecond), strings.Join(args, " "))
	return nil
}

func (w *Webhook) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	probe := &http.Client{Timeout: time.Second}
	var last string
	for {
		select {
		case <-w.exited:
			return fmt.Errorf("netpol-guard webhook exited before it was ready: %v", w.exitErr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := probe.Get("http://" + w.ProbeAddr + "/readyz"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netpol-guard webhook not ready after %s: /readyz: %s", timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RegisterOptions configures Register.
type RegisterOptions struct {
	// Name of the ValidatingWebhookConfiguration; default the webhook's name.
	Name string
	// NamespaceSelector picks the namespaces whose policies are judged; default all but
	// kube-system and the netpol-guard namespace.
	NamespaceSelector *metav1.LabelSelector
	// ProbeNamespace is a namespace the selector picks, where a server-side dry run shows
	// when the API server has started calling the webhook; default "default".
	ProbeNamespace string
	// FailurePolicy; default Fail, so that a broken webhook fails loudly.
	FailurePolicy admissionregistrationv1.FailurePolicyType
}

// ExcludeNamespaces selects every namespace but those named.
func ExcludeNamespaces(names ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: names,
	}}}
}

// OnlyNamespaces selects the namespaces named.
func OnlyNamespaces(names ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: names,
	}}}
}

// Register creates the ValidatingWebhookConfiguration that sends NetworkPolicy CREATE,
// UPDATE and DELETE to the webhook's URL (caBundle the test CA, sideEffects NoneOnDryRun,
// timeout 5 s, admissionReviewVersions v1), then waits until the API server calls it: the
// API server picks up webhook configurations asynchronously.
func (w *Webhook) Register(ctx context.Context, cp *ControlPlane, opts RegisterOptions) error {
	if opts.Name == "" {
		opts.Name = w.Name
	}
	if opts.NamespaceSelector == nil {
		opts.NamespaceSelector = ExcludeNamespaces("kube-system", GuardNamespace)
	}
	if opts.ProbeNamespace == "" {
		opts.ProbeNamespace = "default"
	}
	if opts.FailurePolicy == "" {
		opts.FailurePolicy = admissionregistrationv1.Fail
	}
	url := w.URL + webhook.ValidatePath
	vwc := networkPolicyWebhook(opts.Name, admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: w.CA.CertPEM},
		opts.NamespaceSelector, opts.FailurePolicy)
	if err := cp.Client.Create(ctx, vwc); err != nil {
		return fmt.Errorf("creating ValidatingWebhookConfiguration %s: %w", opts.Name, err)
	}

	// A dry-run create the webhook admits silently (its selector matches no pod); once the
	// webhook's request counter moves, the API server is calling it.
	probe := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: opts.ProbeNamespace, Name: "netpol-guard-e2e-probe"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{
			MatchLabels: map[string]string{"netpol-guard.io/e2e-probe": "matches-nothing"},
		}},
	}
	base, err := w.Metric(ctx, "netpol_guard_admission_requests_total")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cp.Client.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		if err != nil && !apierrors.IsAlreadyExists(err) && time.Now().After(deadline) {
			return fmt.Errorf("probing the webhook through the API server: %w", err)
		}
		n, merr := w.Metric(ctx, "netpol_guard_admission_requests_total")
		if merr != nil {
			return merr
		}
		if n > base {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server did not call webhook %s within 30s of registering it", w.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Metric returns the sum of a metric's samples on the webhook's /metrics (0 when absent).
func (w *Webhook) Metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.MetricsAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading webhook metrics: %w", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// PushResult is the flow API's answer to a push.
type PushResult struct {
	Status int
	Body   string
	// From a 200: records added to the cache, those that resolved to nothing known, and
	// those a node-bound writer sent with no end on its node.
	Accepted   int `json:"accepted"`
	Unresolved int `json:"unresolved"`
	Rejected   int `json:"rejected"`
	// From an error answer.
	Error string `json:"error"`
	Line  int    `json:"line"`
	Field string `json:"field"`
}

// PushFlows sends JSON Lines flow records to POST /v1/flows with a bearer token.
func (w *Webhook) PushFlows(ctx context.Context, token string, body []byte) (PushResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL+flowapi.FlowsPath, bytes.NewReader(body))
	if err != nil {
		return PushResult{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := w.HTTPClient.Do(req)
	if err != nil {
		return PushResult{}, fmt.Errorf("pushing flows: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return PushResult{}, fmt.Errorf("pushing flows: %w", err)
	}
	res := PushResult{Status: resp.StatusCode, Body: string(b)}
	if err := json.Unmarshal(b, &res); err != nil {
		return res, fmt.Errorf("pushing flows: answer %d is not JSON: %q", resp.StatusCode, b)
	}
	return res, nil
}

// freePorts finds n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
