package evaluator

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// outcome is a tiered decision: a domainNames rule can leave it open.
type outcome uint8

const (
	outDeny outcome = iota
	outAllow
	outUncertain
)

// both combines the two ends of a flow: it needs both to allow it, and a certain deny at
// either end settles it.
func both(a, b outcome) outcome {
	switch {
	case a == outDeny || b == outDeny:
		return outDeny
	case a == outUncertain || b == outUncertain:
		return outUncertain
	}
	return outAllow
}

// clusterMemo is what a set's cluster policies say about one endpoint, learnt as needed:
// as a pod, which policies select it as their subject and so which rules it is judged by;
// as a peer, which rules' and which peers' selectors match it. A flow's tier walk is then
// the first rule set in both, as ruleIndex does for NetworkPolicies, with its ports to check.
type clusterMemo struct {
	cs        *clusterSet
	subjKnown bool
	selected  []int // indexes into cs.policies, in the order they are tried
	// bits holds the memo's bit sets, laid out by clusterSet.memoBits: one small slice
	// rather than eight, as an endpoint gets a memo for every set it is judged under.
	bits bitset
}

// The bit sets of a clusterMemo: by Direction, the rules of the policies that select the
// endpoint (memoRules), and whether a rule's peers match it, known (memoRuleKnown) and
// matching (memoRuleMatch); then whether each peer matches it, known and matching.
const (
	memoRules = iota * 2
	memoRuleKnown
	memoRuleMatch
	memoPeerKnown = memoRuleMatch + 2
	memoPeerMatch = memoPeerKnown + 1
	memoSets      = memoPeerMatch + 1
)

// bitset returns bit set k (memoRules+dir … memoPeerMatch).
func (m *clusterMemo) bitset(k int) bitset {
	lo, hi := m.cs.memoBits[k], m.cs.memoBits[k+1]
	return m.bits[lo:hi:hi]
}

// clusterOf returns what the evaluation's cluster policies say about the endpoint of st.
func (e *Evaluation) clusterOf(st *endpointState) *clusterMemo {
	cs := e.ps.cluster
	if st.clSet == cs {
		return st.clLast
	}
	for _, m := range st.cl {
		if m.cs == cs {
			st.clSet, st.clLast = cs, m
			return m
		}
	}
	n := 64 * cs.memoBits[memoSets]
	var m *clusterMemo
	if k := len(e.m.freeCl); k > 0 {
		m = e.m.freeCl[k-1]
		e.m.freeCl = e.m.freeCl[:k-1]
		*m = clusterMemo{cs: cs, selected: m.selected[:0], bits: e.m.reuse(m.bits, n)}
	} else {
		m = &clusterMemo{cs: cs, bits: e.m.bits(n)}
	}
	st.cl = append(st.cl, m)
	st.clSet, st.clLast = cs, m
	return m
}

// subjects returns the policies that select the pod ep, in order, and marks their rules.
func (e *Evaluation) subjects(ep *Endpoint, m *clusterMemo) []int {
	if !m.subjKnown {
		m.subjKnown = true
		if ep.Kind == Pod {
			nsl := e.namespaceLabels(ep.Namespace)
			for i, cp := range m.cs.policies {
				if !cp.selects(ep, nsl) {
					continue
				}
				m.selected = append(m.selected, i)
				for _, r := range cp.ingress {
					m.bitset(memoRules + int(Ingress)).set(r.id)
				}
				for _, r := range cp.egress {
					m.bitset(memoRules + int(Egress)).set(r.id)
				}
			}
		}
	}
	return m.selected
}

// clusterPeerMatches reports whether peer id of the cluster policies matches ep. Networks
// match any endpoint whose address is known, pods included, as ipBlock does; nodes match
// an endpoint that is a node, or has the address of one, whose labels the selector matches.
func (e *Evaluation) clusterPeerMatches(m *clusterMemo, id int, ep *Endpoint, st *endpointState) bool {
	known, match := m.bitset(memoPeerKnown), m.bitset(memoPeerMatch)
	if known.has(id) {
		return match.has(id)
	}
	known.set(id)
	p := &m.cs.peers[id]
	ok := false
	switch {
	case len(p.networks) > 0:
		ok = slices.ContainsFunc(p.networks, ep.within)
	case p.nodes != nil:
		if !st.nodeKnown {
			st.nodeKnown = true
			st.nodes = e.nodesOf(ep)
		}
		for _, n := range st.nodes {
			var nl map[string]string
			if e.w != nil {
				nl = e.w.NodeLabels[n]
			}
			if p.nodes.Matches(labels.Set(nl)) {
				ok = true
				break
			}
		}
	default:
		ok = ep.Kind == Pod && p.namespaces.Matches(e.namespaceLabels(ep.Namespace)) &&
			(p.pods == nil || p.pods.Matches(labels.Set(ep.Labels)))
	}
	if ok {
		match.set(id)
	}
	return ok
}

