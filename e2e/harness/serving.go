package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol-guard/netpol-guard/webhook"
)

// ServingOptions choose how a webhook started by StartWebhookServing gets its serving
// certificate and where the test reaches it, where StartWebhook uses a test CA and a free
// port on 127.0.0.1.
type ServingOptions struct {
	// TLSArgs are the serving-certificate flags, e.g. "--cert-dir", dir, or "--self-signed",
	// "--namespace", ns, ....
	TLSArgs []string
	// Port is --port (the webhook listens on every address of its network namespace); 0: a
	// free port.
	Port int
	// Host is the address in URL; default 127.0.0.1.
	Host string
	// CA and ServerName are what HTTPClient trusts and verifies the certificate against;
	// they can be set later with Trust (a self-signed webhook makes its CA as it starts).
	CA         *TestCA
	ServerName string
}

// StartWebhookServing runs `netpol-guard webhook` as StartWebhook does, but with the
// serving certificate and port of srv, and waits until /readyz answers 200.
func StartWebhookServing(ctx context.Context, cp *ControlPlane, opts WebhookOptions, srv ServingOptions) (*Webhook, error) {
	bin, err := cp.Binary(ctx)
	if err != nil {
		return nil, err
	}
	opts.setDefaults(time.Minute)
	if srv.Host == "" {
		srv.Host = "127.0.0.1"
	}
	need := 2
	if srv.Port == 0 {
		need++
	}
	ports, err := freePorts(need)
	if err != nil {
		return nil, err
	}
	if srv.Port == 0 {
		srv.Port = ports[2]
	}
	if err := portFree(srv.Port); err != nil {
		return nil, err
	}
	dir := filepath.Join(cp.Dir, "webhook-"+opts.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	w := &Webhook{
		Name: opts.Name, Port: srv.Port,
		URL:         "https://" + net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)),
		MetricsAddr: "127.0.0.1:" + strconv.Itoa(ports[0]),
		ProbeAddr:   "127.0.0.1:" + strconv.Itoa(ports[1]),
		logf:        cp.logf,
	}
	w.Trust(srv.CA, srv.ServerName)
	args := append(append([]string{"webhook", "--kubeconfig", cp.Kubeconfig}, srv.TLSArgs...), webhookArgs(w, opts)...)
	if err := w.launch(ctx, cp, bin, args, filepath.Join(dir, "webhook.log"), opts.ReadyTimeout); err != nil {
		return nil, err
	}
	return w, nil
}

// portFree fails when something already listens on port (on any address).
func portFree(port int) error {
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("port %d is taken: %w", port, err)
	}
	return l.Close()
}

// Trust makes HTTPClient (and PeerCertificate) trust ca and verify the webhook's
// certificate against serverName (default: URL's host). A nil ca trusts the system roots.
func (w *Webhook) Trust(ca *TestCA, serverName string) {
	w.CA = ca
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if ca != nil {
		cfg.RootCAs = ca.Pool
	}
	w.HTTPClient = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     cfg,
			MaxIdleConns:        16,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// PeerCertificate opens a new TLS connection to the webhook, verified as HTTPClient
// verifies, and returns the certificate it served.
func (w *Webhook) PeerCertificate(ctx context.Context) (*x509.Certificate, error) {
	cfg := w.HTTPClient.Transport.(*http.Transport).TLSClientConfig.Clone()
	d := &tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 5 * time.Second}}
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(w.URL, "https://"))
	if err != nil {
		return nil, fmt.Errorf("TLS handshake with webhook %s: %w", w.Name, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// CreateClusterIPService creates Service namespace/name of type ClusterIP at clusterIP
// (inside the API server's service range), port → targetPort over TCP.
func (cp *ControlPlane) CreateClusterIPService(ctx context.Context, namespace, name, clusterIP string, port, targetPort int32) error {
	if err := cp.EnsureNamespace(ctx, namespace, nil); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: clusterIP,
			Ports: []corev1.ServicePort{{
				Name: "https", Protocol: corev1.ProtocolTCP, Port: port, TargetPort: intstr.FromInt32(targetPort),
			}},
		},
	}
	if err := cp.Client.Create(ctx, svc); err != nil {
		return fmt.Errorf("Service %s/%s at %s: %w", namespace, name, clusterIP, err)
	}
	return nil
}

