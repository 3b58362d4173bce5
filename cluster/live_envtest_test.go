package cluster

import (
	"context"
	"errors"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/netpol-guard/netpol-guard/flows"
)

// envtestAssets finds a kube-apiserver and etcd: KUBEBUILDER_ASSETS, else the newest build
// e2e/tools/build.sh cached. Without either the test is skipped.
func envtestAssets(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("envtest: skipped in -short mode")
	}
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	root := os.Getenv("NETPOL_GUARD_TOOLS_CACHE")
	if root == "" {
		if home, err := os.UserHomeDir(); err == nil {
			root = filepath.Join(home, ".cache", "netpol-guard", "tools")
		}
	}
	var best string
	var bestTime time.Time
	matches, _ := filepath.Glob(filepath.Join(root, "*", "bin", "kube-apiserver"))
	for _, apiserver := range matches {
		dir := filepath.Dir(apiserver)
		a, errA := os.Stat(apiserver)
		_, errE := os.Stat(filepath.Join(dir, "etcd"))
		if errA == nil && errE == nil && a.ModTime().After(bestTime) {
			best, bestTime = dir, a.ModTime()
		}
	}
	if best == "" {
		t.Skip(`envtest: KUBEBUILDER_ASSETS is not set and no kube-apiserver and etcd are cached; run: export KUBEBUILDER_ASSETS="$(e2e/tools/build.sh)"`)
	}
	return best
}

// guardedT stops logging into a test once it is over: informer goroutines and later tests
// of the package still log through the global logger.
type guardedT struct {
	t    *testing.T
	mu   sync.RWMutex
	done bool
}

func (g *guardedT) Helper() { g.t.Helper() }

func (g *guardedT) Log(args ...any) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if !g.done {
		g.t.Helper()
		g.t.Log(args...)
	}
}

var setLoggerOnce sync.Once