// ruleMatches reports whether a rule matches the flow's peer and port; maybe is set when
// only its domainNames could, which no address decides. Domain names are taken never to
// resolve to a pod's address.
func (e *Evaluation) ruleMatches(r *clusterRule, pm *clusterMemo, peer *Endpoint, peerSt *endpointState, port int32, proto corev1.Protocol, dst *Endpoint) (match, maybe bool) {
	if !r.portMatches(port, proto, dst) {
		return false, false
	}
	if e.anyClusterPeerMatches(pm, r.peerIDs, peer, peerSt) {
		return true, false
	}
	return false, r.domains && peer.Kind != Pod
}

// walkTier tries the tier's rules of the policies that select the pod (pod's memo), in
// order, and returns the first that matches (nil: none), and the first domainNames rule met
// before it that might. Whether a rule's peers match the peer is learnt once per endpoint;
// rules known not to match drop out a word at a time, save domainNames rules, which can
// match a name whatever the address.
func (e *Evaluation) walkTier(tier Tier, dir Direction, pod, pm *clusterMemo, peer *Endpoint, peerSt *endpointState, f Flow) (hit, maybe *clusterRule) {
	cs := pm.cs
	rules := cs.rules[dir]
	lo, hi := 0, cs.baseline[dir]
	if tier == BaselineTier {
		lo, hi = hi, len(rules)
	}
	d := int(dir)
	sel, known, match, domains := pod.bitset(memoRules+d), pm.bitset(memoRuleKnown+d), pm.bitset(memoRuleMatch+d), cs.domains[dir]
	proto := f.protocol()
	for w := lo / 64; w*64 < hi; w++ {
		x := sel[w] &^ (known[w] &^ match[w] &^ domains[w])
		if w == lo/64 {
			x &^= 1<<(uint(lo)%64) - 1
		}
		for x != 0 {
			i := w*64 + trailingZeros(x)
			if i >= hi {
				return nil, maybe
			}
			x &= x - 1
			r := rules[i]
			if !known.has(i) {
				known.set(i)
				if e.anyClusterPeerMatches(pm, r.peerIDs, peer, peerSt) {
					match.set(i)
				}
			}
			if !r.portMatches(f.Port, proto, f.Dst) {
				continue
			}
			if match.has(i) {
				return r, maybe
			}
			// Domain names are taken never to resolve to a pod's address.
			if r.domains && peer.Kind != Pod && maybe == nil {
				maybe = r
			}
		}
	}
	return nil, maybe
}

// anyClusterPeerMatches reports whether one of the peers ids matches ep.
func (e *Evaluation) anyClusterPeerMatches(m *clusterMemo, ids []int, ep *Endpoint, st *endpointState) bool {
	for _, id := range ids {
		if e.clusterPeerMatches(m, id, ep, st) {
			return true
		}
	}
	return false
}

