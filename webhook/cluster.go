package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// Cluster policies (sigs.k8s.io/network-policy-api: ClusterNetworkPolicy, and the legacy
// AdminNetworkPolicy and BaselineAdminNetworkPolicy) are judged as NetworkPolicies are: the
// cluster's policies before and after the change, the cached edges into and out of every pod
// the policy's old or new subject selects, in whatever namespace, and the flows allowed
// before and denied after. They are cluster-scoped, so only the global mode and the
// policy's own annotation decide the mode; no namespace label applies.

// isClusterPolicy reports whether a request is about one of the cluster policy kinds.
func isClusterPolicy(kind metav1.GroupVersionKind) bool {
	if kind.Group != v1beta1.GroupName {
		return false
	}
	switch kind.Kind {
	case "ClusterNetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy":
		return true
	}
	return false
}

// clusterObject is a cluster policy as the request carries it (for its name and
// annotations, and to record Events on) and as the evaluator judges it.
type clusterObject struct {
	obj    client.Object
	policy *evaluator.ClusterPolicy
}

// decodeClusterPolicies returns the cluster policy before (UPDATE, DELETE) and after
// (CREATE, UPDATE), of the request's kind and version.
func decodeClusterPolicies(req admission.Request) (old, new *clusterObject, err error) {
	var newObject func() client.Object
	switch req.Kind.Kind + "/" + req.Kind.Version {
	case "ClusterNetworkPolicy/v1beta1":
		newObject = func() client.Object { return &v1beta1.ClusterNetworkPolicy{} }
	case "ClusterNetworkPolicy/v1alpha2":
		newObject = func() client.Object { return &v1alpha2.ClusterNetworkPolicy{} }
	case "AdminNetworkPolicy/v1alpha1":
		newObject = func() client.Object { return &v1alpha1.AdminNetworkPolicy{} }
	case "BaselineAdminNetworkPolicy/v1alpha1":
		newObject = func() client.Object { return &v1alpha1.BaselineAdminNetworkPolicy{} }
	default:
		return nil, nil, fmt.Errorf("%s %s/%s: netpol-guard does not know this version", req.Kind.Kind, req.Kind.Group, req.Kind.Version)
	}
	return decodeObjects(req, func(raw []byte) (*clusterObject, error) {
		obj := newObject()
		if err := json.Unmarshal(raw, obj); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", req.Kind.Kind, err)
		}
		p, err := evaluator.ClusterPolicyOf(obj)
		if err != nil {
			return nil, err
		}
		return &clusterObject{obj: obj, policy: p}, nil
	})
}

// handleCluster decides a change of a cluster policy, as handle does a NetworkPolicy's.
func (g *Guard) handleCluster(ctx context.Context, req admission.Request) (admission.Response, Mode, string) {
	oldP, newP, err := decodeClusterPolicies(req)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err), "", outcomeError
	}
	subject := newP
	if subject == nil {
		subject = oldP
	}
	// Cluster-scoped: no namespace label; the policy's annotation may tighten the global
	// mode, as a NetworkPolicy's may.
	dryRun := req.DryRun != nil && *req.DryRun
	rm := resolveMode(subject.obj.GetAnnotations(), nil, g.opts.Mode, g.opts.AllowModeRelaxation)
	resp, outcome := g.judgeCluster(ctx, req, oldP, newP, subject, rm, dryRun)
	g.recordRelaxations(subject.obj, rm, req.UserInfo.Username, dryRun, &resp)
	return resp, rm.mode, outcome
}

