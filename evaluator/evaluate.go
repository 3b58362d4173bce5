package evaluator

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// namespaceNameLabel is set by the API server on every namespace, so policies can select a
// namespace by name even where an input file omits it.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// Evaluation answers verdicts for flows under one PolicySet and World. It memoises, per
// endpoint (by pointer), which policies select it and which rules' peers it matches, so a
// batch of flows among few identities costs a few word operations a flow.
//
// An Evaluation is not safe for concurrent use; make one per goroutine. It is cheap.
type Evaluation struct {
	ps *PolicySet
	w  *World
	m  *memo
}

// memo is shared by the evaluations of a Diff: namespaces that a change does not touch are
// the same *nsPolicies in both sets, so what was learnt about them serves both.
type memo struct {
	endpoints *endpointMap
	nsLabels  map[string]labels.Set
	// world is what the memo's answers rest on (namespace labels, node addresses); a memo
	// kept across diffs (Memo) starts over when it changes.
	world *World
	// gen counts the diffs a kept memo served; endpoint states of an older generation drop
	// what was specific to it. sets are the policy sets of the current one: what was learnt
	// about the namespaces of other sets is dropped.
	gen  uint32
	sets []*PolicySet
	// free and freeCl hold namespace and cluster memos of sets no longer current, for
	// reuse: a webhook's every change makes a new set, and its memos would otherwise be
	// garbage by the thousand.
	free   []*nsMemo
	freeCl []*clusterMemo
	// lastNsp and lastCurrent are current's last two answers.
	lastNsp     [2]*nsPolicies
	lastCurrent [2]bool
	// scratchIdx is reused by nsPolicies.mayApply.
	scratchIdx []int
	// The two endpoints looked up last: flows from the cache come grouped by workload, so
	// consecutive flows mostly share an end.
	lastEp [2]*Endpoint
	lastSt [2]*endpointState
	// slab backs the memo's bit sets, a few thousand at a time rather than one allocation each.
	slab []uint64
	// cut and merged are a kept memo's buffers for a diff's cut positions: its worker's
	// part, and the parts merged. A webhook's change that cuts 10 k flows would otherwise
	// make garbage of them at every admission.
	cut, merged []int
}

// refresh brings an endpoint's state learnt in an earlier diff up to this one: what was
// specific to that diff goes, and so does what was learnt about namespaces whose policies
// are in neither of this diff's sets. What goes is kept for reuse.
func (m *memo) refresh(st *endpointState) {
	st.gen = m.gen
	st.candidate = -1
	kept := st.perNS[:0]
	for _, nm := range st.perNS {
		if m.current(nm.nsp) {
			kept = append(kept, nm)
			continue
		}
		// A memo own still answers from (for a set that is the origin of later ones) stays
		// alive; the others are reused.
		inUse := slices.ContainsFunc(st.own, func(o ownMemo) bool { return o.m == nm })
		if !inUse && len(m.free) < maxFreeMemos {
			m.free = append(m.free, nm)
		}
	}
	clear(st.perNS[len(kept):])
	st.perNS = kept
	st.clSet, st.clLast = nil, nil
	if len(st.cl) > 0 {
		keptCl := st.cl[:0]
		for _, cm := range st.cl {
			if m.currentCluster(cm.cs) {
				keptCl = append(keptCl, cm)
			} else if len(m.freeCl) < maxFreeMemos {
				m.freeCl = append(m.freeCl, cm)
			}
		}
		clear(st.cl[len(keptCl):])
		st.cl = keptCl
	}
}

// current reports whether nsp holds a namespace's policies in one of this diff's sets.
// Endpoints share the few namespaces' policies a diff is about, so the last two answers are
// kept.
func (m *memo) current(nsp *nsPolicies) bool {
	if nsp == m.lastNsp[0] {
		return m.lastCurrent[0]
	}
	if nsp == m.lastNsp[1] {
		return m.lastCurrent[1]
	}
	ok := false
	for _, ps := range m.sets {
		if ps.byNS[nsp.namespace] == nsp {
			ok = true
			break
		}
	}
	m.lastNsp[1], m.lastCurrent[1] = m.lastNsp[0], m.lastCurrent[0]
	m.lastNsp[0], m.lastCurrent[0] = nsp, ok
	return ok
}

