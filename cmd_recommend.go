package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol-guard/netpol-guard/cli"
	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/evaluator"
)

type recommendFlags struct {
	webhookFlags
	opts             cli.RecommendOptions
	serviceNamespace string
}

func newRecommendCommand(stdin io.Reader) *cobra.Command {
	f := recommendFlags{webhookFlags: newWebhookFlags()}
	// -n is the namespace to recommend for, and --cluster the cluster file: not kubectl's.
	f.kube.Namespace = nil
	f.kube.ClusterName = nil
	cmd := &cobra.Command{
		Use:   "recommend (-n NS | -A) [--cluster FILE --flows FILE | --server URL --token-file FILE] [--staged]",
		Short: "Write least-privilege NetworkPolicies for a namespace from its observed flows",
		Long: `Write least-privilege NetworkPolicies for a namespace from the flows observed: default-deny
for both directions, allow-dns and allow-apiserver where its pods reach them, and one
allow-<workload> per workload, each peer named by its stable labels and namespace, or by
its address as a /32. The header says what the recommendation rests on (the flow history,
the workloads never seen) and what it allows beyond the flows; it is verified with the
evaluator to cut none of them.

The flows come from --flows, or from a running webhook's flow cache, reached as
'flows export' reaches it: with --server directly (with --token-file's token), without
--server through the API server's Service proxy with the kubeconfig's credentials. The
cluster then comes from --cluster if given, else from the API server of the kubeconfig
(namespaces, nodes, pods, NetworkPolicies, and the cluster policies it serves).

Exit status: 0 written, 1 the verification found a cut, 2 bad input.`,
		Example: `  # Policies for the shop namespace, ready for kubectl apply
  netpol-guard recommend --cluster examples/cluster.yaml --flows examples/flows.jsonl -n shop

  # Every namespace, as StagedNetworkPolicies to soak first
  netpol-guard recommend --cluster examples/cluster.yaml --flows examples/flows.jsonl -A --staged

  # From the running webhook's flows and the current kubeconfig's cluster
  netpol-guard recommend -n shop --token-file reader.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.opts.Stdin = stdin
			return status(f.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	fs := cmd.Flags()
	var output string
	inputFlags(fs, &f.opts.Inputs, &output)
	_ = fs.MarkHidden("output")
	fs.Lookup("cluster").Usage = "Kubernetes objects: a file or directory of YAML/JSON (kubectl get namespaces,pods,nodes,networkpolicies -A -o yaml), or - for stdin (default with --flows: required; else the kubeconfig's API server)"
	fs.Lookup("flows").Usage = "observed flows: JSON Lines flow records or Hubble JSON, or - for stdin (default: the webhook's flow cache, see --server)"
	fs.StringVarP(&f.opts.Namespace, "namespace", "n", "", "the namespace to recommend policies for")
	fs.BoolVarP(&f.opts.AllNamespaces, "all-namespaces", "A", false, "recommend for every namespace with workloads but kube-system")
	fs.BoolVar(&f.opts.Staged, "staged", false, "write StagedNetworkPolicies ("+cli.StagedAPIVersion+", stagedAction Set) so the recommendation can soak")
	f.addFlags(fs)
	fs.StringVar(&f.serviceNamespace, "service-namespace", defaultGuardNamespace, "namespace of the webhook's Service, reached through the API server")
	completeOutput(cmd)
	return cmd
}

func (f *recommendFlags) run(ctx context.Context, stdout, stderr io.Writer) int {
	bad := func(err error) int {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return cli.ExitBadInput
	}
	if f.opts.Flows != "" {
		if f.server != "" {
			return bad(errors.New("--flows and --server: give one"))
		}
		return cli.Recommend(stdout, stderr, f.opts)
	}
	if err := f.opts.Validate(); err != nil {
		return bad(err)
	}
	src, err := f.flowSource(f.serviceNamespace)
	if err != nil {
		return bad(err)
	}
	ctx, cancel := f.withTimeout(ctx)
	defer cancel()
	if f.opts.Cluster == "" {
		cfg, err := f.kube.ToRESTConfig()
		if err != nil {
			return bad(fmt.Errorf("kubeconfig: %w", err))
		}
		if f.opts.Objects, err = listCluster(ctx, cfg); err != nil {
			return bad(err)
		}
	}
	// The export streams into the reading of flows; a failed export is a failed read.
	r, w := io.Pipe()
	defer r.Close()
	go func() { w.CloseWithError(src.exportTo(ctx, "", w)) }()
	f.opts.Flows, f.opts.FlowsFrom = src.base, r
	return cli.Recommend(stdout, stderr, f.opts)
}

// listPageSize is how many objects one list request asks for.
const listPageSize = 500

// listCluster lists what the recommendation judges with from the API server: namespaces,
// nodes, pods, NetworkPolicies, and the cluster policies of cluster.ClusterPolicyKinds it
// serves.
func listCluster(ctx context.Context, cfg *rest.Config) (*cluster.Objects, error) {
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), cluster.AddClusterPolicyTypes(scheme)); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("API server client: %w", err)
	}
	objs := &cluster.Objects{}
	lists := []struct {
		list client.ObjectList
		add  func(runtime.Object)
	}{
		{&corev1.NamespaceList{}, func(o runtime.Object) { objs.Namespaces = append(objs.Namespaces, o.(*corev1.Namespace)) }},
		{&corev1.NodeList{}, func(o runtime.Object) { objs.Nodes = append(objs.Nodes, o.(*corev1.Node)) }},
		{&corev1.PodList{}, func(o runtime.Object) { objs.Pods = append(objs.Pods, o.(*corev1.Pod)) }},
		{&networkingv1.NetworkPolicyList{}, func(o runtime.Object) { objs.Policies = append(objs.Policies, o.(*networkingv1.NetworkPolicy)) }},
	}
	for _, l := range lists {
		if err := listAll(ctx, c, l.list, func(o runtime.Object) error { l.add(o); return nil }); err != nil {
			return nil, err
		}
	}
	for _, k := range cluster.ClusterPolicyKinds {
		obj, err := scheme.New(k.GVK.GroupVersion().WithKind(k.GVK.Kind + "List"))
		if err != nil {
			return nil, err
		}
		err = listAll(ctx, c, obj.(client.ObjectList), func(o runtime.Object) error {
			p, err := evaluator.ClusterPolicyOf(o.(metav1.Object))
			if err != nil {
				return err
			}
			objs.ClusterPolicies = append(objs.ClusterPolicies, p)
			return nil
		})
		switch {
		case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
			// Not served: the cluster has no policies of this kind.
		case err != nil:
			return nil, err
		}
	}
	return objs, nil
}

// listAll lists every object of the kind of the empty list, a page at a time, and calls
// each with each. Every page is a new list: each may keep the objects.
func listAll(ctx context.Context, c client.Client, empty client.ObjectList, each func(runtime.Object) error) error {
	gvk, err := c.GroupVersionKindFor(empty)
	if err != nil {
		return err
	}
	for cont := ""; ; {
		page := empty.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, page, client.Limit(listPageSize), client.Continue(cont)); err != nil {
			return fmt.Errorf("listing %s: %w", strings.TrimSuffix(gvk.Kind, "List"), err)
		}
		if err := meta.EachListItem(page, each); err != nil {
			return err
		}
		if cont = page.GetContinue(); cont == "" {
			return nil
		}
	}
}
