package evaluator

import (
	"slices"

	"k8s.io/apimachinery/pkg/labels"
)

// A Delta is a change of policies, from one set to another, worked out once so that flows
// can be judged against it one at a time: package staged judges every new edge against each
// staged change. Its Cuts is CutOne's answer; a DeltaJudge answers the same for many deltas
// of one flow, sharing what the flow's ends' namespaces say before any change.
//
// A Delta is not safe for concurrent use.
type Delta struct {
	before, after *PolicySet
	d             differ
	none          bool  // no policy differs: nothing is cut
	kept          *Memo // for the flows judged by evaluations: tiers, pods told apart

	// Relative to ref, the set the flows were last judged against: the namespaces where
	// before or after holds other policies than ref. Worked out again when ref changes.
	ref     *PolicySet
	touched []nsDelta
}

// nsDelta is how a delta's sets differ from the reference set in one namespace.
type nsDelta struct {
	ns            string
	before, after sidesOf
}

// sidesOf is one set's policies of a namespace as the reference's, less out (policies of
// the reference this set lacks or holds changed) and plus in (what it holds instead, from
// nsp: the set's policies of the namespace).
type sidesOf struct {
	nsp     *nsPolicies
	out, in []*compiledPolicy
}

// NewDelta works out the change from before to after.
func NewDelta(before, after *PolicySet) *Delta {
	d, ok := newDiffer(before, after)
	return &Delta{before: before, after: after, d: d, none: !ok}
}

// Cuts reports whether the change cuts f, as CutOne does.
func (d *Delta) Cuts(w *World, f Flow) bool {
	if d.none {
		return false
	}
	return d.byEvaluations(w, f)
}

// byEvaluations judges f by the evaluations of the two sets, keeping their memo.
func (d *Delta) byEvaluations(w *World, f Flow) bool {
	if d.kept == nil {
		d.kept = NewMemo()
	}
	return d.d.cutOne(d.before, d.after, w, f, d.kept)
}

// relativeTo works out where before and after differ from ref.
func (d *Delta) relativeTo(ref *PolicySet) {
	d.ref = ref
	d.touched = d.touched[:0]
	namespaces := apart(ref, d.before)
	for _, ns := range apart(ref, d.after) {
		if !slices.Contains(namespaces, ns) {
			namespaces = append(namespaces, ns)
		}
	}
	for _, ns := range namespaces {
		r := ref.byNS[ns]
		t := nsDelta{ns: ns, before: sides(r, d.before.byNS[ns]), after: sides(r, d.after.byNS[ns])}
		if len(t.before.out)+len(t.before.in)+len(t.after.out)+len(t.after.in) > 0 {
			d.touched = append(d.touched, t)
		}
	}
}

// apart lists the namespaces whose policies x may hold otherwise than ref: those With
// touched on the way from ref to x when x was derived from it, else every namespace whose
// policies are not ref's.
func apart(ref, x *PolicySet) []string {
	var out []string
	for y, n := x, 0; ; y, n = y.base, n+1 {
		if y == ref {
			return out
		}
		if y == nil || n == maxApartChain {
			break
		}
		for _, ns := range y.changed {
			if !slices.Contains(out, ns) {
				out = append(out, ns)
			}
		}
	}
	out = out[:0]
	for ns, nsp := range x.byNS {
		if ref.byNS[ns] != nsp {
			out = append(out, ns)
		}
	}
	for ns := range ref.byNS {
		if _, ok := x.byNS[ns]; !ok {
			out = append(out, ns)
		}
	}
	return out
}

// maxApartChain bounds the chain of Withs apart follows back to the reference.
const maxApartChain = 8

// sides says how x's policies of a namespace differ from r's.
func sides(r, x *nsPolicies) sidesOf {
	s := sidesOf{nsp: x}
	var changed []*compiledPolicy
	switch {
	case r == x:
		return s
	case r == nil:
		changed = x.policies
	case x == nil:
		changed = r.policies
	default:
		changed = diffNamespace(r, x)
	}
	for _, cp := range changed {
		if r != nil && slices.Contains(r.policies, cp) {
			s.out = append(s.out, cp)
		} else {
			s.in = append(s.in, cp)
		}
	}
	return s
}

