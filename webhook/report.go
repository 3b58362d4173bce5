package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/human"
)

// maxWarning is the length kubectl users can read at a glance.
const maxWarning = 120

// report renders a decision for humans: the enforce message, kubectl warnings, audit
// annotations, the Event note.
type report struct {
	d          decisionResult
	now        time.Time
	maxListed  int
	minHistory time.Duration
}

// lead is the one line every answer starts with: "would cut 7 active flows, e.g. shop/web →
// shop/cart TCP/8080 (last seen 2m ago)".
func (r report) lead() string {
	c := r.d.cuts[0]
	noun := "flows"
	if len(r.d.cuts) == 1 {
		noun = "flow"
	}
	lead := fmt.Sprintf("would cut %d active %s, e.g. %s (last seen %s)", len(r.d.cuts), noun, flowName(c.edge), r.ago(c.edge.LastSeen))
	if r.d.kind != "" {
		// A relabel is named up front: the object changed is not a policy a reader
		// would think of ("relabel Deployment shop/checkout would cut …").
		lead = r.d.change + " " + lead
	}
	return lead
}

// object is what the change is of, for the way forward: "the policy", "the Deployment".
// capitalise upper-cases the first letter of a message's sentence.
func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (r report) object() string {
	if r.d.kind == "" {
		return "the policy"
	}
	return "the " + r.d.kind
}

// message is the enforce rejection.
func (r report) message() string {
	var b strings.Builder
	b.WriteString(r.lead())
	fmt.Fprintf(&b, "\nCut by %s (mode %s, from the %s):", r.d.change, r.d.mode, r.d.modeSource)
	for i, c := range r.d.cuts[:min(len(r.d.cuts), r.maxListed)] {
		fmt.Fprintf(&b, "\n  %d. %s", i+1, r.flowLine(c))
	}
	if more := len(r.d.cuts) - r.maxListed; more > 0 {
		fmt.Fprintf(&b, "\n  … and %d more.", more)
	}
	if p := r.protections(); p != "" {
		b.WriteString("\nThis change cuts " + p + ".")
	}
	b.WriteString("\n" + r.coverageLine())
	if f := r.fixLine(); f != "" {
		b.WriteString("\nFix: " + f)
	}
	ns := r.d.namespace
	if r.d.bypassDenied {
		fmt.Fprintf(&b, "\n%s carries %s, but %s may not bypass: that needs the %s.", capitalise(r.object()), BypassAnnotation, r.d.user, bypassRight(ns))
	} else {
		b.WriteString("\nTo apply it anyway, annotate " + r.object() + " " + BypassAnnotation + `="<reason>"` +
			" (recorded with your name); that needs the " + bypassRight(ns) + ".")
	}
	return b.String()
}

// warnings are the kubectl warnings: each at most 120 characters, at most MaxListed+2.
func (r report) warnings(head string) []string {
	out := prefixed(r.d.problems)
	first := "netpol-guard: " + r.lead()
	if head != "" {
		first = fmt.Sprintf("netpol-guard: %s; would cut %d flows", head, len(r.d.cuts))
	}
	out = append(out, first)
	room := r.maxListed + 2 - len(out) - 1
	fix := r.fixLine()
	if fix != "" {
		room--
	}
	listed := r.d.cuts[:max(0, min(len(r.d.cuts), room))]
	for _, c := range listed {
		out = append(out, "cut "+r.shortFlowLine(c))
	}
	if fix != "" {
		out = append(out, "fix: "+fix)
	}
	tail := fmt.Sprintf("coverage: %s history, %d edges, %d unresolved", human.Duration(r.d.coverage.history), r.d.coverage.edges, r.d.coverage.unresolved)
	if n := len(r.d.coverage.neverSeen); n > 0 {
		tail += fmt.Sprintf(", %d selected never seen", n)
	}
	if more := len(r.d.cuts) - len(listed); more > 0 {
		tail += fmt.Sprintf("; %d more cut", more)
	}
	out = append(out, tail)
	for i := range out {
		out[i] = truncate(out[i], maxWarning)
	}
	return out
}

// auditAnnotations go into the audit log; the API server prefixes each key with the
// webhook's name.
func (r report) auditAnnotations(outcome string) map[string]string {
	a := map[string]string{
		"outcome":   outcome,
		"mode":      string(r.d.mode) + " (" + string(r.d.modeSource) + ")",
		"cut-flows": fmt.Sprint(len(r.d.cuts)),
		"coverage":  r.coverageLine(),
	}
	var sample []string
	for _, c := range r.d.cuts[:min(len(r.d.cuts), r.maxListed)] {
		sample = append(sample, r.shortFlowLine(c))
	}
	a["cut"] = truncate(strings.Join(sample, "; "), 2000)
	if r.d.bypassed {
		a["bypass-reason"] = truncate(r.d.bypass, 1000)
		a["bypass-user"] = r.d.user
		switch {
		case r.d.bypassDenied:
			a["bypass"] = "denied: no bypass right"
		case r.d.bypassUnverified != nil:
			a["bypass"] = "unverified: " + truncate(r.d.bypassUnverified.Error(), 200)
		}
	}
	return a
}

