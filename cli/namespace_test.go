package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netpol-guard/netpol-guard/cli"
)

const typoPolicy = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shpo}
spec: {podSelector: {}, policyTypes: [Ingress]}
`

func TestPolicyInANamespaceTheClusterLacksIsAWarning(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(typo, []byte(typoPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	const want = `warning: networkpolicy shpo/deny-all: namespace "shpo" is not in the cluster file`

	t.Run("check -f", func(t *testing.T) {
		_, _, errs := check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: exampleFlows}, Policies: []string{typo}})
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q does not say %q", errs, want)
		}
	})
	t.Run("in the cluster file", func(t *testing.T) {
		cl := filepath.Join(dir, "cluster")
		os.Mkdir(cl, 0o755)
		copyFile(t, exampleCluster, filepath.Join(cl, "cluster.yaml"))
		copyFile(t, typo, filepath.Join(cl, "typo.yaml"))
		code, _, errs := evaluate(t, cli.EvaluateOptions{Inputs: cli.Inputs{Cluster: cl, Flows: exampleFlows}})
		if code != cli.ExitOK || !strings.Contains(errs, want) {
			t.Errorf("evaluate: exit %d, stderr %q does not say %q", code, errs, want)
		}
		_, _, errs = check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: cl, Flows: exampleFlows}, Policies: []string{defaultDeny}})
		if !strings.Contains(errs, want) {
			t.Errorf("check: stderr %q does not say %q", errs, want)
		}
	})
	t.Run("known namespaces are not named", func(t *testing.T) {
		_, _, errs := check(t, cli.CheckOptions{Inputs: cli.Inputs{Cluster: exampleCluster, Flows: exampleFlows}, Policies: []string{defaultDeny}})
		if strings.Contains(errs, "is not in the cluster file") {
			t.Errorf("stderr %q warns of a namespace the cluster holds", errs)
		}
	})
}
