package evaluator_test

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// This file is a deliberately naive reference evaluator, written straight from the
// NetworkPolicy documentation (kubernetes.io/docs/concepts/services-networking/network-policies
// and the doc comments of k8s.io/api/networking/v1). It works on the API objects themselves
// with plain loops: no compilation, no indexes, no memoisation, and its own label selector
// matching rather than apimachinery's. The differential test holds the fast evaluator to it.

// namespaceNameLabel is set by the API server on every namespace.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// refAllowed reports whether the policies allow the flow: for a workload of several pods,
// the flow of every pair of pods.
func refAllowed(policies []*networkingv1.NetworkPolicy, w *evaluator.World, f evaluator.Flow) bool {
	for _, g := range refPodFlows(f) {
		if !refVerdict(policies, w, g).allowed {
			return false
		}
	}
	return true
}

// refPodFlows is every flow between a pod of the source and a pod of the destination, each
// end that is a workload of several pods replaced by each of them in turn.
func refPodFlows(f evaluator.Flow) []evaluator.Flow {
	srcs, dsts := []*evaluator.Endpoint{f.Src}, []*evaluator.Endpoint{f.Dst}
	if len(f.Src.Pods) > 0 {
		srcs = f.Src.Pods
	}
	if len(f.Dst.Pods) > 0 {
		dsts = f.Dst.Pods
	}
	var out []evaluator.Flow
	for _, s := range srcs {
		for _, d := range dsts {
			out = append(out, evaluator.Flow{Src: s, Dst: d, Port: f.Port, Protocol: f.Protocol})
		}
	}
	return out
}

// refDiff returns the indices of the flows that before allows and after denies for at
// least one pair of pods.
func refDiff(before, after []*networkingv1.NetworkPolicy, w *evaluator.World, flows []evaluator.Flow) []int {
	var cut []int
	for i, f := range flows {
		for _, g := range refPodFlows(f) {
			if refVerdict(before, w, g).allowed && !refVerdict(after, w, g).allowed {
				cut = append(cut, i)
				break
			}
		}
	}
	return cut
}

// refResult is the reference's answer with the facts the fast evaluator's Verdict explains.
type refResult struct {
	allowed bool
	egress  refSide // the source's egress
	ingress refSide // the destination's ingress
}

type refSide struct {
	applies     bool // the endpoint is a pod
	isolated    bool // some policy selects it for this direction
	isolatedBy  []evaluator.PolicyRef
	allowed     bool
	allowedBy   *evaluator.RuleRef // first matching rule, policies by name, rules by index
	fromOwnNode bool               // ingress only: the source is the destination pod's node
}

// refVerdict decides the flow. A flow is allowed iff the source's egress allows it and the
// destination's ingress allows it; only pods have either side restricted.
//
// A flow of workloads of several pods is decided pod by pod: it is allowed if every pair's
// flow is, and explained by the first denied pair's otherwise.
func refVerdict(policies []*networkingv1.NetworkPolicy, w *evaluator.World, f evaluator.Flow) refResult {
	if len(f.Src.Pods) > 0 || len(f.Dst.Pods) > 0 {
		pairs := refPodFlows(f)
		for _, g := range pairs {
			if r := refVerdict(policies, w, g); !r.allowed {
				return r
			}
		}
		return refVerdict(policies, w, pairs[0])
	}
	r := refResult{
		egress:  refSideOf(policies, w, f, evaluator.Egress),
		ingress: refSideOf(policies, w, f, evaluator.Ingress),
	}
	r.allowed = r.egress.allowed && r.ingress.allowed
	return r
}

