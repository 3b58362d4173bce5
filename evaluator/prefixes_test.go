package evaluator_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	. "github.com/netpol-guard/netpol-guard/evaluator"
)

func TestSplitsPrefix(t *testing.T) {
	ps, err := CompileAll([]*networkingv1.NetworkPolicy{
		ipBlockPolicy("a", "203.0.113.0/25"),
		ipBlockPolicy("b", "198.51.0.0/16", "198.51.100.128/26"),
		ipBlockPolicy("c", "2001:db8:1::/40"),
	}, []*ClusterPolicy{{Kind: ClusterNetworkPolicyKind, Name: "n", Spec: v1beta1.ClusterNetworkPolicySpec{
		Tier: v1beta1.AdminTier, Priority: 1, Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
		Egress: []v1beta1.ClusterNetworkPolicyEgressRule{{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{"192.0.2.7/32"}}}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"203.0.113.0/24":   true,  // the /25 cidr is inside
		"203.0.113.0/25":   false, // the cidr itself
		"203.0.112.0/24":   false,
		"198.51.100.0/24":  true,  // an except is inside
		"198.51.99.0/24":   false, // wholly in the cidr
		"198.51.0.0/16":    true,  // so is the except
		"198.0.0.0/8":      true,  // the cidr is inside
		"192.0.2.0/24":     true,  // a cluster policy's network is inside
		"2001:db8:1::/48":  false,
		"2001:db8::/32":    true,
		"2001:db8:99::/48": false,
	} {
		if got := ps.SplitsPrefix(netip.MustParsePrefix(p)); got != want {
			t.Errorf("SplitsPrefix(%s) = %v, want %v", p, got, want)
		}
	}
}

func ipBlockPolicy(name, cidr string, except ...string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}},
		}}},
	}
}

// randomPrefix returns a prefix of the small address spaces the test draws from (so that
// ranges meet), v4 203.0.0.0/22 or v6 2001:db8::/46, with at least minBits bits.
func randomPrefix(r *rand.Rand, v6 bool, minBits int) netip.Prefix {
	var a netip.Addr
	bits := 0
	if v6 {
		var b [16]byte
		copy(b[:], netip.MustParseAddr("2001:db8::").AsSlice())
		b[5] = byte(r.IntN(4))
		b[6], b[15] = byte(r.IntN(256)), byte(r.IntN(256))
		a = netip.AddrFrom16(b)
		bits = max(minBits, 40) + r.IntN(128-max(minBits, 40)+1)
	} else {
		a = netip.AddrFrom4([4]byte{203, 0, byte(r.IntN(4)), byte(r.IntN(256))})
		bits = max(minBits, 20) + r.IntN(32-max(minBits, 20)+1)
	}
	return netip.PrefixFrom(a, bits).Masked()
}

func randomIPBlock(r *rand.Rand, v6 bool) *networkingv1.IPBlock {
	cidr := randomPrefix(r, v6, 0)
	b := &networkingv1.IPBlock{CIDR: cidr.String()}
	for range r.IntN(3) {
		if cidr.Bits() == cidr.Addr().BitLen() {
			break
		}
		// A strict subset of the cidr: its address inside, more bits.
		e := randomPrefix(r, v6, cidr.Bits()+1)
		e = netip.PrefixFrom(e.Addr(), e.Bits())
		raw := e.Addr().As16()
		base := cidr.Addr().As16()
		off := 0
		if !v6 {
			off = 12
		}
		for i := 0; i < cidr.Bits(); i++ {
			byteI, bit := off+i/8, byte(0x80>>(i%8))
			raw[byteI] = raw[byteI]&^bit | base[byteI]&bit
		}
		addr := netip.AddrFrom16(raw)
		if !v6 {
			addr = addr.Unmap()
		}
		b.Except = append(b.Except, netip.PrefixFrom(addr, e.Bits()).Masked().String())
	}
	return b
}

func randomAddressPolicies(r *rand.Rand, v6 bool) ([]*networkingv1.NetworkPolicy, []*ClusterPolicy) {
	var nps []*networkingv1.NetworkPolicy
	for i := range 1 + r.IntN(3) {
		p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("p%d", i)}}
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		for range r.IntN(3) {
			p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{IPBlock: randomIPBlock(r, v6)}}})
		}
		for range r.IntN(3) {
			p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{{IPBlock: randomIPBlock(r, v6)}}})
		}
		nps = append(nps, p)
	}
	var cps []*ClusterPolicy
	actions := []v1beta1.ClusterNetworkPolicyRuleAction{v1beta1.ClusterNetworkPolicyRuleActionAccept, v1beta1.ClusterNetworkPolicyRuleActionDeny, v1beta1.ClusterNetworkPolicyRuleActionPass}
	for i := range r.IntN(3) {
		cp := &ClusterPolicy{Kind: ClusterNetworkPolicyKind, Name: fmt.Sprintf("c%d", i), Spec: v1beta1.ClusterNetworkPolicySpec{
			Tier: v1beta1.AdminTier, Priority: int32(i), Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
		}}
		if r.IntN(2) == 0 {
			cp.Spec.Tier = v1beta1.BaselineTier
		}
		for range 1 + r.IntN(2) {
			cp.Spec.Egress = append(cp.Spec.Egress, v1beta1.ClusterNetworkPolicyEgressRule{
				Action: actions[r.IntN(len(actions))],
				To:     []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{v1beta1.CIDR(randomPrefix(r, v6, 0).String())}}},
			})
		}
		cps = append(cps, cp)
	}
	return nps, cps
}

// randomMember returns a random address of p.
func randomMember(r *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 12
	}
	for i := p.Bits(); i < p.Addr().BitLen(); i++ {
		if r.IntN(2) == 0 {
			b[off+i/8] |= 0x80 >> (i % 8)
		}
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

func TestAggregatedPeerIsJudgedAsEachOfItsAddresses(t *testing.T) {
	pod := &Endpoint{Kind: Pod, Namespace: "shop", Name: "Deployment/web", Labels: map[string]string{"app": "web"}}
	judged, split := 0, 0
	for seed := range uint64(3000) {
		r := rand.New(rand.NewPCG(seed, 7))
		v6 := seed%2 == 1
		nps, cps := randomAddressPolicies(r, v6)
		ps, err := CompileAll(nps, cps)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		bits := 24
		if v6 {
			bits = 48
		}
		agg := randomPrefix(r, v6, bits)
		agg = netip.PrefixFrom(agg.Addr(), bits).Masked()
		if ps.SplitsPrefix(agg) {
			split++
			continue
		}
		judged++
		ev := NewEvaluation(ps, &World{})
		aggEP := &Endpoint{Kind: External, Prefix: agg}
		for range 8 {
			member := &Endpoint{Kind: External, IP: randomMember(r, agg)}
			for _, f := range [][2]*Endpoint{{aggEP, pod}, {pod, aggEP}} {
				g := Flow{Src: f[0], Dst: f[1], Port: 443, Protocol: corev1.ProtocolTCP}
				m := g
				if g.Src == aggEP {
					m.Src = member
				} else {
					m.Dst = member
				}
				if got, want := ev.Verdict(g), ev.Verdict(m); !reflect.DeepEqual(got, want) {
					t.Fatalf("seed %d: %s judged %s (%s), its member %s %s (%s)\npolicies %v\ncluster %v", seed, g, got.Word(), got.Reason(), member.IP, want.Word(), want.Reason(), nps, cps)
				}
			}
		}
	}
	if judged < 500 || split < 200 {
		t.Errorf("%d aggregates judged, %d split: the generator should give plenty of both", judged, split)
	}
}
