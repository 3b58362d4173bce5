package evaluator_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// The benchmarks model one admission decision in a busy cluster: 1,000 workload identities
// (500 in the namespace "shop", the rest spread over six others), 50 policies in "shop" that
// select apps and tiers and allow callers by pod and namespace selector and port, and 100,000
// observed flows among them. The changes are the ones people make: a default-deny for the
// namespace, a narrowed allow policy, and an egress lockdown for one tier.

const (
	benchFlows       = 100_000
	benchApps        = 50 // apps in shop, 10 workloads each
	benchAppsAllowed = 35 // apps with an allow policy; the rest are open
)

var benchTiers = []string{"web", "api", "db", "cache", "worker"}

type benchInput struct {
	w        *evaluator.World
	policies []*networkingv1.NetworkPolicy
	set      *evaluator.PolicySet
	flows    []evaluator.Flow
	changes  []benchChange
}

type benchChange struct {
	name     string
	old, new *networkingv1.NetworkPolicy
	after    []*networkingv1.NetworkPolicy
}

var benchSetup = sync.OnceValues(func() (*benchInput, error) {
	r := rand.New(rand.NewPCG(42, 42))
	in := &benchInput{w: &evaluator.World{NamespaceLabels: map[string]map[string]string{}, NodeAddresses: map[string][]netip.Addr{}}}

	others := map[string]int{"pay": 150, "auth": 100, "batch": 100, "monitoring": 50, "ingress-nginx": 50, "kube-system": 50}
	for ns := range others {
		in.w.NamespaceLabels[ns] = map[string]string{"team": ns, "env": "prod"}
	}
	in.w.NamespaceLabels["shop"] = map[string]string{"team": "shop", "env": "prod"}
	in.w.NamespaceLabels["kube-system"]["tier"] = "platform"
	in.w.NamespaceLabels["monitoring"]["tier"] = "platform"

	var nodes []*evaluator.Endpoint
	for i := range 20 {
		n := fmt.Sprintf("node-%02d", i)
		ip := netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)})
		in.w.NodeAddresses[n] = []netip.Addr{ip}
		nodes = append(nodes, &evaluator.Endpoint{Kind: evaluator.Node, Name: n, NodeName: n, IP: ip})
	}
	httpPorts := []evaluator.ContainerPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP}}
	var shop, all []*evaluator.Endpoint
	ipN := 0
	pod := func(ns, app, tier string, i int, ports []evaluator.ContainerPort) *evaluator.Endpoint {
		ipN++
		return &evaluator.Endpoint{
			Kind: evaluator.Pod, Namespace: ns, Name: fmt.Sprintf("Deployment/%s-%d", app, i),
			Labels:   map[string]string{"app": app, "tier": tier, "version": fmt.Sprintf("v%d", i%3)},
			NodeName: nodes[r.IntN(len(nodes))].NodeName,
			IP:       netip.AddrFrom4([4]byte{10, 2, byte(ipN >> 8), byte(ipN)}),
			Ports:    ports,
		}
	}
	for a := range benchApps {
		app, tier := fmt.Sprintf("app-%02d", a), benchTiers[a%len(benchTiers)]
		ports := httpPorts
		switch tier {
		case "db":
			ports = []evaluator.ContainerPort{{Name: "postgres", Port: 5432, Protocol: corev1.ProtocolTCP}, httpPorts[1]}
		case "cache":
			ports = []evaluator.ContainerPort{{Name: "redis", Port: 6379, Protocol: corev1.ProtocolTCP}, httpPorts[1]}
		}
		for i := range 10 {
			shop = append(shop, pod("shop", app, tier, i, ports))
		}
	}
	all = append(all, shop...)
	for _, ns := range slices.Sorted(maps.Keys(others)) {
		for i := range others[ns] {
			app, tier := fmt.Sprintf("%s-%02d", ns, i/5), benchTiers[i%len(benchTiers)]
			ports := httpPorts
			switch ns {
			case "kube-system":
				app = "kube-dns"
				ports = []evaluator.ContainerPort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, {Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP}}
			case "monitoring":
				app = "prometheus"
			case "ingress-nginx":
				app = "ingress-nginx"
			}
			all = append(all, pod(ns, app, tier, i, ports))
		}
	}
	var externals []*evaluator.Endpoint
	for i := range 20 {
		externals = append(externals, &evaluator.Endpoint{Kind: evaluator.External, IP: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})})
	}

	in.policies = benchPolicies()
	var err error
	if in.set, err = evaluator.Compile(in.policies); err != nil {
		return nil, err
	}

	// Flows: mostly into shop, from shop, the other namespaces, nodes (probes) and outside.
	ports := []int32{80, 443, 8080, 9090, 5432, 6379, 53}
	for range benchFlows {
		var f evaluator.Flow
		switch x := r.Float64(); {
		case x < 0.45:
			f.Src = shop[r.IntN(len(shop))]
		case x < 0.85:
			f.Src = all[r.IntN(len(all))]
		case x < 0.93:
			f.Src = nodes[r.IntN(len(nodes))]
		default:
			f.Src = externals[r.IntN(len(externals))]
		}
		switch x := r.Float64(); {
		case x < 0.7:
			f.Dst = shop[r.IntN(len(shop))]
		case x < 0.95:
			f.Dst = all[r.IntN(len(all))]
		default:
			f.Dst = externals[r.IntN(len(externals))]
		}
		if len(f.Dst.Ports) > 0 && r.IntN(10) < 8 {
			cp := f.Dst.Ports[r.IntN(len(f.Dst.Ports))]
			f.Port, f.Protocol = cp.Port, cp.Protocol
		} else {
			f.Port, f.Protocol = ports[r.IntN(len(ports))], corev1.ProtocolTCP
		}
		in.flows = append(in.flows, f)
	}

	// The changes.
	deny := benchPolicy("default-deny-ingress", metav1.LabelSelector{})
	deny.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	in.changes = append(in.changes, benchChange{name: "create-default-deny", new: deny, after: append(slices.Clone(in.policies), deny)})

	i := slices.IndexFunc(in.policies, func(p *networkingv1.NetworkPolicy) bool { return p.Name == "allow-app-03" })
	narrowed := in.policies[i].DeepCopy()
	narrowed.Spec.Ingress = narrowed.Spec.Ingress[:1] // drop the monitoring rule
	narrowed.Spec.Ingress[0].From = narrowed.Spec.Ingress[0].From[:1]
	after := slices.Clone(in.policies)
	after[i] = narrowed
	in.changes = append(in.changes, benchChange{name: "update-narrow", old: in.policies[i], new: narrowed, after: after})

	lock := benchPolicy("lockdown-workers", metav1.LabelSelector{MatchLabels: map[string]string{"tier": "worker"}})
	lock.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	lock.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{dnsEgress()}
	in.changes = append(in.changes, benchChange{name: "create-egress-lockdown", new: lock, after: append(slices.Clone(in.policies), lock)})
	return in, nil
})