// currentCluster reports whether cs holds the cluster policies of one of this diff's sets.
func (m *memo) currentCluster(cs *clusterSet) bool {
	return slices.ContainsFunc(m.sets, func(ps *PolicySet) bool { return ps.cluster == cs })
}

// Memo keeps what evaluations learnt about endpoints — which policies select them, which
// rules' peers match them — from one Diff to the next, so a webhook judging change after
// change over the same workloads does not learn it all again. Pass it in DiffOptions. It
// starts over when the World changes or it has grown past a bound. Not safe for concurrent
// use: keep one per goroutine (a sync.Pool). A diff split between workers keeps one memo a
// worker: the same flows, split the same way, meet what they taught it last time.
type Memo struct {
	m       *memo
	workers []*Memo // for workers 1, 2 …
}

// worker returns the memo of worker k of a split diff (k ≥ 1); nil for a nil Memo.
func (k *Memo) worker(i int) *Memo {
	if k == nil {
		return nil
	}
	for len(k.workers) < i {
		k.workers = append(k.workers, &Memo{})
	}
	return k.workers[i-1]
}

// NewMemo returns an empty Memo.
func NewMemo() *Memo { return &Memo{} }

// maxFreeMemos bounds the recycled namespace memos a Memo holds.
const maxFreeMemos = 1 << 16

// maxMemoEndpoints bounds a kept Memo; past it, it starts over.
const maxMemoEndpoints = 1 << 18

// begin readies the memo for a diff of these sets in world w. A nil Memo keeps nothing: it
// gives a new memo each time.
func (k *Memo) begin(w *World, sets ...*PolicySet) *memo {
	if k == nil {
		return newMemo()
	}
	if k.m == nil || k.m.world != w || k.m.endpoints.n > maxMemoEndpoints {
		k.m = newMemo()
		k.m.world = w
	}
	m := k.m
	m.gen++
	m.sets = sets
	m.lastEp, m.lastSt = [2]*Endpoint{}, [2]*endpointState{}
	m.lastNsp = [2]*nsPolicies{}
	return m
}

// reuse returns a cleared bit set for n elements in b's memory if it is large enough.
func (m *memo) reuse(b bitset, n int) bitset {
	if w := (n + 63) / 64; cap(b) >= w {
		b = b[:w]
		clear(b)
		return b
	}
	return m.bits(n)
}

func (m *memo) bits(n int) bitset {
	w := (n + 63) / 64
	if len(m.slab) < w {
		m.slab = make([]uint64, max(2048, w))
	}
	b := m.slab[:w:w]
	m.slab = m.slab[w:]
	return b
}

type endpointState struct {
	gen   uint32
	perNS []*nsMemo // usually one or two: the endpoint's own namespace and its peers'
	// candidate is set by Diff: -1 unknown, 0 no, 1 yes.
	candidate int8
	// nodes are the nodes this endpoint is (by name or address), once nodeKnown.
	nodeKnown bool
	nodes     []string
	// cl holds what the cluster policies of the sets in use say about the endpoint; clLast,
	// found without a search, is the one of clSet, the set asked about last.
	cl     []*clusterMemo
	clSet  *clusterSet
	clLast *clusterMemo
	// own caches, per policy set, the memo of the endpoint's own namespace (nil memo: no
	// policies there), saving a lookup by namespace name per flow.
	own []ownMemo
}

type ownMemo struct {
	ps *PolicySet
	m  *nsMemo
}

