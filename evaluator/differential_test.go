package evaluator_test

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// The differential test generates random worlds and policy sets and holds the fast
// evaluator (Compile, With, Evaluation.Verdict, Diff) to the naive reference in
// reference_test.go, flow by flow.
//
//	NETPOL_DIFF_SEED=n    first world seed (default 1); world i uses seed n+i
//	NETPOL_DIFF_WORLDS=n  number of worlds (default 300, 40 with -short)
//
// A failure prints the world seed; NETPOL_DIFF_SEED=<seed> NETPOL_DIFF_WORLDS=1 replays it.

func TestDifferential(t *testing.T) {
	seed := envUint(t, "NETPOL_DIFF_SEED", 1)
	worlds := 300
	if testing.Short() {
		worlds = 40
	}
	worlds = int(envUint(t, "NETPOL_DIFF_WORLDS", uint64(worlds)))

	// Worlds are independent: check them on every CPU.
	var (
		mu    sync.Mutex
		total diffStats
		next  = make(chan uint64)
		wg    sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for s := range next {
				st := runWorld(t, s)
				mu.Lock()
				total.add(st)
				mu.Unlock()
			}
		})
	}
	for i := range worlds {
		if t.Failed() {
			break
		}
		next <- seed + uint64(i)
	}
	close(next)
	wg.Wait()
	t.Logf("%d worlds from seed %d: %s", total.worlds, seed, total)
	// The generator is only useful if it reaches both outcomes and every mechanism.
	if worlds >= 20 && !t.Failed() {
		for name, n := range map[string]int{
			"allowed": total.allowed, "denied": total.probes - total.allowed,
			"isolated ingress": total.ingressIsolated, "isolated egress": total.egressIsolated,
			"own node": total.ownNode, "ipBlock allows": total.byIPBlock, "named port allows": total.byNamedPort,
			"cut": total.cut,
		} {
			if n == 0 {
				t.Errorf("no probe exercised %s: the generator has gone blind", name)
			}
		}
	}
}

// FuzzDifferential turns fuzz input into a world seed, so `go test -fuzz=FuzzDifferential`
// explores worlds beyond the fixed seeds.
func FuzzDifferential(f *testing.F) {
	for _, s := range []string{"", "netpol", "guard", "\x00\x01\x02\x03", "ipBlock", "named-port"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := fnv.New64a()
		h.Write(data)
		runWorld(t, h.Sum64())
	})
}

