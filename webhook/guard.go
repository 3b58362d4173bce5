package webhook

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/human"
	"github.com/netpol-guard/netpol-guard/suggest"
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
	// AllowModeRelaxation lets a namespace label or policy annotation set a laxer mode than
	// the level above it. Without it they may only make the mode stricter.
	AllowModeRelaxation bool
	// Bypass decides who may use the bypass annotation; nil: nobody.
	Bypass BypassAuthorizer
	// MaxInFlight caps concurrent evaluations; past it a change is admitted unchecked with a
	// warning. Default 8; negative: no cap.
	MaxInFlight int
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
	// inflight holds a token per running evaluation; nil: no cap.
	inflight chan struct{}
	// running counts the evaluations running — admissions, capped or not, and Decide's (a
	// staged policy's) — for workers.
	running atomic.Int32
}

// scratch holds an admission's buffers; the cuts of a decision point into its edges, so it
// goes back to the pool only once the answer is built.
type scratch struct {
	edges       []flows.Edge
	flows       []evaluator.Flow
	cuts        []cutFlow
	index       []int
	endpoints   []*refEndpoints // one per worker of evaluatorFlows
	protections map[uint64]string
	seen        map[flows.PeerID]bool
}

func (g *Guard) getScratch() *scratch {
	if sc, ok := g.scratches.Get().(*scratch); ok {
		for _, r := range sc.endpoints {
			r.reset()
		}
		clear(sc.protections)
		clear(sc.seen)
		return sc
	}
	return &scratch{protections: map[uint64]string{}, seen: map[flows.PeerID]bool{}}
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
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = 8
	}
	g := &Guard{opts: opts}
	if opts.MaxInFlight > 0 {
		g.inflight = make(chan struct{}, opts.MaxInFlight)
	}
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
	outcomeBusy     = "busy"     // admitted unchecked: too many evaluations in flight
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
	if subject.Namespace == "" {
		subject.Namespace = req.Namespace
	}
	dryRun := req.DryRun != nil && *req.DryRun
	rm := resolveMode(subject.Annotations, g.opts.View.NamespaceLabels(subject.Namespace), g.opts.Mode, g.opts.AllowModeRelaxation)
	resp, outcome := g.judge(ctx, req, subject, oldPolicy, newPolicy, rm, dryRun)
	g.recordRelaxations(subject, rm, req.UserInfo.Username, dryRun, &resp)
	return resp, rm.mode, outcome
}

// judge evaluates the change in its mode and answers.
func (g *Guard) judge(ctx context.Context, req admission.Request, subject, oldPolicy, newPolicy *networkingv1.NetworkPolicy, rm resolvedMode, dryRun bool) (admission.Response, string) {
	problems := append(rm.problems, rm.ignored()...)
	admitted := func(warning string) admission.Response {
		return admission.Allowed("").WithWarnings(append(prefixed(problems), warning)...)
	}
	if rm.mode == Off {
		resp := admission.Allowed("netpol-guard mode is off (" + string(rm.source) + ")")
		if rm.source != fromGlobal {
			resp = admitted("netpol-guard: mode off (" + string(rm.source) + "): not evaluated")
		}
		return resp, outcomeSkipped
	}

	d, unchecked, outcome := g.decideInTime(ctx, change(req.Operation, subject), func() decisionResult { return g.decide(subject.Namespace, oldPolicy, newPolicy) })
	if unchecked != "" {
		logger(ctx).Info("Admitting unchecked", "policy", klog.KObj(subject), "why", unchecked)
		return admitted(unchecked), outcome
	}
	if d.err != nil {
		// Fail open: a guardrail outage must never block an incident fix.
		logger(ctx).Error(d.err, "Evaluation failed, admitting unchecked", "policy", klog.KObj(subject))
		return admitted("netpol-guard: could not evaluate this change (" + truncate(d.err.Error(), 70) + "); admitted unchecked"), outcomeError
	}
	d.change = change(req.Operation, subject)
	d.namespace = subject.Namespace
	d.mode, d.modeSource = rm.mode, rm.source
	d.problems = problems
	d.user = req.UserInfo.Username
	d.userInfo = req.UserInfo
	d.dryRun = dryRun
	d.bypass, d.bypassed = subject.Annotations[BypassAnnotation]
	defer g.putScratch(d.scratch)
	resp, _, outcome := g.respond(ctx, subject, d)
	return withUncertain(resp, d), outcome
}

