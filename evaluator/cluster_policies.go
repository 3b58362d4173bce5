package evaluator

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// ClusterKind says which API object a ClusterPolicy was converted from. It only names the
// policy in explanations: every kind is judged by the same tiers.
type ClusterKind uint8

const (
	// ClusterNetworkPolicyKind is a policy.networking.k8s.io ClusterNetworkPolicy
	// (v1beta1, or v1alpha2 which has the same schema).
	ClusterNetworkPolicyKind ClusterKind = iota
	// AdminNetworkPolicyKind is a v1alpha1 AdminNetworkPolicy: the Admin tier.
	AdminNetworkPolicyKind
	// BaselineAdminNetworkPolicyKind is a v1alpha1 BaselineAdminNetworkPolicy: the
	// Baseline tier.
	BaselineAdminNetworkPolicyKind
)

// Short is the kind's short name, as kubectl knows it: "cnp", "anp", "banp".
func (k ClusterKind) Short() string {
	switch k {
	case AdminNetworkPolicyKind:
		return "anp"
	case BaselineAdminNetworkPolicyKind:
		return "banp"
	default:
		return "cnp"
	}
}

// ClusterPolicy is a cluster-scoped policy of the Admin or Baseline tier in one form: the
// spec of the storage version, v1beta1 ClusterNetworkPolicy, whatever the object it came
// from. Build it with the ClusterPolicyFrom functions.
type ClusterPolicy struct {
	Kind ClusterKind
	Name string
	Spec v1beta1.ClusterNetworkPolicySpec
}

// Ref names the policy.
func (p *ClusterPolicy) Ref() ClusterRef { return ClusterRef{Kind: p.Kind, Name: p.Name} }

// ClusterRef names a cluster policy: "cnp/deny-egress-internet".
type ClusterRef struct {
	Kind ClusterKind
	Name string
}

func (r ClusterRef) String() string { return r.Kind.Short() + "/" + r.Name }

// MarshalText writes the policy as "kind/name".
func (r ClusterRef) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// ClusterPolicyOf converts a cluster policy object — a ClusterNetworkPolicy (v1beta1 or
// v1alpha2), an AdminNetworkPolicy or a BaselineAdminNetworkPolicy (v1alpha1) — into the
// evaluator's form. Any other object is an error.
func ClusterPolicyOf(obj any) (*ClusterPolicy, error) {
	switch o := obj.(type) {
	case *v1beta1.ClusterNetworkPolicy:
		return ClusterPolicyFromV1beta1(o), nil
	case *v1alpha2.ClusterNetworkPolicy:
		return ClusterPolicyFromV1alpha2(o)
	case *v1alpha1.AdminNetworkPolicy:
		return ClusterPolicyFromAdminNetworkPolicy(o), nil
	case *v1alpha1.BaselineAdminNetworkPolicy:
		return ClusterPolicyFromBaselineAdminNetworkPolicy(o), nil
	}
	return nil, fmt.Errorf("%T is not a cluster policy", obj)
}

// ClusterPolicyFromV1beta1 converts a v1beta1 ClusterNetworkPolicy.
func ClusterPolicyFromV1beta1(p *v1beta1.ClusterNetworkPolicy) *ClusterPolicy {
	return &ClusterPolicy{Kind: ClusterNetworkPolicyKind, Name: p.Name, Spec: *p.Spec.DeepCopy()}
}

// ClusterPolicyFromV1alpha2 converts a v1alpha2 ClusterNetworkPolicy. The two versions
// have the same schema (the API server serves both from the v1beta1 storage version), so
// the spec is carried over field by field through its JSON form.
func ClusterPolicyFromV1alpha2(p *v1alpha2.ClusterNetworkPolicy) (*ClusterPolicy, error) {
	out := &ClusterPolicy{Kind: ClusterNetworkPolicyKind, Name: p.Name}
	raw, err := json.Marshal(p.Spec)
	if err == nil {
		err = json.Unmarshal(raw, &out.Spec)
	}
	if err != nil {
		return nil, fmt.Errorf("converting clusternetworkpolicy %s from v1alpha2: %w", p.Name, err)
	}
	return out, nil
}