func envUint(t testing.TB, name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

type diffStats struct {
	worlds, probes, allowed, ingressIsolated, egressIsolated, ownNode, byIPBlock, byNamedPort int
	changes, diffFlows, cut                                                                   int
}

func (s *diffStats) add(o diffStats) {
	s.worlds++
	s.probes += o.probes
	s.allowed += o.allowed
	s.ingressIsolated += o.ingressIsolated
	s.egressIsolated += o.egressIsolated
	s.ownNode += o.ownNode
	s.byIPBlock += o.byIPBlock
	s.byNamedPort += o.byNamedPort
	s.changes += o.changes
	s.diffFlows += o.diffFlows
	s.cut += o.cut
}

func (s diffStats) String() string {
	return fmt.Sprintf("%d probes, %d allowed, %d isolated ingress, %d isolated egress, %d own-node, %d allowed by ipBlock, %d by named port; %d changes over %d flows cut %d",
		s.probes, s.allowed, s.ingressIsolated, s.egressIsolated, s.ownNode, s.byIPBlock, s.byNamedPort, s.changes, s.diffFlows, s.cut)
}

// maxDiffFlows bounds the flows replayed per change: the reference evaluates each twice.
const maxDiffFlows = 400

// runWorld checks one random world. It reports failures on t with the seed and returns what
// the probes exercised.
func runWorld(t testing.TB, seed uint64) diffStats {
	t.Helper()
	g := newGen(seed)
	gw := g.world()
	policies := g.policies(gw, 2+g.r.IntN(11))
	probes := g.probes(gw, policies)

	var st diffStats
	ps, err := evaluator.Compile(policies)
	if err != nil {
		t.Errorf("seed %d: Compile of valid policies: %v\n%s", seed, err, policiesYAML(policies))
		return st
	}
	ev := evaluator.NewEvaluation(ps, gw.w)
	mismatches := 0
	for _, f := range probes {
		want := refVerdict(policies, gw.w, f)
		got := ev.Verdict(f)
		st.probes++
		if want.allowed {
			st.allowed++
		}
		if want.ingress.isolated {
			st.ingressIsolated++
		}
		if want.egress.isolated {
			st.egressIsolated++
		}
		if want.ingress.isolated && want.ingress.fromOwnNode {
			st.ownNode++
		}
		st.countMechanisms(policies, want)
		if got.Allowed != want.allowed {
			reportVerdictMismatch(t, seed, policies, gw.w, f, want, got)
			mismatches++
		} else if problem := consistency(want, got); problem != "" {
			reportInconsistency(t, seed, policies, gw.w, f, want, got)
			mismatches++
		}
		if mismatches >= 1 {
			return st
		}
	}

	// Two chained changes: before → after1 → after2, each through With.
	flows := probes
	if len(flows) > maxDiffFlows {
		flows = flows[:maxDiffFlows]
	}
	before, beforeSet := policies, ps
	// One Memo carried across the chained changes, as the webhook keeps one across
	// admissions: what it learnt before a change must not leak into the answers after it.
	memo, splitMemo := evaluator.NewMemo(), evaluator.NewMemo()
	for range 2 {
		old, nw, after := g.change(gw, before)
		afterSet, err := beforeSet.With(old, nw)
		if err != nil {
			t.Errorf("seed %d: With(%s, %s) of a valid change: %v\nbefore:\n%s", seed, name(old), name(nw), err, policiesYAML(before))
			return st
		}
		st.changes++
		st.diffFlows += len(flows)
		want := refDiff(before, after, gw.w, flows)
		st.cut += len(want)
		res := evaluator.Diff(beforeSet, afterSet, gw.w, flows)
		if msg := checkDiff(res, flows, want); msg != "" {
			t.Errorf("seed %d: Diff after %s: %s\nchange: old=%s new=%s\nnew policy:\n%s\nbefore:\n%s%s", seed, changeKind(old, nw), msg,
				name(old), name(nw), policiesYAML(nonNil(nw)), policiesYAML(before), worldText(gw.w, nil))
			return st
		}
		// Kept, and kept per worker of a split diff: the same flows, split the same way,
		// meet memos that learnt about them under the sets before.
		for _, opts := range []evaluator.DiffOptions{{Explain: true, Memo: memo}, {Explain: true, Memo: splitMemo, Workers: 3, MinFlowsPerWorker: 1}} {
			kept := evaluator.DiffWith(beforeSet, afterSet, gw.w, flows, opts)
			if msg := checkDiff(kept, flows, want); msg != "" {
				t.Errorf("seed %d: Diff with a kept Memo (%d workers) after %s: %s\nchange: old=%s new=%s\nnew policy:\n%s\nbefore:\n%s%s", seed, opts.Workers, changeKind(old, nw), msg,
					name(old), name(nw), policiesYAML(nonNil(nw)), policiesYAML(before), worldText(gw.w, nil))
				return st
			}
		}
		// The set With built must answer as the reference does on the new policies.
		aev := evaluator.NewEvaluation(afterSet, gw.w)
		for _, f := range flows {
			if got, want := aev.Verdict(f).Allowed, refAllowed(after, gw.w, f); got != want {
				t.Errorf("seed %d: after With(%s, %s), %s: got allowed=%v, reference %v\nafter:\n%s%s", seed, name(old), name(nw), f, got, want,
					policiesYAML(after), worldText(gw.w, []*evaluator.Endpoint{f.Src, f.Dst}))
				return st
			}
		}
		before, beforeSet = after, afterSet
	}
	return st
}

// countMechanisms counts allows that rest on ipBlock peers and named ports, so the test can
// tell the generator reaches them.
func (s *diffStats) countMechanisms(policies []*networkingv1.NetworkPolicy, r refResult) {
	for _, side := range []refSide{r.ingress, r.egress} {
		if side.allowedBy == nil {
			continue
		}
		rule := findRule(policies, *side.allowedBy)
		for _, p := range rule.peers {
			if p.IPBlock != nil {
				s.byIPBlock++
				break
			}
		}
		for _, p := range rule.ports {
			if p.Port != nil && p.Port.Type == intstr.String {
				s.byNamedPort++
				break
			}
		}
	}
}

type ruleView struct {
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
}

func findRule(policies []*networkingv1.NetworkPolicy, ref evaluator.RuleRef) ruleView {
	for _, p := range policies {
		if p.Namespace != ref.Policy.Namespace || p.Name != ref.Policy.Name {
			continue
		}
		if ref.Direction == evaluator.Ingress && ref.Index < len(p.Spec.Ingress) {
			return ruleView{p.Spec.Ingress[ref.Index].From, p.Spec.Ingress[ref.Index].Ports}
		}
		if ref.Direction == evaluator.Egress && ref.Index < len(p.Spec.Egress) {
			return ruleView{p.Spec.Egress[ref.Index].To, p.Spec.Egress[ref.Index].Ports}
		}
	}
	return ruleView{}
}

// consistency checks that the verdict's explanation agrees with the reference's facts.
// It returns "" when it does.
func consistency(want refResult, got evaluator.Verdict) string {
	var problems []string
	if got.Allowed != (got.Egress.Allowed && got.Ingress.Allowed) {
		problems = append(problems, fmt.Sprintf("Allowed=%v but Egress.Allowed=%v Ingress.Allowed=%v", got.Allowed, got.Egress.Allowed, got.Ingress.Allowed))
	}
	for _, c := range []struct {
		dir  evaluator.Direction
		want refSide
		got  evaluator.Side
	}{{evaluator.Egress, want.egress, got.Egress}, {evaluator.Ingress, want.ingress, got.Ingress}} {
		d := c.dir.String()
		if c.got.Applies != c.want.applies {
			problems = append(problems, fmt.Sprintf("%s.Applies=%v, want %v", d, c.got.Applies, c.want.applies))
		}
		if c.got.Isolated != c.want.isolated {
			problems = append(problems, fmt.Sprintf("%s.Isolated=%v, want %v", d, c.got.Isolated, c.want.isolated))
		}
		if !slices.Equal(c.got.IsolatedBy, c.want.isolatedBy) {
			problems = append(problems, fmt.Sprintf("%s.IsolatedBy=%v, want %v", d, c.got.IsolatedBy, c.want.isolatedBy))
		}
		if c.got.Allowed != c.want.allowed {
			problems = append(problems, fmt.Sprintf("%s.Allowed=%v, want %v", d, c.got.Allowed, c.want.allowed))
		}
		if !c.got.Isolated && c.got.Allowed && c.got.AllowedBy != nil {
			problems = append(problems, fmt.Sprintf("%s not isolated but AllowedBy=%v", d, c.got.AllowedBy))
		}
		if c.got.FromOwnNode && (c.dir == evaluator.Egress || !c.want.fromOwnNode) {
			problems = append(problems, fmt.Sprintf("%s.FromOwnNode set, source is not the destination's node", d))
		}
		if c.got.Isolated && c.got.Allowed {
			switch {
			case c.got.AllowedBy == nil && !c.got.FromOwnNode:
				problems = append(problems, fmt.Sprintf("%s isolated and allowed, but neither AllowedBy nor FromOwnNode says why", d))
			case c.want.fromOwnNode && c.want.allowedBy == nil && !c.got.FromOwnNode:
				// Only the own-node exception allows it. (When a rule allows it too, naming
				// the rule alone is a fair explanation.)
				problems = append(problems, fmt.Sprintf("%s allowed only because the source is the pod's node, FromOwnNode not set", d))
			case c.got.AllowedBy != nil && (c.want.allowedBy == nil || *c.got.AllowedBy != *c.want.allowedBy):
				problems = append(problems, fmt.Sprintf("%s.AllowedBy=%v, want first matching rule %v", d, c.got.AllowedBy, c.want.allowedBy))
			case c.got.AllowedBy == nil && c.want.allowedBy != nil && !c.got.FromOwnNode:
				problems = append(problems, fmt.Sprintf("%s.AllowedBy=nil, want %v", d, c.want.allowedBy))
			}
		}
		if !c.got.Allowed && c.got.AllowedBy != nil {
			problems = append(problems, fmt.Sprintf("%s denied but AllowedBy=%v", d, c.got.AllowedBy))
		}
	}
	if got.Reason() == "" {
		problems = append(problems, "empty Reason()")
	}
	return strings.Join(problems, "; ")
}

// checkDiff compares a DiffResult with the reference's cut indices; "" when they agree.
func checkDiff(res evaluator.DiffResult, flows []evaluator.Flow, want []int) string {
	got := make([]int, len(res.Cut))
	for i, c := range res.Cut {
		got[i] = c.Index
	}
	slices.Sort(got) // the order of cuts is not part of the contract
	var problems []string
	if !slices.Equal(got, want) {
		problems = append(problems, fmt.Sprintf("cut indices %v, reference %v", got, want))
		for _, i := range want {
			if !slices.Contains(got, i) {
				problems = append(problems, fmt.Sprintf("missed cut [%d] %s", i, flows[i]))
			}
		}
		for _, c := range res.Cut {
			if !slices.Contains(want, c.Index) {
				problems = append(problems, fmt.Sprintf("spurious cut [%d] %s (before: %s; after: %s)", c.Index, c.Flow, c.Before.Reason(), c.After.Reason()))
			}
		}
	}
	for _, c := range res.Cut {
		if c.Index < 0 || c.Index >= len(flows) || c.Flow != flows[c.Index] {
			problems = append(problems, fmt.Sprintf("cut [%d] carries flow %s, not the input flow at that index", c.Index, c.Flow))
		}
		if !c.Before.Allowed || c.After.Allowed {
			problems = append(problems, fmt.Sprintf("cut [%d] Before.Allowed=%v After.Allowed=%v", c.Index, c.Before.Allowed, c.After.Allowed))
		}
	}
	if s := res.Summary; s.Flows != len(flows) || s.Cut != len(res.Cut) || s.Candidates < s.Cut || s.Candidates > s.Flows {
		problems = append(problems, fmt.Sprintf("summary %+v inconsistent with %d flows and %d cuts", s, len(flows), len(res.Cut)))
	}
	return strings.Join(problems, "; ")
}

func reportVerdictMismatch(t testing.TB, seed uint64, policies []*networkingv1.NetworkPolicy, w *evaluator.World, f evaluator.Flow, want refResult, got evaluator.Verdict) {
	t.Helper()
	small := shrink(policies, func(ps []*networkingv1.NetworkPolicy) bool {
		set, err := evaluator.Compile(ps)
		return err == nil && evaluator.NewEvaluation(set, w).Verdict(f).Allowed != refAllowed(ps, w, f)
	})
	set, _ := evaluator.Compile(small)
	got = evaluator.NewEvaluation(set, w).Verdict(f)
	want = refVerdict(small, w, f)
	t.Errorf("seed %d: %s: evaluator allowed=%v, reference allowed=%v\nreason: %s\nreference: %s\nminimal policies (%d of %d):\n%s%s",
		seed, f, got.Allowed, want.allowed, got.Reason(), want, len(small), len(policies), policiesYAML(small), worldText(w, []*evaluator.Endpoint{f.Src, f.Dst}))
}

func reportInconsistency(t testing.TB, seed uint64, policies []*networkingv1.NetworkPolicy, w *evaluator.World, f evaluator.Flow, want refResult, got evaluator.Verdict) {
	t.Helper()
	small := shrink(policies, func(ps []*networkingv1.NetworkPolicy) bool {
		set, err := evaluator.Compile(ps)
		return err == nil && consistency(refVerdict(ps, w, f), evaluator.NewEvaluation(set, w).Verdict(f)) != ""
	})
	set, _ := evaluator.Compile(small)
	got = evaluator.NewEvaluation(set, w).Verdict(f)
	want = refVerdict(small, w, f)
	t.Errorf("seed %d: %s: allowed=%v agrees, explanation does not: %s\nverdict: %+v\nreason: %s\nreference: %s\nminimal policies (%d of %d):\n%s%s",
		seed, f, got.Allowed, consistency(want, got), got, got.Reason(), want, len(small), len(policies), policiesYAML(small), worldText(w, []*evaluator.Endpoint{f.Src, f.Dst}))
}

func (r refResult) String() string {
	side := func(s refSide) string {
		return fmt.Sprintf("{applies:%v isolated:%v isolatedBy:%v allowed:%v allowedBy:%v fromOwnNode:%v}", s.applies, s.isolated, s.isolatedBy, s.allowed, s.allowedBy, s.fromOwnNode)
	}
	return fmt.Sprintf("allowed=%v egress=%s ingress=%s", r.allowed, side(r.egress), side(r.ingress))
}

// shrink removes policies, rules, peers, ports and selector terms while failing still holds,
// so a reported mismatch comes with a small reproducer.
func shrink(policies []*networkingv1.NetworkPolicy, failing func([]*networkingv1.NetworkPolicy) bool) []*networkingv1.NetworkPolicy {
	cur := policies
	for {
		smaller := false
		for _, cand := range shrinkCandidates(cur) {
			if failing(cand) {
				cur, smaller = cand, true
				break
			}
		}
		if !smaller {
			return cur
		}
	}
}

func shrinkCandidates(ps []*networkingv1.NetworkPolicy) [][]*networkingv1.NetworkPolicy {
	var out [][]*networkingv1.NetworkPolicy
	for i := range ps {
		out = append(out, slices.Delete(slices.Clone(ps), i, i+1))
	}
	for i, p := range ps {
		mut := func(f func(q *networkingv1.NetworkPolicy)) {
			q := p.DeepCopy()
			f(q)
			c := slices.Clone(ps)
			c[i] = q
			out = append(out, c)
		}
		for j := range p.Spec.Ingress {
			mut(func(q *networkingv1.NetworkPolicy) { q.Spec.Ingress = slices.Delete(q.Spec.Ingress, j, j+1) })
		}
		for j := range p.Spec.Egress {
			mut(func(q *networkingv1.NetworkPolicy) { q.Spec.Egress = slices.Delete(q.Spec.Egress, j, j+1) })
		}
		for j, r := range p.Spec.Ingress {
			for k := range r.From {
				mut(func(q *networkingv1.NetworkPolicy) {
					q.Spec.Ingress[j].From = slices.Delete(q.Spec.Ingress[j].From, k, k+1)
				})
			}
			for k := range r.Ports {
				mut(func(q *networkingv1.NetworkPolicy) {
					q.Spec.Ingress[j].Ports = slices.Delete(q.Spec.Ingress[j].Ports, k, k+1)
				})
			}
		}
		for j, r := range p.Spec.Egress {
			for k := range r.To {
				mut(func(q *networkingv1.NetworkPolicy) { q.Spec.Egress[j].To = slices.Delete(q.Spec.Egress[j].To, k, k+1) })
			}
			for k := range r.Ports {
				mut(func(q *networkingv1.NetworkPolicy) {
					q.Spec.Egress[j].Ports = slices.Delete(q.Spec.Egress[j].Ports, k, k+1)
				})
			}
		}
		for k := range p.Spec.PodSelector.MatchLabels {
			mut(func(q *networkingv1.NetworkPolicy) { delete(q.Spec.PodSelector.MatchLabels, k) })
		}
		for k := range p.Spec.PodSelector.MatchExpressions {
			mut(func(q *networkingv1.NetworkPolicy) {
				q.Spec.PodSelector.MatchExpressions = slices.Delete(q.Spec.PodSelector.MatchExpressions, k, k+1)
			})
		}
	}
	return out
}

func policiesYAML(policies []*networkingv1.NetworkPolicy) string {
	var b strings.Builder
	for _, p := range policies {
		y, err := yaml.Marshal(p)
		if err != nil {
			fmt.Fprintf(&b, "# %s/%s: %v\n", p.Namespace, p.Name, err)
			continue
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String()
}

// worldText describes the world and, when given, the endpoints of a flow in full.
func worldText(w *evaluator.World, eps []*evaluator.Endpoint) string {
	var b strings.Builder
	for _, ep := range eps {
		fmt.Fprintf(&b, "endpoint %s: %+v\n", ep, *ep)
	}
	fmt.Fprintf(&b, "namespace labels: %v\nnode addresses: %v\n", w.NamespaceLabels, w.NodeAddresses)
	return b.String()
}

func name(p *networkingv1.NetworkPolicy) string {
	if p == nil {
		return "nil"
	}
	return p.Namespace + "/" + p.Name
}

func nonNil(p *networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
	if p == nil {
		return nil
	}
	return []*networkingv1.NetworkPolicy{p}
}

func changeKind(old, nw *networkingv1.NetworkPolicy) string {
	switch {
	case old == nil:
		return "create"
	case nw == nil:
		return "delete"
	default:
		return "update"
	}
}

// --- generator ---

type gen struct {
	r *rand.Rand
	n int // policies generated, for unique names
}

func newGen(seed uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, 0x6e6574706f6c))}
}

