package v1alpha1

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StagedAction is what a StagedNetworkPolicy would do to the NetworkPolicy of its name.
// +kubebuilder:validation:Enum=Set;Delete
type StagedAction string

const (
	// StagedSet creates the NetworkPolicy, or replaces it, with the template.
	StagedSet StagedAction = "Set"
	// StagedDelete deletes the NetworkPolicy.
	StagedDelete StagedAction = "Delete"
)

// StagedNetworkPolicySpec is the staged change.
// +kubebuilder:validation:XValidation:rule="(!has(self.stagedAction) || self.stagedAction == 'Set') == has(self.template)",message="template is required when stagedAction is Set and forbidden when it is Delete"
type StagedNetworkPolicySpec struct {
	// StagedAction is Set (create or replace the NetworkPolicy of this namespace and name
	// with the template) or Delete (delete it).
	// +kubebuilder:default=Set
	// +optional
	StagedAction StagedAction `json:"stagedAction,omitempty"`
	// Template is the NetworkPolicy as it would be; absent for Delete.
	// +optional
	Template *NetworkPolicyTemplate `json:"template,omitempty"`
}

// NetworkPolicyTemplate is the NetworkPolicy a Set would apply: labels, annotations and spec.
type NetworkPolicyTemplate struct {
	// +optional
	Metadata TemplateMetadata `json:"metadata,omitempty"`
	// Spec is a networking.k8s.io/v1 NetworkPolicySpec.
	Spec networkingv1.NetworkPolicySpec `json:"spec"`
}

// TemplateMetadata is the metadata a promoted NetworkPolicy carries.
type TemplateMetadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Peer is one end of a flow, in the flow record's shape: a workload (namespace and
// "Kind/name"), a node, or an IP address.
type Peer struct {
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	Workload string `json:"workload,omitempty"`
	// +optional
	Node string `json:"node,omitempty"`
	// +optional
	IP string `json:"ip,omitempty"`
}

// CutFlow is a cached edge the staged change would cut.
type CutFlow struct {
	Src  Peer  `json:"src"`
	Dst  Peer  `json:"dst"`
	Port int32 `json:"port"`
	// +optional
	Protocol  string      `json:"protocol,omitempty"`
	FirstSeen metav1.Time `json:"firstSeen"`
	LastSeen  metav1.Time `json:"lastSeen"`
	Count     int64       `json:"count"`
	// Reason says why the flow would be denied after the change.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// WouldCut is what the staged change would cut now.
type WouldCut struct {
	// Flows is the number of distinct cached edges the change would cut.
	Flows int32 `json:"flows"`
	// Top lists some of them (at most MaxTop), most recently seen first.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	Top []CutFlow `json:"top,omitempty"`
}

// MaxTop is how many cut flows status lists.
const MaxTop = 20

// Coverage is what the evaluation rests on.
type Coverage struct {
	// HistorySeconds is how long the flow cache has been observing.
	HistorySeconds int64 `json:"historySeconds"`
	// EdgesConsidered is how many cached edges the change could affect.
	EdgesConsidered int64 `json:"edgesConsidered"`
	// UnresolvedFlows counts flows that could not be resolved to a workload.
	UnresolvedFlows int64 `json:"unresolvedFlows"`
}

// StagedNetworkPolicyStatus is what the webhook has seen of the staged change.
type StagedNetworkPolicyStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// SoakingSince is when this generation's evaluation began.
	// +optional
	SoakingSince *metav1.Time `json:"soakingSince,omitempty"`
	// CleanSince is since when the change would cut nothing; absent while it would.
	// +optional
	CleanSince *metav1.Time `json:"cleanSince,omitempty"`
	// +optional
	WouldCut WouldCut `json:"wouldCut,omitempty"`
	// +optional
	Coverage Coverage `json:"coverage,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types and reasons.
const (
	// ConditionWouldCut is True while the change would cut cached flows.
	ConditionWouldCut = "WouldCut"
	// ReasonFlowsWouldBeCut: at least one cached flow would be cut.
	ReasonFlowsWouldBeCut = "FlowsWouldBeCut"
	// ReasonClean: no cached flow would be cut.
	ReasonClean = "NoFlowsCut"
	// ReasonInvalid: the template does not compile.
	ReasonInvalid = "InvalidTemplate"
)

// StagedNetworkPolicy stages a change to the NetworkPolicy of the same namespace and name:
// netpol-guard judges it against live traffic, as the admission webhook would judge
// applying it, until it is promoted.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=snp;stagednetpol,categories=netpol-guard
// +kubebuilder:printcolumn:name="ACTION",type=string,JSONPath=`.spec.stagedAction`
// +kubebuilder:printcolumn:name="WOULD-CUT",type=integer,JSONPath=`.status.wouldCut.flows`
// +kubebuilder:printcolumn:name="CLEAN-SINCE",type=date,JSONPath=`.status.cleanSince`
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type StagedNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec StagedNetworkPolicySpec `json:"spec"`
	// +optional
	Status StagedNetworkPolicyStatus `json:"status,omitempty"`
}

// StagedNetworkPolicyList is a list of StagedNetworkPolicies.
//
// +kubebuilder:object:root=true
type StagedNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StagedNetworkPolicy `json:"items"`
}

// Action is the staged action, Set when unset.
func (s *StagedNetworkPolicy) Action() StagedAction {
	if s.Spec.StagedAction == "" {
		return StagedSet
	}
	return s.Spec.StagedAction
}

// NetworkPolicy is the NetworkPolicy a Set would apply; nil for Delete or without a template.
func (s *StagedNetworkPolicy) NetworkPolicy() *networkingv1.NetworkPolicy {
	if s.Action() != StagedSet || s.Spec.Template == nil {
		return nil
	}
	t := s.Spec.Template.DeepCopy()
	return &networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace, Name: s.Name,
			Labels: t.Metadata.Labels, Annotations: t.Metadata.Annotations,
		},
		Spec: t.Spec,
	}
}
