package evaluator_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	. "github.com/netpol-guard/netpol-guard/evaluator"
)

// makeCNP returns an Admin tier ClusterNetworkPolicy at priority 10 whose subject is every
// pod of namespace shop, shaped by tweaks.
func makeCNP(name string, tweaks ...func(*ClusterPolicy)) *ClusterPolicy {
	p := &ClusterPolicy{Kind: ClusterNetworkPolicyKind, Name: name, Spec: v1beta1.ClusterNetworkPolicySpec{
		Tier: v1beta1.AdminTier, Priority: 10,
		Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: nsNamed("shop")},
	}}
	for _, t := range tweaks {
		t(p)
	}
	return p
}

func nsNamed(ns string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
}

func baseline(p *ClusterPolicy) { p.Spec.Tier = v1beta1.BaselineTier }

func priority(n int32) func(*ClusterPolicy) { return func(p *ClusterPolicy) { p.Spec.Priority = n } }

func subjectPods(ns string, kv ...string) func(*ClusterPolicy) {
	return func(p *ClusterPolicy) {
		p.Spec.Subject = v1beta1.ClusterNetworkPolicySubject{Pods: &v1beta1.NamespacedPod{NamespaceSelector: *nsNamed(ns), PodSelector: *pods(kv...)}}
	}
}

func cIn(action v1beta1.ClusterNetworkPolicyRuleAction, protos []v1beta1.ClusterNetworkPolicyProtocol, from ...v1beta1.ClusterNetworkPolicyIngressPeer) func(*ClusterPolicy) {
	return func(p *ClusterPolicy) {
		p.Spec.Ingress = append(p.Spec.Ingress, v1beta1.ClusterNetworkPolicyIngressRule{Action: action, From: from, Protocols: protos})
	}
}

func cOut(action v1beta1.ClusterNetworkPolicyRuleAction, protos []v1beta1.ClusterNetworkPolicyProtocol, to ...v1beta1.ClusterNetworkPolicyEgressPeer) func(*ClusterPolicy) {
	return func(p *ClusterPolicy) {
		p.Spec.Egress = append(p.Spec.Egress, v1beta1.ClusterNetworkPolicyEgressRule{Action: action, To: to, Protocols: protos})
	}
}

const (
	accept = v1beta1.ClusterNetworkPolicyRuleActionAccept
	deny   = v1beta1.ClusterNetworkPolicyRuleActionDeny
	pass   = v1beta1.ClusterNetworkPolicyRuleActionPass
)

func fromNS(ns string) v1beta1.ClusterNetworkPolicyIngressPeer {
	return v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: nsNamed(ns)}
}

func toNS(ns string) v1beta1.ClusterNetworkPolicyEgressPeer {
	return v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: nsNamed(ns)}
}

func toAllPods() v1beta1.ClusterNetworkPolicyEgressPeer {
	return v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: &metav1.LabelSelector{}}
}

func toNets(cidrs ...string) v1beta1.ClusterNetworkPolicyEgressPeer {
	var out v1beta1.ClusterNetworkPolicyEgressPeer
	for _, c := range cidrs {
		out.Networks = append(out.Networks, v1beta1.CIDR(c))
	}
	return out
}

func toDomains(names ...string) v1beta1.ClusterNetworkPolicyEgressPeer {
	var out v1beta1.ClusterNetworkPolicyEgressPeer
	for _, n := range names {
		out.DomainNames = append(out.DomainNames, v1beta1.DomainName(n))
	}
	return out
}

func toNodes(kv ...string) v1beta1.ClusterNetworkPolicyEgressPeer {
	return v1beta1.ClusterNetworkPolicyEgressPeer{Nodes: pods(kv...)}
}

func tcpPort(n int32) []v1beta1.ClusterNetworkPolicyProtocol {
	return []v1beta1.ClusterNetworkPolicyProtocol{{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: n}}}}
}

func namedPort(name string) []v1beta1.ClusterNetworkPolicyProtocol {
	return []v1beta1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: name}}
}