type genWorld struct {
	w          *evaluator.World
	namespaces []string
	endpoints  []*evaluator.Endpoint
	ips        []netip.Addr // every known address, unmapped, for ipBlocks
}

var (
	podKeys      = []string{"app", "tier", "env"}
	podValues    = []string{"a", "b", "c"}
	nsKeys       = []string{"team", "env"}
	nsValues     = []string{"x", "y"}
	portNames    = []string{"http", "dns", "metrics"}
	commonPorts  = []int32{53, 80, 443, 8080, 9090}
	nsPool       = []string{"default", "shop", "pay", "kube-system", "monitoring"}
	protocols    = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
	selectorOps  = []metav1.LabelSelectorOperator{metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist}
	ipv4PodBase  = netip.MustParseAddr("10.0.0.0").As4()
	ipv6PodBase  = netip.MustParseAddr("fd00::").As16()
	ipv6ExtBase  = netip.MustParseAddr("2001:db8::").As16()
	ipv4ExtBase  = netip.MustParseAddr("203.0.113.0").As4()
	ipv4NodeBase = netip.MustParseAddr("10.1.0.0").As4()
	ipv6NodeBase = netip.MustParseAddr("fd01::").As16()
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func (g *gen) world() *genWorld {
	r := g.r
	gw := &genWorld{w: &evaluator.World{NamespaceLabels: map[string]map[string]string{}, NodeAddresses: map[string][]netip.Addr{}}}
	nss := slices.Clone(nsPool)
	r.Shuffle(len(nss), func(i, j int) { nss[i], nss[j] = nss[j], nss[i] })
	gw.namespaces = nss[:3+r.IntN(2)]
	for _, ns := range gw.namespaces {
		if g.chance(0.2) {
			continue // a namespace the map lacks: only the implied name label
		}
		l := map[string]string{}
		for _, k := range nsKeys {
			if g.chance(0.6) {
				l[k] = pick(r, nsValues)
			}
		}
		if g.chance(0.5) {
			l[namespaceNameLabel] = ns
		}
		gw.w.NamespaceLabels[ns] = l
	}

	// Nodes and their addresses.
	nodes := make([]string, 2+r.IntN(2))
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node-%d", i)
		var addrs []netip.Addr
		if !g.chance(0.1) {
			a := ipv4NodeBase
			a[3] = byte(i + 1)
			addrs = append(addrs, netip.AddrFrom4(a))
		}
		if g.chance(0.5) {
			a := ipv6NodeBase
			a[15] = byte(i + 1)
			addrs = append(addrs, netip.AddrFrom16(a))
		}
		gw.w.NodeAddresses[nodes[i]] = addrs
	}

	// Pods.
	for i := range 10 + r.IntN(21) {
		ep := &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: pick(r, gw.namespaces), Name: fmt.Sprintf("pod-%d", i), Labels: map[string]string{}}
		for _, k := range podKeys {
			if g.chance(0.6) {
				ep.Labels[k] = pick(r, podValues)
			}
		}
		if !g.chance(0.1) {
			ep.NodeName = pick(r, nodes)
		}
		switch x := r.Float64(); {
		case x < 0.6:
			a := ipv4PodBase
			a[2], a[3] = byte(r.IntN(2)), byte(r.IntN(256))
			ep.IP = netip.AddrFrom4(a)
		case x < 0.8:
			a := ipv6PodBase
			a[13], a[14], a[15] = byte(r.IntN(2)), byte(r.IntN(256)), byte(r.IntN(256))
			ep.IP = netip.AddrFrom16(a)
		case x < 0.85:
			a := ipv4PodBase
			a[2], a[3] = byte(r.IntN(2)), byte(r.IntN(256))
			ep.IP = netip.AddrFrom16(netip.AddrFrom4(a).As16()) // IPv4-mapped IPv6
		}
		for _, n := range portNames {
			if g.chance(0.4) {
				proto := pick(r, protocols)
				if g.chance(0.1) {
					proto = "" // unset: TCP
				}
				ep.Ports = append(ep.Ports, evaluator.ContainerPort{Name: n, Port: pick(r, commonPorts), Protocol: proto})
			}
		}
		if g.chance(0.35) {
			ep = g.workload(ep, nodes)
		}
		gw.endpoints = append(gw.endpoints, ep)
	}
	// Nodes as peers.
	for _, n := range nodes {
		if g.chance(0.2) {
			continue
		}
		ep := &evaluator.Endpoint{Kind: evaluator.Node, Name: n, NodeName: n}
		if addrs := gw.w.NodeAddresses[n]; len(addrs) > 0 {
			ep.IP = pick(r, addrs)
		}
		gw.endpoints = append(gw.endpoints, ep)
	}
	// External addresses, some of them a node's address.
	var nodeAddrs []netip.Addr
	for _, n := range nodes {
		nodeAddrs = append(nodeAddrs, gw.w.NodeAddresses[n]...)
	}
	for range 2 + r.IntN(3) {
		ep := &evaluator.Endpoint{Kind: evaluator.External}
		switch x := r.Float64(); {
		case x < 0.35 && len(nodeAddrs) > 0:
			ep.IP = pick(r, nodeAddrs)
			if ep.IP.Is4() && g.chance(0.2) {
				ep.IP = netip.AddrFrom16(ep.IP.As16()) // the same address, IPv4-mapped
			}
		case x < 0.55:
			a := ipv4ExtBase
			a[3] = byte(r.IntN(256))
			ep.IP = netip.AddrFrom4(a)
		case x < 0.7:
			a := ipv4PodBase // an address in the pod range nobody holds now
			a[2], a[3] = byte(r.IntN(2)), byte(r.IntN(256))
			ep.IP = netip.AddrFrom4(a)
		case x < 0.9:
			a := ipv6ExtBase
			a[15] = byte(r.IntN(256))
			ep.IP = netip.AddrFrom16(a)
		}
		gw.endpoints = append(gw.endpoints, ep)
	}
	for _, ep := range gw.endpoints {
		if ep.IP.IsValid() {
			gw.ips = append(gw.ips, ep.IP.Unmap())
		}
		for _, p := range ep.Pods {
			if p.IP.IsValid() {
				gw.ips = append(gw.ips, p.IP.Unmap())
			}
		}
	}
	gw.ips = append(gw.ips, nodeAddrs...)
	return gw
}

