package evaluator_test

// The network-policy-api conformance scenarios for ClusterNetworkPolicy, as data.
//
// Each case follows one test of kubernetes-sigs/network-policy-api conformance/tests
// (@0eec1b0, the v0.3.0 suite): its policies, the mutations its steps make (rules swapped,
// actions changed, priorities raised, a NetworkPolicy deleted, a namespace relabelled), and
// the verdict each probe expects after each step. The model is upstream's: namespaces
// network-policy-conformance-{gryffindor,slytherin,hufflepuff,ravenclaw} labelled
// conformance-house=<house>, each with a StatefulSet of two pods labelled the same way
// (harry-potter, draco-malfoy, cedric-diggory, luna-lovegood), serving TCP 80 (named "web")
// and 8080, UDP 53 (named "dns") and 5353, SCTP 9003 and 9005. Pod addresses are fixed here
// (10.244.<house>.<pod>). Names of cases and steps are upstream's.
//
// For the node-peer tests upstream adds namespace network-policy-conformance-forbidden-forrest
// with a StatefulSet of two host-network pods (centaur) serving the suite's eight host
// ports, 34345 to 34352 by default: TCP on the first two, UDP on the third and fifth, SCTP on
// the seventh and eighth. A host-network pod has its node's address and is no pod to the
// policies ("host-networked pods are not included in subject selection" nor in pods and
// namespaces peers), so each centaur is here its node as a peer, as cluster.Live resolves a
// host-network address. Two replicas with host ports need two nodes: centaur-0 runs on
// node-1, centaur-1 on node-2, both labelled kubernetes.io/os=linux, as the kubelet labels every Linux node.
// The house pods run on node-1.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

var cnpHouses = []struct{ house, pod string }{
	{"gryffindor", "harry-potter"}, {"slytherin", "draco-malfoy"}, {"hufflepuff", "cedric-diggory"}, {"ravenclaw", "luna-lovegood"},
}

func cnpNS(house string) string { return "network-policy-conformance-" + house }

// cnpModel builds the world with namespace labels overridden by relabel.
func cnpModel(relabel map[string]map[string]string) (*evaluator.World, map[string]*evaluator.Endpoint) {
	w := &evaluator.World{NamespaceLabels: map[string]map[string]string{}, NodeAddresses: map[string][]netip.Addr{}, NodeLabels: map[string]map[string]string{}}
	eps := map[string]*evaluator.Endpoint{}
	for i := range 2 {
		node, ip := fmt.Sprintf("node-%d", i+1), netip.AddrFrom4([4]byte{10, 0, 255, byte(i + 1)})
		w.NodeAddresses[node] = []netip.Addr{ip}
		w.NodeLabels[node] = map[string]string{"kubernetes.io/os": "linux", "kubernetes.io/hostname": node}
		eps[fmt.Sprintf("centaur-%d", i)] = &evaluator.Endpoint{Kind: evaluator.Node, Name: node, NodeName: node, IP: ip}
	}
	w.NamespaceLabels[cnpNS("forbidden-forrest")] = map[string]string{"conformance-house": "forbidden-forrest"}
	ports := []evaluator.ContainerPort{{Name: "web", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}
	for h, x := range cnpHouses {
		ns := cnpNS(x.house)
		w.NamespaceLabels[ns] = map[string]string{"conformance-house": x.house}
		if l, ok := relabel[ns]; ok {
			w.NamespaceLabels[ns] = l
		}
		for i := range 2 {
			name := fmt.Sprintf("%s-%d", x.pod, i)
			eps[name] = &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: ns, Name: name, Labels: map[string]string{"conformance-house": x.house},
				NodeName: "node-1", IP: netip.AddrFrom4([4]byte{10, 244, byte(h), byte(i + 1)}), Ports: ports}
		}
	}
	return w, eps
}

type cnpProbe struct {
	from, to string
	proto    corev1.Protocol
	port     int32
	allowed  bool
}

type cnpStep struct {
	name    string
	mutate  func(cnps map[string]*evaluator.ClusterPolicy, nps map[string]*networkingv1.NetworkPolicy)
	relabel map[string]map[string]string
	probes  []cnpProbe
}

type cnpCase struct {
	name  string
	cnps  []*evaluator.ClusterPolicy
	nps   []*networkingv1.NetworkPolicy
	steps []cnpStep
}

func houseSel(house string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"conformance-house": house}}
}

func houseNSName(house string) *metav1.LabelSelector { return nsNamed(cnpNS(house)) }

func housePods(house string) *v1beta1.NamespacedPod {
	return &v1beta1.NamespacedPod{NamespaceSelector: *houseSel(house), PodSelector: *houseSel(house)}
}

func cnpOf(name string, tier v1beta1.Tier, prio int32, subject v1beta1.ClusterNetworkPolicySubject, tweaks ...func(*evaluator.ClusterPolicy)) *evaluator.ClusterPolicy {
	p := &evaluator.ClusterPolicy{Kind: evaluator.ClusterNetworkPolicyKind, Name: name, Spec: v1beta1.ClusterNetworkPolicySpec{Tier: tier, Priority: prio, Subject: subject}}
	for _, t := range tweaks {
		t(p)
	}
	return p
}

func namedIn(name string, action v1beta1.ClusterNetworkPolicyRuleAction, protos []v1beta1.ClusterNetworkPolicyProtocol, from ...v1beta1.ClusterNetworkPolicyIngressPeer) func(*evaluator.ClusterPolicy) {
	return func(p *evaluator.ClusterPolicy) {
		p.Spec.Ingress = append(p.Spec.Ingress, v1beta1.ClusterNetworkPolicyIngressRule{Name: name, Action: action, From: from, Protocols: protos})
	}
}

func namedOut(name string, action v1beta1.ClusterNetworkPolicyRuleAction, protos []v1beta1.ClusterNetworkPolicyProtocol, to ...v1beta1.ClusterNetworkPolicyEgressPeer) func(*evaluator.ClusterPolicy) {
	return func(p *evaluator.ClusterPolicy) {
		p.Spec.Egress = append(p.Spec.Egress, v1beta1.ClusterNetworkPolicyEgressRule{Name: name, Action: action, To: to, Protocols: protos})
	}
}

func probe(from, to string, proto corev1.Protocol, port int32, allowed bool) cnpProbe {
	return cnpProbe{from, to, proto, port, allowed}
}

const (
	tcp  = corev1.ProtocolTCP
	udp  = corev1.ProtocolUDP
	sctp = corev1.ProtocolSCTP
)

