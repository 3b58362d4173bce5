package evaluator

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// PolicySet is a compiled, immutable set of NetworkPolicies, grouped by namespace. It is safe
// for concurrent use. With derives a new set from it, sharing every namespace the change does
// not touch.
type PolicySet struct {
	byNS map[string]*nsPolicies
	// base is the set With derived this one from, and changed the namespaces it touched:
	// for any other namespace the base answers the same, so what was learnt from it holds.
	base    *PolicySet
	changed []string
	// cluster holds the Admin and Baseline tiers; nil for NetworkPolicies alone, which is
	// all the evaluator's hot path looks at then.
	cluster *clusterSet
	// bounds are the address ranges the policies name, for SplitsPrefix; built once.
	boundsOnce sync.Once
	bounds     []netip.Prefix
}

// origin returns the first set in the chain of Withs that holds namespace ns's policies as
// ps does: the one whose memos serve ps for that namespace.
func (ps *PolicySet) origin(ns string) *PolicySet {
	for ps.base != nil && !slices.Contains(ps.changed, ns) {
		ps = ps.base
	}
	return ps
}

// nsPolicies holds one namespace's policies, compiled. A policy only ever applies to pods in
// its own namespace, so the policies that can isolate a pod are all found here.
type nsPolicies struct {
	namespace string
	policies  []*compiledPolicy // sorted by name
	// Rules of every policy that has the direction among its types, in policy order. Bit i of
	// a rule set stands for rules[i].
	ingress []*compiledRule
	egress  []*compiledRule
	// peers are the distinct peers of all rules: policies of a namespace tend to repeat the
	// same from/to entries (the monitoring namespace, the ingress controller), and whether
	// one matches an endpoint is worked out once for all the rules that list it.
	peers []compiledPeer
	// byLabel indexes the policies whose podSelector requires a label (matchLabels) by one
	// such label; the others are in unindexed. A pod can only be selected by the policies
	// of its own labels' entries and the unindexed ones, so most selectors need no test.
	byLabel   map[labelPair][]int
	unindexed []int
	// ingressIPBlocks and egressIPBlocks say whether a rule of the direction has an ipBlock
	// peer: only then can a verdict depend on the peer's address, and a workload's pods
	// need judging one by one.
	ingressIPBlocks, egressIPBlocks bool
}

type labelPair struct{ key, value string }

// mayApply returns, in policy order, the policies that may select a pod with these labels:
// the rest certainly do not. buf is reused.
func (nsp *nsPolicies) mayApply(podLabels map[string]string, buf *[]int) []int {
	if len(nsp.byLabel) == 0 {
		return nsp.unindexed
	}
	out := append((*buf)[:0], nsp.unindexed...)
	for k, v := range podLabels {
		out = append(out, nsp.byLabel[labelPair{k, v}]...)
	}
	slices.Sort(out)
	*buf = out
	return out
}

// indexSelectors fills byLabel and unindexed.
func (nsp *nsPolicies) indexSelectors() {
	nsp.byLabel = map[labelPair][]int{}
	for i, cp := range nsp.policies {
		ml := cp.src.Spec.PodSelector.MatchLabels
		if len(ml) == 0 {
			nsp.unindexed = append(nsp.unindexed, i)
			continue
		}
		key := slices.Min(slices.Collect(maps.Keys(ml)))
		p := labelPair{key, ml[key]}
		nsp.byLabel[p] = append(nsp.byLabel[p], i)
	}
}

type compiledPolicy struct {
	ref      PolicyRef
	src      *networkingv1.NetworkPolicy
	selector labels.Selector
	// Policy types, explicit or inferred: Ingress always, Egress when egress rules exist.
	ingress, egress bool
	// Bit sets of this policy's rules in nsPolicies.ingress / .egress.
	ingressRules, egressRules bitset
}

type compiledRule struct {
	ref RuleRef
	// anyPeer: the rule lists no peers, so it matches every source (ingress) or destination
	// (egress), pods and outside addresses alike.
	anyPeer bool
	peers   []compiledPeer
	peerIDs []int // indexes of peers in nsPolicies.peers
	// anyPort: the rule lists no ports, so it matches every port of every protocol.
	anyPort bool
	ports   []compiledPort
}

type compiledPeer struct {
	ipBlock *compiledIPBlock
	// podSelector without namespaceSelector selects pods of the policy's own namespace;
	// namespaceSelector without podSelector selects every pod of matching namespaces; both
	// together select matching pods in matching namespaces.
	pods       labels.Selector // nil: not set
	namespaces labels.Selector // nil: not set
}

