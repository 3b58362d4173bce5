package cluster

import (
	"cmp"
	"context"
	"fmt"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// LiveOptions configures a Live.
type LiveOptions struct {
	// PodCIDRs are the cluster's pod networks (and any other in-cluster range whose
	// addresses must never be taken for external ones). Each Node's spec.podCIDRs are added.
	// An address inside them that no known pod held when a flow was seen is unresolved; an
	// address outside them, of no known pod or node, is external.
	PodCIDRs []netip.Prefix
	// IPGrace is how long an address is remembered for the pod that let go of it (deleted,
	// finished, or given a new address), and a deleted pod's name for its workload, so that
	// late flows resolve to the workload that held it. Default DefaultIPGrace.
	IPGrace time.Duration
	// WorkloadMemory is how long a workload's labels and named ports are kept after its
	// last pod is gone. Default flows.DefaultWindow, as long as the flow cache keeps edges.
	WorkloadMemory time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultIPGrace is LiveOptions.IPGrace by default.
const DefaultIPGrace = 5 * time.Minute

// Live is the live view of the cluster the webhook and the flow sources share: pods,
// namespaces, nodes and NetworkPolicies as a controller-runtime cache's informers report
// them, plus the metadata of ReplicaSets and Jobs for pods' owner chains. Event handlers keep
// in-memory indexes, so every question — which workload held this IP at 10:02, what labels
// does Deployment shop/cart carry, which policies are in shop — is answered from them and
// never by listing.
//
// A pod's workload follows its controller: a ReplicaSet owned by a Deployment is that
// Deployment, a Job owned by a CronJob that CronJob, a StatefulSet, DaemonSet or any other
// controller itself; a pod without one is its own workload, Pod/<name>. While a ReplicaSet or
// Job is not (yet) known, the names decide, as WorkloadOf does.
//
// Live implements flows.Resolver. It is safe for concurrent use; the objects and endpoints
// it hands out are shared and must not be modified.
type Live struct {
	grace, memory time.Duration
	now           func() time.Time
	optCIDRs      []netip.Prefix

	regs []toolscache.ResourceEventHandlerRegistration

	mu         sync.RWMutex
	pods       map[types.NamespacedName]*livePod
	workloads  map[string]map[string]*workload // namespace → "Kind/name"
	owners     map[ownerKey]*owner
	byIP       map[netip.Addr][]holding
	hostNet    map[netip.Addr]*hostAddr
	gone       map[types.NamespacedName]gonePod
	nodes      map[string]*liveNode
	nodeByIP   map[netip.Addr]string
	cidrs      []netip.Prefix // optCIDRs and the nodes' podCIDRs
	namespaces map[string]map[string]string
	policies   map[string]map[string]*networkingv1.NetworkPolicy
	policyList map[string][]*networkingv1.NetworkPolicy // sorted by name
	allPolicy  []*networkingv1.NetworkPolicy            // sorted by namespace and name
	world      *evaluator.World                         // nil when it must be rebuilt
	// compiled is every policy, compiled; the namespaces in stale are recompiled on the
	// next PolicySet call.
	compiled *evaluator.PolicySet
	stale    map[string]bool
	// clusterPolicies are the Admin and Baseline tier policies of the kinds served; those
	// in clusterStale changed since the cluster tier of compiled was last brought up to date.
	clusterPolicies map[evaluator.ClusterRef]liveClusterPolicy
	clusterStale    map[evaluator.ClusterRef]bool
	// clusterWatcher, when set, starts and stops their informers; clusterPolled is set once
	// it has looked.
	clusterWatcher *ClusterPolicyWatcher
	clusterPolled  atomic.Bool
	// Admission webhooks' backends, for self-protection: the Services that webhook
	// configurations call, and the Services' selectors.
	webhookConfigs    map[string]map[types.NamespacedName][]string // "validating/name" → service → webhook names
	webhookNamespaces map[string]int                               // namespaces of those services
	services          map[types.NamespacedName]map[string]string   // service → selector

	ipQ, goneQ, memQ expiryQueue

	// Endpoints and peer infos for identities the view does not know (a workload only
	// the flow cache remembers, a gone node, an external address), interned.
	memoMu sync.RWMutex
	// byInfo finds the endpoint of a workload only the cache remembers by the address of
	// the info the cache stored with it: a pointer lookup instead of hashing its name.
	byInfo map[*flows.PeerInfo]*evaluator.Endpoint
	memo   map[memoKey]*evaluator.Endpoint
	infos  map[flows.PeerID]*flows.PeerInfo
}

var _ flows.Resolver = (*Live)(nil)

// maxMemo bounds the interned endpoints and infos of identities the view does not know; past
// it they are forgotten all at once (the evaluator then memoises per new pointer).
const maxMemo = 1 << 16

type memoKey struct {
	id   flows.PeerID
	info *flows.PeerInfo
}

type liveNode struct {
	name   string
	addrs  []netip.Addr // InternalIP and ExternalIP addresses, in status order
	cidrs  []netip.Prefix
	labels map[string]string
	ep     *evaluator.Endpoint
}

// NewLive returns a live view fed by c's informers for Pods, Namespaces, Nodes,
// NetworkPolicies, and ReplicaSet and Job metadata (PartialObjectMetadata). It only registers
// event handlers: starting c and waiting for it to sync stay the caller's job, and HasSynced
// tells when every handler has seen its informer's initial list.
func NewLive(c cache.Cache, opts LiveOptions) (*Live, error) {
	l := newLive(opts)
	type informed struct {
		obj client.Object
		h   toolscache.ResourceEventHandler
	}
	for _, in := range []informed{
		{&corev1.Namespace{}, handler(l.upsertNamespace, l.deleteNamespace)},
		{&corev1.Node{}, handler(l.upsertNode, l.deleteNode)},
		{&networkingv1.NetworkPolicy{}, handler(l.upsertPolicy, l.deletePolicy)},
		{partialMetadata("apps/v1", "ReplicaSet"), handler(l.upsertOwner(kindReplicaSet), l.deleteOwner(kindReplicaSet))},
		{partialMetadata("batch/v1", "Job"), handler(l.upsertOwner(kindJob), l.deleteOwner(kindJob))},
		{&corev1.Pod{}, handler(l.upsertPod, l.deletePod)},
		{&corev1.Service{}, handler(l.upsertService, l.deleteService)},
		{&admissionregistrationv1.ValidatingWebhookConfiguration{}, handler(l.upsertValidating, l.deleteWebhookConfig("validating"))},
		{&admissionregistrationv1.MutatingWebhookConfiguration{}, handler(l.upsertMutating, l.deleteWebhookConfig("mutating"))},
	} {
		// Not blocking until synced, the context only bounds getting the informer.
		inf, err := c.GetInformer(context.Background(), in.obj, cache.BlockUntilSynced(false))
		if err != nil {
			return nil, fmt.Errorf("getting informer for %T: %w", in.obj, err)
		}
		reg, err := inf.AddEventHandler(in.h)
		if err != nil {
			return nil, fmt.Errorf("adding event handler for %T: %w", in.obj, err)
		}
		l.regs = append(l.regs, reg)
	}
	return l, nil
}

func newLive(opts LiveOptions) *Live {
	if opts.IPGrace <= 0 {
		opts.IPGrace = DefaultIPGrace
	}
	if opts.WorkloadMemory <= 0 {
		opts.WorkloadMemory = flows.DefaultWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Live{
		grace:             opts.IPGrace,
		memory:            opts.WorkloadMemory,
		now:               opts.Now,
		pods:              map[types.NamespacedName]*livePod{},
		workloads:         map[string]map[string]*workload{},
		owners:            map[ownerKey]*owner{},
		byIP:              map[netip.Addr][]holding{},
		hostNet:           map[netip.Addr]*hostAddr{},
		gone:              map[types.NamespacedName]gonePod{},
		nodes:             map[string]*liveNode{},
		nodeByIP:          map[netip.Addr]string{},
		namespaces:        map[string]map[string]string{},
		policies:          map[string]map[string]*networkingv1.NetworkPolicy{},
		policyList:        map[string][]*networkingv1.NetworkPolicy{},
		compiled:          &evaluator.PolicySet{},
		stale:             map[string]bool{},
		clusterPolicies:   map[evaluator.ClusterRef]liveClusterPolicy{},
		clusterStale:      map[evaluator.ClusterRef]bool{},
		services:          map[types.NamespacedName]map[string]string{},
		webhookConfigs:    map[string]map[types.NamespacedName][]string{},
		webhookNamespaces: map[string]int{},
		memo:              map[memoKey]*evaluator.Endpoint{},
		byInfo:            map[*flows.PeerInfo]*evaluator.Endpoint{},
		infos:             map[flows.PeerID]*flows.PeerInfo{},
	}
	for _, p := range opts.PodCIDRs {
		l.optCIDRs = append(l.optCIDRs, p.Masked())
	}
	l.cidrs = l.optCIDRs
	return l
}

func partialMetadata(apiVersion, kind string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}}
}

// handler adapts typed upsert and delete functions to informer events. Deletes are by key,
// so a tombstone (DeletedFinalStateUnknown) without its object still deletes.
func handler[T client.Object](upsert func(T), remove func(types.NamespacedName)) toolscache.ResourceEventHandler {
	add := func(obj any) {
		o, ok := obj.(T)
		if !ok {
			log.V(1).Info("Unexpected object from informer", "type", fmt.Sprintf("%T", obj))
			return
		}
		upsert(o)
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    add,
		UpdateFunc: func(_, obj any) { add(obj) },
		DeleteFunc: func(obj any) {
			if o, ok := obj.(T); ok {
				remove(types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()})
				return
			}
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				ns, name, err := toolscache.SplitMetaNamespaceKey(d.Key)
				if err == nil {
					remove(types.NamespacedName{Namespace: ns, Name: name})
					return
				}
			}
			log.V(1).Info("Unexpected deleted object from informer", "type", fmt.Sprintf("%T", obj))
		},
	}
}