// at lists destination ports, each under its protocol: at(tcp, 80, udp, 53).
func at(pairs ...any) []v1beta1.ClusterNetworkPolicyProtocol {
	var out []v1beta1.ClusterNetworkPolicyProtocol
	for i := 0; i+1 < len(pairs); i += 2 {
		port := &v1beta1.Port{Number: int32(pairs[i+1].(int))}
		switch pairs[i].(corev1.Protocol) {
		case udp:
			out = append(out, v1beta1.ClusterNetworkPolicyProtocol{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}})
		case sctp:
			out = append(out, v1beta1.ClusterNetworkPolicyProtocol{SCTP: &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}})
		default:
			out = append(out, v1beta1.ClusterNetworkPolicyProtocol{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}})
		}
	}
	return out
}

// houseRules is the rule list every per-protocol upstream policy has, in one direction and
// upstream's order: a house matched on everything (accept, deny, then pass: the order the
// steps reshuffle), a house denied and then passed on some ports (limited), and a house
// accepted on some ports and denied the rest (admitted). The Baseline tier has no Pass, so
// its list leaves the two pass rules out.
type houseRules struct {
	everything string
	limited    string
	limitedAt  []v1beta1.ClusterNetworkPolicyProtocol
	admitted   string
	admittedAt []v1beta1.ClusterNetworkPolicyProtocol
}

type houseRule struct {
	name   string
	action v1beta1.ClusterNetworkPolicyRuleAction
	house  string
	protos []v1beta1.ClusterNetworkPolicyProtocol
}

func (r houseRules) list(tier v1beta1.Tier, verb string) []houseRule {
	out := []houseRule{
		{"allow-" + verb + "-" + r.everything + "-everything", accept, r.everything, nil},
		{"deny-" + verb + "-" + r.everything + "-everything", deny, r.everything, nil},
		{"pass-" + verb + "-" + r.everything + "-everything", pass, r.everything, nil},
		{"deny-" + verb + "-" + r.limited + "-at-ports", deny, r.limited, r.limitedAt},
		{"pass-" + verb + "-" + r.limited + "-at-ports", pass, r.limited, r.limitedAt},
		{"allow-" + verb + "-" + r.admitted + "-at-ports", accept, r.admitted, r.admittedAt},
		{"deny-" + verb + "-" + r.admitted + "-everything-else", deny, r.admitted, nil},
	}
	if tier == v1beta1.BaselineTier {
		out = slices.DeleteFunc(out, func(h houseRule) bool { return h.action == pass })
	}
	return out
}

func (r houseRules) ingress(tier v1beta1.Tier) func(*evaluator.ClusterPolicy) {
	return func(p *evaluator.ClusterPolicy) {
		for _, h := range r.list(tier, "from") {
			namedIn(h.name, h.action, h.protos, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: houseNSName(h.house)})(p)
		}
	}
}

func (r houseRules) egress(tier v1beta1.Tier) func(*evaluator.ClusterPolicy) {
	return func(p *evaluator.ClusterPolicy) {
		for _, h := range r.list(tier, "to") {
			namedOut(h.name, h.action, h.protos, v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: houseNSName(h.house)})(p)
		}
	}
}

type cnpMutation = func(map[string]*evaluator.ClusterPolicy, map[string]*networkingv1.NetworkPolicy)

// swapRules swaps rules i and j of the named policy's ingress (in) and egress (out) lists,
// as upstream's steps patch them.
func swapRules(name string, in, out bool, i, j int) cnpMutation {
	return func(c map[string]*evaluator.ClusterPolicy, _ map[string]*networkingv1.NetworkPolicy) {
		if in {
			r := c[name].Spec.Ingress
			r[i], r[j] = r[j], r[i]
		}
		if out {
			r := c[name].Spec.Egress
			r[i], r[j] = r[j], r[i]
		}
	}
}

