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
	// ModeKey, as a policy annotation or a namespace label, makes the mode stricter than
	// the level above it (global, then namespace); it relaxes it only where the cluster
	// admin allows relaxation (Options.AllowModeRelaxation).
	ModeKey = "netpol-guard.io/mode"
	// BypassAnnotation on a policy admits a cut in enforce mode; its value is the reason.
	// It takes effect only for a user RBAC allows the bypass verb (see BypassVerb).
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

// strictness orders the modes: off < audit < warn < enforce.
func (m Mode) strictness() int {
	switch m {
	case Audit:
		return 1
	case Warn:
		return 2
	case Enforce:
		return 3
	}
	return 0
}

// modeSource says where a mode came from, for messages.
type modeSource string

const (
	fromPolicy    modeSource = "policy annotation"
	fromNamespace modeSource = "namespace label"
	fromGlobal    modeSource = "global --mode"
)

// relaxation is an override that asked for a laxer mode than the level above it.
type relaxation struct {
	source   modeSource
	from, to Mode
	// applied: the cluster admin allows relaxation, so it took effect; otherwise it was
	// ignored.
	applied bool
}

func (r relaxation) String() string {
	verb := "ignoring"
	if r.applied {
		verb = "applied"
	}
	return fmt.Sprintf("%s %s %s=%s: laxer than %s", verb, r.source, ModeKey, r.to, r.from)
}

// resolvedMode is the mode an admission runs in and how it was reached.
type resolvedMode struct {
	mode   Mode
	source modeSource
	// problems are invalid values, skipped.
	problems []string
	// relaxations are the overrides that asked for a laxer mode, applied or ignored.
	relaxations []relaxation
}

// resolveMode walks from the global mode down to the namespace's label and then the
// policy's annotation. Each level may make the mode stricter (off < audit < warn < enforce)
// but not laxer: whoever may label a namespace or edit a policy must not be able to switch
// the guardrail off for it. With allowRelaxation the cluster admin lets either level relax
// it too (the most specific wins). An invalid value is skipped and reported; a relaxation
// is reported whether applied or ignored.
func resolveMode(policyAnnotations, namespaceLabels map[string]string, global Mode, allowRelaxation bool) resolvedMode {
	r := resolvedMode{mode: global, source: fromGlobal}
	for _, level := range []struct {
		source modeSource
		values map[string]string
		what   string
	}{{fromNamespace, namespaceLabels, "namespace label"}, {fromPolicy, policyAnnotations, "annotation"}} {
		v, ok := level.values[ModeKey]
		if !ok {
			continue
		}
		m, err := ParseMode(v)
		if err != nil {
			r.problems = append(r.problems, fmt.Sprintf("ignoring %s %s=%q: must be enforce, warn, audit or off", level.what, ModeKey, v))
			continue
		}
		if m.strictness() < r.mode.strictness() {
			rel := relaxation{source: level.source, from: r.mode, to: m, applied: allowRelaxation}
			r.relaxations = append(r.relaxations, rel)
			if !rel.applied {
				continue
			}
		}
		r.mode, r.source = m, level.source
	}
	return r
}

// ignored are the warnings for relaxations that did not take effect.
func (r resolvedMode) ignored() []string {
	var out []string
	for _, rel := range r.relaxations {
		if !rel.applied {
			out = append(out, rel.String())
		}
	}
	return out
}

// relaxed says whether an applied relaxation set the mode.
func (r resolvedMode) relaxed() bool {
	for _, rel := range r.relaxations {
		if rel.applied {
			return true
		}
	}
	return false
}
