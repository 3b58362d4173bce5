package evaluator

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// The tiers of cluster policies (sigs.k8s.io/network-policy-api): for each direction of a
// flow, "policy tiers are evaluated in the following order: Admin tier, NetworkPolicy tier,
// Baseline tier". Within a tier, "policies with lower priority values have higher
// precedence", and rules apply in the order they are written; the first rule that matches
// decides. Accept and Deny are final; Pass "skips all further ClusterNetworkPolicy rules in
// the current tier" and hands the flow to the next one. "v1.NetworkPolicy always makes a
// final decision for selected pods. Further evaluation only happens for Pods not selected by
// a v1.NetworkPolicy." What no tier decides is allowed.

// Tier is where a cluster policy sits: before NetworkPolicies (Admin) or after (Baseline).
type Tier uint8

const (
	AdminTier Tier = iota
	BaselineTier
)

func (t Tier) String() string {
	if t == BaselineTier {
		return "baseline"
	}
	return "admin"
}

// Action is what a cluster policy rule does with the traffic it matches.
type Action uint8

const (
	Accept Action = iota
	Deny
	Pass
)

func (a Action) String() string {
	switch a {
	case Deny:
		return "Deny"
	case Pass:
		return "Pass"
	default:
		return "Accept"
	}
}

// TierRuleRef names one rule of a cluster policy with what it did:
// "admin cnp/deny-egress-internet priority 10 egress[2] Deny".
type TierRuleRef struct {
	Tier     Tier
	Policy   ClusterRef
	Priority int32
	// Direction and Index locate the rule in the policy's ingress or egress list; Name is
	// the rule's own name, when it has one.
	Direction Direction
	Index     int
	Name      string
	Action    Action
	// TiedWith lists the other policies of the same tier and priority with a rule that
	// matches the flow too. The API leaves their order to the implementation; the
	// evaluator takes policies of equal priority by kind and name.
	TiedWith []ClusterRef
}

func (r TierRuleRef) String() string {
	s := fmt.Sprintf("%s %s priority %d %s[%d] %s", r.Tier, r.Policy, r.Priority, r.Direction, r.Index, r.Action)
	if r.Name != "" {
		s = fmt.Sprintf("%s %s priority %d %s[%d] %q %s", r.Tier, r.Policy, r.Priority, r.Direction, r.Index, r.Name, r.Action)
	}
	if len(r.TiedWith) > 0 {
		names := make([]string, len(r.TiedWith))
		for i, t := range r.TiedWith {
			names[i] = t.String()
		}
		s += " (tied at priority " + fmt.Sprint(r.Priority) + " with " + strings.Join(names, ", ") +
			": the API leaves the order implementation-defined; taken by name here)"
	}
	return s
}

// MarshalText writes the rule as String does.
func (r TierRuleRef) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// clusterSet is the compiled cluster policies of a PolicySet: nil when it has none, so a
// set of NetworkPolicies alone never looks further than that nil.
type clusterSet struct {
	// policies are every tier's policies, Admin first, each tier by priority then kind and
	// name: the order rules are tried in.
	policies []*compiledCluster
	// rules are the rules of each direction (indexed by Direction) in the order they are
	// tried, every policy's in turn; a rule's id is its index here. Admin rules come first:
	// baseline[dir] is the id of the first Baseline rule. domains has the rules with a
	// domainNames peer.
	rules    [2][]*clusterRule
	baseline [2]int
	domains  [2]bitset
	// peers are the distinct peers of all rules, learnt once per endpoint.
	peers []clusterPeer
	// memoBits lays out a clusterMemo's bit sets: set k is words memoBits[k] to
	// memoBits[k+1] of its bits.
	memoBits [memoSets + 1]int
	// egressAddr says whether an egress rule has a networks or nodes peer: only then can
	// the verdict on a workload's pods depend on their addresses.
	egressAddr bool
}

type compiledCluster struct {
	ref  ClusterRef
	src  *ClusterPolicy
	tier Tier
	prio int32
	// The subject: pods of namespaces matching subjNS, and matching subjPods (nil: all).
	subjNS, subjPods labels.Selector
	ingress, egress  []*clusterRule
}

type clusterRule struct {
	ref     TierRuleRef
	id      int // in clusterSet.rules of its direction
	peers   []clusterPeer
	peerIDs []int // of peers, in clusterSet.peers
	// domains: the rule has a domainNames peer, which an observed address cannot match or
	// rule out.
	domains bool
	anyPort bool           // no protocols: every protocol and port
	ports   []compiledPort // a destinationNamedPort has no protocol: the container port's
}

