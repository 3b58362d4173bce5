package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/cli"
	"github.com/netpol-guard/netpol-guard/internal/human"
)

// Exit statuses of `staged promote`.
const (
	exitPromoted = 0
	exitRefused  = 1 // something would be cut, the soak is too short, or admission said no
)

func newStagedCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "staged",
		Short: "List and promote StagedNetworkPolicies",
		Long: `list     shows every StagedNetworkPolicy with what applying it would cut now.
promote  applies a staged change to its NetworkPolicy once it has soaked clean.`,
		Example: `  netpol-guard staged list -A
  netpol-guard staged promote default-deny -n shop --min-clean 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Help()
			return exitCode(cli.ExitBadInput)
		},
	}
	cmd.AddCommand(newStagedListCommand(), newStagedPromoteCommand())
	return cmd
}

// stagedClient is a client for StagedNetworkPolicies and NetworkPolicies from kubectl's
// configuration flags, and the namespace they name.
func stagedClient(kube *genericclioptions.ConfigFlags) (client.Client, string, error) {
	cfg, err := kube.ToRESTConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	return c, ns, err
}

func newStagedListCommand() *cobra.Command {
	kube := genericclioptions.NewConfigFlags(true)
	var allNamespaces bool
	output := cli.OutputTable
	cmd := &cobra.Command{
		Use:   "list [-A|-n NS] [-o table|wide|json|yaml]",
		Short: "Show every StagedNetworkPolicy and what applying it would cut",
		Long: `Show every StagedNetworkPolicy of a namespace (or, with -A, of all) with its state: what
applying it would cut now, or how long it has been clean, as the webhook's status says.

Exit status: 0 listed, 2 bad input or the API server could not be asked.`,
		Example: `  netpol-guard staged list -n shop
  netpol-guard staged list -A -o wide`,
		Aliases: []string{"ls"},
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !validOutput(output) {
				fmt.Fprintf(cmd.ErrOrStderr(), "error: -o %q: must be one of %s\n", output, strings.Join(cli.OutputFormats, ", "))
				return exitCode(cli.ExitBadInput)
			}
			c, ns, err := stagedClient(kube)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "error: %v\n", err)
				return exitCode(cli.ExitBadInput)
			}
			var opts []client.ListOption
			if !allNamespaces {
				opts = append(opts, client.InNamespace(ns))
			}
			list := &v1alpha1.StagedNetworkPolicyList{}
			if err := c.List(cmd.Context(), list, opts...); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "error: listing StagedNetworkPolicies: %v\n", err)
				return exitCode(cli.ExitBadInput)
			}
			return writeStaged(cmd.OutOrStdout(), list, output, allNamespaces, time.Now())
		},
	}
	fs := cmd.Flags()
	kube.AddFlags(fs)
	fs.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list the staged policies of every namespace")
	fs.StringVarP(&output, "output", "o", output, "output format: "+strings.Join(cli.OutputFormats, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(cli.OutputFormats, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func validOutput(o string) bool {
	for _, f := range cli.OutputFormats {
		if o == f {
			return true
		}
	}
	return false
}

func writeStaged(out io.Writer, list *v1alpha1.StagedNetworkPolicyList, output string, allNamespaces bool, now time.Time) error {
	switch output {
	case cli.OutputJSON, cli.OutputYAML:
		list.APIVersion, list.Kind = v1alpha1.GroupVersion.String(), "StagedNetworkPolicyList"
		b, err := json.MarshalIndent(list, "", "  ")
		if err == nil && output == cli.OutputYAML {
			b, err = yaml.JSONToYAML(b)
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, strings.TrimRight(string(b), "\n"))
		return err
	}
	if len(list.Items) == 0 {
		fmt.Fprintln(out, "No StagedNetworkPolicies found.")
		return nil
	}
	wide := output == cli.OutputWide
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if allNamespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprint(tw, "NAME\tACTION\tWOULD-CUT\tSOAKING\tSTATE")
	if wide {
		fmt.Fprint(tw, "\tHISTORY\tEDGES\tLATEST CUT")
	}
	fmt.Fprintln(tw)
	for i := range list.Items {
		s := &list.Items[i]
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", s.Namespace)
		}
		st := s.Status
		soaking, cut := "-", "-"
		if st.ObservedGeneration == s.Generation && st.SoakingSince != nil {
			soaking = human.Duration(now.Sub(st.SoakingSince.Time))
			cut = fmt.Sprint(st.WouldCut.Flows)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s", s.Name, s.Action(), cut, soaking, stagedState(s, now))
		if wide {
			latest := "-"
			if len(st.WouldCut.Top) > 0 {
				latest = cutString(st.WouldCut.Top[0])
			}
			fmt.Fprintf(tw, "\t%s\t%d\t%s", human.Duration(time.Duration(st.Coverage.HistorySeconds)*time.Second), st.Coverage.EdgesConsidered, latest)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// stagedState says in a few words where a staged policy stands.
func stagedState(s *v1alpha1.StagedNetworkPolicy, now time.Time) string {
	st := s.Status
	switch {
	case st.ObservedGeneration != s.Generation || st.SoakingSince == nil:
		return "not evaluated yet"
	case st.WouldCut.Flows > 0:
		return fmt.Sprintf("would cut %d flows", st.WouldCut.Flows)
	case st.CleanSince != nil:
		return "clean for " + human.Duration(now.Sub(st.CleanSince.Time))
	default:
		for _, c := range st.Conditions {
			if c.Type == v1alpha1.ConditionWouldCut && c.Reason == v1alpha1.ReasonInvalid {
				return "invalid: " + c.Message
			}
		}
		return "not clean"
	}
}

func cutString(c v1alpha1.CutFlow) string {
	peer := func(p v1alpha1.Peer) string {
		switch {
		case p.Workload != "":
			return p.Namespace + "/" + p.Workload
		case p.Node != "":
			return "node/" + p.Node
		}
		return p.IP
	}
	s := fmt.Sprintf("%s → %s %s/%d", peer(c.Src), peer(c.Dst), c.Protocol, c.Port)
	if c.Reason != "" {
		s += " (" + c.Reason + ")"
	}
	return s
}

type promoteFlags struct {
	kube     *genericclioptions.ConfigFlags
	minClean time.Duration
	force    bool
}

func newStagedPromoteCommand() *cobra.Command {
	f := promoteFlags{kube: genericclioptions.NewConfigFlags(true), minClean: 24 * time.Hour}
	cmd := &cobra.Command{
		Use:   "promote NAME [-n NS] [--min-clean 24h] [--force]",
		Short: "Apply a staged change to its NetworkPolicy once it has soaked clean",
		Long: `Apply a StagedNetworkPolicy's change to the NetworkPolicy of the same namespace and name —
