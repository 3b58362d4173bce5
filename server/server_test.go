package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// TestRunServesAdmissionsAndWritesSnapshotOnShutdown runs the webhook in-process against a
// real kube-apiserver: it becomes ready, answers a hand-built AdmissionReview at
// webhook.ValidatePath, and when its context ends returns nil having written its snapshot.
func TestRunServesAdmissionsAndWritesSnapshotOnShutdown(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip(`KUBEBUILDER_ASSETS is not set; run: export KUBEBUILDER_ASSETS="$(bash e2e/tools/build.sh)"`)
	}
	ctrllog.SetLogger(testr.New(t))

	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("envtest start (assets %s): %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("envtest stop: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}

	// Serving certificate for 127.0.0.1 in a cert directory, as cert-manager would mount it.
	ca, err := harness.NewCA("netpol-guard server test")
	if err != nil {
		t.Fatal(err)
	}
	issued, err := ca.Issue(time.Hour, []string{"localhost"}, net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": issued.CertPEM, "tls.key": issued.KeyPEM} {
		if err := os.WriteFile(filepath.Join(certDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ports := freePorts(t, 2)
	snapshot := filepath.Join(t.TempDir(), "flows.snapshot")

	opts := DefaultOptions()
	opts.Config = cfg
	opts.Host = "127.0.0.1"
	opts.Port = ports[0]
	opts.HealthProbeBindAddress = "127.0.0.1:" + strconv.Itoa(ports[1])
	opts.MetricsBindAddress = "0"
	opts.TLS.CertDir = certDir
	opts.SnapshotPath = snapshot
	opts.ShutdownDelay = 100 * time.Millisecond
	opts.GracefulTimeout = 10 * time.Second

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()

	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1])
	eventually(t, done, "/readyz answers 200", func() bool {
		resp, err := http.Get(readyz)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	https := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	review := admissionReview(t)
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://127.0.0.1:%d%s?timeout=5s", ports[0], webhook.ValidatePath)
	resp, err := https.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got admissionv1.AdmissionReview
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	switch {
	case err != nil:
		t.Fatalf("decoding the answer (%s): %v", resp.Status, err)
	case resp.StatusCode != http.StatusOK:
		t.Fatalf("POST %s: %s", webhook.ValidatePath, resp.Status)
	case got.Kind != "AdmissionReview" || got.APIVersion != "admission.k8s.io/v1":
		t.Errorf("answer is a %s %s, want admission.k8s.io/v1 AdmissionReview", got.APIVersion, got.Kind)
	case got.Response == nil:
		t.Fatal("answer has no response")
	case got.Response.UID != review.Request.UID:
		t.Errorf("answer for uid %q, want %q", got.Response.UID, review.Request.UID)
	case !got.Response.Allowed:
		t.Errorf("a default-deny with no flows observed is denied: %+v", got.Response.Result)
	}

	if _, err := os.Stat(snapshot); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot written before shutdown (interval %s): %v", opts.SnapshotInterval, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after its context ended, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
	if found, err := flows.New(flows.Options{}).LoadFile(snapshot); !found || err != nil {
		t.Errorf("snapshot after shutdown: found %v, %v", found, err)
	}
}

// admissionReview is what the API server sends for the create of a default-deny in shop.
func admissionReview(t *testing.T) *admissionv1.AdmissionReview {
	t.Helper()
	policy := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	raw, err := json.Marshal(policy)
	if err != nil {
		t.Fatal(err)
	}
	gvk := metav1.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}
	gvr := metav1.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}
	return &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("0b4f2a5e-8d0c-4c2e-9f31-6a1d7e3b9c10"),
			Kind:      gvk,
			Resource:  gvr,
			Name:      policy.Name,
			Namespace: policy.Namespace,
			Operation: admissionv1.Create,
			UserInfo:  authenticationv1.UserInfo{Username: "alice"},
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
}

// eventually waits up to a minute for cond, failing early if Run has returned.
func eventually(t *testing.T, done <-chan error, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, time.Minute, what, func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned %v while waiting until %s", err, what)
		default:
		}
		return cond()
	})
}

// freePorts finds n free TCP ports on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