// judgeCluster evaluates a cluster policy change in its mode and answers.
func (g *Guard) judgeCluster(ctx context.Context, req admission.Request, oldP, newP, subject *clusterObject, rm resolvedMode, dryRun bool) (admission.Response, string) {
	problems := append(rm.problems, rm.ignored()...)
	if rm.mode == Off {
		return admission.Allowed("netpol-guard mode is off (" + string(rm.source) + ")"), outcomeSkipped
	}
	var oldCP, newCP *evaluator.ClusterPolicy
	if oldP != nil {
		oldCP = oldP.policy
	}
	if newP != nil {
		newCP = newP.policy
	}
	ref := subject.policy.Ref().String()
	change := strings.ToLower(string(req.Operation)) + " " + ref
	d, unchecked, outcome := g.decideInTime(ctx, change, func() decisionResult { return g.decideCluster(oldCP, newCP) })
	if unchecked != "" {
		logger(ctx).Info("Admitting unchecked", "policy", ref, "why", unchecked)
		return admission.Allowed("").WithWarnings(append(prefixed(problems), unchecked)...), outcome
	}
	if d.err != nil {
		logger(ctx).Error(d.err, "Evaluation failed, admitting unchecked", "policy", ref)
		return admission.Allowed("").WithWarnings(append(prefixed(problems), "netpol-guard: could not evaluate this change ("+truncate(d.err.Error(), 70)+"); admitted unchecked")...), outcomeError
	}
	d.change = change
	d.mode, d.modeSource = rm.mode, rm.source
	d.problems = problems
	d.user = req.UserInfo.Username
	d.userInfo = req.UserInfo
	d.dryRun = dryRun
	d.bypass, d.bypassed = subject.obj.GetAnnotations()[BypassAnnotation]
	defer g.putScratch(d.scratch)
	resp, _, outcome := g.respond(ctx, subject.obj, d)
	return withUncertain(resp, d), outcome
}

// clusterSubject selects the pods a cluster policy's subject selects: pods of the
// namespaces ns matches, and of those the pods pods matches (nil: every pod).
type clusterSubject struct {
	ns, pods labels.Selector
}

func subjectOf(p *evaluator.ClusterPolicy) (clusterSubject, error) {
	s := p.Spec.Subject
	var out clusterSubject
	var err error
	switch {
	case s.Namespaces != nil:
		out.ns, err = evaluator.Selector(s.Namespaces)
	case s.Pods != nil:
		if out.ns, err = evaluator.Selector(&s.Pods.NamespaceSelector); err == nil {
			out.pods, err = evaluator.Selector(&s.Pods.PodSelector)
		}
	default:
		out.ns = labels.Nothing()
	}
	if err != nil {
		return out, fmt.Errorf("%s: spec.subject: %w", p.Ref(), err)
	}
	return out, nil
}

// decideCluster judges a change of a cluster policy: create (old nil), update or delete
// (new nil), over the edges of every pod its old or new subject selects.
func (g *Guard) decideCluster(oldPolicy, newPolicy *evaluator.ClusterPolicy) (d decisionResult) {
	now := g.opts.Now()
	ps := g.opts.View.PolicySet()
	before := ps
	var err error
	if oldPolicy != nil {
		// The request's oldObject is the truth for the policy it changes.
		if before, err = ps.WithCluster(ps.GetCluster(oldPolicy.Ref()), oldPolicy); err != nil {
			d.err = fmt.Errorf("compiling the current policy: %w", err)
			return d
		}
	}
	after, err := before.WithCluster(oldPolicy, newPolicy)
	if err != nil {
		d.err = fmt.Errorf("compiling the new policy: %w", err)
		return d
	}
	var subjects []clusterSubject
	for _, p := range []*evaluator.ClusterPolicy{oldPolicy, newPolicy} {
		if p == nil {
			continue
		}
		s, err := subjectOf(p)
		if err != nil {
			d.err = err
			return d
		}
		subjects = append(subjects, s)
	}
	world := g.opts.View.World()
	sc := g.getScratch()
	d.scratch = sc
	edges, namespaces := g.clusterCandidates(world, subjects, sc)
	fl := g.evaluatorFlows(edges, sc)

	memo := g.memos.Get().(*evaluator.Memo)
	defer g.memos.Put(memo)
	res := evaluator.DiffWith(before, after, world, fl, evaluator.DiffOptions{Memo: memo, Workers: g.workers()})
	d.summary = res.Summary
	d.cuts = g.listCuts(res.CutIndexes, res.Explain, edges, sc)
	d.uncertain = uncertainLines(&res, edges, g.opts.MaxListed)
	cov := g.opts.Cache.Coverage()
	d.coverage = coverage{since: cov.Since, history: cov.History(now), edges: len(edges), unresolved: cov.Unresolved}
	for _, ns := range namespaces {
		for _, id := range g.opts.View.WorkloadsIn(ns) {
			if !sc.seen[id] && selectsAny(subjects, g.opts.View.Endpoint(id, nil), world.NamespaceLabels[ns]) {
				d.coverage.neverSeen = append(d.coverage.neverSeen, ns+"/"+id.Name)
			}
		}
	}
	slices.Sort(d.coverage.neverSeen)
	return d
}