// A DeltaJudge judges one flow at a time against many deltas, made mostly against one
// policy set, the reference (the cluster's policies as they are). What the reference's
// policies of the flow's ends' namespaces say of the flow is learnt once, policy by policy;
// a delta then costs what its own changed policies do. NetworkPolicies are additive, so
// under a set that holds the reference's policies of a namespace less some and plus others,
// an end is isolated in a direction if one of the policies left or added selects it for
// that direction, and the flow is allowed there if one of those has a rule that allows it.
//
// Deltas with cluster policies, and flows whose workloads' pods a set tells apart, are
// judged by the evaluations, as CutOne judges them. A DeltaJudge is not safe for
// concurrent use.
type DeltaJudge struct {
	e Evaluation // of the reference; its memo serves namespace labels
	f Flow
	// src's egress and dst's ingress under the reference, learnt when first asked.
	src, dst refSide
	// ownNode: whether the source is the node the destination runs on; 0 unknown, 1 no, 2 yes.
	ownNode int8
	srcNode endpointState
	scratch []int
}

// refSide is what the reference's policies of an end's namespace say of the flow there.
type refSide struct {
	nspKnown bool
	nsp      *nsPolicies // the reference's policies of the end's namespace, once nspKnown
	known    bool
	by       []allowing // the policies that select the end for the direction
}

type allowing struct {
	cp     *compiledPolicy
	allows bool // one of its rules for the direction allows the flow
}

// NewDeltaJudge returns a DeltaJudge.
func NewDeltaJudge() *DeltaJudge {
	return &DeltaJudge{e: Evaluation{m: newMemo()}}
}

// Begin starts judging flow f in world w against deltas made mostly against ref.
func (j *DeltaJudge) Begin(ref *PolicySet, w *World, f Flow) {
	if w != j.e.w {
		clear(j.e.m.nsLabels)
	}
	j.e.ps, j.e.w, j.f = ref, w, f
	j.src.known, j.dst.known = false, false
	j.src.nspKnown, j.dst.nspKnown = false, false
	j.ownNode = 0
	j.srcNode = endpointState{}
}

// Cuts reports whether d cuts the flow begun: CutOne's answer.
func (j *DeltaJudge) Cuts(d *Delta) bool {
	f := j.f
	switch {
	case d.none:
		return false
	case d.d.tiered:
		return d.byEvaluations(j.e.w, f)
	}
	if d.ref != j.e.ps {
		d.relativeTo(j.e.ps)
	}
	var src, dst *nsDelta
	for i := range d.touched {
		t := &d.touched[i]
		if f.Src.Kind == Pod && t.ns == f.Src.Namespace {
			src = t
		}
		if f.Dst.Kind == Pod && t.ns == f.Dst.Namespace {
			dst = t
		}
	}
	if src == nil && dst == nil {
		// Both sets hold the reference's policies of the ends' namespaces: one verdict.
		return false
	}
	if (len(f.Src.Pods) > 1 || len(f.Dst.Pods) > 1) && j.splits(src, dst) {
		return d.byEvaluations(j.e.w, f)
	}
	// Cut: allowed before, denied after.
	return j.allowed(src, dst, false) && !j.allowed(src, dst, true)
}

// splits reports whether the delta's sets tell the pods of an end of the flow apart, as
// splitEnds does, from the policies of the ends' namespaces the delta holds (src, dst) or
// the reference's, which for sets without cluster policies are all it reads.
func (j *DeltaJudge) splits(src, dst *nsDelta) bool {
	f := j.f
	if len(f.Src.Pods) > 1 && f.Dst.Kind == Pod {
		if dst != nil {
			if ingressIPBlocks(dst.before.nsp) || ingressIPBlocks(dst.after.nsp) {
				return true
			}
		} else if ingressIPBlocks(j.refNS(Ingress)) {
			return true
		}
	}
	if len(f.Dst.Pods) > 1 && f.Src.Kind == Pod {
		if src != nil {
			return egressIPBlocks(src.before.nsp) || egressIPBlocks(src.after.nsp)
		}
		return egressIPBlocks(j.refNS(Egress))
	}
	return false
}

func ingressIPBlocks(nsp *nsPolicies) bool { return nsp != nil && nsp.ingressIPBlocks }
func egressIPBlocks(nsp *nsPolicies) bool  { return nsp != nil && nsp.egressIPBlocks }

