package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// Policies select by labels, so a label change cuts traffic as surely as a policy change: a
// namespace that loses the label a namespaceSelector matched, a Deployment whose new pods
// fall out of every podSelector that allowed them, or into one that isolates them. The
// relabel handler judges such changes with the same engine, the same modes, bypass,
// coverage, self-protection and messages as policy changes; only before and after differ:
// the policies are the same, and the flows are judged once with the labels as they are and
// once with the labels as they would be.
//
// A Node's labels decide the nodes peers of ClusterNetworkPolicies: a node relabelled out of
// (or into) such a peer's selector changes what policies say of traffic to and from its
// addresses. The flows judged are the cached edges with that node at one end (host-network
// pods are held as their node); when no cluster policy has a nodes peer, node labels decide
// nothing and a Node relabel is admitted without evaluating.
//
// The chart's webhook entries send only UPDATEs that change labels (matchConditions), so
// the API server never sends the ordinary flood of pod and Deployment updates.

// Relabels returns the admission handler for relabels, served at RelabelNamespacePath,
// RelabelPodPath, RelabelWorkloadPath and RelabelNodePath: it judges each request by its
// kind, whichever of them it came on.
func (g *Guard) Relabels() admission.Handler { return relabelHandler{g} }

type relabelHandler struct{ g *Guard }

var _ admission.Handler = relabelHandler{}

// Handle decides one relabel AdmissionReview, counted with the policy ones.
func (h relabelHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	g := h.g
	start := g.opts.Now()
	resp, mode, outcome := g.handleRelabel(ctx, req)
	if m := g.opts.Metrics; m != nil {
		m.Requests.WithLabelValues(string(req.Operation), string(mode), outcome).Inc()
		m.Latency.Observe(g.opts.Now().Sub(start).Seconds())
	}
	return resp
}

// relabel is one label change, as the guard judges it.
type relabel struct {
	kind    string        // "Namespace", "Pod", "Deployment" …
	subject client.Object // the object as it would be
	// namespace whose cached edges are read: the relabelled namespace, or the workload's.
	namespace string
	// workload is the relabelled pods' workload; zero for a namespace or a node.
	workload flows.PeerID
	// node names the node of a node relabel.
	node string
	// pod names the pod of a pod relabel.
	pod string
	// oldLabels and newLabels are the namespace's, node's or pod's labels, or the workload's
	// pod template's.
	oldLabels, newLabels map[string]string
}

func (rl *relabel) change() string {
	name := rl.subject.GetName()
	if ns := rl.subject.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return "relabel " + rl.kind + " " + name
}

func (g *Guard) handleRelabel(ctx context.Context, req admission.Request) (admission.Response, Mode, string) {
	if req.Operation != admissionv1.Update {
		return admission.Allowed("netpol-guard judges relabels on UPDATE only"), "", outcomeSkipped
	}
	rl, err := decodeRelabel(req)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err), "", outcomeError
	}
	if rl == nil {
		return admission.Allowed("netpol-guard: labels unchanged, or nothing policies select"), "", outcomeSkipped
	}
	if rl.kind == "Node" && !g.opts.View.PolicySet().HasNodePeers() {
		return admission.Allowed("netpol-guard: no ClusterNetworkPolicy has a nodes peer; node relabels are not evaluated"), "", outcomeSkipped
	}
	nsLabels := g.opts.View.NamespaceLabels(rl.namespace)
	if rl.kind == "Namespace" {
		// The namespace's mode label as it is: a relabel cannot switch its own guard off.
		nsLabels = rl.oldLabels
	}
	rm := resolveMode(rl.subject.GetAnnotations(), nsLabels, g.opts.Mode, g.opts.AllowModeRelaxation)
	resp, mode, outcome := g.judgeRelabel(ctx, req, rl, rm)
	g.recordRelaxations(rl.subject, rm, req.UserInfo.Username, req.DryRun != nil && *req.DryRun, &resp)
	return resp, mode, outcome
}

