// Command netpol-guard keeps NetworkPolicy changes from silently cutting live traffic.
//
//	netpol-guard evaluate --cluster FILE --flows FILE [-o table|json]
//	netpol-guard check    --cluster FILE --flows FILE -f POLICY.yaml [-f ...] [--delete] [-o table|json]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/netpol-guard/netpol-guard/cli"
)

const usage = `netpol-guard stops NetworkPolicy changes that would cut live traffic.

Usage:
  netpol-guard <command> [flags]

Commands:
  webhook    Serve the validating admission webhook and the flow API.
  agent      Node flow agent: push the flows kernel conntrack sees to the webhook.
  evaluate   Judge every observed flow under a cluster's current policies.
  check      Report the flows that applying (or deleting) policies would cut.
             Exit 0: nothing cut; 1: something cut; 2: bad input.
  flows      Export the webhook's flow cache; import Hubble flow files.
  version    Print the version.

Run 'netpol-guard <command> -h' for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cli.ExitBadInput
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "webhook":
		return webhookCommand(rest, stderr)
	case "agent":
		return agentCommand(rest, stderr)
	case "flows":
		return flowsCommand(rest, stdin, stdout, stderr)
	case "evaluate":
		return evaluate(rest, stdin, stdout, stderr)
	case "check":
		return check(rest, stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "netpol-guard", version)
		return cli.ExitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return cli.ExitOK
	default:
		fmt.Fprintf(stderr, "error: unknown command %q\n\n%s", cmd, usage)
		return cli.ExitBadInput
	}
}

func inputFlags(fs *flag.FlagSet, in *cli.Inputs, output *string) {
	fs.StringVar(&in.Cluster, "cluster", "", "Kubernetes objects: a file or directory of YAML/JSON (kubectl get namespaces,pods,nodes,networkpolicies -A -o yaml), or - for stdin (required)")
	fs.StringVar(&in.Flows, "flows", "", "observed flows: JSON Lines flow records or Hubble JSON, or - for stdin (required)")
	fs.StringVar(output, "o", cli.OutputTable, "output format: table or json")
	fs.StringVar(&in.FlowsFormat, "flows-format", cli.FormatAuto, "format of --flows: auto, flows (our JSON Lines) or hubble (hubble observe -o json)")
}

func evaluate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts := cli.EvaluateOptions{Now: time.Now()}
	fs := newFlagSet("evaluate", "netpol-guard evaluate --cluster FILE --flows FILE [-o table|json]\n\nJudge every observed flow under the cluster's current NetworkPolicies.", stderr)
	inputFlags(fs, &opts.Inputs, &opts.Output)
	if code, done := parse(fs, args); done {
		return code
	}
	opts.Stdin = stdin
	return cli.Evaluate(stdout, stderr, opts)
}

func check(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts := cli.CheckOptions{Now: time.Now()}
	fs := newFlagSet("check", "netpol-guard check --cluster FILE --flows FILE -f POLICY.yaml [-f ...] [--delete] [-o table|json]\n\nReport the observed flows that applying (or deleting) the given NetworkPolicies would cut.\nExit status: 0 nothing is cut, 1 something is cut, 2 bad input.", stderr)
	inputFlags(fs, &opts.Inputs, &opts.Output)
	fs.Func("f", "a file or directory of NetworkPolicies to apply, or - for stdin (repeatable, required)", func(s string) error {
		opts.Policies = append(opts.Policies, s)
		return nil
	})
	fs.BoolVar(&opts.Delete, "delete", false, "check deleting the given policies instead of applying them")
	fs.StringVar(&opts.Namespace, "n", "default", "namespace for policies that do not name one")
	if code, done := parse(fs, args); done {
		return code
	}
	opts.Stdin = stdin
	return cli.Check(stdout, stderr, opts)
}

func newFlagSet(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nFlags:\n", help)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; done is true when the command should stop with code.
func parse(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return cli.ExitOK, true
	case err != nil:
		return cli.ExitBadInput, true
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "error: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return cli.ExitBadInput, true
	}
	return 0, false
}