func refSideOf(policies []*networkingv1.NetworkPolicy, w *evaluator.World, f evaluator.Flow, dir evaluator.Direction) refSide {
	// The pod whose side this is, and the peer at the other end of the flow.
	pod, peer := f.Dst, f.Src
	if dir == evaluator.Egress {
		pod, peer = f.Src, f.Dst
	}
	s := refSide{allowed: true}
	if pod.Kind != evaluator.Pod {
		// No policy applies to nodes or external addresses.
		return s
	}
	s.applies = true
	if dir == evaluator.Ingress {
		// "Traffic is allowed to a pod if ... OR if the traffic source is the pod's local node".
		s.fromOwnNode = refFromOwnNode(w, f)
	}

	// The policies that select the pod for this direction, by name. A policy selects the pods
	// in its own namespace matched by spec.podSelector; an empty selector matches all of them.
	var selecting []*networkingv1.NetworkPolicy
	for _, p := range policies {
		if p.Namespace == pod.Namespace && refSelectorMatches(&p.Spec.PodSelector, pod.Labels) && refHasType(p, dir) {
			selecting = append(selecting, p)
		}
	}
	slices.SortFunc(selecting, func(a, b *networkingv1.NetworkPolicy) int { return strings.Compare(a.Name, b.Name) })
	if len(selecting) == 0 {
		// "Traffic is allowed to a pod if there are no NetworkPolicies selecting the pod".
		return s
	}
	s.isolated = true
	for _, p := range selecting {
		s.isolatedBy = append(s.isolatedBy, evaluator.PolicyRef{Namespace: p.Namespace, Name: p.Name})
	}

	// Isolated: the flow must match at least one rule across all selecting policies; rules
	// are additive. A rule matches when both its peers and its ports match.
	s.allowed = s.fromOwnNode
	for _, p := range selecting {
		if dir == evaluator.Ingress {
			for i, rule := range p.Spec.Ingress {
				if refPeersMatch(p, rule.From, peer, w) && refPortsMatch(rule.Ports, f) {
					s.allowed = true
					s.allowedBy = &evaluator.RuleRef{Policy: evaluator.PolicyRef{Namespace: p.Namespace, Name: p.Name}, Direction: dir, Index: i}
					return s
				}
			}
		} else {
			for i, rule := range p.Spec.Egress {
				if refPeersMatch(p, rule.To, peer, w) && refPortsMatch(rule.Ports, f) {
					s.allowed = true
					s.allowedBy = &evaluator.RuleRef{Policy: evaluator.PolicyRef{Namespace: p.Namespace, Name: p.Name}, Direction: dir, Index: i}
					return s
				}
			}
		}
	}
	return s
}

// refHasType: "If [policyTypes] is not specified, it will default based on the existence of
// ingress or egress rules; policies that contain an egress section are assumed to affect
// egress, and all policies (whether or not they contain an ingress section) are assumed to
// affect ingress."
func refHasType(p *networkingv1.NetworkPolicy, dir evaluator.Direction) bool {
	want := networkingv1.PolicyTypeIngress
	if dir == evaluator.Egress {
		want = networkingv1.PolicyTypeEgress
	}
	if len(p.Spec.PolicyTypes) > 0 {
		return slices.Contains(p.Spec.PolicyTypes, want)
	}
	if dir == evaluator.Ingress {
		return true
	}
	return len(p.Spec.Egress) > 0
}

// refFromOwnNode: the source is the destination pod's node, by name or by one of the node's
// addresses.
func refFromOwnNode(w *evaluator.World, f evaluator.Flow) bool {
	dst, src := f.Dst, f.Src
	if dst.Kind != evaluator.Pod {
		return false
	}
	// A workload's pods accept the traffic of every node one of them runs on: an edge from
	// a node to a workload stands for its kubelet's probes of the pods there.
	nodes := dst.Nodes
	if len(nodes) == 0 && dst.NodeName != "" {
		nodes = []string{dst.NodeName}
	}
	for _, n := range nodes {
		if src.Kind == evaluator.Node && src.NodeName == n {
			return true
		}
		if !src.IP.IsValid() {
			continue
		}
		for _, a := range w.NodeAddresses[n] {
			if a.Unmap() == src.IP.Unmap() {
				return true
			}
		}
	}
	return false
}

// refPeersMatch: "If this field is empty or missing, this rule matches all sources
// [destinations]. ... Items in this list are combined using a logical OR operation."
func refPeersMatch(p *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer, other *evaluator.Endpoint, w *evaluator.World) bool {
	if len(peers) == 0 {
		return true
	}
	for i := range peers {
		if refPeerMatches(p, &peers[i], other, w) {
			return true
		}
	}
	return false
}

