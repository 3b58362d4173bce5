package evaluator

import (
	"runtime"
	"sync"

	"k8s.io/apimachinery/pkg/labels"
)

// DiffResult is what a policy change would cut.
type DiffResult struct {
	// Cut lists the flows allowed before and denied after, in input order, explained.
	// DiffWith without Explain leaves it nil and fills CutIndexes instead.
	Cut []Cut
	// CutIndexes are the input positions of the cut flows, in order.
	CutIndexes []int
	// Uncertain are the input positions, in order, of the flows whose fate a domainNames
	// rule decides on one side of the change: allowed before and uncertain after, or
	// uncertain before and denied after. They are not cuts; Explain explains them too.
	Uncertain []int
	// UncertainCuts explains the Uncertain flows when Explain is set.
	UncertainCuts []Cut
	Summary       DiffSummary

	before, after *Evaluation // for Explain
	flows         []Flow
	pods          map[int]podCut // the cuts judged pod by pod, by input position
}

// DiffOptions tunes DiffWith.
type DiffOptions struct {
	// Explain builds Cut, every cut flow with its verdicts. Without it only CutIndexes is
	// filled, and Explain explains the cuts the caller shows: a webhook lists five of ten
	// thousand.
	Explain bool
	// Memo, when set, carries what was learnt about the endpoints over from earlier diffs
	// and on to later ones, and lends the result its CutIndexes: they are valid until the
	// Memo's next diff.
	Memo *Memo
	// Workers share a large diff (at least minFlowsPerWorker flows each); 0 or 1: none.
	// A webhook's 10 k candidate flows are judged in half the time on two cores.
	Workers int
	// MinFlowsPerWorker is the least share of a split diff; 0: minFlowsPerWorker.
	MinFlowsPerWorker int
}

// minFlowsPerWorker is the least share of a diff worth another goroutine.
const minFlowsPerWorker = 4096

// differ is one diff's fixed inputs.
type differ struct {
	changed                       []*compiledPolicy
	ingressChanged, egressChanged bool
	// tiered: a set has cluster policies, so flows are judged through the tiers, and
	// changedCluster are the cluster policies that differ.
	tiered         bool
	changedCluster []*compiledCluster
}

// diffPart is what one worker found in its share of a diff, judged with its evaluations of
// the sets before (eb) and after (ea).
type diffPart struct {
	eb, ea     *Evaluation
	explain    bool
	cut        []int
	pods       []indexedPodCut // of the flows cut or uncertain that were judged pod by pod
	explained  []Cut           // when explaining
	candidates int
	uncertain  []int
	uncertainX []Cut // when explaining
}

// add records flow i, f, as cut (change pairCut) or uncertain (pairUncertain); pc is its
// first pair when it was judged pod by pod.
func (p *diffPart) add(change, i int, f Flow, pc *podCut) {
	indexes, explained := &p.cut, &p.explained
	if change == pairUncertain {
		indexes, explained = &p.uncertain, &p.uncertainX
	}
	*indexes = append(*indexes, i)
	if pc != nil {
		p.pods = append(p.pods, indexedPodCut{i, *pc})
	}
	if p.explain {
		*explained = append(*explained, explainCut(p.eb, p.ea, i, f, pc))
	}
}

