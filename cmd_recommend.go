package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/netpol-guard/netpol-guard/cli"
)

func newRecommendCommand(stdin io.Reader) *cobra.Command {
	opts := cli.RecommendOptions{}
	cmd := &cobra.Command{
		Use:   "recommend --cluster FILE --flows FILE (-n NS | -A) [--staged]",
		Short: "Write least-privilege NetworkPolicies for a namespace from its observed flows",
		Long: `Write least-privilege NetworkPolicies for a namespace from the flows observed: default-deny
for both directions, allow-dns and allow-apiserver where its pods reach them, and one
allow-<workload> per workload, each peer named by its stable labels and namespace, or by
its address as a /32. The header says what the recommendation rests on (the flow history,
the workloads never seen) and what it allows beyond the flows; it is verified with the
evaluator to cut none of them.

Exit status: 0 written, 1 the verification found a cut, 2 bad input.`,
		Example: `  # Policies for the shop namespace, ready for kubectl apply
  netpol-guard recommend --cluster examples/cluster.yaml --flows examples/flows.jsonl -n shop

  # Every namespace, as StagedNetworkPolicies to soak first
  netpol-guard recommend --cluster examples/cluster.yaml --flows examples/flows.jsonl -A --staged`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Stdin = stdin
			return status(cli.Recommend(cmd.OutOrStdout(), cmd.ErrOrStderr(), opts))
		},
	}
	fs := cmd.Flags()
	var output string
	inputFlags(fs, &opts.Inputs, &output)
	_ = fs.MarkHidden("output")
	fs.StringVarP(&opts.Namespace, "namespace", "n", "", "the namespace to recommend policies for")
	fs.BoolVarP(&opts.AllNamespaces, "all-namespaces", "A", false, "recommend for every namespace with workloads but kube-system")
	fs.BoolVar(&opts.Staged, "staged", false, "write StagedNetworkPolicies ("+cli.StagedAPIVersion+", stagedAction Set) so the recommendation can soak")
	completeOutput(cmd)
	return cmd
}