type clusterPeer struct {
	// pods in namespaces: namespaces selector always set; pods nil for a namespaces peer.
	namespaces, pods labels.Selector
	nodes            labels.Selector
	networks         []netip.Prefix
	key              string
}

// ClusterPolicyError reports a cluster policy the API server would reject, with
// kubectl-style field paths.
type ClusterPolicyError struct {
	Policy ClusterRef
	Errs   field.ErrorList
}

func (e *ClusterPolicyError) Error() string {
	return fmt.Sprintf("%s: %s", e.Policy, joinFieldErrors(e.Errs))
}

// CompileAll compiles NetworkPolicies and cluster policies (Admin and Baseline tiers) into
// one set. Every invalid policy is reported; two cluster policies of the same kind and name
// are an error.
func CompileAll(nps []*networkingv1.NetworkPolicy, cnps []*ClusterPolicy) (*PolicySet, error) {
	ps, err := Compile(nps)
	cs, cerr := compileClusterSet(cnps)
	if err != nil || cerr != nil {
		return nil, errors.Join(err, cerr)
	}
	ps.cluster = cs
	return ps, nil
}

// WithCluster returns the set as it would be after a change of a cluster policy: a create
// (old nil), an update (both), or a delete (new nil). Every NetworkPolicy is shared with ps.
func (ps *PolicySet) WithCluster(old, new *ClusterPolicy) (*PolicySet, error) {
	if old == nil && new == nil {
		return ps, nil
	}
	var list []*ClusterPolicy
	if ps.cluster != nil {
		for _, cp := range ps.cluster.policies {
			if (old != nil && cp.ref == old.Ref()) || (new != nil && cp.ref == new.Ref()) {
				continue
			}
			list = append(list, cp.src)
		}
	}
	if new != nil {
		list = append(list, new)
	}
	cs, err := compileClusterSet(list)
	if err != nil {
		return nil, err
	}
	// No namespace changed: every one answers as in ps, so memos learnt for ps serve. A
	// base that itself changed no namespace is skipped, so a view that applies change after
	// change of cluster policies keeps a chain of one, not of every set it ever held.
	base := ps
	for base.base != nil && len(base.changed) == 0 {
		base = base.base
	}
	return &PolicySet{byNS: ps.byNS, base: base, cluster: cs}, nil
}

// ClusterPolicies returns the set's cluster policies in the order they are tried.
func (ps *PolicySet) ClusterPolicies() []*ClusterPolicy {
	if ps.cluster == nil {
		return nil
	}
	out := make([]*ClusterPolicy, len(ps.cluster.policies))
	for i, cp := range ps.cluster.policies {
		out[i] = cp.src
	}
	return out
}

// GetCluster returns the cluster policy of that kind and name, or nil.
func (ps *PolicySet) GetCluster(ref ClusterRef) *ClusterPolicy {
	if ps.cluster != nil {
		for _, cp := range ps.cluster.policies {
			if cp.ref == ref {
				return cp.src
			}
		}
	}
	return nil
}