// run judges flows[lo:hi] with evaluations of the sets before and after, and explains the
// cuts when asked.
func (d *differ) run(eb, ea *Evaluation, flows []Flow, lo, hi int, explain bool) diffPart {
	p := diffPart{eb: eb, ea: ea, explain: explain, cut: eb.m.cut[:0]}
	defer func() { eb.m.cut = p.cut }()
	for i := lo; i < hi; i++ {
		f := flows[i]
		src, dst := eb.state(f.Src), eb.state(f.Dst)
		srcCand, dstCand := d.candidate(eb, f.Src, src), d.candidate(eb, f.Dst, dst)
		if srcCand == 0 && dstCand == 0 {
			continue
		}
		p.candidates++
		if d.tiered {
			d.runTiered(&p, f, i, src, dst, srcCand&candEgress != 0, dstCand&candIngress != 0)
			continue
		}
		srcSelected, dstSelected := srcCand != 0, dstCand != 0
		var splitSrc, splitDst bool
		if len(f.Src.Pods) > 1 || len(f.Dst.Pods) > 1 {
			splitSrc, splitDst = splitEnds(f, eb.ps, ea.ps)
		}
		if !splitSrc && !splitDst {
			if d.judge(eb, ea, f, src, dst, srcSelected, dstSelected) {
				p.add(pairCut, i, f, nil)
			}
			continue
		}
		if pc, cut := d.judgePods(eb, ea, f, splitSrc, splitDst, srcSelected, dstSelected); cut {
			p.add(pairCut, i, f, &pc)
		}
	}
	return p
}

// judge reports whether f (one pair of ends) is allowed before and denied after. Only the
// sides of selected pods, in a direction that changed, can change.
func (d *differ) judge(eb, ea *Evaluation, f Flow, src, dst *endpointState, srcSelected, dstSelected bool) bool {
	egressMay, ingressMay := srcSelected && d.egressChanged, dstSelected && d.ingressChanged
	switch {
	case egressMay && ingressMay:
		// Most flows survive most changes: ask the new set first.
		return !ea.allowed(f, src, dst) && eb.allowed(f, src, dst)
	case egressMay:
		return !ea.egressAllowed(f, src, dst) && eb.egressAllowed(f, src, dst) && ea.ingressAllowed(f, src, dst)
	case ingressMay:
		return !ea.ingressAllowed(f, src, dst) && eb.ingressAllowed(f, src, dst) && ea.egressAllowed(f, src, dst)
	}
	return false
}

// explainCut explains cut flow i; for a flow judged pod by pod, the verdicts are its first
// cut pair's, and the after verdict names the cut pods when not all of them are.
func explainCut(eb, ea *Evaluation, i int, f Flow, pc *podCut) Cut {
	if pc == nil {
		return Cut{Index: i, Flow: f, Before: eb.Verdict(f), After: ea.Verdict(f)}
	}
	g := Flow{Src: pc.src, Dst: pc.dst, Port: f.Port, Protocol: f.Protocol}
	c := Cut{Index: i, Flow: f, Before: eb.verdict(g), After: ea.verdict(g)}
	c.After.Pods = pc.pods
	return c
}

type indexedPodCut struct {
	index int
	podCut
}

// Explain returns the cut flow at input position i with its verdicts. Not safe for
// concurrent use with other calls on the same result.
func (r *DiffResult) Explain(i int) Cut {
	if pc, ok := r.pods[i]; ok {
		return explainCut(r.before, r.after, i, r.flows[i], &pc)
	}
	return explainCut(r.before, r.after, i, r.flows[i], nil)
}

// Cut is one flow a change would cut, with the verdicts that explain it.
type Cut struct {
	// Index is the flow's position in the input.
	Index         int
	Flow          Flow
	Before, After Verdict
}

// DiffSummary counts what a diff looked at.
type DiffSummary struct {
	// Flows is the number of flows given.
	Flows int `json:"flows"`
	// Candidates is how many of them the change could affect: flows into pods that a changed
	// policy selects (before or after the change), or out of them. Only these are evaluated.
	Candidates int `json:"candidates"`
	// Cut is how many of the candidates were allowed before and are denied after.
	Cut int `json:"cut"`
	// PoliciesChanged is how many policies differ between the two sets.
	PoliciesChanged int `json:"policiesChanged"`
	// ClusterPoliciesChanged is how many cluster policies (Admin and Baseline tiers)
	// differ between the two sets.
	ClusterPoliciesChanged int `json:"clusterPoliciesChanged,omitempty"`
	// Uncertain is how many candidates a domainNames rule may cut: see DiffResult.Uncertain.
	Uncertain int `json:"uncertain,omitempty"`
}