func cnpConformanceCases() []cnpCase {
	ingressTCP := cnpOf("ingress-tcp", v1beta1.AdminTier, 3, v1beta1.ClusterNetworkPolicySubject{Namespaces: houseNSName("gryffindor")},
		namedIn("allow-from-ravenclaw-everything", accept, nil, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: houseNSName("ravenclaw")}),
		namedIn("deny-from-ravenclaw-everything", deny, nil, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: houseNSName("ravenclaw")}),
		namedIn("pass-from-ravenclaw-everything", pass, nil, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: houseNSName("ravenclaw")}),
		namedIn("deny-from-slytherin-at-port-80", deny, tcpPort(80), v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: houseNSName("slytherin")}),
		namedIn("pass-from-slytherin-at-port-80", pass, tcpPort(80), v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: houseNSName("slytherin")}),
		namedIn("allow-from-hufflepuff-at-port-80", accept, tcpPort(80), v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: houseNSName("hufflepuff")}),
		namedIn("deny-from-hufflepuff-everything-else", deny, nil, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: houseNSName("hufflepuff")}),
	)
	swapIn := func(name string, i, j int) func(map[string]*evaluator.ClusterPolicy, map[string]*networkingv1.NetworkPolicy) {
		return func(c map[string]*evaluator.ClusterPolicy, _ map[string]*networkingv1.NetworkPolicy) {
			in := c[name].Spec.Ingress
			in[i], in[j] = in[j], in[i]
		}
	}

	passExample := cnpOf("pass-example", v1beta1.AdminTier, 10, v1beta1.ClusterNetworkPolicySubject{Namespaces: houseSel("gryffindor")},
		namedIn("deny-all-ingress-from-slytherin", deny, nil, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: houseSel("slytherin")}),
		namedOut("deny-all-egress-to-slytherin", deny, nil, v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: houseSel("slytherin")}))
	integrationNP := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: cnpNS("gryffindor"), Name: "allow-gress-from-to-slytherin-to-gryffindor"},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: houseSel("slytherin")}}}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: houseSel("slytherin")}}}},
		}}
	integrationBaseline := cnpOf("default", v1beta1.BaselineTier, 10, v1beta1.ClusterNetworkPolicySubject{Namespaces: houseSel("gryffindor")},
		namedIn("deny-all-ingress-from-slytherin", deny, nil, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: houseSel("slytherin")}),
		namedOut("deny-all-egress-to-slytherin", deny, nil, v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: houseSel("slytherin")}))

	gryffindorPods := v1beta1.ClusterNetworkPolicySubject{Pods: housePods("gryffindor")}
	prio50 := cnpOf("priority-50-example", v1beta1.AdminTier, 50, gryffindorPods,
		namedIn("deny-all-ingress-from-slytherin", deny, nil, v1beta1.ClusterNetworkPolicyIngressPeer{Pods: housePods("slytherin")}),
		namedOut("deny-all-egress-to-slytherin", deny, nil, v1beta1.ClusterNetworkPolicyEgressPeer{Pods: housePods("slytherin")}))
	prio60 := cnpOf("old-priority-60-new-priority-40-example", v1beta1.AdminTier, 60, gryffindorPods,
		namedIn("pass-all-ingress-from-slytherin", pass, nil, v1beta1.ClusterNetworkPolicyIngressPeer{Pods: housePods("slytherin")}),
		namedOut("pass-all-egress-to-slytherin", pass, nil, v1beta1.ClusterNetworkPolicyEgressPeer{Pods: housePods("slytherin")}))
	prioBaseline := cnpOf("default", v1beta1.BaselineTier, 10, gryffindorPods,
		namedIn("allow-all-ingress-from-slytherin", accept, nil, v1beta1.ClusterNetworkPolicyIngressPeer{Pods: housePods("slytherin")}),
		namedOut("allow-all-egress-to-slytherin", accept, nil, v1beta1.ClusterNetworkPolicyEgressPeer{Pods: housePods("slytherin")}))

	inlineCIDR := cnpOf("inline-cidr-as-peers-example", v1beta1.AdminTier, 85, gryffindorPods,
		namedOut("allow-egress-to-slytherin", accept, nil, v1beta1.ClusterNetworkPolicyEgressPeer{Pods: housePods("slytherin")}),
		namedOut("deny-egress-to-internet", deny, nil, toNets("0.0.0.0/0", "::/0")))
	baselineInlineCIDR := cnpOf("default", v1beta1.BaselineTier, 10, v1beta1.ClusterNetworkPolicySubject{Namespaces: houseNSName("gryffindor")},
		namedOut("allow-egress-to-slytherin", accept, nil, v1beta1.ClusterNetworkPolicyEgressPeer{Pods: housePods("slytherin")}),
		namedOut("deny-egress-to-internet", deny, nil, toNets("0.0.0.0/0", "::/0")))
	allowPodIPs := func(name string) cnpMutation {
		return func(c map[string]*evaluator.ClusterPolicy, _ map[string]*networkingv1.NetworkPolicy) {
			p := c[name]
			p.Spec.Egress = append([]v1beta1.ClusterNetworkPolicyEgressRule{{Name: "allow-egress-to-specific-podIPs", Action: accept,
				To: []v1beta1.ClusterNetworkPolicyEgressPeer{toNets("10.244.3.1/32", "10.244.2.1/32")}}}, p.Spec.Egress...)
		}
	}
	allProtos := func(from, to string, allowed bool) []cnpProbe {
		return []cnpProbe{probe(from, to, tcp, 80, allowed), probe(from, to, udp, 53, allowed), probe(from, to, sctp, 9003, allowed)}
	}
	concat := func(ps ...[]cnpProbe) []cnpProbe {
		var out []cnpProbe
		for _, p := range ps {
			out = append(out, p...)
		}
		return out
	}

	return []cnpCase{
		{name: "CNPAdminTierIngressTCP", cnps: []*evaluator.ClusterPolicy{ingressTCP}, steps: []cnpStep{
			{name: "Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected", probes: []cnpProbe{
				probe("luna-lovegood-0", "harry-potter-0", tcp, 80, true), probe("luna-lovegood-1", "harry-potter-0", tcp, 8080, true)}},
			{name: "Should support an 'allow-ingress' policy for TCP protocol at the specified port", probes: []cnpProbe{
				probe("cedric-diggory-0", "harry-potter-1", tcp, 80, true), probe("cedric-diggory-1", "harry-potter-1", tcp, 8080, false)}},
			{name: "Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected", mutate: swapIn("ingress-tcp", 0, 1), probes: []cnpProbe{
				probe("luna-lovegood-0", "harry-potter-1", tcp, 80, false), probe("luna-lovegood-1", "harry-potter-1", tcp, 8080, false)}},
			{name: "Should support a 'deny-ingress' policy for TCP protocol at the specified port", probes: []cnpProbe{
				probe("draco-malfoy-0", "harry-potter-0", tcp, 80, false), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, true)}},
			{name: "Should support an 'pass-ingress' policy for TCP protocol; ensure rule ordering is respected", mutate: swapIn("ingress-tcp", 0, 2), probes: []cnpProbe{
				probe("luna-lovegood-0", "harry-potter-0", tcp, 80, true), probe("luna-lovegood-1", "harry-potter-0", tcp, 8080, true)}},
			{name: "Should support a 'pass-ingress' policy for TCP protocol at the specified port", mutate: swapIn("ingress-tcp", 3, 4), probes: []cnpProbe{
				probe("draco-malfoy-0", "harry-potter-0", tcp, 80, true), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, true)}},
		}},
		{name: "CNPAdminTierIntegration", cnps: []*evaluator.ClusterPolicy{passExample, integrationBaseline}, nps: []*networkingv1.NetworkPolicy{integrationNP}, steps: []cnpStep{
			{name: "Should Deny traffic from slytherin to gryffindor respecting admin CNP", probes: []cnpProbe{
				probe("draco-malfoy-0", "harry-potter-0", tcp, 80, false), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, false)}},
			{name: "Should Deny traffic to slytherin from gryffindor respecting admin CNP", probes: []cnpProbe{
				probe("harry-potter-0", "draco-malfoy-0", tcp, 80, false), probe("harry-potter-1", "draco-malfoy-0", tcp, 8080, false)}},
			{name: "Should support a 'pass-ingress' policy for admin CNP and respect the match for network policy",
				mutate: func(c map[string]*evaluator.ClusterPolicy, _ map[string]*networkingv1.NetworkPolicy) {
					c["pass-example"].Spec.Ingress[0].Action = pass
				}, probes: []cnpProbe{probe("draco-malfoy-0", "harry-potter-0", tcp, 80, true), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, true)}},
			{name: "Should support a 'pass-egress' policy for admin CNP and respect the match for network policy",
				mutate: func(c map[string]*evaluator.ClusterPolicy, _ map[string]*networkingv1.NetworkPolicy) {
					c["pass-example"].Spec.Egress[0].Action = pass
				}, probes: []cnpProbe{probe("harry-potter-0", "draco-malfoy-0", tcp, 80, true), probe("harry-potter-1", "draco-malfoy-0", tcp, 8080, true)}},
			{name: "Should support a 'pass-ingress' policy for admin CNP and respect the match for baseline cluster network policy",
				mutate: func(_ map[string]*evaluator.ClusterPolicy, n map[string]*networkingv1.NetworkPolicy) {
					delete(n, "allow-gress-from-to-slytherin-to-gryffindor")
				}, probes: []cnpProbe{probe("draco-malfoy-0", "harry-potter-0", tcp, 80, false), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, false)}},
			{name: "Should support a 'pass-egress' policy for admin CNP and respect the match for baseline cluster network policy", probes: []cnpProbe{
				probe("harry-potter-0", "draco-malfoy-0", tcp, 80, false), probe("harry-potter-1", "draco-malfoy-0", tcp, 8080, false)}},
		}},
		{name: "CNPAdminTierPriorityField", cnps: []*evaluator.ClusterPolicy{prio50, prio60, prioBaseline}, steps: []cnpStep{
			{name: "Should Deny traffic from slytherin to gryffindor respecting admin CNP", probes: []cnpProbe{
				probe("draco-malfoy-0", "harry-potter-0", tcp, 80, false), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, false)}},
			{name: "Should Deny traffic to slytherin from gryffindor respecting admin CNP", probes: []cnpProbe{
				probe("harry-potter-0", "draco-malfoy-0", tcp, 80, false), probe("harry-potter-1", "draco-malfoy-0", tcp, 8080, false)}},
			{name: "Should respect admin CNP priority field; thus passing both ingress and egress traffic over to baseline CNP",
				mutate: func(c map[string]*evaluator.ClusterPolicy, _ map[string]*networkingv1.NetworkPolicy) {
					c["old-priority-60-new-priority-40-example"].Spec.Priority = 40
				}, probes: []cnpProbe{
					probe("draco-malfoy-0", "harry-potter-0", tcp, 80, true), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, true),
					probe("harry-potter-0", "draco-malfoy-0", tcp, 80, true), probe("harry-potter-1", "draco-malfoy-0", tcp, 8080, true)}},
		}},
		{name: "CNPAdminTierEgressInlineCIDRPeers", cnps: []*evaluator.ClusterPolicy{inlineCIDR}, steps: []cnpStep{
			{name: "Should support a 'deny-egress' rule policy for egress-cidr-peer", probes: concat(
				allProtos("harry-potter-1", "luna-lovegood-0", false), allProtos("harry-potter-1", "cedric-diggory-0", false), allProtos("harry-potter-1", "draco-malfoy-0", true))},
			{name: "... after slytherin is relabelled conformance-house=denied-namespace-label",
				relabel: map[string]map[string]string{cnpNS("slytherin"): {"conformance-house": "denied-namespace-label"}},
				probes:  allProtos("harry-potter-1", "draco-malfoy-0", false)},
			{name: "... after slytherin is relabelled back", probes: allProtos("harry-potter-1", "draco-malfoy-0", true)},
			{name: "Should support an 'allow-egress' rule policy for egress-cidr-peer", mutate: allowPodIPs("inline-cidr-as-peers-example"), probes: concat(
				allProtos("harry-potter-1", "luna-lovegood-0", true), allProtos("harry-potter-1", "cedric-diggory-0", true),
				allProtos("harry-potter-1", "luna-lovegood-1", false), allProtos("harry-potter-1", "cedric-diggory-1", false))},
		}},
		// The Baseline tier's test probes as the Admin tier's does; its policy selects
		// gryffindor by namespace name rather than by pods.
		{name: "CNPBaselineTierEgressInlineCIDRPeers", cnps: []*evaluator.ClusterPolicy{baselineInlineCIDR}, steps: []cnpStep{
			{name: "Should support a 'deny-egress' rule policy for egress-cidr-peer", probes: concat(
				allProtos("harry-potter-1", "luna-lovegood-0", false), allProtos("harry-potter-1", "cedric-diggory-0", false), allProtos("harry-potter-1", "draco-malfoy-0", true))},
			{name: "... after slytherin is relabelled conformance-house=denied-namespace-label",
				relabel: map[string]map[string]string{cnpNS("slytherin"): {"conformance-house": "denied-namespace-label"}},
				probes:  allProtos("harry-potter-1", "draco-malfoy-0", false)},
			{name: "... after slytherin is relabelled back", probes: allProtos("harry-potter-1", "draco-malfoy-0", true)},
			{name: "Should support an 'allow-egress' rule policy for egress-cidr-peer", mutate: allowPodIPs("default"), probes: concat(
				allProtos("harry-potter-1", "luna-lovegood-0", true), allProtos("harry-potter-1", "cedric-diggory-0", true),
				allProtos("harry-potter-1", "luna-lovegood-1", false), allProtos("harry-potter-1", "cedric-diggory-1", false))},
		}},
	}
}

