package evaluator_test

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	. "github.com/netpol-guard/netpol-guard/evaluator"
)

// makePolicy returns a policy in namespace shop selecting app=cart, shaped by tweaks.
func makePolicy(name string, tweaks ...func(*networkingv1.NetworkPolicy)) *networkingv1.NetworkPolicy {
	p := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}},
		},
	}
	for _, tweak := range tweaks {
		tweak(p)
	}
	return p
}

func inNamespace(ns string) func(*networkingv1.NetworkPolicy) {
	return func(p *networkingv1.NetworkPolicy) { p.Namespace = ns }
}

func selecting(sel metav1.LabelSelector) func(*networkingv1.NetworkPolicy) {
	return func(p *networkingv1.NetworkPolicy) { p.Spec.PodSelector = sel }
}

func types(t ...networkingv1.PolicyType) func(*networkingv1.NetworkPolicy) {
	return func(p *networkingv1.NetworkPolicy) { p.Spec.PolicyTypes = t }
}

func ingressFrom(ports []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) func(*networkingv1.NetworkPolicy) {
	return func(p *networkingv1.NetworkPolicy) {
		p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: ports})
	}
}

func egressTo(ports []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) func(*networkingv1.NetworkPolicy) {
	return func(p *networkingv1.NetworkPolicy) {
		p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peers, Ports: ports})
	}
}

func emptyIngress(p *networkingv1.NetworkPolicy) {
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
}

func pods(kv ...string) *metav1.LabelSelector { return &metav1.LabelSelector{MatchLabels: pairs(kv)} }

