package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsEnv names the directory with kube-apiserver, etcd and kubectl.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// AdminUser is the user the kubeconfig (and so kubectl and the webhook) authenticates as:
// envtest's administrator, in group system:masters.
const AdminUser = "admin"

// ControlPlaneOptions configures StartControlPlane.
type ControlPlaneOptions struct {
	// Assets is the directory with kube-apiserver, etcd and kubectl; default $KUBEBUILDER_ASSETS.
	Assets string
	// Dir is where the kubeconfig, certificates and logs go; a new temporary directory,
	// removed by Stop, when empty.
	Dir string
	// Logf reports progress; nil: silent.
	Logf func(format string, args ...any)
	// WebhookClientCert makes kube-apiserver present a client certificate
	// (WebhookClientName, signed by the CA in ControlPlane.WebhookClientCAFile) to every
	// admission webhook, through an AdmissionConfiguration, as a cluster admin would
	// configure it for netpol-guard's --admission-client-ca.
	WebhookClientCert bool
}

// WebhookClientName is the common name of the client certificate kube-apiserver presents to
// webhooks with ControlPlaneOptions.WebhookClientCert.
const WebhookClientName = "kube-apiserver-webhook-client"

// ControlPlane is a running kube-apiserver and etcd.
type ControlPlane struct {
	Env       *envtest.Environment
	Config    *rest.Config
	Client    client.Client
	Clientset kubernetes.Interface
	// Version is the API server's version, e.g. v1.37.2.
	Version string
	// Dir holds the kubeconfig and whatever else the harness writes.
	Dir string
	// Kubeconfig is a kubeconfig file for AdminUser.
	Kubeconfig string
	// KubectlPath is the kubectl built beside kube-apiserver.
	KubectlPath string
	// WebhookClientCAFile signs the client certificate kube-apiserver presents to webhooks
	// (ControlPlaneOptions.WebhookClientCert); empty otherwise.
	WebhookClientCAFile string

	logf       func(format string, args ...any)
	removeDir  bool
	kubeCache  string
	stoppables []func() error

	binOnce sync.Once
	bin     string
	binErr  error
}

// StartControlPlane starts kube-apiserver and etcd with envtest and writes a kubeconfig for
// them.
func StartControlPlane(opts ControlPlaneOptions) (*ControlPlane, error) {
	assets := opts.Assets
	if assets == "" {
		assets = os.Getenv(AssetsEnv)
	}
	if assets == "" {
		return nil, fmt.Errorf("$%s is not set: run export %s=\"$(bash e2e/tools/build.sh)\"", AssetsEnv, AssetsEnv)
	}
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("control plane binaries in %s: %w (e2e/tools/build.sh builds them)", assets, err)
		}
	}
	cp := &ControlPlane{Dir: opts.Dir, KubectlPath: filepath.Join(assets, "kubectl"), logf: opts.Logf}
	if cp.logf == nil {
		cp.logf = func(string, ...any) {}
	}
	if cp.Dir == "" {
		dir, err := os.MkdirTemp("", "netpol-guard-e2e-")
		if err != nil {
			return nil, err
		}
		cp.Dir, cp.removeDir = dir, true
	}

	start := time.Now()
	cp.Env = &envtest.Environment{BinaryAssetsDirectory: assets}
	if opts.WebhookClientCert {
		config, err := cp.writeWebhookClientConfig()
		if err != nil {
			cp.cleanDir()
			return nil, err
		}
		cp.Env.ControlPlane.GetAPIServer().Configure().Set("admission-control-config-file", config)
	}
	cfg, err := cp.Env.Start()
	if err != nil {
		cp.cleanDir()
		return nil, fmt.Errorf("starting kube-apiserver and etcd (assets %s): %w", assets, err)
	}
	cp.Config = cfg
	fail := func(err error) (*ControlPlane, error) {
		_ = cp.Stop()
		return nil, err
	}
	if cp.Client, err = client.New(cfg, client.Options{}); err != nil {
		return fail(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fail(err)
	}
	cp.Clientset = cs
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fail(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return fail(fmt.Errorf("server version: %w", err))
	}
	cp.Version = v.GitVersion

	cp.Kubeconfig = filepath.Join(cp.Dir, "kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, cp.Env.KubeConfig, 0o600); err != nil {
		return fail(err)
	}
	cp.kubeCache = filepath.Join(cp.Dir, "kubectl-cache")
	cp.logf("Control plane up: kube-apiserver %s at %s in %s", cp.Version, cfg.Host, time.Since(start).Round(100*time.Millisecond))
	return cp, nil
}

// writeWebhookClientConfig writes a client CA, a client certificate it signed, the
// kubeconfig kube-apiserver presents it from (user "*": every webhook) and the
// AdmissionConfiguration naming that kubeconfig; it returns the AdmissionConfiguration's
// path.
func (cp *ControlPlane) writeWebhookClientConfig() (string, error) {
	ca, err := NewCA("netpol-guard e2e webhook client CA")
	if err != nil {
		return "", err
	}
	issued, err := ca.IssueClient(WebhookClientName)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cp.Dir, "webhook-client")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate: %s
    client-key: %s