// own returns what the policies of a pod's own namespace say about it, with the policies
// that select it filled in; nil when the namespace has no policies.
//
// Sets derived by With share the answer of their base for every namespace they did not
// touch, so the answer is kept per origin set: a kept Memo answers change after change over
// the same cluster without looking the namespace up again.
func (e *Evaluation) own(ep *Endpoint, st *endpointState) *nsMemo {
	for _, o := range st.own {
		if o.ps == e.ps {
			return o.m
		}
	}
	origin := e.ps.origin(ep.Namespace)
	var m *nsMemo
	found := false
	for _, o := range st.own {
		if o.ps == origin {
			m, found = o.m, true
			break
		}
	}
	if !found {
		if nsp := origin.byNS[ep.Namespace]; nsp != nil {
			m = e.of(nsp, st).target(ep, e.m)
		}
		st.remember(origin, m)
	}
	if origin != e.ps {
		st.remember(e.ps, m) // the next flow of this set finds it at once
	}
	return m
}

// remember keeps the own-namespace answer for a set, dropping the oldest past maxOwn: sets
// of past changes, and live sets since replaced.
func (st *endpointState) remember(ps *PolicySet, m *nsMemo) {
	if len(st.own) >= maxOwn {
		copy(st.own, st.own[1:])
		st.own = st.own[:len(st.own)-1]
	}
	st.own = append(st.own, ownMemo{ps: ps, m: m})
}

// maxOwn bounds the sets an endpoint state remembers its own namespace's answer for.
const maxOwn = 6

// nsMemo is what one namespace's policies say about one endpoint, learnt as needed.
type nsMemo struct {
	nsp *nsPolicies
	// As the pod a policy selects (only for pods of this namespace): what the policies that
	// select it say of each side of its flows.
	targetKnown     bool
	ingress, egress isolation
	// As the peer of a rule: whether the rule's "from" (ingress) or "to" (egress) matches
	// this endpoint, for the rules asked about so far.
	ingressKnown, ingressMatch bitset
	egressKnown, egressMatch   bitset
	// peerKnown and peerMatch do the same for the namespace's distinct peers.
	peerKnown, peerMatch bitset
}

func newMemo() *memo {
	return &memo{endpoints: newEndpointMap(), nsLabels: map[string]labels.Set{}}
}

// NewEvaluation starts evaluating flows under ps, in the cluster w.
func NewEvaluation(ps *PolicySet, w *World) *Evaluation {
	return &Evaluation{ps: ps, w: w, m: newMemo()}
}

func (e *Evaluation) state(ep *Endpoint) *endpointState {
	m := e.m
	if ep == m.lastEp[0] {
		return m.lastSt[0]
	}
	if ep == m.lastEp[1] {
		return m.lastSt[1]
	}
	st := m.endpoints.get(ep)
	if st == nil {
		st = &endpointState{candidate: -1, gen: m.gen}
		m.endpoints.put(ep, st)
	} else if st.gen != m.gen {
		m.refresh(st)
	}
	m.lastEp[1], m.lastSt[1] = m.lastEp[0], m.lastSt[0]
	m.lastEp[0], m.lastSt[0] = ep, st
	return st
}

// of returns what nsp says about the endpoint of st.
func (e *Evaluation) of(nsp *nsPolicies, st *endpointState) *nsMemo {
	for _, m := range st.perNS {
		if m.nsp == nsp {
			return m
		}
	}
	var m *nsMemo
	if n := len(e.m.free); n > 0 {
		m = e.m.free[n-1]
		e.m.free = e.m.free[:n-1]
		m.reset(nsp)
	} else {
		m = &nsMemo{nsp: nsp}
	}
	st.perNS = append(st.perNS, m)
	return m
}

// isolation is what the NetworkPolicies that select a pod say of one side (ingress or
// egress) of its flows.
type isolation struct {
	isolated bool        // a policy isolates it
	rules    bitset      // the rules of the policies that isolate it
	by       []PolicyRef // the isolating policies, by name
}

