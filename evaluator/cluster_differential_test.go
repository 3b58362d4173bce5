package evaluator_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// The differential test of the tiers: the random NetworkPolicy world of a seed (the same
// one runWorld checks) with cluster policies mixed in — both tiers, Pass, networks over pod
// addresses, nodes peers over labelled nodes, named ports, port ranges, domainNames — held to
// refTiered flow by flow, and through chained changes of both kinds of policy to
// refTieredDiff. Priorities within a tier are distinct: the API leaves ties to the
// implementation.

type tierStats struct {
	probes, allowed, denied, uncertain, changes, cut, uncertainDiff int
	// byNodes counts the probes whose egress a rule decided through its nodes peer.
	byNodes int
}

// decidedByNodes reports whether the rule that decided the flow's egress matched its
// destination through a nodes peer.
func decidedByNodes(cnps []*evaluator.ClusterPolicy, w *evaluator.World, f evaluator.Flow, v evaluator.Verdict) bool {
	r := v.Egress.DecidedBy
	if r == nil {
		return false
	}
	for _, p := range cnps {
		if p.Ref() != r.Policy || r.Index >= len(p.Spec.Egress) {
			continue
		}
		return slices.ContainsFunc(p.Spec.Egress[r.Index].To, func(to v1beta1.ClusterNetworkPolicyEgressPeer) bool {
			return to.Nodes != nil && refClusterPeerMatches(to, f.Dst, w)
		})
	}
	return false
}

func runTieredWorld(t testing.TB, seed uint64) tierStats {
	t.Helper()
	g := newGen(seed)
	gw := g.world()
	policies := g.policies(gw, 2+g.r.IntN(11))
	probes := g.probes(gw, policies)
	// A stream of its own, so the NetworkPolicy world stays the one runWorld checks.
	cg := &clusterGen{r: rand.New(rand.NewPCG(seed, 0x636e70)), gw: gw, prios: map[v1beta1.Tier][]int32{}}
	cg.nodeLabels()
	cnps := cg.policies(1 + cg.r.IntN(4))
	probes = cg.withPortProbes(probes, cnps)

	var st tierStats
	ps, err := evaluator.CompileAll(policies, cnps)
	if err != nil {
		t.Errorf("seed %d: CompileAll of valid policies: %v\n%s", seed, err, policiesYAML(policies))
		return st
	}
	ev := evaluator.NewEvaluation(ps, gw.w)
	for _, f := range probes {
		want := refTiered(policies, cnps, gw.w, f)
		v := ev.Verdict(f)
		st.probes++
		if decidedByNodes(cnps, gw.w, f, v) {
			st.byNodes++
		}
		switch want {
		case refAllow:
			st.allowed++
		case refDeny:
			st.denied++
		default:
			st.uncertain++
		}
		if v.Word() != want || ev.Allowed(f) != (want == refAllow) {
			t.Errorf("seed %d: %s: evaluator %s (%s), reference %s\ncluster policies:\n%s\npolicies:\n%s%snode labels: %v\n", seed, f, v.Word(), v.Reason(), want,
				clusterYAML(cnps), policiesYAML(policies), worldText(gw.w, []*evaluator.Endpoint{f.Src, f.Dst}), gw.w.NodeLabels)
			return st
		}
	}

	flows := probes
	if len(flows) > maxDiffFlows {
		flows = flows[:maxDiffFlows]
	}
	bnp, bcnp, bset := policies, cnps, ps
	memo, splitMemo := evaluator.NewMemo(), evaluator.NewMemo()
	for range 3 {
		anp, acnp := bnp, bcnp
		var aset *evaluator.PolicySet
		var what string
		if cg.r.IntN(3) == 0 {
			old, nw, after := g.change(gw, bnp)
			anp, what = after, fmt.Sprintf("networkpolicy %s → %s", name(old), name(nw))
			aset, err = bset.With(old, nw)
		} else {
			var old, nw *evaluator.ClusterPolicy
			old, nw, acnp = cg.change(bcnp)
			what = fmt.Sprintf("cluster policy %v → %v", refOf(old), refOf(nw))
			aset, err = bset.WithCluster(old, nw)
		}
		if err != nil {
			t.Errorf("seed %d: %s: %v", seed, what, err)
			return st
		}
		st.changes++
		wantCut, wantUnc := refTieredDiff(bnp, bcnp, anp, acnp, gw.w, flows)
		st.cut += len(wantCut)
		st.uncertainDiff += len(wantUnc)
		for _, res := range []evaluator.DiffResult{
			evaluator.Diff(bset, aset, gw.w, flows),
			evaluator.DiffWith(bset, aset, gw.w, flows, evaluator.DiffOptions{Memo: memo}),
			evaluator.DiffWith(bset, aset, gw.w, flows, evaluator.DiffOptions{Memo: splitMemo, Workers: 3, MinFlowsPerWorker: 1}),
		} {
			if !slices.Equal(res.CutIndexes, wantCut) || !slices.Equal(res.Uncertain, wantUnc) {
				t.Errorf("seed %d: Diff after %s: cut %v uncertain %v, reference cut %v uncertain %v\nbefore:\n%s\nafter:\n%s\npolicies before:\n%s", seed, what,
					res.CutIndexes, res.Uncertain, wantCut, wantUnc, clusterYAML(bcnp), clusterYAML(acnp), policiesYAML(bnp))
				return st
			}
			for _, c := range res.Cut {
				if !c.Before.Allowed || c.After.Allowed || c.After.Uncertain {
					t.Errorf("seed %d: cut [%d] explained as %s → %s", seed, c.Index, c.Before.Word(), c.After.Word())
				}
			}
		}
		bnp, bcnp, bset = anp, acnp, aset
	}
	return st
}