// HasSynced reports whether every handler has been given its informer's initial list.
func (l *Live) HasSynced() bool {
	for _, r := range l.regs {
		if !r.HasSynced() {
			return false
		}
	}
	l.mu.RLock()
	w := l.clusterWatcher
	l.mu.RUnlock()
	return w == nil || w.hasSynced()
}

// World returns the namespace labels (with kubernetes.io/metadata.name), the node addresses
// (InternalIP and ExternalIP) and the node labels the view holds. It is rebuilt only after
// one of them changed: until then every call returns the same pointer. Shared; do not modify.
func (l *Live) World() *evaluator.World {
	l.mu.RLock()
	w := l.world
	l.mu.RUnlock()
	if w != nil {
		return w
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.world == nil {
		w := &evaluator.World{
			NamespaceLabels: make(map[string]map[string]string, len(l.namespaces)),
			NodeAddresses:   make(map[string][]netip.Addr, len(l.nodes)),
			NodeLabels:      make(map[string]map[string]string, len(l.nodes)),
		}
		maps.Copy(w.NamespaceLabels, l.namespaces)
		for name, n := range l.nodes {
			if len(n.addrs) > 0 {
				w.NodeAddresses[name] = n.addrs
			}
			w.NodeLabels[name] = n.labels
		}
		l.world = w
	}
	return l.world
}

// Policies returns every NetworkPolicy, sorted by namespace and name. Shared; do not modify.
func (l *Live) Policies() []*networkingv1.NetworkPolicy {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.allPolicy
}

// PoliciesIn returns the NetworkPolicies of namespace ns, sorted by name. Shared; do not
// modify.
func (l *Live) PoliciesIn(ns string) []*networkingv1.NetworkPolicy {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.policyList[ns]
}

// WorkloadsIn returns the workloads of namespace ns the view knows — those with pods now, and
// those it still remembers — sorted by name. Workloads of host-network pods are left out:
// their flows are their nodes', and no policy applies to them.
func (l *Live) WorkloadsIn(ns string) []flows.PeerID {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]flows.PeerID, 0, len(l.workloads[ns]))
	for _, wl := range l.workloads[ns] {
		if !wl.hostNet {
			out = append(out, wl.id)
		}
	}
	slices.SortFunc(out, func(a, b flows.PeerID) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Endpoint returns the evaluator endpoint of a cached peer:
//
//   - a workload: the labels and named ports of its newest running pod, else of its newest
//     pod, else those the view remembers from its last pod, else stored (what the flow
//     cache kept); with none of them, a pod without labels. Kind Pod, Name the workload.
//   - a node: Kind Node with its name and first address.
//   - an external address: Kind External with the address; a network of them (an
//     aggregated peer, PeerID.Bits) with the network as its Prefix.
//
// The same identity gets the same pointer until its labels or ports change, so the
// evaluator's per-endpoint memoisation holds across admissions.
func (l *Live) Endpoint(id flows.PeerID, stored *flows.PeerInfo) *evaluator.Endpoint {
	l.mu.RLock()
	switch id.Kind {
	case flows.PeerWorkload:
		if wl := l.workloads[id.Namespace][id.Name]; wl != nil && wl.ep != nil {
			ep := wl.ep
			l.mu.RUnlock()
			return ep
		}
	case flows.PeerNode:
		if n := l.nodes[id.Name]; n != nil {
			ep := n.ep
			l.mu.RUnlock()
			return ep
		}
	}
	l.mu.RUnlock()

	if id.Kind == flows.PeerWorkload && stored != nil {
		l.memoMu.RLock()
		ep := l.byInfo[stored]
		l.memoMu.RUnlock()
		if ep != nil && ep.Namespace == id.Namespace && ep.Name == id.Name {
			return ep
		}
	}
	key := memoKey{id: id}
	if id.Kind == flows.PeerWorkload {
		key.info = stored
	}
	l.memoMu.Lock()
	defer l.memoMu.Unlock()
	if ep, ok := l.memo[key]; ok {
		return ep
	}
	var ep *evaluator.Endpoint
	switch id.Kind {
	case flows.PeerWorkload:
		ep = &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: id.Namespace, Name: id.Name}
		if stored != nil {
			ep.Labels, ep.Ports = stored.Labels, stored.Ports
		}
	case flows.PeerNode:
		ep = &evaluator.Endpoint{Kind: evaluator.Node, Name: id.Name, NodeName: id.Name}
	default:
		ep = &evaluator.Endpoint{Kind: evaluator.External, IP: id.IP}
		if id.Bits != 0 {
			ep = &evaluator.Endpoint{Kind: evaluator.External, Prefix: id.Prefix()}
		}
	}
	if len(l.memo) >= maxMemo {
		clear(l.memo)
	}
	l.memo[key] = ep
	if id.Kind == flows.PeerWorkload && stored != nil {
		if len(l.byInfo) >= maxMemo {
			clear(l.byInfo)
		}
		l.byInfo[stored] = ep
	}
	return ep
}

