package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// The cache under load: 1 M edges; 10 k of them into or out of the workloads of the
// namespace under test, the rest among 100 other namespaces.
const (
	totalEdges     = 1_000_000
	benchEdges     = 10_000
	benchNS        = "bench"
	benchWorkloads = 100
	otherNS        = 100
	otherPerNS     = 100
)

// envDuration reads a positive duration from the environment, or def.
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func envWorkers(name string, def []int) []int {
	var out []int
	for f := range strings.SplitSeq(os.Getenv(name), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

// TestLoad sends AdmissionReviews straight to the webhook's HTTPS endpoint (as the API
// server would, ?timeout=5s, dryRun true so nothing is recorded) with keep-alive
// connections from N workers for a fixed time, and reports p50/p90/p99/max latency and
// requests per second. NETPOL_GUARD_LOAD_DURATION (default 20s) and NETPOL_GUARD_LOAD_WORKERS
// (default "1,4") tune it.
func TestLoad(t *testing.T) {
	if os.Getenv("NETPOL_GUARD_LOAD") != "1" {
		t.Skip("the load benchmark runs with NETPOL_GUARD_LOAD=1")
	}
	assets := os.Getenv(harness.AssetsEnv)
	if assets == "" {
		t.Skip(`KUBEBUILDER_ASSETS is not set; run: export KUBEBUILDER_ASSETS="$(bash e2e/tools/build.sh)"`)
	}
	duration := envDuration("NETPOL_GUARD_LOAD_DURATION", 20*time.Second)
	workers := envWorkers("NETPOL_GUARD_LOAD_WORKERS", []int{1, 4})
	ctrllog.SetLogger(logr.Discard())
	ctx := t.Context()

	dir := t.TempDir()
	snapPath := filepath.Join(dir, "flows.snap")
	start := time.Now()
	writeSnapshot(t, snapPath)
	st, _ := os.Stat(snapPath)
	t.Logf("snapshot of %d edges (%d into or out of %s) written in %s: %.1f MB", totalEdges, benchEdges, benchNS, time.Since(start).Round(time.Millisecond), float64(st.Size())/1e6)

	cp, err := harness.StartControlPlane(harness.ControlPlaneOptions{Assets: assets, Dir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	// The namespace under test, enforced, with a running pod per workload; the others.
	snap := &cluster.Objects{Namespaces: []*corev1.Namespace{harness.Namespace(benchNS, map[string]string{"netpol-guard.io/mode": "enforce"})}}
	for i := range otherNS {
		snap.Namespaces = append(snap.Namespaces, harness.Namespace(fmt.Sprintf("ns-%03d", i), map[string]string{"team": fmt.Sprintf("team-%d", i%10)}))
	}
	for i := range benchWorkloads {
		name := fmt.Sprintf("app-%03d", i)
		snap.Pods = append(snap.Pods, harness.DeploymentPod(benchNS, name, "5c7d9f8b4", "abcde", benchLabels(i), "", fmt.Sprintf("10.244.200.%d", i+1),
			corev1.ContainerPort{Name: "grpc", ContainerPort: 7070, Protocol: corev1.ProtocolTCP}))
	}
	if err := cp.CreateCluster(ctx, snap); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	wh, err := harness.StartWebhook(ctx, cp, harness.WebhookOptions{
		Mode: "warn", MinHistory: time.Hour, SnapshotPath: snapPath,
		Args: []string{"--snapshot-interval", "1h", "--profiling"}, // no snapshot writes while measuring
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- webhook log ---\n%s", wh.Logs())
		}
	})
	edges, err := wh.Metric(ctx, "netpol_guard_cache_edges")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("webhook restored the snapshot and became ready in %s: %.0f cached edges", time.Since(start).Round(time.Millisecond), edges)
	if edges != totalEdges {
		t.Fatalf("cache holds %.0f edges, want %d", edges, totalEdges)
	}

	variants := []struct {
		name   string
		policy *networkingv1.NetworkPolicy
		// wantAllowed: a change that cuts is rejected (enforce), the allow-all admitted.
		wantAllowed bool
	}{
		{"default-deny, cuts every candidate", policy("default-deny", nil, nil, nil), false},
		{"allow-all, cuts nothing", policy("allow-all", nil, []networkingv1.NetworkPolicyIngressRule{{}}, []networkingv1.NetworkPolicyEgressRule{{}}), true},
		{"deny one workload, cuts its edges", policy("deny-app-000", map[string]string{"app": "app-000"}, nil, nil), false},
	}
	var report strings.Builder
	fmt.Fprintf(&report, "\nAdmissionReviews (CREATE, dryRun) over HTTPS to %s, %d cached edges, GOMAXPROCS %d, %s per run:\n",
		wh.URL+webhook.ValidatePath, totalEdges, runtime.GOMAXPROCS(0), duration)
	fmt.Fprintf(&report, "%-36s %7s %8s %8s %8s %8s %8s %8s %10s %11s  %s\n", "policy", "workers", "requests", "req/s", "p50", "p90", "p99", "max", "server avg", "candidates", "verdict")
	for _, v := range variants {
		body := reviewBody(t, v.policy)
		// Check the answer once, and warm up.
		verdict, candidates := check(t, wh, body, v.wantAllowed)
		if candidates == "-" { // an answer that cuts nothing states no coverage
			candidates = strconv.Itoa(benchEdges) + "*"
		}
		run(ctx, wh, body, 2, 2*time.Second)
		for _, n := range workers {
			sumBefore, _ := wh.Metric(ctx, "netpol_guard_admission_decision_seconds_sum")
			countBefore, _ := wh.Metric(ctx, "netpol_guard_admission_decision_seconds_count")
			profiled := startProfile(ctx, t, wh, v.name, n, duration)
			r := run(ctx, wh, body, n, duration)
			<-profiled
			if r.errors > 0 {
				t.Errorf("%s, %d workers: %d failed requests, first: %v", v.name, n, r.errors, r.firstErr)
			}
			sumAfter, _ := wh.Metric(ctx, "netpol_guard_admission_decision_seconds_sum")
			countAfter, _ := wh.Metric(ctx, "netpol_guard_admission_decision_seconds_count")
			serverAvg := time.Duration(0)
			if dc := countAfter - countBefore; dc > 0 {
				serverAvg = time.Duration((sumAfter - sumBefore) / dc * float64(time.Second))
			}
			fmt.Fprintf(&report, "%-36s %7d %8d %8.0f %8s %8s %8s %8s %10s %11s  %s\n", v.name, n, len(r.latencies),
				float64(len(r.latencies))/r.elapsed.Seconds(), ms(r.pct(50)), ms(r.pct(90)), ms(r.pct(99)), ms(r.pct(100)), ms(serverAvg), candidates, verdict)
		}
	}
	fmt.Fprintf(&report, "p50…max: client-side round trips (TLS keep-alive); server avg: netpol_guard_admission_decision_seconds;\n"+
		"candidates: edges the answer says it considered (* the generated count: an answer that cuts nothing states none).\n")
	t.Log(report.String())
}

// startProfile, when NETPOL_GUARD_LOAD_PROFILE names a directory, records the webhook's CPU
// profile during a run into it; the returned channel closes when the profile is written.
func startProfile(ctx context.Context, t *testing.T, wh *harness.Webhook, name string, workers int, d time.Duration) chan struct{} {
	done := make(chan struct{})
	dir := os.Getenv("NETPOL_GUARD_LOAD_PROFILE")
	if dir == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", wh.MetricsAddr, int(d.Seconds()))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("profile: %v", err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", strings.ReplaceAll(strings.Fields(name)[0], ",", ""), workers))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Errorf("profile: %v", err)
		}
	}()
	return done
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// benchLabels are workload i's labels in the namespace under test.
func benchLabels(i int) map[string]string {
	return map[string]string{"app": fmt.Sprintf("app-%03d", i), "tier": []string{"web", "api", "db"}[i%3]}
}

