package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/internal/human"
	"github.com/netpol-guard/netpol-guard/suggest"
)

// StagedNetworkPolicy is the kind `recommend --staged` writes, so a recommendation can soak
// before it is enforced.
const (
	StagedAPIVersion = "netpol-guard.io/v1alpha1"
	StagedKind       = "StagedNetworkPolicy"
)

// RecommendOptions configures Recommend.
type RecommendOptions struct {
	Inputs
	// Namespace to recommend for; AllNamespaces for every namespace with workloads.
	Namespace     string
	AllNamespaces bool
	// Staged writes StagedNetworkPolicies (spec.stagedAction Set) instead of policies.
	Staged bool
}

// Recommend writes least-privilege NetworkPolicies for a namespace from the flows observed,
// verified to cut none of them, as YAML with a coverage header. It returns ExitOK, or
// ExitCut when the verification found a cut (a bug: it should not happen), or ExitBadInput.
func Recommend(out, errw io.Writer, opts RecommendOptions) int {
	if err := opts.Validate(); err != nil {
		return fail(errw, err)
	}
	obs, err := load(opts.Inputs)
	if err != nil {
		return fail(errw, err)
	}
	obs.reportSkipped(errw)
	recs, err := recommend(obs, opts)
	if err != nil {
		return fail(errw, err)
	}
	first, last := obs.span()
	code := ExitOK
	for _, rec := range recs {
		fmt.Fprintf(out, "# netpol-guard recommend: least-privilege NetworkPolicies for namespace %s\n", rec.Namespace)
		if first.IsZero() {
			fmt.Fprintf(out, "# Flow history: no times recorded; %d flows of this namespace.\n", rec.Flows)
		} else {
			fmt.Fprintf(out, "# Flow history: %s to %s (%s); %d flows of this namespace.\n", first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339), human.Duration(last.Sub(first)), rec.Flows)
		}
		if len(rec.NeverSeen) > 0 {
			fmt.Fprintf(out, "# Never seen, isolated with nothing allowed: %s.\n", strings.Join(rec.NeverSeen, ", "))
		} else {
			fmt.Fprintln(out, "# Every workload of the namespace was seen.")
		}
		fmt.Fprintf(out, "# Verified: with the cluster's policies these cut %d of the observed flows", rec.Cut)
		fmt.Fprintf(out, "; they allow %d pair(s) between known workloads that no flow asked for.\n", len(rec.Opens))
		for _, p := range rec.Opens[:min(len(rec.Opens), 10)] {
			fmt.Fprintf(out, "#   also allows %s\n", p)
		}
		if rec.Cut > 0 {
			code = ExitCut
		}
		for _, p := range rec.Policies {
			fmt.Fprintf(out, "---\n# %s: %s\n", p.Name, rec.Notes[p.Name])
			y, err := recommendedYAML(p, opts.Staged)
			if err != nil {
				return fail(errw, err)
			}
			out.Write(y)
		}
	}
	return code
}

// Validate checks what can be checked before any input is read: the namespaces asked for.
func (opts RecommendOptions) Validate() error {
	if opts.Namespace == "" && !opts.AllNamespaces {
		return errors.New("-n NAMESPACE or -A is required")
	}
	return nil
}

func recommend(obs *observed, opts RecommendOptions) ([]suggest.Recommendation, error) {
	ps, err := compileCluster(obs)
	if err != nil {
		return nil, err
	}
	namespaces := []string{opts.Namespace}
	if opts.AllNamespaces {
		namespaces = nil
		for _, ns := range obs.snapshot.Namespaces {
			// kube-system carries the control plane's own traffic, which flows rarely show
			// whole: it is recommended for only when asked by name.
			if ns.Name != "kube-system" && len(obs.view.WorkloadsIn(ns.Name)) > 0 {
				namespaces = append(namespaces, ns.Name)
			}
		}
		slices.Sort(namespaces)
	}
	return suggest.Recommend(suggest.RecommendRequest{Policies: ps, World: obs.world, Flows: obs.flows, Namespaces: namespaces, Known: obs.knownEndpoints()})
}

// span is the first and last time a flow was seen, zero when none says.
func (obs *observed) span() (first, last time.Time) {
	for _, r := range obs.records {
		if r.LastSeen.IsZero() {
			continue
		}
		if first.IsZero() || r.LastSeen.Before(first) {
			first = r.LastSeen
		}
		if r.LastSeen.After(last) {
			last = r.LastSeen
		}
	}
	return first, last
}

// recommendedYAML is a policy as YAML, or wrapped in a StagedNetworkPolicy.
func recommendedYAML(p *networkingv1.NetworkPolicy, staged bool) ([]byte, error) {
	if !staged {
		return policyYAML(p)
	}
	return yaml.Marshal(map[string]any{
		"apiVersion": StagedAPIVersion,
		"kind":       StagedKind,
		"metadata":   map[string]string{"name": p.Name, "namespace": p.Namespace},
		"spec": map[string]any{
			"stagedAction": "Set",
			// The template's metadata holds labels and annotations only: its name and
			// namespace are the staged policy's.
			"template": v1alpha1.NetworkPolicyTemplate{
				Metadata: v1alpha1.TemplateMetadata{Labels: p.Labels, Annotations: p.Annotations},
				Spec:     p.Spec,
			},
		},
	})
}
