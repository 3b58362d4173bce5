package suggest

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// Change is one policy change: a create (Old nil), an update, or a delete (New nil).
type Change struct {
	Old, New *networkingv1.NetworkPolicy
}

// Request is a change that cuts flows, as the evaluator judged it.
type Request struct {
	// Before and After are the policy sets without and with the changes.
	Before, After *evaluator.PolicySet
	Changes       []Change
	World         *evaluator.World
	// Flows are the observed flows the change was judged over, and Cut the positions of
	// those it cuts (evaluator.DiffResult.CutIndexes).
	Flows []evaluator.Flow
	Cut   []int
	// Known are the workloads, nodes and addresses what the fix would also open is
	// counted over, besides the ends of Flows.
	Known []*evaluator.Endpoint
	// Memo, when set, carries what earlier diffs learnt about the endpoints into the fix's
	// check (evaluator.DiffOptions.Memo): a webhook's, kept from admission to admission.
	Memo *evaluator.Memo
	// Workers share the fix's check (evaluator.DiffOptions.Workers); 0: one per core.
	Workers int
}

// Rule is one rule a fix adds, as a human reads it.
type Rule struct {
	// Policy is where the rule goes: a policy of the change, or a companion the fix adds.
	Policy    evaluator.PolicyRef `json:"policy"`
	Companion bool                `json:"companion,omitempty"`
	Direction string              `json:"direction"`
	// For names the workloads a companion's rule is for.
	For   string   `json:"for,omitempty"`
	Peer  string   `json:"peer"`
	Ports []string `json:"ports"`
}

// String is "ingress from shop/frontend (app=frontend) on TCP/7070 (in shop/default-deny)".
func (r Rule) String() string {
	word := "from"
	if r.Direction == evaluator.Egress.String() {
		word = "to"
	}
	s := fmt.Sprintf("%s %s %s on %s", r.Direction, word, r.Peer, strings.Join(r.Ports, ", "))
	if r.Companion {
		return s + " for " + r.For + " (new policy " + r.Policy.String() + ")"
	}
	return s + " (in " + r.Policy.String() + ")"
}

// Fix is the smallest addition that keeps the flows a change cuts.
type Fix struct {
	// Policies are the policies to apply with the change: its own policies with the rules
	// added, and companion allow policies where the change's own cannot carry them (a
	// delete; a rule that would open more to the other pods it selects).
	Policies []*networkingv1.NetworkPolicy
	Rules    []Rule
	// Kept is how many cut flows the fix keeps, verified: StillCut is how many flows the
	// change and the fix together still cut (0 unless a cut flow has an end no rule can
	// name, such as a node without an address).
	Kept, StillCut int
	// Opens are the pairs of known ends the fix newly allows beyond the cut flows: those
	// neither the policies before nor after the change allowed. Empty when the fix opens
	// exactly what was cut.
	Opens []Pair
}

// Line is the fix in one line: "add ingress from shop/frontend (app=frontend) on TCP/7070
// (in shop/default-deny)", then how many more rules and pairs it also opens.
func (f *Fix) Line() string {
	if len(f.Rules) == 0 {
		return ""
	}
	s := "add " + f.Rules[0].String()
	if n := len(f.Rules) - 1; n > 0 {
		s += fmt.Sprintf(" and %d more rule(s)", n)
	}
	if len(f.Opens) > 0 {
		s += fmt.Sprintf("; also opens %d other pair(s), e.g. %s", len(f.Opens), f.Opens[0])
	}
	return s
}

// need is what one end of cut flows lacks: a rule of a direction to a peer on ports.
type need struct {
	subject *evaluator.Endpoint
	dir     evaluator.Direction
	peer    peer
	ports   []port
	holder  *networkingv1.NetworkPolicy // the change's policy that can carry it, or nil
}