// Diff returns the flows that are allowed under before and denied under after.
//
// NetworkPolicies are additive, so a flow is cut only when the whole set allowed it before
// and the whole set denies it after; deleting a policy can cut too, when the pod stays
// isolated by another. Only flows into or out of pods that a changed policy selects (with its
// old or its new podSelector) can change their verdict, so only those are evaluated.
func Diff(before, after *PolicySet, w *World, flows []Flow) DiffResult {
	return DiffWith(before, after, w, flows, DiffOptions{Explain: true, Workers: runtime.GOMAXPROCS(0)})
}

// DiffWith is Diff with options.
func DiffWith(before, after *PolicySet, w *World, flows []Flow, opts DiffOptions) DiffResult {
	d, ok := newDiffer(before, after)
	res := DiffResult{Summary: DiffSummary{Flows: len(flows), PoliciesChanged: len(d.changed), ClusterPoliciesChanged: uniqueRefs(d.changedCluster)}}
	if !ok {
		return res
	}
	m := opts.Memo.begin(w, before, after)
	eb := &Evaluation{ps: before, w: w, m: m}
	ea := &Evaluation{ps: after, w: w, m: m}

	// Large inputs are split between workers, each with memos of its own (an Evaluation is
	// not safe for concurrent use): the Memo's, kept per worker, or new ones.
	share := opts.MinFlowsPerWorker
	if share <= 0 {
		share = minFlowsPerWorker
	}
	workers := max(1, min(opts.Workers, len(flows)/share))
	parts := make([]diffPart, workers)
	chunk := (len(flows) + workers - 1) / workers
	var wg sync.WaitGroup
	for k := range workers {
		lo, hi := k*chunk, min(len(flows), (k+1)*chunk)
		b, a := eb, ea
		if k > 0 {
			mk := opts.Memo.worker(k).begin(w, before, after)
			b, a = &Evaluation{ps: before, w: w, m: mk}, &Evaluation{ps: after, w: w, m: mk}
		}
		wg.Go(func() { parts[k] = d.run(b, a, flows, lo, hi, opts.Explain) })
	}
	wg.Wait()
	cut := parts[0].cut
	if workers > 1 {
		cut = append(m.merged[:0], cut...)
		for _, p := range parts[1:] {
			cut = append(cut, p.cut...)
		}
		m.merged = cut
	}
	for _, p := range parts {
		res.Uncertain = append(res.Uncertain, p.uncertain...)
		res.UncertainCuts = append(res.UncertainCuts, p.uncertainX...)
		for _, pc := range p.pods {
			if res.pods == nil {
				res.pods = map[int]podCut{}
			}
			res.pods[pc.index] = pc.podCut
		}
		res.Cut = append(res.Cut, p.explained...)
		res.Summary.Candidates += p.candidates
	}

	// Explanations only for what is cut, and only when asked.
	res.before, res.after, res.flows = eb, ea, flows
	res.CutIndexes = cut
	res.Summary.Cut = len(cut)
	res.Summary.Uncertain = len(res.Uncertain)
	return res
}

// What a change can decide of an endpoint's flows (endpointState.candidate): a changed
// policy selects it (candSelected), and one of those isolates it for egress or has egress
// rules (candEgress), or ingress (candIngress). A side no changed policy decides answers
// alike before and after.
const (
	candSelected int8 = 1 << iota
	candEgress
	candIngress
)

