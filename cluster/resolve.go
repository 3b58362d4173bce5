package cluster

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// Resolver turns the peers flow sources report into evaluator endpoints, by what a Snapshot
// says about pods, workloads and nodes. It interns endpoints: one identity, one
// *evaluator.Endpoint, so the evaluator's per-endpoint memoisation works. Endpoints and the
// World it hands out are shared and must not be modified. It is safe for concurrent use.
type Resolver struct {
	pods      map[types.NamespacedName]*corev1.Pod
	podsByIP  map[netip.Addr]*corev1.Pod
	workloads map[workloadKey][]*corev1.Pod // sorted by pod name
	nodeByIP  map[netip.Addr]string
	world     *evaluator.World

	mu       sync.Mutex
	interned map[string]*evaluator.Endpoint
}

type workloadKey struct {
	namespace, workload string
}

// NewResolver indexes a snapshot. The snapshot must not change while the Resolver is in use.
func NewResolver(s *Snapshot) *Resolver {
	if s == nil {
		s = &Snapshot{}
	}
	r := &Resolver{
		pods:      map[types.NamespacedName]*corev1.Pod{},
		podsByIP:  map[netip.Addr]*corev1.Pod{},
		workloads: map[workloadKey][]*corev1.Pod{},
		nodeByIP:  map[netip.Addr]string{},
		world: &evaluator.World{
			NamespaceLabels: map[string]map[string]string{},
			NodeAddresses:   map[string][]netip.Addr{},
		},
		interned: map[string]*evaluator.Endpoint{},
	}

	for _, ns := range s.Namespaces {
		labels := make(map[string]string, len(ns.Labels)+1)
		maps.Copy(labels, ns.Labels)
		labels[corev1.LabelMetadataName] = ns.Name
		r.world.NamespaceLabels[ns.Name] = labels
	}
	addNamespace := func(name string) {
		if _, ok := r.world.NamespaceLabels[name]; !ok && name != "" {
			r.world.NamespaceLabels[name] = map[string]string{corev1.LabelMetadataName: name}
		}
	}
	for _, p := range s.Policies {
		addNamespace(p.Namespace)
	}

	addNodeAddress := func(node string, addr netip.Addr) {
		if node == "" || !addr.IsValid() {
			return
		}
		if !slices.Contains(r.world.NodeAddresses[node], addr) {
			r.world.NodeAddresses[node] = append(r.world.NodeAddresses[node], addr)
		}
		if _, ok := r.nodeByIP[addr]; !ok {
			r.nodeByIP[addr] = node
		}
	}
	for _, n := range s.Nodes {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue // hostnames
			}
			addNodeAddress(n.Name, parseAddr(a.Address))
		}
	}

	for _, pod := range s.Pods {
		addNamespace(pod.Namespace)
		r.pods[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}] = pod
		wk := workloadKey{namespace: pod.Namespace, workload: WorkloadOf(pod)}
		r.workloads[wk] = append(r.workloads[wk], pod)

		// A pod's host IP is its node's (primary) address: this knows the nodes' addresses
		// even when the snapshot lists no Node objects, as `kubectl get pods` output does not.
		addNodeAddress(pod.Spec.NodeName, parseAddr(pod.Status.HostIP))
		for _, ip := range pod.Status.HostIPs {
			addNodeAddress(pod.Spec.NodeName, parseAddr(ip.IP))
		}

		if pod.Spec.HostNetwork {
			continue // its IPs are its node's
		}
		for _, addr := range podAddrs(pod) {
			prev, ok := r.podsByIP[addr]
			switch {
			case !ok:
				r.podsByIP[addr] = pod
			case terminated(prev) && !terminated(pod):
				// A finished pod keeps its IP in status after the IP has gone to another.
				r.podsByIP[addr] = pod
			case !terminated(prev) && !terminated(pod):
				log.V(1).Info("Pod IP claimed by two running pods; resolving it to the first",
					"ip", addr.String(), "pod", prev.Namespace+"/"+prev.Name, "otherPod", pod.Namespace+"/"+pod.Name)
			}
		}
	}
	for _, pods := range r.workloads {
		slices.SortStableFunc(pods, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	}
	return r
}

// World returns the namespace labels and node addresses of the snapshot: every namespace
// it lists, with the kubernetes.io/metadata.name label the API server would set, and every
// namespace a pod or policy is in, with only that label; the InternalIP and ExternalIP
// addresses of every node, and the host IPs of the pods on it. Shared; do not modify.
func (r *Resolver) World() *evaluator.World {
	return r.world
}