// workload makes pod ep one of two or three pods of a workload, each on a node and with an
// address of its own (or none), sharing its labels and ports.
func (g *gen) workload(ep *evaluator.Endpoint, nodes []string) *evaluator.Endpoint {
	wl := &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: ep.Namespace, Name: "Deployment/" + ep.Name, Labels: ep.Labels, Ports: ep.Ports}
	first := *ep
	first.Name, first.Pod = wl.Name, ep.Name+"-0"
	wl.Pods = append(wl.Pods, &first)
	for i := 1; i < 2+g.r.IntN(2); i++ {
		p := &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: ep.Namespace, Name: wl.Name, Pod: fmt.Sprintf("%s-%d", ep.Name, i), Labels: ep.Labels, Ports: ep.Ports}
		if !g.chance(0.1) {
			p.NodeName = pick(g.r, nodes)
		}
		if !g.chance(0.1) {
			a := ipv4PodBase
			a[2], a[3] = byte(g.r.IntN(2)), byte(g.r.IntN(256))
			p.IP = netip.AddrFrom4(a)
		}
		wl.Pods = append(wl.Pods, p)
	}
	for _, p := range wl.Pods {
		if p.NodeName != "" && !slices.Contains(wl.Nodes, p.NodeName) {
			wl.Nodes = append(wl.Nodes, p.NodeName)
		}
	}
	for _, p := range wl.Pods {
		p.Nodes = wl.Nodes
	}
	return wl
}