// clusterWorld is shop/cart and shop/web, pay/api, a node and an address outside.
type clusterWorld struct {
	w                   *World
	cart, web, api, ext *Endpoint
	node                *Endpoint
	workload            *Endpoint // pay/Deployment/batch: two pods, 10.2.0.1 and 10.2.0.2
}

func newClusterWorld() *clusterWorld {
	c := &clusterWorld{w: &World{
		NamespaceLabels: map[string]map[string]string{"shop": {"team": "shop"}, "pay": {"team": "pay"}},
		NodeAddresses:   map[string][]netip.Addr{"node-a": {netip.MustParseAddr("10.9.0.1")}, "node-b": {netip.MustParseAddr("10.9.0.2")}},
		NodeLabels:      map[string]map[string]string{"node-a": {"role": "control-plane"}, "node-b": {"role": "worker"}},
	}}
	c.cart = &Endpoint{Kind: Pod, Namespace: "shop", Name: "cart", Labels: map[string]string{"app": "cart"}, NodeName: "node-a", IP: netip.MustParseAddr("10.0.0.1"),
		Ports: []ContainerPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}}
	c.web = &Endpoint{Kind: Pod, Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}, NodeName: "node-b", IP: netip.MustParseAddr("10.0.0.2")}
	c.api = &Endpoint{Kind: Pod, Namespace: "pay", Name: "api", Labels: map[string]string{"app": "api"}, NodeName: "node-b", IP: netip.MustParseAddr("10.1.0.1"),
		Ports: []ContainerPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}}
	c.ext = &Endpoint{Kind: External, IP: netip.MustParseAddr("203.0.113.7")}
	c.node = &Endpoint{Kind: Node, Name: "node-a", NodeName: "node-a", IP: netip.MustParseAddr("10.9.0.1")}
	wl := &Endpoint{Kind: Pod, Namespace: "pay", Name: "Deployment/batch", Labels: map[string]string{"app": "batch"}, Nodes: []string{"node-b"}}
	for i, ip := range []string{"10.2.0.1", "10.2.0.2"} {
		wl.Pods = append(wl.Pods, &Endpoint{Kind: Pod, Namespace: "pay", Name: wl.Name, Pod: "batch-" + string(rune('0'+i)), Labels: wl.Labels, NodeName: "node-b", Nodes: wl.Nodes, IP: netip.MustParseAddr(ip)})
	}
	c.workload = wl
	return c
}