// recordRelaxations reports overrides that asked for a laxer mode: a log line and, dry runs
// excepted, a metric; an audit annotation; and for one that took effect an Event, so that
// no relaxation of the guardrail is silent.
func (g *Guard) recordRelaxations(subject client.Object, rm resolvedMode, user string, dryRun bool, resp *admission.Response) {
	if len(rm.relaxations) == 0 {
		return
	}
	var notes []string
	for _, rel := range rm.relaxations {
		result := "ignored"
		if rel.applied {
			result = "applied"
		}
		notes = append(notes, rel.String())
		log.Info("Mode relaxation "+result, "policy", klog.KObj(subject), "source", rel.source, "from", rel.from, "to", rel.to, "user", user, "dryRun", dryRun)
		if m := g.opts.Metrics; m != nil && !dryRun {
			m.Relaxations.WithLabelValues(string(rel.source), result).Inc()
		}
	}
	if resp.AuditAnnotations == nil {
		resp.AuditAnnotations = map[string]string{}
	}
	resp.AuditAnnotations["mode-relaxation"] = truncate(strings.Join(notes, "; "), 1000)
	if rm.relaxed() && !dryRun && g.opts.Recorder != nil {
		g.opts.Recorder.Eventf(subject, nil, "Warning", "ModeRelaxed", "Admission", "%s",
			truncate(fmt.Sprintf("%s by %s, allowed by --allow-mode-relaxation: mode %s from the %s.", strings.Join(notes, "; "), user, rm.mode, rm.source), 1000))
	}
}

// decideInTime runs decide within the request's budget (a little less than the API server's
// deadline, else Options.Budget), at most MaxInFlight evaluations at a time, a panic in it
// failing this evaluation only. unchecked, when not empty, is the warning of a change that
// goes unchecked — too busy, over budget, the request gone — and outcome what to count.
func (g *Guard) decideInTime(ctx context.Context, change string, decide func() decisionResult) (d decisionResult, unchecked, outcome string) {
	budget := g.opts.Budget
	if deadline, ok := ctx.Deadline(); ok {
		// Leave room to answer: an admission that times out is worse than one admitted
		// unchecked with a warning.
		budget = time.Until(deadline) * 8 / 10
	}
	// The cap counts evaluations, not requests: one abandoned at its budget keeps its
	// token until it ends.
	if g.inflight != nil {
		select {
		case g.inflight <- struct{}{}:
		default:
			return d, fmt.Sprintf("netpol-guard: too busy (%d evaluations in flight); %s admitted unchecked", cap(g.inflight), change), outcomeBusy
		}
	}
	done := make(chan decisionResult, 1)
	go func() {
		if g.inflight != nil {
			defer func() { <-g.inflight }()
		}
		g.running.Add(1)
		defer g.running.Add(-1)
		defer func() {
			// A bug in an evaluation must cost this admission its check, not the process.
			if r := recover(); r != nil {
				log.Error(fmt.Errorf("%v", r), "Evaluation panicked", "change", change, "stack", string(debug.Stack()))
				done <- decisionResult{err: fmt.Errorf("evaluation failed: %v", r)}
			}
		}()
		done <- decide()
	}()
	timer := time.NewTimer(budget)
	defer timer.Stop()
	select {
	case d = <-done:
		return d, "", ""
	case <-timer.C:
		return d, fmt.Sprintf("netpol-guard: evaluation did not finish within %s; %s admitted unchecked", budget.Round(time.Millisecond), change), outcomeTimeout
	case <-ctx.Done():
		return d, "netpol-guard: the request ended before the evaluation; " + change + " admitted unchecked", outcomeTimeout
	}
}