// cnpProtocolScenario is one of upstream's per-protocol tests: a policy in one direction
// built from houseRules, and six steps each probing two connections: accept by rule order,
// accept on a port (and deny off it), deny by rule order once rules 0 and 1 are swapped,
// deny on a port, pass by rule order once rules 0 and 2 are swapped, pass on a port once
// rules 3 and 4 are swapped. The Baseline tier's test of the same name runs the first four
// steps, probing the same pods, against its policy "default" (priority 10) with no pass
// rules.
type cnpProtocolScenario struct {
	direction     string // "ingress" or "egress"
	proto         string // "TCP", "UDP", "SCTP"
	subject       string // the house the policy selects
	adminPriority int32
	rules         houseRules
	probes        [6][]cnpProbe
}

func (s cnpProtocolScenario) policy(tier v1beta1.Tier) *evaluator.ClusterPolicy {
	name, prio := s.direction+"-"+strings.ToLower(s.proto), s.adminPriority
	if tier == v1beta1.BaselineTier {
		name, prio = "default", 10
	}
	rules := s.rules.egress(tier)
	if s.direction == "ingress" {
		rules = s.rules.ingress(tier)
	}
	return cnpOf(name, tier, prio, v1beta1.ClusterNetworkPolicySubject{Namespaces: houseNSName(s.subject)}, rules)
}