// add records that policy ref isolates the side, with rules, of the n rules of its
// namespace and direction.
func (s *isolation) add(ref PolicyRef, rules bitset, n int, mem *memo) {
	if len(s.rules) == 0 {
		s.rules = mem.reuse(s.rules, n)
	}
	s.isolated = true
	s.rules.or(rules)
	s.by = append(s.by, ref)
}

// isolation is what the policies that select the pod say of its side dir.
func (m *nsMemo) isolation(dir Direction) *isolation {
	if dir == Egress {
		return &m.egress
	}
	return &m.ingress
}

// reset readies a recycled nsMemo for nsp, keeping its bit sets' memory. The isolating
// policy lists are not reused: verdicts handed out share them.
func (m *nsMemo) reset(nsp *nsPolicies) {
	*m = nsMemo{
		nsp:          nsp,
		ingress:      isolation{rules: m.ingress.rules[:0]},
		egress:       isolation{rules: m.egress.rules[:0]},
		ingressKnown: m.ingressKnown[:0], ingressMatch: m.ingressMatch[:0],
		egressKnown: m.egressKnown[:0], egressMatch: m.egressMatch[:0],
		peerKnown: m.peerKnown[:0], peerMatch: m.peerMatch[:0],
	}
}

// target fills in which of the namespace's policies select the pod ep.
func (m *nsMemo) target(ep *Endpoint, mem *memo) *nsMemo {
	if m.targetKnown {
		return m
	}
	m.targetKnown = true
	nsp := m.nsp
	if ep.Kind != Pod || ep.Namespace != nsp.namespace {
		return m
	}
	podLabels := labels.Set(ep.Labels)
	for _, i := range nsp.mayApply(ep.Labels, &mem.scratchIdx) {
		cp := nsp.policies[i]
		if (!cp.ingress && !cp.egress) || !cp.selector.Matches(podLabels) {
			continue
		}
		if cp.ingress {
			m.ingress.add(cp.ref, cp.ingressRules, len(nsp.ingress), mem)
		}
		if cp.egress {
			m.egress.add(cp.ref, cp.egressRules, len(nsp.egress), mem)
		}
	}
	return m
}

// ruleIndex returns the first rule among selected (the rules of the policies that isolate
// the pod) that matches the peer endpoint and the port, or -1. Whether a rule's peers match
// an endpoint is learnt once per rule and endpoint and then costs a bit test, so it is asked
// before the port.
func (e *Evaluation) ruleIndex(dir Direction, selected bitset, peerMemo *nsMemo, peer *Endpoint, port int32, proto corev1.Protocol, dst *Endpoint) int {
	nsp := peerMemo.nsp
	rules, known, match := nsp.ingress, &peerMemo.ingressKnown, &peerMemo.ingressMatch
	if dir == Egress {
		rules, known, match = nsp.egress, &peerMemo.egressKnown, &peerMemo.egressMatch
	}
	if len(*known) == 0 {
		*known, *match = e.m.reuse(*known, len(rules)), e.m.reuse(*match, len(rules))
	}
	k, m := *known, *match
	for w := range selected {
		// Rules already known not to match the peer drop out a word at a time.
		x := selected[w] &^ (k[w] &^ m[w])
		for x != 0 {
			i := w*64 + trailingZeros(x)
			x &= x - 1
			r := rules[i]
			if !k.has(i) {
				k.set(i)
				if r.anyPeer || e.anyPeerMatches(peerMemo, r.peerIDs, peer) {
					m.set(i)
				}
			}
			if m.has(i) && r.portMatches(port, proto, dst) {
				return i
			}
		}
	}
	return -1
}