func (r report) eventNote(outcome string) string {
	note := fmt.Sprintf("%s %s: %s. %s", r.d.change, outcome, r.lead(), r.coverageLine())
	switch {
	case r.d.bypassed && r.d.bypassDenied:
		note = fmt.Sprintf("%s Bypass by %s refused (no bypass right): %q.", note, r.d.user, r.d.bypass)
	case r.d.bypassed && r.d.bypassUnverified != nil:
		note = fmt.Sprintf("%s Bypassed by %s, right unchecked (%v): %q.", note, r.d.user, r.d.bypassUnverified, r.d.bypass)
	case r.d.bypassed:
		note = fmt.Sprintf("%s Bypassed by %s: %q.", note, r.d.user, r.d.bypass)
	}
	if f := r.fixLine(); f != "" {
		note += " Fix: " + f + "."
		// The policies themselves only when the whole note still fits an Event.
		if p := r.fixPolicies(); p != "" && utf8.RuneCountInString(note)+len(p)+1 <= maxEventNote {
			note += " " + p
		}
	}
	return truncate(note, maxEventNote)
}

// maxEventNote is what an Event's note holds (the API server rejects more than 1 kB).
const maxEventNote = 1000

// fixLine is the suggested fix in one line, or empty.
func (r report) fixLine() string {
	if r.d.fix == nil {
		if len(r.d.cuts) > maxFixCuts {
			return fmt.Sprintf("too many cut flows (%d) to work one out here; netpol-guard check --suggest writes it", len(r.d.cuts))
		}
		return ""
	}
	return r.d.fix.Line()
}

// fixPolicies are the fix's policies as compact JSON, one after another.
func (r report) fixPolicies() string {
	if r.d.fix == nil {
		return ""
	}
	var parts []string
	for _, p := range r.d.fix.Policies {
		j, err := json.Marshal(struct {
			Name      string                         `json:"name"`
			Namespace string                         `json:"namespace"`
			Spec      networkingv1.NetworkPolicySpec `json:"spec"`
		}{p.Name, p.Namespace, p.Spec})
		if err != nil {
			return ""
		}
		parts = append(parts, string(j))
	}
	return strings.Join(parts, " ")
}

func (r report) flowLine(c cutFlow) string {
	var b strings.Builder
	if c.protection != "" {
		b.WriteString("[" + c.protection + "] ")
	}
	fmt.Fprintf(&b, "%s, last seen %s", flowName(c.edge), r.ago(c.edge.LastSeen))
	if c.edge.Count > 0 {
		fmt.Fprintf(&b, ", %d×", c.edge.Count)
	}
	if c.before != nil {
		if by := allowedBy(*c.before); by != "" {
			b.WriteString("; was allowed by " + by)
		}
	}
	if c.after != nil {
		b.WriteString("; now " + c.after.Denial())
	}
	return b.String()
}

func (r report) shortFlowLine(c cutFlow) string {
	s := flowName(c.edge) + " (" + r.ago(c.edge.LastSeen)
	if c.edge.Count > 0 {
		s += fmt.Sprintf(", %d×", c.edge.Count)
	}
	s += ")"
	if c.protection != "" {
		s = strings.SplitN(c.protection, " (", 2)[0] + ": " + s
	}
	if c.before != nil {
		if by := allowedBy(*c.before); by != "" {
			s += " was allowed by " + by
		}
	}
	return s
}

// protections lists the distinct self-protection findings.
func (r report) protections() string {
	var out []string
	for _, c := range r.d.cuts {
		if c.protection != "" && !contains(out, c.protection) {
			out = append(out, c.protection)
		}
	}
	return strings.Join(out, "; ")
}

func (r report) coverageLine() string {
	c := r.d.coverage
	s := fmt.Sprintf("Coverage: %s of flow history, %s considered, %s unresolved", human.Duration(c.history), plural(c.edges, "edge"), plural(int(c.unresolved), "flow"))
	if len(c.neverSeen) > 0 {
		s += fmt.Sprintf("; %s never seen (%s)", plural(len(c.neverSeen), "selected workload"), truncate(strings.Join(c.neverSeen, ", "), 200))
	}
	if c.history < r.minHistory {
		s += fmt.Sprintf("; less than the %s enforce needs", human.Duration(r.minHistory))
	}
	return s + "."
}

func (r report) ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return human.Duration(r.now.Sub(t)) + " ago"
}

// allowedBy names the rules that allowed a flow before the change.
func allowedBy(v evaluator.Verdict) string {
	var parts []string
	for _, r := range v.AllowingRules() {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, " and ")
}

// flowName is "shop/web → shop/cart TCP/8080".
func flowName(e *flows.Edge) string {
	return fmt.Sprintf("%s → %s %s/%d", peerName(e.Src), peerName(e.Dst), e.Protocol, e.Port)
}

// peerName is "shop/cart" for a workload, "node/worker-1" for a node, the address otherwise.
func peerName(id flows.PeerID) string {
	if id.Kind == flows.PeerWorkload {
		name := id.Name
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
		return id.Namespace + "/" + name
	}
	return id.String()
}

func change(op admissionv1.Operation, p *networkingv1.NetworkPolicy) string {
	return strings.ToLower(string(op)) + " " + p.Namespace + "/" + p.Name
}

// plural is "1 edge", "2 edges".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// truncate shortens s to at most n characters, ending with "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func prefixed(problems []string) []string {
	out := make([]string, 0, len(problems))
	for _, p := range problems {
		out = append(out, "netpol-guard: "+p)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
