package evaluator_test

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// The naive reference for cluster policies, written from the doc comments of
// sigs.k8s.io/network-policy-api v0.3.0 apis/v1beta1: for each direction, the Admin tier's
// policies that select the pod by priority and rule order (Accept and Deny final, Pass on to
// the next tier), then NetworkPolicy for a pod it isolates, then the Baseline tier, then
// allow. It reads the API spec with plain loops and its own selector matching.
//
// Choices the API leaves to implementations, made as the evaluator makes them: domainNames
// never match a pod, and where only a domainNames Accept rule could decide a flow the answer
// is "uncertain"; a pod's own node reaches it in every tier.
//
// A host-network pod is its node here (an Endpoint of kind Node), as the cluster package
// resolves its address: "host-networked pods are not included in subject selection", nor in
// pods and namespaces peers; a nodes peer, which "selects the nodeIPs ... present in the
// node.Status.Addresses field of the node", matches it through its node's labels.

const (
	refAllow     = "allow"
	refDeny      = "deny"
	refUncertain = "uncertain"
)

// refTiered decides the flow: for a workload of several pods, every pair of pods; a pair
// needs both its egress and its ingress side.
func refTiered(nps []*networkingv1.NetworkPolicy, cnps []*evaluator.ClusterPolicy, w *evaluator.World, f evaluator.Flow) string {
	out := refAllow
	for _, g := range refPodFlows(f) {
		out = refBoth(out, refBoth(refTierSide(nps, cnps, w, g, evaluator.Egress), refTierSide(nps, cnps, w, g, evaluator.Ingress)))
	}
	return out
}

func refBoth(a, b string) string {
	switch {
	case a == refDeny || b == refDeny:
		return refDeny
	case a == refUncertain || b == refUncertain:
		return refUncertain
	}
	return refAllow
}

// refTieredDiff returns the flows cut (allowed → denied for some pair of pods) and, of the
// others, those uncertain (allowed → uncertain or uncertain → denied for some pair).
func refTieredDiff(bnp []*networkingv1.NetworkPolicy, bcnp []*evaluator.ClusterPolicy, anp []*networkingv1.NetworkPolicy, acnp []*evaluator.ClusterPolicy, w *evaluator.World, flows []evaluator.Flow) (cut, uncertain []int) {
	for i, f := range flows {
		isCut, isUnc := false, false
		for _, g := range refPodFlows(f) {
			b, a := refTiered(bnp, bcnp, w, g), refTiered(anp, acnp, w, g)
			isCut = isCut || (b == refAllow && a == refDeny)
			isUnc = isUnc || (b == refAllow && a == refUncertain) || (b == refUncertain && a == refDeny)
		}
		switch {
		case isCut:
			cut = append(cut, i)
		case isUnc:
			uncertain = append(uncertain, i)
		}
	}
	return cut, uncertain
}

func refTierSide(nps []*networkingv1.NetworkPolicy, cnps []*evaluator.ClusterPolicy, w *evaluator.World, f evaluator.Flow, dir evaluator.Direction) string {
	pod, peer := f.Dst, f.Src
	if dir == evaluator.Egress {
		pod, peer = f.Src, f.Dst
	}
	if pod.Kind != evaluator.Pod {
		return refAllow
	}
	maybe := false
	walk := func(tier v1beta1.Tier) v1beta1.ClusterNetworkPolicyRuleAction {
		var sel []*evaluator.ClusterPolicy
		for _, p := range cnps {
			if p.Spec.Tier == tier && refSubjectSelects(p, pod, w) {
				sel = append(sel, p)
			}
		}
		slices.SortFunc(sel, func(a, b *evaluator.ClusterPolicy) int {
			return cmp.Or(cmp.Compare(a.Spec.Priority, b.Spec.Priority), cmp.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
		})
		for _, p := range sel {
			if dir == evaluator.Ingress {
				for _, r := range p.Spec.Ingress {
					if !refProtocolsMatch(r.Protocols, f) {
						continue
					}
					for _, from := range r.From {
						if refClusterPeerMatches(v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: from.Namespaces, Pods: from.Pods}, peer, w) {
							return r.Action
						}
					}
				}
				continue
			}
			for _, r := range p.Spec.Egress {
				if !refProtocolsMatch(r.Protocols, f) {
					continue
				}
				for _, to := range r.To {
					if refClusterPeerMatches(to, peer, w) {
						return r.Action
					}
					if len(to.DomainNames) > 0 && peer.Kind != evaluator.Pod {
						maybe = true
					}
				}
			}
		}
		return ""
	}
	var out string
	switch walk(v1beta1.AdminTier) {
	case v1beta1.ClusterNetworkPolicyRuleActionAccept:
		out = refAllow
	case v1beta1.ClusterNetworkPolicyRuleActionDeny:
		out = refDeny
	default: // Pass, or no rule: the NetworkPolicy tier
		if s := refSideOf(nps, w, f, dir); s.isolated {
			out = refDeny
			if s.allowed {
				out = refAllow
			}
			break
		}
		out = refAllow
		if walk(v1beta1.BaselineTier) == v1beta1.ClusterNetworkPolicyRuleActionDeny {
			out = refDeny
		}
	}
	if out == refDeny && maybe {
		out = refUncertain
	}
	if out != refAllow && dir == evaluator.Ingress && refFromOwnNode(w, f) {
		out = refAllow
	}
	return out
}