func compileClusterSet(list []*ClusterPolicy) (*clusterSet, error) {
	if len(list) == 0 {
		return nil, nil
	}
	cs := &clusterSet{}
	seen := map[ClusterRef]bool{}
	var errs []error
	for _, p := range list {
		if seen[p.Ref()] {
			errs = append(errs, fmt.Errorf("%s: listed twice", p.Ref()))
			continue
		}
		seen[p.Ref()] = true
		cp, err := compileCluster(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cs.policies = append(cs.policies, cp)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(cs.policies, func(a, b *compiledCluster) int {
		if a.tier != b.tier {
			return int(a.tier) - int(b.tier)
		}
		if a.prio != b.prio {
			return int(a.prio - b.prio)
		}
		if a.ref.Kind != b.ref.Kind {
			return int(a.ref.Kind) - int(b.ref.Kind)
		}
		return strings.Compare(a.ref.Name, b.ref.Name)
	})
	for _, cp := range cs.policies {
		for dir, rules := range [2][]*clusterRule{Ingress: cp.ingress, Egress: cp.egress} {
			if cp.tier == AdminTier {
				cs.baseline[dir] += len(rules)
			}
			for _, r := range rules {
				r.id = len(cs.rules[dir])
				cs.rules[dir] = append(cs.rules[dir], r)
			}
		}
	}
	for dir, rules := range cs.rules {
		cs.domains[dir] = newBitset(len(rules))
		for _, r := range rules {
			if r.domains {
				cs.domains[dir].set(r.id)
			}
		}
	}
	ids := map[string]int{}
	for _, cp := range cs.policies {
		for _, r := range slices.Concat(cp.ingress, cp.egress) {
			r.peerIDs = make([]int, len(r.peers))
			for i, p := range r.peers {
				n, ok := ids[p.key]
				if !ok {
					n = len(cs.peers)
					ids[p.key] = n
					cs.peers = append(cs.peers, p)
				}
				r.peerIDs[i] = n
			}
		}
		for _, r := range cp.egress {
			for _, id := range r.peerIDs {
				if p := cs.peers[id]; p.nodes != nil || len(p.networks) > 0 {
					cs.egressAddr = true
				}
			}
		}
	}
	for k := range memoSets {
		n := len(cs.peers)
		if k < memoPeerKnown {
			n = len(cs.rules[k%2])
		}
		cs.memoBits[k+1] = cs.memoBits[k] + (n+63)/64
	}
	return cs, nil
}

func compileCluster(p *ClusterPolicy) (*compiledCluster, error) {
	ref := p.Ref()
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if p.Name == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), ""))
	}
	cp := &compiledCluster{ref: ref, src: p, prio: p.Spec.Priority}
	switch p.Spec.Tier {
	case v1beta1.AdminTier:
		cp.tier = AdminTier
	case v1beta1.BaselineTier:
		cp.tier = BaselineTier
	default:
		errs = append(errs, field.NotSupported(spec.Child("tier"), p.Spec.Tier, []v1beta1.Tier{v1beta1.AdminTier, v1beta1.BaselineTier}))
	}
	if p.Spec.Priority < 0 || p.Spec.Priority > 1000 {
		errs = append(errs, field.Invalid(spec.Child("priority"), p.Spec.Priority, "must be between 0 and 1000"))
	}
	subj := spec.Child("subject")
	switch s := p.Spec.Subject; {
	case s.Namespaces != nil && s.Pods == nil:
		cp.subjNS, errs = selector(s.Namespaces, subj.Child("namespaces"), errs)
	case s.Pods != nil && s.Namespaces == nil:
		cp.subjNS, errs = selector(&s.Pods.NamespaceSelector, subj.Child("pods", "namespaceSelector"), errs)
		cp.subjPods, errs = selector(&s.Pods.PodSelector, subj.Child("pods", "podSelector"), errs)
	default:
		errs = append(errs, field.Invalid(subj, "", "exactly one of namespaces or pods must be set"))
	}
	for i, r := range p.Spec.Ingress {
		// An ingress rule reads as an egress rule whose peers have only namespaces or pods.
		er := v1beta1.ClusterNetworkPolicyEgressRule{Name: r.Name, Action: r.Action, Protocols: r.Protocols}
		for _, peer := range r.From {
			er.To = append(er.To, v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: peer.Namespaces, Pods: peer.Pods})
		}
		var cr *clusterRule
		cr, errs = cp.compileRule(Ingress, i, er, errs)
		cp.ingress = append(cp.ingress, cr)
	}
	for i, r := range p.Spec.Egress {
		var cr *clusterRule
		cr, errs = cp.compileRule(Egress, i, r, errs)
		cp.egress = append(cp.egress, cr)
	}
	if len(errs) > 0 {
		return nil, &ClusterPolicyError{Policy: ref, Errs: errs}
	}
	return cp, nil
}

