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
	// DecidedBy is the cluster policy rule (Admin or Baseline tier) that decided this end,
	// or, when Uncertain, the domainNames rule that might. Nil when a NetworkPolicy or the
	// default decided. It may be shared with the compiled set: do not modify it.
	DecidedBy *TierRuleRef `json:"decidedBy,omitempty"`
	// PassedBy is the Admin tier rule that passed the flow on to the NetworkPolicies (and
	// the Baseline tier), when one did.
	PassedBy *TierRuleRef `json:"passedBy,omitempty"`
	// Uncertain is set when the outcome hangs on a domainNames peer, which an observed
	// address cannot decide: Accept if the destination is one of the names, denied if not.
	Uncertain bool `json:"uncertain,omitempty"`
}

// Verdict is the decision for one flow with its explanation.
type Verdict struct {
	// Allowed is true when the flow is certainly allowed.
	Allowed bool `json:"allowed"`
	// Uncertain is true when the flow is not certainly denied either: a domainNames rule,
	// which cannot be judged from an address, would decide it. Allowed is then false.
	Uncertain bool `json:"uncertain,omitempty"`
	Egress    Side `json:"egress"`  // the source's egress
	Ingress   Side `json:"ingress"` // the destination's ingress
	// Pods, for a flow between workloads whose pods the policies tell apart, names the
	// pods (or pairs of pods) the verdict is about when they disagree: the denied ones,
	// whose flow the sides explain. Empty when every pod's flow has the same verdict.
	Pods []string `json:"pods,omitempty"`
}

// Word is the verdict in one word: "allow", "deny" or "uncertain".
func (v Verdict) Word() string {
	switch {
	case v.Allowed:
		return "allow"
	case v.Uncertain:
		return "uncertain"
	default:
		return "deny"
	}
}