func benchPolicy(name string, sel metav1.LabelSelector) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: sel},
	}
}

func portOf(name string, proto corev1.Protocol) networkingv1.NetworkPolicyPort {
	p := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Port: &p, Protocol: &proto}
}

func numPort(n int32, proto corev1.Protocol) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(n)
	return networkingv1.NetworkPolicyPort{Port: &p, Protocol: &proto}
}

func nsName(ns string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{namespaceNameLabel: ns}}
}

func dnsEgress() networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{
		To:    []networkingv1.NetworkPolicyPeer{{NamespaceSelector: nsName("kube-system"), PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "kube-dns"}}}},
		Ports: []networkingv1.NetworkPolicyPort{numPort(53, corev1.ProtocolUDP), numPort(53, corev1.ProtocolTCP)},
	}
}

// benchPolicies are the 50 policies of shop: an allow policy per app for 35 apps (callers
// by tier, the ingress controller for web, prometheus for metrics), egress policies for ten
// apps, and five namespace-wide ones.
func benchPolicies() []*networkingv1.NetworkPolicy {
	callers := map[string][]string{"web": nil, "api": {"web", "worker"}, "db": {"api", "worker"}, "cache": {"api", "web"}, "worker": {"api"}}
	var out []*networkingv1.NetworkPolicy
	for a := range benchAppsAllowed {
		app, tier := fmt.Sprintf("app-%02d", a), benchTiers[a%len(benchTiers)]
		p := benchPolicy("allow-"+app, metav1.LabelSelector{MatchLabels: map[string]string{"app": app}})
		var from []networkingv1.NetworkPolicyPeer
		if tier == "web" {
			from = append(from, networkingv1.NetworkPolicyPeer{NamespaceSelector: nsName("ingress-nginx")})
		} else {
			from = append(from, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: callers[tier]}}}})
		}
		from = append(from, networkingv1.NetworkPolicyPeer{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "pay"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "api"}},
		})
		port := portOf("http", corev1.ProtocolTCP)
		switch tier {
		case "db":
			port = numPort(5432, corev1.ProtocolTCP)
		case "cache":
			port = portOf("redis", corev1.ProtocolTCP)
		}
		p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{
			{From: from, Ports: []networkingv1.NetworkPolicyPort{port}},
			{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: nsName("monitoring"), PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "prometheus"}}}},
				Ports: []networkingv1.NetworkPolicyPort{portOf("metrics", corev1.ProtocolTCP)}},
		}
		out = append(out, p)
	}
	for a := range 10 {
		app := fmt.Sprintf("app-%02d", a*3)
		p := benchPolicy("egress-"+app, metav1.LabelSelector{MatchLabels: map[string]string{"app": app}})
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{
			dnsEgress(),
			{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"db", "cache", "api"}}}}}}},
			{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8"}}}},
				Ports: []networkingv1.NetworkPolicyPort{numPort(443, corev1.ProtocolTCP)}},
		}
		out = append(out, p)
	}
	workers := benchPolicy("workers-from-shop", metav1.LabelSelector{MatchLabels: map[string]string{"tier": "worker", "version": "v0"}})
	workers.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}}
	platform := benchPolicy("allow-platform", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"api", "db"}}}})
	platform.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "platform"}}}},
		Ports: []networkingv1.NetworkPolicyPort{portOf("metrics", corev1.ProtocolTCP)},
	}}
	canary := benchPolicy("canary-ranges", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "version", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"v0"}},
		{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"app-05", "app-06", "app-07"}}}})
	end := int32(8100)
	p8080 := intstr.FromInt32(8080)
	canary.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "auth"}}}},
		Ports: []networkingv1.NetworkPolicyPort{{Port: &p8080, EndPort: &end}},
	}}
	batch := benchPolicy("batch-egress", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"app-04", "app-09"}}}})
	batch.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}}}
	batch.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	nodes := benchPolicy("from-nodes", metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}})
	nodes.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.0/16"}}}}}
	return append(out, workers, platform, canary, batch, nodes)
}

