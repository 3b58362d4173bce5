package webhook

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/human"
)

// View is the live cluster as the guard needs it. package cluster's Live implements it from
// informers: every method answers from memory.
type View interface {
	// PolicySet is every NetworkPolicy in the cluster now, compiled.
	PolicySet() *evaluator.PolicySet
	// World is namespace labels and node addresses.
	World() *evaluator.World
	// Endpoint judges a cached peer with its workload's live labels, falling back to those
	// stored with the edge when no pod of it runs now.
	Endpoint(id flows.PeerID, stored *flows.PeerInfo) *evaluator.Endpoint
	// WorkloadsIn lists the workloads that run pods in a namespace now.
	WorkloadsIn(namespace string) []flows.PeerID
	// NamespaceLabels of a namespace, nil if unknown.
	NamespaceLabels(namespace string) map[string]string
	// WebhookBackend names the admission webhook a workload serves, if any: cutting its
	// ingress cuts the API server's path to it.
	WebhookBackend(id flows.PeerID) (string, bool)
}

// Options configures a Guard.
type Options struct {
	Cache *flows.Cache
	View  View
	// Mode is the global mode; default warn.
	Mode Mode
	// MinHistory is how long the cache must have been observing before enforce rejects;
	// with less, enforce degrades to a warning that says so. Default 1h.
	MinHistory time.Duration
	// MaxListed is how many cut flows a message lists; default 5.
	MaxListed int
	// Budget bounds an evaluation when the request carries no deadline; default 3s. With a
	// deadline, the guard answers a little before it.
	Budget time.Duration
	// Recorder records Events; nil records none.
	Recorder events.EventRecorder
	// Metrics; nil records none.
	Metrics *Metrics
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Guard is the validating admission handler for NetworkPolicies.
type Guard struct {
	opts Options
	// memos keep what the evaluator learnt about the cluster's workloads from one admission
	// to the next, one per concurrent admission.
	memos sync.Pool
	// scratches are the buffers of an admission (its candidate edges, flows, cuts), reused:
	// an admission over 10k edges would otherwise allocate megabytes and make the
	// collector, not the decision, set its latency.
	scratches sync.Pool
}

// scratch holds an admission's buffers; the cuts of a decision point into its edges, so it
// goes back to the pool only once the answer is built.
type scratch struct {
	edges       []flows.Edge
	flows       []evaluator.Flow
	cuts        []cutFlow
	index       []int
	endpoints   map[uint32]*evaluator.Endpoint
	protections map[uint64]string
	seen        map[flows.PeerID]bool
}

func (g *Guard) getScratch() *scratch {
	if sc, ok := g.scratches.Get().(*scratch); ok {
		clear(sc.endpoints)
		clear(sc.protections)
		clear(sc.seen)
		return sc
	}
	return &scratch{endpoints: map[uint32]*evaluator.Endpoint{}, protections: map[uint64]string{}, seen: map[flows.PeerID]bool{}}
}

// putScratch returns buffers to the pool, unless an unusually large admission grew them.
func (g *Guard) putScratch(sc *scratch) {
	if sc == nil || cap(sc.edges) > 1<<17 {
		return
	}
	g.scratches.Put(sc)
}

var _ admission.Handler = (*Guard)(nil)

// NewGuard returns a guard with defaults filled in.
func NewGuard(opts Options) *Guard {
	if opts.Mode == "" {
		opts.Mode = Warn
	}
	if opts.MinHistory == 0 {
		opts.MinHistory = time.Hour
	}
	if opts.MaxListed <= 0 {
		opts.MaxListed = 5
	}
	if opts.Budget <= 0 {
		opts.Budget = 3 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Guard{opts: opts}
	g.memos.New = func() any { return evaluator.NewMemo() }
	return g
}

// Outcomes, as metrics and audit annotations name them.
const (
	outcomeAllowed  = "allowed"  // nothing cut
	outcomeRejected = "rejected" // enforce
	outcomeWarned   = "warned"
	outcomeAudited  = "audited"
	outcomeBypassed = "bypassed" // enforce, admitted by the bypass annotation
	outcomeDegraded = "degraded" // enforce with too little history: warned instead
	outcomeSkipped  = "skipped"  // mode off, or not a NetworkPolicy
	outcomeTimeout  = "timeout"  // admitted unchecked: no time left
	outcomeError    = "error"
)

// Handle decides one AdmissionReview.
func (g *Guard) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := g.opts.Now()
	op := string(req.Operation)
	resp, mode, outcome := g.handle(ctx, req)
	if m := g.opts.Metrics; m != nil {
		m.Requests.WithLabelValues(op, string(mode), outcome).Inc()
		m.Latency.Observe(g.opts.Now().Sub(start).Seconds())
	}
	return resp
}

func (g *Guard) handle(ctx context.Context, req admission.Request) (admission.Response, Mode, string) {
	if isClusterPolicy(req.Kind) {
		return g.handleCluster(ctx, req)
	}
	if req.Kind.Group != networkingv1.GroupName || req.Kind.Kind != "NetworkPolicy" {
		return admission.Allowed("netpol-guard only judges NetworkPolicies"), "", outcomeSkipped
	}
	oldPolicy, newPolicy, err := decodePolicies(req)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err), "", outcomeError
	}
	subject := newPolicy
	if subject == nil {
		subject = oldPolicy
	}
	ns := subject.Namespace
	if ns == "" {
		ns = req.Namespace
	}
	mode, source, problems := resolveMode(subject.Annotations, g.opts.View.NamespaceLabels(ns), g.opts.Mode)
	if mode == Off {
		return admission.Allowed("netpol-guard mode is off (" + string(source) + ")"), mode, outcomeSkipped
	}

	budget := g.opts.Budget
	if deadline, ok := ctx.Deadline(); ok {
		// Leave room to answer: an admission that times out is worse than one admitted
		// unchecked with a warning.
		budget = time.Until(deadline) * 8 / 10
	}
	done := make(chan decisionResult, 1)
	go func() { done <- g.decide(ns, oldPolicy, newPolicy) }()
	var d decisionResult
	select {
	case d = <-done:
	case <-time.After(budget):
		logger(ctx).Info("Evaluation did not finish in time, admitting unchecked", "policy", klog.KObj(subject), "budget", budget)
		return admission.Allowed("").WithWarnings(fmt.Sprintf("netpol-guard: evaluation did not finish within %s; %s admitted unchecked", budget.Round(time.Millisecond), change(req.Operation, subject))), mode, outcomeTimeout
	}
	if d.err != nil {
		// Fail open: a guardrail outage must never block an incident fix.
		logger(ctx).Error(d.err, "Evaluation failed, admitting unchecked", "policy", klog.KObj(subject))
		return admission.Allowed("").WithWarnings("netpol-guard: could not evaluate this change (" + truncate(d.err.Error(), 70) + "); admitted unchecked"), mode, outcomeError
	}
	d.change = change(req.Operation, subject)
	d.mode, d.modeSource = mode, source
	d.problems = problems
	d.user = req.UserInfo.Username
	d.dryRun = req.DryRun != nil && *req.DryRun
	d.bypass, d.bypassed = subject.Annotations[BypassAnnotation]
	defer g.putScratch(d.scratch)
	resp, mode, outcome := g.respond(ctx, subject, d)
	return withUncertain(resp, d), mode, outcome
}

