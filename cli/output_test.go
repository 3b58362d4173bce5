package cli_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/cli"
)

func TestYAMLIsTheJSONValue(t *testing.T) {
	in := cli.Inputs{Cluster: exampleCluster, Flows: exampleFlows}
	same := func(t *testing.T, jsonDocs, yamlDocs []string) {
		t.Helper()
		if len(jsonDocs) != len(yamlDocs) {
			t.Fatalf("%d JSON values, %d YAML documents", len(jsonDocs), len(yamlDocs))
		}
		for i := range jsonDocs {
			var fromJSON, fromYAML any
			if err := json.Unmarshal([]byte(jsonDocs[i]), &fromJSON); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal([]byte(yamlDocs[i]), &fromYAML); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromJSON, fromYAML) {
				t.Fatalf("document %d differs:\nJSON %v\nYAML %v", i, fromJSON, fromYAML)
			}
		}
	}
	t.Run("check", func(t *testing.T) {
		_, j, _ := check(t, cli.CheckOptions{Inputs: in, Policies: []string{defaultDeny}, Output: cli.OutputJSON})
		code, y, errs := check(t, cli.CheckOptions{Inputs: in, Policies: []string{defaultDeny}, Output: cli.OutputYAML})
		if code != cli.ExitCut {
			t.Fatalf("exit %d, want %d; stderr %s", code, cli.ExitCut, errs)
		}
		same(t, []string{j}, []string{y})
	})
	t.Run("evaluate", func(t *testing.T) {
		_, j, _ := evaluate(t, cli.EvaluateOptions{Inputs: in, Output: cli.OutputJSON})
		code, y, errs := evaluate(t, cli.EvaluateOptions{Inputs: in, Output: cli.OutputYAML})
		if code != cli.ExitOK {
			t.Fatalf("exit %d; stderr %s", code, errs)
		}
		same(t, strings.Split(strings.TrimSpace(j), "\n"), strings.Split(y, "---\n"))
	})
}

func TestWideTablesNameIsolatingPoliciesAndRecordedPeers(t *testing.T) {
	in := cli.Inputs{Cluster: exampleCluster, Flows: exampleFlows}
	code, out, errs := check(t, cli.CheckOptions{Inputs: in, Policies: []string{defaultDeny}, Output: cli.OutputWide})
	if code != cli.ExitCut {
		t.Fatalf("exit %d; stderr %s", code, errs)
	}
	for _, want := range []string{"ISOLATED AFTER BY", "SOURCE SEEN AS", "shop/default-deny"} {
		if !strings.Contains(out, want) {
			t.Errorf("check -o wide lacks %q:\n%s", want, out)
		}
	}
	code, out, errs = evaluate(t, cli.EvaluateOptions{Inputs: in, Output: cli.OutputWide})
	if code != cli.ExitOK {
		t.Fatalf("exit %d; stderr %s", code, errs)
	}
	for _, want := range []string{"ALLOWED BY", "ISOLATED BY", "DESTINATION SEEN AS"} {
		if !strings.Contains(out, want) {
			t.Errorf("evaluate -o wide lacks %q:\n%s", want, out)
		}
	}
}