// compileRule compiles rule i of direction dir, spec.ingress[i] or spec.egress[i]; r.To are
// the peers of its "from" or "to".
func (cp *compiledCluster) compileRule(dir Direction, i int, r v1beta1.ClusterNetworkPolicyEgressRule, errs field.ErrorList) (*clusterRule, field.ErrorList) {
	path := field.NewPath("spec", dir.String()).Index(i)
	peersPath := path.Child("to")
	if dir == Ingress {
		peersPath = path.Child("from")
	}
	cr := &clusterRule{ref: cp.ruleRef(dir, i, r.Name)}
	errs = cr.compileAction(r.Action, cp.tier, path.Child("action"), errs)
	if len(r.To) == 0 {
		errs = append(errs, field.Required(peersPath, "must have at least one peer"))
	}
	addressed := false
	for j, peer := range r.To {
		errs = cr.compilePeer(peer, peersPath.Index(j), errs)
		addressed = addressed || peer.Nodes != nil || len(peer.Networks) > 0 || len(peer.DomainNames) > 0
	}
	if cr.domains && cr.ref.Action != Accept {
		errs = append(errs, field.Invalid(path.Child("action"), r.Action, "domainNames peers are only supported in Accept rules"))
	}
	errs = cr.compileProtocols(r.Protocols, path.Child("protocols"), errs)
	if addressed && slices.ContainsFunc(cr.ports, func(p compiledPort) bool { return p.name != "" }) {
		errs = append(errs, field.Invalid(path, "", "networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames"))
	}
	return cr, errs
}

func (cp *compiledCluster) ruleRef(dir Direction, i int, name string) TierRuleRef {
	return TierRuleRef{Tier: cp.tier, Policy: cp.ref, Priority: cp.prio, Direction: dir, Index: i, Name: name}
}

func (cr *clusterRule) compileAction(a v1beta1.ClusterNetworkPolicyRuleAction, tier Tier, path *field.Path, errs field.ErrorList) field.ErrorList {
	switch a {
	case v1beta1.ClusterNetworkPolicyRuleActionAccept:
		cr.ref.Action = Accept
	case v1beta1.ClusterNetworkPolicyRuleActionDeny:
		cr.ref.Action = Deny
	case v1beta1.ClusterNetworkPolicyRuleActionPass:
		cr.ref.Action = Pass
		if cr.ref.Policy.Kind == BaselineAdminNetworkPolicyKind {
			errs = append(errs, field.NotSupported(path, "Pass", []string{"Allow", "Deny"}))
		}
	default:
		errs = append(errs, field.NotSupported(path, a, []v1beta1.ClusterNetworkPolicyRuleAction{
			v1beta1.ClusterNetworkPolicyRuleActionAccept, v1beta1.ClusterNetworkPolicyRuleActionDeny, v1beta1.ClusterNetworkPolicyRuleActionPass}))
	}
	return errs
}

// compilePeer compiles one from/to entry, of which exactly one field is set.
func (cr *clusterRule) compilePeer(p v1beta1.ClusterNetworkPolicyEgressPeer, path *field.Path, errs field.ErrorList) field.ErrorList {
	n := 0
	var out clusterPeer
	var b strings.Builder
	if p.Namespaces != nil {
		n++
		out.namespaces, errs = selector(p.Namespaces, path.Child("namespaces"), errs)
		b.WriteString("ns:" + out.namespaces.String())
	}
	if p.Pods != nil {
		n++
		out.namespaces, errs = selector(&p.Pods.NamespaceSelector, path.Child("pods", "namespaceSelector"), errs)
		out.pods, errs = selector(&p.Pods.PodSelector, path.Child("pods", "podSelector"), errs)
		b.WriteString("pods:" + out.namespaces.String() + "|" + out.pods.String())
	}
	if p.Nodes != nil {
		n++
		out.nodes, errs = selector(p.Nodes, path.Child("nodes"), errs)
		b.WriteString("nodes:" + out.nodes.String())
	}
	if len(p.Networks) > 0 {
		n++
		b.WriteString("net:")
		for i, c := range p.Networks {
			pfx, err := netip.ParsePrefix(string(c))
			if err != nil || pfx != pfx.Masked() {
				errs = append(errs, field.Invalid(path.Child("networks").Index(i), c, "Invalid CIDR format provided"))
				continue
			}
			out.networks = append(out.networks, pfx)
			b.WriteString(pfx.String() + ",")
		}
	}
	if len(p.DomainNames) > 0 {
		n++
		cr.domains = true
		for i, d := range p.DomainNames {
			name := strings.TrimPrefix(strings.TrimSuffix(string(d), "."), "*.")
			if len(validation.IsDNS1123Subdomain(strings.ToLower(strings.ReplaceAll(name, "_", "-")))) > 0 || !strings.Contains(name, ".") {
				errs = append(errs, field.Invalid(path.Child("domainNames").Index(i), d, "must be a domain name, optionally prefixed by '*.'"))
			}
		}
		if n == 1 {
			return errs // nothing an address can match: the rule's domains flag stands for it
		}
	}
	if n != 1 {
		return append(errs, field.Invalid(path, "", "exactly one of namespaces, pods, nodes, networks or domainNames must be set"))
	}
	out.key = b.String()
	cr.peers = append(cr.peers, out)
	return errs
}