// workers is how many goroutines an evaluation may split its reading and judging into: the
// cores, while it is the only one running; one while others run, which keep the cores busy
// already (splitting then only adds work).
func (g *Guard) workers() int {
	if g.running.Load() > 1 {
		return 1
	}
	return runtime.GOMAXPROCS(0)
}

// decodePolicies returns the policy before (UPDATE, DELETE) and after (CREATE, UPDATE).
func decodePolicies(req admission.Request) (old, new *networkingv1.NetworkPolicy, err error) {
	return decodeObjects(req, func(raw []byte) (*networkingv1.NetworkPolicy, error) {
		p := &networkingv1.NetworkPolicy{}
		if err := json.Unmarshal(raw, p); err != nil {
			return nil, fmt.Errorf("decoding NetworkPolicy: %w", err)
		}
		return p, nil
	})
}

// decodeObjects returns, each decoded by decode, the request's object before the change
// (its oldObject: UPDATE, DELETE) and after (its object: CREATE, UPDATE).
func decodeObjects[T any](req admission.Request, decode func(raw []byte) (T, error)) (old, new T, err error) {
	dec := func(raw []byte, what string) (T, error) {
		if len(raw) == 0 {
			var none T
			return none, fmt.Errorf("%s: missing in a %s request", what, req.Operation)
		}
		v, err := decode(raw)
		if err != nil {
			return v, fmt.Errorf("%s: %w", what, err)
		}
		return v, nil
	}
	switch req.Operation {
	case admissionv1.Create:
		new, err = dec(req.Object.Raw, "object")
	case admissionv1.Update:
		if old, err = dec(req.OldObject.Raw, "oldObject"); err == nil {
			new, err = dec(req.Object.Raw, "object")
		}
	case admissionv1.Delete:
		old, err = dec(req.OldObject.Raw, "oldObject")
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
	fix       *suggest.Fix // what keeps the cut flows; nil when nothing is cut

	change    string
	namespace string
	// kind is what changed, for messages: "" for a NetworkPolicy, else the relabelled
	// object's kind ("Namespace", "Deployment" …).
	kind       string
	mode       Mode
	modeSource modeSource
	problems   []string
	user       string
	userInfo   authenticationv1.UserInfo
	dryRun     bool
	bypass     string
	bypassed   bool
	// bypassDenied: the bypass annotation is present but the user lacks the bypass right.
	bypassDenied bool
	// bypassUnverified is why the bypass right could not be checked (admitted: fail open).
	bypassUnverified error
}

// decide judges a change of a policy of namespace ns from in-memory indexes only: the policy
// sets before and after, the cached edges the change can affect, the evaluator's diff of
// them, the cuts a message lists, explained, and the coverage the answer rests on.
func (g *Guard) decide(ns string, oldPolicy, newPolicy *networkingv1.NetworkPolicy) (d decisionResult) {
	c, err := g.NewChange(ns, oldPolicy, newPolicy)
	if err != nil {
		d.err = err
		return d
	}
	return g.decideChange(c)
}

// decideChange is decide for a change already compiled.
func (g *Guard) decideChange(c *Change) (d decisionResult) {
	now := g.opts.Now()
	sc := g.getScratch()
	d.scratch = sc
	edges := g.candidates(c.Namespace, c.selects, sc)
	fl := g.evaluatorFlows(edges, sc)

	memo := g.memos.Get().(*evaluator.Memo)
	defer g.memos.Put(memo) // after the cuts are explained below
	res := evaluator.DiffWith(c.Before, c.After, g.opts.View.World(), fl, evaluator.DiffOptions{Memo: memo, Workers: g.workers()})
	d.summary = res.Summary
	d.cuts = g.listCuts(res.CutIndexes, res.Explain, edges, sc)
	d.coverage = g.coverage(c.Namespace, now, len(edges), c.selects, sc.seen)
	d.fix = g.suggestFix(c.Namespace, c.Before, c.After, c.Old, c.New, fl, &res)
	d.uncertain = uncertainLines(&res, edges, g.opts.MaxListed)
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
		sel, err := evaluator.Selector(&p.Spec.PodSelector)
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
	}, sc.edges[:0], g.workers())
	sc.edges = edges
	return edges
}

