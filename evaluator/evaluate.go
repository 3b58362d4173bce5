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
	endpoints map[*Endpoint]*endpointState
	nsLabels  map[string]labels.Set
}

type endpointState struct {
	perNS []nsMemo // usually one or two: the endpoint's own namespace and its peers'
	// candidate is set by Diff: -1 unknown, 0 no, 1 yes.
	candidate int8
}

// nsMemo is what one namespace's policies say about one endpoint.
type nsMemo struct {
	nsp *nsPolicies
	// As the pod a policy selects (only for pods of this namespace): the ingress and egress
	// rules of the policies that select it, and whether any policy isolates it.
	ingressIsolated, egressIsolated bool
	ingressRules, egressRules       bitset
	// As the peer of a rule: the ingress rules whose "from", and the egress rules whose
	// "to", match this endpoint.
	ingressPeer, egressPeer bitset
}

func newMemo() *memo {
	return &memo{endpoints: map[*Endpoint]*endpointState{}, nsLabels: map[string]labels.Set{}}
}

// NewEvaluation starts evaluating flows under ps, in the cluster w.
func NewEvaluation(ps *PolicySet, w *World) *Evaluation {
	return &Evaluation{ps: ps, w: w, m: newMemo()}
}

func (e *Evaluation) state(ep *Endpoint) *endpointState {
	st := e.m.endpoints[ep]
	if st == nil {
		st = &endpointState{candidate: -1}
		e.m.endpoints[ep] = st
	}
	return st
}

// of returns what nsp says about ep, computing it on first use.
func (e *Evaluation) of(nsp *nsPolicies, ep *Endpoint, st *endpointState) *nsMemo {
	for i := range st.perNS {
		if st.perNS[i].nsp == nsp {
			return &st.perNS[i]
		}
	}
	m := nsMemo{nsp: nsp}
	if ep.Kind == Pod && ep.Namespace == nsp.namespace {
		podLabels := labels.Set(ep.Labels)
		m.ingressRules = newBitset(len(nsp.ingress))
		m.egressRules = newBitset(len(nsp.egress))
		for _, cp := range nsp.policies {
			if !cp.selector.Matches(podLabels) {
				continue
			}
			if cp.ingress {
				m.ingressIsolated = true
				m.ingressRules.or(cp.ingressRules)
			}
			if cp.egress {
				m.egressIsolated = true
				m.egressRules.or(cp.egressRules)
			}
		}
	}
	m.ingressPeer = e.peerRules(nsp, nsp.ingress, ep)
	m.egressPeer = e.peerRules(nsp, nsp.egress, ep)
	st.perNS = append(st.perNS, m)
	return &st.perNS[len(st.perNS)-1]
}

func (e *Evaluation) peerRules(nsp *nsPolicies, rules []*compiledRule, ep *Endpoint) bitset {
	b := newBitset(len(rules))
	for i, r := range rules {
		if r.anyPeer || slices.ContainsFunc(r.peers, func(p compiledPeer) bool { return e.peerMatches(nsp, p, ep) }) {
			b.set(i)
		}
	}
	return b
}