func TestClusterPolicyVerdicts(t *testing.T) {
	c := newClusterWorld()
	denyAll := makePolicy("deny-all", selecting(metav1.LabelSelector{}), types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
	allowFromPay := makePolicy("allow-pay", ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: pods("team", "pay")}))
	for _, tc := range []struct {
		name     string
		nps      []*networkingv1.NetworkPolicy
		cnps     []*ClusterPolicy
		flow     Flow
		want     string // allow, deny, uncertain
		reason   string // part of Reason()
		tiedWith string
	}{
		{name: "admin deny overrides a NetworkPolicy allow",
			nps:  []*networkingv1.NetworkPolicy{allowFromPay},
			cnps: []*ClusterPolicy{makeCNP("no-pay", cIn(deny, nil, fromNS("pay")))},
			flow: Flow{Src: c.api, Dst: c.cart, Port: 8080}, want: "deny", reason: "ingress decided by admin cnp/no-pay priority 10 ingress[0] Deny"},
		{name: "admin accept overrides NetworkPolicy isolation",
			nps:  []*networkingv1.NetworkPolicy{denyAll},
			cnps: []*ClusterPolicy{makeCNP("pay-in", cIn(accept, nil, fromNS("pay")))},
			flow: Flow{Src: c.api, Dst: c.cart, Port: 8080}, want: "allow", reason: "ingress decided by admin cnp/pay-in"},
		{name: "pass hands the flow to the NetworkPolicy that isolates the pod",
			nps:  []*networkingv1.NetworkPolicy{denyAll},
			cnps: []*ClusterPolicy{makeCNP("pass-pay", cIn(pass, nil, fromNS("pay")), cIn(accept, nil, fromNS("pay"))), makeCNP("base", baseline, cIn(accept, nil, fromNS("pay")))},
			flow: Flow{Src: c.api, Dst: c.cart, Port: 8080}, want: "deny", reason: "ingress passed by admin cnp/pass-pay priority 10 ingress[0] Pass, isolated by shop/deny-all"},
		{name: "pass with no NetworkPolicy goes to the baseline tier",
			cnps: []*ClusterPolicy{makeCNP("pass-pay", cIn(pass, nil, fromNS("pay"))), makeCNP("base", baseline, cIn(deny, nil, fromNS("pay")))},
			flow: Flow{Src: c.api, Dst: c.cart, Port: 8080}, want: "deny", reason: "baseline cnp/base priority 10 ingress[0] Deny"},
		{name: "baseline is not consulted for a pod a NetworkPolicy isolates",
			nps:  []*networkingv1.NetworkPolicy{allowFromPay},
			cnps: []*ClusterPolicy{makeCNP("base", baseline, cIn(deny, nil, fromNS("pay")))},
			flow: Flow{Src: c.api, Dst: c.cart, Port: 8080}, want: "allow", reason: "ingress allowed by shop/allow-pay ingress[0]"},
		{name: "baseline decides a pod isolated only for the other direction",
			nps:  []*networkingv1.NetworkPolicy{makePolicy("egress-only", types(networkingv1.PolicyTypeEgress))},
			cnps: []*ClusterPolicy{makeCNP("base", baseline, cIn(deny, nil, fromNS("pay")))},
			flow: Flow{Src: c.api, Dst: c.cart, Port: 8080}, want: "deny"},
		{name: "no rule matching falls through to the default allow",
			cnps: []*ClusterPolicy{makeCNP("no-pay", cIn(deny, tcpPort(9090), fromNS("pay")))},
			flow: Flow{Src: c.api, Dst: c.cart, Port: 8080}, want: "allow", reason: "ingress not isolated"},
		{name: "lower priority number is tried first",
			cnps: []*ClusterPolicy{makeCNP("deny-20", priority(20), cIn(deny, nil, fromNS("pay"))), makeCNP("accept-5", priority(5), cIn(accept, nil, fromNS("pay")))},
			flow: Flow{Src: c.api, Dst: c.cart, Port: 8080}, want: "allow", reason: "accept-5 priority 5"},
		{name: "first matching rule of a policy decides",
			cnps: []*ClusterPolicy{makeCNP("ordered", cIn(deny, tcpPort(8080), fromNS("pay")), cIn(accept, nil, fromNS("pay")))},
			flow: Flow{Src: c.api, Dst: c.cart, Port: 8080}, want: "deny", reason: "ingress[0] Deny"},
		{name: "egress accepted by admin still needs the destination's ingress",
			cnps: []*ClusterPolicy{makeCNP("out", cOut(accept, nil, toNS("pay"))), makeCNP("pay-closed", baseline, subjectPods("pay"), cIn(deny, nil, fromNS("shop")))},
			flow: Flow{Src: c.cart, Dst: c.api, Port: 8080}, want: "deny", reason: "egress decided by admin cnp/out"},
		{name: "networks match pod addresses as ipBlock does",
			cnps: []*ClusterPolicy{makeCNP("no-10", cOut(deny, nil, toNets("10.1.0.0/16")))},
			flow: Flow{Src: c.cart, Dst: c.api, Port: 8080}, want: "deny"},
		{name: "networks match outside addresses",
			cnps: []*ClusterPolicy{makeCNP("no-internet", cOut(pass, nil, toAllPods()), cOut(deny, nil, toNets("0.0.0.0/0", "::/0")))},
			flow: Flow{Src: c.cart, Dst: c.ext, Port: 443}, want: "deny", reason: "egress[1] Deny"},
		{name: "pass before a networks deny keeps pod traffic",
			cnps: []*ClusterPolicy{makeCNP("no-internet", cOut(pass, nil, toAllPods()), cOut(deny, nil, toNets("0.0.0.0/0", "::/0")))},
			flow: Flow{Src: c.cart, Dst: c.api, Port: 8080}, want: "allow", reason: "egress passed by admin cnp/no-internet"},
		{name: "nodes peer matches a node by its labels",
			cnps: []*ClusterPolicy{makeCNP("no-cp", cOut(deny, nil, toNodes("role", "control-plane")))},
			flow: Flow{Src: c.cart, Dst: c.node, Port: 6443}, want: "deny"},
		{name: "nodes peer matches a node's address seen as external",
			cnps: []*ClusterPolicy{makeCNP("no-cp", cOut(deny, nil, toNodes("role", "control-plane")))},
			flow: Flow{Src: c.cart, Dst: &Endpoint{Kind: External, IP: netip.MustParseAddr("10.9.0.1")}, Port: 6443}, want: "deny"},
		{name: "nodes peer does not match a node of other labels",
			cnps: []*ClusterPolicy{makeCNP("no-workers", cOut(deny, nil, toNodes("role", "worker")))},
			flow: Flow{Src: c.cart, Dst: c.node, Port: 6443}, want: "allow"},
		{name: "empty nodes selector selects every node",
			cnps: []*ClusterPolicy{makeCNP("no-nodes", cOut(deny, nil, toNodes()))},
			flow: Flow{Src: c.cart, Dst: c.node, Port: 10250}, want: "deny", reason: "egress decided by admin cnp/no-nodes"},
		{name: "nodes peer does not match a pod running on a selected node",
			cnps: []*ClusterPolicy{makeCNP("no-workers", cOut(deny, nil, toNodes("role", "worker")))},
			flow: Flow{Src: c.cart, Dst: c.api, Port: 8080}, want: "allow"},
		{name: "namespaces peer does not match a host-network pod, which is its node",
			cnps: []*ClusterPolicy{makeCNP("no-pods", cOut(deny, nil, toAllPods()))},
			flow: Flow{Src: c.cart, Dst: c.node, Port: 10250}, want: "allow"},
		{name: "pass on a nodes peer leaves a node to the Baseline tier",
			cnps: []*ClusterPolicy{makeCNP("pass-cp", cOut(pass, tcpPort(6443), toNodes("role", "control-plane"))), makeCNP("base", baseline, cOut(deny, nil, toNodes()))},
			flow: Flow{Src: c.cart, Dst: c.node, Port: 6443}, want: "deny", reason: "egress decided by baseline cnp/base"},
		{name: "destinationNamedPort resolves on the destination pod",
			cnps: []*ClusterPolicy{makeCNP("no-http", subjectPods("pay"), cIn(deny, namedPort("http"), fromNS("shop")))},
			flow: Flow{Src: c.cart, Dst: c.api, Port: 8080}, want: "deny"},
		{name: "destinationNamedPort on another number does not match",
			cnps: []*ClusterPolicy{makeCNP("no-http", subjectPods("pay"), cIn(deny, namedPort("http"), fromNS("shop")))},
			flow: Flow{Src: c.cart, Dst: c.api, Port: 8081}, want: "allow"},
		{name: "domainNames allow-list before a deny is uncertain for an outside address",
			cnps: []*ClusterPolicy{makeCNP("allow-list", cOut(accept, nil, toDomains("*.example.com")), cOut(deny, nil, toNets("0.0.0.0/0")))},
			flow: Flow{Src: c.cart, Dst: c.ext, Port: 443}, want: "uncertain", reason: "egress uncertain: admin cnp/allow-list priority 10 egress[0] Accept"},
		{name: "domainNames rule is no question when the flow is allowed anyway",
			cnps: []*ClusterPolicy{makeCNP("allow-list", cOut(accept, nil, toDomains("example.com")), cOut(accept, nil, toNets("203.0.113.0/24")))},
			flow: Flow{Src: c.cart, Dst: c.ext, Port: 443}, want: "allow"},
		{name: "domainNames never match a pod",
			cnps: []*ClusterPolicy{makeCNP("allow-list", cOut(accept, nil, toDomains("example.com")), cOut(deny, nil, toNets("0.0.0.0/0")))},
			flow: Flow{Src: c.cart, Dst: c.api, Port: 8080}, want: "deny"},
		{name: "a pod's own node reaches it through an admin deny",
			cnps: []*ClusterPolicy{makeCNP("no-nodes", cIn(deny, nil, fromNS("pay")))},
			flow: Flow{Src: c.node, Dst: c.cart, Port: 8080}, want: "allow"},
		{name: "equal priorities are explained as implementation-defined",
			cnps: []*ClusterPolicy{makeCNP("a-deny", cIn(deny, nil, fromNS("pay"))), makeCNP("b-accept", cIn(accept, nil, fromNS("pay")))},
			flow: Flow{Src: c.api, Dst: c.cart, Port: 8080}, want: "deny", reason: "implementation-defined", tiedWith: "cnp/b-accept"},
		{name: "a workload's pods are told apart by a networks peer",
			cnps: []*ClusterPolicy{makeCNP("no-batch-1", cOut(deny, nil, toNets("10.2.0.2/32")))},
			flow: Flow{Src: c.cart, Dst: c.workload, Port: 8080}, want: "deny", reason: "egress decided by admin cnp/no-batch-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := CompileAll(tc.nps, tc.cnps)
			if err != nil {
				t.Fatal(err)
			}
			v := NewEvaluation(ps, c.w).Verdict(tc.flow)
			if v.Word() != tc.want {
				t.Fatalf("%s: got %s (%s), want %s", tc.flow, v.Word(), v.Reason(), tc.want)
			}
			if got := NewEvaluation(ps, c.w).Allowed(tc.flow); got != (tc.want == "allow") {
				t.Errorf("Allowed = %v, Verdict says %s", got, v.Word())
			}
			if !strings.Contains(v.Reason(), tc.reason) {
				t.Errorf("reason %q does not say %q", v.Reason(), tc.reason)
			}
			if tc.tiedWith != "" {
				s := v.Ingress
				if s.DecidedBy == nil || len(s.DecidedBy.TiedWith) != 1 || s.DecidedBy.TiedWith[0].String() != tc.tiedWith {
					t.Errorf("DecidedBy %+v, want tied with %s", s.DecidedBy, tc.tiedWith)
				}
			}
		})
	}
}