func (s cnpProtocolScenario) testCase(tier v1beta1.Tier) cnpCase {
	p := s.policy(tier)
	in, out := s.direction == "ingress", s.direction == "egress"
	verb := func(action string) string {
		return fmt.Sprintf("'%s-%s' policy for %s protocol", action, s.direction, s.proto)
	}
	steps := []cnpStep{
		{name: "Should support an " + verb("allow") + "; ensure rule ordering is respected", probes: s.probes[0]},
		{name: "Should support an " + verb("allow") + " at the specified port", probes: s.probes[1]},
		{name: "Should support an " + verb("deny") + "; ensure rule ordering is respected", mutate: swapRules(p.Name, in, out, 0, 1), probes: s.probes[2]},
		{name: "Should support a " + verb("deny") + " at the specified port", probes: s.probes[3]},
		{name: "Should support an " + verb("pass") + "; ensure rule ordering is respected", mutate: swapRules(p.Name, in, out, 0, 2), probes: s.probes[4]},
		{name: "Should support a " + verb("pass") + " at the specified port", mutate: swapRules(p.Name, in, out, 3, 4), probes: s.probes[5]},
	}
	tierName := "Admin"
	if tier == v1beta1.BaselineTier {
		tierName, steps = "Baseline", steps[:4]
	}
	d := strings.ToUpper(s.direction[:1]) + s.direction[1:]
	return cnpCase{name: "CNP" + tierName + "Tier" + d + s.proto, cnps: []*evaluator.ClusterPolicy{p}, steps: steps}
}

func pair(a, b cnpProbe) []cnpProbe { return []cnpProbe{a, b} }

// Upstream's per-protocol tests. The Admin tier's IngressTCP is also written out above;
// cnpIngressTCP serves the Baseline tier's.
var (
	cnpIngressTCP = cnpProtocolScenario{direction: "ingress", proto: "TCP", subject: "gryffindor", adminPriority: 3,
		rules: houseRules{everything: "ravenclaw", limited: "slytherin", limitedAt: at(tcp, 80), admitted: "hufflepuff", admittedAt: at(tcp, 80)},
		probes: [6][]cnpProbe{
			pair(probe("luna-lovegood-0", "harry-potter-0", tcp, 80, true), probe("luna-lovegood-1", "harry-potter-0", tcp, 8080, true)),
			pair(probe("cedric-diggory-0", "harry-potter-1", tcp, 80, true), probe("cedric-diggory-1", "harry-potter-1", tcp, 8080, false)),
			pair(probe("luna-lovegood-0", "harry-potter-1", tcp, 80, false), probe("luna-lovegood-1", "harry-potter-1", tcp, 8080, false)),
			pair(probe("draco-malfoy-0", "harry-potter-0", tcp, 80, false), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, true)),
			pair(probe("luna-lovegood-0", "harry-potter-0", tcp, 80, true), probe("luna-lovegood-1", "harry-potter-0", tcp, 8080, true)),
			pair(probe("draco-malfoy-0", "harry-potter-0", tcp, 80, true), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, true)),
		}}
	cnpIngressUDP = cnpProtocolScenario{direction: "ingress", proto: "UDP", subject: "hufflepuff", adminPriority: 4,
		rules: houseRules{everything: "ravenclaw", limited: "slytherin", limitedAt: at(udp, 5353), admitted: "gryffindor", admittedAt: at(udp, 53)},
		probes: [6][]cnpProbe{
			pair(probe("luna-lovegood-0", "cedric-diggory-0", udp, 53, true), probe("luna-lovegood-1", "cedric-diggory-0", udp, 5353, true)),
			pair(probe("harry-potter-0", "cedric-diggory-1", udp, 53, true), probe("harry-potter-1", "cedric-diggory-1", udp, 5353, false)),
			pair(probe("luna-lovegood-0", "cedric-diggory-1", udp, 53, false), probe("luna-lovegood-1", "cedric-diggory-1", udp, 5353, false)),
			pair(probe("draco-malfoy-0", "cedric-diggory-0", udp, 5353, false), probe("draco-malfoy-1", "cedric-diggory-0", udp, 53, true)),
			pair(probe("luna-lovegood-0", "cedric-diggory-1", udp, 5353, true), probe("luna-lovegood-1", "cedric-diggory-1", udp, 53, true)),
			pair(probe("draco-malfoy-0", "cedric-diggory-0", udp, 5353, true), probe("draco-malfoy-1", "cedric-diggory-0", udp, 53, true)),
		}}
	cnpIngressSCTP = cnpProtocolScenario{direction: "ingress", proto: "SCTP", subject: "ravenclaw", adminPriority: 5,
		rules: houseRules{everything: "gryffindor", limited: "slytherin", limitedAt: at(sctp, 9003), admitted: "hufflepuff", admittedAt: at(sctp, 9003)},
		probes: [6][]cnpProbe{
			pair(probe("harry-potter-0", "luna-lovegood-0", sctp, 9003, true), probe("harry-potter-1", "luna-lovegood-0", sctp, 9005, true)),
			pair(probe("cedric-diggory-0", "luna-lovegood-1", sctp, 9003, true), probe("cedric-diggory-1", "luna-lovegood-1", sctp, 9005, false)),
			pair(probe("harry-potter-0", "luna-lovegood-1", sctp, 9003, false), probe("harry-potter-1", "luna-lovegood-1", sctp, 9005, false)),
			pair(probe("draco-malfoy-0", "luna-lovegood-0", sctp, 9003, false), probe("draco-malfoy-1", "luna-lovegood-0", sctp, 9005, true)),
			pair(probe("harry-potter-0", "luna-lovegood-1", sctp, 9003, true), probe("harry-potter-1", "luna-lovegood-1", sctp, 9005, true)),
			pair(probe("draco-malfoy-0", "luna-lovegood-0", sctp, 9003, true), probe("draco-malfoy-1", "luna-lovegood-0", sctp, 9005, true)),
		}}
	cnpEgressTCP = cnpProtocolScenario{direction: "egress", proto: "TCP", subject: "gryffindor", adminPriority: 6,
		rules: houseRules{everything: "ravenclaw", limited: "slytherin", limitedAt: at(tcp, 80), admitted: "hufflepuff", admittedAt: at(tcp, 8080)},
		probes: [6][]cnpProbe{
			pair(probe("harry-potter-0", "luna-lovegood-0", tcp, 80, true), probe("harry-potter-1", "luna-lovegood-0", tcp, 8080, true)),
			pair(probe("harry-potter-0", "cedric-diggory-1", tcp, 8080, true), probe("harry-potter-1", "cedric-diggory-1", tcp, 80, false)),
			pair(probe("harry-potter-0", "luna-lovegood-1", tcp, 80, false), probe("harry-potter-1", "luna-lovegood-1", tcp, 8080, false)),
			pair(probe("harry-potter-0", "draco-malfoy-0", tcp, 80, false), probe("harry-potter-1", "draco-malfoy-0", tcp, 8080, true)),
			pair(probe("harry-potter-0", "luna-lovegood-0", tcp, 80, true), probe("harry-potter-1", "luna-lovegood-0", tcp, 8080, true)),
			pair(probe("harry-potter-0", "draco-malfoy-0", tcp, 80, true), probe("harry-potter-1", "draco-malfoy-0", tcp, 8080, true)),
		}}
	cnpEgressUDP = cnpProtocolScenario{direction: "egress", proto: "UDP", subject: "hufflepuff", adminPriority: 7,
		rules: houseRules{everything: "ravenclaw", limited: "slytherin", limitedAt: at(udp, 5353), admitted: "gryffindor", admittedAt: at(udp, 53)},
		probes: [6][]cnpProbe{
			pair(probe("cedric-diggory-0", "luna-lovegood-0", udp, 53, true), probe("cedric-diggory-1", "luna-lovegood-0", udp, 5353, true)),
			pair(probe("cedric-diggory-0", "harry-potter-1", udp, 53, true), probe("cedric-diggory-1", "harry-potter-1", udp, 5353, false)),
			pair(probe("cedric-diggory-0", "luna-lovegood-1", udp, 53, false), probe("cedric-diggory-1", "luna-lovegood-1", udp, 5353, false)),
			pair(probe("cedric-diggory-0", "draco-malfoy-0", udp, 5353, false), probe("cedric-diggory-1", "draco-malfoy-0", udp, 53, true)),
			pair(probe("cedric-diggory-0", "luna-lovegood-1", udp, 5353, true), probe("cedric-diggory-1", "luna-lovegood-1", udp, 53, true)),
			pair(probe("cedric-diggory-0", "draco-malfoy-0", udp, 5353, true), probe("cedric-diggory-1", "draco-malfoy-0", udp, 53, true)),
		}}
	cnpEgressSCTP = cnpProtocolScenario{direction: "egress", proto: "SCTP", subject: "ravenclaw", adminPriority: 8,
		rules: houseRules{everything: "gryffindor", limited: "slytherin", limitedAt: at(sctp, 9003), admitted: "hufflepuff", admittedAt: at(sctp, 9003)},
		probes: [6][]cnpProbe{
			pair(probe("luna-lovegood-0", "harry-potter-0", sctp, 9003, true), probe("luna-lovegood-1", "harry-potter-0", sctp, 9005, true)),
			pair(probe("luna-lovegood-0", "cedric-diggory-1", sctp, 9003, true), probe("luna-lovegood-1", "cedric-diggory-1", sctp, 9005, false)),
			pair(probe("luna-lovegood-0", "harry-potter-1", sctp, 9003, false), probe("luna-lovegood-1", "harry-potter-1", sctp, 9005, false)),
			pair(probe("luna-lovegood-0", "draco-malfoy-0", sctp, 9003, false), probe("luna-lovegood-1", "draco-malfoy-0", sctp, 9005, true)),
			pair(probe("luna-lovegood-0", "harry-potter-1", sctp, 9003, true), probe("luna-lovegood-1", "harry-potter-1", sctp, 9005, true)),
			pair(probe("luna-lovegood-0", "draco-malfoy-0", sctp, 9003, true), probe("luna-lovegood-1", "draco-malfoy-0", sctp, 9005, true)),
		}}
)