type compiledIPBlock struct {
	cidr   netip.Prefix
	except []netip.Prefix
}

// matches reports whether the block matches ep's address, or every address of ep's prefix.
func (b *compiledIPBlock) matches(ep *Endpoint) bool {
	if ep.Prefix.IsValid() {
		return b.containsPrefix(ep.Prefix)
	}
	return b.contains(ep.IP)
}

func (b *compiledIPBlock) contains(ip netip.Addr) bool {
	ip = ip.Unmap() // ::ffff:10.0.0.1 is 10.0.0.1
	if !ip.IsValid() || !b.cidr.Contains(ip) {
		return false
	}
	for _, e := range b.except {
		if e.Contains(ip) {
			return false
		}
	}
	return true
}

type compiledPort struct {
	// protocol is "" only for a cluster policy's named port: the container port's.
	protocol corev1.Protocol
	// anyPort: no port given, every port of the protocol matches.
	anyPort bool
	lo, hi  int32
	// name is a named port, resolved against the destination pod's container ports.
	name string
}

// PolicyError reports a NetworkPolicy the API server would reject, with kubectl-style field
// paths.
type PolicyError struct {
	Policy PolicyRef
	Errs   field.ErrorList
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("networkpolicy %s: %s", e.Policy, joinFieldErrors(e.Errs))
}

// joinFieldErrors writes a policy's findings on one line, as kubectl lists them.
func joinFieldErrors(errs field.ErrorList) string {
	msgs := make([]string, 0, len(errs))
	for _, err := range errs {
		msgs = append(msgs, err.Error())
	}
	return strings.Join(msgs, "; ")
}

// Compile validates and compiles a set of policies. Every invalid policy is reported (as a
// *PolicyError, joined); two policies with the same namespace and name are an error.
func Compile(policies []*networkingv1.NetworkPolicy) (*PolicySet, error) {
	grouped := map[string][]*networkingv1.NetworkPolicy{}
	seen := map[PolicyRef]bool{}
	var errs []error
	for _, p := range policies {
		ref := PolicyRef{Namespace: p.Namespace, Name: p.Name}
		if seen[ref] {
			errs = append(errs, fmt.Errorf("networkpolicy %s: listed twice", ref))
			continue
		}
		seen[ref] = true
		grouped[p.Namespace] = append(grouped[p.Namespace], p)
	}
	ps := &PolicySet{byNS: make(map[string]*nsPolicies, len(grouped))}
	for ns, list := range grouped {
		nsp, err := compileNamespace(ns, list)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps.byNS[ns] = nsp
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ps, nil
}

// With returns the set as it would be after a change: a create (old nil), an update (both),
// or a delete (new nil). Namespaces the change does not touch are shared with ps.
func (ps *PolicySet) With(old, new *networkingv1.NetworkPolicy) (*PolicySet, error) {
	if old == nil && new == nil {
		return ps, nil
	}
	next := &PolicySet{byNS: make(map[string]*nsPolicies, len(ps.byNS)+1), base: ps, cluster: ps.cluster}
	for ns, nsp := range ps.byNS {
		next.byNS[ns] = nsp
	}
	touched := map[string]bool{}
	if old != nil {
		touched[old.Namespace] = true
	}
	if new != nil {
		touched[new.Namespace] = true
	}
	for ns := range touched {
		next.changed = append(next.changed, ns)
		var list []*networkingv1.NetworkPolicy
		if nsp := ps.byNS[ns]; nsp != nil {
			for _, cp := range nsp.policies {
				if old != nil && cp.ref == (PolicyRef{old.Namespace, old.Name}) {
					continue
				}
				if new != nil && cp.ref == (PolicyRef{new.Namespace, new.Name}) {
					continue
				}
				list = append(list, cp.src)
			}
		}
		if new != nil && new.Namespace == ns {
			list = append(list, new)
		}
		if len(list) == 0 {
			delete(next.byNS, ns)
			continue
		}
		nsp, err := compileNamespace(ns, list)
		if err != nil {
			return nil, err
		}
		next.byNS[ns] = nsp
	}
	return next, nil
}

// Policies returns the set's policies, by namespace and name.
func (ps *PolicySet) Policies() []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, ns := range ps.namespaces() {
		for _, cp := range ps.byNS[ns].policies {
			out = append(out, cp.src)
		}
	}
	return out
}