func (g *gen) policies(gw *genWorld, n int) []*networkingv1.NetworkPolicy {
	out := make([]*networkingv1.NetworkPolicy, n)
	for i := range out {
		out[i] = g.policy(gw, pick(g.r, gw.namespaces), "")
	}
	return out
}

// policy generates a valid policy; name "" picks a fresh one.
func (g *gen) policy(gw *genWorld, ns, name string) *networkingv1.NetworkPolicy {
	r := g.r
	if name == "" {
		name = fmt.Sprintf("np-%02d", g.n)
		g.n++
	}
	p := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
	}
	p.Spec.PodSelector = g.selector(podKeys, podValues)
	switch r.IntN(7) {
	case 0:
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 1:
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case 2:
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	case 3:
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress, networkingv1.PolicyTypeIngress}
	} // otherwise absent: Ingress, plus Egress iff there are egress rules
	switch x := r.Float64(); {
	case x < 0.15: // nil
	case x < 0.25:
		p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{} // ingress: []
	case x < 0.35:
		p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}} // ingress: [{}]
	default:
		for range 1 + r.IntN(3) {
			p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: g.peers(gw), Ports: g.ports()})
		}
	}
	switch x := r.Float64(); {
	case x < 0.4: // nil
	case x < 0.5:
		p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{}
	case x < 0.6:
		p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
	default:
		for range 1 + r.IntN(3) {
			p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: g.peers(gw), Ports: g.ports()})
		}
	}
	return p
}