// peerMatches reports whether one entry of a rule's from/to matches ep. ipBlock matches any
// endpoint whose address is known, pods included; selectors match pods only.
func (e *Evaluation) peerMatches(nsp *nsPolicies, p compiledPeer, ep *Endpoint) bool {
	if p.ipBlock != nil {
		return p.ipBlock.contains(ep.IP)
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
func (e *Evaluation) fromOwnNode(src, dst *Endpoint) bool {
	if dst.NodeName == "" {
		return false
	}
	if src.Kind == Node && src.NodeName == dst.NodeName {
		return true
	}
	if !src.IP.IsValid() || e.w == nil {
		return false
	}
	ip := src.IP.Unmap()
	return slices.ContainsFunc(e.w.NodeAddresses[dst.NodeName], func(a netip.Addr) bool { return a.Unmap() == ip })
}

func (r *compiledRule) portMatches(port int32, proto corev1.Protocol, dst *Endpoint) bool {
	if r.anyPort {
		return true
	}
	for _, p := range r.ports {
		if p.matches(port, proto, dst) {
			return true
		}
	}
	return false
}

func (p compiledPort) matches(port int32, proto corev1.Protocol, dst *Endpoint) bool {
	if p.protocol != proto {
		return false
	}
	if p.anyPort {
		return true
	}
	if p.name == "" {
		return p.lo <= port && port <= p.hi
	}
	// A named port is resolved against the destination pod's container ports, for ingress
	// and egress rules alike; a destination without that name matches nothing.
	if dst.Kind != Pod {
		return false
	}
	for _, cp := range dst.Ports {
		if cp.Name == p.name && cp.Port == port && containerProtocol(cp) == proto {
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

// allowed is the fast path: the decision without its explanation.
func (e *Evaluation) allowed(f Flow) bool {
	proto := f.protocol()
	// A pod-to-pod flow needs both the source's egress and the destination's ingress to
	// allow it; an end that is not a pod has no policies of its own.
	if f.Src.Kind == Pod {
		if nsp := e.ps.byNS[f.Src.Namespace]; nsp != nil {
			target := e.of(nsp, f.Src, e.state(f.Src))
			if target.egressIsolated && !firstRule(nsp.egress, target.egressRules, e.of(nsp, f.Dst, e.state(f.Dst)).egressPeer, f.Port, proto, f.Dst) {
				return false
			}
		}
	}
	if f.Dst.Kind == Pod {
		if nsp := e.ps.byNS[f.Dst.Namespace]; nsp != nil {
			target := e.of(nsp, f.Dst, e.state(f.Dst))
			if target.ingressIsolated && !e.fromOwnNode(f.Src, f.Dst) &&
				!firstRule(nsp.ingress, target.ingressRules, e.of(nsp, f.Src, e.state(f.Src)).ingressPeer, f.Port, proto, f.Dst) {
				return false
			}
		}
	}
	return true
}

// firstRule reports whether a rule that applies to the pod (selected) and matches the peer
// (peer) also matches the port.
func firstRule(rules []*compiledRule, selected, peer bitset, port int32, proto corev1.Protocol, dst *Endpoint) bool {
	return ruleIndex(rules, selected, peer, port, proto, dst) >= 0
}

func ruleIndex(rules []*compiledRule, selected, peer bitset, port int32, proto corev1.Protocol, dst *Endpoint) int {
	for w := range selected {
		x := selected[w] & peer[w]
		for x != 0 {
			i := w*64 + trailingZeros(x)
			if rules[i].portMatches(port, proto, dst) {
				return i
			}
			x &= x - 1
		}
	}
	return -1
}

// Allowed reports whether the flow is allowed, without building an explanation.
func (e *Evaluation) Allowed(f Flow) bool { return e.allowed(f) }

// Verdict decides the flow and explains the decision.
func (e *Evaluation) Verdict(f Flow) Verdict {
	proto := f.protocol()
	var v Verdict
	v.Egress = Side{Allowed: true}
	v.Ingress = Side{Allowed: true}
	if f.Src.Kind == Pod {
		v.Egress.Applies = true
		if nsp := e.ps.byNS[f.Src.Namespace]; nsp != nil {
			target := e.of(nsp, f.Src, e.state(f.Src))
			if target.egressIsolated {
				v.Egress = e.side(nsp, Egress, f.Src, nsp.egress, target.egressRules, e.of(nsp, f.Dst, e.state(f.Dst)).egressPeer, f.Port, proto, f.Dst)
			}
		}
	}
	if f.Dst.Kind == Pod {
		v.Ingress.Applies = true
		if nsp := e.ps.byNS[f.Dst.Namespace]; nsp != nil {
			target := e.of(nsp, f.Dst, e.state(f.Dst))
			if target.ingressIsolated {
				v.Ingress = e.side(nsp, Ingress, f.Dst, nsp.ingress, target.ingressRules, e.of(nsp, f.Src, e.state(f.Src)).ingressPeer, f.Port, proto, f.Dst)
				if !v.Ingress.Allowed && e.fromOwnNode(f.Src, f.Dst) {
					v.Ingress.Allowed = true
					v.Ingress.FromOwnNode = true
				}
			}
		}
	}
	v.Allowed = v.Egress.Allowed && v.Ingress.Allowed
	return v
}

func (e *Evaluation) side(nsp *nsPolicies, dir Direction, pod *Endpoint, rules []*compiledRule, selected, peer bitset, port int32, proto corev1.Protocol, dst *Endpoint) Side {
	s := Side{Applies: true, Isolated: true}
	podLabels := labels.Set(pod.Labels)
	for _, cp := range nsp.policies {
		if ((dir == Ingress && cp.ingress) || (dir == Egress && cp.egress)) && cp.selector.Matches(podLabels) {
			s.IsolatedBy = append(s.IsolatedBy, cp.ref)
		}
	}
	if i := ruleIndex(rules, selected, peer, port, proto, dst); i >= 0 {
		ref := rules[i].ref
		s.Allowed = true
		s.AllowedBy = &ref
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
