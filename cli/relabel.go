package cli

import (
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// relabelChange is a Namespace, Pod or workload given with -f that the cluster holds with
// other labels: judged as that relabel, as the webhook judges it.
type relabelChange struct {
	kind, namespace, name string
	// workload is the relabelled pods' workload ("Deployment/web"); empty for a namespace.
	workload             string
	oldLabels, newLabels map[string]string
}

func (c relabelChange) String() string {
	name := c.name
	if c.namespace != "" {
		name = c.namespace + "/" + name
	}
	return "relabel " + c.kind + " " + name
}

// readRelabels finds the relabels among the -f objects: each must exist in the cluster.
// Objects whose labels are unchanged are no change.
func readRelabels(path string, s, current *cluster.Objects) ([]relabelChange, error) {
	var out []relabelChange
	for _, ns := range s.Namespaces {
		var old *corev1.Namespace
		for _, o := range current.Namespaces {
			if o.Name == ns.Name {
				old = o
			}
		}
		if old == nil {
			return nil, fmt.Errorf("%s: namespace %s is not in the cluster; only relabels of existing namespaces are judged", path, ns.Name)
		}
		if !maps.Equal(old.Labels, ns.Labels) {
			out = append(out, relabelChange{kind: "Namespace", name: ns.Name, oldLabels: old.Labels, newLabels: ns.Labels})
		}
	}
	for _, p := range s.Pods {
		var found bool
		for _, o := range current.Pods {
			if o.Namespace == p.Namespace && o.Name == p.Name {
				found = true
				if !maps.Equal(o.Labels, p.Labels) {
					out = append(out, relabelChange{kind: "Pod", namespace: p.Namespace, name: p.Name, workload: cluster.WorkloadOf(o), oldLabels: o.Labels, newLabels: p.Labels})
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("%s: pod %s/%s is not in the cluster; only relabels of existing pods are judged", path, p.Namespace, p.Name)
		}
	}
	for _, w := range s.Workloads {
		kind := cluster.KindOf(w)
		old := -1
		for i, o := range current.Workloads {
			if cluster.KindOf(o) == kind && o.GetNamespace() == w.GetNamespace() && o.GetName() == w.GetName() {
				old = i
			}
		}
		if old < 0 {
			return nil, fmt.Errorf("%s: %s %s/%s is not in the cluster (give --cluster the output of kubectl get %ss too); only relabels of existing workloads are judged",
				path, kind, w.GetNamespace(), w.GetName(), kind)
		}
		o := current.Workloads[old]
		oldT, _ := cluster.TemplateLabels(o)
		newT, _ := cluster.TemplateLabels(w)
		if !maps.Equal(oldT, newT) {
			out = append(out, relabelChange{kind: kind, namespace: w.GetNamespace(), name: w.GetName(), workload: cluster.WorkloadName(kind, o), oldLabels: oldT, newLabels: newT})
		}
	}
	return out, nil
}

// relabelled returns the flows and world as they would be after the relabels: each
// relabelled workload's end replaced by one endpoint with its new labels, each relabelled
// namespace with its new labels.
func relabelled(obs *observed, relabels []relabelChange) ([]evaluator.Flow, *evaluator.World) {
	world := obs.world
	byWorkload := map[flows.PeerID]relabelChange{}
	for _, r := range relabels {
		if r.kind == "Namespace" {
			world = world.WithNamespaceLabels(r.name, r.newLabels)
			continue
		}
		byWorkload[flows.PeerID{Kind: flows.PeerWorkload, Namespace: r.namespace, Name: r.workload}] = r
	}
	if len(byWorkload) == 0 {
		return obs.flows, world
	}
	swapped := map[*evaluator.Endpoint]*evaluator.Endpoint{}
	swap := func(ep *evaluator.Endpoint) *evaluator.Endpoint {
		if ep == nil || ep.Kind != evaluator.Pod {
			return ep
		}
		if s, ok := swapped[ep]; ok {
			return s
		}
		r, ok := byWorkload[flows.PeerID{Kind: flows.PeerWorkload, Namespace: ep.Namespace, Name: ep.Name}]
		if !ok {
			swapped[ep] = ep
			return ep
		}
		labels := r.newLabels
		if r.kind != "Pod" {
			labels = evaluator.ApplyLabelChange(ep.Labels, r.oldLabels, r.newLabels)
		}
		s := evaluator.Relabelled(ep, labels)
		swapped[ep] = s
		return s
	}
	out := make([]evaluator.Flow, len(obs.flows))
	for i, f := range obs.flows {
		f.Src, f.Dst = swap(f.Src), swap(f.Dst)
		out[i] = f
	}
	return out, world
}
