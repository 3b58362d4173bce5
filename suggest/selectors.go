package suggest

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// NamespaceNameLabel is the label the API server gives every namespace, its own name: the
// one namespace selector that cannot match another namespace.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// generatedKeys are labels controllers put on pods that differ between revisions, runs or
// pods of one workload: a selector on them would stop matching at the next rollout, run or
// pod.
var generatedKeys = map[string]bool{
	"pod-template-hash":                        true,
	"controller-revision-hash":                 true,
	"pod-template-generation":                  true,
	"controller-uid":                           true,
	"batch.kubernetes.io/controller-uid":       true,
	"job-name":                                 true,
	"batch.kubernetes.io/job-name":             true,
	"batch.kubernetes.io/job-completion-index": true,
	"statefulset.kubernetes.io/pod-name":       true,
	"apps.kubernetes.io/pod-index":             true,
}

// preferredKeys name what a workload is, the most telling first: a selector starts with
// them and adds other labels only where they do not tell the workload apart.
var preferredKeys = []string{
	"app.kubernetes.io/name", "app", "k8s-app", "name",
	"app.kubernetes.io/instance", "app.kubernetes.io/component", "component",
}

// Generated reports whether a label key is one controllers set per revision, run or pod.
func Generated(key string) bool { return generatedKeys[key] }

// stableKeys are a pod's label keys that every pod of its workload shares, preferred keys
// first, then the rest by name.
func stableKeys(l map[string]string) []string {
	var keys []string
	for _, k := range preferredKeys {
		if _, ok := l[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range l {
		if !generatedKeys[k] && !slices.Contains(preferredKeys, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}

// known indexes the workloads, nodes and addresses a suggestion is judged over.
type known struct {
	all  []*evaluator.Endpoint
	byNS map[string][]*evaluator.Endpoint // pod endpoints
	sel  map[*evaluator.Endpoint]map[string]string
	ips  map[netip.Addr][]*evaluator.Endpoint // by address, on first use
	// nsSets are namespace labels, kubernetes.io/metadata.name included, on first use.
	nsSets map[string]labels.Set
	// subjects are the known workloads each policy selects, on first use.
	subjects map[*networkingv1.NetworkPolicy][]*evaluator.Endpoint
}

// newKnown indexes the endpoints given and the ends of the flows, each identity once.
func newKnown(eps []*evaluator.Endpoint, fl []evaluator.Flow) *known {
	k := &known{byNS: map[string][]*evaluator.Endpoint{}, sel: map[*evaluator.Endpoint]map[string]string{}}
	seen := map[identity]bool{}
	add := func(ep *evaluator.Endpoint) {
		if ep == nil {
			return
		}
		id := identityOf(ep)
		if seen[id] {
			return
		}
		seen[id] = true
		k.all = append(k.all, ep)
		if ep.Kind == evaluator.Pod {
			k.byNS[ep.Namespace] = append(k.byNS[ep.Namespace], ep)
		}
	}
	for _, ep := range eps {
		add(ep)
	}
	for _, f := range fl {
		add(f.Src)
		add(f.Dst)
	}
	return k
}

// identity is what names an endpoint (its kind and String), as a key built without
// allocating: a fix indexes every end of ten thousand flows.
type identity struct {
	kind     evaluator.EndpointKind
	ns, name string
	ip       netip.Addr
	prefix   netip.Prefix
}

func identityOf(ep *evaluator.Endpoint) identity {
	id := identity{kind: ep.Kind}
	switch ep.Kind {
	case evaluator.Pod:
		id.ns, id.name = ep.Namespace, ep.Name
		if ep.Name == "" {
			id.ip = ep.IP
		}
	case evaluator.Node:
		id.name = ep.NodeName
		if ep.NodeName == "" {
			id.ip = ep.IP
		}
	default:
		if id.ip = ep.IP; !ep.IP.IsValid() {
			id.prefix = ep.Prefix
		}
	}
	return id
}

// selector is the fewest stable labels of a workload, preferred keys first, that select no
// other known workload of its namespace; all its stable labels when no subset does.
func (k *known) selector(ep *evaluator.Endpoint) map[string]string {
	if s, ok := k.sel[ep]; ok {
		return s
	}
	keys := stableKeys(ep.Labels)
	out := map[string]string{}
	others := slices.DeleteFunc(slices.Clone(k.byNS[ep.Namespace]), func(o *evaluator.Endpoint) bool { return o.Name == ep.Name })
	for _, key := range keys {
		out[key] = ep.Labels[key]
		sel := labels.SelectorFromSet(out)
		others = slices.DeleteFunc(others, func(o *evaluator.Endpoint) bool { return !sel.Matches(labels.Set(o.Labels)) })
		if len(others) == 0 {
			break
		}
	}
	k.sel[ep] = out
	return out
}

// selected lists the known workloads of ns that sel selects.
func (k *known) selected(ns string, sel labels.Selector) []*evaluator.Endpoint {
	var out []*evaluator.Endpoint
	for _, ep := range k.byNS[ns] {
		if sel.Matches(labels.Set(ep.Labels)) {
			out = append(out, ep)
		}
	}
	return out
}

// subjectsOf lists the known workloads p selects (none if its podSelector is invalid). A
// fix asks it for every rule, of a handful of policies.
func (k *known) subjectsOf(p *networkingv1.NetworkPolicy) []*evaluator.Endpoint {
	if out, ok := k.subjects[p]; ok {
		return out
	}
	var out []*evaluator.Endpoint
	if sel, err := evaluator.Selector(&p.Spec.PodSelector); err == nil {
		out = k.selected(p.Namespace, sel)
	}
	if k.subjects == nil {
		k.subjects = map[*networkingv1.NetworkPolicy][]*evaluator.Endpoint{}
	}
	k.subjects[p] = out
	return out
}

// peer is one end of a rule: the NetworkPolicyPeer and how a human reads it.
type peer struct {
	p    networkingv1.NetworkPolicyPeer
	text string
}

// peerFor is the narrowest peer that matches ep: a workload by its stable labels and its
// namespace's name label; a node or an outside address by its address as a /32 or /128.
func (k *known) peerFor(ep *evaluator.Endpoint, w *evaluator.World) (peer, bool) {
	switch ep.Kind {
	case evaluator.Pod:
		sel := k.selector(ep)
		return peer{
			p: networkingv1.NetworkPolicyPeer{
				PodSelector:       &metav1.LabelSelector{MatchLabels: sel},
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{NamespaceNameLabel: ep.Namespace}},
			},
			text: workloadName(ep) + " (" + labelsText(sel) + ")",
		}, true
	case evaluator.Node:
		ip := ep.IP
		if !ip.IsValid() && w != nil && len(w.NodeAddresses[ep.NodeName]) > 0 {
			ip = w.NodeAddresses[ep.NodeName][0]
		}
		if !ip.IsValid() {
			return peer{}, false
		}
		cidr := hostPrefix(ip)
		return peer{p: networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}}, text: "node " + ep.NodeName + " (" + cidr + ")"}, true
	default:
		if !ep.IP.IsValid() {
			return peer{}, false
		}
		cidr := hostPrefix(ep.IP)
		return peer{p: networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}}, text: cidr}, true
	}
}