// evaluatorFlows turns edges into the evaluator's flows, judging each peer by the live
// view. Edges of one read share peers by ref: each peer is converted once (by each worker:
// a large read is split between them, as the diff that follows is).
func (g *Guard) evaluatorFlows(edges []flows.Edge, sc *scratch) []evaluator.Flow {
	fl := slices.Grow(sc.flows[:0], len(edges))[:len(edges)]
	sc.flows = fl
	workers := max(1, min(g.workers(), len(edges)/minEdgesPerWorker))
	for len(sc.endpoints) < workers {
		sc.endpoints = append(sc.endpoints, &refEndpoints{gen: 1})
	}
	chunk := (len(edges) + workers - 1) / workers
	var wg sync.WaitGroup
	for k := workers - 1; k >= 0; k-- {
		lo, hi := k*chunk, min(len(edges), (k+1)*chunk)
		convert := func() { g.convert(edges[lo:hi], fl[lo:hi], sc.endpoints[k]) }
		if k == 0 {
			convert()
		} else {
			wg.Go(convert)
		}
	}
	wg.Wait()
	return fl
}

// minEdgesPerWorker is the least share of evaluatorFlows worth another goroutine.
const minEdgesPerWorker = 2048

// convert fills fl with the flows of edges, remembering in seen the endpoint of each ref.
func (g *Guard) convert(edges []flows.Edge, fl []evaluator.Flow, seen *refEndpoints) {
	view := g.opts.View
	endpoint := func(ref uint32, id flows.PeerID, info *flows.PeerInfo) *evaluator.Endpoint {
		ep := seen.get(ref)
		if ep == nil {
			ep = view.Endpoint(id, info)
			seen.put(ref, ep)
		}
		return ep
	}
	for i := range edges {
		e := &edges[i]
		fl[i] = evaluator.Flow{Src: endpoint(e.SrcRef, e.Src, e.SrcInfo), Dst: endpoint(e.DstRef, e.Dst, e.DstInfo), Port: e.Port, Protocol: e.Protocol}
	}
}

// refEndpoints remembers, for one read of the cache, the endpoint each peer ref stands for:
// by ref in a slice (two lookups a flow, ten thousand flows an admission: a map's hashing
// was a tenth of the admission), stamped with the read it belongs to so a new read need
// not clear it; refs past maxDenseRef, of a cache of that many peers, in a map.
type refEndpoints struct {
	gen   uint32
	slots []refSlot
	more  map[uint32]*evaluator.Endpoint
}

type refSlot struct {
	gen uint32
	ep  *evaluator.Endpoint
}

// maxDenseRef bounds the slice: 16 bytes a ref, 4 MiB at most.
const maxDenseRef = 1 << 18

// reset forgets what the last read remembered.
func (r *refEndpoints) reset() {
	clear(r.more)
	if r.gen++; r.gen == 0 { // wrapped: stamps of old reads could match again
		clear(r.slots)
		r.gen = 1
	}
}

func (r *refEndpoints) get(ref uint32) *evaluator.Endpoint {
	if ref < uint32(len(r.slots)) {
		if s := r.slots[ref]; s.gen == r.gen {
			return s.ep
		}
		return nil
	}
	return r.more[ref]
}

func (r *refEndpoints) put(ref uint32, ep *evaluator.Endpoint) {
	switch {
	case ref < uint32(len(r.slots)):
	case ref < maxDenseRef:
		r.slots = slices.Grow(r.slots, int(ref)+1-len(r.slots))[:ref+1]
	default:
		if r.more == nil {
			r.more = map[uint32]*evaluator.Endpoint{}
		}
		r.more[ref] = ep
		return
	}
	r.slots[ref] = refSlot{gen: r.gen, ep: ep}
}