// judgeRelabel evaluates a relabel in its mode and answers.
func (g *Guard) judgeRelabel(ctx context.Context, req admission.Request, rl *relabel, rm resolvedMode) (admission.Response, Mode, string) {
	mode, source, problems := rm.mode, rm.source, append(rm.problems, rm.ignored()...)
	if source == fromPolicy {
		source = modeSource(rl.kind + " annotation")
	}
	if mode == Off {
		return admission.Allowed("netpol-guard mode is off (" + string(source) + ")"), mode, outcomeSkipped
	}
	d, unchecked, outcome := g.decideInTime(ctx, rl.change(), func() decisionResult { return g.decideRelabel(rl) })
	if unchecked != "" {
		logger(ctx).Info("Admitting unchecked", "object", klog.KObj(rl.subject), "why", unchecked)
		return admission.Allowed("").WithWarnings(unchecked), mode, outcome
	}
	if d.err != nil {
		logger(ctx).Error(d.err, "Evaluation failed, admitting unchecked", "object", klog.KObj(rl.subject))
		return admission.Allowed("").WithWarnings("netpol-guard: could not evaluate this change (" + truncate(d.err.Error(), 70) + "); admitted unchecked"), mode, outcomeError
	}
	d.change, d.kind = rl.change(), rl.kind
	d.mode, d.modeSource = mode, source
	d.problems = problems
	d.namespace = rl.namespace
	d.user = req.UserInfo.Username
	d.userInfo = req.UserInfo
	d.dryRun = req.DryRun != nil && *req.DryRun
	d.bypass, d.bypassed = rl.subject.GetAnnotations()[BypassAnnotation]
	defer g.putScratch(d.scratch)
	return g.respond(ctx, rl.subject, d)
}

// decodeRelabel reads the label change of an UPDATE: nil when the labels policies could
// select are unchanged, or the object's pods are not judged by policies at all (a
// host-network pod's traffic is its node's).
func decodeRelabel(req admission.Request) (*relabel, error) {
	var oldObj, newObj client.Object
	kind := req.Kind.Kind
	switch {
	case req.Kind.Group == "" && (kind == "Namespace" || kind == "Pod" || kind == "Node"):
		switch kind {
		case "Namespace":
			oldObj, newObj = &corev1.Namespace{}, &corev1.Namespace{}
		case "Pod":
			oldObj, newObj = &corev1.Pod{}, &corev1.Pod{}
		default:
			oldObj, newObj = &corev1.Node{}, &corev1.Node{}
		}
	case slices.ContainsFunc(cluster.WorkloadKinds, func(k schema.GroupVersionKind) bool { return k.Group == req.Kind.Group && k.Kind == kind }):
		oldObj, _ = cluster.NewWorkload(kind)
		newObj, _ = cluster.NewWorkload(kind)
	default:
		return nil, fmt.Errorf("kind %s.%s: netpol-guard judges relabels of Namespaces, Nodes, Pods and workloads", kind, req.Kind.Group)
	}
	if len(req.OldObject.Raw) == 0 || len(req.Object.Raw) == 0 {
		return nil, fmt.Errorf("an UPDATE of a %s needs object and oldObject", kind)
	}
	if err := json.Unmarshal(req.OldObject.Raw, oldObj); err != nil {
		return nil, fmt.Errorf("oldObject: decoding %s: %w", kind, err)
	}
	if err := json.Unmarshal(req.Object.Raw, newObj); err != nil {
		return nil, fmt.Errorf("object: decoding %s: %w", kind, err)
	}
	rl := &relabel{kind: kind, subject: newObj, namespace: newObj.GetNamespace()}
	switch o := oldObj.(type) {
	case *corev1.Namespace:
		rl.namespace = o.Name
		rl.oldLabels, rl.newLabels = o.Labels, newObj.GetLabels()
	case *corev1.Node:
		rl.node = o.Name
		rl.oldLabels, rl.newLabels = o.Labels, newObj.GetLabels()
	case *corev1.Pod:
		if o.Spec.HostNetwork {
			return nil, nil
		}
		rl.pod = o.Name
		rl.workload = flows.PeerID{Kind: flows.PeerWorkload, Namespace: o.Namespace, Name: cluster.WorkloadOf(o)}
		rl.oldLabels, rl.newLabels = o.Labels, newObj.GetLabels()
	default:
		rl.workload = flows.PeerID{Kind: flows.PeerWorkload, Namespace: oldObj.GetNamespace(), Name: cluster.WorkloadName(kind, oldObj)}
		rl.oldLabels, _ = cluster.TemplateLabels(oldObj)
		rl.newLabels, _ = cluster.TemplateLabels(newObj)
	}
	if maps.Equal(rl.oldLabels, rl.newLabels) {
		return nil, nil
	}
	return rl, nil
}

