// Package e2e holds end-to-end tests against a real kube-apiserver and etcd,
// built from Go module sources by e2e/tools/build.sh.
package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// requireAssets skips the test unless KUBEBUILDER_ASSETS names the directory
// with the built kube-apiserver and etcd (see e2e/tools/README.md).
func requireAssets(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" && os.Getenv("CI") != "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set in CI: scripts/test.sh builds the control plane and sets it")
	}
	if dir == "" {
		t.Skip(`KUBEBUILDER_ASSETS is not set; run: export KUBEBUILDER_ASSETS="$(e2e/tools/build.sh)"`)
	}
	return dir
}

// TestSmokeControlPlane starts the real control plane with envtest, creates a
// Namespace, reads it back and stops.
func TestSmokeControlPlane(t *testing.T) {
	dir := requireAssets(t)

	env := &envtest.Environment{BinaryAssetsDirectory: dir}
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("envtest start (assets %s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("envtest stop: %v", err)
		}
	})
	t.Logf("control plane up in %s", time.Since(start).Round(time.Millisecond))

	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	t.Logf("kube-apiserver %s", v.GitVersion)
	if !strings.HasPrefix(v.GitVersion, "v1.") || strings.HasPrefix(v.GitVersion, "v0.0.0") {
		t.Errorf("server version %q: binary not version-stamped", v.GitVersion)
	}

	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "smoke"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	var got corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: "smoke"}, &got); err != nil {
		t.Fatalf("get namespace: %v", err)
	}
	if got.UID == "" || got.Status.Phase != corev1.NamespaceActive {
		t.Errorf("namespace %s: uid %q phase %q", got.Name, got.UID, got.Status.Phase)
	}
}
