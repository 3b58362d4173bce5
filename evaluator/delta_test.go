package evaluator_test

import (
	"math/rand/v2"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// A DeltaJudge answers as CutOne does, flow by flow, for many changes of one reference set
// judged together: creates, updates and deletes made against the reference (directly, and
// as a webhook makes them, through a before set recompiled from it), changes made against
// a set the reference has since moved on from, and changes of a set compiled afresh.
func TestDeltaJudgeAgreesWithCutOne(t *testing.T) {
	seed := envUint(t, "NETPOL_DIFF_SEED", 1)
	worlds := 60
	if testing.Short() {
		worlds = 15
	}
	var judged, cut int
	// One judge for every world, as one serves the cluster as it changes.
	judge := evaluator.NewDeltaJudge()
	for i := range envUint(t, "NETPOL_DIFF_WORLDS", uint64(worlds)) {
		j, c := deltaWorld(t, judge, seed+i)
		judged, cut = judged+j, cut+c
		if t.Failed() {
			break
		}
	}
	t.Logf("%d judgements, %d cut", judged, cut)
	if worlds >= 20 && cut == 0 {
		t.Error("no delta cut a flow: the test has gone blind")
	}
}

// maxDeltaFlows bounds the flows judged per world: CutOne judges each against every delta
// with nothing learnt before.
const maxDeltaFlows = 200

func deltaWorld(t *testing.T, j *evaluator.DeltaJudge, seed uint64) (judged, cut int) {
	t.Helper()
	g := newGen(seed)
	gw := g.world()
	policies := g.policies(gw, 2+g.r.IntN(11))
	ref, err := evaluator.Compile(policies)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	type pair struct {
		what          string
		before, after *evaluator.PolicySet
	}
	with := func(ps *evaluator.PolicySet, old, nw *networkingv1.NetworkPolicy) *evaluator.PolicySet {
		s, err := ps.With(old, nw)
		if err != nil {
			t.Fatalf("seed %d: With(%s, %s): %v", seed, name(old), name(nw), err)
		}
		return s
	}
	var pairs []pair
	for range 8 {
		old, nw, after := g.change(gw, policies)
		pairs = append(pairs, pair{"against the reference " + changeKind(old, nw), ref, with(ref, old, nw)})
		if old != nil {
			// As a webhook builds it: before recompiled with the policy as it is.
			before := with(ref, ref.Get(old.Namespace, old.Name), old)
			pairs = append(pairs, pair{"through a recompiled before " + changeKind(old, nw), before, with(before, old, nw)})
		}
		fresh, err := evaluator.Compile(after)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		pairs = append(pairs, pair{"to a set compiled afresh " + changeKind(old, nw), ref, fresh})
	}
	// Changes of a set with cluster policies, judged through the tiers.
	cg := &clusterGen{r: rand.New(rand.NewPCG(seed, 0x64656c)), gw: gw, prios: map[v1beta1.Tier][]int32{}}
	cg.nodeLabels()
	cnps := cg.policies(1 + cg.r.IntN(3))
	tiered, err := evaluator.CompileAll(policies, cnps)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	oldC, nwC, _ := cg.change(cnps)
	afterC, err := tiered.WithCluster(oldC, nwC)
	if err != nil {
		t.Fatalf("seed %d: WithCluster: %v", seed, err)
	}
	pairs = append(pairs, pair{"of a cluster policy", tiered, afterC})
	old, nw, _ := g.change(gw, policies)
	pairs = append(pairs, pair{"under cluster policies " + changeKind(old, nw), tiered, with(tiered, old, nw)})

	// A change made against a set the reference has moved on from.
	old, nw, moved := g.change(gw, policies)
	next := with(ref, old, nw)
	old2, nw2, _ := g.change(gw, moved)
	pairs = append(pairs, pair{"against an older set " + changeKind(old2, nw2), ref, with(ref, old2, nw2)})

	deltas := make([]*evaluator.Delta, len(pairs))
	for i, p := range pairs {
		deltas[i] = evaluator.NewDelta(p.before, p.after)
	}
	probes := g.probes(gw, policies)
	for k, f := range probes[:min(len(probes), maxDeltaFlows)] {
		r := ref
		if k%5 == 4 {
			r = next // now and then the reference moves on, and back
		}
		j.Begin(r, gw.w, f)
		// Deltas in a new order each flow: an answer must not depend on the ones before.
		order := g.r.Perm(len(deltas))
		for _, i := range order {
			p := pairs[i]
			want := evaluator.CutOne(p.before, p.after, gw.w, f, nil)
			got := j.Cuts(deltas[i])
			judged++
			if want {
				cut++
			}
			if got != want {
				t.Errorf("seed %d: delta %s, flow %s: DeltaJudge %v, CutOne %v\npolicies:\n%s%s", seed, p.what, f, got, want,
					policiesYAML(policies), worldText(gw.w, []*evaluator.Endpoint{f.Src, f.Dst}))
				return judged, cut
			}
			if got := deltas[i].Cuts(gw.w, f); got != want {
				t.Errorf("seed %d: delta %s, flow %s: Delta.Cuts %v, CutOne %v", seed, p.what, f, got, want)
				return judged, cut
			}
		}
	}
	return judged, cut
}
