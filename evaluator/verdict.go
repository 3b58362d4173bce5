package evaluator

// Side is the verdict of one end of a flow: the source's egress or the destination's ingress.
type Side struct {
	// Applies is true when policies can apply to this end (it is a pod).
	Applies bool `json:"applies"`
	// Isolated is true when at least one policy selects the pod for this direction.
	Isolated bool `json:"isolated"`
	// IsolatedBy lists those policies, sorted by name. It may be shared between verdicts:
	// do not modify it.
	IsolatedBy []PolicyRef `json:"isolatedBy,omitempty"`
	// Allowed is the outcome for this end.
	Allowed bool `json:"allowed"`
	// AllowedBy is the first rule (policies by name, rules by index) that allowed the flow.
	// It is shared with the compiled set: do not modify it.
	AllowedBy *RuleRef `json:"allowedBy,omitempty"`
	// FromOwnNode is set on ingress when the source is the destination pod's own node,
	// which pods cannot block.
	FromOwnNode bool `json:"fromOwnNode,omitempty"`
}

// Verdict is the decision for one flow with its explanation.
type Verdict struct {
	Allowed bool `json:"allowed"`
	Egress  Side `json:"egress"`  // the source's egress
	Ingress Side `json:"ingress"` // the destination's ingress
	// Pods, for a flow between workloads whose pods the policies tell apart, names the
	// pods (or pairs of pods) the verdict is about when they disagree: the denied ones,
	// whose flow the sides explain. Empty when every pod's flow has the same verdict.
	Pods []string `json:"pods,omitempty"`
}
