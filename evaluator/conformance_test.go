package evaluator_test

// The upstream Kubernetes network-policy conformance scenarios, as data.
//
// Each case below reproduces one ginkgo case of kubernetes test/e2e/network/netpol
// (network_policy.go at k8s.io/kubernetes v1.37.2): the policies it creates, updates and
// deletes, the namespace and pod label changes it makes, and the reachability matrix it
// expects after each step, on the port and protocol it probes. Names are upstream's.
//
// Where this file departs from upstream, it says so in the case:
//   - Upstream now creates only the pods a case needs (e.g. x/a, x/b, y/a). Here every case
//     runs the full model (namespaces x, y, z × pods a, b, c, all 81 ordered pairs), as
//     upstream did before it trimmed the model. Where upstream's expectation statements were
//     written for the smaller pod set, the missing pods' expectations are added (noted
//     "full model").
//   - Upstream ignores pod → itself (ignoreLoopback, kubernetes#95879, because CNIs differ
//     on hairpin traffic). The evaluator has no loopback rule, so pod → itself is judged by
//     policy like any other pair, and the expected matrices (which upstream fills in for
//     loopback too) are checked in full.
//   - Pods have fixed addresses (x/a=10.0.0.1 … z/c=10.0.2.3, or fd00:10::… for the IPv6
//     variants of the ipBlock cases) instead of whatever the cluster assigned.
//   - The endPort cases are not upstream's (upstream only checks endPort validation); they
//     are marked "(netpol-guard)".
//
// TestConformanceDiff adds before/after cases for Diff.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// ---------------------------------------------------------------------------------------
// Model: namespaces × pods × ports × protocols, as upstream's model.go.

var (
	confNamespaces = []string{"x", "y", "z"}
	confPodNames   = []string{"a", "b", "c"}
	confPorts      = []int32{80, 81}
	confProtocols  = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
	// confPods lists "x/a" … "z/c": rows and columns of every matrix.
	confPods = func() []string {
		var out []string
		for _, ns := range confNamespaces {
			for _, p := range confPodNames {
				out = append(out, ns+"/"+p)
			}
		}
		return out
	}()
)

const confNode = "node-1"

type confFamily int

const (
	confIPv4 confFamily = iota
	confIPv6
)

