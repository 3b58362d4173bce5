package webhook

import "fmt"

// Mode is what the guardrail does with a change that cuts flows.
type Mode string

const (
	// Enforce rejects the change.
	Enforce Mode = "enforce"
	// Warn admits it with kubectl warnings.
	Warn Mode = "warn"
	// Audit admits it and records the result: audit annotations, an Event, metrics.
	Audit Mode = "audit"
	// Off does not evaluate at all.
	Off Mode = "off"
)

// Annotations and labels netpol-guard reads.
const (
	// ModeKey, as a policy annotation or a namespace label, overrides the global mode.
	ModeKey = "netpol-guard.io/mode"
	// BypassAnnotation on a policy admits a cut in enforce mode; its value is the reason.
	BypassAnnotation = "netpol-guard.io/allow-cut"
)

// ParseMode accepts enforce, warn, audit and off.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Enforce, Warn, Audit, Off:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: must be enforce, warn, audit or off", s)
}

// modeSource says where a mode came from, for messages.
type modeSource string

const (
	fromPolicy    modeSource = "policy annotation"
	fromNamespace modeSource = "namespace label"
	fromGlobal    modeSource = "global --mode"
)

// resolveMode picks the most specific valid mode: the policy's annotation, then the
// namespace's label, then the global default. An invalid value is skipped (and reported).
func resolveMode(policyAnnotations, namespaceLabels map[string]string, global Mode) (Mode, modeSource, []string) {
	var problems []string
	if v, ok := policyAnnotations[ModeKey]; ok {
		if m, err := ParseMode(v); err == nil {
			return m, fromPolicy, problems
		}
		problems = append(problems, fmt.Sprintf("ignoring annotation %s=%q: must be enforce, warn, audit or off", ModeKey, v))
	}
	if v, ok := namespaceLabels[ModeKey]; ok {
		if m, err := ParseMode(v); err == nil {
			return m, fromNamespace, problems
		}
		problems = append(problems, fmt.Sprintf("ignoring namespace label %s=%q: must be enforce, warn, audit or off", ModeKey, v))
	}
	return global, fromGlobal, problems
}
