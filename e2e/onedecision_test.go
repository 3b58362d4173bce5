package e2e

// One decision: the webhook on a real API server and `netpol-guard check` on the same
// objects and flows must report the same cut flows for every change. Random worlds: pods of
// several workloads on several nodes (so kubelet probes come from a node that runs some of a
// workload's pods and not others), ipBlocks over pod and node ranges (so one workload's pods
// can disagree), several pods per workload, peers named by pod, workload and address.

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/flows"
)

// oneDecisionNamespaces are the random worlds' namespaces: no other test's webhook judges them.
var oneDecisionNamespaces = []string{"od-a", "od-b", "od-c"}

// odWorld is a random cluster, the flows it carried, and changes to judge.
type odWorld struct {
	objects *cluster.Objects
	records []flows.Record
	// edges are the records' cache identities as the webhook's messages name them
	// ("od-a/w1 → node/od-node-0 TCP/8080"), by record.
	edges   []string
	changes []odChange
}

type odChange struct {
	old, new *networkingv1.NetworkPolicy // nil old: create; nil new: delete
}

func (c odChange) String() string {
	switch {
	case c.old == nil:
		return "create " + c.new.Namespace + "/" + c.new.Name
	case c.new == nil:
		return "delete " + c.old.Namespace + "/" + c.old.Name
	}
	return "update " + c.new.Namespace + "/" + c.new.Name
}

type odGen struct {
	r     *rand.Rand
	n     int
	nodes []string
	// pods by workload "ns/name", and every workload's labels.
	pods   map[string][]*corev1.Pod
	labels map[string]map[string]string
}

var (
	odTiers   = []string{"fe", "be"}
	odTeams   = []string{"x", "y"}
	odPorts   = []int32{80, 8080, 9090, 53}
	odExtIPs  = []string{"203.0.113.7", "203.0.113.99", "198.51.100.20"}
	odNodeIPs = []string{"10.1.9.1", "10.1.9.2", "10.1.9.3"}
)

// podIP is the address of the k-th pod on node i: each node has a /24 of its own.
func podIP(node, k int) string { return fmt.Sprintf("10.244.%d.%d", 100+node, 10+k) }

func newODWorld(seed uint64) *odWorld {
	g := &odGen{r: rand.New(rand.NewPCG(seed, 0x6f6e65)), pods: map[string][]*corev1.Pod{}, labels: map[string]map[string]string{}}
	w := &odWorld{objects: &cluster.Objects{}}
	for _, ns := range oneDecisionNamespaces {
		w.objects.Namespaces = append(w.objects.Namespaces, harness.Namespace(ns, map[string]string{"team": pick(g.r, odTeams)}))
	}
	for i, ip := range odNodeIPs {
		name := fmt.Sprintf("od-node-%d", i)
		g.nodes = append(g.nodes, name)
		w.objects.Nodes = append(w.objects.Nodes, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}},
		})
	}
	perNode := make([]int, len(g.nodes))
	for _, ns := range oneDecisionNamespaces {
		for k := range 3 {
			name := fmt.Sprintf("w%d", k)
			labels := map[string]string{"app": name, "tier": pick(g.r, odTiers)}
			key := ns + "/" + name
			g.labels[key] = labels
			hash := fmt.Sprintf("%x", 0x5c7d9f8b4+g.r.IntN(1<<20))
			ports := []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}
			if g.r.IntN(2) == 0 {
				ports = append(ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP})
			}
			for p := range 1 + g.r.IntN(3) {
				node := g.r.IntN(len(g.nodes))
				ip := podIP(node, perNode[node])
				perNode[node]++
				pod := harness.DeploymentPod(ns, name, hash, fmt.Sprintf("p%d", p), labels, g.nodes[node], ip, ports...)
				g.pods[key] = append(g.pods[key], pod)
				w.objects.Pods = append(w.objects.Pods, pod)
			}
		}
	}
	for range 3 + g.r.IntN(3) {
		w.objects.Policies = append(w.objects.Policies, g.policy(""))
	}
	g.flows(w, 70)
	for range 40 {
		w.changes = append(w.changes, g.change(w.objects.Policies))
	}
	return w
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func (g *odGen) workloads() []string { return slices.Sorted(maps.Keys(g.pods)) }