// decodePolicies returns the policy before (UPDATE, DELETE) and after (CREATE, UPDATE).
func decodePolicies(req admission.Request) (old, new *networkingv1.NetworkPolicy, err error) {
	decode := func(raw []byte, what string) (*networkingv1.NetworkPolicy, error) {
		if len(raw) == 0 {
			return nil, fmt.Errorf("%s: missing in a %s request", what, req.Operation)
		}
		p := &networkingv1.NetworkPolicy{}
		if err := json.Unmarshal(raw, p); err != nil {
			return nil, fmt.Errorf("%s: decoding NetworkPolicy: %w", what, err)
		}
		return p, nil
	}
	switch req.Operation {
	case admissionv1.Create:
		new, err = decode(req.Object.Raw, "object")
	case admissionv1.Update:
		if old, err = decode(req.OldObject.Raw, "oldObject"); err == nil {
			new, err = decode(req.Object.Raw, "object")
		}
	case admissionv1.Delete:
		old, err = decode(req.OldObject.Raw, "oldObject")
	default:
		err = fmt.Errorf("operation %q: netpol-guard judges CREATE, UPDATE and DELETE", req.Operation)
	}
	return old, new, err
}

// cutFlow is one flow the change cuts, with what a human needs to judge it.
type cutFlow struct {
	edge *flows.Edge
	// before and after explain the flow; set for the cuts a message lists, nil for the rest.
	before, after *evaluator.Verdict
	// protection names a path the cluster itself depends on: DNS, an admission webhook,
	// node traffic. Empty for ordinary flows.
	protection string
}