// --- Namespaces, nodes and policies ---

func (l *Live) upsertNamespace(ns *corev1.Namespace) {
	labels := make(map[string]string, len(ns.Labels)+1)
	maps.Copy(labels, ns.Labels)
	labels[corev1.LabelMetadataName] = ns.Name
	l.lockAndSweep()
	defer l.mu.Unlock()
	if old, ok := l.namespaces[ns.Name]; ok && maps.Equal(old, labels) {
		return
	}
	l.namespaces[ns.Name] = labels
	l.world = nil
}

func (l *Live) deleteNamespace(key types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.namespaces[key.Name]; ok {
		delete(l.namespaces, key.Name)
		l.world = nil
	}
}

func (l *Live) upsertNode(node *corev1.Node) {
	var addrs []netip.Addr
	for _, a := range node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue // host names
		}
		if ip := parseAddr(a.Address); ip.IsValid() && !slices.Contains(addrs, ip) {
			addrs = append(addrs, ip)
		}
	}
	var cidrs []netip.Prefix
	podCIDRs := node.Spec.PodCIDRs
	if len(podCIDRs) == 0 && node.Spec.PodCIDR != "" {
		podCIDRs = []string{node.Spec.PodCIDR}
	}
	for _, s := range podCIDRs {
		if p, err := netip.ParsePrefix(s); err == nil {
			cidrs = append(cidrs, p.Masked())
		}
	}

	now := l.lockAndSweep()
	defer l.mu.Unlock()
	n := l.nodes[node.Name]
	if n == nil {
		n = &liveNode{name: node.Name}
		l.nodes[node.Name] = n
		n.ep = nodeEndpoint(n.name, netip.Addr{})
	}
	if !slices.Equal(n.addrs, addrs) {
		l.setNodeAddrs(n, addrs, now)
		l.world = nil
	}
	if !slices.Equal(n.cidrs, cidrs) {
		n.cidrs = cidrs
		l.rebuildCIDRs()
	}
	if !maps.Equal(n.labels, node.Labels) {
		n.labels = node.Labels
		l.world = nil
	}
}

