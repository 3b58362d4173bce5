package suggest

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// addedRule is a rule a suggestion adds, with the policy it is in (its final version).
type addedRule struct {
	policy *networkingv1.NetworkPolicy
	dir    evaluator.Direction
	peer   networkingv1.NetworkPolicyPeer
	ports  []port
}

// Pair is traffic between two known ends on a port that an answer allows beyond what it
// was asked to keep: "shop/frontend → shop/redis TCP/6379".
type Pair struct {
	Src  string `json:"src"`
	Dst  string `json:"dst"`
	Port string `json:"port"`
}

func (p Pair) String() string { return p.Src + " → " + p.Dst + " " + p.Port }

// reach lists the flows between known ends that the rules could allow: each rule's
// subjects (the known workloads its policy selects) with every known end its peer matches,
// on its ports. An allow rule allows nothing else, so these are the only flows an addition
// of rules can open.
func (k *known) reach(rules []addedRule, w *evaluator.World) []evaluator.Flow {
	var out []evaluator.Flow
	for _, r := range rules {
		sel, err := metav1.LabelSelectorAsSelector(&r.policy.Spec.PodSelector)
		if err != nil {
			continue
		}
		subjects := k.selected(r.policy.Namespace, sel)
		var peers []*evaluator.Endpoint
		for _, ep := range k.all {
			if peerMatches(r.peer, r.policy.Namespace, ep, w) {
				peers = append(peers, ep)
			}
		}
		for _, s := range subjects {
			for _, p := range peers {
				src, dst := s, p
				if r.dir == evaluator.Ingress {
					src, dst = p, s
				}
				if src == dst {
					continue
				}
				for _, pt := range r.ports {
					n, ok := resolve(pt, dst)
					if !ok {
						continue
					}
					out = append(out, evaluator.Flow{Src: src, Dst: dst, Port: n, Protocol: pt.protocol})
				}
			}
		}
	}
	return out
}

// opened turns the reachable flows that newly is true of into pairs, each once, sorted.
func opened(fl []evaluator.Flow, newly func(evaluator.Flow) bool) []Pair {
	seen := map[Pair]bool{}
	var out []Pair
	for _, f := range fl {
		if !newly(f) {
			continue
		}
		p := Pair{Src: workloadName(f.Src), Dst: workloadName(f.Dst), Port: (port{protocol: f.Protocol, number: f.Port}).String()}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Pair) int {
		return cmp.Or(cmp.Compare(a.Src, b.Src), cmp.Compare(a.Dst, b.Dst), cmp.Compare(a.Port, b.Port))
	})
	return out
}

// resolve is the number a rule's port stands for at dst: its own, or the container port
// dst names so.
func resolve(p port, dst *evaluator.Endpoint) (int32, bool) {
	if p.name == "" {
		return p.number, true
	}
	for _, cp := range dst.Ports {
		if cp.Name == p.name && cmp.Or(cp.Protocol, corev1.ProtocolTCP) == p.protocol {
			return cp.Port, true
		}
	}
	return 0, false
}

// peerMatches reports whether a rule peer of a policy in namespace ns matches ep, as the
// API defines it: an ipBlock matches an address, a podSelector pods of ns (or of the
// namespaces namespaceSelector matches).
func peerMatches(p networkingv1.NetworkPolicyPeer, ns string, ep *evaluator.Endpoint, w *evaluator.World) bool {
	if p.IPBlock != nil {
		pfx, err := netip.ParsePrefix(p.IPBlock.CIDR)
		return err == nil && ep.IP.IsValid() && pfx.Contains(ep.IP.Unmap())
	}
	if ep.Kind != evaluator.Pod {
		return false
	}
	if p.NamespaceSelector == nil {
		if ep.Namespace != ns {
			return false
		}
	} else {
		sel, err := metav1.LabelSelectorAsSelector(p.NamespaceSelector)
		if err != nil || !sel.Matches(namespaceLabels(w, ep.Namespace)) {
			return false
		}
	}
	if p.PodSelector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(p.PodSelector)
	return err == nil && sel.Matches(labels.Set(ep.Labels))
}

func namespaceLabels(w *evaluator.World, ns string) labels.Set {
	out := labels.Set{NamespaceNameLabel: ns}
	if w != nil {
		for k, v := range w.NamespaceLabels[ns] {
			out[k] = v
		}
	}
	return out
}