type coverage struct {
	since      time.Time
	history    time.Duration
	edges      int      // candidate edges evaluated
	neverSeen  []string // selected workloads with no cached flow
	unresolved uint64
}

type decisionResult struct {
	scratch *scratch // the buffers cuts point into
	cuts    []cutFlow
	// uncertain describes flows a domainNames rule decides: warned of, never denied.
	uncertain []string
	summary   evaluator.DiffSummary
	coverage  coverage
	err       error

	change     string
	mode       Mode
	modeSource modeSource
	problems   []string
	user       string
	dryRun     bool
	bypass     string
	bypassed   bool
}

// decide judges a change of a policy of namespace ns from in-memory indexes only: the policy
// sets before and after, the cached edges the change can affect, the evaluator's diff of
// them, the cuts a message lists, explained, and the coverage the answer rests on.
func (g *Guard) decide(ns string, oldPolicy, newPolicy *networkingv1.NetworkPolicy) (d decisionResult) {
	now := g.opts.Now()
	before, after, err := g.policySets(oldPolicy, newPolicy)
	if err != nil {
		d.err = err
		return d
	}
	selects, err := selectedBy(oldPolicy, newPolicy)
	if err != nil {
		d.err = err
		return d
	}
	sc := g.getScratch()
	d.scratch = sc
	edges := g.candidates(ns, selects, sc)
	fl := g.evaluatorFlows(edges, sc)

	memo := g.memos.Get().(*evaluator.Memo)
	defer g.memos.Put(memo) // after the cuts are explained below
	res := evaluator.DiffWith(before, after, g.opts.View.World(), fl, evaluator.DiffOptions{Memo: memo})
	d.summary = res.Summary
	d.cuts = g.listCuts(&res, edges, sc)
	d.uncertain = uncertainLines(&res, edges, g.opts.MaxListed)
	d.coverage = g.coverage(ns, now, len(edges), selects, sc.seen)
	return d
}

// policySets are the cluster's policies before and after the change. The request's
// oldObject is the truth for the policy it changes, whatever the informer holds.
func (g *Guard) policySets(oldPolicy, newPolicy *networkingv1.NetworkPolicy) (before, after *evaluator.PolicySet, err error) {
	ps := g.opts.View.PolicySet()
	before = ps
	if oldPolicy != nil {
		if before, err = ps.With(ps.Get(oldPolicy.Namespace, oldPolicy.Name), oldPolicy); err != nil {
			return nil, nil, fmt.Errorf("compiling the current policy: %w", err)
		}
	}
	if after, err = before.With(oldPolicy, newPolicy); err != nil {
		return nil, nil, fmt.Errorf("compiling the new policy: %w", err)
	}
	return before, after, nil
}

// selectedBy reports whether a pod endpoint is selected by the changed policy, old
// podSelector or new: only flows into or out of those pods can change their verdict.
func selectedBy(policies ...*networkingv1.NetworkPolicy) (func(*evaluator.Endpoint) bool, error) {
	var selectors []labels.Selector
	for _, p := range policies {
		if p == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			return nil, fmt.Errorf("podSelector: %w", err)
		}
		selectors = append(selectors, sel)
	}
	return func(ep *evaluator.Endpoint) bool {
		return ep.Kind == evaluator.Pod && slices.ContainsFunc(selectors, func(s labels.Selector) bool { return s.Matches(labels.Set(ep.Labels)) })
	}, nil
}

// candidates reads the cached edges into or out of the workloads of ns the change selects,
// marking those workloads seen.
func (g *Guard) candidates(ns string, selects func(*evaluator.Endpoint) bool, sc *scratch) []flows.Edge {
	view := g.opts.View
	edges, _ := g.opts.Cache.Candidates(ns, func(id flows.PeerID, info *flows.PeerInfo) bool {
		if selects(view.Endpoint(id, info)) {
			sc.seen[id] = true
			return true
		}
		return false
	}, sc.edges[:0])
	sc.edges = edges
	return edges
}