func TestWorkloadSplitByNetworksNamesThePod(t *testing.T) {
	c := newClusterWorld()
	ps, err := CompileAll(nil, []*ClusterPolicy{makeCNP("no-batch-1", cOut(deny, nil, toNets("10.2.0.2/32")))})
	if err != nil {
		t.Fatal(err)
	}
	v := NewEvaluation(ps, c.w).Verdict(Flow{Src: c.cart, Dst: c.workload, Port: 8080})
	if v.Allowed || !slices.Equal(v.Pods, []string{"batch-1 (node-b)"}) {
		t.Errorf("verdict %s on pods %v, want deny naming batch-1", v.Word(), v.Pods)
	}
}

func TestCreateOfAdminDenyIsACut(t *testing.T) {
	c := newClusterWorld()
	before, err := CompileAll([]*networkingv1.NetworkPolicy{makePolicy("allow-pay", ingressFrom(nil, networkingv1.NetworkPolicyPeer{NamespaceSelector: pods("team", "pay")}))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cnp := makeCNP("no-pay", cIn(deny, nil, fromNS("pay")))
	after, err := before.WithCluster(nil, cnp)
	if err != nil {
		t.Fatal(err)
	}
	flows := []Flow{
		{Src: c.api, Dst: c.cart, Port: 8080},  // cut
		{Src: c.web, Dst: c.cart, Port: 8080},  // denied before and after
		{Src: c.api, Dst: c.web, Port: 8080},   // web is in shop: cut too
		{Src: c.cart, Dst: c.api, Port: 8080},  // into pay: no subject
		{Src: c.ext, Dst: c.api, Port: 8080},   // not a candidate
		{Src: c.node, Dst: c.cart, Port: 8080}, // own node
	}
	res := Diff(before, after, c.w, flows)
	if !slices.Equal(res.CutIndexes, []int{0, 2}) {
		t.Errorf("cut %v, want [0 2]", res.CutIndexes)
	}
	if res.Summary.Candidates != 5 || res.Summary.ClusterPoliciesChanged != 1 || res.Summary.PoliciesChanged != 0 {
		t.Errorf("summary %+v", res.Summary)
	}
	if got := res.Cut[0].After.Reason(); !strings.Contains(got, "admin cnp/no-pay priority 10 ingress[0] Deny") {
		t.Errorf("cut explained as %q", got)
	}
	// Deleting it gives the flows back: nothing is cut.
	if back := Diff(after, before, c.w, flows); len(back.CutIndexes) != 0 {
		t.Errorf("delete cut %v", back.CutIndexes)
	}
}

func TestDomainNamesChangeIsUncertainNotCut(t *testing.T) {
	c := newClusterWorld()
	before, err := CompileAll(nil, []*ClusterPolicy{makeCNP("egress", cOut(accept, nil, toNets("203.0.113.0/24")))})
	if err != nil {
		t.Fatal(err)
	}
	old := before.ClusterPolicies()[0]
	narrowed := makeCNP("egress", cOut(accept, nil, toDomains("api.example.com")), cOut(deny, nil, toNets("0.0.0.0/0")))
	after, err := before.WithCluster(old, narrowed)
	if err != nil {
		t.Fatal(err)
	}
	flows := []Flow{{Src: c.cart, Dst: c.ext, Port: 443}, {Src: c.cart, Dst: c.api, Port: 8080}}
	res := Diff(before, after, c.w, flows)
	if !slices.Equal(res.Uncertain, []int{0}) || !slices.Equal(res.CutIndexes, []int{1}) || res.Summary.Uncertain != 1 {
		t.Fatalf("uncertain %v cut %v, want [0] and [1]", res.Uncertain, res.CutIndexes)
	}
	if u := res.UncertainCuts[0]; u.After.Word() != "uncertain" || !u.Before.Allowed {
		t.Errorf("uncertain flow explained as %s → %s", u.Before.Word(), u.After.Word())
	}
}

func TestNetworkPolicyChangeUnderAnAdminAccept(t *testing.T) {
	c := newClusterWorld()
	before, err := CompileAll(nil, []*ClusterPolicy{makeCNP("pay-in", cIn(accept, nil, fromNS("pay")))})
	if err != nil {
		t.Fatal(err)
	}
	after, err := before.With(nil, makePolicy("deny-all", selecting(metav1.LabelSelector{}), emptyIngress))
	if err != nil {
		t.Fatal(err)
	}
	res := Diff(before, after, c.w, []Flow{{Src: c.api, Dst: c.cart, Port: 8080}, {Src: c.web, Dst: c.cart, Port: 8080}})
	if !slices.Equal(res.CutIndexes, []int{1}) {
		t.Errorf("cut %v, want only the flow the admin tier does not accept", res.CutIndexes)
	}
}

func TestInvalidClusterPoliciesAreReported(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *ClusterPolicy
		want string
	}{
		{"priority over 1000", makeCNP("p", priority(1001)), "spec.priority"},
		{"domainNames outside an Accept rule", makeCNP("p", cOut(deny, nil, toDomains("example.com"))), "only supported in Accept rules"},
		{"named port with networks", makeCNP("p", cOut(accept, namedPort("http"), toNets("10.0.0.0/8"))), "namedPorts"},
		{"unmasked CIDR", makeCNP("p", cOut(accept, nil, toNets("10.0.0.1/8"))), "spec.egress[0].to[0].networks[0]"},
		{"rule without peers", makeCNP("p", cIn(deny, nil)), "spec.ingress[0].from"},
		{"unknown tier", makeCNP("p", func(p *ClusterPolicy) { p.Spec.Tier = "Developer" }), "spec.tier"},
		{"two subjects", makeCNP("p", func(p *ClusterPolicy) { p.Spec.Subject.Pods = &v1beta1.NamespacedPod{} }), "spec.subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompileAll(nil, []*ClusterPolicy{tc.p})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one about %s", err, tc.want)
			}
		})
	}
}