// decideRelabel judges a relabel from in-memory indexes only: the cached edges it can
// affect — the workload's, every edge into or out of the relabelled namespace (an edge
// that touches neither end's namespace labels cannot change), or the relabelled node's —
// each judged as it is and as it would be, under the same policies.
func (g *Guard) decideRelabel(rl *relabel) (d decisionResult) {
	now := g.opts.Now()
	view := g.opts.View
	ps, world := view.PolicySet(), view.World()
	sc := g.getScratch()
	d.scratch = sc
	if rl.kind == "Node" {
		return g.decideNodeRelabel(rl, now, ps, world, sc)
	}
	var selects func(*evaluator.Endpoint) bool
	if rl.kind == "Namespace" {
		selects = func(ep *evaluator.Endpoint) bool { return ep.Kind == evaluator.Pod }
	} else {
		selects = func(ep *evaluator.Endpoint) bool {
			return ep.Kind == evaluator.Pod && ep.Namespace == rl.workload.Namespace && ep.Name == rl.workload.Name
		}
	}
	edges, _ := g.opts.Cache.Candidates(rl.namespace, func(id flows.PeerID, _ *flows.PeerInfo) bool {
		if rl.kind == "Namespace" || id == rl.workload {
			sc.seen[id] = true
			return true
		}
		return false
	}, sc.edges[:0], g.workers())
	sc.edges = edges
	before := g.evaluatorFlows(edges, sc)
	after, afterWorld := before, world
	if rl.kind == "Namespace" {
		afterWorld = world.WithNamespaceLabels(rl.namespace, rl.newLabels)
	} else {
		before, after = relabelFlows(edges, before, rl)
	}

	memo := g.memos.Get().(*evaluator.Memo)
	defer g.memos.Put(memo) // after the cuts are explained below
	res := evaluator.DiffRelabel(evaluator.State{Policies: ps, World: world, Flows: before},
		evaluator.State{Policies: ps, World: afterWorld, Flows: after}, evaluator.DiffOptions{Memo: memo})
	d.summary = res.Summary
	d.cuts = g.listCuts(res.CutIndexes, res.Explain, edges, sc)
	d.coverage = g.coverage(rl.namespace, now, len(edges), selects, sc.seen)
	return d
}

// decideNodeRelabel judges a node relabel: the node's cached edges, in the world as it is
// and in the same world with the node's new labels. No workload is selected by a node's
// labels, so coverage lists none never seen.
func (g *Guard) decideNodeRelabel(rl *relabel, now time.Time, ps *evaluator.PolicySet, world *evaluator.World, sc *scratch) (d decisionResult) {
	d.scratch = sc
	edges := g.opts.Cache.EdgesOfPeer(flows.PeerID{Kind: flows.PeerNode, Name: rl.node}, sc.edges[:0])
	sc.edges = edges
	fl := g.evaluatorFlows(edges, sc)
	memo := g.memos.Get().(*evaluator.Memo)
	defer g.memos.Put(memo) // after the cuts are explained below
	res := evaluator.DiffRelabel(evaluator.State{Policies: ps, World: world, Flows: fl},
		evaluator.State{Policies: ps, World: world.WithNodeLabels(rl.node, rl.newLabels), Flows: fl}, evaluator.DiffOptions{Memo: memo})
	d.summary = res.Summary
	d.cuts = g.listCuts(res.CutIndexes, res.Explain, edges, sc)
	d.coverage = g.coverage(rl.namespace, now, len(edges), func(*evaluator.Endpoint) bool { return false }, sc.seen)
	return d
}

// relabelFlows returns the workload's flows as they are and as they would be: its end
// replaced by the relabelled endpoint, one for all its flows. A template relabel applies the
// template's change to the labels the workload's pods carry now (what controllers add beside
// the template stays); a pod relabel judges that pod, before with its labels as they are and
// after with the new ones.
func relabelFlows(edges []flows.Edge, fl []evaluator.Flow, rl *relabel) (before, after []evaluator.Flow) {
	var cur *evaluator.Endpoint
	for i := range edges {
		if edges[i].Src == rl.workload {
			cur = fl[i].Src
		} else if edges[i].Dst == rl.workload {
			cur = fl[i].Dst
		}
		if cur != nil {
			break
		}
	}
	if cur == nil {
		return fl, fl
	}
	was, will := cur, (*evaluator.Endpoint)(nil)
	if rl.kind == "Pod" {
		pod := cur
		for _, p := range cur.Pods {
			if p.Pod == rl.pod {
				pod = p
			}
		}
		one := *pod
		one.Pods, one.Nodes = nil, nil
		was = evaluator.Relabelled(&one, rl.oldLabels)
		will = evaluator.Relabelled(&one, rl.newLabels)
	} else {
		will = evaluator.Relabelled(cur, evaluator.ApplyLabelChange(cur.Labels, rl.oldLabels, rl.newLabels))
	}
	before, after = fl, slices.Clone(fl)
	if was != cur {
		before = slices.Clone(fl)
	}
	for i := range edges {
		if edges[i].Src == rl.workload {
			before[i].Src, after[i].Src = was, will
		}
		if edges[i].Dst == rl.workload {
			before[i].Dst, after[i].Dst = was, will
		}
	}
	return before, after
}
