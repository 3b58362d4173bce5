package evaluator

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// EndpointKind says what sits at one end of a flow.
type EndpointKind uint8

const (
	// External is an address that belongs to no pod and no known node. Only ipBlock
	// rules can match it, and no policy applies to it.
	External EndpointKind = iota
	// Pod is a pod (or a workload whose pods share labels and ports). Policies that select
	// it apply to it, and pod and namespace selectors in rules can match it.
	Pod
	// Node is a cluster node (or a host-network pod, which shares the node's addresses).
	// No policy applies to it; ipBlock rules match its address. Pods always accept
	// traffic from the node they run on.
	Node
)

func (k EndpointKind) String() string {
	switch k {
	case Pod:
		return "pod"
	case Node:
		return "node"
	default:
		return "external"
	}
}

// ContainerPort is a named port a pod declares, used to resolve named ports in rules.
type ContainerPort struct {
	Name     string
	Port     int32
	Protocol corev1.Protocol
}

// Endpoint is one end of a flow, as the evaluator judges it.
//
// Endpoints are memoised by pointer: callers should intern them (one *Endpoint per identity,
// e.g. per workload and address) so that selector matches are computed once per identity,
// not once per flow. An Endpoint must not change once it has been handed to an Evaluation.
type Endpoint struct {
	Kind EndpointKind
	// Namespace of a pod. Empty for nodes and external addresses.
	Namespace string
	// Name is for humans: a workload ("Deployment/cart"), a pod, a node, or empty.
	Name string
	// Labels of the pod.
	Labels map[string]string
	// NodeName is the node a pod runs on, or the name of a Node endpoint.
	NodeName string
	// IP is the endpoint's address, if known. ipBlock rules match only endpoints whose
	// address is known; pods included.
	IP netip.Addr
	// Prefix, for an External endpoint, stands for every address of a network that the flow
	// cache holds as one peer (an internet-facing ingress's clients, by /24 or /48); IP is
	// then unset. An ipBlock or networks peer matches it when it matches each of its
	// addresses, and not when it matches some: exact wherever PolicySet.SplitsPrefix is
	// false, and reading a split aggregate as unmatched otherwise.
	Prefix netip.Prefix
	// Ports are the pod's declared container ports, for named-port rules.
	Ports []ContainerPort
	// Nodes, for a workload, are the nodes its pods run on: an edge from one of them to the
	// workload is that node's kubelet probing its pods there, which policies cannot block.
	// Empty for a single pod, whose NodeName says it.
	Nodes []string
	// Pod is the pod's own name when the endpoint is one pod (of the workload in Name).
	Pod string
	// Pods are a workload's pods when it has more than one, each an Endpoint of its own with
	// the workload's namespace, name, labels, ports and nodes and the pod's node and
	// address. A verdict on the workload is what the verdicts on its pods' flows say: where
	// policies tell the pods apart (an ipBlock over their addresses), each is judged, and a
	// flow is allowed only if it is for every pod.
	// NodeName and IP of the workload endpoint itself are then empty.
	Pods []*Endpoint
}

// String names the endpoint for messages: "shop/Deployment/cart", "node/worker-1", "10.0.0.1".
func (e *Endpoint) String() string {
	if e == nil {
		return "<nil>"
	}
	switch e.Kind {
	case Pod:
		name := e.Name
		if name == "" && e.IP.IsValid() {
			name = e.IP.String()
		}
		return e.Namespace + "/" + name
	case Node:
		if e.NodeName != "" {
			return "node/" + e.NodeName
		}
		return "node/" + e.IP.String()
	default:
		if e.IP.IsValid() {
			return e.IP.String()
		}
		if e.Prefix.IsValid() {
			return e.Prefix.String()
		}
		return "external"
	}
}

// Flow is traffic from Src to Dst on a destination port (after DNAT) and protocol.
type Flow struct {
	Src, Dst *Endpoint
	Port     int32
	Protocol corev1.Protocol
}

func (f Flow) String() string {
	return fmt.Sprintf("%s → %s %s/%d", f.Src, f.Dst, f.protocol(), f.Port)
}

func (f Flow) protocol() corev1.Protocol {
	if f.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return f.Protocol
}

// MarshalLog implements logr.Marshaler so a flow logs as structured data.
func (f Flow) MarshalLog() any {
	return map[string]any{"src": f.Src.String(), "dst": f.Dst.String(), "port": f.Port, "protocol": string(f.protocol())}
}

// World is what the evaluator needs to know about the cluster besides the pods at the ends
// of a flow: namespace labels (for namespaceSelector) and node addresses (a pod always
// accepts traffic from its own node).
type World struct {
	// NamespaceLabels maps a namespace name to its labels. The
	// kubernetes.io/metadata.name label is implied for every namespace, listed or not.
	NamespaceLabels map[string]map[string]string
	// NodeAddresses maps a node name to its status.addresses.
	NodeAddresses map[string][]netip.Addr
	// NodeLabels maps a node name to its labels, for the nodes peers of cluster policies.
	NodeLabels map[string]map[string]string
}

// Direction is ingress or egress.
type Direction uint8

const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// PolicyRef names a NetworkPolicy.
type PolicyRef struct {
	Namespace, Name string
}

func (p PolicyRef) String() string { return p.Namespace + "/" + p.Name }

// MarshalText writes the policy as "namespace/name".
func (p PolicyRef) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// RuleRef names one rule of a policy: "shop/allow-web ingress[0]".
type RuleRef struct {
	Policy    PolicyRef
	Direction Direction
	Index     int
}

func (r RuleRef) String() string {
	return fmt.Sprintf("%s %s[%d]", r.Policy, r.Direction, r.Index)
}

// MarshalText writes the rule as "namespace/name direction[index]".
func (r RuleRef) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