func TestAdminNetworkPolicyConvertsToTheAdminTier(t *testing.T) {
	port := "http"
	anp := &v1alpha1.AdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}, Spec: v1alpha1.AdminNetworkPolicySpec{
		Priority: 7,
		Subject:  v1alpha1.AdminNetworkPolicySubject{Namespaces: nsNamed("shop")},
		Ingress: []v1alpha1.AdminNetworkPolicyIngressRule{{Action: v1alpha1.AdminNetworkPolicyRuleActionAllow,
			From:  []v1alpha1.AdminNetworkPolicyIngressPeer{{Namespaces: nsNamed("pay")}},
			Ports: &[]v1alpha1.AdminNetworkPolicyPort{{PortNumber: &v1alpha1.Port{Protocol: corev1.ProtocolUDP, Port: 53}}, {NamedPort: &port}, {PortRange: &v1alpha1.PortRange{Start: 1, End: 9}}}}},
	}}
	got := ClusterPolicyFromAdminNetworkPolicy(anp)
	want := makeCNP("legacy", priority(7), cIn(accept, []v1beta1.ClusterNetworkPolicyProtocol{
		{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Number: 53}}},
		{DestinationNamedPort: "http"},
		{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Range: &v1beta1.PortRange{Start: 1, End: 9}}}},
	}, fromNS("pay")))
	want.Kind = AdminNetworkPolicyKind
	if !equalPolicies(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got.Ref().String() != "anp/legacy" {
		t.Errorf("ref %s", got.Ref())
	}

	banp := &v1alpha1.BaselineAdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.BaselineAdminNetworkPolicySpec{
		Subject: v1alpha1.AdminNetworkPolicySubject{Namespaces: nsNamed("shop")},
		Egress: []v1alpha1.BaselineAdminNetworkPolicyEgressRule{{Action: v1alpha1.BaselineAdminNetworkPolicyRuleActionDeny,
			To: []v1alpha1.BaselineAdminNetworkPolicyEgressPeer{{Networks: []v1alpha1.CIDR{"0.0.0.0/0"}}}}},
	}}
	b := ClusterPolicyFromBaselineAdminNetworkPolicy(banp)
	if b.Spec.Tier != v1beta1.BaselineTier || b.Spec.Priority != BaselineAdminNetworkPolicyPriority || b.Spec.Egress[0].Action != deny || b.Spec.Egress[0].To[0].Networks[0] != "0.0.0.0/0" {
		t.Errorf("banp converted to %+v", b)
	}

	v2 := &v1alpha2.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "same"}, Spec: v1alpha2.ClusterNetworkPolicySpec{Tier: v1alpha2.AdminTier, Priority: 3,
		Subject: v1alpha2.ClusterNetworkPolicySubject{Namespaces: nsNamed("shop")},
		Egress: []v1alpha2.ClusterNetworkPolicyEgressRule{{Name: "dns", Action: v1alpha2.ClusterNetworkPolicyRuleActionPass,
			To: []v1alpha2.ClusterNetworkPolicyEgressPeer{{Nodes: pods("role", "worker")}}}}}}
	got2, err := ClusterPolicyFromV1alpha2(v2)
	if err != nil {
		t.Fatal(err)
	}
	want2 := makeCNP("same", priority(3), cOut(pass, nil, toNodes("role", "worker")))
	want2.Spec.Egress[0].Name = "dns"
	if !equalPolicies(got2, want2) {
		t.Errorf("v1alpha2 got %+v\nwant %+v", got2, want2)
	}
	if _, err := CompileAll(nil, []*ClusterPolicy{got, b, got2}); err != nil {
		t.Errorf("converted policies do not compile: %v", err)
	}
}

func equalPolicies(a, b *ClusterPolicy) bool {
	return a.Kind == b.Kind && a.Name == b.Name && apiequality.Semantic.DeepEqual(a.Spec, b.Spec)
}