// evaluatorFlows turns edges into the evaluator's flows, judging each peer by the live
// view. Edges of one read share peers by ref: each peer is converted once.
func (g *Guard) evaluatorFlows(edges []flows.Edge, sc *scratch) []evaluator.Flow {
	view := g.opts.View
	endpoint := func(ref uint32, id flows.PeerID, info *flows.PeerInfo) *evaluator.Endpoint {
		ep, ok := sc.endpoints[ref]
		if !ok {
			ep = view.Endpoint(id, info)
			sc.endpoints[ref] = ep
		}
		return ep
	}
	fl := slices.Grow(sc.flows[:0], len(edges))[:len(edges)]
	sc.flows = fl
	for i := range edges {
		e := &edges[i]
		fl[i] = evaluator.Flow{Src: endpoint(e.SrcRef, e.Src, e.SrcInfo), Dst: endpoint(e.DstRef, e.Dst, e.DstInfo), Port: e.Port, Protocol: e.Protocol}
	}
	return fl
}

// listCuts turns the diff's cuts into the answer's: each with the path of the cluster's
// own it cuts, if any; the ones a message lists first — self-protection, then the most
// recently seen — moved to the front and explained. The order of the rest does not matter,
// and one pass keeps the best few.
func (g *Guard) listCuts(res *evaluator.DiffResult, edges []flows.Edge, sc *scratch) []cutFlow {
	cuts := slices.Grow(sc.cuts[:0], len(res.CutIndexes))[:len(res.CutIndexes)]
	sc.cuts = cuts
	index := slices.Grow(sc.index[:0], len(res.CutIndexes))[:len(res.CutIndexes)] // position in edges and flows, by cut
	sc.index = index
	for i, j := range res.CutIndexes {
		cuts[i] = cutFlow{edge: &edges[j], protection: g.protection(&edges[j], sc.protections)}
		index[i] = j
	}
	top := min(len(cuts), g.opts.MaxListed)
	if top > 0 {
		w := worst(cuts[:top])
		for i := top; i < len(cuts); i++ {
			if listedBefore(&cuts[i], &cuts[w]) {
				cuts[i], cuts[w] = cuts[w], cuts[i]
				index[i], index[w] = index[w], index[i]
				w = worst(cuts[:top])
			}
		}
	}
	for i := range top {
		best := i
		for j := i + 1; j < top; j++ {
			if listedBefore(&cuts[j], &cuts[best]) {
				best = j
			}
		}
		cuts[i], cuts[best] = cuts[best], cuts[i]
		index[i], index[best] = index[best], index[i]
		c := res.Explain(index[i])
		cuts[i].before, cuts[i].after = &c.Before, &c.After
	}
	return cuts
}

// coverage is what the answer rests on: the cache's history, the edges considered, the
// flows it could not resolve, and the selected workloads of ns it never saw.
func (g *Guard) coverage(ns string, now time.Time, edges int, selects func(*evaluator.Endpoint) bool, seen map[flows.PeerID]bool) coverage {
	cov := g.opts.Cache.Coverage()
	c := coverage{since: cov.Since, history: cov.History(now), edges: edges, unresolved: cov.Unresolved}
	for _, id := range g.opts.View.WorkloadsIn(ns) {
		if !seen[id] && selects(g.opts.View.Endpoint(id, nil)) {
			c.neverSeen = append(c.neverSeen, id.Name)
		}
	}
	slices.Sort(c.neverSeen)
	return c
}

// worst is the position of the cut a message would list last.
func worst(cuts []cutFlow) int {
	w := 0
	for i := 1; i < len(cuts); i++ {
		if listedBefore(&cuts[w], &cuts[i]) {
			w = i
		}
	}
	return w
}

// listedBefore orders cut flows for messages: the cluster's own paths first, then the most
// recently seen, then by name so the order is stable.
func listedBefore(a, b *cutFlow) bool {
	if (a.protection == "") != (b.protection == "") {
		return a.protection != ""
	}
	if !a.edge.LastSeen.Equal(b.edge.LastSeen) {
		return a.edge.LastSeen.After(b.edge.LastSeen)
	}
	x, y := a.edge, b.edge
	if c := cmp.Or(cmp.Compare(x.Src.String(), y.Src.String()), cmp.Compare(x.Dst.String(), y.Dst.String())); c != 0 {
		return c < 0
	}
	return x.Port < y.Port || (x.Port == y.Port && x.Protocol < y.Protocol)
}

