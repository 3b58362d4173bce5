package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netpol-guard/netpol-guard/cli"
)

const (
	exampleCluster = "../examples/cluster.yaml"
	exampleFlows   = "../examples/flows.jsonl"
	defaultDeny    = "../examples/proposed/shop-default-deny.yaml"
	denyWithEgress = "../examples/proposed/shop-default-deny-with-egress.yaml"
)

var now = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func check(t *testing.T, opts cli.CheckOptions) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	if opts.Output == "" {
		opts.Output = cli.OutputTable
	}
	opts.Now = now
	code := cli.Check(&out, &errw, opts)
	return code, out.String(), errw.String()
}

func evaluate(t *testing.T, opts cli.EvaluateOptions) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	if opts.Output == "" {
		opts.Output = cli.OutputTable
	}
	opts.Now = now
	code := cli.Evaluate(&out, &errw, opts)
	return code, out.String(), errw.String()
}

func TestCheckExample(t *testing.T) {
	in := cli.Inputs{Cluster: exampleCluster, Flows: exampleFlows}

	code, out, errs := check(t, cli.CheckOptions{Inputs: in, Policies: []string{defaultDeny}})
	if code != cli.ExitCut {
		t.Fatalf("default-deny: exit %d, want %d; stderr %s", code, cli.ExitCut, errs)
	}
	for _, want := range []string{
		"create shop/default-deny would cut 10 of 19 observed flows",
		"shop/Deployment/checkout   payments/Deployment/payments-api",
		"egress isolated by shop/default-deny and no rule allows it",
		"2m ago", // lastSeen 09:58
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "node/node-a") {
		t.Errorf("a probe from the pod's own node is reported as cut:\n%s", out)
	}

	code, out, _ = check(t, cli.CheckOptions{Inputs: in, Policies: []string{denyWithEgress}})
	if code != cli.ExitOK || !strings.HasPrefix(out, "OK: create shop/allow-egress, create shop/default-deny cuts none of 19") {
		t.Errorf("default-deny with egress allows: exit %d\n%s", code, out)
	}

	code, out, _ = check(t, cli.CheckOptions{Inputs: in, Policies: []string{"../examples/proposed/allow-same-namespace.yaml"}, Delete: true})
	if code != cli.ExitCut || !strings.Contains(out, "delete shop/allow-same-namespace would cut 4 of 19") {
		t.Errorf("delete: exit %d\n%s", code, out)
	}
}

func TestCheckJSONEchoesInputFlows(t *testing.T) {
	code, out, errs := check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: exampleFlows}, Policies: []string{defaultDeny}, Output: cli.OutputJSON})
	if code != cli.ExitCut {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var report struct {
		Changes []string
		Cut     []map[string]json.RawMessage
		Summary struct{ Flows, Candidates, Cut int }
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	if report.Summary.Flows != 19 || report.Summary.Cut != 10 || len(report.Cut) != 10 {
		t.Errorf("summary %+v with %d cut flows", report.Summary, len(report.Cut))
	}
	inputs := inputLines(t)
	for _, c := range report.Cut {
		var found bool
		for _, in := range inputs {
			if bytes.Equal(compact(t, c["src"]), compact(t, in["src"])) && bytes.Equal(compact(t, c["dst"]), compact(t, in["dst"])) && string(c["port"]) == string(in["port"]) {
				found = true
			}
		}
		if !found {
			t.Errorf("cut flow %s → %s does not echo an input flow", c["src"], c["dst"])
		}
		var reason string
		json.Unmarshal(c["reason"], &reason)
		if !strings.Contains(reason, "shop/default-deny") {
			t.Errorf("cut flow reason %q does not name the policy", reason)
		}
	}
}

func TestEvaluateJSONIsOneLinePerFlowInOrder(t *testing.T) {
	code, out, errs := evaluate(t, cli.EvaluateOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: exampleFlows}, Output: cli.OutputJSON})
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	inputs := inputLines(t)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(inputs) {
		t.Fatalf("%d output lines for %d flows", len(lines), len(inputs))
	}
	for i, line := range lines {
		var got map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if !bytes.Equal(compact(t, got["src"]), compact(t, inputs[i]["src"])) || !bytes.Equal(compact(t, got["dst"]), compact(t, inputs[i]["dst"])) {
			t.Errorf("line %d echoes %s → %s, input was %s → %s", i+1, got["src"], got["dst"], inputs[i]["src"], inputs[i]["dst"])
		}
		if string(got["verdict"]) != `"allow"` {
			t.Errorf("line %d: verdict %s; every example flow is allowed today", i+1, got["verdict"])
		}
	}
}