// refNS returns the reference's policies of the namespace of the flow's source (Egress)
// or destination (Ingress), looked up once a flow.
func (j *DeltaJudge) refNS(dir Direction) *nsPolicies {
	rs, ep := &j.dst, j.f.Dst
	if dir == Egress {
		rs, ep = &j.src, j.f.Src
	}
	if !rs.nspKnown {
		rs.nspKnown = true
		rs.nsp = j.e.ps.byNS[ep.Namespace]
	}
	return rs.nsp
}

// allowed reports whether the set before (or after) the delta allows the flow.
func (j *DeltaJudge) allowed(src, dst *nsDelta, after bool) bool {
	f := j.f
	if f.Src.Kind == Pod {
		var s *sidesOf
		if src != nil {
			s = &src.before
			if after {
				s = &src.after
			}
		}
		if !j.sideAllowed(Egress, s) {
			return false
		}
	}
	if f.Dst.Kind == Pod {
		var s *sidesOf
		if dst != nil {
			s = &dst.before
			if after {
				s = &dst.after
			}
		}
		if !j.sideAllowed(Ingress, s) {
			return false
		}
	}
	return true
}

// sideAllowed reports whether the source's egress (the destination's ingress) allows the
// flow under the reference's policies of its namespace changed by s (nil: unchanged).
func (j *DeltaJudge) sideAllowed(dir Direction, s *sidesOf) bool {
	ep, rs := j.f.Src, &j.src
	if dir == Ingress {
		ep, rs = j.f.Dst, &j.dst
	}
	if !rs.known {
		j.learn(dir, ep, rs)
	}
	isolated := false
	for _, a := range rs.by {
		if s != nil && slices.Contains(s.out, a.cp) {
			continue
		}
		if a.allows {
			return true
		}
		isolated = true
	}
	if s != nil {
		for _, cp := range s.in {
			if !cp.has(dir) || !cp.selector.Matches(labels.Set(ep.Labels)) {
				continue
			}
			if j.allows(dir, s.nsp, cp) {
				return true
			}
			isolated = true
		}
	}
	return !isolated || (dir == Ingress && j.fromOwnNode())
}

// learn works out which of the reference's policies select ep for dir, and which of those
// allow the flow.
func (j *DeltaJudge) learn(dir Direction, ep *Endpoint, rs *refSide) {
	rs.known = true
	rs.by = rs.by[:0]
	nsp := j.refNS(dir)
	if nsp == nil {
		return
	}
	podLabels := labels.Set(ep.Labels)
	for _, i := range nsp.mayApply(ep.Labels, &j.scratch) {
		cp := nsp.policies[i]
		if cp.has(dir) && cp.selector.Matches(podLabels) {
			rs.by = append(rs.by, allowing{cp: cp, allows: j.allows(dir, nsp, cp)})
		}
	}
}

// allows reports whether one of cp's rules for dir (cp is one of nsp's) allows the flow.
func (j *DeltaJudge) allows(dir Direction, nsp *nsPolicies, cp *compiledPolicy) bool {
	f := j.f
	rules, set, peer := nsp.ingress, cp.ingressRules, f.Src
	if dir == Egress {
		rules, set, peer = nsp.egress, cp.egressRules, f.Dst
	}
	proto := f.protocol()
	for w, x := range set {
		for ; x != 0; x &= x - 1 {
			r := rules[w*64+trailingZeros(x)]
			if !r.portMatches(f.Port, proto, f.Dst) {
				continue
			}
			if r.anyPeer || slices.ContainsFunc(r.peers, func(p compiledPeer) bool { return j.e.peerMatches(nsp, p, peer) }) {
				return true
			}
		}
	}
	return false
}

// fromOwnNode reports whether the flow comes from the node its destination runs on.
func (j *DeltaJudge) fromOwnNode() bool {
	if j.ownNode == 0 {
		j.ownNode = 1
		if j.e.fromOwnNode(j.f.Src, &j.srcNode, j.f.Dst) {
			j.ownNode = 2
		}
	}
	return j.ownNode == 2
}

// has reports whether the policy has dir among its types.
func (cp *compiledPolicy) has(dir Direction) bool {
	if dir == Egress {
		return cp.egress
	}
	return cp.ingress
}