// anyPeerMatches reports whether one of the namespace's peers ids matches ep, learning each
// once per endpoint.
func (e *Evaluation) anyPeerMatches(pm *nsMemo, ids []int, ep *Endpoint) bool {
	nsp := pm.nsp
	if len(pm.peerKnown) == 0 {
		pm.peerKnown, pm.peerMatch = e.m.reuse(pm.peerKnown, len(nsp.peers)), e.m.reuse(pm.peerMatch, len(nsp.peers))
	}
	for _, id := range ids {
		if !pm.peerKnown.has(id) {
			pm.peerKnown.set(id)
			if e.peerMatches(nsp, nsp.peers[id], ep) {
				pm.peerMatch.set(id)
			}
		}
		if pm.peerMatch.has(id) {
			return true
		}
	}
	return false
}

// peerMatches reports whether one entry of a rule's from/to matches ep. ipBlock matches any
// endpoint whose address is known, pods included; selectors match pods only.
func (e *Evaluation) peerMatches(nsp *nsPolicies, p compiledPeer, ep *Endpoint) bool {
	if p.ipBlock != nil {
		return p.ipBlock.matches(ep)
	}
	if ep.Kind != Pod {
		return false
	}
	if p.namespaces == nil {
		// podSelector alone: pods of the policy's own namespace.
		if ep.Namespace != nsp.namespace {
			return false
		}
	} else if !p.namespaces.Matches(e.namespaceLabels(ep.Namespace)) {
		return false
	}
	return p.pods == nil || p.pods.Matches(labels.Set(ep.Labels))
}

func (e *Evaluation) namespaceLabels(ns string) labels.Set {
	if s, ok := e.m.nsLabels[ns]; ok {
		return s
	}
	var given map[string]string
	if e.w != nil {
		given = e.w.NamespaceLabels[ns]
	}
	s := make(labels.Set, len(given)+1)
	for k, v := range given {
		s[k] = v
	}
	s[namespaceNameLabel] = ns
	e.m.nsLabels[ns] = s
	return s
}

// fromOwnNode reports whether src is the node dst runs on. "Traffic to and from the node
// where a Pod is running is always allowed, regardless of the IP address of the Pod or the
// node" — pods cannot block their own kubelet's probes.
//
// A workload accepts the traffic of every node one of its pods runs on: an edge from a node
// to a workload stands for that node's kubelet probing its pods there.
func (e *Evaluation) fromOwnNode(src *Endpoint, st *endpointState, dst *Endpoint) bool {
	if dst.NodeName == "" && len(dst.Nodes) == 0 {
		return false
	}
	if !st.nodeKnown {
		st.nodeKnown = true
		st.nodes = e.nodesOf(src)
	}
	if len(dst.Nodes) > 0 {
		return slices.ContainsFunc(dst.Nodes, func(n string) bool { return slices.Contains(st.nodes, n) })
	}
	return slices.Contains(st.nodes, dst.NodeName)
}

