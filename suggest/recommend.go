package suggest

import (
	"fmt"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// RecommendRequest asks for least-privilege policies for namespaces from their flows.
type RecommendRequest struct {
	// Policies are the cluster's policies now; the recommendation is added to them.
	Policies   *evaluator.PolicySet
	World      *evaluator.World
	Flows      []evaluator.Flow
	Namespaces []string
	// Known are the cluster's workloads: those of a namespace with no flow are named as
	// never seen, and selectors are chosen to tell workloads apart.
	Known []*evaluator.Endpoint
}

// Recommendation is the policies for one namespace.
type Recommendation struct {
	Namespace string
	// Policies: default-deny for both directions, allow-dns and allow-apiserver where pods
	// of the namespace reach them, and one allow-<workload> per workload with flows.
	Policies []*networkingv1.NetworkPolicy
	// Notes say, by policy name, what each policy allows.
	Notes map[string]string
	// Flows is how many observed flows have an end in the namespace's workloads.
	Flows int
	// NeverSeen are the namespace's known workloads with no flow: default-deny isolates
	// them with nothing allowed.
	NeverSeen []string
	// Cut is how many observed flows the cluster's policies with the recommendation would
	// cut, verified with the evaluator: 0.
	Cut int
	// Opens are the pairs of known ends the recommendation allows that no observed flow
	// asked for (its least-privilege slack: shared labels, a rule shared by several pods).
	Opens []Pair
}

// The policies a recommendation names for what the cluster itself needs.
const (
	DefaultDenyName = "default-deny"
	DNSPolicyName   = "allow-dns"
	APIServerName   = "allow-apiserver"
)

// IsDNS reports whether a flow's destination is cluster DNS: port 53 in kube-system, or on
// pods labelled as CoreDNS or kube-dns.
func IsDNS(f evaluator.Flow) bool {
	if f.Port != 53 || f.Dst.Kind != evaluator.Pod {
		return false
	}
	app := f.Dst.Labels["k8s-app"]
	return f.Dst.Namespace == "kube-system" || app == "kube-dns" || app == "coredns"
}

// IsAPIServer reports whether a flow's destination is the Kubernetes API server: port 6443
// anywhere outside the pods, or 443 on a node (the kubernetes Service, after DNAT).
func IsAPIServer(f evaluator.Flow) bool {
	return f.Dst.Kind != evaluator.Pod && (f.Port == 6443 || (f.Port == 443 && f.Dst.Kind == evaluator.Node))
}

// Recommend writes least-privilege policies for each namespace from the flows observed,
// and verifies them: the cluster's policies with every recommendation added cut none of
// the flows.
func Recommend(req RecommendRequest) ([]Recommendation, error) {
	k := newKnown(req.Known, req.Flows)
	type side struct {
		subject *evaluator.Endpoint
		dir     evaluator.Direction
		other   *evaluator.Endpoint
		port    port
		dns     bool
		api     bool
	}
	wanted := map[string]bool{}
	for _, ns := range req.Namespaces {
		wanted[ns] = true
	}
	sides := map[string][]side{}
	flowsOf := map[string]int{}
	seen := map[string]bool{}
	for _, f := range req.Flows {
		p := portOf(f)
		counted := map[string]bool{}
		if f.Src.Kind == evaluator.Pod && wanted[f.Src.Namespace] {
			sides[f.Src.Namespace] = append(sides[f.Src.Namespace], side{f.Src, evaluator.Egress, f.Dst, p, IsDNS(f), IsAPIServer(f)})
			seen[f.Src.String()] = true
			counted[f.Src.Namespace] = true
		}
		if f.Dst.Kind == evaluator.Pod && wanted[f.Dst.Namespace] && !fromOwnNode(f) {
			sides[f.Dst.Namespace] = append(sides[f.Dst.Namespace], side{f.Dst, evaluator.Ingress, f.Src, p, false, false})
			seen[f.Dst.String()] = true
			counted[f.Dst.Namespace] = true
		}
		for ns := range counted {
			flowsOf[ns]++
		}
	}

	var recs []Recommendation
	var added []addedRule
	after := req.Policies
	for _, ns := range req.Namespaces {
		b := newBuilder(Request{After: req.Policies}, k)
		rec := Recommendation{Namespace: ns, Notes: map[string]string{}, Flows: flowsOf[ns]}
		for _, ep := range k.byNS[ns] {
			if !seen[ep.String()] {
				rec.NeverSeen = append(rec.NeverSeen, workloadName(ep))
			}
		}
		slices.Sort(rec.NeverSeen)
		deny := b.policy(ns, DefaultDenyName, metav1.LabelSelector{})
		deny.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		rec.Notes[deny.Name] = "isolates every pod of " + ns + " in both directions; the policies below allow what was observed"

		// DNS and the API server get policies of their own, named so, when every workload
		// of the namespace that uses them can share one selector.
		shared := map[string]*networkingv1.NetworkPolicy{}
		for _, kind := range []struct {
			name, what string
			is         func(side) bool
		}{{DNSPolicyName, "DNS", func(s side) bool { return s.dns }}, {APIServerName, "the API server", func(s side) bool { return s.api }}} {
			var users []*evaluator.Endpoint
			for _, s := range sides[ns] {
				if kind.is(s) && !slices.Contains(users, s.subject) {
					users = append(users, s.subject)
				}
			}
			if len(users) == 0 {
				continue
			}
			sel, ok := k.selectorOf(ns, users)
			if !ok {
				continue
			}
			p := b.policy(ns, kind.name, sel)
			p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
			shared[kind.name] = p
		}

		needs := map[*networkingv1.NetworkPolicy][]*need{}
		var order []*networkingv1.NetworkPolicy
		byKey := map[string]*need{}
		for _, s := range sides[ns] {
			var holder *networkingv1.NetworkPolicy
			switch {
			case s.dns && shared[DNSPolicyName] != nil:
				holder = shared[DNSPolicyName]
			case s.api && shared[APIServerName] != nil:
				holder = shared[APIServerName]
			default:
				name := "allow-" + shortName(s.subject)
				holder = b.companion[s.subject.String()]
				if holder == nil {
					holder = b.policy(ns, name, metav1.LabelSelector{MatchLabels: k.selector(s.subject)})
					b.companion[s.subject.String()] = holder
				}
			}
			pr, ok := k.peerFor(s.other, req.World)
			if !ok {
				continue
			}
			key := holder.Name + "|" + s.subject.String() + "|" + s.dir.String() + "|" + pr.text
			if holder == shared[DNSPolicyName] || holder == shared[APIServerName] {
				key = holder.Name + "|" + pr.text // one rule for all its users
			}
			n := byKey[key]
			if n == nil {
				n = &need{subject: s.subject, dir: s.dir, peer: pr, holder: holder}
				byKey[key] = n
				if len(needs[holder]) == 0 {
					order = append(order, holder)
				}
				needs[holder] = append(needs[holder], n)
			}
			if !slices.Contains(n.ports, s.port) {
				n.ports = append(n.ports, s.port)
				slices.SortFunc(n.ports, comparePorts)
			}
		}
		rec.Policies = append(rec.Policies, deny)
		for _, p := range order {
			var what []string
			for _, n := range needs[p] {
				b.appendRule(p, n, false, "")
				word := "from"
				if n.dir == evaluator.Egress {
					word = "to"
				}
				what = append(what, fmt.Sprintf("%s %s %s on %s", n.dir, word, n.peer.text, portsText(n.ports)))
				addPolicyType(p, n.dir)
			}
			label := "pods " + labelsText(p.Spec.PodSelector.MatchLabels)
			switch p {
			case shared[DNSPolicyName]:
				label = "DNS, for " + selectorText(p.Spec.PodSelector)
			case shared[APIServerName]:
				label = "the API server, for " + selectorText(p.Spec.PodSelector)
			}
			rec.Notes[p.Name] = label + ": " + strings.Join(what, "; ")
			rec.Policies = append(rec.Policies, p)
		}
		added = append(added, b.added...)
		// One compile of the namespace with all of it, not one per policy.
		var err error
		if after, err = after.WithNamespace(ns, append(slices.Clone(policiesIn(req.Policies, ns)), rec.Policies...)); err != nil {
			return nil, fmt.Errorf("compiling the recommendation for %s: %w", ns, err)
		}
		recs = append(recs, rec)
	}

	res := evaluator.DiffWith(req.Policies, after, req.World, req.Flows, evaluator.DiffOptions{})
	index := map[string]int{}
	for i, r := range recs {
		index[r.Namespace] = i
	}
	for _, i := range res.CutIndexes {
		f := req.Flows[i]
		for _, ep := range []*evaluator.Endpoint{f.Src, f.Dst} {
			if j, ok := index[ep.Namespace]; ok && ep.Kind == evaluator.Pod {
				recs[j].Cut++
				break
			}
		}
	}
	observed := map[flowKey]bool{}
	for _, f := range req.Flows {
		observed[keyOf(f)] = true
	}
	ev := evaluator.NewEvaluation(after, req.World)
	for _, p := range opened(k.reach(added, req.World), func(f evaluator.Flow) bool { return !observed[keyOf(f)] && ev.Allowed(f) }) {
		ns := p.Src[:strings.IndexByte(p.Src+"/", '/')]
		if j, ok := index[ns]; ok {
			recs[j].Opens = append(recs[j].Opens, p)
		} else if j, ok := index[p.Dst[:strings.IndexByte(p.Dst+"/", '/')]]; ok {
			recs[j].Opens = append(recs[j].Opens, p)
		}
	}
	return recs, nil
}

// policiesIn are the policies of ns in ps.
func policiesIn(ps *evaluator.PolicySet, ns string) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, p := range ps.Policies() {
		if p.Namespace == ns {
			out = append(out, p)
		}
	}
	return out
}