func (f confFamily) String() string {
	if f == confIPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// confPodIP is the fixed address of pod "ns/name": 10.0.<ns>.<pod> or fd00:10::<ns>:<pod>,
// with x=0, y=1, z=2 and a=1, b=2, c=3.
func confPodIP(fam confFamily, pod string) netip.Addr {
	ns, name, _ := strings.Cut(pod, "/")
	n, p := slices.Index(confNamespaces, ns), slices.Index(confPodNames, name)
	if n < 0 || p < 0 {
		panic("unknown model pod " + pod)
	}
	if fam == confIPv6 {
		return netip.AddrFrom16([16]byte{0xfd, 0x00, 0x00, 0x10, 12: 0, 13: byte(n), 14: 0, 15: byte(p + 1)})
	}
	return netip.AddrFrom4([4]byte{10, 0, byte(n), byte(p + 1)})
}

// confNodeIP is node-1's address, outside every pod CIDR used below except the /4s.
func confNodeIP(fam confFamily) netip.Addr {
	if fam == confIPv6 {
		return netip.MustParseAddr("fd00:10::ff:1")
	}
	return netip.MustParseAddr("10.0.255.1")
}

// confHostCIDR is "<pod IP>/32" (or /128), as upstream builds from a pod's status.podIP.
func confHostCIDR(fam confFamily, pod string) string {
	ip := confPodIP(fam, pod)
	return netip.PrefixFrom(ip, ip.BitLen()).String()
}

// confLargeCIDR is upstream's makeLargeCIDRForIP: the /4 that contains the pod's IP.
func confLargeCIDR(fam confFamily, pod string) string {
	return netip.PrefixFrom(confPodIP(fam, pod), 4).Masked().String()
}

// confModel is the cluster at one step: a World and one interned *Endpoint per pod.
type confModel struct {
	world     *evaluator.World
	endpoints map[string]*evaluator.Endpoint // by "ns/pod"
}

// newConfModel builds the model with the labels added so far (upstream's AddNamespaceLabel,
// AddPodLabels). Namespaces are labelled ns=<name>; kubernetes.io/metadata.name is implied
// by the World, so it is deliberately not listed.
func newConfModel(fam confFamily, nsLabels, podLabels map[string]map[string]string) *confModel {
	w := &evaluator.World{
		NamespaceLabels: map[string]map[string]string{},
		NodeAddresses:   map[string][]netip.Addr{confNode: {confNodeIP(fam)}},
	}
	for _, ns := range confNamespaces {
		l := map[string]string{"ns": ns}
		for k, v := range nsLabels[ns] {
			l[k] = v
		}
		w.NamespaceLabels[ns] = l
	}
	var ports []evaluator.ContainerPort
	for _, proto := range confProtocols {
		for _, port := range confPorts {
			ports = append(ports, evaluator.ContainerPort{
				Name:     fmt.Sprintf("serve-%d-%s", port, strings.ToLower(string(proto))),
				Port:     port,
				Protocol: proto,
			})
		}
	}
	m := &confModel{world: w, endpoints: map[string]*evaluator.Endpoint{}}
	for _, pod := range confPods {
		ns, name, _ := strings.Cut(pod, "/")
		l := map[string]string{"pod": name}
		for k, v := range podLabels[pod] {
			l[k] = v
		}
		m.endpoints[pod] = &evaluator.Endpoint{
			Kind:      evaluator.Pod,
			Namespace: ns,
			Name:      name,
			Labels:    l,
			NodeName:  confNode,
			IP:        confPodIP(fam, pod),
			Ports:     ports,
		}
	}
	return m
}

// ---------------------------------------------------------------------------------------
// Reachability: the expected matrix, as upstream's reachability.go.

// confPeer matches pods by namespace and name; empty matches any.
type confPeer struct{ ns, pod string }

func (p confPeer) matches(pod string) bool {
	ns, name, _ := strings.Cut(pod, "/")
	return (p.ns == "" || p.ns == ns) && (p.pod == "" || p.pod == name)
}

// confReach is the expected verdict of every ordered pair; it starts all allowed.
type confReach struct {
	want map[[2]string]bool
}

func newConfReach() *confReach {
	r := &confReach{want: map[[2]string]bool{}}
	for _, from := range confPods {
		for _, to := range confPods {
			r.want[[2]string{from, to}] = true
		}
	}
	return r
}

func (r *confReach) Expect(from, to string, allowed bool) *confReach {
	if _, ok := r.want[[2]string{from, to}]; !ok {
		panic("unknown pair " + from + " → " + to)
	}
	r.want[[2]string{from, to}] = allowed
	return r
}

func (r *confReach) ExpectPeer(from, to confPeer, allowed bool) *confReach {
	for _, f := range confPods {
		for _, t := range confPods {
			if from.matches(f) && to.matches(t) {
				r.want[[2]string{f, t}] = allowed
			}
		}
	}
	return r
}

// ExpectAllIngress sets every pair into pod.
func (r *confReach) ExpectAllIngress(pod string, allowed bool) *confReach {
	for _, f := range confPods {
		r.Expect(f, pod, allowed)
	}
	return r
}

// ExpectAllEgress sets every pair out of pod.
func (r *confReach) ExpectAllEgress(pod string, allowed bool) *confReach {
	for _, t := range confPods {
		r.Expect(pod, t, allowed)
	}
	return r
}

// confTable prints a truth table like upstream's PrettyPrint: rows are sources, columns
// destinations, '.' allowed, 'X' denied; mark(from, to) appends a marker to a cell.
func confTable(cell func(from, to string) bool, mark func(from, to string) string) string {
	var b strings.Builder
	b.WriteString("    -\t")
	b.WriteString(strings.Join(confPods, "\t"))
	b.WriteString("\n")
	for _, from := range confPods {
		b.WriteString("    " + from)
		for _, to := range confPods {
			c := "X"
			if cell(from, to) {
				c = "."
			}
			b.WriteString("\t" + c + mark(from, to))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ---------------------------------------------------------------------------------------
// Policy builders: a base object plus tweaks, as upstream's policies.go.

type confTweak func(*networkingv1.NetworkPolicy)

func confPolicy(ns, name string, tweaks ...confTweak) *networkingv1.NetworkPolicy {
	p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, t := range tweaks {
		t(p)
	}
	return p
}

// confSelect is SetSpecPodSelectorMatchLabels: confSelect() is the empty selector (all pods).
func confSelect(kv ...string) confTweak {
	return func(p *networkingv1.NetworkPolicy) { p.Spec.PodSelector = *confLabels(kv...) }
}

// confIngress is SetSpecIngressRules: it makes spec.ingress non-nil and adds the Ingress type.
func confIngress(rules ...networkingv1.NetworkPolicyIngressRule) confTweak {
	return func(p *networkingv1.NetworkPolicy) {
		if p.Spec.Ingress == nil {
			p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
			p.Spec.PolicyTypes = append(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
		}
		p.Spec.Ingress = append(p.Spec.Ingress, rules...)
	}
}

// confEgress is SetSpecEgressRules.
func confEgress(rules ...networkingv1.NetworkPolicyEgressRule) confTweak {
	return func(p *networkingv1.NetworkPolicy) {
		if p.Spec.Egress == nil {
			p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{}
			p.Spec.PolicyTypes = append(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
		p.Spec.Egress = append(p.Spec.Egress, rules...)
	}
}

func confFrom(peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyIngressRule {
	return networkingv1.NetworkPolicyIngressRule{From: peers, Ports: ports}
}

func confTo(peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{To: peers, Ports: ports}
}

func confPeers(p ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return p }

// confLabels is a matchLabels selector; confLabels() is {matchLabels: {}}, which selects all.
func confLabels(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func confExpr(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func confPodPeer(s *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: s}
}

func confNSPeer(s *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: s}
}

func confPodNSPeer(pods, namespaces *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: pods, NamespaceSelector: namespaces}
}

func confIPPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

// confPort is a numeric port; a nil protocol is left unset (the API defaults it to TCP).
func confPort(port int32, proto *corev1.Protocol) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(port)
	return networkingv1.NetworkPolicyPort{Port: &p, Protocol: proto}
}

func confPortRange(port, end int32, proto *corev1.Protocol) networkingv1.NetworkPolicyPort {
	p := confPort(port, proto)
	p.EndPort = &end
	return p
}

func confNamedPort(name string, proto *corev1.Protocol) networkingv1.NetworkPolicyPort {
	p := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Port: &p, Protocol: proto}
}

func confProto(proto *corev1.Protocol) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: proto}
}

var (
	confTCPRef  = func() *corev1.Protocol { p := corev1.ProtocolTCP; return &p }()
	confUDPRef  = func() *corev1.Protocol { p := corev1.ProtocolUDP; return &p }()
	confSCTPRef = func() *corev1.Protocol { p := corev1.ProtocolSCTP; return &p }()
)

const confNSName = corev1.LabelMetadataName // kubernetes.io/metadata.name

// ---------------------------------------------------------------------------------------
// Cases.

// confChange is one policy change: create (old nil), update (both), delete (new nil).
type confChange struct{ old, new *networkingv1.NetworkPolicy }

func confCreate(p *networkingv1.NetworkPolicy) confChange { return confChange{new: p} }
func confUpdate(old, new *networkingv1.NetworkPolicy) confChange {
	return confChange{old: old, new: new}
}
func confDelete(p *networkingv1.NetworkPolicy) confChange { return confChange{old: p} }

// confProbe is one ValidateOrFail: a port and protocol and the matrix expected on it.
type confProbe struct {
	port     int32
	protocol corev1.Protocol
	want     *confReach
}

func confOn(port int32, proto corev1.Protocol, want *confReach) confProbe {
	return confProbe{port: port, protocol: proto, want: want}
}

// confStep applies changes to the cluster, then probes.
type confStep struct {
	changes   []confChange
	nsLabels  map[string]map[string]string // labels added to namespaces (cumulative)
	podLabels map[string]map[string]string // labels added to pods, by "ns/pod" (cumulative)
	probes    []confProbe
}

type confCase struct {
	name   string
	family confFamily
	steps  []confStep
}

const (
	confTCP  = corev1.ProtocolTCP
	confUDP  = corev1.ProtocolUDP
	confSCTP = corev1.ProtocolSCTP
)

var confAny = confPeer{}

func confNS(ns string) confPeer { return confPeer{ns: ns} }

func confPodAt(pod string) confPeer {
	ns, name, _ := strings.Cut(pod, "/")
	return confPeer{ns: ns, pod: name}
}

func confCases() []confCase {
	var cases []confCase
	add := func(c ...confCase) { cases = append(cases, c...) }

	// "should support a 'default-deny-ingress' policy", TCP, UDP and SCTP.
	for _, proto := range []corev1.Protocol{confTCP, confUDP, confSCTP} {
		name := "deny-ingress"
		if proto != confTCP {
			name = "deny-all" // upstream's UDP and SCTP variants call it deny-all
		}
		add(confCase{
			name: confProtoPrefix(proto) + "should support a 'default-deny-ingress' policy",
			steps: []confStep{{
				changes: []confChange{confCreate(confPolicy("x", name, confSelect(), confIngress()))},
				probes:  []confProbe{confOn(80, proto, newConfReach().ExpectPeer(confAny, confNS("x"), false))},
			}},
		})
	}

	add(confCase{
		name: "should support a 'default-deny-all' policy",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "deny-all", confSelect(), confIngress(), confEgress()))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectPeer(confAny, confNS("x"), false).
				ExpectPeer(confNS("x"), confAny, false))},
		}},
	})

	add(confCase{
		name: "should enforce policy to allow traffic from pods within server namespace based on PodSelector",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "x-a-allows-x-b", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(confPodPeer(confLabels("pod", "b")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectAllIngress("x/a", false).
				Expect("x/b", "x/a", true))},
		}},
	})

	add(confCase{
		name: "should enforce policy to allow ingress traffic for a target",
		steps: []confStep{{
			changes: []confChange{
				confCreate(confPolicy("x", "deny-all", confSelect(), confIngress())),
				confCreate(confPolicy("x", "allow-all-to-a", confSelect("pod", "a"),
					confIngress(confFrom(confPeers(confPodNSPeer(&metav1.LabelSelector{}, &metav1.LabelSelector{})))))),
			},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectAllIngress("x/a", true).
				ExpectAllIngress("x/b", false).
				ExpectAllIngress("x/c", false))}, // full model: x/c is isolated by deny-all too
		}},
	})

	add(confCase{
		name: "should enforce policy to allow ingress traffic from pods in all namespaces",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-from-another-ns", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(confNSPeer(confLabels()))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach())},
		}},
	})

	add(confCase{
		name: "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-client-a-via-ns-selector", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(confNSPeer(confLabels(confNSName, "y")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectPeer(confNS("x"), confPodAt("x/a"), false).
				ExpectPeer(confNS("z"), confPodAt("x/a"), false))},
		}},
	})

	add(confCase{
		name: "should enforce policy based on PodSelector with MatchExpressions",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "x-a-allows-x-b", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(confPodPeer(confExpr("pod", metav1.LabelSelectorOpIn, "b")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectAllIngress("x/a", false).
				Expect("x/b", "x/a", true))},
		}},
	})

	add(confCase{
		name: "should enforce policy based on NamespaceSelector with MatchExpressions",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-ns-y-match-selector", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(confNSPeer(confExpr(confNSName, metav1.LabelSelectorOpIn, "y")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectPeer(confNS("x"), confPodAt("x/a"), false).
				ExpectPeer(confNS("z"), confPodAt("x/a"), false))},
		}},
	})

	add(confCase{
		name: "should enforce policy based on PodSelector or NamespaceSelector",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-ns-y-match-selector", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(
					confNSPeer(confExpr(confNSName, metav1.LabelSelectorOpNotIn, "x")),
					confPodPeer(confLabels("pod", "b")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				Expect("x/a", "x/a", false).
				Expect("x/c", "x/a", false))},
		}},
	})

	add(confCase{
		name: "should enforce policy based on PodSelector and NamespaceSelector",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-ns-y-podselector-and-nsselector", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(confPodNSPeer(
					confLabels("pod", "b"),
					confExpr(confNSName, metav1.LabelSelectorOpNotIn, "x")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectAllIngress("x/a", false).
				Expect("y/b", "x/a", true).
				Expect("z/b", "x/a", true))},
		}},
	})

	add(confCase{
		name: "should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-ns-y-z-pod-b-c", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(confPodNSPeer(
					confExpr("pod", metav1.LabelSelectorOpIn, "b", "c"),
					confExpr(confNSName, metav1.LabelSelectorOpNotIn, "x")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectPeer(confNS("x"), confPodAt("x/a"), false).
				Expect("y/a", "x/a", false).
				Expect("z/a", "x/a", false))}, // full model: z/a matches the namespace but not the pod
		}},
	})

	add(confCase{
		name: "should enforce policy based on any PodSelectors",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-ns-x-pod-b-c", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(
					confPodPeer(confLabels("pod", "b")),
					confPodPeer(confLabels("pod", "c")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectAllIngress("x/a", false).
				Expect("x/b", "x/a", true).
				Expect("x/c", "x/a", true))},
		}},
	})

	// "should enforce policy to allow traffic only from a pod in a different namespace based on
	// PodSelector and NamespaceSelector", TCP, UDP and SCTP.
	for _, proto := range []corev1.Protocol{confTCP, confUDP, confSCTP} {
		add(confCase{
			name: confProtoPrefix(proto) + "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
			steps: []confStep{{
				changes: []confChange{confCreate(confPolicy("x", "allow-ns-y-pod-a-via-namespace-pod-selector", confSelect("pod", "a"),
					confIngress(confFrom(confPeers(confPodNSPeer(confLabels("pod", "a"), confLabels(confNSName, "y")))))))},
				probes: []confProbe{confOn(80, proto, newConfReach().
					ExpectAllIngress("x/a", false).
					Expect("y/a", "x/a", true))},
			}},
		})
	}

	// "should enforce policy based on Ports", TCP, UDP and SCTP.
	for _, proto := range []corev1.Protocol{confTCP, confUDP, confSCTP} {
		name := "allow-client-a-via-ns-selector"
		if proto != confTCP {
			name = "allow-ingress-on-port-81-ns-x"
		}
		p := proto
		add(confCase{
			name: confProtoPrefix(proto) + "should enforce policy based on Ports",
			steps: []confStep{{
				changes: []confChange{confCreate(confPolicy("x", name, confSelect("pod", "a"),
					confIngress(confFrom(confPeers(confNSPeer(confLabels(confNSName, "y"))), confPort(81, &p)))))},
				probes: []confProbe{confOn(81, proto, newConfReach().
					ExpectPeer(confNS("x"), confPodAt("x/a"), false).
					ExpectPeer(confNS("y"), confPodAt("x/a"), true).
					ExpectPeer(confNS("z"), confPodAt("x/a"), false))},
			}},
		})
	}

	{
		allow81 := confPolicy("x", "allow-client-a-via-ns-selector", confSelect("pod", "a"),
			confIngress(confFrom(confPeers(confNSPeer(confLabels(confNSName, "y"))), confPort(81, confTCPRef))))
		allow80 := confPolicy("x", "allow-client-a-via-ns-selector-80", confSelect("pod", "a"),
			confIngress(confFrom(confPeers(confNSPeer(confLabels(confNSName, "y"))), confPort(80, confTCPRef))))
		allowY := func() *confReach {
			return newConfReach().
				ExpectPeer(confNS("x"), confPodAt("x/a"), false).
				ExpectPeer(confNS("y"), confPodAt("x/a"), true).
				ExpectPeer(confNS("z"), confPodAt("x/a"), false)
		}
		add(confCase{
			name: "should enforce multiple, stacked policies with overlapping podSelectors",
			steps: []confStep{
				{
					changes: []confChange{confCreate(allow81)},
					probes: []confProbe{
						confOn(81, confTCP, allowY()),
						confOn(80, confTCP, newConfReach().ExpectAllIngress("x/a", false)),
					},
				},
				{
					changes: []confChange{confCreate(allow80)},
					probes:  []confProbe{confOn(80, confTCP, allowY())},
				},
			},
		})
	}

	add(confCase{
		name: "should support allow-all policy",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-all", confSelect(), confIngress(networkingv1.NetworkPolicyIngressRule{})))},
			probes:  []confProbe{confOn(80, confTCP, newConfReach()), confOn(81, confTCP, newConfReach())},
		}},
	})

	add(confCase{
		name: "should allow ingress access on one named port",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-all", confSelect(),
				confIngress(confFrom(nil, confNamedPort("serve-81-tcp", nil)))))},
			probes: []confProbe{
				confOn(81, confTCP, newConfReach()),
				confOn(80, confTCP, newConfReach().ExpectPeer(confAny, confNS("x"), false)),
			},
		}},
	})

	add(confCase{
		name: "should allow ingress access from namespace on one named port",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-client-a-via-ns-selector-80", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(confNSPeer(confLabels(confNSName, "y"))), confNamedPort("serve-80-tcp", confTCPRef)))))},
			probes: []confProbe{
				confOn(80, confTCP, newConfReach().
					ExpectPeer(confNS("x"), confPodAt("x/a"), false).
					ExpectPeer(confNS("z"), confPodAt("x/a"), false)),
				confOn(81, confTCP, newConfReach().ExpectAllIngress("x/a", false)),
			},
		}},
	})

	add(confCase{
		name: "should allow egress access on one named port",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-egress", confSelect(),
				confEgress(confTo(nil, confNamedPort("serve-80-tcp", nil)))))},
			probes: []confProbe{
				confOn(80, confTCP, newConfReach()),
				confOn(81, confTCP, newConfReach().ExpectPeer(confNS("x"), confAny, false)),
			},
		}},
	})

	add(confCase{
		name: "should not allow all ports if it cannot limit to the requested port",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-ingress-on-nonexistent-port", confSelect("pod", "a"),
				confIngress(confFrom(nil, confNamedPort("no-such-port", confTCPRef)))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().ExpectAllIngress("x/a", false))},
		}},
	})

	{
		allowAll := confPolicy("x", "allow-all-mutate-to-deny-all", confSelect(), confIngress(networkingv1.NetworkPolicyIngressRule{}))
		denyAll := allowAll.DeepCopy()
		denyAll.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
		add(confCase{
			name: "should enforce updated policy",
			steps: []confStep{
				{changes: []confChange{confCreate(allowAll)}, probes: []confProbe{confOn(81, confTCP, newConfReach())}},
				{
					changes: []confChange{confUpdate(allowAll, denyAll)},
					probes:  []confProbe{confOn(81, confTCP, newConfReach().ExpectPeer(confAny, confNS("x"), false))},
				},
			},
		})
	}

	add(confCase{
		name: "should allow ingress access from updated namespace",
		steps: []confStep{
			{
				changes: []confChange{confCreate(confPolicy("x", "allow-client-a-via-ns-selector", confSelect("pod", "a"),
					confIngress(confFrom(confPeers(confNSPeer(confLabels("ns2", "updated")))))))},
				probes: []confProbe{confOn(80, confTCP, newConfReach().ExpectAllIngress("x/a", false))},
			},
			{
				nsLabels: map[string]map[string]string{"y": {"ns2": "updated"}},
				probes: []confProbe{confOn(80, confTCP, newConfReach().
					ExpectAllIngress("x/a", false).
					ExpectPeer(confNS("y"), confAny, true))},
			},
		},
	})

	add(confCase{
		name: "should allow ingress access from updated pod",
		steps: []confStep{
			{
				changes: []confChange{confCreate(confPolicy("x", "allow-client-a-via-pod-selector", confSelect("pod", "a"),
					confIngress(confFrom(confPeers(confPodPeer(confLabels("pod", "b", "pod2", "updated")))))))},
				probes: []confProbe{confOn(80, confTCP, newConfReach().ExpectAllIngress("x/a", false))},
			},
			{
				podLabels: map[string]map[string]string{"x/b": {"pod": "b", "pod2": "updated"}},
				probes: []confProbe{confOn(80, confTCP, newConfReach().
					ExpectAllIngress("x/a", false).
					Expect("x/b", "x/a", true))},
			},
		},
	})

	add(confCase{
		name: "should deny ingress from pods on other namespaces",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "deny-empty-policy", confSelect(),
				confIngress(confFrom(confPeers(confPodPeer(confLabels()))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectPeer(confNS("y"), confNS("x"), false).
				ExpectPeer(confNS("z"), confNS("x"), false))},
		}},
	})

	add(confCase{
		name: "should deny ingress access to updated pod",
		steps: []confStep{
			{
				changes: []confChange{confCreate(confPolicy("x", "deny-ingress-via-label-selector", confSelect("target", "isolated"), confIngress()))},
				probes:  []confProbe{confOn(80, confTCP, newConfReach())},
			},
			{
				podLabels: map[string]map[string]string{"x/a": {"target": "isolated"}},
				probes:    []confProbe{confOn(80, confTCP, newConfReach().ExpectAllIngress("x/a", false))},
			},
		},
	})

	add(confCase{
		name: "should deny egress from pods based on PodSelector",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "deny-egress-pod-a", confSelect("pod", "a"), confEgress()))},
			probes:  []confProbe{confOn(80, confTCP, newConfReach().ExpectAllEgress("x/a", false))},
		}},
	})

	add(confCase{
		name: "should deny egress from all pods in a namespace",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "deny-egress-ns-x", confSelect(), confEgress()))},
			probes:  []confProbe{confOn(80, confTCP, newConfReach().ExpectPeer(confNS("x"), confAny, false))},
		}},
	})

	{
		p := confPolicy("x", "allow-client-a-via-pod-selector", confSelect("pod", "a"),
			confIngress(confFrom(confPeers(confPodPeer(confLabels("pod", "b"))))))
		p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{confTo(nil, confPort(80, nil))}
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress, networkingv1.PolicyTypeIngress}
		add(confCase{
			name: "should work with Ingress, Egress specified together",
			steps: []confStep{{
				changes: []confChange{confCreate(p)},
				probes: []confProbe{
					confOn(80, confTCP, newConfReach().
						ExpectAllIngress("x/a", false).
						Expect("x/b", "x/a", true)),
					confOn(81, confTCP, newConfReach().
						ExpectAllIngress("x/a", false).
						ExpectAllEgress("x/a", false).
						Expect("x/b", "x/a", true)),
				},
			}},
		})
	}

	{
		fromXA := confFrom(confPeers(confPodNSPeer(confLabels("pod", "a"), confLabels(confNSName, "x"))))
		add(confCase{
			name: "should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)",
			steps: []confStep{{
				changes: []confChange{
					confCreate(confPolicy("x", "allow-to-ns-y-pod-a", confSelect("pod", "a"),
						confEgress(confTo(confPeers(confPodNSPeer(confLabels("pod", "a"), confLabels(confNSName, "y"))))))),
					confCreate(confPolicy("y", "allow-from-xa-on-ya-match-selector", confSelect("pod", "a"), confIngress(fromXA))),
					confCreate(confPolicy("y", "allow-from-xa-on-yb-match-selector", confSelect("pod", "b"), confIngress(fromXA))),
				},
				probes: []confProbe{confOn(80, confTCP, newConfReach().
					ExpectPeer(confPodAt("x/a"), confAny, false).
					ExpectPeer(confAny, confPodAt("y/a"), false).
					ExpectPeer(confPodAt("x/a"), confPodAt("y/a"), true).
					ExpectPeer(confAny, confPodAt("y/b"), false))},
			}},
		})
	}

	add(confCase{
		name: "should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-to-ns-y-pod-a", confSelect("pod", "a"),
				confEgress(confTo(confPeers(confPodNSPeer(confLabels("pod", "a"), confLabels(confNSName, "y")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectAllEgress("x/a", false).
				Expect("x/a", "y/a", true))},
		}},
	})

	add(confCase{
		name: "should enforce ingress policy allowing any port traffic to a server on a specific protocol",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-ingress-by-proto", confSelect("pod", "a"),
				confIngress(confFrom(nil, confProto(confTCPRef)))))},
			probes: []confProbe{
				confOn(80, confTCP, newConfReach()),
				confOn(80, confUDP, newConfReach().ExpectPeer(confAny, confPodAt("x/a"), false)),
			},
		}},
	})

	add(confCase{
		name: "should enforce multiple ingress policies with ingress allow-all policy taking precedence",
		steps: []confStep{
			{
				changes: []confChange{confCreate(confPolicy("x", "allow-ingress-port-80", confSelect(),
					confIngress(confFrom(nil, confPort(80, nil)))))},
				probes: []confProbe{confOn(81, confTCP, newConfReach().ExpectPeer(confAny, confNS("x"), false))},
			},
			{
				changes: []confChange{confCreate(confPolicy("x", "allow-ingress", confSelect(), confIngress(networkingv1.NetworkPolicyIngressRule{})))},
				probes:  []confProbe{confOn(81, confTCP, newConfReach())},
			},
		},
	})

	add(confCase{
		name: "should enforce multiple egress policies with egress allow-all policy taking precedence",
		steps: []confStep{
			{
				changes: []confChange{confCreate(confPolicy("x", "allow-egress-port-80", confSelect(),
					confEgress(confTo(nil, confPort(80, nil)))))},
				probes: []confProbe{confOn(81, confTCP, newConfReach().ExpectPeer(confNS("x"), confAny, false))},
			},
			{
				changes: []confChange{confCreate(confPolicy("x", "allow-egress", confSelect(), confEgress(networkingv1.NetworkPolicyEgressRule{})))},
				probes:  []confProbe{confOn(81, confTCP, newConfReach())},
			},
		},
	})

	{
		denyAll := confPolicy("x", "deny-all", confSelect(), confIngress(), confEgress())
		add(confCase{
			name: "should stop enforcing policies after they are deleted",
			steps: []confStep{
				{
					changes: []confChange{confCreate(denyAll)},
					probes: []confProbe{confOn(80, confTCP, newConfReach().
						ExpectPeer(confNS("x"), confAny, false).
						ExpectPeer(confAny, confNS("x"), false))},
				},
				{changes: []confChange{confDelete(denyAll)}, probes: []confProbe{confOn(80, confTCP, newConfReach())}},
			},
		})
	}

	// The ipBlock cases build their CIDRs from pod IPs; run them on both families.
	for _, fam := range []confFamily{confIPv4, confIPv6} {
		prefix := ""
		if fam == confIPv6 {
			prefix = "[IPv6] "
		}
		add(confCase{
			name:   prefix + "should allow egress access to server in CIDR block",
			family: fam,
			steps: []confStep{{
				changes: []confChange{confCreate(confPolicy("x", "allow-client-a-via-cidr-egress-rule", confSelect("pod", "a"),
					confEgress(confTo(confPeers(confIPPeer(confHostCIDR(fam, "y/b")))))))},
				probes: []confProbe{confOn(80, confTCP, newConfReach().
					ExpectAllEgress("x/a", false).
					Expect("x/a", "y/b", true))},
			}},
		})

		add(confCase{
			name:   prefix + "should enforce except clause while egress access to server in CIDR block",
			family: fam,
			steps: []confStep{{
				changes: []confChange{confCreate(confPolicy("x", "allow-client-a-via-cidr-egress-rule", confSelect("pod", "a"),
					confEgress(confTo(confPeers(confIPPeer(confLargeCIDR(fam, "x/b"), confHostCIDR(fam, "x/b")))))))},
				probes: []confProbe{confOn(80, confTCP, newConfReach().Expect("x/a", "x/b", false))},
			}},
		})

		exceptB := confPolicy("x", "allow-client-a-via-cidr-egress-rule", confSelect("pod", "a"),
			confEgress(confTo(confPeers(confIPPeer(confLargeCIDR(fam, "x/b"), confHostCIDR(fam, "x/b"))))))
		onlyB := confPolicy("x", "allow-client-a-via-cidr-egress-rule", confSelect("pod", "a"),
			confEgress(confTo(confPeers(confIPPeer(confHostCIDR(fam, "x/b"))))))
		add(confCase{
			name:   prefix + "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed",
			family: fam,
			steps: []confStep{
				{
					changes: []confChange{confCreate(exceptB)},
					probes:  []confProbe{confOn(80, confTCP, newConfReach().Expect("x/a", "x/b", false))},
				},
				{
					// Upstream updates the policy of the same name (it does not add a second one).
					changes: []confChange{confUpdate(exceptB, onlyB)},
					probes: []confProbe{confOn(80, confTCP, newConfReach().
						ExpectAllEgress("x/a", false).
						Expect("x/a", "x/b", true))},
				},
			},
		})
	}

	add(confCase{
		name: "should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector",
		steps: []confStep{
			{
				changes: []confChange{confCreate(confPolicy("x", "allow-egress-for-target", confSelect("pod", "a"),
					confEgress(networkingv1.NetworkPolicyEgressRule{})))},
				probes: []confProbe{confOn(80, confTCP, newConfReach())},
			},
			{
				changes: []confChange{confCreate(confPolicy("x", "deny-ingress-via-label-selector", confSelect("pod", "a"), confIngress()))},
				probes:  []confProbe{confOn(80, confTCP, newConfReach().ExpectAllIngress("x/a", false))},
			},
		},
	})

	add(confCase{
		name: "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
		steps: []confStep{{
			changes: []confChange{
				confCreate(confPolicy("x", "deny-ingress", confSelect(), confIngress())),
				confCreate(confPolicy("x", "allow-only-confSCTP-ingress-on-port-81", confSelect("pod", "a"),
					confIngress(confFrom(nil, confPort(81, confSCTPRef))))),
			},
			probes: []confProbe{confOn(81, confTCP, newConfReach().ExpectPeer(confAny, confNS("x"), false))},
		}},
	})

	add(confCase{
		name: "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-only-confSCTP-ingress-on-port-80", confSelect("pod", "a"),
				confIngress(confFrom(nil, confPort(80, confSCTPRef)))))},
			probes: []confProbe{confOn(81, confTCP, newConfReach().ExpectAllIngress("x/a", false))},
		}},
	})

	add(confCase{
		name: "should not allow access by TCP when a policy specifies only UDP",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-only-confUDP-ingress-on-port-81", confSelect("pod", "a"),
				confIngress(confFrom(nil, confPort(81, confUDPRef)))))},
			probes: []confProbe{confOn(81, confTCP, newConfReach().ExpectAllIngress("x/a", false))},
		}},
	})

	add(confCase{
		name: "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-client-a-via-ns-selector-for-immutable-ns-label", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(confNSPeer(confLabels(confNSName, "y")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().
				ExpectPeer(confNS("x"), confPodAt("x/a"), false).
				ExpectPeer(confNS("z"), confPodAt("x/a"), false))},
		}},
	})

	add(confCase{
		name: "should enforce policy based on NamespaceSelector with MatchExpressions using default ns label",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-ns-y-match-selector-for-immutable-ns-label", confSelect("pod", "a"),
				confEgress(confTo(confPeers(confNSPeer(confExpr(confNSName, metav1.LabelSelectorOpNotIn, "y")))))))},
			probes: []confProbe{confOn(80, confTCP, newConfReach().ExpectPeer(confPodAt("x/a"), confNS("y"), false))},
		}},
	})

	// endPort: not in upstream's functional suite (only its validation is), so these are ours.
	add(confCase{
		name: "(netpol-guard) should enforce ingress policy with endPort covering both ports",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-y-80-81", confSelect("pod", "a"),
				confIngress(confFrom(confPeers(confNSPeer(confLabels(confNSName, "y"))), confPortRange(80, 81, confTCPRef)))))},
			probes: []confProbe{
				confOn(80, confTCP, newConfReach().
					ExpectPeer(confNS("x"), confPodAt("x/a"), false).
					ExpectPeer(confNS("z"), confPodAt("x/a"), false)),
				confOn(81, confTCP, newConfReach().
					ExpectPeer(confNS("x"), confPodAt("x/a"), false).
					ExpectPeer(confNS("z"), confPodAt("x/a"), false)),
				confOn(81, confUDP, newConfReach().ExpectAllIngress("x/a", false)),
			},
		}},
	})

	add(confCase{
		name: "(netpol-guard) should enforce ingress policy with endPort starting above the probed port",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-81-82", confSelect(),
				confIngress(confFrom(nil, confPortRange(81, 82, nil)))))},
			probes: []confProbe{
				confOn(80, confTCP, newConfReach().ExpectPeer(confAny, confNS("x"), false)),
				confOn(81, confTCP, newConfReach()),
			},
		}},
	})

	add(confCase{
		name: "(netpol-guard) should enforce egress policy with endPort ending at the probed port",
		steps: []confStep{{
			changes: []confChange{confCreate(confPolicy("x", "allow-egress-79-80", confSelect("pod", "a"),
				confEgress(confTo(confPeers(confNSPeer(confLabels())), confPortRange(79, 80, confUDPRef)))))},
			probes: []confProbe{
				confOn(80, confUDP, newConfReach()),
				confOn(81, confUDP, newConfReach().ExpectAllEgress("x/a", false)),
				confOn(80, confTCP, newConfReach().ExpectAllEgress("x/a", false)),
			},
		}},
	})

	return cases
}