// nodesOf names the nodes an endpoint is: a Node endpoint's own name, or every node one of
// whose addresses it has.
func (e *Evaluation) nodesOf(ep *Endpoint) []string {
	var out []string
	if ep.Kind == Node && ep.NodeName != "" {
		out = append(out, ep.NodeName)
	}
	if !ep.IP.IsValid() || e.w == nil {
		return out
	}
	ip := ep.IP.Unmap()
	for name, addrs := range e.w.NodeAddresses {
		if slices.ContainsFunc(addrs, func(a netip.Addr) bool { return a.Unmap() == ip }) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

func (r *compiledRule) portMatches(port int32, proto corev1.Protocol, dst *Endpoint) bool {
	return portsMatch(r.anyPort, r.ports, port, proto, dst)
}

// portsMatch reports whether a rule's ports (every port when anyPort) match the flow's.
func portsMatch(anyPort bool, ports []compiledPort, port int32, proto corev1.Protocol, dst *Endpoint) bool {
	if anyPort {
		return true
	}
	for _, p := range ports {
		if p.matches(port, proto, dst) {
			return true
		}
	}
	return false
}

func (p compiledPort) matches(port int32, proto corev1.Protocol, dst *Endpoint) bool {
	if p.protocol != proto && (p.protocol != "" || p.name == "") {
		return false
	}
	if p.anyPort {
		return true
	}
	if p.name == "" {
		return p.lo <= port && port <= p.hi
	}
	return namedPortMatches(dst, p.name, port, proto)
}

// namedPortMatches reports whether the destination pod declares a container port of that
// name, number and protocol. A named port is resolved against the destination pod's
// container ports, for ingress and egress rules alike; a destination without that name
// matches nothing.
func namedPortMatches(dst *Endpoint, name string, port int32, proto corev1.Protocol) bool {
	if dst.Kind != Pod {
		return false
	}
	for _, cp := range dst.Ports {
		if cp.Name == name && cp.Port == port && containerProtocol(cp) == proto {
			return true
		}
	}
	return false
}

func containerProtocol(cp ContainerPort) corev1.Protocol {
	if cp.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return cp.Protocol
}

// allowed is the fast path: the decision without its explanation. A pod-to-pod flow needs
// both the source's egress and the destination's ingress to allow it; an end that is not a
// pod has no policies of its own.
func (e *Evaluation) allowed(f Flow, src, dst *endpointState) bool {
	if e.ps.cluster != nil {
		return e.clusterOutcome(f, src, dst) == outAllow
	}
	return e.egressAllowed(f, src, dst) && e.ingressAllowed(f, src, dst)
}

func (e *Evaluation) egressAllowed(f Flow, src, dst *endpointState) bool {
	if f.Src.Kind != Pod {
		return true
	}
	t := e.own(f.Src, src)
	return t == nil || !t.egress.isolated ||
		e.ruleIndex(Egress, t.egress.rules, e.of(t.nsp, dst), f.Dst, f.Port, f.protocol(), f.Dst) >= 0
}

func (e *Evaluation) ingressAllowed(f Flow, src, dst *endpointState) bool {
	if f.Dst.Kind != Pod {
		return true
	}
	t := e.own(f.Dst, dst)
	return t == nil || !t.ingress.isolated ||
		e.ruleIndex(Ingress, t.ingress.rules, e.of(t.nsp, src), f.Src, f.Port, f.protocol(), f.Dst) >= 0 ||
		e.fromOwnNode(f.Src, src, f.Dst)
}

// Allowed reports whether the flow is allowed, without building an explanation. A flow of
// workloads whose pods the policies tell apart is allowed only if it is for each of them.
func (e *Evaluation) Allowed(f Flow) bool {
	if splitSrc, splitDst := e.split(f); splitSrc || splitDst {
		return e.podsAllowed(f, splitSrc, splitDst)
	}
	return e.allowed(f, e.state(f.Src), e.state(f.Dst))
}

// Verdict decides the flow and explains the decision. A flow of workloads whose pods the
// policies tell apart is judged pod by pod: see Verdict.Pods.
func (e *Evaluation) Verdict(f Flow) Verdict {
	if splitSrc, splitDst := e.split(f); splitSrc || splitDst {
		return e.podsVerdict(f, splitSrc, splitDst)
	}
	return e.verdict(f)
}

func (e *Evaluation) verdict(f Flow) Verdict {
	if e.ps.cluster != nil {
		return e.clusterVerdict(f)
	}
	proto := f.protocol()
	src, dst := e.state(f.Src), e.state(f.Dst)
	var v Verdict
	v.Egress = Side{Allowed: true}
	v.Ingress = Side{Allowed: true}
	if f.Src.Kind == Pod {
		v.Egress.Applies = true
		if t := e.own(f.Src, src); t != nil && t.egress.isolated {
			v.Egress = side(t, Egress, e.ruleIndex(Egress, t.egress.rules, e.of(t.nsp, dst), f.Dst, f.Port, proto, f.Dst))
		}
	}
	if f.Dst.Kind == Pod {
		v.Ingress.Applies = true
		if t := e.own(f.Dst, dst); t != nil && t.ingress.isolated {
			v.Ingress = side(t, Ingress, e.ruleIndex(Ingress, t.ingress.rules, e.of(t.nsp, src), f.Src, f.Port, proto, f.Dst))
			if !v.Ingress.Allowed && e.fromOwnNode(f.Src, src, f.Dst) {
				v.Ingress.Allowed = true
				v.Ingress.FromOwnNode = true
			}
		}
	}
	v.Allowed = v.Egress.Allowed && v.Ingress.Allowed
	return v
}

// side explains one isolated end: the policies that isolate it and the rule (index i into
// the direction's rules, or -1) that allowed the flow.
func side(t *nsMemo, dir Direction, i int) Side {
	s := Side{Applies: true, Isolated: true}
	// IsolatedBy is shared with the memo, clipped so that an append by the caller copies.
	s.IsolatedBy = slices.Clip(t.isolation(dir).by)
	rules := t.nsp.ingress
	if dir == Egress {
		rules = t.nsp.egress
	}
	if i >= 0 {
		s.Allowed = true
		s.AllowedBy = &rules[i].ref // shared with the compiled rule, like IsolatedBy
	}
	return s
}

// Reason explains a verdict in one line, e.g. "egress not isolated; ingress isolated by
// shop/default-deny and no rule allows it".
func (v Verdict) Reason() string {
	var parts []string
	if p := v.Egress.describe(Egress); p != "" {
		parts = append(parts, p)
	}
	if p := v.Ingress.describe(Ingress); p != "" {
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "no policy applies to either end"
	}
	return strings.Join(parts, "; ")
}

// AllowingRules are the rules that allowed the flow at each end where a policy isolates
// it: the source's egress rule first, then the destination's ingress rule.
func (v Verdict) AllowingRules() []RuleRef {
	var out []RuleRef
	for _, s := range []Side{v.Egress, v.Ingress} {
		if s.AllowedBy != nil {
			out = append(out, *s.AllowedBy)
		}
	}
	return out
}

// Denial explains only what denies the flow, e.g. "egress isolated by shop/default-deny and
// no rule allows it"; empty when the flow is allowed.
func (v Verdict) Denial() string {
	var parts []string
	for _, s := range []struct {
		side Side
		dir  Direction
	}{{v.Egress, Egress}, {v.Ingress, Ingress}} {
		if !s.side.Allowed {
			parts = append(parts, s.side.describe(s.dir))
		}
	}
	return strings.Join(parts, "; ")
}

func (s Side) describe(dir Direction) string {
	switch {
	case !s.Applies:
		return ""
	case s.FromOwnNode:
		return dir.String() + " from the pod's own node, which policies cannot block"
	case s.Uncertain:
		return dir.String() + " uncertain: " + s.DecidedBy.String() + " accepts it if the destination is one of its domainNames, which an address cannot tell"
	case s.DecidedBy != nil:
		return dir.String() + " decided by " + s.DecidedBy.String()
	case s.PassedBy != nil && !s.Isolated:
		return dir.String() + " passed by " + s.PassedBy.String() + ", not isolated"
	case s.PassedBy != nil && s.AllowedBy != nil:
		return dir.String() + " passed by " + s.PassedBy.String() + ", allowed by " + s.AllowedBy.String()
	case s.PassedBy != nil:
		names := make([]string, len(s.IsolatedBy))
		for i, p := range s.IsolatedBy {
			names[i] = p.String()
		}
		return dir.String() + " passed by " + s.PassedBy.String() + ", isolated by " + strings.Join(names, ", ") + " and no rule allows it"
	case !s.Isolated:
		return dir.String() + " not isolated"
	case s.AllowedBy != nil:
		return dir.String() + " allowed by " + s.AllowedBy.String()
	}
	names := make([]string, len(s.IsolatedBy))
	for i, p := range s.IsolatedBy {
		names[i] = p.String()
	}
	return dir.String() + " isolated by " + strings.Join(names, ", ") + " and no rule allows it"
}