// Endpoint resolves a peer as a flow source reported it:
//
//   - pod (with namespace): the pod, named by its workload, with its labels, node, IP and
//     named ports; a host-network pod is its node. A pod the snapshot does not hold is
//     judged by the peer's labels, and is an error without them.
//   - workload (with namespace), e.g. "Deployment/cart": the workload's pod with the peer's
//     IP if there is one, else the labels and ports of its first pod by name. A workload
//     with no pods is judged by the peer's labels, and is an error without them.
//   - labels (with namespace): a pod with those labels.
//   - ip alone: the pod with that IP, else the node with that address, else an external
//     address (or, if the peer names a namespace, an unknown pod in it).
//
// Labels the peer gives win over the pod's, which may have changed since the flow was seen.
// An IP the peer gives wins over the pod's.
func (r *Resolver) Endpoint(p flows.Peer) (*evaluator.Endpoint, error) {
	e, err := r.resolve(p)
	if err != nil {
		return nil, err
	}
	return r.intern(e), nil
}

func (r *Resolver) resolve(p flows.Peer) (*evaluator.Endpoint, error) {
	var ip netip.Addr
	if p.IP != "" {
		var err error
		if ip, err = netip.ParseAddr(p.IP); err != nil {
			return nil, fmt.Errorf("peer ip %q: %w", p.IP, err)
		}
		ip = ip.Unmap()
	}

	switch {
	case p.Pod != "":
		if p.Namespace == "" {
			return nil, fmt.Errorf("pod %s: no namespace given", p.Pod)
		}
		if pod := r.pods[types.NamespacedName{Namespace: p.Namespace, Name: p.Pod}]; pod != nil {
			return podEndpoint(pod, p.Labels, ip), nil
		}
		if p.Labels == nil {
			return nil, fmt.Errorf("pod %s/%s not found in the cluster and no labels given", p.Namespace, p.Pod)
		}
		name := p.Pod
		if p.Workload != "" {
			name = p.Workload
		}
		return &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: p.Namespace, Name: name, Labels: copyLabels(p.Labels), IP: ip}, nil

	case p.Workload != "":
		if p.Namespace == "" {
			return nil, fmt.Errorf("workload %s: no namespace given", p.Workload)
		}
		pods := r.workloads[workloadKey{namespace: p.Namespace, workload: p.Workload}]
		if ip.IsValid() {
			for _, pod := range pods {
				if slices.Contains(podAddrs(pod), ip) {
					return podEndpoint(pod, p.Labels, ip), nil
				}
			}
		}
		if len(pods) == 0 {
			if p.Labels == nil {
				return nil, fmt.Errorf("workload %s/%s not found in the cluster and no labels given", p.Namespace, p.Workload)
			}
			return &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: p.Namespace, Name: p.Workload, Labels: copyLabels(p.Labels), IP: ip}, nil
		}
		first := pods[0]
		if first.Spec.HostNetwork {
			return nodeEndpoint(r.nodeByIP[ip], ip), nil
		}
		e := podEndpoint(first, p.Labels, ip)
		e.NodeName = "" // the workload, not one of its pods
		e.IP = ip
		return e, nil

	case ip.IsValid():
		if pod := r.podsByIP[ip]; pod != nil && (p.Namespace == "" || p.Namespace == pod.Namespace) {
			return podEndpoint(pod, p.Labels, ip), nil
		}
		if node, ok := r.nodeByIP[ip]; ok {
			return nodeEndpoint(node, ip), nil
		}
		if p.Namespace != "" {
			// The source says this is a pod, one the snapshot does not hold.
			return &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: p.Namespace, Labels: copyLabels(p.Labels), IP: ip}, nil
		}
		if p.Labels != nil {
			return nil, fmt.Errorf("peer %s: labels given without a namespace", ip)
		}
		return &evaluator.Endpoint{Kind: evaluator.External, IP: ip}, nil

	case p.Labels != nil:
		if p.Namespace == "" {
			return nil, fmt.Errorf("peer with labels %v: no namespace given", p.Labels)
		}
		return &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: p.Namespace, Labels: copyLabels(p.Labels)}, nil

	case p.Namespace != "":
		return nil, fmt.Errorf("peer in namespace %s names no pod, workload, labels or ip", p.Namespace)
	default:
		return nil, fmt.Errorf("empty peer")
	}
}