// selectsAny reports whether a subject selects the pod ep of a namespace labelled nsLabels.
func selectsAny(subjects []clusterSubject, ep *evaluator.Endpoint, nsLabels map[string]string) bool {
	if ep.Kind != evaluator.Pod {
		return false
	}
	for _, s := range subjects {
		if s.ns.Matches(namespaceLabels(ep.Namespace, nsLabels)) && (s.pods == nil || s.pods.Matches(labels.Set(ep.Labels))) {
			return true
		}
	}
	return false
}

// namespaceLabels are a namespace's labels with kubernetes.io/metadata.name, which every
// namespace has, listed or not.
func namespaceLabels(ns string, l map[string]string) labels.Set {
	if l["kubernetes.io/metadata.name"] == ns {
		return l
	}
	out := make(labels.Set, len(l)+1)
	maps.Copy(out, l)
	out["kubernetes.io/metadata.name"] = ns
	return out
}

// clusterCandidates reads the cached edges into or out of the pods the subjects select, in
// every namespace a subject's namespace selector matches, once each, and returns those
// namespaces. An edge between selected workloads of two namespaces is read from both; the
// second read is dropped.
func (g *Guard) clusterCandidates(world *evaluator.World, subjects []clusterSubject, sc *scratch) ([]flows.Edge, []string) {
	view := g.opts.View
	var namespaces []string
	for _, ns := range slices.Sorted(maps.Keys(world.NamespaceLabels)) {
		nsl := namespaceLabels(ns, world.NamespaceLabels[ns])
		if slices.ContainsFunc(subjects, func(s clusterSubject) bool { return s.ns.Matches(nsl) }) {
			namespaces = append(namespaces, ns)
		}
	}
	edges := sc.edges[:0]
	for _, ns := range namespaces {
		nsl := world.NamespaceLabels[ns]
		first := len(edges)
		edges, _ = g.opts.Cache.Candidates(ns, func(id flows.PeerID, info *flows.PeerInfo) bool {
			if selectsAny(subjects, view.Endpoint(id, info), nsl) {
				sc.seen[id] = true
				return true
			}
			return false
		}, edges, g.workers())
		if first == 0 {
			continue
		}
		// Edges of this namespace's selected workloads with a selected workload of a
		// namespace read before at the other end were read then.
		kept := edges[:first]
		for _, e := range edges[first:] {
			other := e.Src
			if other.Namespace == ns {
				other = e.Dst
			}
			if other.Kind == flows.PeerWorkload && other.Namespace != ns && other.Namespace < ns && sc.seen[other] {
				continue
			}
			kept = append(kept, e)
		}
		edges = kept
	}
	sc.edges = edges
	return edges, namespaces
}

// uncertainLines describe the flows whose fate a domainNames rule decides on one side of
// the change: not cut, but not known to be kept either. At most n are explained.
func uncertainLines(res *evaluator.DiffResult, edges []flows.Edge, n int) []string {
	if len(res.Uncertain) == 0 {
		return nil
	}
	out := []string{fmt.Sprintf("%s uncertain: a domainNames rule decides them, which an address cannot tell", plural(len(res.Uncertain), "flow"))}
	for _, i := range res.Uncertain[:min(len(res.Uncertain), n)] {
		c := res.Explain(i)
		why := "now " + c.After.Reason() // allowed before, uncertain now
		if !c.After.Uncertain {
			why = "was " + c.Before.Reason() + "; now " + c.After.Denial()
		}
		out = append(out, "uncertain "+flowName(&edges[i])+": "+why)
	}
	return out
}

// withUncertain adds the uncertain flows of a decision to its answer as warnings: never a
// denial, whatever the mode.
func withUncertain(resp admission.Response, d decisionResult) admission.Response {
	if len(d.uncertain) == 0 || d.mode == Audit {
		return resp
	}
	for _, l := range d.uncertain {
		resp.Warnings = append(resp.Warnings, truncate("netpol-guard: "+l, maxWarning))
	}
	return resp
}