func refNamespaceLabels(w *evaluator.World, ns string) map[string]string {
	l := map[string]string{}
	for k, v := range w.NamespaceLabels[ns] {
		l[k] = v
	}
	l[namespaceNameLabel] = ns
	return l
}

func refSubjectSelects(p *evaluator.ClusterPolicy, pod *evaluator.Endpoint, w *evaluator.World) bool {
	s := p.Spec.Subject
	nsl := refNamespaceLabels(w, pod.Namespace)
	if s.Namespaces != nil {
		return refSelectorMatches(s.Namespaces, nsl)
	}
	return refSelectorMatches(&s.Pods.NamespaceSelector, nsl) && refSelectorMatches(&s.Pods.PodSelector, pod.Labels)
}

func refClusterPeerMatches(p v1beta1.ClusterNetworkPolicyEgressPeer, ep *evaluator.Endpoint, w *evaluator.World) bool {
	switch {
	case p.Namespaces != nil:
		return ep.Kind == evaluator.Pod && refSelectorMatches(p.Namespaces, refNamespaceLabels(w, ep.Namespace))
	case p.Pods != nil:
		return ep.Kind == evaluator.Pod && refSelectorMatches(&p.Pods.NamespaceSelector, refNamespaceLabels(w, ep.Namespace)) &&
			refSelectorMatches(&p.Pods.PodSelector, ep.Labels)
	case p.Nodes != nil:
		for name, addrs := range w.NodeAddresses {
			is := ep.Kind == evaluator.Node && ep.NodeName == name
			for _, a := range addrs {
				is = is || (ep.IP.IsValid() && a.Unmap() == ep.IP.Unmap())
			}
			if is && refSelectorMatches(p.Nodes, w.NodeLabels[name]) {
				return true
			}
		}
		if ep.Kind == evaluator.Node && ep.NodeName != "" {
			if _, listed := w.NodeAddresses[ep.NodeName]; !listed {
				return refSelectorMatches(p.Nodes, w.NodeLabels[ep.NodeName])
			}
		}
	case len(p.Networks) > 0:
		for _, c := range p.Networks {
			if pfx, err := netip.ParsePrefix(string(c)); err == nil && ep.IP.IsValid() && pfx.Contains(ep.IP.Unmap()) {
				return true
			}
		}
	}
	return false
}

// refProtocolsMatch: "If unspecified, protocol-specific attributes will not be used to
// match traffic"; otherwise one entry must match the protocol and destination port, or
// name a container port of the destination pod.
func refProtocolsMatch(protos []v1beta1.ClusterNetworkPolicyProtocol, f evaluator.Flow) bool {
	if protos == nil {
		return true
	}
	proto := refProtocol(f.Protocol)
	for _, p := range protos {
		var want corev1.Protocol
		var port *v1beta1.Port
		switch {
		case p.TCP != nil:
			want, port = corev1.ProtocolTCP, p.TCP.DestinationPort
		case p.UDP != nil:
			want, port = corev1.ProtocolUDP, p.UDP.DestinationPort
		case p.SCTP != nil:
			want, port = corev1.ProtocolSCTP, p.SCTP.DestinationPort
		case p.DestinationNamedPort != "":
			if f.Dst.Kind != evaluator.Pod {
				continue
			}
			for _, cp := range f.Dst.Ports {
				if cp.Name == p.DestinationNamedPort && cp.Port == f.Port && refProtocol(cp.Protocol) == proto {
					return true
				}
			}
			continue
		}
		if want != proto || port == nil {
			continue
		}
		if port.Range != nil {
			if port.Range.Start <= f.Port && f.Port <= port.Range.End {
				return true
			}
		} else if port.Number == f.Port {
			return true
		}
	}
	return false
}