func (g *gen) selector(keys, values []string) metav1.LabelSelector {
	return g.selectorWith(keys, func(string) []string { return values })
}

func (g *gen) nsSelector(gw *genWorld) metav1.LabelSelector {
	keys := append(slices.Clone(nsKeys), namespaceNameLabel)
	return g.selectorWith(keys, func(k string) []string {
		if k == namespaceNameLabel {
			return nsPool
		}
		return nsValues
	})
}

func (g *gen) selectorWith(keys []string, values func(string) []string) metav1.LabelSelector {
	r := g.r
	var s metav1.LabelSelector
	if g.chance(0.25) {
		return s // empty: everything
	}
	for range r.IntN(3) {
		k := pick(r, keys)
		if s.MatchLabels == nil {
			s.MatchLabels = map[string]string{}
		}
		s.MatchLabels[k] = pick(r, values(k))
	}
	for range r.IntN(3) {
		k := pick(r, keys)
		req := metav1.LabelSelectorRequirement{Key: k, Operator: pick(r, selectorOps)}
		if req.Operator == metav1.LabelSelectorOpIn || req.Operator == metav1.LabelSelectorOpNotIn {
			vs := values(k)
			for range 1 + r.IntN(2) {
				if v := pick(r, vs); !slices.Contains(req.Values, v) {
					req.Values = append(req.Values, v)
				}
			}
		}
		s.MatchExpressions = append(s.MatchExpressions, req)
	}
	return s
}