// flows adds n records: pod to pod by name, workload and address; probes from nodes, to a
// workload with a pod there or not; traffic to and from outside.
func (g *odGen) flows(w *odWorld, n int) {
	wls := g.workloads()
	peer := func(key string) (flows.Peer, string) {
		ns, name, _ := strings.Cut(key, "/")
		pod := pick(g.r, g.pods[key])
		switch g.r.IntN(3) {
		case 0:
			return flows.Peer{Namespace: ns, Pod: pod.Name}, key
		case 1:
			return flows.Peer{Namespace: ns, Workload: "Deployment/" + name}, key
		}
		return flows.Peer{IP: pod.Status.PodIP}, key
	}
	for len(w.records) < n {
		rec := flows.Record{Port: pick(g.r, odPorts), Protocol: "TCP", Count: uint64(1 + g.r.IntN(100))}
		if rec.Port == 53 {
			rec.Protocol = "UDP"
		}
		var src, dst string
		switch x := g.r.IntN(10); {
		case x < 5:
			rec.Src, src = peer(pick(g.r, wls))
			rec.Dst, dst = peer(pick(g.r, wls))
		case x < 7: // a node: the kubelet probing its pods, or a NodePort
			node := g.r.IntN(len(g.nodes))
			rec.Src, src = flows.Peer{IP: odNodeIPs[node]}, "node/"+g.nodes[node]
			rec.Dst, dst = peer(pick(g.r, wls))
			rec.Port = 8080
		case x < 9:
			rec.Src, src = peer(pick(g.r, wls))
			ip := pick(g.r, odExtIPs)
			rec.Dst, dst = flows.Peer{IP: ip}, ip
			rec.Port, rec.Protocol = 443, "TCP"
		default:
			ip := pick(g.r, odExtIPs)
			rec.Src, src = flows.Peer{IP: ip}, ip
			rec.Dst, dst = peer(pick(g.r, wls))
		}
		w.records = append(w.records, rec)
		w.edges = append(w.edges, fmt.Sprintf("%s → %s %s/%d", src, dst, rec.Protocol, rec.Port))
	}
}

// policy is a random valid policy in a random one of the namespaces; name "" a fresh one.
func (g *odGen) policy(name string) *networkingv1.NetworkPolicy {
	ns := pick(g.r, oneDecisionNamespaces)
	if name == "" {
		g.n++
		name = fmt.Sprintf("p%d", g.n)
	} else {
		ns, name, _ = strings.Cut(name, "/")
	}
	p := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
	}
	p.Spec.PodSelector = g.podSelector()
	types := [][]networkingv1.PolicyType{
		{networkingv1.PolicyTypeIngress}, {networkingv1.PolicyTypeEgress},
		{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
	}
	p.Spec.PolicyTypes = pick(g.r, types)
	for _, t := range p.Spec.PolicyTypes {
		for range g.r.IntN(3) {
			peers, ports := g.peers(), g.ports()
			if t == networkingv1.PolicyTypeIngress {
				p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: ports})
			} else {
				p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peers, Ports: ports})
			}
		}
	}
	return p
}

func (g *odGen) podSelector() metav1.LabelSelector {
	switch g.r.IntN(3) {
	case 0:
		return metav1.LabelSelector{}
	case 1:
		return metav1.LabelSelector{MatchLabels: map[string]string{"tier": pick(g.r, odTiers)}}
	}
	return metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("w%d", g.r.IntN(3))}}
}

func (g *odGen) peers() []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for range g.r.IntN(3) {
		var p networkingv1.NetworkPolicyPeer
		switch g.r.IntN(5) {
		case 0:
			sel := g.podSelector()
			p.PodSelector = &sel
		case 1:
			p.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": pick(g.r, odTeams)}}
		case 2:
			sel := g.podSelector()
			p.PodSelector = &sel
			p.NamespaceSelector = &metav1.LabelSelector{}
		default:
			// The pods of one node (so a workload's pods can disagree), the nodes, the
			// outside, or everything but one node's pods.
			blocks := []networkingv1.IPBlock{
				{CIDR: fmt.Sprintf("10.244.%d.0/24", 100+g.r.IntN(3))},
				{CIDR: "10.1.9.0/24"},
				{CIDR: "203.0.113.0/24"},
				{CIDR: "0.0.0.0/0", Except: []string{fmt.Sprintf("10.244.%d.0/24", 100+g.r.IntN(3))}},
			}
			b := pick(g.r, blocks)
			p.IPBlock = &b
		}
		out = append(out, p)
	}
	return out
}