// protection says whether a cut flow is one the cluster itself depends on. memo keeps the
// answer per peer ref: node sources by SrcRef, destinations by DstRef, since thousands of
// cut flows share a few peers.
func (g *Guard) protection(e *flows.Edge, memo map[uint64]string) string {
	if e.Src.Kind == flows.PeerNode {
		key := uint64(e.SrcRef) | 1<<32
		p, ok := memo[key]
		if !ok {
			p = "traffic from node " + e.Src.Name + " (load-balancer health checks, NodePort)"
			memo[key] = p
		}
		return p
	}
	if e.Dst.Kind != flows.PeerWorkload {
		return ""
	}
	key := uint64(e.DstRef)
	if e.Port == 53 {
		key |= 1 << 33 // DNS depends on the port too
	}
	p, ok := memo[key]
	if !ok {
		switch {
		case isDNS(e):
			p = "DNS"
		default:
			if name, ok := g.opts.View.WebhookBackend(e.Dst); ok {
				p = "the API server's path to admission webhook " + name
			}
		}
		memo[key] = p
	}
	return p
}

// isDNS: cluster DNS answers on port 53 (after DNAT), from kube-system or pods labelled as
// CoreDNS/kube-dns.
func isDNS(e *flows.Edge) bool {
	if e.Port != 53 {
		return false
	}
	if e.Dst.Namespace == "kube-system" {
		return true
	}
	if e.DstInfo != nil {
		app := e.DstInfo.Labels["k8s-app"]
		return app == "kube-dns" || app == "coredns"
	}
	return false
}

// respond turns a decision into the answer for its mode, and records it.
func (g *Guard) respond(ctx context.Context, subject client.Object, d decisionResult) (admission.Response, Mode, string) {
	now := g.opts.Now()
	r := report{d: d, now: now, maxListed: g.opts.MaxListed, minHistory: g.opts.MinHistory}
	if len(d.cuts) == 0 {
		// A change that cuts nothing is admitted silently.
		resp := admission.Allowed("")
		if len(d.problems) > 0 {
			resp = resp.WithWarnings(prefixed(d.problems)...)
		}
		return resp, d.mode, outcomeAllowed
	}
	if m := g.opts.Metrics; m != nil && !d.dryRun {
		m.CutFlows.Add(float64(len(d.cuts)))
	}

	var resp admission.Response
	var outcome string
	switch {
	case d.mode == Enforce && d.bypassed:
		outcome = outcomeBypassed
		resp = admission.Allowed("").WithWarnings(r.warnings("admitted by " + BypassAnnotation + " (" + truncate(d.bypass, 40) + ")")...)
	case d.mode == Enforce && d.coverage.history < g.opts.MinHistory:
		outcome = outcomeDegraded
		resp = admission.Allowed("").WithWarnings(r.warnings(fmt.Sprintf("enforce degraded to warn: %s of history < %s", human.Duration(d.coverage.history), human.Duration(g.opts.MinHistory)))...)
	case d.mode == Enforce:
		outcome = outcomeRejected
		resp = admission.Denied(r.message())
		if len(d.problems) > 0 {
			resp = resp.WithWarnings(prefixed(d.problems)...)
		}
	case d.mode == Warn:
		outcome = outcomeWarned
		resp = admission.Allowed("").WithWarnings(r.warnings("")...)
	default: // audit
		outcome = outcomeAudited
		resp = admission.Allowed("")
	}
	resp.AuditAnnotations = r.auditAnnotations(outcome)
	g.record(ctx, subject, d, outcome, r)
	return resp, d.mode, outcome
}

// record writes the Event and the log line. Dry runs record nothing: the webhook declares
// sideEffects NoneOnDryRun.
func (g *Guard) record(ctx context.Context, subject client.Object, d decisionResult, outcome string, r report) {
	kv := []any{"policy", klog.KObj(subject), "change", d.change, "mode", d.mode, "outcome", outcome,
		"cutFlows", len(d.cuts), "candidates", d.summary.Candidates, "user", d.user, "dryRun", d.dryRun}
	if d.bypassed {
		kv = append(kv, "bypassReason", d.bypass)
	}
	logger(ctx).V(levelInfo).Info("NetworkPolicy change would cut flows", kv...)
	if d.dryRun || g.opts.Recorder == nil {
		return
	}
	reason, eventType := "WouldCutFlows", "Warning"
	switch outcome {
	case outcomeRejected:
		reason = "CutRejected"
	case outcomeBypassed:
		reason = "CutBypassed"
	case outcomeAudited:
		reason = "CutAudited"
	}
	note := r.eventNote(outcome)
	g.opts.Recorder.Eventf(subject, nil, eventType, reason, "Admission", "%s", note)
}