// ForCut computes the fix for a change that cuts flows: for each cut flow, a rule on each
// end that now denies it, naming the other end as narrowly as the API allows. A rule goes
// into the change's own policy when that policy isolates the end in that direction and
// every known workload it selects needs the same rule; otherwise into a companion policy
// for that workload alone. The fix is checked with the evaluator: the change and the fix
// together are diffed against the policies before over every flow given.
func ForCut(req Request) (*Fix, error) {
	if len(req.Cut) == 0 {
		return &Fix{}, nil
	}
	k := newKnown(req.Known, req.Flows)
	evA := evaluator.NewEvaluation(req.After, req.World)
	var needs []*need
	byKey := map[string]*need{}
	add := func(subject, other *evaluator.Endpoint, dir evaluator.Direction, p port) {
		pr, ok := k.peerFor(other, req.World)
		if !ok {
			return
		}
		key := subject.String() + "|" + dir.String() + "|" + pr.text
		n := byKey[key]
		if n == nil {
			n = &need{subject: subject, dir: dir, peer: pr, holder: holderOf(req.Changes, subject, dir)}
			byKey[key] = n
			needs = append(needs, n)
		}
		if !slices.Contains(n.ports, p) {
			n.ports = append(n.ports, p)
			slices.SortFunc(n.ports, comparePorts)
		}
	}
	cutKeys := map[flowKey]bool{}
	for _, i := range req.Cut {
		f := req.Flows[i]
		cutKeys[keyOf(f)] = true
		v := evA.Verdict(f)
		p := portOf(f)
		if !v.Egress.Allowed && f.Src.Kind == evaluator.Pod {
			add(f.Src, f.Dst, evaluator.Egress, p)
		}
		if !v.Ingress.Allowed && f.Dst.Kind == evaluator.Pod {
			add(f.Dst, f.Src, evaluator.Ingress, p)
		}
	}

	b := newBuilder(req, k)
	// A rule the change's policy can carry goes there only if every known workload the
	// policy selects needs it: otherwise it would open the rule to the others.
	type ruleKey struct {
		holder *networkingv1.NetworkPolicy
		dir    evaluator.Direction
		peer   string
		ports  string
	}
	subjects := map[ruleKey][]string{}
	for _, n := range needs {
		if n.holder != nil {
			rk := ruleKey{n.holder, n.dir, n.peer.text, portsText(n.ports)}
			subjects[rk] = append(subjects[rk], n.subject.String())
		}
	}
	for _, n := range needs {
		if n.holder != nil {
			rk := ruleKey{n.holder, n.dir, n.peer.text, portsText(n.ports)}
			all := true
			for _, ep := range k.subjectsOf(n.holder) {
				if !slices.Contains(subjects[rk], ep.String()) {
					all = false
					break
				}
			}
			if all {
				if _, done := b.placed[rk]; !done {
					b.placed[rk] = true
					b.addToChange(n)
				}
				continue
			}
		}
		b.addToCompanion(n)
	}

	fix := &Fix{}
	fixed := req.After
	var err error
	for _, p := range b.policies() {
		if fixed, err = fixed.With(fixed.Get(p.Namespace, p.Name), p); err != nil {
			return nil, fmt.Errorf("compiling the fix: %w", err)
		}
		fix.Policies = append(fix.Policies, p)
	}
	fix.Rules = b.rules
	res := evaluator.DiffWith(req.Before, fixed, req.World, req.Flows, evaluator.DiffOptions{Memo: req.Memo, Workers: cmp.Or(req.Workers, runtime.GOMAXPROCS(0))})
	fix.StillCut = res.Summary.Cut
	fix.Kept = len(req.Cut)
	for _, i := range res.CutIndexes {
		if cutKeys[keyOf(req.Flows[i])] {
			fix.Kept--
		}
	}

	evB, evF := evaluator.NewEvaluation(req.Before, req.World), evaluator.NewEvaluation(fixed, req.World)
	fix.Opens = opened(k.reach(b.added, req.World), func(f evaluator.Flow) bool {
		return !cutKeys[keyOf(f)] && evF.Allowed(f) && !evA.Allowed(f) && !evB.Allowed(f)
	})
	return fix, nil
}

// holderOf is the change's policy that selects subject and isolates it in dir, if any: a
// rule added to it allows what the subject lacks without isolating anything new.
func holderOf(changes []Change, subject *evaluator.Endpoint, dir evaluator.Direction) *networkingv1.NetworkPolicy {
	for _, c := range changes {
		p := c.New
		if p == nil || p.Namespace != subject.Namespace || !hasType(p, dir) {
			continue
		}
		sel, err := evaluator.Selector(&p.Spec.PodSelector)
		if err == nil && sel.Matches(labels.Set(subject.Labels)) {
			return p
		}
	}
	return nil
}

// hasType reports whether a policy isolates its pods in dir: its policyTypes say so, or,
// without them, always for ingress and for egress when it has egress rules.
func hasType(p *networkingv1.NetworkPolicy, dir evaluator.Direction) bool {
	want := policyType(dir)
	if len(p.Spec.PolicyTypes) == 0 {
		return want == networkingv1.PolicyTypeIngress || len(p.Spec.Egress) > 0
	}
	return slices.Contains(p.Spec.PolicyTypes, want)
}

