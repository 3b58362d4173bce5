package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/human"
	"github.com/netpol-guard/netpol-guard/suggest"
)

// Output formats.
const (
	OutputTable = "table"
	OutputJSON  = "json"
)

// EvaluateOptions configures Evaluate.
type EvaluateOptions struct {
	Inputs
	Output string
	// Now is when "last seen" ages are measured from in tables.
	Now time.Time
}

// CheckOptions configures Check.
type CheckOptions struct {
	Inputs
	// Policies are files of NetworkPolicies to apply (or, with Delete, to delete), and of
	// StagedNetworkPolicies, each judged as its stagedAction.
	Policies []string
	// Namespace is given to policies that do not name one, as kubectl does.
	Namespace string
	Delete    bool
	Output    string
	Now       time.Time
	// Suggest adds the fix for what the change cuts: the policies to apply with it.
	Suggest bool
}

// Evaluate writes the verdict for every observed flow under the cluster's policies. It
// returns ExitOK, or ExitBadInput after writing the error to errw.
func Evaluate(out, errw io.Writer, opts EvaluateOptions) int {
	if err := checkOutput(opts.Output); err != nil {
		return fail(errw, err)
	}
	obs, err := load(opts.Inputs)
	if err != nil {
		return fail(errw, err)
	}
	obs.reportSkipped(errw)
	obs.warnAbsentNamespaces(errw, obs.snapshot.Policies)
	ps, err := evaluator.CompileAll(obs.snapshot.Policies, obs.snapshot.ClusterPolicies)
	if err != nil {
		return fail(errw, fmt.Errorf("cluster policies: %w", err))
	}
	ev := evaluator.NewEvaluation(ps, obs.world)
	verdicts := make([]evaluator.Verdict, len(obs.flows))
	for i, f := range obs.flows {
		verdicts[i] = ev.Verdict(f)
	}
	if structured(opts.Output) {
		enc := newEncoder(out, opts.Output)
		for i, v := range verdicts {
			if err := enc.Encode(verdictLine{flowEcho: echo(obs.records[i]), Verdict: v.Word(), Reason: v.Reason(), Explanation: v}); err != nil {
				return fail(errw, err)
			}
		}
		return ExitOK
	}
	wide := opts.Output == OutputWide
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "SOURCE\tDESTINATION\tPORT\tLAST SEEN\tVERDICT\tWHY")
	if wide {
		fmt.Fprint(tw, "\tALLOWED BY\tISOLATED BY\tSOURCE SEEN AS\tDESTINATION SEEN AS")
	}
	fmt.Fprintln(tw)
	denied, uncertain := 0, 0
	for i, v := range verdicts {
		switch {
		case v.Uncertain:
			uncertain++
		case !v.Allowed:
			denied++
		}
		f := obs.flows[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s", f.Src, f.Dst, portString(f), age(obs.records[i].LastSeen, opts.Now), v.Word(), v.Reason())
		if wide {
			allowed := "-"
			if v.Allowed {
				allowed = allowedBy(v)
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s", allowed, isolatedBy(v), seenAs(obs.records[i].Src), seenAs(obs.records[i].Dst))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(out, "\n%d flows: %d allowed, %d denied", len(verdicts), len(verdicts)-denied-uncertain, denied)
	if uncertain > 0 {
		fmt.Fprintf(out, ", %d uncertain", uncertain)
	}
	fmt.Fprintf(out, ", under %d policies", ps.Len())
	if n := len(ps.ClusterPolicies()); n > 0 {
		fmt.Fprintf(out, " and %d cluster policies", n)
	}
	fmt.Fprintln(out, ".")
	return ExitOK
}

// Check reports what applying (or deleting) the given policies would cut. It returns ExitOK
// when nothing is cut, ExitCut when something is, ExitBadInput on bad input.
func Check(out, errw io.Writer, opts CheckOptions) int {
	if err := checkOutputIn(opts.Output, CheckOutputFormats); err != nil {
		return fail(errw, err)
	}
	if len(opts.Policies) == 0 {
		return fail(errw, fmt.Errorf("-f is required: the policies to apply or delete, or the objects to relabel"))
	}
	obs, err := load(opts.Inputs)
	if err != nil {
		return fail(errw, err)
	}
	obs.reportSkipped(errw)
	before, err := evaluator.CompileAll(obs.snapshot.Policies, obs.snapshot.ClusterPolicies)
	if err != nil {
		return fail(errw, fmt.Errorf("cluster policies: %w", err))
	}
	changes, relabels, err := readChanges(opts, obs.snapshot)
	if err != nil {
		return fail(errw, err)
	}
	obs.warnAbsentNamespaces(errw, obs.snapshot.Policies)
	var applied []*networkingv1.NetworkPolicy
	for _, c := range changes {
		if c.new != nil && c.old == nil { // an update was named with the cluster's policies
			applied = append(applied, c.new)
		}
	}
	obs.warnAbsentNamespaces(errw, applied)
	after := before
	var names []string
	for _, c := range changes {
		if c.oldCluster != nil || c.newCluster != nil {
			after, err = after.WithCluster(c.oldCluster, c.newCluster)
		} else {
			after, err = after.With(c.old, c.new)
		}
		if err != nil {
			return fail(errw, err)
		}
		names = append(names, c.String())
	}
	for _, r := range relabels {
		names = append(names, r.String())
	}
	var res evaluator.DiffResult
	if len(relabels) == 0 {
		res = evaluator.Diff(before, after, obs.world, obs.flows)
	} else {
		// One change: the policies and the labels as they would be, each flow judged as it
		// is and as it would be.
		afterFlows, afterWorld := relabelled(obs, relabels)
		rr := evaluator.DiffRelabel(evaluator.State{Policies: before, World: obs.world, Flows: obs.flows},
			evaluator.State{Policies: after, World: afterWorld, Flows: afterFlows}, evaluator.DiffOptions{})
		res = evaluator.DiffResult{Summary: rr.Summary, CutIndexes: rr.CutIndexes}
		for _, i := range rr.CutIndexes {
			res.Cut = append(res.Cut, rr.Explain(i))
		}
	}
	var fix *suggest.Fix
	picture := opts.Output == OutputHTML || opts.Output == OutputMarkdown
	// A fix is offered for policy changes; a relabel's way forward is its labels.
	if (opts.Suggest || picture) && len(res.Cut) > 0 && len(relabels) == 0 {
		if fix, err = fixFor(obs, before, after, changes, res); err != nil {
			return fail(errw, err)
		}
	}

	switch {
	case picture:
		if err := checkPicture(out, opts.Output, changes, res, obs, fix, opts.Now); err != nil {
			return fail(errw, err)
		}
	case structured(opts.Output):
		report := checkReport{Changes: names, Cut: make([]cutLine, len(res.Cut)), Summary: res.Summary}
		if fix != nil {
			for _, p := range fix.Policies {
				report.Suggestions = append(report.Suggestions, clean(p))
			}
		}
		for _, c := range res.UncertainCuts {
			reason := c.After.Reason()
			if !c.After.Uncertain {
				reason = c.After.Denial()
			}
			report.Uncertain = append(report.Uncertain, cutLine{flowEcho: echo(obs.records[c.Index]), Reason: reason, Before: c.Before, After: c.After})
		}
		for i, c := range res.Cut {
			report.Cut[i] = cutLine{flowEcho: echo(obs.records[c.Index]), Reason: c.After.Denial(), Before: c.Before, After: c.After}
		}
		if err := newEncoder(out, opts.Output).Encode(report); err != nil {
			return fail(errw, err)
		}
	default:
		writeCheckTable(out, names, res, obs.records, opts.Now, opts.Output == OutputWide)
		if fix != nil {
			if err := writeFix(out, fix, len(res.Cut)); err != nil {
				return fail(errw, err)
			}
		}
	}
	if len(res.Cut) > 0 {
		return ExitCut
	}
	return ExitOK
}

func writeCheckTable(out io.Writer, names []string, res evaluator.DiffResult, records []flows.Record, now time.Time, wide bool) {
	s := res.Summary
	defer writeUncertain(out, res, records)
	if len(res.Cut) == 0 {
		fmt.Fprintf(out, "OK: %s cuts none of %d observed flows (%d could be affected and were evaluated).\n", strings.Join(names, ", "), s.Flows, s.Candidates)
		return
	}
	fmt.Fprintf(out, "CUT: %s would cut %d of %d observed flows (%d could be affected and were evaluated).\n\n", strings.Join(names, ", "), s.Cut, s.Flows, s.Candidates)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "SOURCE\tDESTINATION\tPORT\tLAST SEEN\tCOUNT\tALLOWED BEFORE BY\tDENIED AFTER BECAUSE")
	if wide {
		fmt.Fprint(tw, "\tISOLATED AFTER BY\tSOURCE SEEN AS\tDESTINATION SEEN AS")
	}
	fmt.Fprintln(tw)
	for _, c := range res.Cut {
		rec := records[c.Index]
		count := "-"
		if rec.Count > 0 {
			count = fmt.Sprint(rec.Count)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", c.Flow.Src, c.Flow.Dst, portString(c.Flow), age(rec.LastSeen, now), count, allowedBy(c.Before), c.After.Denial())
		if wide {
			fmt.Fprintf(tw, "\t%s\t%s\t%s", isolatedBy(c.After), seenAs(rec.Src), seenAs(rec.Dst))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// writeUncertain lists the flows a domainNames rule decides on one side of the change.
func writeUncertain(out io.Writer, res evaluator.DiffResult, records []flows.Record) {
	if len(res.UncertainCuts) == 0 {
		return
	}
	fmt.Fprintf(out, "\nUNCERTAIN: %d flows a domainNames rule decides, which an address cannot tell (not counted as cut):\n", len(res.UncertainCuts))
	for _, c := range res.UncertainCuts {
		why := c.After.Reason()
		if !c.After.Uncertain {
			why = "was " + c.Before.Reason() + "; now " + c.After.Denial()
		}
		fmt.Fprintf(out, "  %s → %s %s: %s\n", c.Flow.Src, c.Flow.Dst, portString(c.Flow), why)
	}
}

// allowedBy names what allowed a flow, briefly: the cluster policy rules that accepted it
// and the NetworkPolicy rules, or that nothing isolated it.
func allowedBy(v evaluator.Verdict) string {
	var parts []string
	for _, s := range []evaluator.Side{v.Egress, v.Ingress} {
		if s.DecidedBy != nil && s.Allowed {
			parts = append(parts, s.DecidedBy.String())
		}
	}
	for _, r := range v.AllowingRules() {
		parts = append(parts, r.String())
	}
	if len(parts) == 0 {
		return "not isolated"
	}
	return strings.Join(parts, ", ")
}

type change struct {
	old, new *networkingv1.NetworkPolicy
	// oldCluster and newCluster, when either is set, change a cluster policy instead.
	oldCluster, newCluster *evaluator.ClusterPolicy
}

func (c change) String() string {
	switch {
	case c.oldCluster == nil && c.newCluster != nil:
		return "create " + c.newCluster.Ref().String()
	case c.newCluster == nil && c.oldCluster != nil:
		return "delete " + c.oldCluster.Ref().String()
	case c.newCluster != nil:
		return "update " + c.newCluster.Ref().String()
	case c.old == nil:
		return "create " + c.new.Namespace + "/" + c.new.Name
	case c.new == nil:
		return "delete " + c.old.Namespace + "/" + c.old.Name
	default:
		return "update " + c.new.Namespace + "/" + c.new.Name
	}
}

// readChanges turns the -f files into creates, updates or deletes against the cluster's
// current policies, and relabels of the Namespaces, Pods and workloads they give that the
// cluster holds with other labels.
func readChanges(opts CheckOptions, snap *cluster.Objects) ([]change, []relabelChange, error) {
	current := map[string]*networkingv1.NetworkPolicy{}
	for _, p := range snap.Policies {
		current[p.Namespace+"/"+p.Name] = p
	}
	currentCluster := map[evaluator.ClusterRef]*evaluator.ClusterPolicy{}
	for _, p := range snap.ClusterPolicies {
		currentCluster[p.Ref()] = p
	}
	ns := opts.Namespace
	if ns == "" {
		ns = "default"
	}
	var changes []change
	var relabels []relabelChange
	for _, path := range opts.Policies {
		var s *cluster.Objects
		var err error
		if path == "-" {
			s, err = cluster.Decode(opts.stdin(), "<stdin>")
		} else {
			s, err = cluster.Load(path)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading policies: %w", err)
		}
		objects := len(s.Namespaces) + len(s.Pods) + len(s.Workloads)
		if opts.Delete && objects+len(s.Staged) > 0 {
			return nil, nil, fmt.Errorf("%s: --delete takes NetworkPolicies and cluster policies only", path)
		}
		for _, p := range s.ClusterPolicies {
			old := currentCluster[p.Ref()]
			switch {
			case opts.Delete && old == nil:
				return nil, nil, fmt.Errorf("%s: %s is not in the cluster, so it cannot be deleted", path, p.Ref())
			case opts.Delete:
				changes = append(changes, change{oldCluster: old})
				delete(currentCluster, p.Ref())
			default:
				changes = append(changes, change{oldCluster: old, newCluster: p})
				currentCluster[p.Ref()] = p
			}
		}
		if len(s.Policies) == 0 && len(s.ClusterPolicies) == 0 && len(s.Staged) == 0 && objects == 0 {
			return nil, nil, fmt.Errorf("reading policies: %s holds no NetworkPolicy, StagedNetworkPolicy, cluster policy, Namespace, Pod or workload", path)
		}
		r, err := readRelabels(path, s, snap)
		if err != nil {
			return nil, nil, err
		}
		relabels = append(relabels, r...)
		for _, p := range s.Policies {
			p = p.DeepCopy()
			if p.Namespace == "" {
				p.Namespace = ns
			}
			key := p.Namespace + "/" + p.Name
			old := current[key]
			switch {
			case opts.Delete && old == nil:
				return nil, nil, fmt.Errorf("%s: networkpolicy %s is not in the cluster, so it cannot be deleted", path, key)
			case opts.Delete:
				changes = append(changes, change{old: old})
				delete(current, key)
			default:
				changes = append(changes, change{old: old, new: p})
				current[key] = p
			}
		}
		// A staged policy is judged as what applying it would do: its stagedAction on the
		// NetworkPolicy of its namespace and name.
		for _, sp := range s.Staged {
			key := sp.Namespace + "/" + sp.Name
			old := current[key]
			switch sp.Action() {
			case v1alpha1.StagedDelete:
				if old == nil {
					return nil, nil, fmt.Errorf("%s: stagednetworkpolicy %s deletes networkpolicy %s, which is not in the cluster", path, key, key)
				}
				changes = append(changes, change{old: old})
				delete(current, key)
			default:
				p := sp.NetworkPolicy()
				if p == nil {
					return nil, nil, fmt.Errorf("%s: stagednetworkpolicy %s: spec.template: Required value: stagedAction Set needs a template", path, key)
				}
				changes = append(changes, change{old: old, new: p})
				current[key] = p
			}
		}
	}
	return changes, relabels, nil
}

// flowEcho repeats a flow record's fields as the input gave them.
type flowEcho struct {
	Src      json.RawMessage `json:"src"`
	Dst      json.RawMessage `json:"dst"`
	Port     int32           `json:"port"`
	Protocol string          `json:"protocol"`
	LastSeen *time.Time      `json:"lastSeen,omitempty"`
	Count    uint64          `json:"count,omitempty"`
}

type verdictLine struct {
	flowEcho
	Verdict     string            `json:"verdict"`
	Reason      string            `json:"reason"`
	Explanation evaluator.Verdict `json:"explanation"`
}

type cutLine struct {
	flowEcho
	Reason string            `json:"reason"`
	Before evaluator.Verdict `json:"before"`
	After  evaluator.Verdict `json:"after"`
}

type checkReport struct {
	Changes []string  `json:"changes"`
	Cut     []cutLine `json:"cut"`
	// Uncertain are flows a domainNames rule decides on one side of the change: not cuts.
	Uncertain []cutLine             `json:"uncertain,omitempty"`
	Summary   evaluator.DiffSummary `json:"summary"`
	// Suggestions, with --suggest, are the policies that keep the cut flows.
	Suggestions []*networkingv1.NetworkPolicy `json:"suggestions,omitempty"`
}

func echo(rec flows.Record) flowEcho {
	e := flowEcho{Src: rec.RawSrc, Dst: rec.RawDst, Port: rec.Port, Protocol: rec.Protocol, Count: rec.Count}
	if e.Src == nil {
		e.Src, _ = json.Marshal(rec.Src)
	}
	if e.Dst == nil {
		e.Dst, _ = json.Marshal(rec.Dst)
	}
	if !rec.LastSeen.IsZero() {
		t := rec.LastSeen
		e.LastSeen = &t
	}
	return e
}

func protocolOf(rec flows.Record) corev1.Protocol {
	if rec.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return corev1.Protocol(rec.Protocol)
}

func portString(f evaluator.Flow) string {
	p := f.Protocol
	if p == "" {
		p = corev1.ProtocolTCP
	}
	return fmt.Sprintf("%s/%d", p, f.Port)
}

// age renders a last-seen time as "5m ago", or "-" when unknown.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if now.IsZero() {
		return t.UTC().Format(time.RFC3339)
	}
	d := now.Sub(t)
	if d < 0 {
		return t.UTC().Format(time.RFC3339)
	}
	return human.Duration(d) + " ago"
}

func fail(errw io.Writer, err error) int {
	fmt.Fprintf(errw, "error: %v\n", err)
	return ExitBadInput
}
