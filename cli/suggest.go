package cli

import (
	"fmt"
	"io"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/suggest"
)

// knownEndpoints are every workload of the cluster's namespaces, as the live view judges
// them: what a fix's "also opens" is counted over, besides the ends of the flows.
func (obs *observed) knownEndpoints() []*evaluator.Endpoint {
	var out []*evaluator.Endpoint
	for _, ns := range obs.snapshot.Namespaces {
		for _, id := range obs.view.WorkloadsIn(ns.Name) {
			out = append(out, obs.view.Endpoint(id, nil))
		}
	}
	return out
}

// fixFor is the suggested fix for the changes' cuts.
func fixFor(obs *observed, before, after *evaluator.PolicySet, changes []change, res evaluator.DiffResult) (*suggest.Fix, error) {
	req := suggest.Request{Before: before, After: after, World: obs.world, Flows: obs.flows, Cut: res.CutIndexes, Known: obs.knownEndpoints()}
	for _, c := range changes {
		req.Changes = append(req.Changes, suggest.Change{Old: c.old, New: c.new})
	}
	return suggest.ForCut(req)
}

// writeFix writes the fix after the check table: what it adds, how it was verified, what
// else it opens, and the policies as YAML for kubectl apply.
func writeFix(out io.Writer, fix *suggest.Fix, cut int) error {
	fmt.Fprintln(out)
	if len(fix.Policies) == 0 {
		fmt.Fprintln(out, "No fix: no rule can name the ends of the cut flows.")
		return nil
	}
	verdict := "verified: the change with it cuts none of the observed flows"
	if fix.StillCut > 0 {
		verdict = fmt.Sprintf("the change with it still cuts %d observed flows", fix.StillCut)
	}
	fmt.Fprintf(out, "Suggested fix: keeps %d of %d cut flows; %s.\n", fix.Kept, cut, verdict)
	for _, r := range fix.Rules {
		fmt.Fprintf(out, "  add %s\n", r)
	}
	if len(fix.Opens) == 0 {
		fmt.Fprintln(out, "It opens nothing else between the known workloads.")
	} else {
		fmt.Fprintf(out, "It also opens %d pair(s) the cut flows do not need (their labels are shared):\n", len(fix.Opens))
		for _, p := range fix.Opens {
			fmt.Fprintf(out, "  %s\n", p)
		}
	}
	fmt.Fprintln(out, "\n# kubectl apply -f <this file>")
	return writePolicies(out, fix.Policies)
}

// writePolicies writes policies as YAML documents.
func writePolicies(out io.Writer, policies []*networkingv1.NetworkPolicy) error {
	for _, p := range policies {
		y, err := policyYAML(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "---\n%s", y)
	}
	return nil
}

// policyYAML is a policy as kubectl apply takes it: kind and apiVersion set, no status or
// server-set metadata.
func policyYAML(p *networkingv1.NetworkPolicy) ([]byte, error) {
	c := clean(p)
	return yaml.Marshal(c)
}

func clean(p *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	c := p.DeepCopy()
	c.APIVersion, c.Kind = "networking.k8s.io/v1", "NetworkPolicy"
	c.ResourceVersion, c.UID, c.Generation, c.ManagedFields = "", "", 0, nil
	c.CreationTimestamp = metav1.Time{}
	return c
}

func compileCluster(obs *observed) (*evaluator.PolicySet, error) {
	ps, err := evaluator.Compile(obs.snapshot.Policies)
	if err != nil {
		return nil, fmt.Errorf("cluster policies: %w", err)
	}
	return ps, nil
}
