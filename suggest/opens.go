package suggest

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
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
		subjects := k.subjectsOf(r.policy)
		var peers []*evaluator.Endpoint
		m := newMatcher(r.peer, r.policy.Namespace)
		for _, ep := range k.candidates(r.peer) {
			if m.matches(ep, k.nsLabels(w)) {
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

// candidates are the known ends a peer may match: those of one address for a /32 or /128
// ipBlock, those of one namespace for a namespace selected by its name label, else all.
func (k *known) candidates(p networkingv1.NetworkPolicyPeer) []*evaluator.Endpoint {
	if p.IPBlock != nil {
		if pfx, err := netip.ParsePrefix(p.IPBlock.CIDR); err == nil && pfx.IsSingleIP() {
			return k.byIP()[pfx.Addr()]
		}
		return k.all
	}
	if ns := p.NamespaceSelector; ns != nil && len(ns.MatchExpressions) == 0 && len(ns.MatchLabels) == 1 {
		if name, ok := ns.MatchLabels[NamespaceNameLabel]; ok {
			return k.byNS[name]
		}
	}
	return k.all
}

func (k *known) byIP() map[netip.Addr][]*evaluator.Endpoint {
	if k.ips == nil {
		k.ips = map[netip.Addr][]*evaluator.Endpoint{}
		for _, ep := range k.all {
			if ep.IP.IsValid() {
				k.ips[ep.IP.Unmap()] = append(k.ips[ep.IP.Unmap()], ep)
			}
		}
	}
	return k.ips
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

// matcher decides whether a rule peer of a policy in namespace ns matches an endpoint, as
// the API defines it: an ipBlock matches an address, a podSelector pods of ns (or of the
// namespaces namespaceSelector matches). Selectors are parsed once per rule.
type matcher struct {
	ns         string
	cidr       netip.Prefix
	ipBlock    bool
	namespaces labels.Selector // nil: the policy's own namespace
	pods       labels.Selector // nil: any pod
	bad        bool
}

func newMatcher(p networkingv1.NetworkPolicyPeer, ns string) matcher {
	m := matcher{ns: ns}
	var err error
	if p.IPBlock != nil {
		m.ipBlock = true
		m.cidr, err = netip.ParsePrefix(p.IPBlock.CIDR)
		m.bad = err != nil
		return m
	}
	if p.NamespaceSelector != nil {
		if m.namespaces, err = evaluator.Selector(p.NamespaceSelector); err != nil {
			m.bad = true
		}
	}
	if p.PodSelector != nil {
		if m.pods, err = evaluator.Selector(p.PodSelector); err != nil {
			m.bad = true
		}
	}
	return m
}

func (m matcher) matches(ep *evaluator.Endpoint, nsLabels func(string) labels.Set) bool {
	switch {
	case m.bad:
		return false
	case m.ipBlock:
		return ep.IP.IsValid() && m.cidr.Contains(ep.IP.Unmap())
	case ep.Kind != evaluator.Pod:
		return false
	case m.namespaces == nil && ep.Namespace != m.ns:
		return false
	case m.namespaces != nil && !m.namespaces.Matches(nsLabels(ep.Namespace)):
		return false
	}
	return m.pods == nil || m.pods.Matches(labels.Set(ep.Labels))
}

// nsLabels returns the labels of a namespace, memoised.
func (k *known) nsLabels(w *evaluator.World) func(string) labels.Set {
	return func(ns string) labels.Set {
		if l, ok := k.nsSets[ns]; ok {
			return l
		}
		if k.nsSets == nil {
			k.nsSets = map[string]labels.Set{}
		}
		l := namespaceLabels(w, ns)
		k.nsSets[ns] = l
		return l
	}
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