// ClusterPolicyFromAdminNetworkPolicy converts a v1alpha1 AdminNetworkPolicy into the Admin
// tier with its priority. Allow becomes Accept; ports become protocols.
func ClusterPolicyFromAdminNetworkPolicy(p *v1alpha1.AdminNetworkPolicy) *ClusterPolicy {
	out := &ClusterPolicy{Kind: AdminNetworkPolicyKind, Name: p.Name}
	out.Spec.Tier = v1beta1.AdminTier
	out.Spec.Priority = p.Spec.Priority
	out.Spec.Subject = subjectFromV1alpha1(p.Spec.Subject)
	for _, r := range p.Spec.Ingress {
		out.Spec.Ingress = append(out.Spec.Ingress, v1beta1.ClusterNetworkPolicyIngressRule{
			Name: r.Name, Action: actionFromV1alpha1(string(r.Action)), From: ingressPeersFromV1alpha1(r.From), Protocols: protocolsFromV1alpha1(r.Ports),
		})
	}
	for _, r := range p.Spec.Egress {
		out.Spec.Egress = append(out.Spec.Egress, v1beta1.ClusterNetworkPolicyEgressRule{
			Name: r.Name, Action: actionFromV1alpha1(string(r.Action)), To: egressPeersFromV1alpha1(r.To), Protocols: protocolsFromV1alpha1(r.Ports),
		})
	}
	return out
}

// BaselineAdminNetworkPolicyPriority is the priority a BaselineAdminNetworkPolicy gets in
// the Baseline tier. The API has no order between a BANP and Baseline ClusterNetworkPolicies
// (they meet only during a migration); it is judged after them.
const BaselineAdminNetworkPolicyPriority = 1000

// ClusterPolicyFromBaselineAdminNetworkPolicy converts a v1alpha1 BaselineAdminNetworkPolicy
// into the Baseline tier at BaselineAdminNetworkPolicyPriority.
func ClusterPolicyFromBaselineAdminNetworkPolicy(p *v1alpha1.BaselineAdminNetworkPolicy) *ClusterPolicy {
	out := &ClusterPolicy{Kind: BaselineAdminNetworkPolicyKind, Name: p.Name}
	out.Spec.Tier = v1beta1.BaselineTier
	out.Spec.Priority = BaselineAdminNetworkPolicyPriority
	out.Spec.Subject = subjectFromV1alpha1(p.Spec.Subject)
	for _, r := range p.Spec.Ingress {
		out.Spec.Ingress = append(out.Spec.Ingress, v1beta1.ClusterNetworkPolicyIngressRule{
			Name: r.Name, Action: actionFromV1alpha1(string(r.Action)), From: ingressPeersFromV1alpha1(r.From), Protocols: protocolsFromV1alpha1(r.Ports),
		})
	}
	for _, r := range p.Spec.Egress {
		var to []v1beta1.ClusterNetworkPolicyEgressPeer
		for _, peer := range r.To {
			to = append(to, egressPeerFromV1alpha1(v1alpha1.AdminNetworkPolicyEgressPeer{
				Namespaces: peer.Namespaces, Pods: peer.Pods, Nodes: peer.Nodes, Networks: peer.Networks,
			}))
		}
		out.Spec.Egress = append(out.Spec.Egress, v1beta1.ClusterNetworkPolicyEgressRule{
			Name: r.Name, Action: actionFromV1alpha1(string(r.Action)), To: to, Protocols: protocolsFromV1alpha1(r.Ports),
		})
	}
	return out
}

func actionFromV1alpha1(a string) v1beta1.ClusterNetworkPolicyRuleAction {
	if a == string(v1alpha1.AdminNetworkPolicyRuleActionAllow) {
		return v1beta1.ClusterNetworkPolicyRuleActionAccept
	}
	return v1beta1.ClusterNetworkPolicyRuleAction(a) // Deny, Pass; anything else fails validation
}