`, path("tls.crt"), path("tls.key"))
	admission := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %s
`, path("kubeconfig"))
	for name, data := range map[string][]byte{"ca.crt": ca.CertPEM, "tls.crt": issued.CertPEM, "tls.key": issued.KeyPEM,
		"kubeconfig": []byte(kubeconfig), "admission.yaml": []byte(admission)} {
		if err := os.WriteFile(path(name), data, 0o600); err != nil {
			return "", err
		}
	}
	cp.WebhookClientCAFile = path("ca.crt")
	return path("admission.yaml"), nil
}

// OnStop registers fn to run when the control plane stops, before it does (last registered,
// first run): webhooks stop before the API server they watch.
func (cp *ControlPlane) OnStop(fn func() error) { cp.stoppables = append(cp.stoppables, fn) }

// Stop stops what was registered with OnStop, then the API server and etcd, and removes
// the temporary directory.
func (cp *ControlPlane) Stop() error {
	var errs []error
	for i := len(cp.stoppables) - 1; i >= 0; i-- {
		errs = append(errs, cp.stoppables[i]())
	}
	cp.stoppables = nil
	if cp.Env != nil {
		if err := cp.Env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping kube-apiserver and etcd: %w", err))
		}
		cp.Env = nil
	}
	cp.cleanDir()
	return errors.Join(errs...)
}

func (cp *ControlPlane) cleanDir() {
	if cp.removeDir {
		os.RemoveAll(cp.Dir)
		cp.removeDir = false
	}
}

// KubectlResult is what a kubectl run printed and how it ended.
type KubectlResult struct {
	// Args are kubectl's arguments as given (the kubeconfig comes from $KUBECONFIG).
	Args           []string
	Stdout, Stderr string
	// Output is stdout and stderr interleaved as a terminal shows them.
	Output string
	// ExitCode is kubectl's exit status; -1 if it did not run to an exit.
	ExitCode int
}

// CommandLine is the command as a user would type it: "kubectl apply -f x.yaml".
func (r KubectlResult) CommandLine() string {
	return "kubectl " + strings.Join(r.Args, " ")
}

// String shows the command, its output and its exit status, for test failures.
func (r KubectlResult) String() string {
	return fmt.Sprintf("$ %s\n[exit %d]\n[stdout]\n%s[stderr]\n%s", r.CommandLine(), r.ExitCode, r.Stdout, r.Stderr)
}

// Kubectl runs the real kubectl against the control plane as AdminUser. A non-zero exit is
// not an error: it is in the result. err is for a kubectl that could not run at all.
func (cp *ControlPlane) Kubectl(ctx context.Context, args ...string) (KubectlResult, error) {
	return cp.KubectlStdin(ctx, "", args...)
}

// KubectlStdin runs kubectl with stdin as its standard input ("-f -").
func (cp *ControlPlane) KubectlStdin(ctx context.Context, stdin string, args ...string) (KubectlResult, error) {
	res := KubectlResult{Args: args, ExitCode: -1}
	cmd := exec.CommandContext(ctx, cp.KubectlPath, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.Kubeconfig, "KUBECACHEDIR="+cp.kubeCache)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr, combined bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout = &teeWriter{mu: &mu, own: &stdout, all: &combined}
	cmd.Stderr = &teeWriter{mu: &mu, own: &stderr, all: &combined}
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	res.Stdout, res.Stderr, res.Output = stdout.String(), stderr.String(), combined.String()
	if exit, ok := errors.AsType[*exec.ExitError](err); ok {
		res.ExitCode = exit.ExitCode()
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("running %s: %w", res.CommandLine(), err)
	}
	res.ExitCode = 0
	return res, nil
}

// teeWriter writes to its own buffer and, in order with its sibling, to a shared one.
type teeWriter struct {
	mu       *sync.Mutex
	own, all *bytes.Buffer
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.own.Write(p)
	return t.all.Write(p)
}

// EnsureNamespace creates a namespace with labels, or adds the labels to it if it exists.
func (cp *ControlPlane) EnsureNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	err := cp.Client.Create(ctx, ns)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := cp.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return err
	}
	if len(labels) == 0 {
		return nil
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	for k, v := range labels {
		ns.Labels[k] = v
	}
	return cp.Client.Update(ctx, ns)
}

// TokenAudience is the audience of ServiceAccountToken's tokens, and the webhooks' the
// harness starts (--token-audience), as the chart issues the agent's projected token.
const TokenAudience = "netpol-guard"

// ServiceAccountToken creates the namespace and ServiceAccount if need be and returns a
// token for it from the TokenRequest API, for TokenAudience, valid for an hour.
func (cp *ControlPlane) ServiceAccountToken(ctx context.Context, namespace, name string) (string, error) {
	if err := cp.EnsureNamespace(ctx, namespace, nil); err != nil {
		return "", fmt.Errorf("namespace %s: %w", namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := cp.Client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("ServiceAccount %s/%s: %w", namespace, name, err)
	}
	hour := int64(3600)
	tr, err := cp.Clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour, Audiences: []string{TokenAudience}}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}