// writeSnapshot fills a cache with totalEdges edges and saves it: benchEdges into or out of
// the workloads of benchNS (half each way, with other namespaces' workloads), the rest
// between workloads of the other namespaces. Every workload carries its labels and a named
// port, as the cache stores them.
func writeSnapshot(t *testing.T, path string) {
	t.Helper()
	now := time.Now()
	c := flows.New(flows.Options{MaxEdges: totalEdges})
	grpc := []evaluator.ContainerPort{{Name: "grpc", Port: 7070, Protocol: corev1.ProtocolTCP}}
	type wl struct {
		id   flows.PeerID
		info *flows.PeerInfo
	}
	bench := make([]wl, benchWorkloads)
	for i := range bench {
		bench[i] = wl{
			id:   flows.PeerID{Kind: flows.PeerWorkload, Namespace: benchNS, Name: fmt.Sprintf("Deployment/app-%03d", i)},
			info: &flows.PeerInfo{Labels: benchLabels(i), Ports: grpc},
		}
	}
	others := make([]wl, otherNS*otherPerNS)
	for i := range others {
		ns, n := i/otherPerNS, i%otherPerNS
		others[i] = wl{
			id: flows.PeerID{Kind: flows.PeerWorkload, Namespace: fmt.Sprintf("ns-%03d", ns), Name: fmt.Sprintf("Deployment/svc-%03d", n)},
			info: &flows.PeerInfo{Labels: map[string]string{"app": fmt.Sprintf("svc-%03d", n), "tier": []string{"web", "api", "db"}[n%3]},
				Ports: grpc},
		}
	}
	obs := make([]flows.Observation, 0, 10_000)
	flush := func() {
		c.Add(obs...)
		obs = obs[:0]
	}
	add := func(src, dst wl, k int) {
		obs = append(obs, flows.Observation{Src: src.id, SrcInfo: src.info, Dst: dst.id, DstInfo: dst.info,
			Port: 7070, Protocol: corev1.ProtocolTCP, Seen: now.Add(-time.Duration(k%3600) * time.Second), Count: uint64(1 + k%50)})
		if len(obs) == cap(obs) {
			flush()
		}
	}
	for k := range benchEdges {
		if k%2 == 0 {
			add(others[k], bench[k%benchWorkloads], k)
		} else {
			add(bench[k%benchWorkloads], others[k], k)
		}
	}
	for k := range totalEdges - benchEdges {
		src := k % len(others)
		dst := (src + 1 + k/len(others)) % len(others)
		add(others[src], others[dst], k)
	}
	flush()
	if got := c.Len(); got != totalEdges {
		t.Fatalf("generated %d edges, want %d", got, totalEdges)
	}
	if err := c.SaveFile(path); err != nil {
		t.Fatal(err)
	}
}

