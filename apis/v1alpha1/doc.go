// Package v1alpha1 is the netpol-guard.io/v1alpha1 API: StagedNetworkPolicy, a NetworkPolicy
// change (set or delete) that netpol-guard judges continuously against live traffic before
// anyone applies it. The webhook writes its status; `netpol-guard staged` lists and promotes
// it. The CRD and deepcopy functions are generated from these types (scripts/gen-crds.sh).
//
// +kubebuilder:object:generate=true
// +groupName=netpol-guard.io
package v1alpha1
