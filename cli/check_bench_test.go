package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/cli"
	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// generatedCheck writes, into dir, a cluster of namespaces × workloads (a Deployment of one
// pod each, labelled app=svc-NN), in which every namespace isolates svc-00 for ingress from
// all but its own namespace and the front tier's; n flows among the workloads; and a change
// that isolates every pod of the first tenth of the namespaces, allowing their own
// namespace only. It returns the check's options.
func generatedCheck(t testing.TB, dir string, namespaces, workloads, n int) cli.CheckOptions {
	t.Helper()
	var items []any
	ns := func(i int) string { return fmt.Sprintf("team-%03d", i) }
	for i := range namespaces {
		labels := map[string]string{"kubernetes.io/metadata.name": ns(i)}
		if i%3 == 0 {
			labels["tier"] = "front"
		}
		items = append(items, map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns(i), "labels": labels}})
		for w := range workloads {
			app := fmt.Sprintf("svc-%02d", w)
			items = append(items, map[string]any{"apiVersion": "v1", "kind": "Pod",
				"metadata": map[string]any{"name": app + "-7d9f8b6c5d-x" + fmt.Sprint(i), "namespace": ns(i),
					"labels":          map[string]string{"app": app, "pod-template-hash": "7d9f8b6c5d"},
					"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": app + "-7d9f8b6c5d", "uid": "u", "controller": true}}},
				"spec": map[string]any{"nodeName": fmt.Sprintf("worker-%d", w%20), "containers": []any{map[string]any{"name": "c",
					"ports": []any{map[string]any{"name": "http", "containerPort": 8080}, map[string]any{"name": "metrics", "containerPort": 9090}}}}},
				"status": map[string]any{"phase": "Running", "podIP": fmt.Sprintf("10.%d.%d.%d", 1+i/250, i%250, 2+w)},
			})
		}
		items = append(items, map[string]any{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
			"metadata": map[string]any{"name": "svc-00-ingress", "namespace": ns(i)},
			"spec": map[string]any{"podSelector": map[string]any{"matchLabels": map[string]string{"app": "svc-00"}},
				"ingress": []any{map[string]any{"from": []any{map[string]any{"podSelector": map[string]any{}},
					map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]string{"tier": "front"}}}}}}}})
	}
	writeJSON(t, filepath.Join(dir, "cluster.json"), map[string]any{"apiVersion": "v1", "kind": "List", "items": items})

	r := rand.New(rand.NewPCG(7, 8))
	var fl bytes.Buffer
	for range n {
		port := 8080
		if r.IntN(4) == 0 {
			port = 9090
		}
		fmt.Fprintf(&fl, `{"src":{"namespace":%q,"workload":"Deployment/svc-%02d"},"dst":{"namespace":%q,"workload":"Deployment/svc-%02d"},"port":%d,"protocol":"TCP","lastSeen":"2026-11-26T09:00:00Z","count":%d}`+"\n",
			ns(r.IntN(namespaces)), r.IntN(workloads), ns(r.IntN(namespaces)), r.IntN(workloads), port, 1+r.IntN(100))
	}
	if err := os.WriteFile(filepath.Join(dir, "flows.jsonl"), fl.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	var change bytes.Buffer
	for i := range max(1, namespaces/10) {
		p := networkingv1.NetworkPolicy{}
		p.APIVersion, p.Kind = "networking.k8s.io/v1", "NetworkPolicy"
		p.Name, p.Namespace = "default-deny", ns(i)
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}}
		y, err := yaml.Marshal(&p)
		if err != nil {
			t.Fatal(err)
		}
		change.WriteString("---\n")
		change.Write(y)
	}
	if err := os.WriteFile(filepath.Join(dir, "change.yaml"), change.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return cli.CheckOptions{Inputs: cli.Inputs{Cluster: filepath.Join(dir, "cluster.json"), Flows: filepath.Join(dir, "flows.jsonl")},
		Policies: []string{filepath.Join(dir, "change.yaml")}, Output: cli.OutputJSON, Now: now}
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkCuts runs cli.Check and returns its cuts, each as its flow's line would echo it, with
// how often it is cut.
func checkCuts(t testing.TB, opts cli.CheckOptions) map[string]int {
	t.Helper()
	var out, errw bytes.Buffer
	if code := cli.Check(&out, &errw, opts); code != cli.ExitCut && code != cli.ExitOK {
		t.Fatalf("check: exit %d: %s", code, errw.String())
	}
	var report struct {
		Cut []struct {
			Src, Dst json.RawMessage
			Port     int32
		}
	}
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		t.Fatal(err)
	}
	cuts := map[string]int{}
	for _, c := range report.Cut {
		cuts[cutKey(c.Src, c.Dst, c.Port)]++
	}
	return cuts
}

