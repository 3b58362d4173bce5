package main

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netpol-guard/netpol-guard/cli"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// stableEnv keeps flag defaults taken from the environment out of help output.
func stableEnv(t *testing.T) {
	t.Setenv("HOME", "/home/user")
	t.Setenv("KUBECACHEDIR", "")
	t.Setenv("POD_NAMESPACE", "")
	t.Setenv("NODE_NAME", "")
}

func TestHelp(t *testing.T) {
	stableEnv(t)
	for _, tc := range []struct {
		golden string
		prog   string
		args   []string
	}{
		{"root", "netpol-guard", nil},
		{"root-kubectl-plugin", pluginBinary, nil},
		{"webhook", "netpol-guard", []string{"webhook"}},
		{"agent", "netpol-guard", []string{"agent"}},
		{"evaluate", "netpol-guard", []string{"evaluate"}},
		{"check", "netpol-guard", []string{"check"}},
		{"check-kubectl-plugin", pluginBinary, []string{"check"}},
		{"recommend", "netpol-guard", []string{"recommend"}},
		{"flows", "netpol-guard", []string{"flows"}},
		{"flows-export", "netpol-guard", []string{"flows", "export"}},
		{"flows-import", "netpol-guard", []string{"flows", "import"}},
		{"staged", "netpol-guard", []string{"staged"}},
		{"staged-list", "netpol-guard", []string{"staged", "list"}},
		{"staged-promote", "netpol-guard", []string{"staged", "promote"}},
		{"version", "netpol-guard", []string{"version"}},
		{"completion", "netpol-guard", []string{"completion"}},
		{"completion-bash", "netpol-guard", []string{"completion", "bash"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.prog, append(tc.args, "--help"), strings.NewReader(""), &stdout, &stderr)
			if code != cli.ExitOK || stderr.Len() > 0 {
				t.Fatalf("--help: exit %d, stderr %s", code, stderr.String())
			}
			path := filepath.Join("testdata", "help-"+tc.golden+".golden")
			if *update {
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestHelp -update)", err)
			}
			if got := stdout.String(); got != string(want) {
				t.Errorf("help differs from %s (go test -run TestHelp -update rewrites it):\n%s", path, got)
			}
			if !strings.Contains(stdout.String(), "Examples:\n") {
				t.Errorf("help has no examples")
			}
		})
	}
}

// readmeCommands are the exit statuses of the command lines README.md shows, or why a
// line is not run here. A command line added to README.md must be listed.
var readmeCommands = map[string]struct {
	code int
	skip string
}{
	"go run . check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/shop-default-deny.yaml":                         {code: cli.ExitCut},
	"netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/shop-default-deny-with-egress.yaml":         {code: cli.ExitOK},
	"kubectl netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/shop-default-deny.yaml -o wide":     {code: cli.ExitCut},
	"netpol-guard evaluate --cluster examples/cluster.yaml --flows examples/flows.jsonl -o yaml":                                                      {code: cli.ExitOK},
	"netpol-guard flows import examples/hubble-flows.json":                                                                                            {code: cli.ExitOK},
	"netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/shop-default-deny.yaml --suggest":           {code: cli.ExitCut},
	"netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/shop-default-deny.yaml -o html > shop.html": {skip: "writes a file through the shell"},
	"netpol-guard recommend --cluster examples/cluster.yaml --flows examples/flows.jsonl -n shop":                                                     {code: cli.ExitOK},
	"netpol-guard recommend -n shop --token-file reader.token":                                                                                        {skip: "needs a cluster running the webhook"},
	"netpol-guard version":                                   {code: cli.ExitOK},
	"netpol-guard completion bash":                           {code: cli.ExitOK},
	"netpol-guard flows export -n netpol-guard > snap.jsonl": {skip: "needs a cluster running the webhook"},
	"netpol-guard staged list -A                                   # what each would cut now":                            {skip: "needs a cluster"},
	"netpol-guard staged promote default-deny -n shop --min-clean 24h  # apply it once clean that long":                  {skip: "needs a cluster"},
	"netpol-guard recommend --cluster examples/cluster.yaml --flows examples/flows.jsonl -n shop --staged > staged.yaml": {skip: "writes a file through the shell: TestRecommendedStagedPoliciesCheckClean runs the pair"},
	"netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f staged.yaml":                     {skip: "reads the file the line above writes: TestRecommendedStagedPoliciesCheckClean runs the pair"},
	"netpol-guard flows export -n netpol-guard --token-file reader.token --flows-namespace shop -o shop.jsonl":           {skip: "needs a cluster running the webhook"},
}

// TestREADMECommands runs every command line of README.md's code blocks that starts with
// netpol-guard, kubectl netpol-guard or go run ., and checks its exit status.
func TestREADMECommands(t *testing.T) {
	f, err := os.Open("README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "```"):
			inBlock = !inBlock
		case inBlock && (strings.HasPrefix(line, "netpol-guard ") || strings.HasPrefix(line, "kubectl netpol-guard ") || strings.HasPrefix(line, "go run . ")):
			if strings.ContainsAny(line, "[|") || strings.Contains(line, "FILE") {
				continue // a synopsis, not a command line
			}
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(lines) < 5 {
		t.Fatalf("found only %d command lines in README.md: %q", len(lines), lines)
	}
	for _, line := range lines {
		t.Run(line, func(t *testing.T) {
			want, ok := readmeCommands[line]
			if !ok {
				t.Fatalf("README.md shows %q, which readmeCommands does not list", line)
			}
			if want.skip != "" {
				t.Skip(want.skip)
			}
			args, prog := strings.Fields(line), "netpol-guard"
			switch {
			case args[0] == "go":
				args = args[3:]
			case args[0] == "kubectl":
				args, prog = args[2:], pluginBinary
			default:
				args = args[1:]
			}
			var stdout, stderr bytes.Buffer
			if code := run(prog, args, strings.NewReader(""), &stdout, &stderr); code != want.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, want.code, stdout.String(), stderr.String())
			}
		})
	}
}

// TestRecommendedStagedPoliciesCheckClean runs README's pair: recommend --staged writes
// StagedNetworkPolicies that check -f takes and finds cutting nothing.
func TestRecommendedStagedPoliciesCheckClean(t *testing.T) {
	var staged, stderr bytes.Buffer
	if code := run("netpol-guard", strings.Fields("recommend --cluster examples/cluster.yaml --flows examples/flows.jsonl -n shop --staged"), strings.NewReader(""), &staged, &stderr); code != cli.ExitOK {
		t.Fatalf("recommend --staged: exit %d\n%s", code, stderr.String())
	}
	file := t.TempDir() + "/staged.yaml"
	if err := os.WriteFile(file, staged.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	stderr.Reset()
	code := run("netpol-guard", []string{"check", "--cluster", "examples/cluster.yaml", "--flows", "examples/flows.jsonl", "-f", file}, strings.NewReader(""), &out, &stderr)
	if code != cli.ExitOK || !strings.Contains(out.String(), "cuts none of") || !strings.Contains(out.String(), "shop/") {
		t.Errorf("check -f of the recommended staged policies: exit %d\n%s%s", code, out.String(), stderr.String())
	}
}