func confProtoPrefix(proto corev1.Protocol) string {
	if proto == confTCP {
		return ""
	}
	return "[" + string(proto) + "] "
}

// ---------------------------------------------------------------------------------------
// The test.

func TestConformance(t *testing.T) {
	cases := confCases()
	seen := map[string]bool{}
	steps, probes := 0, 0
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("duplicate case %q", c.name)
		}
		seen[c.name] = true
		steps += len(c.steps)
		for _, st := range c.steps {
			probes += len(st.probes)
		}
	}
	t.Logf("%d cases, %d steps, %d matrices of %d pairs", len(cases), steps, probes, len(confPods)*len(confPods))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runConfCase(t, c)
		})
	}
}

func runConfCase(t *testing.T, c confCase) {
	ps, err := evaluator.Compile(nil)
	if err != nil {
		t.Fatalf("Compile(nil): %v", err)
	}
	var current []*networkingv1.NetworkPolicy
	nsLabels := map[string]map[string]string{}
	podLabels := map[string]map[string]string{}

	for si, st := range c.steps {
		stepName := fmt.Sprintf("step %d", si+1)
		for _, ch := range st.changes {
			ps, err = ps.With(ch.old, ch.new)
			if err != nil {
				t.Fatalf("%s: With(%s, %s): %v", stepName, confPolicyName(ch.old), confPolicyName(ch.new), err)
			}
			current = confApply(current, ch)
		}
		// The same set compiled from scratch must decide the same: With is the webhook's path,
		// Compile the CLI's.
		fresh, err := evaluator.Compile(current)
		if err != nil {
			t.Fatalf("%s: Compile: %v", stepName, err)
		}
		for ns, l := range st.nsLabels {
			nsLabels[ns] = confMerge(nsLabels[ns], l)
		}
		for pod, l := range st.podLabels {
			podLabels[pod] = confMerge(podLabels[pod], l)
		}
		m := newConfModel(c.family, nsLabels, podLabels)

		for _, pr := range st.probes {
			ev := evaluator.NewEvaluation(ps, m.world)
			evFresh := evaluator.NewEvaluation(fresh, m.world)
			got := map[[2]string]evaluator.Verdict{}
			var mismatches, explain []string
			for _, from := range confPods {
				for _, to := range confPods {
					f := evaluator.Flow{Src: m.endpoints[from], Dst: m.endpoints[to], Port: pr.port, Protocol: pr.protocol}
					v := ev.Verdict(f)
					got[[2]string{from, to}] = v
					if want := pr.want.want[[2]string{from, to}]; v.Allowed != want {
						mismatches = append(mismatches, fmt.Sprintf("%s: want %s, got %s: %s", f, confWord(want), confWord(v.Allowed), v.Reason()))
					}
					if vf := evFresh.Verdict(f); vf.Allowed != v.Allowed {
						t.Errorf("%s %s/%d: %s: set built by With says %s, set built by Compile says %s", stepName, pr.protocol, pr.port, f, confWord(v.Allowed), confWord(vf.Allowed))
					}
					if !v.Allowed {
						if v.Reason() == "" {
							explain = append(explain, fmt.Sprintf("%s: denied with an empty Reason()", f))
						}
						if !v.Ingress.Isolated && !v.Egress.Isolated {
							explain = append(explain, fmt.Sprintf("%s: denied but neither end is isolated: %s", f, v.Reason()))
						}
					}
				}
			}
			for _, e := range explain {
				t.Errorf("%s %s/%d: %s", stepName, pr.protocol, pr.port, e)
			}
			if len(mismatches) == 0 {
				continue
			}
			var b strings.Builder
			fmt.Fprintf(&b, "%s %s/%d: %d of %d pairs differ from upstream's expectation\n", stepName, pr.protocol, pr.port, len(mismatches), len(confPods)*len(confPods))
			fmt.Fprintf(&b, "policies:\n%s", confDescribe(current))
			b.WriteString("expected (rows from, columns to; '.' allowed, 'X' denied):\n")
			b.WriteString(confTable(func(f, to string) bool { return pr.want.want[[2]string{f, to}] }, func(string, string) string { return "" }))
			b.WriteString("observed ('!' marks a cell that differs):\n")
			b.WriteString(confTable(
				func(f, to string) bool { return got[[2]string{f, to}].Allowed },
				func(f, to string) string {
					if got[[2]string{f, to}].Allowed != pr.want.want[[2]string{f, to}] {
						return "!"
					}
					return ""
				}))
			b.WriteString(strings.Join(mismatches, "\n"))
			t.Error(b.String())
		}
	}
}

