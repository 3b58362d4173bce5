// Command netpol-guard keeps NetworkPolicy changes from silently cutting live traffic.
//
//	netpol-guard webhook  [flags]
//	netpol-guard agent    [flags]
//	netpol-guard evaluate --cluster FILE --flows FILE [-o table|wide|json|yaml]
//	netpol-guard check    --cluster FILE --flows FILE -f POLICY.yaml [-f ...] [--delete] [-o table|wide|json|yaml]
//	netpol-guard flows export|import
//	netpol-guard staged list|promote
//
// Installed as kubectl-netpol_guard it is the kubectl plugin `kubectl netpol-guard`.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/netpol-guard/netpol-guard/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// pluginBinary is the name kubectl finds the plugin `kubectl netpol-guard` by.
const pluginBinary = "kubectl-netpol_guard"

func main() {
	os.Exit(run(filepath.Base(os.Args[0]), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitCode ends a command with a status other than 0 after it has said why.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// status turns a command's exit status into what RunE returns.
func status(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

// run runs the command line args as the program named prog and returns the exit status:
// a command's own, or 2 (cli.ExitBadInput) for a command line that does not parse.
func run(prog string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(prog, stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	var code exitCode
	switch {
	case err == nil:
		return cli.ExitOK
	case errors.As(err, &code):
		return int(code)
	}
	cmd, _, ferr := root.Find(args)
	if ferr != nil || cmd == nil {
		cmd = root
	}
	fmt.Fprintf(stderr, "error: %v\nSee '%s --help'.\n", err, cmd.CommandPath())
	return cli.ExitBadInput
}

// Command groups of the root's help.
const (
	groupServe = "serve"
	groupCheck = "check"
	groupFlows = "flows"
)

func newRootCommand(prog string, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "netpol-guard",
		Short: "Stop NetworkPolicy changes that would cut live traffic",
		Long: `netpol-guard stops NetworkPolicy changes that would cut live traffic.

In the cluster it is a validating admission webhook that replays the traffic recently seen
through the policies as they are and as they would be; offline, the same decision runs on
files, for CI.`,
		Example: `  # What would a default-deny cut? (exit 1 if anything)
  netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/shop-default-deny.yaml

  # Export the webhook's flows through the API server, for CI
  netpol-guard flows export -n netpol-guard > flows.jsonl`,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(stderr)
			_ = cmd.Help()
			return exitCode(cli.ExitBadInput)
		},
	}
	if prog == pluginBinary || strings.HasPrefix(prog, pluginBinary+".") {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl netpol-guard"}
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("netpol-guard {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.AddGroup(
		&cobra.Group{ID: groupServe, Title: "Run in the cluster:"},
		&cobra.Group{ID: groupCheck, Title: "Check policies against observed flows (offline, on files):"},
		&cobra.Group{ID: groupFlows, Title: "Flows:"},
	)
	root.SetHelpCommandGroupID("")
	root.SetCompletionCommandGroupID("")
	for group, cmds := range map[string][]*cobra.Command{
		groupServe: {newWebhookCommand(), newAgentCommand(stderr), newStagedCommand()},
		groupCheck: {newEvaluateCommand(stdin), newCheckCommand(stdin), newRecommendCommand(stdin)},
		groupFlows: {newFlowsCommand(stdin)},
	} {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	root.AddCommand(&cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: "  netpol-guard version",
		Args:    cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "netpol-guard", version)
		},
	})
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Example = "  # Load completions into the current bash\n  source <(netpol-guard completion bash)"
			for _, sh := range c.Commands() {
				sh.Example = fmt.Sprintf("  netpol-guard completion %s > netpol-guard.%s", sh.Name(), sh.Name())
			}
		}
	}
	if name := root.DisplayName(); name != root.Name() {
		renameExamples(root, name)
	}
	return root
}

// renameExamples rewrites "netpol-guard " in examples to the name the program is run as,
// so that as a kubectl plugin they read "kubectl netpol-guard ...".
func renameExamples(c *cobra.Command, name string) {
	c.Example = strings.ReplaceAll(c.Example, "netpol-guard ", name+" ")
	for _, sub := range c.Commands() {
		renameExamples(sub, name)
	}
}