func TestEvaluateDeniesUnderClusterPolicies(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, exampleCluster, filepath.Join(dir, "cluster.yaml"))
	copyFile(t, defaultDeny, filepath.Join(dir, "deny.yaml"))
	code, out, errs := evaluate(t, cli.EvaluateOptions{Inputs: cli.Inputs{Cluster: dir, Flows: exampleFlows}})
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "19 flows: 9 allowed, 10 denied, under 8 policies.") {
		t.Errorf("directory of cluster files with the deny applied:\n%s", out)
	}
}

func TestUnresolvedFlowsAreSkippedAndNamed(t *testing.T) {
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows.jsonl")
	content := `{"src":{"namespace":"shop","pod":"frontend-6d8f7c9b5-x2k4p"},"dst":{"namespace":"shop","pod":"cart-5c7d9f8b4-h7j2k"},"port":7070}` + "\n" +
		`{"src":{"namespace":"shop","pod":"ghost"},"dst":{"ip":"10.0.0.1"},"port":80}` + "\n" +
		`{"src":{"namespace":"shop","labels":{"app":"cart"}},"dst":{"ip":"10.0.0.1"},"port":80}` + "\n"
	if err := os.WriteFile(flows, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: flows}, Policies: []string{defaultDeny}})
	if code != cli.ExitCut || !strings.Contains(out, "would cut 1 of 1 observed flows") {
		t.Fatalf("exit %d, stdout %s; want the one resolvable flow judged and cut", code, out)
	}
	for _, want := range []string{"2 of 3 flow records skipped", "flows.jsonl:2: src: pod shop/ghost", "flows.jsonl:3: src: peer: labels alone"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q does not say %q", errs, want)
		}
	}
}

func TestNoFlowsAllowedOnPurpose(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "flows.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: empty, AllowNoFlows: true}, Policies: []string{defaultDeny}})
	if code != cli.ExitOK || !strings.Contains(out, "cuts none of 0 observed flows") {
		t.Errorf("exit %d, stdout %q, stderr %q; want an admitted check of no flows", code, out, errs)
	}
}