// Len is the number of policies in the set.
func (ps *PolicySet) Len() int {
	n := 0
	for _, nsp := range ps.byNS {
		n += len(nsp.policies)
	}
	return n
}

func (ps *PolicySet) namespaces() []string {
	out := make([]string, 0, len(ps.byNS))
	for ns := range ps.byNS {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}

// changedPolicies lists the policies that differ between two sets: added, removed, or with a
// different spec. Namespaces shared by pointer are skipped without a look.
func changedPolicies(before, after *PolicySet) []*compiledPolicy {
	var out []*compiledPolicy
	for ns, b := range before.byNS {
		a := after.byNS[ns]
		if a == b {
			continue
		}
		out = append(out, diffNamespace(b, a)...)
	}
	for ns, a := range after.byNS {
		if _, ok := before.byNS[ns]; !ok {
			out = append(out, a.policies...)
		}
	}
	return out
}

func diffNamespace(b, a *nsPolicies) []*compiledPolicy {
	var out []*compiledPolicy
	find := func(nsp *nsPolicies, name string) *compiledPolicy {
		if nsp == nil {
			return nil
		}
		return nsp.find(name)
	}
	for _, bp := range b.policies {
		ap := find(a, bp.ref.Name)
		if ap == nil {
			out = append(out, bp)
			continue
		}
		if ap.src != bp.src && !apiequality.Semantic.DeepEqual(ap.src.Spec, bp.src.Spec) {
			out = append(out, bp, ap)
		}
	}
	if a != nil {
		for _, ap := range a.policies {
			if find(b, ap.ref.Name) == nil {
				out = append(out, ap)
			}
		}
	}
	return out
}

func compileNamespace(ns string, list []*networkingv1.NetworkPolicy) (*nsPolicies, error) {
	sorted := slices.Clone(list)
	slices.SortFunc(sorted, func(a, b *networkingv1.NetworkPolicy) int { return strings.Compare(a.Name, b.Name) })
	nsp := &nsPolicies{namespace: ns}
	var errs []error
	for _, p := range sorted {
		cp, err := compilePolicy(nsp, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		nsp.policies = append(nsp.policies, cp)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	nsp.internPeers()
	nsp.indexSelectors()
	nsp.ingressIPBlocks, nsp.egressIPBlocks = hasIPBlock(nsp.ingress), hasIPBlock(nsp.egress)
	for _, cp := range nsp.policies {
		cp.ingressRules = newBitset(len(nsp.ingress))
		cp.egressRules = newBitset(len(nsp.egress))
	}
	for i, r := range nsp.ingress {
		nsp.policies[policyIndex(nsp, r.ref.Policy)].ingressRules.set(i)
	}
	for i, r := range nsp.egress {
		nsp.policies[policyIndex(nsp, r.ref.Policy)].egressRules.set(i)
	}
	return nsp, nil
}

func hasIPBlock(rules []*compiledRule) bool {
	for _, r := range rules {
		for _, p := range r.peers {
			if p.ipBlock != nil {
				return true
			}
		}
	}
	return false
}

// internPeers gives every rule the indexes of its peers among the namespace's distinct ones.
func (nsp *nsPolicies) internPeers() {
	ids := map[string]int{}
	for _, rules := range [][]*compiledRule{nsp.ingress, nsp.egress} {
		for _, r := range rules {
			r.peerIDs = r.peerIDs[:0]
			for _, p := range r.peers {
				key := p.key()
				id, ok := ids[key]
				if !ok {
					id = len(nsp.peers)
					ids[key] = id
					nsp.peers = append(nsp.peers, p)
				}
				r.peerIDs = append(r.peerIDs, id)
			}
		}
	}
}

// key is the same for peers that match the same endpoints.
func (p compiledPeer) key() string {
	var b strings.Builder
	if p.ipBlock != nil {
		b.WriteString("ip:" + p.ipBlock.cidr.String())
		for _, e := range p.ipBlock.except {
			b.WriteString("-" + e.String())
		}
		return b.String()
	}
	if p.pods != nil {
		b.WriteString("pods:" + p.pods.String())
	}
	if p.namespaces != nil {
		b.WriteString("|ns:" + p.namespaces.String())
	}
	return b.String()
}

func policyIndex(nsp *nsPolicies, ref PolicyRef) int {
	for i, cp := range nsp.policies {
		if cp.ref == ref {
			return i
		}
	}
	panic("evaluator: rule of unknown policy " + ref.String())
}

// compilePolicy validates p as the API server would and appends its rules to nsp.
func compilePolicy(nsp *nsPolicies, p *networkingv1.NetworkPolicy) (*compiledPolicy, error) {
	ref := PolicyRef{Namespace: p.Namespace, Name: p.Name}
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if p.Name == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), ""))
	}
	cp := &compiledPolicy{ref: ref, src: p}
	cp.selector, errs = selector(&p.Spec.PodSelector, spec.Child("podSelector"), errs)

	// policyTypes: explicit, or inferred. "If this field is not specified, it will default
	// based on the existence of ingress or egress rules; policies that contain an egress
	// section are assumed to affect egress, and all policies (whether or not they contain an
	// ingress section) are assumed to affect ingress."
	if len(p.Spec.PolicyTypes) == 0 {
		cp.ingress = true
		cp.egress = len(p.Spec.Egress) > 0
	}
	for i, t := range p.Spec.PolicyTypes {
		path := spec.Child("policyTypes").Index(i)
		switch t {
		case networkingv1.PolicyTypeIngress:
			if cp.ingress {
				errs = append(errs, field.Duplicate(path, t))
			}
			cp.ingress = true
		case networkingv1.PolicyTypeEgress:
			if cp.egress {
				errs = append(errs, field.Duplicate(path, t))
			}
			cp.egress = true
		default:
			errs = append(errs, field.NotSupported(path, t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}))
		}
	}

	var ingress, egress []*compiledRule
	for i, r := range p.Spec.Ingress {
		path := spec.Child("ingress").Index(i)
		var cr *compiledRule
		cr, errs = compileRule(ref, Ingress, i, r.From, r.Ports, path.Child("from"), path.Child("ports"), errs)
		ingress = append(ingress, cr)
	}
	for i, r := range p.Spec.Egress {
		path := spec.Child("egress").Index(i)
		var cr *compiledRule
		cr, errs = compileRule(ref, Egress, i, r.To, r.Ports, path.Child("to"), path.Child("ports"), errs)
		egress = append(egress, cr)
	}
	if len(errs) > 0 {
		return nil, &PolicyError{Policy: ref, Errs: errs}
	}
	// Rules of a direction the policy does not have are ignored: "ingress: [] or absent under
	// Ingress denies all" falls out of having the type and no rules.
	if cp.ingress {
		nsp.ingress = append(nsp.ingress, ingress...)
	}
	if cp.egress {
		nsp.egress = append(nsp.egress, egress...)
	}
	return cp, nil
}