func (cr *clusterRule) compileProtocols(protos []v1beta1.ClusterNetworkPolicyProtocol, path *field.Path, errs field.ErrorList) field.ErrorList {
	if protos == nil {
		cr.anyPort = true
		return errs
	}
	if len(protos) == 0 {
		return append(errs, field.Required(path, "must have at least one item when set"))
	}
	for i, p := range protos {
		pp := path.Index(i)
		n := 0
		var port *v1beta1.Port
		var proto corev1.Protocol
		if p.TCP != nil {
			n++
			port, proto = p.TCP.DestinationPort, corev1.ProtocolTCP
		}
		if p.UDP != nil {
			n++
			port, proto = p.UDP.DestinationPort, corev1.ProtocolUDP
		}
		if p.SCTP != nil {
			n++
			port, proto = p.SCTP.DestinationPort, corev1.ProtocolSCTP
		}
		if p.DestinationNamedPort != "" {
			n++
			for _, msg := range validation.IsValidPortName(p.DestinationNamedPort) {
				errs = append(errs, field.Invalid(pp.Child("destinationNamedPort"), p.DestinationNamedPort, msg))
			}
			// destinationNamedPort "selects a destination port on a pod based on the
			// ContainerPort name", resolved like a NetworkPolicy named port, with the
			// container port's protocol.
			cr.ports = append(cr.ports, compiledPort{name: p.DestinationNamedPort})
		}
		if n != 1 {
			errs = append(errs, field.Invalid(pp, "", "exactly one of tcp, udp, sctp or destinationNamedPort must be set"))
			continue
		}
		if p.DestinationNamedPort != "" {
			continue
		}
		dp := pp.Child(strings.ToLower(string(proto)), "destinationPort")
		switch {
		case port == nil:
			errs = append(errs, field.Required(dp, ""))
		case port.Range != nil && port.Number != 0:
			errs = append(errs, field.Invalid(dp, "", "exactly one of number or range must be set"))
		case port.Range != nil:
			r := port.Range
			if r.Start < 1 || r.End > 65535 || r.Start >= r.End {
				errs = append(errs, field.Invalid(dp.Child("range"), fmt.Sprintf("%d-%d", r.Start, r.End), "Start port must be less than End port, both in 1-65535"))
			}
			cr.ports = append(cr.ports, compiledPort{protocol: proto, lo: r.Start, hi: r.End})
		default:
			for _, msg := range validation.IsValidPortNum(int(port.Number)) {
				errs = append(errs, field.Invalid(dp.Child("number"), port.Number, msg))
			}
			cr.ports = append(cr.ports, compiledPort{protocol: proto, lo: port.Number, hi: port.Number})
		}
	}
	return errs
}

func (r *clusterRule) portMatches(port int32, proto corev1.Protocol, dst *Endpoint) bool {
	return portsMatch(r.anyPort, r.ports, port, proto, dst)
}

// changedClusters lists the cluster policies that differ between two sets: added, removed,
// or with a different spec.
func changedClusters(before, after *clusterSet) []*compiledCluster {
	if before == after {
		return nil
	}
	find := func(cs *clusterSet, ref ClusterRef) *compiledCluster {
		if cs == nil {
			return nil
		}
		for _, cp := range cs.policies {
			if cp.ref == ref {
				return cp
			}
		}
		return nil
	}
	var out []*compiledCluster
	if before != nil {
		for _, bp := range before.policies {
			ap := find(after, bp.ref)
			switch {
			case ap == nil:
				out = append(out, bp)
			case ap.src != bp.src && !apiequality.Semantic.DeepEqual(ap.src.Spec, bp.src.Spec):
				out = append(out, bp, ap)
			}
		}
	}
	if after != nil {
		for _, ap := range after.policies {
			if find(before, ap.ref) == nil {
				out = append(out, ap)
			}
		}
	}
	return out
}

// selects reports whether the policy's subject selects ep: a pod (not host-networked) in
// a namespace the subject matches.
func (cp *compiledCluster) selects(ep *Endpoint, nsLabels labels.Set) bool {
	return ep.Kind == Pod && cp.subjNS.Matches(nsLabels) && (cp.subjPods == nil || cp.subjPods.Matches(labels.Set(ep.Labels)))
}