// policy is a policy of benchNS selecting pods by labels (none: every pod) for ingress and
// egress, with rules.
func policy(name string, selector map[string]string, in []networkingv1.NetworkPolicyIngressRule, out []networkingv1.NetworkPolicyEgressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name, UID: "0b6f6119-7875-4c1e-9d0a-5f1e2d3c4b5a"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selector},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     in, Egress: out,
		},
	}
}

// reviewBody is the AdmissionReview the API server sends for a CREATE under
// kubectl apply --dry-run=server.
func reviewBody(t *testing.T, p *networkingv1.NetworkPolicy) []byte {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	gvk := metav1.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}
	gvr := metav1.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("5d2c7a1e-0000-4000-8000-000000000001"), Kind: gvk, Resource: gvr,
			RequestKind: &gvk, RequestResource: &gvr,
			Name: p.Name, Namespace: p.Namespace, Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{Username: "load-test", Groups: []string{"system:authenticated"}},
			Object:   k8sruntime.RawExtension{Raw: raw},
			DryRun:   new(true),
			Options:  k8sruntime.RawExtension{Raw: []byte(`{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions","dryRun":["All"]}`)},
		},
	}
	b, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(ctx context.Context, wh *harness.Webhook, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.URL+webhook.ValidatePath+"?timeout=5s", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := wh.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return b, nil
}

var considered = regexp.MustCompile(`(\d+) edges`)

// check sends one review and checks the verdict; it returns the verdict and the candidate
// edges the answer says it considered.
func check(t *testing.T, wh *harness.Webhook, body []byte, wantAllowed bool) (verdict, candidates string) {
	t.Helper()
	b, err := post(t.Context(), wh, body)
	if err != nil {
		t.Fatal(err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &review); err != nil || review.Response == nil {
		t.Fatalf("answer is not an AdmissionReview (%v): %s", err, b)
	}
	r := review.Response
	if r.Allowed != wantAllowed {
		t.Fatalf("allowed %v, want %v: %s", r.Allowed, wantAllowed, b)
	}
	candidates = "-"
	text := strings.Join(r.Warnings, "\n")
	if r.Result != nil {
		text += "\n" + r.Result.Message
	}
	if m := considered.FindStringSubmatch(text); m != nil {
		candidates = m[1]
	}
	verdict = "admitted silently"
	if !r.Allowed {
		verdict = "rejected: " + strings.SplitN(r.Result.Message, "\n", 2)[0]
		if n := len(verdict); n > 70 {
			verdict = verdict[:70] + "…"
		}
	} else if len(r.Warnings) > 0 {
		verdict = "admitted with warnings"
	}
	return verdict, candidates
}

type result struct {
	latencies []time.Duration // sorted
	elapsed   time.Duration
	errors    int
	firstErr  error
}

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies))*p/100+0.5) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

// run sends body from n workers, each waiting for its answer before the next, for d.
func run(ctx context.Context, wh *harness.Webhook, body []byte, n int, d time.Duration) result {
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<14)
			var errs int
			var first error
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if _, err := post(ctx, wh, body); err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.errors += errs
			if res.firstErr == nil {
				res.firstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.latencies)
	return res
}