func confApply(list []*networkingv1.NetworkPolicy, ch confChange) []*networkingv1.NetworkPolicy {
	out := slices.Clone(list)
	if ch.old != nil {
		out = slices.DeleteFunc(out, func(p *networkingv1.NetworkPolicy) bool {
			return p.Namespace == ch.old.Namespace && p.Name == ch.old.Name
		})
	}
	if ch.new != nil {
		out = append(out, ch.new)
	}
	return out
}

func confMerge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func confPolicyName(p *networkingv1.NetworkPolicy) string {
	if p == nil {
		return "nil"
	}
	return p.Namespace + "/" + p.Name
}

func confWord(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

// confDescribe prints each policy's spec compactly for failure messages.
func confDescribe(list []*networkingv1.NetworkPolicy) string {
	if len(list) == 0 {
		return "    (none)\n"
	}
	var b strings.Builder
	for _, p := range list {
		fmt.Fprintf(&b, "    %s: %s\n", confPolicyName(p), p.Spec.String())
	}
	return b.String()
}

// ---------------------------------------------------------------------------------------
// Diff cases.

func TestConformanceDiff(t *testing.T) {
	const fam = confIPv4
	m := newConfModel(fam, nil, nil)
	node1 := &evaluator.Endpoint{Kind: evaluator.Node, Name: "node-1", NodeName: confNode, IP: confNodeIP(fam)}
	node2IP := netip.MustParseAddr("10.0.255.2")
	m.world.NodeAddresses["node-2"] = []netip.Addr{node2IP}
	node2 := &evaluator.Endpoint{Kind: evaluator.Node, Name: "node-2", NodeName: "node-2", IP: node2IP}
	node1Addr := &evaluator.Endpoint{Kind: evaluator.External, IP: confNodeIP(fam)} // node-1's address, not resolved to the node
	outside := &evaluator.Endpoint{Kind: evaluator.External, IP: netip.MustParseAddr("192.0.2.10")}

	// podFlows is every ordered pod pair on each port, TCP.
	podFlows := func(ports ...int32) []evaluator.Flow {
		var out []evaluator.Flow
		for _, port := range ports {
			for _, from := range confPods {
				for _, to := range confPods {
					out = append(out, evaluator.Flow{Src: m.endpoints[from], Dst: m.endpoints[to], Port: port, Protocol: confTCP})
				}
			}
		}
		return out
	}
	into := func(srcs []*evaluator.Endpoint, port int32) []evaluator.Flow {
		var out []evaluator.Flow
		for _, src := range srcs {
			for _, to := range confPods {
				out = append(out, evaluator.Flow{Src: src, Dst: m.endpoints[to], Port: port, Protocol: confTCP})
			}
		}
		return out
	}
	is := func(e *evaluator.Endpoint, pod string) bool { return e == m.endpoints[pod] }
	inNS := func(e *evaluator.Endpoint, ns string) bool { return e.Kind == evaluator.Pod && e.Namespace == ns }

	denyX := confPolicy("x", "default-deny", confSelect(), confIngress())
	allowFromY := confPolicy("x", "allow-a-from-y", confSelect("pod", "a"),
		confIngress(confFrom(confPeers(confNSPeer(confLabels(confNSName, "y"))))))
	allowFromAnyB := confPolicy("x", "allow-a-from-any-b", confSelect("pod", "a"),
		confIngress(confFrom(confPeers(confPodNSPeer(confLabels("pod", "b"), confLabels())))))
	web := func(ports ...int32) *networkingv1.NetworkPolicy {
		var pp []networkingv1.NetworkPolicyPort
		for _, p := range ports {
			pp = append(pp, confPort(p, confTCPRef))
		}
		return confPolicy("x", "allow-web", confSelect("pod", "a"),
			confIngress(confFrom(confPeers(confNSPeer(confLabels(confNSName, "y"))), pp...)))
	}
	web8081, web80 := web(80, 81), web(80)

	cases := []struct {
		name   string
		before []*networkingv1.NetworkPolicy
		change confChange
		flows  []evaluator.Flow
		cut    func(f evaluator.Flow) bool
	}{
		{
			// x/a stays isolated by default-deny and allow-a-from-y; only what allow-a-from-any-b
			// alone allowed is cut: pod b of x and z. y/b is still allowed by allow-a-from-y.
			name:   "delete of one of two allowing policies cuts",
			before: []*networkingv1.NetworkPolicy{denyX, allowFromY, allowFromAnyB},
			change: confDelete(allowFromAnyB),
			flows:  podFlows(80),
			cut: func(f evaluator.Flow) bool {
				return is(f.Dst, "x/a") && (is(f.Src, "x/b") || is(f.Src, "z/b"))
			},
		},
		{
			name:   "delete of the only policy isolating a pod cuts nothing",
			before: []*networkingv1.NetworkPolicy{allowFromY},
			change: confDelete(allowFromY),
			flows:  podFlows(80, 81),
			cut:    func(evaluator.Flow) bool { return false },
		},
		{
			// Pods cannot block their own node, whether it is known as a Node endpoint or only by
			// one of its addresses; another node and outside addresses are cut like pods.
			name:   "create default-deny cuts every flow into the namespace's pods but not from own node",
			change: confCreate(denyX),
			flows:  slices.Concat(podFlows(80), into([]*evaluator.Endpoint{node1, node2, node1Addr, outside}, 80)),
			cut: func(f evaluator.Flow) bool {
				return inNS(f.Dst, "x") && f.Src != node1 && f.Src != node1Addr
			},
		},
		{
			name:   "update narrowing a port cuts only the other port",
			before: []*networkingv1.NetworkPolicy{web8081},
			change: confUpdate(web8081, web80),
			flows:  podFlows(80, 81),
			cut: func(f evaluator.Flow) bool {
				return is(f.Dst, "x/a") && inNS(f.Src, "y") && f.Port == 81
			},
		},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, err := evaluator.Compile(c.before)
			if err != nil {
				t.Fatalf("Compile(before): %v", err)
			}
			after, err := before.With(c.change.old, c.change.new)
			if err != nil {
				t.Fatalf("With: %v", err)
			}
			res := evaluator.Diff(before, after, m.world, c.flows)

			var want, got []int
			for i, f := range c.flows {
				if c.cut(f) {
					want = append(want, i)
				}
			}
			for _, cut := range res.Cut {
				got = append(got, cut.Index)
				if cut.Index < 0 || cut.Index >= len(c.flows) {
					t.Errorf("cut index %d out of range", cut.Index)
					continue
				}
				if cut.Flow != c.flows[cut.Index] {
					t.Errorf("cut %d: flow %s, but input[%d] is %s", cut.Index, cut.Flow, cut.Index, c.flows[cut.Index])
				}
				if !cut.Before.Allowed || cut.After.Allowed {
					t.Errorf("cut %s: before %s, after %s; want allowed then denied", cut.Flow, confWord(cut.Before.Allowed), confWord(cut.After.Allowed))
				}
				if cut.After.Reason() == "" {
					t.Errorf("cut %s: empty Reason() for the denial", cut.Flow)
				}
			}
			if !slices.IsSorted(got) {
				t.Errorf("cuts not in input order: %v", got)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("cut flows differ\n%s", confIndexDiff(c.flows, want, got))
			}
			s := res.Summary
			if s.Flows != len(c.flows) || s.Cut != len(res.Cut) || s.Candidates < s.Cut || s.Candidates > s.Flows {
				t.Errorf("summary %+v: want flows=%d, cut=%d, cut ≤ candidates ≤ flows", s, len(c.flows), len(res.Cut))
			}
		})
	}
}

func confIndexDiff(flows []evaluator.Flow, want, got []int) string {
	var b strings.Builder
	for _, i := range want {
		if !slices.Contains(got, i) {
			fmt.Fprintf(&b, "    missing cut [%d] %s\n", i, flows[i])
		}
	}
	for _, i := range got {
		if !slices.Contains(want, i) && i >= 0 && i < len(flows) {
			fmt.Fprintf(&b, "    unexpected cut [%d] %s\n", i, flows[i])
		}
	}
	return b.String()
}
