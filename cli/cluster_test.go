package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netpol-guard/netpol-guard/cli"
)

const isolatePayments = "../examples/proposed/isolate-payments.yaml"

func TestCheckJudgesAClusterNetworkPolicy(t *testing.T) {
	in := cli.Inputs{Cluster: exampleCluster, Flows: exampleFlows}
	code, out, errs := check(t, cli.CheckOptions{Inputs: in, Policies: []string{isolatePayments}})
	if code != cli.ExitCut {
		t.Fatalf("exit %d, want %d; stderr %s\n%s", code, cli.ExitCut, errs, out)
	}
	for _, want := range []string{
		"create cnp/isolate-payments would cut 1 of 19 observed flows",
		"shop/Deployment/checkout  payments/Deployment/payments-api",
		`ingress decided by admin cnp/isolate-payments priority 10 ingress[1] "everyone-else" Deny`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckDeleteOfAClusterPolicyInTheClusterFiles(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, exampleCluster, filepath.Join(dir, "cluster.yaml"))
	copyFile(t, isolatePayments, filepath.Join(dir, "cnp.yaml"))
	in := cli.Inputs{Cluster: dir, Flows: exampleFlows}
	code, out, errs := check(t, cli.CheckOptions{Inputs: in, Policies: []string{isolatePayments}, Delete: true})
	if code != cli.ExitOK || !strings.Contains(out, "OK: delete cnp/isolate-payments cuts none") {
		t.Errorf("exit %d, stderr %s\n%s", code, errs, out)
	}
}

func TestEvaluateJSONVerdictsUnderAClusterPolicy(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, exampleCluster, filepath.Join(dir, "cluster.yaml"))
	copyFile(t, isolatePayments, filepath.Join(dir, "cnp.yaml"))
	// An egress allowlist by domain name for payments: its flow to the internet is uncertain;
	// the Deny of 0.0.0.0/0 takes its flows to pods (postgres, DNS) too.
	allowlist := `apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: payments-egress}
spec:
  tier: Admin
  priority: 20
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: payments}}}
  egress:
  - {name: psp, action: Accept, to: [{domainNames: [api.psp.example]}]}
  - {name: rest, action: Deny, to: [{networks: [0.0.0.0/0]}]}
`
	if err := os.WriteFile(filepath.Join(dir, "egress.yaml"), []byte(allowlist), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := evaluate(t, cli.EvaluateOptions{Inputs: cli.Inputs{Cluster: dir, Flows: exampleFlows}, Output: cli.OutputJSON})
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	words := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var v struct {
			Verdict string `json:"verdict"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatal(err)
		}
		words[v.Verdict]++
	}
	if words["deny"] != 3 || words["uncertain"] != 1 || words["allow"] != 15 {
		t.Errorf("verdicts %v, want 15 allow, 3 deny, 1 uncertain", words)
	}
	_, table, _ := evaluate(t, cli.EvaluateOptions{Inputs: cli.Inputs{Cluster: dir, Flows: exampleFlows}})
	if !strings.Contains(table, "19 flows: 15 allowed, 3 denied, 1 uncertain, under 7 policies and 2 cluster policies.") {
		t.Errorf("table:\n%s", table)
	}
}