// fromOwnNode reports whether a flow comes from a node its destination's pods run on,
// which policies cannot block and no rule need allow.
func fromOwnNode(f evaluator.Flow) bool {
	return f.Src.Kind == evaluator.Node && f.Src.NodeName != "" &&
		(f.Dst.NodeName == f.Src.NodeName || slices.Contains(f.Dst.Nodes, f.Src.NodeName))
}

// selectorOf is one selector for a set of workloads of ns: every pod when they are all the
// namespace's known workloads; else key In (values) when each is told apart by one value of
// the same key. False when neither.
func (k *known) selectorOf(ns string, eps []*evaluator.Endpoint) (metav1.LabelSelector, bool) {
	if len(eps) == len(k.byNS[ns]) {
		return metav1.LabelSelector{}, true
	}
	var key string
	var values []string
	for _, ep := range eps {
		sel := k.selector(ep)
		if len(sel) != 1 {
			return metav1.LabelSelector{}, false
		}
		for kk, v := range sel {
			if key != "" && kk != key {
				return metav1.LabelSelector{}, false
			}
			key = kk
			values = append(values, v)
		}
	}
	slices.Sort(values)
	return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpIn, Values: slices.Compact(values)}}}, true
}

func selectorText(s metav1.LabelSelector) string {
	sel, err := evaluator.Selector(&s)
	if err != nil || sel.Empty() {
		return "every pod"
	}
	return sel.String()
}

// policy is a new policy of the recommendation, named uniquely in its namespace.
func (b *builder) policy(ns, name string, sel metav1.LabelSelector) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: b.uniqueName(ns, name), Namespace: ns},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: sel},
	}
}
