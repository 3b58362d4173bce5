package e2e

// End to end on real parts, the way the product works in a cluster without Hubble: real TCP
// connections between pods (network namespaces of a lab node, through a DNAT'd Service
// address) → the node's kernel conntrack table → `netpol-guard agent`, a real process in
// the node's network namespace → its pushes over TLS, with a ServiceAccount token, to
// `netpol-guard webhook`, a real process here → the real API server calling that webhook
// when kubectl applies a NetworkPolicy.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/flows"
)

func TestAgentEndToEnd(t *testing.T) {
	assets := requireAssets(t)
	if why := harness.NetLabUnavailable(); why != "" {
		skipOrFailCI(t, why)
	}
	ctx := t.Context()
	start := time.Now()
	cp, built := startControlPlane(t, assets)

	lab, err := harness.NewNetLab()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	serverAddr := harness.LabServerIP + ":" + strconv.Itoa(harness.LabServerPort)
	serviceAddr := harness.LabServiceIP + ":" + strconv.Itoa(harness.LabServicePort)
	if err := lab.ServeTCPEcho(lab.Server, serverAddr); err != nil {
		t.Fatal(err)
	}

	// The lab as the API server knows it: its node, and its pods with their addresses.
	const ns, node = "e2e-agent", "lab-node"
	snap := harness.LabObjects(ns, map[string]string{modeKey: "enforce"}, node)
	if err := cp.CreateCluster(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}

	// The webhook, here; the agent's ServiceAccount writes flows, another one reads them.
	const readerAccount = "flow-reader"
	wh := startWebhook(t, cp, harness.WebhookOptions{
		Name: "agent-e2e", Mode: "warn", PodCIDR: harness.LabPodCIDR,
		Args: []string{"--flow-readers", "system:serviceaccount:" + harness.GuardNamespace + ":" + readerAccount},
	}, harness.RegisterOptions{NamespaceSelector: harness.OnlyNamespaces(ns), ProbeNamespace: ns})
	agentToken, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, harness.AgentAccount)
	if err != nil {
		t.Fatal(err)
	}
	readerToken, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, readerAccount)
	if err != nil {
		t.Fatal(err)
	}

	// The agent, in the node's network namespace, pushing over the uplink. The webhook's
	// certificate is for localhost: the agent verifies it against that name.
	dir := t.TempDir()
	tokenFile, caFile := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	for path, data := range map[string][]byte{tokenFile: []byte(agentToken), caFile: wh.CA.CertPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	agent, err := harness.StartAgent(ctx, cp, harness.AgentOptions{
		Netns:       lab.Node,
		WebhookURLs: []string{"https://" + harness.LabHostIP + ":" + strconv.Itoa(wh.Port)},
		CAFile:      caFile, ServerName: "localhost", TokenFile: tokenFile, NodeName: node,
		Interval: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of the agent ---\n%s", agent.Logs())
		}
		if err := agent.Stop(); err != nil {
			t.Errorf("stopping the agent: %v", err)
		}
	})
	t.Logf("set up in %s", time.Since(start).Round(100*time.Millisecond))

	// Real TCP from the client pod to the Service address, which the node DNATs to the
	// server pod's port 8080, until the webhook's cache holds the edge.
	want := flows.Record{
		Src:  flows.Peer{Namespace: ns, Workload: "Deployment/client"},
		Dst:  flows.Peer{Namespace: ns, Workload: "Deployment/server"},
		Port: harness.LabServerPort, Protocol: flows.ProtocolTCP,
	}
	var exported []flows.Record
	trafficStart := time.Now()
	deadline := trafficStart.Add(30 * time.Second)
	for {
		if err := lab.TCPEcho(ctx, lab.Client, serviceAddr); err != nil {
			t.Fatal(err)
		}
		exported = exportFlows(t, wh, readerToken)
		if len(exported) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no flow reached the webhook within 30s of traffic")
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("the webhook's cache held the edge %s after the traffic began", time.Since(trafficStart).Round(100*time.Millisecond))
	// Exactly the pod-to-pod edge, after DNAT: not the Service address, not the agent's own
	// pushes to the webhook over the uplink.
	time.Sleep(2 * time.Second) // two more intervals: later pushes must add nothing else
	exported = exportFlows(t, wh, readerToken)
	if len(exported) != 1 || !sameEdge(exported[0], want) {
		t.Fatalf("the webhook's flows:\n%s\nwant exactly %s → %s %s/%d", recordsText(exported), want.Src.Workload, want.Dst.Workload, want.Protocol, want.Port)
	}
	if got := exported[0]; got.Count < 1 || time.Since(got.LastSeen) > time.Minute {
		t.Errorf("edge count %d, last seen %v", got.Count, got.LastSeen)
	}

	// kubectl: a default-deny for the server's namespace cuts the flow the kernel saw.
	res := kubectlApply(t, cp, denyIngress(ns, "default-deny", nil))
	t.Logf("$ %s\n%s", res.CommandLine(), res.Output)
	wantRejected(t, res,
		"would cut 1 active flow, e.g. e2e-agent/client → e2e-agent/server TCP/8080",
		"Cut by create e2e-agent/default-deny (mode enforce, from the namespace label)")
	wantAbsent(t, cp, ns, "default-deny")
	// A policy that allows it first, then the default-deny: both admitted.
	wantSilent(t, kubectlApply(t, cp, allowServerFromClient(ns)))
	wantSilent(t, kubectlApply(t, cp, denyIngress(ns, "default-deny", nil)))
	wantPresent(t, cp, ns, "allow-client")
	wantPresent(t, cp, ns, "default-deny")

	// The agent saw its own pushes in the node's table and left them out.
	metrics := agentMetrics(t, lab)
	for _, m := range []string{`netpol_guard_agent_conntrack_ignored_total{reason="self"}`, "netpol_guard_agent_edges_pushed_total"} {
		if v := harness.MetricSum(metrics, m); v < 1 {
			t.Errorf("agent metric %s = %v, want at least 1", m, v)
		}
	}
	if v := harness.MetricSum(metrics, "netpol_guard_agent_push_errors_total"); v != 0 {
		t.Errorf("agent push errors: %v", v)
	}
	if !agent.Running() {
		t.Errorf("the agent exited")
	}
}