// ServiceWebhookOptions configures RegisterService.
type ServiceWebhookOptions struct {
	// Name of the ValidatingWebhookConfiguration.
	Name string
	// The Service the API server calls, at webhook.ValidatePath.
	Namespace, Service string
	Port               int32
	// CABundle is clientConfig.caBundle; empty for a webhook that injects its own.
	CABundle []byte
	// NamespaceSelector picks the namespaces whose policies are judged.
	NamespaceSelector *metav1.LabelSelector
	// FailurePolicy; default Fail.
	FailurePolicy admissionregistrationv1.FailurePolicyType
}

// ServiceWebhookConfiguration is the configuration RegisterService creates: NetworkPolicy
// CREATE, UPDATE and DELETE sent to a Service, as the chart registers the webhook.
func ServiceWebhookConfiguration(opts ServiceWebhookOptions) *admissionregistrationv1.ValidatingWebhookConfiguration {
	if opts.FailurePolicy == "" {
		opts.FailurePolicy = admissionregistrationv1.Fail
	}
	path := webhook.ValidatePath
	return networkPolicyWebhook(opts.Name, admissionregistrationv1.WebhookClientConfig{
		Service: &admissionregistrationv1.ServiceReference{
			Namespace: opts.Namespace, Name: opts.Service, Port: &opts.Port, Path: &path,
		},
		CABundle: opts.CABundle,
	}, opts.NamespaceSelector, opts.FailurePolicy)
}

// networkPolicyWebhook is the ValidatingWebhookConfiguration name that sends NetworkPolicy
// CREATE, UPDATE and DELETE in the namespaces selected to client (sideEffects NoneOnDryRun,
// timeout 5 s, admissionReviewVersions v1).
func networkPolicyWebhook(name string, client admissionregistrationv1.WebhookClientConfig, namespaces *metav1.LabelSelector, failurePolicy admissionregistrationv1.FailurePolicyType) *admissionregistrationv1.ValidatingWebhookConfiguration {
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	scope := admissionregistrationv1.NamespacedScope
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         "networkpolicies.netpol-guard.io",
			ClientConfig: client,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{"networking.k8s.io"}, APIVersions: []string{"v1"},
					Resources: []string{"networkpolicies"}, Scope: &scope,
				},
			}},
			NamespaceSelector:       namespaces,
			SideEffects:             &sideEffects,
			FailurePolicy:           &failurePolicy,
			TimeoutSeconds:          new(int32(5)),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

// RegisterService creates ServiceWebhookConfiguration(opts); it does not wait for the API
// server to call the webhook (WaitCalled does).
func RegisterService(ctx context.Context, cp *ControlPlane, opts ServiceWebhookOptions) error {
	if err := cp.Client.Create(ctx, ServiceWebhookConfiguration(opts)); err != nil {
		return fmt.Errorf("creating ValidatingWebhookConfiguration %s: %w", opts.Name, err)
	}
	return nil
}

// WaitCalled waits until the API server calls the webhook for a policy in probeNamespace:
// it dry-runs the creation of a policy that selects no pod there until the webhook's
// request counter moves. A probe namespace only a new version of a webhook configuration
// selects tells when the API server has picked that version up.
func (w *Webhook) WaitCalled(ctx context.Context, cp *ControlPlane, probeNamespace string, timeout time.Duration) error {
	probe := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: probeNamespace, Name: "netpol-guard-e2e-probe"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{
			MatchLabels: map[string]string{"netpol-guard.io/e2e-probe": "matches-nothing"},
		}},
	}
	base, err := w.Metric(ctx, "netpol_guard_admission_requests_total")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		if err := cp.Client.Create(ctx, probe.DeepCopy(), client.DryRunAll); err != nil && !apierrors.IsAlreadyExists(err) {
			lastErr = err
		}
		n, err := w.Metric(ctx, "netpol_guard_admission_requests_total")
		if err != nil {
			return err
		}
		if n > base {
			return nil
		}
		if !w.Running() {
			return fmt.Errorf("webhook %s exited: %v", w.Name, w.exitErr)
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("the API server did not call webhook %s for namespace %s within %s", w.Name, probeNamespace, timeout), lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