func refPeerMatches(p *networkingv1.NetworkPolicy, peer *networkingv1.NetworkPolicyPeer, other *evaluator.Endpoint, w *evaluator.World) bool {
	if peer.IPBlock != nil {
		return refIPBlockMatches(peer.IPBlock, other)
	}
	// Pod and namespace selectors select pods, and only pods.
	if other.Kind != evaluator.Pod {
		return false
	}
	if peer.NamespaceSelector == nil {
		// "Otherwise it selects the pods matching podSelector in the policy's own namespace."
		if other.Namespace != p.Namespace {
			return false
		}
	} else if !refSelectorMatchesFunc(peer.NamespaceSelector, refNamespaceLabel(w, other.Namespace)) {
		return false
	}
	if peer.PodSelector != nil && !refSelectorMatches(peer.PodSelector, other.Labels) {
		return false
	}
	return true
}

// refIPBlockMatches: the endpoint's address, if known, is in cidr and in none of except.
func refIPBlockMatches(b *networkingv1.IPBlock, other *evaluator.Endpoint) bool {
	if !other.IP.IsValid() {
		return false
	}
	ip := other.IP.Unmap()
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !cidr.Contains(ip) {
		return false
	}
	for _, e := range b.Except {
		ex, err := netip.ParsePrefix(e)
		if err == nil && ex.Contains(ip) {
			return false
		}
	}
	return true
}

// refNamespaceLabel looks up the namespace's labels, with the implied name label.
func refNamespaceLabel(w *evaluator.World, ns string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if k == namespaceNameLabel {
			return ns, true
		}
		v, ok := w.NamespaceLabels[ns][k]
		return v, ok
	}
}

// refPortsMatch: "If this field is empty or missing, this rule matches all ports. ... If
// this field is present and contains at least one item, then this rule allows traffic only
// if the traffic matches at least one port in the list."
func refPortsMatch(ports []networkingv1.NetworkPolicyPort, f evaluator.Flow) bool {
	if len(ports) == 0 {
		return true
	}
	proto := refProtocol(f.Protocol)
	for _, pp := range ports {
		// "If not specified, this field defaults to TCP."
		want := corev1.ProtocolTCP
		if pp.Protocol != nil {
			want = *pp.Protocol
		}
		if want != proto {
			continue
		}
		// "If this field is not provided, this matches all port names and numbers."
		if pp.Port == nil {
			return true
		}
		if pp.Port.Type == intstr.Int {
			lo := pp.Port.IntVal
			hi := lo
			if pp.EndPort != nil {
				hi = *pp.EndPort
			}
			if lo <= f.Port && f.Port <= hi {
				return true
			}
			continue
		}
		// A named port is resolved on the destination pod, for ingress and egress alike.
		if f.Dst.Kind != evaluator.Pod {
			continue
		}
		for _, cp := range f.Dst.Ports {
			if cp.Name == pp.Port.StrVal && refProtocol(cp.Protocol) == proto && cp.Port == f.Port {
				return true
			}
		}
	}
	return false
}

func refProtocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// refSelectorMatches implements label selector semantics: every matchLabels pair and every
// matchExpressions requirement must hold; an empty selector matches everything.
func refSelectorMatches(sel *metav1.LabelSelector, labels map[string]string) bool {
	return refSelectorMatchesFunc(sel, func(k string) (string, bool) {
		v, ok := labels[k]
		return v, ok
	})
}

func refSelectorMatchesFunc(sel *metav1.LabelSelector, label func(string) (string, bool)) bool {
	for k, v := range sel.MatchLabels {
		if lv, ok := label(k); !ok || lv != v {
			return false
		}
	}
	for _, req := range sel.MatchExpressions {
		lv, ok := label(req.Key)
		switch req.Operator {
		case metav1.LabelSelectorOpIn:
			if !ok || !slices.Contains(req.Values, lv) {
				return false
			}
		case metav1.LabelSelectorOpNotIn:
			// NotIn also matches when the label is absent.
			if ok && slices.Contains(req.Values, lv) {
				return false
			}
		case metav1.LabelSelectorOpExists:
			if !ok {
				return false
			}
		case metav1.LabelSelectorOpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}