func (g *odGen) ports() []networkingv1.NetworkPolicyPort {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	var out []networkingv1.NetworkPolicyPort
	for range g.r.IntN(3) {
		var p networkingv1.NetworkPolicyPort
		switch g.r.IntN(4) {
		case 0:
			port := intstr.FromInt32(8080)
			p = networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &port}
		case 1:
			port := intstr.FromString("http")
			p = networkingv1.NetworkPolicyPort{Port: &port}
		case 2:
			port := intstr.FromInt32(53)
			p = networkingv1.NetworkPolicyPort{Protocol: &udp, Port: &port}
		default:
			port, end := intstr.FromInt32(80), int32(9090)
			p = networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &port, EndPort: &end}
		}
		out = append(out, p)
	}
	return out
}

func (g *odGen) change(existing []*networkingv1.NetworkPolicy) odChange {
	if len(existing) == 0 || g.r.IntN(3) == 0 {
		return odChange{new: g.policy("")}
	}
	old := pick(g.r, existing)
	if g.r.IntN(2) == 0 {
		return odChange{old: old}
	}
	return odChange{old: old, new: g.policy(old.Namespace + "/" + old.Name)}
}

// cutLine is one listed cut of a rejection: "  3. [DNS] od-a/w1 → od-b/w0 UDP/53, last seen".
var cutLine = regexp.MustCompile(`(?m)^\s+\d+\. (?:\[[^\]]*\] )?(\S+ → \S+ [A-Z]+/\d+), last seen`)