func TestTieredDifferential(t *testing.T) {
	seed := envUint(t, "NETPOL_DIFF_SEED", 1)
	worlds := 300
	if testing.Short() {
		worlds = 40
	}
	worlds = int(envUint(t, "NETPOL_DIFF_WORLDS", uint64(worlds)))
	var total tierStats
	for i := range worlds {
		st := runTieredWorld(t, seed+uint64(i))
		total.probes += st.probes
		total.allowed += st.allowed
		total.denied += st.denied
		total.uncertain += st.uncertain
		total.changes += st.changes
		total.cut += st.cut
		total.uncertainDiff += st.uncertainDiff
		total.byNodes += st.byNodes
		if t.Failed() {
			return
		}
	}
	t.Logf("%d worlds: %+v", worlds, total)
	if worlds >= 20 {
		for name, n := range map[string]int{"allowed": total.allowed, "denied": total.denied, "uncertain": total.uncertain, "cut": total.cut, "uncertain in a diff": total.uncertainDiff, "decided by a nodes peer": total.byNodes} {
			if n == 0 {
				t.Errorf("no probe exercised %s: the generator has gone blind", name)
			}
		}
	}
}

func refOf(p *evaluator.ClusterPolicy) string {
	if p == nil {
		return "nil"
	}
	return p.Ref().String()
}

func clusterYAML(list []*evaluator.ClusterPolicy) string {
	var out string
	for _, p := range list {
		out += fmt.Sprintf("--- %s: %s\n", p.Ref(), specYAML(p.Spec))
	}
	return out
}

type clusterGen struct {
	r     *rand.Rand
	gw    *genWorld
	n     int
	prios map[v1beta1.Tier][]int32
}

var (
	nodeRoles = []string{"control-plane", "worker", "edge"}
	nodeOSes  = []string{"linux", "windows"}
)

// nodeLabels labels the world's nodes, as the kubelet does (hostname, os) and as an admin
// might (role, on most). Nodes are labelled in name order so a seed gives one world.
func (g *clusterGen) nodeLabels() {
	g.gw.w.NodeLabels = map[string]map[string]string{}
	for _, n := range slices.Sorted(maps.Keys(g.gw.w.NodeAddresses)) {
		l := map[string]string{"kubernetes.io/hostname": n, "kubernetes.io/os": "linux"}
		if g.chance(0.2) {
			l["kubernetes.io/os"] = "windows"
		}
		if g.chance(0.8) {
			l["role"] = pick(g.r, nodeRoles)
		}
		g.gw.w.NodeLabels[n] = l
	}
}