func namespacedPodFromV1alpha1(p *v1alpha1.NamespacedPod) *v1beta1.NamespacedPod {
	if p == nil {
		return nil
	}
	return &v1beta1.NamespacedPod{NamespaceSelector: *p.NamespaceSelector.DeepCopy(), PodSelector: *p.PodSelector.DeepCopy()}
}

func subjectFromV1alpha1(s v1alpha1.AdminNetworkPolicySubject) v1beta1.ClusterNetworkPolicySubject {
	return v1beta1.ClusterNetworkPolicySubject{Namespaces: s.Namespaces.DeepCopy(), Pods: namespacedPodFromV1alpha1(s.Pods)}
}

func ingressPeersFromV1alpha1(peers []v1alpha1.AdminNetworkPolicyIngressPeer) []v1beta1.ClusterNetworkPolicyIngressPeer {
	var out []v1beta1.ClusterNetworkPolicyIngressPeer
	for _, p := range peers {
		out = append(out, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: p.Namespaces.DeepCopy(), Pods: namespacedPodFromV1alpha1(p.Pods)})
	}
	return out
}

func egressPeersFromV1alpha1(peers []v1alpha1.AdminNetworkPolicyEgressPeer) []v1beta1.ClusterNetworkPolicyEgressPeer {
	var out []v1beta1.ClusterNetworkPolicyEgressPeer
	for _, p := range peers {
		out = append(out, egressPeerFromV1alpha1(p))
	}
	return out
}

func egressPeerFromV1alpha1(p v1alpha1.AdminNetworkPolicyEgressPeer) v1beta1.ClusterNetworkPolicyEgressPeer {
	out := v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: p.Namespaces.DeepCopy(), Pods: namespacedPodFromV1alpha1(p.Pods), Nodes: p.Nodes.DeepCopy()}
	for _, n := range p.Networks {
		out.Networks = append(out.Networks, v1beta1.CIDR(n))
	}
	for _, d := range p.DomainNames {
		out.DomainNames = append(out.DomainNames, v1beta1.DomainName(d))
	}
	return out
}

// protocolsFromV1alpha1 turns ANP ports into CNP protocols: a port number or range under
// its protocol (TCP when unset, the v1alpha1 default), a named port as destinationNamedPort.
func protocolsFromV1alpha1(ports *[]v1alpha1.AdminNetworkPolicyPort) []v1beta1.ClusterNetworkPolicyProtocol {
	if ports == nil {
		return nil
	}
	out := []v1beta1.ClusterNetworkPolicyProtocol{}
	for _, p := range *ports {
		switch {
		case p.PortNumber != nil:
			out = append(out, protocolPort(p.PortNumber.Protocol, &v1beta1.Port{Number: p.PortNumber.Port}))
		case p.PortRange != nil:
			out = append(out, protocolPort(p.PortRange.Protocol, &v1beta1.Port{Range: &v1beta1.PortRange{Start: p.PortRange.Start, End: p.PortRange.End}}))
		case p.NamedPort != nil:
			out = append(out, v1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: *p.NamedPort})
		default:
			out = append(out, v1beta1.ClusterNetworkPolicyProtocol{}) // fails validation, as the CRD would
		}
	}
	return out
}

func protocolPort(proto corev1.Protocol, port *v1beta1.Port) v1beta1.ClusterNetworkPolicyProtocol {
	switch corev1.Protocol(strings.ToUpper(string(proto))) {
	case corev1.ProtocolUDP:
		return v1beta1.ClusterNetworkPolicyProtocol{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}}
	case corev1.ProtocolSCTP:
		return v1beta1.ClusterNetworkPolicyProtocol{SCTP: &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}}
	default:
		return v1beta1.ClusterNetworkPolicyProtocol{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}}
	}
}
