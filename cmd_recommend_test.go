package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"

	"github.com/netpol-guard/netpol-guard/cli"
	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/flows"
)

// readerToken is the token of the one flow reader of flowServer.
const readerToken = "reader-token"

type readerAuth struct{}

func (readerAuth) Authenticate(_ context.Context, token string) (flowapi.User, error) {
	if token != readerToken {
		return flowapi.User{}, fmt.Errorf("%w: unknown token", flowapi.ErrUnauthenticated)
	}
	return flowapi.User{Name: "reader"}, nil
}

// flowServer serves the flow API over TLS, as the webhook does, with a cache that holds
// the records of flowsFile resolved in the cluster of clusterFile. It returns the server's
// URL, and files holding its CA certificate and readerToken.
func flowServer(t *testing.T, clusterFile, flowsFile string) (url, caFile, tokenFile string) {
	t.Helper()
	snap, err := cluster.Load(clusterFile)
	if err != nil {
		t.Fatal(err)
	}
	live := cluster.LiveFromObjects(snap, cluster.LiveOptions{})
	f, err := os.Open(flowsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cache := flows.New(flows.Options{})
	err = flows.Read(f, flowsFile, func(_ int, rec flows.Record) error {
		if o, ok := live.Resolve(rec); ok {
			cache.Add(o)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(flowapi.FlowsPath, flowapi.NewHandler(flowapi.HandlerOptions{
		Cache: cache, Resolver: live, Placement: live, NodeAddress: live.NodeAddress,
		Authenticator: readerAuth{}, Readers: []string{"reader"}, Log: testr.New(t),
	}))
	ts := httptest.NewTLSServer(mux)
	t.Cleanup(ts.Close)

	dir := t.TempDir()
	caFile, tokenFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(readerToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return ts.URL, caFile, tokenFile
}

func runRecommend(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run("netpol-guard", append([]string{"recommend"}, args...), strings.NewReader(""), &stdout, &stderr); code != cli.ExitOK {
		t.Fatalf("recommend %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

// policiesOnly drops a recommendation's comment lines, which count the flow records.
func policiesOnly(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(line, "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func TestRecommendFromTheWebhookIsRecommendFromItsExport(t *testing.T) {
	const clusterFile, flowsFile = "examples/cluster.yaml", "examples/flows.jsonl"
	url, caFile, tokenFile := flowServer(t, clusterFile, flowsFile)

	// The records the webhook serves, as `flows export` writes them.
	var export bytes.Buffer
	if code := run("netpol-guard", []string{"flows", "export", "--server", url, "--token-file", tokenFile, "--ca-file", caFile}, strings.NewReader(""), &export, os.Stderr); code != cli.ExitOK {
		t.Fatalf("flows export: exit %d", code)
	}
	exported := filepath.Join(t.TempDir(), "exported.jsonl")
	if err := os.WriteFile(exported, export.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, scope := range [][]string{{"-n", "shop"}, {"-A", "--staged"}} {
		t.Run(strings.Join(scope, " "), func(t *testing.T) {
			fromServer := runRecommend(t, append([]string{"--cluster", clusterFile, "--server", url, "--token-file", tokenFile, "--ca-file", caFile}, scope...)...)
			fromExport := runRecommend(t, append([]string{"--cluster", clusterFile, "--flows", exported}, scope...)...)
			if fromServer != fromExport || !strings.Contains(fromServer, "name: allow-") {
				t.Errorf("recommend --server:\n%s\nrecommend --flows of its export:\n%s", fromServer, fromExport)
			}
			// The cache keeps one record per edge: the policies are those of the flows pushed.
			fromFile := runRecommend(t, append([]string{"--cluster", clusterFile, "--flows", flowsFile}, scope...)...)
			if policiesOnly(fromServer) != policiesOnly(fromFile) {
				t.Errorf("recommend --server:\n%s\nrecommend --flows %s:\n%s", fromServer, flowsFile, fromFile)
			}
		})
	}
}

func TestRecommendFromTheWebhookNeedsTheReadersToken(t *testing.T) {
	url, caFile, _ := flowServer(t, "examples/cluster.yaml", "examples/flows.jsonl")
	wrong := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(wrong, []byte("someone-else"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run("netpol-guard", []string{"recommend", "-n", "shop", "--cluster", "examples/cluster.yaml", "--server", url, "--token-file", wrong, "--ca-file", caFile}, strings.NewReader(""), &stdout, &stderr)
	if code != cli.ExitBadInput || stdout.Len() > 0 || !strings.Contains(stderr.String(), "401") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2, nothing written, the server's 401", code, stdout.String(), stderr.String())
	}
}

// TestRecommendFromTheAPIServerIsRecommendFromItsObjects lists the cluster from a real
// kube-apiserver holding the objects of the cluster file; the cluster policy kinds, whose
// CRDs it lacks, are not served and so hold nothing.
func TestRecommendFromTheAPIServerIsRecommendFromItsObjects(t *testing.T) {
	if os.Getenv(harness.AssetsEnv) == "" {
		t.Skip(`KUBEBUILDER_ASSETS is not set; run: export KUBEBUILDER_ASSETS="$(bash e2e/tools/build.sh)"`)
	}
	const clusterFile, flowsFile = "examples/cluster.yaml", "examples/flows.jsonl"
	cp, err := harness.StartControlPlane(harness.ControlPlaneOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	snap, err := cluster.Load(clusterFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.CreateCluster(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	url, caFile, tokenFile := flowServer(t, clusterFile, flowsFile)
	for _, scope := range [][]string{{"-n", "shop"}, {"-A"}} {
		t.Run(strings.Join(scope, " "), func(t *testing.T) {
			fromAPIServer := runRecommend(t, append([]string{"--kubeconfig", cp.Kubeconfig, "--server", url, "--token-file", tokenFile, "--ca-file", caFile}, scope...)...)
			fromFile := runRecommend(t, append([]string{"--cluster", clusterFile, "--server", url, "--token-file", tokenFile, "--ca-file", caFile}, scope...)...)
			if fromAPIServer != fromFile || !strings.Contains(fromFile, "name: allow-") {
				t.Errorf("recommend with the API server's objects:\n%s\nrecommend --cluster %s:\n%s", fromAPIServer, clusterFile, fromFile)
			}
		})
	}
}