// listCuts turns the diff's cuts (positions in edges; explain explains one) into the answer's: each with the path of the cluster's
// own it cuts, if any; the ones a message lists first — self-protection, then the most
// recently seen — moved to the front and explained. The order of the rest does not matter,
// and one pass keeps the best few.
func (g *Guard) listCuts(cutIndexes []int, explain func(int) evaluator.Cut, edges []flows.Edge, sc *scratch) []cutFlow {
	cuts := slices.Grow(sc.cuts[:0], len(cutIndexes))[:len(cutIndexes)]
	sc.cuts = cuts
	index := slices.Grow(sc.index[:0], len(cutIndexes))[:len(cutIndexes)] // position in edges and flows, by cut
	sc.index = index
	for i, j := range cutIndexes {
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
		c := explain(index[i])
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
	case d.mode == Enforce && d.coverage.history < g.opts.MinHistory:
		outcome = outcomeDegraded
		resp = admission.Allowed("").WithWarnings(r.warnings(fmt.Sprintf("enforce degraded to warn: %s of history < %s", human.Duration(d.coverage.history), human.Duration(g.opts.MinHistory)))...)
	case d.mode == Enforce && d.bypassed && g.mayBypass(ctx, d.namespace, &d):
		outcome = outcomeBypassed
		head := "admitted by " + BypassAnnotation + " (" + truncate(d.bypass, 40) + ")"
		if d.bypassUnverified != nil {
			head += ", bypass right unchecked"
		}
		r.d = d
		resp = admission.Allowed("").WithWarnings(r.warnings(head)...)
	case d.mode == Enforce:
		outcome = outcomeRejected
		r.d = d
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

// mayBypass asks whether the user holds the bypass right in namespace, with the one call
// to the API server an admission may make, and notes the answer in d. It is asked only for
// a cut enforce would reject. If the right cannot be checked the bypass is honoured (fail
// open, as for any outage of the guardrail) and recorded as unverified.
func (g *Guard) mayBypass(ctx context.Context, namespace string, d *decisionResult) bool {
	result := "allowed"
	defer func() {
		if m := g.opts.Metrics; m != nil && !d.dryRun {
			m.Bypasses.WithLabelValues(result).Inc()
		}
	}()
	if g.opts.Bypass == nil {
		result, d.bypassDenied = "denied", true
		return false
	}
	// The request context reports the API server's deadline without arming it.
	timeout := g.opts.Budget
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline) * 9 / 10
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ok, err := g.opts.Bypass.MayBypass(ctx, d.userInfo, namespace)
	switch {
	case err != nil:
		log.Error(err, "Cannot check the bypass right, honouring the bypass", "namespace", namespace, "user", d.user)
		result, d.bypassUnverified = "unverified", err
		return true
	case !ok:
		result, d.bypassDenied = "denied", true
		return false
	}
	return true
}

// record writes the Event and the log line. Dry runs record nothing: the webhook declares
// sideEffects NoneOnDryRun.
func (g *Guard) record(ctx context.Context, subject client.Object, d decisionResult, outcome string, r report) {
	key, msg := "policy", "NetworkPolicy change would cut flows"
	if d.kind != "" {
		key, msg = "object", "Relabel would cut flows"
	}
	kv := []any{key, klog.KObj(subject), "change", d.change, "mode", d.mode, "outcome", outcome,
		"cutFlows", len(d.cuts), "candidates", d.summary.Candidates, "user", d.user, "dryRun", d.dryRun}
	if d.bypassed {
		kv = append(kv, "bypassReason", d.bypass, "bypassDenied", d.bypassDenied)
		if d.bypassUnverified != nil {
			kv = append(kv, "bypassUnverified", d.bypassUnverified.Error())
		}
	}
	logger(ctx).V(levelInfo).Info(msg, kv...)
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