func (g *gen) peers(gw *genWorld) []networkingv1.NetworkPolicyPeer {
	r := g.r
	switch x := r.Float64(); {
	case x < 0.15:
		return nil
	case x < 0.2:
		return []networkingv1.NetworkPolicyPeer{}
	}
	var out []networkingv1.NetworkPolicyPeer
	for range 1 + r.IntN(3) {
		var p networkingv1.NetworkPolicyPeer
		switch x := r.Float64(); {
		case x < 0.3:
			s := g.selector(podKeys, podValues)
			p.PodSelector = &s
		case x < 0.55:
			s := g.nsSelector(gw)
			p.NamespaceSelector = &s
		case x < 0.75:
			ps, ns := g.selector(podKeys, podValues), g.nsSelector(gw)
			p.PodSelector, p.NamespaceSelector = &ps, &ns
		default:
			p.IPBlock = g.ipBlock(gw)
		}
		out = append(out, p)
	}
	return out
}

// ipBlock makes a CIDR around one of the world's addresses, with excepts inside it.
func (g *gen) ipBlock(gw *genWorld) *networkingv1.IPBlock {
	r := g.r
	base := netip.MustParseAddr("10.0.0.0")
	if len(gw.ips) > 0 {
		base = pick(r, gw.ips)
	}
	var bits int
	if base.Is4() {
		bits = pick(r, []int{0, 8, 16, 23, 24, 28, 31, 32})
	} else {
		bits = pick(r, []int{0, 32, 64, 104, 112, 120, 127, 128})
	}
	cidr := netip.PrefixFrom(base, bits).Masked()
	b := &networkingv1.IPBlock{CIDR: cidr.String()}
	if cidr.Bits() < base.BitLen() && g.chance(0.5) {
		for range 1 + r.IntN(2) {
			// An except around an address inside the CIDR, when there is one.
			var inside []netip.Addr
			for _, ip := range gw.ips {
				if cidr.Contains(ip) {
					inside = append(inside, ip)
				}
			}
			at := pick(r, inside)
			eb := cidr.Bits() + 1 + r.IntN(base.BitLen()-cidr.Bits())
			b.Except = append(b.Except, netip.PrefixFrom(at, eb).Masked().String())
		}
	}
	return b
}

