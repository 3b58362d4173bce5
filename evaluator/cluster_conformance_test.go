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

import (
	"fmt"
	"net/netip"
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
	w := &evaluator.World{NamespaceLabels: map[string]map[string]string{}, NodeAddresses: map[string][]netip.Addr{"node-1": {netip.MustParseAddr("10.0.255.1")}}}
	eps := map[string]*evaluator.Endpoint{}
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
			{name: "Should support an 'allow-egress' rule policy for egress-cidr-peer",
				mutate: func(c map[string]*evaluator.ClusterPolicy, _ map[string]*networkingv1.NetworkPolicy) {
					p := c["inline-cidr-as-peers-example"]
					p.Spec.Egress = append([]v1beta1.ClusterNetworkPolicyEgressRule{{Name: "allow-egress-to-specific-podIPs", Action: accept,
						To: []v1beta1.ClusterNetworkPolicyEgressPeer{toNets("10.244.3.1/32", "10.244.2.1/32")}}}, p.Spec.Egress...)
				}, probes: concat(
					allProtos("harry-potter-1", "luna-lovegood-0", true), allProtos("harry-potter-1", "cedric-diggory-0", true),
					allProtos("harry-potter-1", "luna-lovegood-1", false), allProtos("harry-potter-1", "cedric-diggory-1", false))},
		}},
	}
}

func TestClusterConformance(t *testing.T) {
	for _, c := range cnpConformanceCases() {
		t.Run(c.name, func(t *testing.T) {
			byName := map[string]*evaluator.ClusterPolicy{}
			for _, p := range c.cnps {
				if p.Spec.Tier == v1beta1.AdminTier {
					byName[p.Name] = p
				}
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
				}
			}
		})
	}
}