func benchInputs(b *testing.B) *benchInput {
	b.Helper()
	in, err := benchSetup()
	if err != nil {
		b.Fatal(err)
	}
	if len(in.policies) != 50 {
		b.Fatalf("%d policies, want 50", len(in.policies))
	}
	return in
}

// BenchmarkVerdict measures single verdicts: "memoised" reuses one Evaluation, as a
// webhook does across one admission; "fresh" builds a new Evaluation for every 100k flows.
func BenchmarkVerdict(b *testing.B) {
	in := benchInputs(b)
	b.Run("memoised", func(b *testing.B) {
		ev := evaluator.NewEvaluation(in.set, in.w)
		i, allowed := 0, 0
		for b.Loop() {
			if ev.Verdict(in.flows[i]).Allowed {
				allowed++
			}
			if i++; i == len(in.flows) {
				i = 0
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verdicts/s")
		b.ReportMetric(float64(allowed)/float64(b.N), "allowed/op")
	})
	b.Run("fresh", func(b *testing.B) {
		n := 0
		for b.Loop() {
			ev := evaluator.NewEvaluation(in.set, in.w)
			for _, f := range in.flows {
				ev.Verdict(f)
			}
			n += len(in.flows)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "verdicts/s")
	})
}

// BenchmarkVerdictReference is the naive reference on the same flows, for scale.
func BenchmarkVerdictReference(b *testing.B) {
	in := benchInputs(b)
	i := 0
	for b.Loop() {
		refAllowed(in.policies, in.w, in.flows[i])
		if i++; i == len(in.flows) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verdicts/s")
}

// BenchmarkDiff is one admission decision: apply the change to the compiled set and replay
// 100k flows through before and after.
func BenchmarkDiff(b *testing.B) {
	in := benchInputs(b)
	for _, c := range in.changes {
		b.Run(c.name, func(b *testing.B) {
			var res evaluator.DiffResult
			for b.Loop() {
				after, err := in.set.With(c.old, c.new)
				if err != nil {
					b.Fatal(err)
				}
				res = evaluator.Diff(in.set, after, in.w, in.flows)
			}
			b.ReportMetric(float64(res.Summary.Candidates), "candidates")
			b.ReportMetric(float64(len(res.Cut)), "cut")
			b.ReportMetric(float64(b.N*len(in.flows))/b.Elapsed().Seconds(), "flows/s")
		})
	}
}

// BenchmarkDiffReference runs the naive reference on the same inputs as BenchmarkDiff.
func BenchmarkDiffReference(b *testing.B) {
	in := benchInputs(b)
	for _, c := range in.changes {
		b.Run(c.name, func(b *testing.B) {
			var cut []int
			for b.Loop() {
				cut = refDiff(in.policies, c.after, in.w, in.flows)
			}
			b.ReportMetric(float64(len(cut)), "cut")
			b.ReportMetric(float64(b.N*len(in.flows))/b.Elapsed().Seconds(), "flows/s")
		})
	}
}

// TestParallelDiffAgreesWithSerial: a diff shared between workers finds exactly the cuts,
// in the same order, that one evaluation finds.
func TestParallelDiffAgreesWithSerial(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the 100k-flow benchmark input")
	}
	in, err := benchSetup()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range in.changes {
		after, err := in.set.With(c.old, c.new)
		if err != nil {
			t.Fatal(err)
		}
		serial := evaluator.DiffWith(in.set, after, in.w, in.flows, evaluator.DiffOptions{Workers: 1})
		parallel := evaluator.DiffWith(in.set, after, in.w, in.flows, evaluator.DiffOptions{Workers: 4, Explain: true})
		if !slices.Equal(serial.CutIndexes, parallel.CutIndexes) || serial.Summary != parallel.Summary {
			t.Errorf("%s: serial %+v (%d cut), parallel %+v (%d cut)", c.name, serial.Summary, len(serial.CutIndexes), parallel.Summary, len(parallel.CutIndexes))
		}
		for i, cut := range parallel.Cut {
			if cut.Index != parallel.CutIndexes[i] || !cut.Before.Allowed || cut.After.Allowed {
				t.Fatalf("%s: cut %d explained as %+v", c.name, i, cut)
			}
		}
		if len(serial.CutIndexes) == 0 {
			t.Errorf("%s cuts nothing: the comparison proves little", c.name)
		}
	}
}