// testOneDecision judges every change of a random world with the webhook (server-side dry
// run through the API server) and with `netpol-guard check` on the same objects and flows,
// and compares the cut sets.
func testOneDecision(t *testing.T, cp *harness.ControlPlane, token string) {
	seed := uint64(1)
	if s := os.Getenv("NETPOL_ONE_DECISION_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	w := newODWorld(seed)
	if err := cp.CreateCluster(ctx, w.objects); err != nil {
		t.Fatal(err)
	}
	// Seen once the pods hold their addresses: the webhook resolves an address by who held
	// it when the flow was seen.
	seen := time.Now()
	for i := range w.records {
		w.records[i].LastSeen = seen
	}
	wh := startWebhook(t, cp, harness.WebhookOptions{Name: "netpol-guard-one-decision", Mode: "enforce", Args: []string{"--max-listed", "100000"}},
		harness.RegisterOptions{NamespaceSelector: harness.OnlyNamespaces(oneDecisionNamespaces...), ProbeNamespace: oneDecisionNamespaces[0]})
	body, err := harness.EncodeFlows(w.records)
	if err != nil {
		t.Fatal(err)
	}
	res, err := wh.PushFlows(ctx, token, body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.Accepted != len(w.records) || res.Unresolved != 0 {
		t.Fatalf("push: %d %s; want %d accepted, none unresolved", res.Status, res.Body, len(w.records))
	}

	// The CLI's inputs: the cluster as kubectl prints it, and the same records.
	dir := t.TempDir()
	dump := kubectl(t, cp, "get", "namespaces,nodes,pods,networkpolicies", "-A", "-o", "yaml")
	if dump.ExitCode != 0 {
		t.Fatalf("kubectl get: %s", dump)
	}
	clusterFile, flowsFile := filepath.Join(dir, "cluster.yaml"), filepath.Join(dir, "flows.jsonl")
	if err := os.WriteFile(clusterFile, []byte(dump.Stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flowsFile, body, 0o644); err != nil {
		t.Fatal(err)
	}
	// The CLI echoes each cut record; the world knows its edge.
	edgeOf := map[string]string{}
	for i, rec := range w.records {
		edgeOf[echoKey(rec.Src, rec.Dst, rec.Port, rec.Protocol)] = w.edges[i]
	}
	bin, err := cp.Binary(ctx)
	if err != nil {
		t.Fatal(err)
	}

	exact, cuts := 0, 0
	for i, c := range w.changes {
		p := c.new
		if p == nil {
			p = c.old
		}
		manifest, err := yaml.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		policyFile := filepath.Join(dir, fmt.Sprintf("change-%d.yaml", i))
		if err := os.WriteFile(policyFile, manifest, 0o644); err != nil {
			t.Fatal(err)
		}

		var res harness.KubectlResult
		args := []string{"check", "--cluster", clusterFile, "--flows", flowsFile, "-f", policyFile, "-o", "json"}
		if c.new == nil {
			res = kubectl(t, cp, "delete", "networkpolicy", p.Name, "-n", p.Namespace, "--dry-run=server")
			args = append(args, "--delete")
		} else {
			// create or replace, not apply: apply would merge the new spec into the old one.
			verb := "create"
			if c.old != nil {
				verb = "replace"
			}
			if res, err = cp.KubectlStdin(ctx, string(manifest), verb, "--dry-run=server", "-f", "-"); err != nil {
				t.Fatal(err)
			}
		}
		webhookCuts := map[string]bool{}
		for _, m := range cutLine.FindAllStringSubmatch(res.Stderr, -1) {
			webhookCuts[m[1]] = true
		}
		if res.ExitCode != 0 && len(webhookCuts) == 0 {
			t.Fatalf("%s: kubectl failed without listing cuts:\n%s", c, res)
		}

		out, err := exec.CommandContext(ctx, bin, args...).Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code > 1 {
			t.Fatalf("%s: check exited %d: %s", c, code, err.(*exec.ExitError).Stderr)
		}
		var report struct {
			Cut []struct {
				Src, Dst json.RawMessage
				Port     int32
				Protocol string
			}
		}
		if err := json.Unmarshal(out, &report); err != nil {
			t.Fatalf("%s: check -o json: %v\n%s", c, err, out)
		}
		checkCuts := map[string]bool{}
		for _, cut := range report.Cut {
			var src, dst flows.Peer
			if json.Unmarshal(cut.Src, &src) != nil || json.Unmarshal(cut.Dst, &dst) != nil {
				t.Fatalf("%s: cut peers %s %s", c, cut.Src, cut.Dst)
			}
			edge, ok := edgeOf[echoKey(src, dst, cut.Port, cut.Protocol)]
			if !ok {
				t.Fatalf("%s: check cut a record the world did not make: %s → %s", c, cut.Src, cut.Dst)
			}
			checkCuts[edge] = true
		}
		cuts += len(checkCuts)
		if maps.Equal(webhookCuts, checkCuts) {
			exact++
			continue
		}
		var onlyWebhook, onlyCheck []string
		for e := range webhookCuts {
			if !checkCuts[e] {
				onlyWebhook = append(onlyWebhook, e)
			}
		}
		for e := range checkCuts {
			if !webhookCuts[e] {
				onlyCheck = append(onlyCheck, e)
			}
		}
		slices.Sort(onlyWebhook)
		slices.Sort(onlyCheck)
		t.Errorf("seed %d, %s: the webhook and check disagree\nonly the webhook cuts: %q\nonly check cuts: %q\npolicy:\n%s\nwebhook:\n%s",
			seed, c, onlyWebhook, onlyCheck, manifest, res.Stderr)
	}
	t.Logf("seed %d: %d of %d changes judged alike by the webhook and check; %d cut edges in all", seed, exact, len(w.changes), cuts)
	if cuts == 0 {
		t.Errorf("seed %d: no change cut anything: the world tests nothing", seed)
	}
}

func echoKey(src, dst flows.Peer, port int32, proto string) string {
	s, _ := json.Marshal(src)
	d, _ := json.Marshal(dst)
	if proto == "" {
		proto = "TCP"
	}
	return fmt.Sprintf("%s %s %d %s", s, d, port, proto)
}
