package main

import (
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netpol-guard/netpol-guard/cli"
)

// inputFlags are the flags evaluate and check read their files by.
func inputFlags(fs *pflag.FlagSet, in *cli.Inputs, output *string) {
	fs.StringVar(&in.Cluster, "cluster", "", "Kubernetes objects: a file or directory of YAML/JSON (kubectl get namespaces,pods,nodes,networkpolicies -A -o yaml), or - for stdin (required)")
	fs.StringVar(&in.Flows, "flows", "", "observed flows: JSON Lines flow records or Hubble JSON, or - for stdin (required)")
	fs.StringVarP(output, "output", "o", cli.OutputTable, "output format: "+strings.Join(cli.OutputFormats, ", "))
	fs.StringVar(&in.FlowsFormat, "flows-format", cli.FormatAuto, "format of --flows: auto, flows (our JSON Lines), hubble (hubble observe -o json) or goldmane (Goldmane's JSON lines)")
	fs.BoolVar(&in.AllowNoFlows, "allow-no-flows", false, "accept flows of which none can be judged (empty, or none resolves to the cluster) instead of exiting 2")
	_ = cobra.MarkFlagFilename(fs, "cluster", "yaml", "yml", "json")
	_ = cobra.MarkFlagFilename(fs, "flows", "jsonl", "json")
}

func completeOutput(cmd *cobra.Command) {
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(cli.OutputFormats, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("flows-format", cobra.FixedCompletions([]string{cli.FormatAuto, cli.FormatFlows, cli.FormatHubble, cli.FormatGoldmane}, cobra.ShellCompDirectiveNoFileComp))
}

func newEvaluateCommand(stdin io.Reader) *cobra.Command {
	opts := cli.EvaluateOptions{}
	cmd := &cobra.Command{
		Use:   "evaluate --cluster FILE --flows FILE [-o table|wide|json|yaml]",
		Short: "Judge every observed flow under a cluster's current policies",
		Long:  "Judge every observed flow under the cluster's current NetworkPolicies and cluster policies\n(ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy). A verdict is allow, deny,\nor uncertain: a domainNames rule decides it, which an address cannot tell.\n\nExit status: 0 evaluated, 2 bad input.",
		Example: `  # A table of verdicts, with the rule or isolation that explains each
  netpol-guard evaluate --cluster examples/cluster.yaml --flows examples/flows.jsonl

  # One JSON object per flow, in input order
  netpol-guard evaluate --cluster examples/cluster.yaml --flows examples/flows.jsonl -o json

  # Hubble's JSON, from stdin
  hubble observe -o json | netpol-guard evaluate --cluster cluster.yaml --flows -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Now = time.Now()
			opts.Stdin = stdin
			return status(cli.Evaluate(cmd.OutOrStdout(), cmd.ErrOrStderr(), opts))
		},
	}
	inputFlags(cmd.Flags(), &opts.Inputs, &opts.Output)
	completeOutput(cmd)
	return cmd
}

func newCheckCommand(stdin io.Reader) *cobra.Command {
	opts := cli.CheckOptions{}
	cmd := &cobra.Command{
		Use:   "check --cluster FILE --flows FILE -f POLICY.yaml [-f ...] [--delete] [-n NS] [--suggest] [-o table|wide|json|yaml|html|markdown]",
		Short: "Report the flows that applying (or deleting) policies would cut",
		Long: `Report the observed flows that applying (or deleting) the given NetworkPolicies or cluster
policies (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy) would cut.
A StagedNetworkPolicy is judged as promoting it would act: its template set as the NetworkPolicy
of its namespace and name (stagedAction Set), or that NetworkPolicy deleted (Delete).
Flows a domainNames rule decides are listed as uncertain, not as cut.

Exit status: 0 nothing is cut, 1 something is cut, 2 bad input.`,
		Example: `  # Would this default-deny cut anything? (exit 1: yes)
  netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/shop-default-deny.yaml

  # The same lock-down with the egress it needs (exit 0)
  netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/shop-default-deny-with-egress.yaml

  # The fix, ready for kubectl apply, after the table
  netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/shop-default-deny.yaml --suggest

  # The picture: one HTML file, cut flows in red, the fix beside them
  netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/shop-default-deny.yaml -o html > shop.html

  # An Admin tier ClusterNetworkPolicy, judged against every namespace its subject selects
  netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/isolate-payments.yaml

  # What would deleting a policy cut? As YAML
  netpol-guard check --cluster examples/cluster.yaml --flows examples/flows.jsonl -f examples/proposed/allow-same-namespace.yaml --delete -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Now = time.Now()
			opts.Stdin = stdin
			return status(cli.Check(cmd.OutOrStdout(), cmd.ErrOrStderr(), opts))
		},
	}
	fs := cmd.Flags()
	inputFlags(fs, &opts.Inputs, &opts.Output)
	fs.Lookup("output").Usage = "output format: " + strings.Join(cli.CheckOutputFormats, ", ") + " (html: one self-contained page with the graph; markdown: a pull-request comment)"
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(cli.CheckOutputFormats, cobra.ShellCompDirectiveNoFileComp))
	fs.StringArrayVarP(&opts.Policies, "filename", "f", nil, "a file or directory of NetworkPolicies, StagedNetworkPolicies or cluster policies to apply, or - for stdin (repeatable, required)")
	fs.BoolVar(&opts.Delete, "delete", false, "check deleting the given policies instead of applying them")
	fs.BoolVar(&opts.Suggest, "suggest", false, "add the fix for what is cut: the policies to apply with the change, verified to cut nothing (YAML after the table; \"suggestions\" in JSON)")
	fs.StringVarP(&opts.Namespace, "namespace", "n", "default", "namespace for policies that do not name one")
	_ = cobra.MarkFlagFilename(fs, "filename", "yaml", "yml", "json")
	completeOutput(cmd)
	return cmd
}