func cutKey(src, dst []byte, port int32) string {
	return fmt.Sprintf("%s → %s :%d", src, dst, port)
}

// naiveReplay is the check done the simple way, with the evaluator's public API only: the
// files are read, every flow is resolved, and each flow is judged before and after against
// every policy in turn, each compiled on its own — a side is allowed when no policy
// selects its pod for that direction or one that does allows the flow. (No cluster
// policies: the generated cluster has none.) It returns the cuts, as checkCuts does, and
// the time the judging took, the reading and resolving left out.
func naiveReplay(t testing.TB, opts cli.CheckOptions) (map[string]int, time.Duration) {
	t.Helper()
	objs, err := cluster.Load(opts.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	view := cluster.LiveFromObjects(objs, cluster.LiveOptions{})
	world := view.World()
	f, err := os.Open(opts.Flows)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := flows.ReadAll(f, opts.Flows)
	if err != nil {
		t.Fatal(err)
	}
	var fs []evaluator.Flow
	var kept []flows.Record
	for _, rec := range recs {
		o, err := view.Identify(rec)
		if err != nil {
			continue
		}
		kept = append(kept, rec)
		fs = append(fs, evaluator.Flow{Src: view.Endpoint(o.Src, o.SrcInfo), Dst: view.Endpoint(o.Dst, o.DstInfo), Port: rec.Port, Protocol: corev1.Protocol(rec.Protocol)})
	}
	change, err := cluster.Load(opts.Policies[0])
	if err != nil {
		t.Fatal(err)
	}
	one := func(ps []*networkingv1.NetworkPolicy) []*evaluator.Evaluation {
		var es []*evaluator.Evaluation
		for _, p := range ps {
			set, err := evaluator.Compile([]*networkingv1.NetworkPolicy{p})
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, evaluator.NewEvaluation(set, world))
		}
		return es
	}
	before := one(objs.Policies)
	after := append(one(objs.Policies), one(change.Policies)...)

	start := time.Now()
	cuts := map[string]int{}
	for i, fl := range fs {
		if allowedByEach(before, fl) && !allowedByEach(after, fl) {
			cuts[cutKey(kept[i].RawSrc, kept[i].RawDst, kept[i].Port)]++
		}
	}
	return cuts, time.Since(start)
}

func allowedByEach(policies []*evaluator.Evaluation, f evaluator.Flow) bool {
	var ingressIsolated, ingressAllowed, egressIsolated, egressAllowed bool
	for _, e := range policies {
		v := e.Verdict(f)
		if v.Ingress.Isolated {
			ingressIsolated = true
			ingressAllowed = ingressAllowed || v.Ingress.Allowed
		}
		if v.Egress.Isolated {
			egressIsolated = true
			egressAllowed = egressAllowed || v.Egress.Allowed
		}
	}
	return (!ingressIsolated || ingressAllowed) && (!egressIsolated || egressAllowed)
}

func sameCuts(t testing.TB, check, naive map[string]int) {
	t.Helper()
	if len(check) == 0 {
		t.Fatal("the change cuts nothing: the comparison would say little")
	}
	for k, n := range check {
		if naive[k] != n {
			t.Errorf("check cuts %s %d times, the naive replay %d", k, n, naive[k])
		}
	}
	for k, n := range naive {
		if _, ok := check[k]; !ok {
			t.Errorf("the naive replay cuts %s %d times, check never", k, n)
		}
	}
}

func TestCheckCutsWhatANaiveReplayCuts(t *testing.T) {
	opts := generatedCheck(t, t.TempDir(), 20, 5, 3000)
	sameCuts(t, checkCuts(t, opts), func() map[string]int { c, _ := naiveReplay(t, opts); return c }())
}

// BenchmarkCheckVersusNaiveReplay times cli.Check end to end (reading the files included)
// on 200 namespaces × 25 workloads and 34 k flows, against the naive replay's judging alone
// (its reading left out), and reports how many times faster check is.
func BenchmarkCheckVersusNaiveReplay(b *testing.B) {
	opts := generatedCheck(b, b.TempDir(), 200, 25, 34_000)
	naive, naiveTime := naiveReplay(b, opts)
	var cuts map[string]int
	for b.Loop() {
		cuts = checkCuts(b, opts)
	}
	sameCuts(b, cuts, naive)
	perCheck := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perCheck, "s/check")
	b.ReportMetric(naiveTime.Seconds(), "s/naive")
	b.ReportMetric(naiveTime.Seconds()/perCheck, "x-faster")
	b.ReportMetric(float64(len(cuts)), "cuts")
}