func TestBadInputNamesWhereAndExits2(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := `{"src":{"namespace":"shop","pod":"frontend-6d8f7c9b5-x2k4p"},"dst":{"namespace":"shop","pod":"cart-5c7d9f8b4-h7j2k"},"port":7070}` + "\n"
	tests := []struct {
		name   string
		flows  string
		policy string
		delete bool
		output string
		want   []string
	}{
		{name: "malformed flow line", flows: good + good + `{"src":{"ip":"10.0.0.300"},"dst":{"ip":"10.0.0.1"},"port":80}` + "\n",
			want: []string{"flows.jsonl:3", "src.ip"}},
		{name: "no flow that resolves", flows: `{"src":{"namespace":"shop","pod":"ghost"},"dst":{"ip":"10.0.0.1"},"port":80}` + "\n",
			want: []string{"none of the 1 flow records", "flows.jsonl:1", "src", "pod shop/ghost", "--allow-no-flows"}},
		{name: "empty flow file", flows: "# nothing observed yet\n", want: []string{"holds no flow that can be judged"}},
		{name: "invalid proposed policy", flows: good,
			policy: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: shop}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/33}\n",
			want:   []string{"shop/bad", "spec.ingress[0].from[0].ipBlock.cidr"}},
		{name: "delete of a policy not in the cluster", flows: good, delete: true,
			policy: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: nope, namespace: shop}\n",
			want:   []string{"shop/nope is not in the cluster"}},
		{name: "policy file without policies", flows: good, policy: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
			want: []string{"holds no NetworkPolicy"}},
		{name: "unknown output format", flows: good, output: "xml", want: []string{`-o "xml"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flows := write("flows.jsonl", tt.flows)
			policy := defaultDeny
			if tt.policy != "" {
				policy = write("policy.yaml", tt.policy)
			}
			code, out, errs := check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: flows}, Policies: []string{policy}, Delete: tt.delete, Output: tt.output})
			if code != cli.ExitBadInput {
				t.Fatalf("exit %d, want %d; stdout %s", code, cli.ExitBadInput, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("error %q does not mention %q", errs, w)
				}
			}
		})
	}
}

func TestFlowsFromStdin(t *testing.T) {
	f, err := os.ReadFile(exampleFlows)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: "-", Stdin: bytes.NewReader(f)}, Policies: []string{defaultDeny}})
	if code != cli.ExitCut || !strings.Contains(out, "would cut 10 of 19") {
		t.Errorf("exit %d: %s%s", code, out, errs)
	}
}

func inputLines(t *testing.T) []map[string]json.RawMessage {
	t.Helper()
	f, err := os.Open(exampleFlows)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func compact(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return b.Bytes()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckReadsHubbleJSON(t *testing.T) {
	// Forwarded frontend → cart and cart → DNS are taken; the reply and the dropped flow are not.
	code, out, errs := check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: "../examples/hubble-flows.json"}, Policies: []string{defaultDeny}})
	if code != cli.ExitCut || !strings.Contains(out, "would cut 2 of 2 observed flows") {
		t.Fatalf("exit %d:\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "shop/Deployment/cart      kube-system/Deployment/coredns  UDP/53") {
		t.Errorf("DNS flow from Hubble missing:\n%s", out)
	}
	var buf bytes.Buffer
	n, err := cli.Import("../examples/hubble-flows.json", cli.FormatAuto, nil, &buf)
	if err != nil || n != 2 || strings.Count(buf.String(), "\n") != 2 {
		t.Errorf("import: %d records, err %v:\n%s", n, err, buf.String())
	}
}

// A Goldmane file gives the records its flow-record equivalent holds: the pods and their
// labels (less Calico's), the destination port, the end of the aggregation interval, the
// connections started (at least one); denied flows and flows only their source reported are
// left out. check judges both alike.
func TestCheckReadsGoldmaneJSON(t *testing.T) {
	const goldmaneFlows, asRecords = "testdata/goldmane-flows.jsonl", "testdata/goldmane-flows-as-records.jsonl"
	var got, want bytes.Buffer
	if _, err := cli.Import(goldmaneFlows, cli.FormatAuto, nil, &got); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Import(asRecords, cli.FormatFlows, nil, &want); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("Goldmane file imports as\n%swant\n%s", got.String(), want.String())
	}

	for _, format := range []string{cli.FormatAuto, cli.FormatGoldmane} {
		code, out, errs := check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: goldmaneFlows, FlowsFormat: format}, Policies: []string{defaultDeny}})
		wantCode, wantOut, wantErrs := check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: asRecords}, Policies: []string{defaultDeny}})
		if code != cli.ExitCut || !strings.Contains(out, "would cut 3 of 3 observed flows") {
			t.Fatalf("--flows-format %s: exit %d:\n%s%s", format, code, out, errs)
		}
		if code != wantCode || out != wantOut || errs != wantErrs {
			t.Errorf("--flows-format %s: exit %d\n%s%s\nthe equivalent records: exit %d\n%s%s", format, code, out, errs, wantCode, wantOut, wantErrs)
		}
	}
}

func TestCheckJudgesRelabelsOfObjectsTheClusterHolds(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	in := cli.Inputs{Cluster: exampleCluster, Flows: exampleFlows}
	relabelledPod := write("pod.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: payments-api-9c8d7b6f5-a1b2c
  namespace: payments
  labels: {app: payments-api-v2, pod-template-hash: 9c8d7b6f5}
spec: {containers: [{name: payments-api, image: registry.example.com/payments:1.4.2}]}
`)
	code, out, errs := check(t, cli.CheckOptions{Inputs: in, Policies: []string{relabelledPod}})
	if code != cli.ExitCut || !strings.Contains(out, "relabel Pod payments/payments-api-9c8d7b6f5-a1b2c would cut") ||
		!strings.Contains(out, "would cut 4 of 19") || !strings.Contains(out, "ingress isolated by payments/default-deny and no rule allows it") {
		t.Errorf("pod relabel out of its allows: exit %d; stderr %s\n%s", code, errs, out)
	}

	sameLabels := write("same.yaml", `apiVersion: v1
kind: Namespace
metadata: {name: payments}
`)
	if code, out, errs := check(t, cli.CheckOptions{Inputs: in, Policies: []string{sameLabels, denyWithEgress}}); code != cli.ExitOK {
		t.Errorf("a namespace given as it is with a policy that cuts nothing: exit %d; stderr %s\n%s", code, errs, out)
	}

	unknown := write("unknown.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: nowhere, namespace: shop}
spec:
  selector: {matchLabels: {app: nowhere}}
  template:
    metadata: {labels: {app: nowhere}}
    spec: {containers: [{name: c, image: c}]}
`)
	if code, _, errs := check(t, cli.CheckOptions{Inputs: in, Policies: []string{unknown}}); code != cli.ExitBadInput || !strings.Contains(errs, "Deployment shop/nowhere is not in the cluster") {
		t.Errorf("a workload the cluster lacks: exit %d; stderr %s", code, errs)
	}
}

func TestCheckJudgesStagedPoliciesAsTheirStagedAction(t *testing.T) {
	in := cli.Inputs{Cluster: exampleCluster, Flows: exampleFlows}
	dir := t.TempDir()
	write := func(name, yaml string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	set := write("set.yaml", `apiVersion: netpol-guard.io/v1alpha1
kind: StagedNetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  stagedAction: Set
  template:
    metadata: {labels: {team: shop}}
    spec:
      podSelector: {}
      policyTypes: [Ingress, Egress]
`)
	del := write("delete.yaml", `apiVersion: netpol-guard.io/v1alpha1
kind: StagedNetworkPolicy
metadata: {name: allow-same-namespace, namespace: shop}
spec: {stagedAction: Delete}
`)
	missing := write("missing.yaml", `apiVersion: netpol-guard.io/v1alpha1
kind: StagedNetworkPolicy
metadata: {name: not-there, namespace: shop}
spec: {stagedAction: Delete}
`)
	noTemplate := write("no-template.yaml", `apiVersion: netpol-guard.io/v1alpha1
kind: StagedNetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {}
`)
	typo := write("typo.yaml", `apiVersion: netpol-guard.io/v1alpha1
kind: StagedNetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {stagedAction: Set, templat: {}}
`)

	// Set judges as applying the template: the same cuts as the NetworkPolicy it holds.
	code, out, errs := check(t, cli.CheckOptions{Inputs: in, Policies: []string{set}})
	if code != cli.ExitCut || !strings.Contains(out, "create shop/default-deny would cut 10 of 19 observed flows") {
		t.Errorf("staged Set: exit %d, stderr %s\n%s", code, errs, out)
	}
	// Delete judges as deleting the NetworkPolicy of its name: as check --delete does.
	code, out, errs = check(t, cli.CheckOptions{Inputs: in, Policies: []string{del}})
	if code != cli.ExitCut || !strings.Contains(out, "delete shop/allow-same-namespace would cut 4 of 19") {
		t.Errorf("staged Delete: exit %d, stderr %s\n%s", code, errs, out)
	}
	for _, tc := range []struct {
		name, path, want string
		delete           bool
	}{
		{"delete of a policy the cluster lacks", missing, "networkpolicy shop/not-there, which is not in the cluster", false},
		{"set without a template", noTemplate, "spec.template: Required value", false},
		{"unknown field", typo, "spec.templat: unknown field", false},
		{"--delete of a staged policy", set, "--delete takes NetworkPolicies and cluster policies only", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := check(t, cli.CheckOptions{Inputs: in, Policies: []string{tc.path}, Delete: tc.delete})
			if code != cli.ExitBadInput || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q, want %d and %q", code, errs, cli.ExitBadInput, tc.want)
			}
		})
	}
}