func compileRule(ref PolicyRef, dir Direction, index int, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, peersPath, portsPath *field.Path, errs field.ErrorList) (*compiledRule, field.ErrorList) {
	cr := &compiledRule{
		ref:     RuleRef{Policy: ref, Direction: dir, Index: index},
		anyPeer: len(peers) == 0,
		anyPort: len(ports) == 0,
	}
	for i := range peers {
		var peer compiledPeer
		peer, errs = compilePeer(&peers[i], peersPath.Index(i), errs)
		cr.peers = append(cr.peers, peer)
	}
	for i := range ports {
		var port compiledPort
		port, errs = compilePort(&ports[i], portsPath.Index(i), errs)
		cr.ports = append(cr.ports, port)
	}
	return cr, errs
}

func compilePeer(p *networkingv1.NetworkPolicyPeer, path *field.Path, errs field.ErrorList) (compiledPeer, field.ErrorList) {
	var out compiledPeer
	n := 0
	if p.PodSelector != nil {
		n++
		out.pods, errs = selector(p.PodSelector, path.Child("podSelector"), errs)
	}
	if p.NamespaceSelector != nil {
		n++
		out.namespaces, errs = selector(p.NamespaceSelector, path.Child("namespaceSelector"), errs)
	}
	if p.IPBlock != nil {
		n++
		out.ipBlock, errs = compileIPBlock(p.IPBlock, path.Child("ipBlock"), errs)
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(path, "must specify a peer"))
	case p.IPBlock != nil && n > 1:
		errs = append(errs, field.Forbidden(path, "may not specify more than 1 peer"))
	}
	return out, errs
}

