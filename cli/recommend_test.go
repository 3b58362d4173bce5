package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestRecommendForTheExampleShopCutsNoObservedFlow(t *testing.T) {
	for _, staged := range []bool{false, true} {
		var out, errw bytes.Buffer
		code := Recommend(&out, &errw, RecommendOptions{Inputs: Inputs{Cluster: "../examples/cluster.yaml", Flows: "../examples/flows.jsonl"}, AllNamespaces: true, Staged: staged})
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errw.String())
		}
		s := out.String()
		for _, want := range []string{"namespace shop", "cut 0 of the observed flows", "# allow-dns: DNS, for app in (cart,checkout,frontend)", "name: allow-cart"} {
			if !strings.Contains(s, want) {
				t.Errorf("staged %v: output lacks %q:\n%s", staged, want, s)
			}
		}
		if strings.Contains(s, "pod-template-hash") || strings.Contains(s, "job-name") {
			t.Errorf("a generated label in a selector:\n%s", s)
		}
		if staged != strings.Contains(s, "kind: StagedNetworkPolicy\n") || staged != strings.Contains(s, "stagedAction: Set") {
			t.Errorf("staged %v, output:\n%s", staged, s)
		}
	}
}