create or replace it (stagedAction Set), or delete it (Delete) — through the API server, so
the admission webhook judges it once more; when admitted, delete the staged policy.

It refuses, naming why, while the staged change would cut anything, has not been evaluated
at its current generation, or has been clean for less than --min-clean. --force skips those
checks; the admission webhook still judges the change.

Exit status: 0 promoted, 1 refused (by these checks or by admission), 2 bad input.`,
		Example: `  # Promote once clean for a day
  netpol-guard staged promote default-deny -n shop

  # Promote what has been clean for an hour
  netpol-guard staged promote default-deny -n shop --min-clean 1h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd.Context(), args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	f.kube.AddFlags(fs)
	fs.DurationVar(&f.minClean, "min-clean", f.minClean, "how long the staged change must have cut nothing")
	fs.BoolVar(&f.force, "force", false, "promote even if the staged change would cut flows or has not soaked long enough")
	return cmd
}

func (f *promoteFlags) run(ctx context.Context, name string, stdout, stderr io.Writer) error {
	c, ns, err := stagedClient(f.kube)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitCode(cli.ExitBadInput)
	}
	s := &v1alpha1.StagedNetworkPolicy{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitCode(cli.ExitBadInput)
	}
	if why := refusal(s, f.minClean, time.Now()); why != "" {
		if !f.force {
			fmt.Fprintf(stderr, "refused: stagednetworkpolicy %s/%s %s\n", ns, name, why)
			return exitCode(exitRefused)
		}
		fmt.Fprintf(stderr, "warning: promoting although it %s (--force)\n", why)
	}
	what, err := promote(ctx, c, s)
	if err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || isAdmissionDenial(err) {
			fmt.Fprintf(stderr, "refused by the API server: %v\n", err)
			return exitCode(exitRefused)
		}
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitCode(cli.ExitBadInput)
	}
	if err := c.Delete(ctx, s, client.Preconditions{UID: &s.UID}); err != nil && !apierrors.IsNotFound(err) {
		fmt.Fprintf(stderr, "error: %s, but deleting the staged policy failed: %v\n", what, err)
		return exitCode(cli.ExitBadInput)
	}
	fmt.Fprintf(stdout, "%s; stagednetworkpolicy %s/%s deleted\n", what, ns, name)
	return status(exitPromoted)
}

func isAdmissionDenial(err error) bool {
	var st apierrors.APIStatus
	return errors.As(err, &st) && strings.Contains(st.Status().Message, "admission webhook")
}

// refusal says why a staged policy may not be promoted yet; empty: it may.
func refusal(s *v1alpha1.StagedNetworkPolicy, minClean time.Duration, now time.Time) string {
	st := s.Status
	switch {
	case st.ObservedGeneration != s.Generation || st.SoakingSince == nil:
		return fmt.Sprintf("has not been evaluated at generation %d yet", s.Generation)
	case st.WouldCut.Flows > 0:
		why := fmt.Sprintf("would cut %d flows", st.WouldCut.Flows)
		if len(st.WouldCut.Top) > 0 {
			why += ", e.g. " + cutString(st.WouldCut.Top[0])
		}
		return why
	case st.CleanSince == nil:
		return "is not clean"
	case now.Sub(st.CleanSince.Time) < minClean:
		return fmt.Sprintf("has been clean for %s, less than --min-clean %s", human.Duration(now.Sub(st.CleanSince.Time)), human.Duration(minClean))
	}
	return ""
}

// promote applies the staged change to the NetworkPolicy and says what it did.
func promote(ctx context.Context, c client.Client, s *v1alpha1.StagedNetworkPolicy) (string, error) {
	key := client.ObjectKey{Namespace: s.Namespace, Name: s.Name}
	current := &networkingv1.NetworkPolicy{}
	err := c.Get(ctx, key, current)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return "", err
	}
	ref := "networkpolicy " + key.String()
	if s.Action() == v1alpha1.StagedDelete {
		if !exists {
			return ref + " already absent", nil
		}
		if err := c.Delete(ctx, current, client.Preconditions{ResourceVersion: &current.ResourceVersion}); err != nil {
			return "", err
		}
		return ref + " deleted", nil
	}
	want := s.NetworkPolicy()
	if want == nil {
		return "", errors.New("stagedAction Set without a template")
	}
	if !exists {
		want.TypeMeta = metav1.TypeMeta{}
		if err := c.Create(ctx, want); err != nil {
			return "", err
		}
		return ref + " created", nil
	}
	current.Labels, current.Annotations, current.Spec = want.Labels, want.Annotations, want.Spec
	if err := c.Update(ctx, current); err != nil {
		return "", err
	}
	return ref + " replaced", nil
}