func compileIPBlock(b *networkingv1.IPBlock, path *field.Path, errs field.ErrorList) (*compiledIPBlock, field.ErrorList) {
	out := &compiledIPBlock{}
	if b.CIDR == "" {
		return out, append(errs, field.Required(path.Child("cidr"), ""))
	}
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return out, append(errs, field.Invalid(path.Child("cidr"), b.CIDR, "must be a valid CIDR"))
	}
	out.cidr = cidr.Masked()
	for i, e := range b.Except {
		p := path.Child("except").Index(i)
		ex, err := netip.ParsePrefix(e)
		if err != nil {
			errs = append(errs, field.Invalid(p, e, "must be a valid CIDR"))
			continue
		}
		ex = ex.Masked()
		if ex.Addr().Is4() != out.cidr.Addr().Is4() || ex.Bits() <= out.cidr.Bits() || !out.cidr.Contains(ex.Addr()) {
			errs = append(errs, field.Invalid(p, e, "must be a strict subset of `cidr`"))
			continue
		}
		out.except = append(out.except, ex)
	}
	return out, errs
}

var supportedProtocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

func compilePort(p *networkingv1.NetworkPolicyPort, path *field.Path, errs field.ErrorList) (compiledPort, field.ErrorList) {
	out := compiledPort{protocol: corev1.ProtocolTCP, anyPort: p.Port == nil}
	if p.Protocol != nil {
		out.protocol = *p.Protocol
		if !slices.Contains(supportedProtocols, out.protocol) {
			errs = append(errs, field.NotSupported(path.Child("protocol"), out.protocol, supportedProtocols))
		}
	}
	if p.Port == nil {
		if p.EndPort != nil {
			errs = append(errs, field.Required(path.Child("port"), "must be specified when endPort is specified"))
		}
		return out, errs
	}
	if p.Port.Type == intstr.String {
		out.name = p.Port.StrVal
		for _, msg := range validation.IsValidPortName(out.name) {
			errs = append(errs, field.Invalid(path.Child("port"), out.name, msg))
		}
		if p.EndPort != nil {
			errs = append(errs, field.Invalid(path.Child("endPort"), *p.EndPort, "may not be specified when `port` is non-numeric"))
		}
		return out, errs
	}
	out.lo, out.hi = p.Port.IntVal, p.Port.IntVal
	for _, msg := range validation.IsValidPortNum(int(out.lo)) {
		errs = append(errs, field.Invalid(path.Child("port"), out.lo, msg))
	}
	if p.EndPort != nil {
		out.hi = *p.EndPort
		if out.hi < out.lo {
			errs = append(errs, field.Invalid(path.Child("endPort"), out.hi, "must be greater than or equal to `port`"))
		}
		for _, msg := range validation.IsValidPortNum(int(out.hi)) {
			errs = append(errs, field.Invalid(path.Child("endPort"), out.hi, msg))
		}
	}
	return out, errs
}

func selector(s *metav1.LabelSelector, path *field.Path, errs field.ErrorList) (labels.Selector, field.ErrorList) {
	sel, err := Selector(s)
	if err != nil {
		return labels.Nothing(), append(errs, field.Invalid(path, s, err.Error()))
	}
	return sel, errs
}

// Get returns the policy with that namespace and name, or nil.
func (ps *PolicySet) Get(namespace, name string) *networkingv1.NetworkPolicy {
	if nsp := ps.byNS[namespace]; nsp != nil {
		if cp := nsp.find(name); cp != nil {
			return cp.src
		}
	}
	return nil
}

func (nsp *nsPolicies) find(name string) *compiledPolicy {
	i, ok := slices.BinarySearchFunc(nsp.policies, name, func(cp *compiledPolicy, n string) int { return strings.Compare(cp.ref.Name, n) })
	if !ok {
		return nil
	}
	return nsp.policies[i]
}

// WithNamespace returns the set with namespace ns's policies replaced by list (none: the
// namespace has no policies). Other namespaces are shared with ps.
func (ps *PolicySet) WithNamespace(ns string, list []*networkingv1.NetworkPolicy) (*PolicySet, error) {
	next := &PolicySet{byNS: make(map[string]*nsPolicies, len(ps.byNS)+1), cluster: ps.cluster}
	for k, v := range ps.byNS {
		next.byNS[k] = v
	}
	delete(next.byNS, ns)
	if len(list) == 0 {
		return next, nil
	}
	for _, p := range list {
		if p.Namespace != ns {
			return nil, fmt.Errorf("networkpolicy %s/%s is not in namespace %s", p.Namespace, p.Name, ns)
		}
	}
	nsp, err := compileNamespace(ns, list)
	if err != nil {
		return nil, err
	}
	next.byNS[ns] = nsp
	return next, nil
}