// cnpGressCase is upstream's Gress test of a tier: one policy on gryffindor with the
// houseRules list in both directions, each rule over TCP, UDP and SCTP ports at once, and
// the per-protocol tests' six steps (four for the Baseline tier), each swap made in both
// lists, probing both directions.
func cnpGressCase(tier v1beta1.Tier) cnpCase {
	name, prio, tierName := "gress-rules", int32(15), "Admin"
	if tier == v1beta1.BaselineTier {
		name, prio, tierName = "default", 10, "Baseline"
	}
	out := houseRules{everything: "ravenclaw", limited: "slytherin", limitedAt: at(tcp, 80, udp, 53, sctp, 9003),
		admitted: "hufflepuff", admittedAt: at(tcp, 8080, udp, 5353, sctp, 9003)}
	in := houseRules{everything: "ravenclaw", limited: "slytherin", limitedAt: at(tcp, 80, udp, 53, sctp, 9003),
		admitted: "hufflepuff", admittedAt: at(tcp, 80, udp, 5353, sctp, 9003)}
	p := cnpOf(name, tier, prio, v1beta1.ClusterNetworkPolicySubject{Namespaces: houseNSName("gryffindor")}, out.egress(tier), in.ingress(tier))
	steps := []cnpStep{
		{name: "Should support an 'allow-gress' policy across different protocols", probes: []cnpProbe{
			probe("harry-potter-0", "luna-lovegood-0", tcp, 80, true), probe("harry-potter-1", "luna-lovegood-0", udp, 53, true),
			probe("harry-potter-0", "luna-lovegood-0", sctp, 9003, true),
			probe("luna-lovegood-0", "harry-potter-0", tcp, 80, true), probe("luna-lovegood-1", "harry-potter-0", udp, 53, true),
			probe("luna-lovegood-1", "harry-potter-0", sctp, 9003, true)}},
		{name: "Should support an 'allow-gress' policy across different protocols at the specified ports", probes: []cnpProbe{
			probe("harry-potter-0", "cedric-diggory-1", tcp, 8080, true), probe("harry-potter-1", "cedric-diggory-1", tcp, 80, false),
			probe("harry-potter-0", "cedric-diggory-1", udp, 5353, true), probe("harry-potter-1", "cedric-diggory-1", udp, 53, false),
			probe("harry-potter-0", "cedric-diggory-1", sctp, 9003, true), probe("harry-potter-1", "cedric-diggory-1", sctp, 9005, false),
			probe("cedric-diggory-0", "harry-potter-1", tcp, 80, true), probe("cedric-diggory-1", "harry-potter-1", tcp, 8080, false),
			probe("cedric-diggory-0", "harry-potter-1", udp, 5353, true), probe("cedric-diggory-1", "harry-potter-1", udp, 53, false),
			probe("cedric-diggory-0", "harry-potter-1", sctp, 9003, true), probe("cedric-diggory-1", "harry-potter-1", sctp, 9005, false)}},
		{name: "Should support an 'deny-gress' policy across different protocols", mutate: swapRules(name, true, true, 0, 1), probes: []cnpProbe{
			probe("harry-potter-0", "luna-lovegood-1", tcp, 80, false), probe("harry-potter-1", "luna-lovegood-1", udp, 53, false),
			probe("harry-potter-0", "luna-lovegood-1", sctp, 9003, false),
			probe("luna-lovegood-0", "harry-potter-1", tcp, 80, false), probe("luna-lovegood-1", "harry-potter-1", udp, 53, false),
			probe("luna-lovegood-1", "harry-potter-1", sctp, 9003, false)}},
		{name: "Should support a 'deny-gress' policy across different protocols at the specified ports", probes: []cnpProbe{
			probe("harry-potter-0", "draco-malfoy-0", tcp, 80, false), probe("harry-potter-1", "draco-malfoy-0", tcp, 8080, true),
			probe("harry-potter-0", "draco-malfoy-0", udp, 53, false), probe("harry-potter-1", "draco-malfoy-0", udp, 5353, true),
			probe("harry-potter-0", "draco-malfoy-0", sctp, 9003, false), probe("harry-potter-1", "draco-malfoy-0", sctp, 9005, true),
			probe("draco-malfoy-0", "harry-potter-0", tcp, 80, false), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, true),
			probe("draco-malfoy-0", "harry-potter-0", udp, 53, false), probe("draco-malfoy-1", "harry-potter-0", udp, 5353, true),
			probe("draco-malfoy-0", "harry-potter-0", sctp, 9003, false), probe("draco-malfoy-1", "harry-potter-0", sctp, 9005, true)}},
		{name: "Should support an 'pass-gress' policy across different protocols", mutate: swapRules(name, true, true, 0, 2), probes: []cnpProbe{
			probe("harry-potter-0", "luna-lovegood-0", tcp, 80, true), probe("harry-potter-0", "luna-lovegood-0", udp, 5353, true),
			probe("harry-potter-0", "luna-lovegood-0", sctp, 9003, true),
			probe("luna-lovegood-0", "harry-potter-0", tcp, 80, true), probe("luna-lovegood-1", "harry-potter-0", udp, 53, true),
			probe("luna-lovegood-1", "harry-potter-0", sctp, 9003, true)}},
		{name: "Should support a 'pass-gress' policy across different protocols at the specified ports", mutate: swapRules(name, true, true, 3, 4), probes: []cnpProbe{
			probe("harry-potter-0", "draco-malfoy-0", tcp, 80, true), probe("harry-potter-1", "draco-malfoy-0", tcp, 8080, true),
			probe("harry-potter-0", "draco-malfoy-0", udp, 53, true), probe("harry-potter-1", "draco-malfoy-0", udp, 5353, true),
			probe("harry-potter-0", "draco-malfoy-0", sctp, 9003, true), probe("harry-potter-1", "draco-malfoy-0", sctp, 9005, true),
			probe("draco-malfoy-0", "harry-potter-0", tcp, 80, true), probe("draco-malfoy-1", "harry-potter-0", tcp, 8080, true),
			probe("draco-malfoy-0", "harry-potter-0", udp, 53, true), probe("draco-malfoy-1", "harry-potter-0", udp, 5353, true),
			probe("draco-malfoy-0", "harry-potter-0", sctp, 9003, true), probe("draco-malfoy-1", "harry-potter-0", sctp, 9005, true)}},
	}
	if tier == v1beta1.BaselineTier {
		steps = steps[:4]
	}
	return cnpCase{name: "CNP" + tierName + "TierGress", cnps: []*evaluator.ClusterPolicy{p}, steps: steps}
}