func (l *Live) deleteNode(key types.NamespacedName) {
	now := l.lockAndSweep()
	defer l.mu.Unlock()
	n := l.nodes[key.Name]
	if n == nil {
		return
	}
	l.setNodeAddrs(n, nil, now)
	delete(l.nodes, key.Name)
	l.world = nil
	if len(n.cidrs) > 0 {
		l.rebuildCIDRs()
	}
}

// setNodeAddrs moves a node to new addresses. An address it gives up is remembered for the
// grace period, as a pod's is.
func (l *Live) setNodeAddrs(n *liveNode, addrs []netip.Addr, now time.Time) {
	for _, ip := range n.addrs {
		if slices.Contains(addrs, ip) || l.nodeByIP[ip] != n.name {
			continue
		}
		delete(l.nodeByIP, ip)
		// A node held its addresses for as long as anyone knows: from the beginning.
		l.byIP[ip] = append(l.byIP[ip], holding{peer: flows.PeerID{Kind: flows.PeerNode, Name: n.name}, until: now})
		l.ipQ.push(expiry{ip: ip, at: now.Add(l.grace)})
	}
	for _, ip := range addrs {
		if other, ok := l.nodeByIP[ip]; ok && other != n.name {
			log.V(1).Info("Node address claimed by two nodes; resolving it to the first", "ip", ip.String(), "node", other, "otherNode", n.name)
			continue
		}
		l.nodeByIP[ip] = n.name
	}
	n.addrs = addrs
	var first netip.Addr
	if len(addrs) > 0 {
		first = addrs[0]
	}
	n.ep = nodeEndpoint(n.name, first)
}

