package suggest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// world is a small random cluster: namespaces, workloads (one pod each, with an address and
// a node), nodes, outside addresses, policies and flows between them.
type world struct {
	w        *evaluator.World
	eps      []*evaluator.Endpoint
	policies []*networkingv1.NetworkPolicy
	flows    []evaluator.Flow
}

// probePorts are the ports flows, rules and the brute-force checks use.
var probePorts = []struct {
	port  int32
	proto corev1.Protocol
}{{80, corev1.ProtocolTCP}, {8080, corev1.ProtocolTCP}, {53, corev1.ProtocolUDP}, {443, corev1.ProtocolTCP}}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func randomWorld(seed uint64) *world {
	r := rand.New(rand.NewPCG(seed, 0x73756767))
	wd := &world{w: &evaluator.World{NamespaceLabels: map[string]map[string]string{}, NodeAddresses: map[string][]netip.Addr{}}}
	nodes := []string{"node-a", "node-b"}
	for i, n := range nodes {
		ip := netip.AddrFrom4([4]byte{192, 168, 0, byte(i + 1)})
		wd.w.NodeAddresses[n] = []netip.Addr{ip}
		wd.eps = append(wd.eps, &evaluator.Endpoint{Kind: evaluator.Node, Name: n, NodeName: n, IP: ip})
	}
	for i := range 1 + r.IntN(2) {
		wd.eps = append(wd.eps, &evaluator.Endpoint{Kind: evaluator.External, IP: netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)})})
	}
	namespaces := []string{"a", "b", "c"}[:2+r.IntN(2)]
	apps := []string{"web", "api", "db", "cache"}
	podIP := byte(1)
	for _, ns := range namespaces {
		wd.w.NamespaceLabels[ns] = map[string]string{NamespaceNameLabel: ns, "team": pick(r, []string{"x", "y"})}
		for j := range 2 + r.IntN(3) {
			// Two workloads may share their app label: a fix that names one by it opens
			// the other too, and must say so.
			app := pick(r, apps)
			labels := map[string]string{"app": app, "pod-template-hash": fmt.Sprintf("h%d", r.IntN(1000))}
			if r.IntN(2) == 0 {
				labels["tier"] = pick(r, []string{"front", "back"})
			}
			ep := &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: ns, Name: fmt.Sprintf("Deployment/w%d", j), Labels: labels,
				NodeName: pick(r, nodes), IP: netip.AddrFrom4([4]byte{10, 0, 0, podIP}), Pod: fmt.Sprintf("w%d-x", j)}
			podIP++
			if r.IntN(2) == 0 {
				ep.Ports = []evaluator.ContainerPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}
			}
			wd.eps = append(wd.eps, ep)
		}
	}
	for i := range r.IntN(4) {
		wd.policies = append(wd.policies, randomPolicy(r, pick(r, namespaces), fmt.Sprintf("p%d", i)))
	}
	for range 5 + r.IntN(25) {
		src, dst := pick(r, wd.eps), pick(r, wd.eps)
		if src == dst || (src.Kind != evaluator.Pod && dst.Kind != evaluator.Pod) {
			continue
		}
		pp := pick(r, probePorts)
		wd.flows = append(wd.flows, evaluator.Flow{Src: src, Dst: dst, Port: pp.port, Protocol: pp.proto})
	}
	return wd
}

func randomPolicy(r *rand.Rand, ns, name string) *networkingv1.NetworkPolicy {
	p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	switch r.IntN(3) {
	case 0:
	case 1:
		p.Spec.PodSelector.MatchLabels = map[string]string{"app": pick(r, []string{"web", "api", "db", "cache"})}
	default:
		p.Spec.PodSelector.MatchLabels = map[string]string{"tier": pick(r, []string{"front", "back"})}
	}
	types := pick(r, [][]networkingv1.PolicyType{nil, {networkingv1.PolicyTypeIngress}, {networkingv1.PolicyTypeEgress}, {networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}})
	p.Spec.PolicyTypes = types
	peer := func() networkingv1.NetworkPolicyPeer {
		switch r.IntN(4) {
		case 0:
			return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": pick(r, []string{"front", "back"})}}}
		case 1:
			return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": pick(r, []string{"x", "y"})}}}
		case 2:
			return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: pick(r, []string{"10.0.0.0/28", "203.0.113.0/24", "192.168.0.0/16"})}}
		}
		return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}
	}
	ports := func() []networkingv1.NetworkPolicyPort {
		if r.IntN(3) == 0 {
			return nil
		}
		pp := pick(r, probePorts)
		v := intstr.FromInt32(pp.port)
		if pp.port == 8080 && r.IntN(2) == 0 {
			v = intstr.FromString("http")
		}
		return []networkingv1.NetworkPolicyPort{{Protocol: &pp.proto, Port: &v}}
	}
	for range r.IntN(3) {
		p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{peer()}, Ports: ports()})
	}
	for range r.IntN(3) {
		p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{peer()}, Ports: ports()})
	}
	return p
}