// addPolicyType makes p isolate its pods in dir too, keeping its policyTypes sorted.
func addPolicyType(p *networkingv1.NetworkPolicy, dir evaluator.Direction) {
	if want := policyType(dir); !slices.Contains(p.Spec.PolicyTypes, want) {
		p.Spec.PolicyTypes = append(p.Spec.PolicyTypes, want)
		slices.Sort(p.Spec.PolicyTypes)
	}
}

// policyType is the policyTypes entry of a direction.
func policyType(dir evaluator.Direction) networkingv1.PolicyType {
	if dir == evaluator.Egress {
		return networkingv1.PolicyTypeEgress
	}
	return networkingv1.PolicyTypeIngress
}

func portsText(ps []port) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// builder collects the rules of a fix into policies.
type builder struct {
	req       Request
	k         *known
	base      string // the name companions are named after
	changed   map[*networkingv1.NetworkPolicy]*networkingv1.NetworkPolicy
	order     []*networkingv1.NetworkPolicy
	companion map[string]*networkingv1.NetworkPolicy // by subject
	placed    map[any]bool
	names     map[string]bool
	rules     []Rule
	added     []addedRule
}

func newBuilder(req Request, k *known) *builder {
	b := &builder{req: req, k: k, changed: map[*networkingv1.NetworkPolicy]*networkingv1.NetworkPolicy{},
		companion: map[string]*networkingv1.NetworkPolicy{}, placed: map[any]bool{}, names: map[string]bool{}}
	for _, c := range req.Changes {
		if p := cmpOr(c.New, c.Old); p != nil {
			b.base = p.Name
			break
		}
	}
	return b
}

func cmpOr(a, b *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	if a != nil {
		return a
	}
	return b
}

// addToChange adds n's rule to the change's policy that holds it.
func (b *builder) addToChange(n *need) {
	p := b.changed[n.holder]
	if p == nil {
		p = n.holder.DeepCopy()
		b.changed[n.holder] = p
		b.order = append(b.order, p)
	}
	b.appendRule(p, n, false, "")
}

// addToCompanion adds n's rule to the companion policy of its subject, made on first use:
// it selects the subject by its stable labels and isolates only the directions it allows
// in, which the change has isolated already.
func (b *builder) addToCompanion(n *need) {
	key := n.subject.String()
	p := b.companion[key]
	if p == nil {
		name := b.uniqueName(n.subject.Namespace, b.base+"-keep-"+shortName(n.subject))
		p = &networkingv1.NetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: n.subject.Namespace},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: b.k.selector(n.subject)}},
		}
		b.companion[key] = p
		b.order = append(b.order, p)
	}
	addPolicyType(p, n.dir)
	b.appendRule(p, n, true, workloadName(n.subject))
}

func (b *builder) uniqueName(ns, name string) string {
	name = strings.Trim(name, "-")
	if len(name) > 253 {
		name = name[:253]
	}
	for i := 2; ; i++ {
		if !b.names[ns+"/"+name] && b.req.After.Get(ns, name) == nil {
			b.names[ns+"/"+name] = true
			return name
		}
		name = fmt.Sprintf("%s-%d", strings.TrimSuffix(name, fmt.Sprintf("-%d", i-1)), i)
	}
}

func (b *builder) appendRule(p *networkingv1.NetworkPolicy, n *need, companion bool, forName string) {
	ports := make([]networkingv1.NetworkPolicyPort, len(n.ports))
	texts := make([]string, len(n.ports))
	for i, pt := range n.ports {
		ports[i], texts[i] = pt.api(), pt.String()
	}
	if n.dir == evaluator.Egress {
		p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{n.peer.p}, Ports: ports})
	} else {
		p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{n.peer.p}, Ports: ports})
	}
	b.rules = append(b.rules, Rule{Policy: evaluator.PolicyRef{Namespace: p.Namespace, Name: p.Name}, Companion: companion,
		Direction: n.dir.String(), For: forName, Peer: n.peer.text, Ports: texts})
	b.added = append(b.added, addedRule{policy: p, dir: n.dir, peer: n.peer.p, ports: n.ports})
}

// policies are the policies the fix changes or adds, in the order they were first used.
func (b *builder) policies() []*networkingv1.NetworkPolicy { return b.order }