// nodeSelector is a nodes peer's selector: every node, a role, or any selector over the
// nodes' labels (matchExpressions included, so DoesNotExist meets the nodes with no role).
func (g *clusterGen) nodeSelector() *metav1.LabelSelector {
	switch x := g.r.Float64(); {
	case x < 0.2:
		return &metav1.LabelSelector{}
	case x < 0.55:
		return &metav1.LabelSelector{MatchLabels: map[string]string{"role": pick(g.r, nodeRoles)}}
	}
	names := slices.Sorted(maps.Keys(g.gw.w.NodeAddresses))
	gg := &gen{r: g.r}
	s := gg.selectorWith([]string{"role", "kubernetes.io/os", "kubernetes.io/hostname"}, func(k string) []string {
		switch k {
		case "role":
			return nodeRoles
		case "kubernetes.io/os":
			return nodeOSes
		}
		return names
	})
	return &s
}

// withPortProbes adds to probes flows at the edges of the cluster policies' ports (a
// number, a range's first and last port and those just outside it), which the
// NetworkPolicy world's probes meet only by chance, between random ends, nodes included;
// then mixes them in, so Diff's share of the flows holds some.
func (g *clusterGen) withPortProbes(probes []evaluator.Flow, cnps []*evaluator.ClusterPolicy) []evaluator.Flow {
	eps := g.gw.endpoints
	add := func(proto corev1.Protocol, port *v1beta1.Port) {
		if port == nil {
			return
		}
		ports := []int32{port.Number}
		if port.Range != nil {
			ports = []int32{port.Range.Start - 1, port.Range.Start, port.Range.End, port.Range.End + 1}
		}
		for _, n := range ports {
			for range 3 {
				probes = append(probes, evaluator.Flow{Src: pick(g.r, eps), Dst: pick(g.r, eps), Port: n, Protocol: proto})
			}
		}
	}
	for _, p := range cnps {
		var protos []v1beta1.ClusterNetworkPolicyProtocol
		for _, r := range p.Spec.Ingress {
			protos = append(protos, r.Protocols...)
		}
		for _, r := range p.Spec.Egress {
			protos = append(protos, r.Protocols...)
		}
		for _, pr := range protos {
			switch {
			case pr.TCP != nil:
				add(corev1.ProtocolTCP, pr.TCP.DestinationPort)
			case pr.UDP != nil:
				add(corev1.ProtocolUDP, pr.UDP.DestinationPort)
			case pr.SCTP != nil:
				add(corev1.ProtocolSCTP, pr.SCTP.DestinationPort)
			}
		}
	}
	g.r.Shuffle(len(probes), func(i, j int) { probes[i], probes[j] = probes[j], probes[i] })
	return probes
}

func (g *clusterGen) chance(p float64) bool { return g.r.Float64() < p }

// priority picks one no policy of the tier has yet.
func (g *clusterGen) priority(tier v1beta1.Tier) int32 {
	for {
		p := int32(g.r.IntN(1001))
		if !slices.Contains(g.prios[tier], p) {
			g.prios[tier] = append(g.prios[tier], p)
			return p
		}
	}
}

func (g *clusterGen) policies(n int) []*evaluator.ClusterPolicy {
	var out []*evaluator.ClusterPolicy
	for range n {
		out = append(out, g.policy(""))
	}
	return out
}

func (g *clusterGen) policy(name string) *evaluator.ClusterPolicy {
	if name == "" {
		name = fmt.Sprintf("cnp-%02d", g.n)
		g.n++
	}
	p := &evaluator.ClusterPolicy{Kind: evaluator.ClusterNetworkPolicyKind, Name: name}
	p.Spec.Tier = v1beta1.AdminTier
	if g.chance(0.4) {
		p.Spec.Tier = v1beta1.BaselineTier
	}
	p.Spec.Priority = g.priority(p.Spec.Tier)
	if g.chance(0.5) {
		s := g.nsSelector()
		p.Spec.Subject.Namespaces = &s
	} else {
		p.Spec.Subject.Pods = &v1beta1.NamespacedPod{NamespaceSelector: g.nsSelector(), PodSelector: g.podSelector()}
	}
	for range g.r.IntN(4) {
		r := v1beta1.ClusterNetworkPolicyIngressRule{Action: g.action()}
		for range 1 + g.r.IntN(2) {
			var peer v1beta1.ClusterNetworkPolicyIngressPeer
			if g.chance(0.5) {
				s := g.nsSelector()
				peer.Namespaces = &s
			} else {
				peer.Pods = &v1beta1.NamespacedPod{NamespaceSelector: g.nsSelector(), PodSelector: g.podSelector()}
			}
			r.From = append(r.From, peer)
		}
		r.Protocols = g.protocols(true)
		p.Spec.Ingress = append(p.Spec.Ingress, r)
	}
	for range g.r.IntN(4) {
		r := v1beta1.ClusterNetworkPolicyEgressRule{Action: g.action()}
		named := true
		for range 1 + g.r.IntN(2) {
			peer := g.egressPeer(r.Action == v1beta1.ClusterNetworkPolicyRuleActionAccept)
			named = named && peer.Networks == nil && peer.Nodes == nil && peer.DomainNames == nil
			r.To = append(r.To, peer)
		}
		r.Protocols = g.protocols(named)
		p.Spec.Egress = append(p.Spec.Egress, r)
	}
	return p
}