func (l *Live) rebuildCIDRs() {
	cidrs := slices.Clone(l.optCIDRs)
	for _, n := range l.nodes {
		for _, p := range n.cidrs {
			if !slices.Contains(cidrs, p) {
				cidrs = append(cidrs, p)
			}
		}
	}
	l.cidrs = cidrs
}

func (l *Live) upsertPolicy(p *networkingv1.NetworkPolicy) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byName := l.policies[p.Namespace]
	if old, ok := byName[p.Name]; ok && old.UID == p.UID && old.ResourceVersion == p.ResourceVersion && p.ResourceVersion != "" {
		return // a resync
	}
	if byName == nil {
		byName = map[string]*networkingv1.NetworkPolicy{}
		l.policies[p.Namespace] = byName
	}
	byName[p.Name] = p
	l.rebuildPolicies(p.Namespace)
}

func (l *Live) deletePolicy(key types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.policies[key.Namespace][key.Name]; !ok {
		return
	}
	delete(l.policies[key.Namespace], key.Name)
	if len(l.policies[key.Namespace]) == 0 {
		delete(l.policies, key.Namespace)
	}
	l.rebuildPolicies(key.Namespace)
}

// rebuildPolicies makes new sorted lists after a change in namespace ns; the old lists,
// which callers may hold, stay as they were.
func (l *Live) rebuildPolicies(ns string) {
	byName := l.policies[ns]
	if len(byName) == 0 {
		delete(l.policyList, ns)
	} else {
		l.policyList[ns] = slices.SortedFunc(maps.Values(byName), func(a, b *networkingv1.NetworkPolicy) int {
			return cmp.Compare(a.Name, b.Name)
		})
	}
	l.stale[ns] = true
	all := make([]*networkingv1.NetworkPolicy, 0, len(l.allPolicy)+1)
	for _, ns := range slices.Sorted(maps.Keys(l.policyList)) {
		all = append(all, l.policyList[ns]...)
	}
	l.allPolicy = all
}