func (g *gen) ports() []networkingv1.NetworkPolicyPort {
	r := g.r
	switch x := r.Float64(); {
	case x < 0.3:
		return nil
	case x < 0.35:
		return []networkingv1.NetworkPolicyPort{}
	}
	var out []networkingv1.NetworkPolicyPort
	for range 1 + r.IntN(3) {
		var p networkingv1.NetworkPolicyPort
		if !g.chance(0.35) {
			proto := pick(r, protocols)
			p.Protocol = &proto
		}
		switch x := r.Float64(); {
		case x < 0.2: // any port
		case x < 0.7:
			n := pick(r, commonPorts)
			if g.chance(0.2) {
				n = int32(1 + r.IntN(65535))
			}
			v := intstr.FromInt32(n)
			p.Port = &v
			if g.chance(0.3) {
				end := min(n+int32(r.IntN(2000)), 65535)
				p.EndPort = &end
			}
		default:
			v := intstr.FromString(pick(r, append(slices.Clone(portNames), "nope")))
			p.Port = &v
		}
		out = append(out, p)
	}
	return out
}

// probes is every ordered pair of endpoints on two random ports and protocols, drawn from
// the ports the policies and pods name and their neighbours.
func (g *gen) probes(gw *genWorld, policies []*networkingv1.NetworkPolicy) []evaluator.Flow {
	r := g.r
	ports := slices.Clone(commonPorts)
	ports = append(ports, 1, 65535)
	addPort := func(n int32) {
		for _, m := range []int32{n - 1, n, n + 1} {
			if m >= 1 && m <= 65535 {
				ports = append(ports, m)
			}
		}
	}
	for _, p := range policies {
		var all []networkingv1.NetworkPolicyPort
		for _, rule := range p.Spec.Ingress {
			all = append(all, rule.Ports...)
		}
		for _, rule := range p.Spec.Egress {
			all = append(all, rule.Ports...)
		}
		for _, pp := range all {
			if pp.Port != nil && pp.Port.Type == intstr.Int {
				addPort(pp.Port.IntVal)
			}
			if pp.EndPort != nil {
				addPort(*pp.EndPort)
			}
		}
	}
	for _, ep := range gw.endpoints {
		for _, cp := range ep.Ports {
			ports = append(ports, cp.Port)
		}
	}
	protos := []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolTCP, "", corev1.ProtocolUDP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
	var flows []evaluator.Flow
	for _, src := range gw.endpoints {
		for _, dst := range gw.endpoints {
			for range 2 {
				f := evaluator.Flow{Src: src, Dst: dst, Port: pick(r, ports), Protocol: pick(r, protos)}
				// Bias towards the destination's named ports, so named-port rules get hits.
				if len(dst.Ports) > 0 && g.chance(0.3) {
					cp := pick(r, dst.Ports)
					f.Port, f.Protocol = cp.Port, cp.Protocol
				}
				flows = append(flows, f)
			}
		}
	}
	r.Shuffle(len(flows), func(i, j int) { flows[i], flows[j] = flows[j], flows[i] })
	return flows
}

// change picks a random create, update or delete of before and returns the With arguments
// and the resulting policy list.
func (g *gen) change(gw *genWorld, before []*networkingv1.NetworkPolicy) (old, nw *networkingv1.NetworkPolicy, after []*networkingv1.NetworkPolicy) {
	r := g.r
	switch x := r.IntN(3); {
	case x == 0 || len(before) == 0: // create
		nw = g.policy(gw, pick(r, gw.namespaces), "")
		return nil, nw, append(slices.Clone(before), nw)
	case x == 1: // delete
		i := r.IntN(len(before))
		return before[i], nil, slices.Delete(slices.Clone(before), i, i+1)
	default: // update: same name, new spec
		i := r.IntN(len(before))
		old = before[i]
		nw = g.policy(gw, old.Namespace, old.Name)
		after = slices.Clone(before)
		after[i] = nw
		return old, nw, after
	}
}