func (g *clusterGen) action() v1beta1.ClusterNetworkPolicyRuleAction {
	return pick(g.r, []v1beta1.ClusterNetworkPolicyRuleAction{accept, accept, deny, deny, pass})
}

func (g *clusterGen) nsSelector() metav1.LabelSelector {
	gg := &gen{r: g.r}
	return gg.nsSelector(g.gw)
}

func (g *clusterGen) podSelector() metav1.LabelSelector {
	gg := &gen{r: g.r}
	return gg.selector(podKeys, podValues)
}

func (g *clusterGen) egressPeer(domains bool) v1beta1.ClusterNetworkPolicyEgressPeer {
	var p v1beta1.ClusterNetworkPolicyEgressPeer
	if domains && g.chance(0.3) {
		p.DomainNames = []v1beta1.DomainName{pick(g.r, []v1beta1.DomainName{"example.com", "*.example.org"})}
		return p
	}
	switch x := g.r.Float64(); {
	case x < 0.25:
		s := g.nsSelector()
		p.Namespaces = &s
	case x < 0.5:
		p.Pods = &v1beta1.NamespacedPod{NamespaceSelector: g.nsSelector(), PodSelector: g.podSelector()}
	case x < 0.65:
		p.Nodes = g.nodeSelector()
	default:
		for range 1 + g.r.IntN(2) {
			gg := &gen{r: g.r}
			b := gg.ipBlock(g.gw)
			c := v1beta1.CIDR(b.CIDR)
			if !slices.Contains(p.Networks, c) {
				p.Networks = append(p.Networks, c)
			}
		}
	}
	return p
}

func (g *clusterGen) protocols(named bool) []v1beta1.ClusterNetworkPolicyProtocol {
	if g.chance(0.4) {
		return nil
	}
	var out []v1beta1.ClusterNetworkPolicyProtocol
	for range 1 + g.r.IntN(2) {
		n := pick(g.r, commonPorts)
		port := &v1beta1.Port{Number: n}
		if g.chance(0.25) {
			port = &v1beta1.Port{Range: &v1beta1.PortRange{Start: n, End: n + int32(1+g.r.IntN(100))}}
		}
		switch x := g.r.Float64(); {
		case x < 0.2 && named:
			out = append(out, v1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: pick(g.r, portNames)})
		case x < 0.6:
			out = append(out, v1beta1.ClusterNetworkPolicyProtocol{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}})
		case x < 0.85:
			out = append(out, v1beta1.ClusterNetworkPolicyProtocol{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}})
		default:
			out = append(out, v1beta1.ClusterNetworkPolicyProtocol{SCTP: &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}})
		}
	}
	return out
}

// change picks a create, update or delete of a cluster policy.
func (g *clusterGen) change(before []*evaluator.ClusterPolicy) (old, nw *evaluator.ClusterPolicy, after []*evaluator.ClusterPolicy) {
	switch x := g.r.IntN(3); {
	case x == 0 || len(before) == 0:
		nw = g.policy("")
		return nil, nw, append(slices.Clone(before), nw)
	case x == 1:
		i := g.r.IntN(len(before))
		g.release(before[i])
		return before[i], nil, slices.Delete(slices.Clone(before), i, i+1)
	default:
		i := g.r.IntN(len(before))
		old = before[i]
		g.release(old)
		nw = g.policy(old.Name)
		after = slices.Clone(before)
		after[i] = nw
		return old, nw, after
	}
}

func (g *clusterGen) release(p *evaluator.ClusterPolicy) {
	g.prios[p.Spec.Tier] = slices.DeleteFunc(g.prios[p.Spec.Tier], func(x int32) bool { return x == p.Spec.Priority })
}

func specYAML(spec v1beta1.ClusterNetworkPolicySpec) string {
	b, err := yaml.Marshal(spec)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