func hostPrefix(ip netip.Addr) string {
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()).String()
}

// workloadName is "shop/cart" for the workload Deployment/cart of namespace shop.
func workloadName(ep *evaluator.Endpoint) string {
	if ep.Kind != evaluator.Pod {
		return ep.String()
	}
	name := ep.Name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if name == "" {
		return ep.String()
	}
	return ep.Namespace + "/" + name
}

// shortName is "cart" for Deployment/cart, fit for a policy name.
func shortName(ep *evaluator.Endpoint) string {
	name := ep.Name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return strings.ToLower(name)
}

func labelsText(l map[string]string) string {
	if len(l) == 0 {
		return "any pod"
	}
	return labels.SelectorFromSet(l).String()
}

// port is a destination port as a rule names it: by the destination's container port name
// where it has one for the number, else by number.
type port struct {
	protocol corev1.Protocol
	number   int32
	name     string
}

func portOf(f evaluator.Flow) port {
	p := port{protocol: f.Protocol, number: f.Port}
	if p.protocol == "" {
		p.protocol = corev1.ProtocolTCP
	}
	if f.Dst.Kind == evaluator.Pod {
		for _, cp := range f.Dst.Ports {
			proto := cmp.Or(cp.Protocol, corev1.ProtocolTCP)
			if cp.Port == f.Port && proto == p.protocol && cp.Name != "" {
				p.name = cp.Name
				break
			}
		}
	}
	return p
}

func (p port) String() string {
	if p.name != "" {
		return fmt.Sprintf("%s/%s", p.protocol, p.name)
	}
	return fmt.Sprintf("%s/%d", p.protocol, p.number)
}

func (p port) api() networkingv1.NetworkPolicyPort {
	proto := p.protocol
	v := intstr.FromInt32(p.number)
	if p.name != "" {
		v = intstr.FromString(p.name)
	}
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &v}
}

func comparePorts(a, b port) int {
	return cmp.Or(cmp.Compare(a.protocol, b.protocol), cmp.Compare(a.number, b.number), cmp.Compare(a.name, b.name))
}

// flowKey identifies a flow by its ends and port, to tell observed or cut flows from others.
type flowKey struct {
	src, dst identity
	port     int32
	protocol corev1.Protocol
}

func keyOf(f evaluator.Flow) flowKey {
	return flowKey{src: identityOf(f.Src), dst: identityOf(f.Dst), port: f.Port, protocol: cmp.Or(f.Protocol, corev1.ProtocolTCP)}
}