// namedPortCase is one of upstream's NamedPort tests: a per-protocol policy of the tier
// whose accept-on-ports rule is narrowed to a named container port, probed once.
func (s cnpProtocolScenario) namedPortCase(tier v1beta1.Tier, port string, probes ...cnpProbe) cnpCase {
	c := s.testCase(tier)
	name := c.cnps[0].Name
	c.name = strings.TrimSuffix(c.name, s.proto) + "NamedPort"
	c.steps = []cnpStep{{name: fmt.Sprintf("Should support an 'allow-%s' policy for named port", s.direction), probes: probes,
		mutate: func(cnps map[string]*evaluator.ClusterPolicy, _ map[string]*networkingv1.NetworkPolicy) {
			spec, rule := &cnps[name].Spec, "allow-"+map[string]string{"ingress": "from", "egress": "to"}[s.direction]+"-"+s.rules.admitted+"-at-ports"
			found := false
			for i := range spec.Ingress {
				if spec.Ingress[i].Name == rule {
					spec.Ingress[i].Protocols, found = namedPort(port), true
				}
			}
			for i := range spec.Egress {
				if spec.Egress[i].Name == rule {
					spec.Egress[i].Protocols, found = namedPort(port), true
				}
			}
			if !found {
				panic("no rule " + rule + " in " + name)
			}
		}}}
	return c
}

// hostPort is upstream's HostNetworkPorts[i]: the suite's default range starts at 34345.
func hostPort(i int) int32 { return 34345 + int32(i) }