// candidate reports whether a changed policy selects ep, and which sides of its flows it
// may decide, memoised per endpoint: a NetworkPolicy in its namespace, or a cluster policy
// whose subject (old or new) does.
func (d *differ) candidate(e *Evaluation, ep *Endpoint, st *endpointState) int8 {
	if ep.Kind != Pod {
		return 0
	}
	if st.candidate < 0 {
		c := int8(0)
		mark := func(ingress, egress bool) {
			c |= candSelected
			if ingress {
				c |= candIngress
			}
			if egress {
				c |= candEgress
			}
		}
		for _, cp := range d.changed {
			if cp.ref.Namespace == ep.Namespace && cp.selector.Matches(labels.Set(ep.Labels)) {
				mark(cp.ingress, cp.egress)
			}
		}
		if len(d.changedCluster) > 0 {
			nsl := e.namespaceLabels(ep.Namespace)
			for _, cp := range d.changedCluster {
				if cp.selects(ep, nsl) {
					mark(len(cp.ingress) > 0, len(cp.egress) > 0)
				}
			}
		}
		st.candidate = c
	}
	return st.candidate
}

func uniqueRefs(list []*compiledCluster) int {
	seen := map[ClusterRef]bool{}
	for _, cp := range list {
		seen[cp.ref] = true
	}
	return len(seen)
}

// runTiered judges flow i of a diff whose sets have cluster policies: through every tier,
// pod by pod where addresses tell a workload's pods apart. It is cut if the flow of a pair
// of its pods is allowed before and denied after, and uncertain (not cut) if no pair is cut
// but one goes from allowed to uncertain or from uncertain to denied. egressMay and
// ingressMay say which sides a changed policy may decide.
func (d *differ) runTiered(p *diffPart, f Flow, i int, src, dst *endpointState, egressMay, ingressMay bool) {
	eb, ea := p.eb, p.ea
	var splitSrc, splitDst bool
	if len(f.Src.Pods) > 1 || len(f.Dst.Pods) > 1 {
		splitSrc, splitDst = splitEnds(f, eb.ps, ea.ps)
	}
	if !splitSrc && !splitDst {
		if change := tieredChange(eb, ea, f, src, dst, egressMay, ingressMay); change != pairKept {
			p.add(change, i, f, nil)
		}
		return
	}
	var cut, unc podTally
	n := 0
	podPairs(f, splitSrc, splitDst, func(g Flow) bool {
		n++
		switch tieredChange(eb, ea, g, eb.state(g.Src), eb.state(g.Dst), egressMay, ingressMay) {
		case pairCut:
			cut.add(g, splitSrc, splitDst)
		case pairUncertain:
			unc.add(g, splitSrc, splitDst)
		}
		return true
	})
	switch {
	case cut.n > 0:
		pc := cut.of(n)
		p.add(pairCut, i, f, &pc)
	case unc.n > 0:
		pc := unc.of(n)
		p.add(pairUncertain, i, f, &pc)
	}
}

// What a change does to the flow of one pair of ends.
const (
	pairKept = iota
	pairCut
	pairUncertain
)

// tieredChange judges the flow g of one pair of ends under the sets before and after. A
// side that no changed policy decides (egressMay, ingressMay) answers alike under both: it
// is asked once, and only when the side that may change does, from an allow.
func tieredChange(eb, ea *Evaluation, g Flow, gs, gd *endpointState, egressMay, ingressMay bool) int {
	var b, a outcome
	switch {
	case egressMay && ingressMay:
		if a = ea.outcomeOf(g, gs, gd); a == outAllow {
			return pairKept
		}
		b = eb.outcomeOf(g, gs, gd)
	case egressMay || ingressMay:
		dir, other := Egress, Ingress
		if ingressMay {
			dir, other = Ingress, Egress
		}
		sa := ea.sideOutcome(dir, g, gs, gd)
		if sa == outAllow {
			return pairKept
		}
		sb := eb.sideOutcome(dir, g, gs, gd)
		if sb == sa {
			return pairKept
		}
		o := ea.sideOutcome(other, g, gs, gd)
		b, a = both(sb, o), both(sa, o)
	default:
		return pairKept
	}
	switch {
	case b == outAllow && a == outDeny:
		return pairCut
	case (b == outAllow && a == outUncertain) || (b == outUncertain && a == outDeny):
		return pairUncertain
	}
	return pairKept
}