// allowServerFromClient allows the client pods into the server pods on TCP 8080.
func allowServerFromClient(ns string) *networkingv1.NetworkPolicy {
	port, tcp := intstr.FromInt32(harness.LabServerPort), corev1.ProtocolTCP
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "allow-client"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
}

// exportFlows reads the webhook's flow cache through GET /v1/flows.
func exportFlows(t *testing.T, wh *harness.Webhook, token string) []flows.Record {
	t.Helper()
	var buf bytes.Buffer
	if err := flowapi.Export(t.Context(), wh.HTTPClient, wh.URL, token, &buf); err != nil {
		t.Fatal(err)
	}
	recs, err := flows.ReadAll(&buf, "export")
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func sameEdge(r, want flows.Record) bool {
	return r.Src.Namespace == want.Src.Namespace && r.Src.Workload == want.Src.Workload &&
		r.Dst.Namespace == want.Dst.Namespace && r.Dst.Workload == want.Dst.Workload &&
		r.Port == want.Port && r.Protocol == want.Protocol
}

func recordsText(recs []flows.Record) string {
	var b strings.Builder
	if err := flows.Write(&b, recs...); err != nil {
		return err.Error()
	}
	if b.Len() == 0 {
		return "(none)"
	}
	return b.String()
}

// agentMetrics reads the agent's metrics on the node's loopback.
func agentMetrics(t *testing.T, lab *harness.NetLab) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:9090/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := lab.HTTPClientIn(lab.Node).Do(req)
	if err != nil {
		t.Fatalf("reading the agent's metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatal(fmt.Errorf("reading the agent's metrics: %d %v", resp.StatusCode, err))
	}
	return string(b)
}