// linuxNodes is the nodes peer of upstream's node-peer policies.
func linuxNodes() v1beta1.ClusterNetworkPolicyEgressPeer {
	return v1beta1.ClusterNetworkPolicyEgressPeer{Nodes: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/os": "linux"}}}
}

// cnpNodePeerCases are upstream's EgressNodePeers tests (experimental feature
// SupportClusterNetworkPolicyEgressNodePeers), from base/{admin,baseline}_tier/
// experimental-egress-selector-rules.yaml. Each probes a gryffindor pod's egress to the
// host-network centaur-1, that is to node-2's address. Their deny rules also list
// 0.0.0.0/0 and ::/0, which match a node's address too; the accept and pass rules match
// by the nodes peer alone.
func cnpNodePeerCases() []cnpCase {
	admin := cnpOf("node-and-cidr-as-peers-example", v1beta1.AdminTier, 75, v1beta1.ClusterNetworkPolicySubject{Pods: housePods("gryffindor")},
		namedOut(fmt.Sprintf("allow-egress-to-%d-on-nodes", hostPort(0)), accept, at(tcp, int(hostPort(0))), linuxNodes()),
		namedOut(fmt.Sprintf("pass-egress-to-%d-on-nodes", hostPort(2)), pass, at(udp, int(hostPort(2))), linuxNodes()),
		namedOut("deny-egress-to-slytherin-and-nodes-and-internet", deny, nil,
			v1beta1.ClusterNetworkPolicyEgressPeer{Pods: housePods("slytherin")}, linuxNodes(), toNets("0.0.0.0/0", "::/0")))
	tcpRange := []v1beta1.ClusterNetworkPolicyProtocol{{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{
		DestinationPort: &v1beta1.Port{Range: &v1beta1.PortRange{Start: hostPort(0), End: hostPort(1)}}}}}
	base := cnpOf("default", v1beta1.BaselineTier, 10, v1beta1.ClusterNetworkPolicySubject{Namespaces: houseNSName("gryffindor")},
		namedOut(fmt.Sprintf("allow-egress-to-%d-on-nodes", hostPort(0)), accept, tcpRange, linuxNodes()),
		namedOut("deny-egress-to-nodes-and-internet", deny, nil, linuxNodes(), toNets("0.0.0.0/0", "::/0")))
	return []cnpCase{
		{name: "CNPAdminTierEgressNodePeers", cnps: []*evaluator.ClusterPolicy{admin}, steps: []cnpStep{
			{name: "Should support an 'allow-egress' rule policy for egress-node-peer", probes: []cnpProbe{
				probe("harry-potter-1", "centaur-1", tcp, hostPort(0), true)}},
			// Passed, with no NetworkPolicy and no Baseline tier policy: the default allow.
			{name: "Should support a 'pass-egress' rule policy for egress-node-peer", probes: []cnpProbe{
				probe("harry-potter-1", "centaur-1", udp, hostPort(2), true)}},
			{name: "Should support a 'deny-egress' rule policy for egress-node-peer", probes: []cnpProbe{
				probe("harry-potter-1", "centaur-1", tcp, hostPort(1), false), probe("harry-potter-1", "centaur-1", udp, hostPort(4), false),
				probe("harry-potter-1", "centaur-1", sctp, hostPort(6), false)}},
		}},
		{name: "CNPBaselineTierEgressNodePeers", cnps: []*evaluator.ClusterPolicy{base}, steps: []cnpStep{
			{name: "Should support an 'allow-egress' rule policy for egress-node-peer", probes: []cnpProbe{
				probe("harry-potter-0", "centaur-1", tcp, hostPort(0), true), probe("harry-potter-1", "centaur-1", tcp, hostPort(1), true)}},
			{name: "Should support a 'deny-egress' rule policy for egress-node-peer", probes: []cnpProbe{
				probe("harry-potter-1", "centaur-1", udp, hostPort(4), false), probe("harry-potter-1", "centaur-1", sctp, hostPort(6), false)}},
		}},
	}
}

// allCNPConformanceCases is the written-out cases, the per-protocol ones and the node-peer
// ones.
func allCNPConformanceCases() []cnpCase {
	out := cnpConformanceCases()
	for _, s := range []cnpProtocolScenario{cnpIngressUDP, cnpIngressSCTP, cnpEgressTCP, cnpEgressUDP, cnpEgressSCTP} {
		out = append(out, s.testCase(v1beta1.AdminTier))
	}
	for _, s := range []cnpProtocolScenario{cnpIngressTCP, cnpIngressUDP, cnpIngressSCTP, cnpEgressTCP, cnpEgressUDP, cnpEgressSCTP} {
		out = append(out, s.testCase(v1beta1.BaselineTier))
	}
	out = append(out, cnpGressCase(v1beta1.AdminTier), cnpGressCase(v1beta1.BaselineTier))
	out = append(out,
		cnpIngressUDP.namedPortCase(v1beta1.AdminTier, "dns",
			probe("harry-potter-0", "cedric-diggory-1", udp, 53, true), probe("harry-potter-1", "cedric-diggory-1", udp, 5353, false)),
		cnpEgressTCP.namedPortCase(v1beta1.AdminTier, "web",
			probe("harry-potter-0", "cedric-diggory-1", tcp, 80, true), probe("harry-potter-1", "cedric-diggory-1", tcp, 8080, false)),
		cnpIngressTCP.namedPortCase(v1beta1.BaselineTier, "web",
			probe("cedric-diggory-0", "harry-potter-1", tcp, 80, true), probe("cedric-diggory-1", "harry-potter-1", tcp, 8080, false)),
		cnpEgressUDP.namedPortCase(v1beta1.BaselineTier, "dns",
			probe("cedric-diggory-0", "harry-potter-1", udp, 53, true), probe("cedric-diggory-1", "harry-potter-1", udp, 5353, false)),
	)
	out = append(out, cnpNodePeerCases()...)
	return out
}

// TestClusterConformance holds the evaluator and the naive reference to upstream's verdicts.
func TestClusterConformance(t *testing.T) {
	for _, c := range allCNPConformanceCases() {
		t.Run(c.name, func(t *testing.T) {
			byName := map[string]*evaluator.ClusterPolicy{}
			for _, p := range c.cnps {
				if byName[p.Name] != nil {
					t.Fatalf("two policies named %s", p.Name)
				}
				byName[p.Name] = p
			}
			nps := map[string]*networkingv1.NetworkPolicy{}
			for _, p := range c.nps {
				nps[p.Name] = p
			}
			for _, step := range c.steps {
				if step.mutate != nil {
					step.mutate(byName, nps)
				}
				cl := c.cnps // mutated in place, as upstream patches them
				var nl []*networkingv1.NetworkPolicy
				for _, p := range nps {
					nl = append(nl, p)
				}
				ps, err := evaluator.CompileAll(nl, cl)
				if err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				w, eps := cnpModel(step.relabel)
				ev := evaluator.NewEvaluation(ps, w)
				for _, p := range step.probes {
					f := evaluator.Flow{Src: eps[p.from], Dst: eps[p.to], Port: p.port, Protocol: p.proto}
					if v := ev.Verdict(f); v.Allowed != p.allowed {
						t.Errorf("%s: %s: got %s (%s), upstream expects allowed=%v", step.name, f, v.Word(), v.Reason(), p.allowed)
					}
					if ref := refTiered(nl, cl, w, f); (ref == refAllow) != p.allowed {
						t.Errorf("%s: %s: the reference says %s, upstream expects allowed=%v", step.name, f, ref, p.allowed)
					}
				}
			}
		})
	}
}