// randomChange is a create of a new policy (often a lock-down), an update of an existing
// one, or a delete.
func randomChange(r *rand.Rand, wd *world) Change {
	var nss []string
	for ns := range wd.w.NamespaceLabels {
		nss = append(nss, ns)
	}
	switch {
	case len(wd.policies) > 0 && r.IntN(3) == 0:
		return Change{Old: pick(r, wd.policies)}
	case len(wd.policies) > 0 && r.IntN(2) == 0:
		old := pick(r, wd.policies)
		n := randomPolicy(r, old.Namespace, old.Name)
		return Change{Old: old, New: n}
	}
	return Change{New: randomPolicy(r, pick(r, []string{"a", "b"}), "proposed")}
}

// TestFixKeepsEveryCutFlowAndOpensOnlyWhatItReports is the fix's promise on random
// worlds: for every change that cuts, the change with the fix cuts nothing, and every
// (end, end, port) the fix newly allows — allowed with it, by neither the policies before
// nor after the change — is a cut flow or is listed in Opens.
func TestFixKeepsEveryCutFlowAndOpensOnlyWhatItReports(t *testing.T) {
	cuts, opens := 0, 0
	for seed := range uint64(600) {
		wd := randomWorld(seed)
		r := rand.New(rand.NewPCG(seed, 1))
		before, err := evaluator.Compile(wd.policies)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		c := randomChange(r, wd)
		after, err := before.With(c.Old, c.New)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		res := evaluator.DiffWith(before, after, wd.w, wd.flows, evaluator.DiffOptions{})
		if res.Summary.Cut == 0 {
			continue
		}
		cuts++
		fix, err := ForCut(Request{Before: before, After: after, Changes: []Change{c}, World: wd.w, Flows: wd.flows, Cut: res.CutIndexes, Known: wd.eps})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		fixed := after
		for _, p := range fix.Policies {
			if fixed, err = fixed.With(fixed.Get(p.Namespace, p.Name), p); err != nil {
				t.Fatalf("seed %d: the fix does not compile: %v", seed, err)
			}
		}
		if again := evaluator.DiffWith(before, fixed, wd.w, wd.flows, evaluator.DiffOptions{Explain: true}); again.Summary.Cut != 0 || fix.StillCut != 0 || fix.Kept != len(res.CutIndexes) {
			t.Errorf("seed %d: change + fix still cuts %d (fix says %d, kept %d of %d): %v\nrules: %v", seed, again.Summary.Cut, fix.StillCut, fix.Kept, len(res.CutIndexes), again.Cut, fix.Rules)
			continue
		}
		cut := map[flowKey]bool{}
		for _, i := range res.CutIndexes {
			cut[keyOf(wd.flows[i])] = true
		}
		reported := map[Pair]bool{}
		for _, p := range fix.Opens {
			reported[p] = true
		}
		opens += len(fix.Opens)
		eb, ea, ef := evaluator.NewEvaluation(before, wd.w), evaluator.NewEvaluation(after, wd.w), evaluator.NewEvaluation(fixed, wd.w)
		for _, src := range wd.eps {
			for _, dst := range wd.eps {
				for _, pp := range probePorts {
					f := evaluator.Flow{Src: src, Dst: dst, Port: pp.port, Protocol: pp.proto}
					if src == dst || cut[keyOf(f)] || !ef.Allowed(f) || ea.Allowed(f) || eb.Allowed(f) {
						continue
					}
					p := Pair{Src: workloadName(src), Dst: workloadName(dst), Port: (port{protocol: pp.proto, number: pp.port}).String()}
					if !reported[p] {
						t.Errorf("seed %d: the fix opens %s and does not say so; rules %v", seed, p, fix.Rules)
					}
				}
			}
		}
	}
	if cuts < 100 {
		t.Fatalf("only %d of the random changes cut anything: the generator is too kind", cuts)
	}
	t.Logf("%d changes cut flows; every fix verified; %d opened pairs reported", cuts, opens)
}