func pairs(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func expr(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func port(proto corev1.Protocol, p intstr.IntOrString, end ...int32) networkingv1.NetworkPolicyPort {
	np := networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
	if len(end) > 0 {
		np.EndPort = &end[0]
	}
	return np
}

func ports(p ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return p }

var (
	world = &World{
		NamespaceLabels: map[string]map[string]string{
			"shop":    {"team": "shop"},
			"billing": {"team": "money", "env": "prod"},
			"ops":     {},
		},
		NodeAddresses: map[string][]netip.Addr{
			"node-a": {netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("fd00::10")},
			"node-b": {netip.MustParseAddr("192.168.1.11")},
		},
	}
	web = &Endpoint{Kind: Pod, Namespace: "shop", Name: "Deployment/web", Labels: map[string]string{"app": "web", "tier": "front"},
		NodeName: "node-b", IP: netip.MustParseAddr("10.0.0.5")}
	cart = &Endpoint{Kind: Pod, Namespace: "shop", Name: "Deployment/cart", Labels: map[string]string{"app": "cart", "tier": "back"},
		NodeName: "node-a", IP: netip.MustParseAddr("10.0.0.7"),
		Ports: []ContainerPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}}
	payments = &Endpoint{Kind: Pod, Namespace: "billing", Name: "Deployment/payments", Labels: map[string]string{"app": "web"},
		NodeName: "node-b", IP: netip.MustParseAddr("10.0.1.9")}
	metrics = &Endpoint{Kind: Pod, Namespace: "ops", Name: "DaemonSet/metrics", Labels: map[string]string{"app": "metrics"},
		IP: netip.MustParseAddr("fd00:1::9")}
	outside   = &Endpoint{Kind: External, IP: netip.MustParseAddr("203.0.113.7")}
	outside6  = &Endpoint{Kind: External, IP: netip.MustParseAddr("2001:db8::7")}
	ownNode   = &Endpoint{Kind: Node, NodeName: "node-a", IP: netip.MustParseAddr("192.168.1.10")}
	ownNodeIP = &Endpoint{Kind: External, IP: netip.MustParseAddr("192.168.1.10")}
	otherNode = &Endpoint{Kind: Node, NodeName: "node-b", IP: netip.MustParseAddr("192.168.1.11")}
)

func TestVerdict(t *testing.T) {
	tcp, udp, sctp := corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP
	num := intstr.FromInt32
	name := intstr.FromString
	tests := []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		flow     Flow
		allowed  bool
		reason   string // substring of Verdict.Reason
	}{
		{"no policy allows everything", nil, Flow{Src: web, Dst: cart, Port: 8080}, true, "not isolated"},
		{"policy in another namespace does not isolate", []*networkingv1.NetworkPolicy{makePolicy("deny", inNamespace("billing"))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, "not isolated"},
		{"policy selecting other pods does not isolate", []*networkingv1.NetworkPolicy{makePolicy("deny", selecting(*pods("app", "nope")))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, "not isolated"},
		{"absent ingress under inferred Ingress denies all", []*networkingv1.NetworkPolicy{makePolicy("deny")},
			Flow{Src: web, Dst: cart, Port: 8080}, false, "ingress isolated by shop/deny and no rule allows it"},
		{"ingress empty list denies all", []*networkingv1.NetworkPolicy{makePolicy("deny", emptyIngress)},
			Flow{Src: web, Dst: cart, Port: 8080}, false, "isolated by shop/deny"},
		{"ingress with one empty rule allows all, outsiders included", []*networkingv1.NetworkPolicy{makePolicy("all", ingressFrom(nil))},
			Flow{Src: outside, Dst: cart, Port: 9999, Protocol: sctp}, true, "allowed by shop/all ingress[0]"},
		{"empty podSelector selects every pod of the namespace", []*networkingv1.NetworkPolicy{makePolicy("deny", selecting(metav1.LabelSelector{}))},
			Flow{Src: cart, Dst: web, Port: 80}, false, "ingress isolated by shop/deny"},
		{"podSelector peer alone matches the policy's namespace", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: pods("app", "web")}))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, "shop/p ingress[0]"},
		{"podSelector peer alone ignores same labels in another namespace", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: pods("app", "web")}))},
			Flow{Src: payments, Dst: cart, Port: 8080}, false, "no rule allows"},
		{"namespaceSelector alone matches every pod of matching namespaces", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: pods("team", "money")}))},
			Flow{Src: payments, Dst: cart, Port: 8080}, true, "shop/p ingress[0]"},
		{"namespaceSelector does not match the policy's namespace unless its labels do", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: pods("team", "money")}))},
			Flow{Src: web, Dst: cart, Port: 8080}, false, "no rule allows"},
		{"pod and namespace selector in one peer are ANDed", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: pods("team", "money"), PodSelector: pods("app", "db")}))},
			Flow{Src: payments, Dst: cart, Port: 8080}, false, "no rule allows"},
		{"peers in a list are ORed", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil,
			networkingv1.NetworkPolicyPeer{NamespaceSelector: pods("team", "money"), PodSelector: pods("app", "db")},
			networkingv1.NetworkPolicyPeer{PodSelector: pods("tier", "front")}))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, "shop/p ingress[0]"},
		{"metadata.name label is implied for every namespace", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: pods("kubernetes.io/metadata.name", "ops")}))},
			Flow{Src: metrics, Dst: cart, Port: 8080}, true, "shop/p ingress[0]"},
		{"matchExpressions In", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: expr("env", metav1.LabelSelectorOpIn, "prod", "staging")}))},
			Flow{Src: payments, Dst: cart, Port: 8080}, true, ""},
		{"matchExpressions NotIn matches namespaces without the key", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: expr("env", metav1.LabelSelectorOpNotIn, "prod")}))},
			Flow{Src: metrics, Dst: cart, Port: 8080}, true, ""},
		{"matchExpressions NotIn excludes", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: expr("env", metav1.LabelSelectorOpNotIn, "prod")}))},
			Flow{Src: payments, Dst: cart, Port: 8080}, false, ""},
		{"matchExpressions Exists", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: expr("tier", metav1.LabelSelectorOpExists)}))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, ""},
		{"matchExpressions DoesNotExist", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: expr("tier", metav1.LabelSelectorOpDoesNotExist)}))},
			Flow{Src: web, Dst: cart, Port: 8080}, false, ""},
		{"egress rules infer the Egress type", []*networkingv1.NetworkPolicy{makePolicy("p", selecting(*pods("app", "web")), egressTo(nil, networkingv1.NetworkPolicyPeer{PodSelector: pods("app", "db")}))},
			Flow{Src: web, Dst: cart, Port: 8080}, false, "egress isolated by shop/p"},
		{"inferred types leave egress open without egress rules", []*networkingv1.NetworkPolicy{makePolicy("p", selecting(*pods("app", "web")))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, "egress not isolated"},
		{"explicit Egress type ignores ingress rules and leaves ingress open", []*networkingv1.NetworkPolicy{makePolicy("p", types(networkingv1.PolicyTypeEgress), ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: pods("app", "none")}))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, "ingress not isolated"},
		{"explicit Egress type with no rules denies egress", []*networkingv1.NetworkPolicy{makePolicy("p", types(networkingv1.PolicyTypeEgress))},
			Flow{Src: cart, Dst: outside, Port: 443}, false, "egress isolated by shop/p"},
		{"pod to pod needs the destination's ingress even when egress allows", []*networkingv1.NetworkPolicy{
			makePolicy("out", selecting(*pods("app", "web")), egressTo(nil)), makePolicy("in")},
			Flow{Src: web, Dst: cart, Port: 8080}, false, "egress allowed by shop/out egress[0]; ingress isolated by shop/in"},
		{"pod to pod needs the source's egress even when ingress allows", []*networkingv1.NetworkPolicy{
			makePolicy("out", selecting(*pods("app", "web")), types(networkingv1.PolicyTypeEgress)), makePolicy("in", ingressFrom(nil))},
			Flow{Src: web, Dst: cart, Port: 8080}, false, "egress isolated by shop/out"},
		{"rules of all selecting policies are unioned", []*networkingv1.NetworkPolicy{
			makePolicy("deny"), makePolicy("allow-web", selecting(metav1.LabelSelector{}), ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: pods("app", "web")}))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, "allowed by shop/allow-web ingress[0]"},
		{"external source meets only the destination's ingress", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "203.0.113.0/24"}}))},
			Flow{Src: outside, Dst: cart, Port: 8080}, true, "shop/p ingress[0]"},
		{"selectors never match an external address", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}))},
			Flow{Src: outside, Dst: cart, Port: 8080}, false, "no rule allows"},
		{"ipBlock except carves out", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "203.0.113.0/24", Except: []string{"203.0.113.0/29"}}}))},
			Flow{Src: outside, Dst: cart, Port: 8080}, false, "no rule allows"},
		{"ipBlock IPv6", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "2001:db8::/32", Except: []string{"2001:db8:1::/48"}}}))},
			Flow{Src: outside6, Dst: cart, Port: 8080}, true, ""},
		{"IPv4 ipBlock does not match an IPv6 address", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}))},
			Flow{Src: outside6, Dst: cart, Port: 8080}, false, ""},
		{"ipBlock matches a pod by its IP", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.5/32"}}))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, ""},
		{"egress ipBlock matches a destination pod by its IP", []*networkingv1.NetworkPolicy{makePolicy("p", selecting(*pods("app", "web")), types(networkingv1.PolicyTypeEgress), egressTo(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/24"}}))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, "shop/p egress[0]"},
		{"numbered port", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(port(tcp, num(8080)))))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, ""},
		{"other port is denied", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(port(tcp, num(8080)))))},
			Flow{Src: web, Dst: cart, Port: 8081}, false, ""},
		{"protocol defaults to TCP in the rule", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(networkingv1.NetworkPolicyPort{Port: ptr(num(53))})))},
			Flow{Src: web, Dst: cart, Port: 53, Protocol: udp}, false, ""},
		{"UDP rule does not allow TCP", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(port(udp, num(53)))))},
			Flow{Src: web, Dst: cart, Port: 53, Protocol: tcp}, false, ""},
		{"SCTP rule allows SCTP", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(port(sctp, num(5000)))))},
			Flow{Src: web, Dst: cart, Port: 5000, Protocol: sctp}, true, ""},
		{"port without number allows every port of the protocol", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(networkingv1.NetworkPolicyPort{Protocol: &udp})))},
			Flow{Src: web, Dst: cart, Port: 12345, Protocol: udp}, true, ""},
		{"endPort range includes its ends", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(port(tcp, num(8000), 8080))))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, ""},
		{"endPort range excludes beyond", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(port(tcp, num(8000), 8080))))},
			Flow{Src: web, Dst: cart, Port: 8081}, false, ""},
		{"named port resolves against the destination", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(port(tcp, name("http")))))},
			Flow{Src: web, Dst: cart, Port: 8080}, true, ""},
		{"named port on another number denies", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(port(tcp, name("http")))))},
			Flow{Src: web, Dst: cart, Port: 8081}, false, ""},
		{"named port missing on destination denies", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(port(tcp, name("grpc")))))},
			Flow{Src: web, Dst: cart, Port: 8080}, false, ""},
		{"named port with another protocol denies", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(ports(port(tcp, name("dns")))))},
			Flow{Src: web, Dst: cart, Port: 53, Protocol: tcp}, false, ""},
		{"egress named port resolves against the destination pod", []*networkingv1.NetworkPolicy{makePolicy("p", selecting(*pods("app", "web")), egressTo(ports(port(udp, name("dns")))))},
			Flow{Src: web, Dst: cart, Port: 53, Protocol: udp}, true, "shop/p egress[0]"},
		{"egress named port never matches an external destination", []*networkingv1.NetworkPolicy{makePolicy("p", selecting(*pods("app", "web")), egressTo(ports(port(tcp, name("http")))))},
			Flow{Src: web, Dst: outside, Port: 8080}, false, ""},
		{"own node is always allowed in", []*networkingv1.NetworkPolicy{makePolicy("deny")},
			Flow{Src: ownNode, Dst: cart, Port: 8080}, true, "own node"},
		{"own node's address is always allowed in", []*networkingv1.NetworkPolicy{makePolicy("deny")},
			Flow{Src: ownNodeIP, Dst: cart, Port: 8080}, true, "own node"},
		{"another node is an ordinary external peer", []*networkingv1.NetworkPolicy{makePolicy("deny")},
			Flow{Src: otherNode, Dst: cart, Port: 8080}, false, "no rule allows"},
		{"another node matches ipBlock by address", []*networkingv1.NetworkPolicy{makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.1.0/24"}}))},
			Flow{Src: otherNode, Dst: cart, Port: 8080}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := Compile(tt.policies)
			if err != nil {
				t.Fatal(err)
			}
			v := NewEvaluation(ps, world).Verdict(tt.flow)
			if v.Allowed != tt.allowed {
				t.Errorf("%s: allowed = %v, want %v (%s)", tt.flow, v.Allowed, tt.allowed, v.Reason())
			}
			if !strings.Contains(v.Reason(), tt.reason) {
				t.Errorf("reason %q does not mention %q", v.Reason(), tt.reason)
			}
			if fast := NewEvaluation(ps, world).Allowed(tt.flow); fast != v.Allowed {
				t.Errorf("Allowed() = %v disagrees with Verdict().Allowed = %v", fast, v.Allowed)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestCompileRejectsInvalidPolicies(t *testing.T) {
	tcp := corev1.ProtocolTCP
	icmp := corev1.Protocol("ICMP")
	tests := []struct {
		name   string
		policy *networkingv1.NetworkPolicy
		want   string
	}{
		{"bad cidr", makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0/8"}})),
			`spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0/8"`},
		{"except outside cidr", makePolicy("p", egressTo(nil, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"11.0.0.0/16"}}})),
			`spec.egress[0].to[0].ipBlock.except[0]`},
		{"empty peer", makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{})), `spec.ingress[0].from[0]: Required value`},
		{"ipBlock with selector", makePolicy("p", ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: pods(), IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}})),
			`spec.ingress[0].from[0]: Forbidden`},
		{"bad operator", makePolicy("p", selecting(metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}})),
			`spec.podSelector`},
		{"unsupported protocol", makePolicy("p", ingressFrom(ports(networkingv1.NetworkPolicyPort{Protocol: &icmp}))), `spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP"`},
		{"endPort below port", makePolicy("p", ingressFrom(ports(port(tcp, intstr.FromInt32(90), 80)))), `spec.ingress[0].ports[0].endPort`},
		{"endPort with named port", makePolicy("p", ingressFrom(ports(port(tcp, intstr.FromString("http"), 80)))), `spec.ingress[0].ports[0].endPort`},
		{"port out of range", makePolicy("p", ingressFrom(ports(port(tcp, intstr.FromInt32(70000))))), `spec.ingress[0].ports[0].port`},
		{"unknown policy type", makePolicy("p", types("Sideways")), `spec.policyTypes[0]: Unsupported value: "Sideways"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile([]*networkingv1.NetworkPolicy{tt.policy})
			if err == nil {
				t.Fatal("compiled an invalid policy")
			}
			if !strings.Contains(err.Error(), "networkpolicy shop/p: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name the policy and %q", err, tt.want)
			}
		})
	}
	if _, err := Compile([]*networkingv1.NetworkPolicy{makePolicy("p"), makePolicy("p")}); err == nil {
		t.Error("compiled the same policy twice")
	}
}

func TestDiff(t *testing.T) {
	allowWeb := makePolicy("allow-web", ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: pods("app", "web")}))
	allowShop := makePolicy("allow-shop", ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}))
	deny := makePolicy("deny")
	worker := &Endpoint{Kind: Pod, Namespace: "shop", Name: "CronJob/worker", Labels: map[string]string{"app": "worker"}}
	flows := []Flow{
		{Src: web, Dst: cart, Port: 8080},      // 0
		{Src: payments, Dst: cart, Port: 8080}, // 1
		{Src: outside, Dst: cart, Port: 443},   // 2
		{Src: ownNode, Dst: cart, Port: 8080},  // 3
		{Src: cart, Dst: web, Port: 80},        // 4: out of a selected pod: a candidate, not cut by ingress rules
		{Src: web, Dst: payments, Port: 80},    // 5: neither end selected: not a candidate
		{Src: worker, Dst: cart, Port: 8080},   // 6
	}
	type change struct{ old, new *networkingv1.NetworkPolicy }
	tests := []struct {
		name   string
		before []*networkingv1.NetworkPolicy
		change change
		cut    []int
		// candidates: flows into or out of pods a changed policy selects.
		candidates int
	}{
		{"default deny cuts every flow in but not from the own node", nil, change{nil, deny}, []int{0, 1, 2, 6}, 6},
		{"policy that cuts nothing", nil, change{nil, makePolicy("all", ingressFrom(nil))}, nil, 6},
		{"delete of one of two allowing policies cuts what only it allowed",
			[]*networkingv1.NetworkPolicy{deny, allowWeb, allowShop}, change{allowShop, nil}, []int{6}, 6},
		{"delete of the allowing policy cuts while a default deny remains",
			[]*networkingv1.NetworkPolicy{deny, allowWeb}, change{allowWeb, nil}, []int{0}, 6},
		{"delete of the only isolating policy cuts nothing", []*networkingv1.NetworkPolicy{deny}, change{deny, nil}, nil, 6},
		{"update narrowing the allowed source cuts the others",
			[]*networkingv1.NetworkPolicy{allowShop}, change{allowShop, makePolicy("allow-shop", ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: pods("app", "web")}))}, []int{6}, 6},
		{"update without spec change evaluates nothing", []*networkingv1.NetworkPolicy{deny}, change{deny, makePolicy("deny")}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := Compile(tt.before)
			if err != nil {
				t.Fatal(err)
			}
			after, err := before.With(tt.change.old, tt.change.new)
			if err != nil {
				t.Fatal(err)
			}
			res := Diff(before, after, world, flows)
			var got []int
			for _, c := range res.Cut {
				got = append(got, c.Index)
				if !c.Before.Allowed || c.After.Allowed || c.Flow != flows[c.Index] {
					t.Errorf("cut %d: before %v after %v", c.Index, c.Before.Allowed, c.After.Allowed)
				}
			}
			if !equalInts(got, tt.cut) {
				t.Errorf("cut flows %v, want %v", got, tt.cut)
			}
			if res.Summary.Candidates != tt.candidates || res.Summary.Flows != len(flows) || res.Summary.Cut != len(got) {
				t.Errorf("summary %+v, want %d candidates", res.Summary, tt.candidates)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