// TestLiveEnvtest drives a Live from a real kube-apiserver's informers: a Deployment's pod
// restarted with a new address, its old address reused by another namespace's pod, the
// Deployment scaled to zero, a CronJob's run, host-network pods and nodes.
func TestLiveEnvtest(t *testing.T) {
	dir := envtestAssets(t)
	guard := &guardedT{t: t}
	setLoggerOnce.Do(func() { ctrllog.SetLogger(testr.NewWithInterface(guard, testr.Options{Verbosity: 1})) })
	t.Cleanup(func() {
		guard.mu.Lock()
		guard.done = true
		guard.mu.Unlock()
	})

	start := time.Now()
	env := &envtest.Environment{BinaryAssetsDirectory: dir}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("envtest start (assets %s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("envtest stop: %v", err)
		}
	})
	t.Logf("control plane up in %s", time.Since(start).Round(time.Millisecond))

	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The cache as the webhook runs it (managed fields stripped), so what the view reads is
	// what production hands it.
	informers, err := cache.New(cfg, CacheOptions())
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLive(informers, LiveOptions{
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.100.0.0/16")},
		IPGrace:  time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- informers.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("cache: %v", err)
		}
	})
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	testutil.Eventually(t, 10*time.Second, "the live view has synced", l.HasSynced)

	create := func(t *testing.T, obj client.Object) {
		t.Helper()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
		}
	}
	// runPod creates a pod on a node and reports it running with ip, started at started.
	runPod := func(t *testing.T, pod *corev1.Pod, ip, hostIP string, started time.Time) *corev1.Pod {
		t.Helper()
		create(t, pod)
		pod.Status = corev1.PodStatus{
			Phase:     corev1.PodRunning,
			StartTime: ptr.To(metav1.NewTime(started)),
			HostIP:    hostIP,
			HostIPs:   []corev1.HostIP{{IP: hostIP}},
			PodIP:     ip,
			PodIPs:    []corev1.PodIP{{IP: ip}},
		}
		if err := c.Status().Update(ctx, pod); err != nil {
			t.Fatalf("pod %s status: %v", pod.Name, err)
		}
		return pod
	}
	deletePod := func(t *testing.T, pod *corev1.Pod) {
		t.Helper()
		if err := c.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
			t.Fatalf("delete pod %s: %v", pod.Name, err)
		}
	}
	// resolvesTo waits until a flow from ip observed now resolves to want.
	resolvesTo := func(t *testing.T, ip, want string) time.Time {
		t.Helper()
		var at time.Time
		testutil.Eventually(t, 10*time.Second, ip+" resolves to "+want, func() bool {
			at = time.Now()
			return who(l, ip, at) == want
		})
		return at
	}
	expect := func(t *testing.T, what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %s, want %s", what, got, want)
		}
	}

	for ns, labels := range map[string]map[string]string{
		"shop": {"team": "payments"}, "web": nil, "batch": nil, "monitoring": nil,
	} {
		create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}})
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "worker-1"},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24"}},
	}
	create(t, node)
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: "worker-1"},
		{Type: corev1.NodeInternalIP, Address: "192.168.0.11"},
	}
	if err := c.Status().Update(ctx, node); err != nil {
		t.Fatalf("node status: %v", err)
	}

	// Deployment shop/cart, its ReplicaSet and a pod, as the controllers would make them.
	cartLabels := map[string]string{"app": "cart", "pod-template-hash": "5c8d"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}},
			Template: podTemplate(map[string]string{"app": "cart"}, corev1.RestartPolicyAlways),
		},
	}
	create(t, deploy)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart-5c8d", OwnerReferences: []metav1.OwnerReference{
			*metav1.NewControllerRef(deploy, appsv1.SchemeGroupVersion.WithKind("Deployment")),
		}},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: cartLabels},
			Template: podTemplate(cartLabels, corev1.RestartPolicyAlways),
		},
	}
	create(t, rs)
	cartPod := func(name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: cartLabels, OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet")),
			}},
			Spec: podSpec("worker-1", corev1.RestartPolicyAlways),
		}
	}
	podA := runPod(t, cartPod("cart-5c8d-a"), "10.244.1.10", "192.168.0.11", time.Now())
	tA := resolvesTo(t, "10.244.1.10", "shop/Deployment/cart")

	t.Run("pod restart with a new address", func(t *testing.T) {
		deletePod(t, podA)
		tGap := resolvesTo(t, "10.244.1.10", "unresolved") // in worker-1's podCIDR, held by nobody
		runPod(t, cartPod("cart-5c8d-b"), "10.244.1.11", "192.168.0.11", time.Now())
		resolvesTo(t, "10.244.1.11", "shop/Deployment/cart")
		expect(t, "late flow of the restarted pod", who(l, "10.244.1.10", tA), "shop/Deployment/cart")
		expect(t, "flow while nobody held the old address", who(l, "10.244.1.10", tGap), "unresolved")
		expect(t, "flow of the new pod before it started", who(l, "10.244.1.11", tA.Add(-time.Minute)), "unresolved")
		expect(t, "deleted pod by name", whoPeer(l, flows.Peer{Namespace: "shop", Pod: "cart-5c8d-a"}, tA), "shop/Deployment/cart")

		t.Run("address reused by a pod of another namespace", func(t *testing.T) {
			// It starts after the gap was observed (startTime has whole seconds).
			started := tGap.Add(time.Second).Truncate(time.Second)
			runPod(t, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "debug", Labels: map[string]string{"run": "debug"}},
				Spec:       podSpec("worker-1", corev1.RestartPolicyAlways),
			}, "10.244.1.10", "192.168.0.11", started)
			tReuse := resolvesTo(t, "10.244.1.10", "web/Pod/debug")
			expect(t, "flow of the old pod, before the reuse", who(l, "10.244.1.10", tA), "shop/Deployment/cart")
			expect(t, "flow between the two holders", who(l, "10.244.1.10", tGap), "unresolved")
			expect(t, "flow after the reuse", who(l, "10.244.1.10", tReuse), "web/Pod/debug")
		})
	})

	t.Run("scale to zero keeps labels", func(t *testing.T) {
		id := workloadID("shop", "Deployment/cart")
		before := l.Endpoint(id, nil)
		if !maps.Equal(before.Labels, cartLabels) || len(before.Ports) != 1 || before.Ports[0].Name != "http" {
			t.Fatalf("cart endpoint %+v, want labels %v and port http", before, cartLabels)
		}
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace("shop")); err != nil {
			t.Fatal(err)
		}
		for i := range pods.Items {
			deletePod(t, &pods.Items[i])
		}
		resolvesTo(t, "10.244.1.11", "unresolved")
		if got := l.Endpoint(id, nil); got != before {
			t.Errorf("scaled to zero: endpoint %+v, want the same as before (%+v)", got, before)
		}
		if got := l.WorkloadsIn("shop"); !slices.Equal(got, []flows.PeerID{id}) {
			t.Errorf("WorkloadsIn(shop) = %v", got)
		}
	})

	t.Run("CronJob-owned pods", func(t *testing.T) {
		cron := &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Namespace: "batch", Name: "report"},
			Spec: batchv1.CronJobSpec{
				Schedule: "*/5 * * * *",
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
					Template: podTemplate(map[string]string{"app": "report"}, corev1.RestartPolicyNever),
				}},
			},
		}
		create(t, cron)
		// Not named like a scheduled run: only the owner chain tells it is the CronJob's.
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Namespace: "batch", Name: "report-manual", OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(cron, batchv1.SchemeGroupVersion.WithKind("CronJob")),
			}},
			Spec: batchv1.JobSpec{Template: podTemplate(map[string]string{"app": "report"}, corev1.RestartPolicyNever)},
		}
		create(t, job)
		pod := runPod(t, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "batch", Name: "report-manual-x1", Labels: map[string]string{"app": "report"}, OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job")),
			}},
			Spec: podSpec("worker-1", corev1.RestartPolicyNever),
		}, "10.244.1.20", "192.168.0.11", time.Now())
		tRun := resolvesTo(t, "10.244.1.20", "batch/CronJob/report")

		pod.Status.Phase = corev1.PodSucceeded
		if err := c.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
		resolvesTo(t, "10.244.1.20", "unresolved") // a finished pod's status keeps its address
		expect(t, "flow of the run", who(l, "10.244.1.20", tRun), "batch/CronJob/report")
		deletePod(t, pod)
		if err := c.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the run's pod is gone", func() bool {
			l.mu.RLock()
			defer l.mu.RUnlock()
			return len(l.workloads["batch"]["CronJob/report"].pods) == 0
		})
		ep := l.Endpoint(workloadID("batch", "CronJob/report"), nil)
		if ep.Labels["app"] != "report" {
			t.Errorf("CronJob between runs: endpoint %+v, want its pods' labels", ep)
		}
	})

	t.Run("host-network pods and nodes", func(t *testing.T) {
		hostPod := func(name, node string) *corev1.Pod {
			spec := podSpec(node, corev1.RestartPolicyAlways)
			spec.HostNetwork = true
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: name}, Spec: spec}
		}
		runPod(t, hostPod("exporter-1", "worker-1"), "192.168.0.11", "192.168.0.11", time.Now())
		runPod(t, hostPod("exporter-2", "worker-2"), "192.168.0.12", "192.168.0.12", time.Now()) // no Node object
		resolvesTo(t, "192.168.0.11", "node/worker-1")
		resolvesTo(t, "192.168.0.12", "node/worker-2")
		expect(t, "host-network pod by name", whoPeer(l, flows.Peer{Namespace: "monitoring", Pod: "exporter-1"}, time.Now()), "node/worker-1")
		expect(t, "outside address", who(l, "8.8.8.8", time.Now()), "8.8.8.8")
		expect(t, "unknown address of the configured pod CIDRs", who(l, "10.100.0.5", time.Now()), "unresolved")
	})

	t.Run("policies and world", func(t *testing.T) {
		create(t, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deny-all"}})
		testutil.Eventually(t, 10*time.Second, "the policy is seen", func() bool { return len(l.PoliciesIn("shop")) == 1 })
		w := l.World()
		if got := w.NamespaceLabels["shop"]; got["team"] != "payments" || got[corev1.LabelMetadataName] != "shop" {
			t.Errorf("shop labels %v", got)
		}
		if got := w.NodeAddresses["worker-1"]; !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.168.0.11")}) {
			t.Errorf("worker-1 addresses %v", got)
		}
	})
	t.Logf("done in %s", time.Since(start).Round(time.Millisecond))
}

func podSpec(node string, restart corev1.RestartPolicy) corev1.PodSpec {
	return corev1.PodSpec{
		NodeName:      node,
		RestartPolicy: restart,
		Containers: []corev1.Container{{
			Name: "main", Image: "registry.example/app:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}},
	}
}

func podTemplate(labels map[string]string, restart corev1.RestartPolicy) corev1.PodTemplateSpec {
	spec := podSpec("", restart)
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}
}