// clusterSide decides one end of a flow through the tiers: the Admin tier, then the
// NetworkPolicies if they isolate the pod, else the Baseline tier, else the default allow.
// With explain it fills in the Side; without, only the outcome counts.
func (e *Evaluation) clusterSide(dir Direction, f Flow, srcSt, dstSt *endpointState, explain bool) (outcome, Side) {
	pod, podSt, peer, peerSt := f.Src, srcSt, f.Dst, dstSt
	if dir == Ingress {
		pod, podSt, peer, peerSt = f.Dst, dstSt, f.Src, srcSt
	}
	s := Side{Allowed: true}
	if pod.Kind != Pod {
		return outAllow, s
	}
	s.Applies = true
	podM := e.clusterOf(podSt)
	sel := e.subjects(pod, podM)
	pm := e.clusterOf(peerSt)

	out := outAllow
	var decided, passed *clusterRule
	hit, maybe := e.walkTier(AdminTier, dir, podM, pm, peer, peerSt, f)
	if hit != nil && hit.ref.Action == Pass {
		passed, hit = hit, nil
	}
	// The NetworkPolicies of the pod's namespace matter when the Admin tier left the flow
	// to them, or to explain a decision they did not make.
	var t *nsMemo
	if hit == nil || explain {
		t = e.own(pod, podSt)
	}
	isolated := t != nil && t.isolation(dir).isolated
	switch {
	case hit != nil:
		decided = hit
		if hit.ref.Action == Deny {
			out = outDeny
		}
		if explain && isolated {
			s = side(t, dir, -1)
		}
	case isolated:
		i := e.ruleIndex(dir, t.isolation(dir).rules, e.of(t.nsp, peerSt), peer, f.Port, f.protocol(), f.Dst)
		if i < 0 {
			out = outDeny
		}
		if explain {
			s = side(t, dir, i)
		}
	default:
		var mb *clusterRule
		hit, mb = e.walkTier(BaselineTier, dir, podM, pm, peer, peerSt, f)
		if maybe == nil {
			maybe = mb
		}
		if hit != nil && hit.ref.Action != Pass {
			decided = hit
			if hit.ref.Action == Deny {
				out = outDeny
			}
		}
	}
	if out == outDeny && maybe != nil {
		// The domainNames rule came first: Accept if the destination is one of its names.
		out, decided = outUncertain, maybe
	}
	if out != outAllow && dir == Ingress && e.fromOwnNode(peer, peerSt, pod) {
		// Pods cannot block their own node's kubelet, whatever the tier.
		out = outAllow
		s.FromOwnNode = true
	}
	if !explain {
		return out, s
	}
	s.Allowed = out == outAllow
	s.Uncertain = out == outUncertain
	if decided != nil {
		s.AllowedBy = nil
		s.DecidedBy = e.tied(decided, dir, sel, pm, peer, peerSt, f)
	}
	if passed != nil {
		s.PassedBy = e.tied(passed, dir, sel, pm, peer, peerSt, f)
	}
	return out, s
}

// tied returns the rule's reference, noting the other policies of its tier and priority
// that select the pod and have a rule matching the flow: the API leaves their order to
// the implementation.
func (e *Evaluation) tied(r *clusterRule, dir Direction, sel []int, pm *clusterMemo, peer *Endpoint, peerSt *endpointState, f Flow) *TierRuleRef {
	var ties []ClusterRef
	for _, i := range sel {
		cp := pm.cs.policies[i]
		if cp.tier != r.ref.Tier || cp.prio != r.ref.Priority || cp.ref == r.ref.Policy {
			continue
		}
		rules := cp.ingress
		if dir == Egress {
			rules = cp.egress
		}
		for _, o := range rules {
			if match, mb := e.ruleMatches(o, pm, peer, peerSt, f.Port, f.protocol(), f.Dst); match || mb {
				ties = append(ties, cp.ref)
				break
			}
		}
	}
	if len(ties) == 0 {
		return &r.ref // shared with the compiled rule
	}
	ref := r.ref
	ref.TiedWith = ties
	return &ref
}

// clusterOutcome is the fast path of a set with cluster policies: the decision without
// its explanation.
func (e *Evaluation) clusterOutcome(f Flow, src, dst *endpointState) outcome {
	eg, _ := e.clusterSide(Egress, f, src, dst, false)
	if eg == outDeny {
		return outDeny
	}
	in, _ := e.clusterSide(Ingress, f, src, dst, false)
	return both(eg, in)
}

func (e *Evaluation) clusterVerdict(f Flow) Verdict {
	src, dst := e.state(f.Src), e.state(f.Dst)
	eg, es := e.clusterSide(Egress, f, src, dst, true)
	in, is := e.clusterSide(Ingress, f, src, dst, true)
	o := both(eg, in)
	return Verdict{Allowed: o == outAllow, Uncertain: o == outUncertain, Egress: es, Ingress: is}
}

// outcomeOf is the tiered decision on one pair of ends, for any set.
func (e *Evaluation) outcomeOf(f Flow, src, dst *endpointState) outcome {
	if e.ps.cluster != nil {
		return e.clusterOutcome(f, src, dst)
	}
	if e.allowed(f, src, dst) {
		return outAllow
	}
	return outDeny
}

// sideOutcome is the tiered decision on one side of a pair of ends, for any set.
func (e *Evaluation) sideOutcome(dir Direction, f Flow, src, dst *endpointState) outcome {
	if e.ps.cluster != nil {
		out, _ := e.clusterSide(dir, f, src, dst, false)
		return out
	}
	ok := e.ingressAllowed(f, src, dst)
	if dir == Egress {
		ok = e.egressAllowed(f, src, dst)
	}
	if ok {
		return outAllow
	}
	return outDeny
}