// podEndpoint is a pod as the evaluator sees it. labels, if not nil, replace the pod's; ip,
// if valid, replaces the pod's status.podIP.
func podEndpoint(pod *corev1.Pod, labels map[string]string, ip netip.Addr) *evaluator.Endpoint {
	if !ip.IsValid() {
		ip = parseAddr(pod.Status.PodIP)
	}
	if pod.Spec.HostNetwork {
		return nodeEndpoint(pod.Spec.NodeName, ip)
	}
	if labels == nil {
		labels = pod.Labels
	}
	e := &evaluator.Endpoint{
		Kind:      evaluator.Pod,
		Namespace: pod.Namespace,
		Name:      WorkloadOf(pod),
		Labels:    copyLabels(labels),
		NodeName:  pod.Spec.NodeName,
		IP:        ip,
	}
	for _, c := range pod.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "" {
				continue // only named ports matter: rules name them
			}
			proto := port.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			e.Ports = append(e.Ports, evaluator.ContainerPort{Name: port.Name, Port: port.ContainerPort, Protocol: proto})
		}
	}
	return e
}

func nodeEndpoint(node string, ip netip.Addr) *evaluator.Endpoint {
	return &evaluator.Endpoint{Kind: evaluator.Node, Name: node, NodeName: node, IP: ip}
}

// intern returns the endpoint already handed out for e's identity, or e.
func (r *Resolver) intern(e *evaluator.Endpoint) *evaluator.Endpoint {
	key := endpointKey(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.interned[key]; ok {
		return prev
	}
	r.interned[key] = e
	return e
}

// endpointKey encodes everything an endpoint holds, so that two endpoints share a key only if
// the evaluator could not tell them apart.
func endpointKey(e *evaluator.Endpoint) string {
	b := make([]byte, 0, 128)
	b = strconv.AppendUint(b, uint64(e.Kind), 10)
	for _, s := range []string{e.Namespace, e.Name, e.NodeName, e.IP.String()} {
		b = strconv.AppendQuote(append(b, ' '), s)
	}
	b = append(b, " labels"...)
	for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
		b = strconv.AppendQuote(append(b, ' '), k)
		b = strconv.AppendQuote(append(b, '='), e.Labels[k])
	}
	b = append(b, " ports"...)
	for _, p := range e.Ports {
		b = strconv.AppendQuote(append(b, ' '), p.Name)
		b = strconv.AppendInt(append(b, '='), int64(p.Port), 10)
		b = append(append(b, '/'), p.Protocol...)
	}
	return string(b)
}

// The name of a Job a CronJob creates: the CronJob's name, a dash, and the scheduled time in
// minutes since the epoch (8 digits since 1976).
var cronJobJobName = regexp.MustCompile(`^(.+)-([0-9]{8,})$`)

// WorkloadOf names the workload a pod belongs to, "Kind/name", by its controller owner
// reference: a ReplicaSet whose name is a Deployment's plus the pod's pod-template-hash is
// that Deployment; a Job named like a CronJob's ("<cronjob>-<8+ digits>") is that CronJob;
// any other controller (StatefulSet, DaemonSet, ReplicaSet, Job, ReplicationController, or a
// custom one) is itself. A pod with no controller, or a static pod (owned by its Node), is
// its own workload: "Pod/<name>".
func WorkloadOf(pod *corev1.Pod) string {
	if pod == nil {
		return ""
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller || ref.Name == "" {
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			if hash := pod.Labels["pod-template-hash"]; hash != "" {
				if deploy, ok := strings.CutSuffix(ref.Name, "-"+hash); ok && deploy != "" {
					return "Deployment/" + deploy
				}
			}
		case "Job":
			if m := cronJobJobName.FindStringSubmatch(ref.Name); m != nil {
				return "CronJob/" + m[1]
			}
		case "Node":
			return "Pod/" + pod.Name
		}
		return ref.Kind + "/" + ref.Name
	}
	return "Pod/" + pod.Name
}

// podAddrs are a pod's IPs, from status.podIPs and status.podIP.
func podAddrs(pod *corev1.Pod) []netip.Addr {
	var addrs []netip.Addr
	add := func(s string) {
		if a := parseAddr(s); a.IsValid() && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	add(pod.Status.PodIP)
	for _, ip := range pod.Status.PodIPs {
		add(ip.IP)
	}
	return addrs
}

func terminated(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// parseAddr parses an address, or returns the zero Addr.
func parseAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func copyLabels(l map[string]string) map[string]string {
	if l == nil {
		return nil
	}
	return maps.Clone(l)
}
