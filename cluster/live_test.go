package cluster

import (
	"fmt"
	clocktesting "k8s.io/utils/clock/testing"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// t0 is when the tests' clusters start.
var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// newTestLive is a Live on a fake clock at t0, with pod network 10.244.0.0/16 unless opts
// says otherwise; its handlers are driven directly.
func newTestLive(opts LiveOptions) (*Live, *clocktesting.FakeClock) {
	clock := clocktesting.NewFakeClock(t0)
	opts.Now = clock.Now
	if opts.PodCIDRs == nil {
		opts.PodCIDRs = []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}
	}
	return newLive(opts), clock
}

// livePodObj is a running bare pod started at t0 with a named port, plus tweaks.
func livePodObj(ns, name string, tweaks ...func(*corev1.Pod)) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:         ns,
			Name:              name,
			UID:               types.UID(ns + "/" + name),
			CreationTimestamp: metav1.NewTime(t0),
			Labels:            map[string]string{"app": name},
		},
		Spec: corev1.PodSpec{
			NodeName:   "worker-1",
			Containers: []corev1.Container{{Name: "main", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: ptr.To(metav1.NewTime(t0))},
	}
	for _, tweak := range tweaks {
		tweak(pod)
	}
	return pod
}

func startedAt(t time.Time) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.CreationTimestamp = metav1.NewTime(t)
		p.Status.StartTime = ptr.To(metav1.NewTime(t))
	}
}

func withUID(uid string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.UID = types.UID(uid) } }

func ownedByRef(apiVersion, kind, name, uid string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), Controller: ptr.To(true)}}
	}
}

// ownerMeta is ReplicaSet or Job metadata as the metadata informer delivers it, controlled
// by ctrlKind/ctrlName unless that is empty.
func ownerMeta(ns, name, uid, ctrlKind, ctrlName string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
	if ctrlKind != "" {
		m.OwnerReferences = []metav1.OwnerReference{{Kind: ctrlKind, Name: ctrlName, Controller: ptr.To(true)}}
	}
	return m
}

// who resolves a flow from ip observed at at, as "ns/Kind/name", "node/x", an external
// address, or "unresolved".
func who(l *Live, ip string, at time.Time) string {
	return whoPeer(l, flows.Peer{IP: ip}, at)
}

func whoPeer(l *Live, p flows.Peer, at time.Time) string {
	o, ok := l.Resolve(flows.Record{Src: p, Dst: flows.Peer{IP: "203.0.113.200"}, Port: 443, LastSeen: at})
	if !ok {
		return "unresolved"
	}
	return o.Src.String()
}

func workloadID(ns, name string) flows.PeerID {
	return flows.PeerID{Kind: flows.PeerWorkload, Namespace: ns, Name: name}
}

func TestLiveOwnerChain(t *testing.T) {
	tests := []struct {
		name       string
		owners     map[string]*metav1.PartialObjectMetadata // by kind
		ownerAfter bool                                     // the owner's metadata arrives after the pod
		pod        *corev1.Pod
		want       string
	}{{
		name:   "pod of a Deployment's ReplicaSet is the Deployment",
		owners: map[string]*metav1.PartialObjectMetadata{kindReplicaSet: ownerMeta("shop", "cart-5c8d", "rs-1", "Deployment", "cart")},
		pod:    livePodObj("shop", "cart-5c8d-q1", ownedByRef("apps/v1", "ReplicaSet", "cart-5c8d", "rs-1")),
		want:   "Deployment/cart",
	}, {
		name:       "ReplicaSet learned after its pods moves them to the Deployment",
		owners:     map[string]*metav1.PartialObjectMetadata{kindReplicaSet: ownerMeta("shop", "cart-v2", "rs-1", "Deployment", "cart")},
		ownerAfter: true,
		pod:        livePodObj("shop", "cart-v2-q1", ownedByRef("apps/v1", "ReplicaSet", "cart-v2", "rs-1")),
		want:       "Deployment/cart",
	}, {
		name:   "ReplicaSet without a controller is its own workload, whatever its name says",
		owners: map[string]*metav1.PartialObjectMetadata{kindReplicaSet: ownerMeta("shop", "web-7d9f", "rs-1", "", "")},
		pod: livePodObj("shop", "web-7d9f-q1", ownedByRef("apps/v1", "ReplicaSet", "web-7d9f", "rs-1"),
			withLabels(map[string]string{"pod-template-hash": "7d9f"})),
		want: "ReplicaSet/web-7d9f",
	}, {
		name: "unknown ReplicaSet falls back to the pod-template-hash",
		pod: livePodObj("shop", "web-7d9f-q1", ownedByRef("apps/v1", "ReplicaSet", "web-7d9f", "rs-1"),
			withLabels(map[string]string{"pod-template-hash": "7d9f"})),
		want: "Deployment/web",
	}, {
		name:   "ReplicaSet with another UID is not the pod's owner",
		owners: map[string]*metav1.PartialObjectMetadata{kindReplicaSet: ownerMeta("shop", "web-7d9f", "rs-2", "Deployment", "other")},
		pod: livePodObj("shop", "web-7d9f-q1", ownedByRef("apps/v1", "ReplicaSet", "web-7d9f", "rs-1"),
			withLabels(map[string]string{"pod-template-hash": "7d9f"})),
		want: "Deployment/web",
	}, {
		name:   "ReplicaSet of another API group is not followed",
		owners: map[string]*metav1.PartialObjectMetadata{kindReplicaSet: ownerMeta("shop", "web", "rs-1", "Deployment", "other")},
		pod:    livePodObj("shop", "web-q1", ownedByRef("example.com/v1", "ReplicaSet", "web", "rs-1")),
		want:   "ReplicaSet/web",
	}, {
		name:   "pod of a CronJob's Job is the CronJob, whatever the Job is called",
		owners: map[string]*metav1.PartialObjectMetadata{kindJob: ownerMeta("batch", "report-manual", "job-1", "CronJob", "report")},
		pod:    livePodObj("batch", "report-manual-x1", ownedByRef("batch/v1", "Job", "report-manual", "job-1")),
		want:   "CronJob/report",
	}, {
		name:       "Job learned after its pods moves them to the CronJob",
		owners:     map[string]*metav1.PartialObjectMetadata{kindJob: ownerMeta("batch", "report-manual", "job-1", "CronJob", "report")},
		ownerAfter: true,
		pod:        livePodObj("batch", "report-manual-x1", ownedByRef("batch/v1", "Job", "report-manual", "job-1")),
		want:       "CronJob/report",
	}, {
		name:   "Job without a controller is its own workload even with a CronJob-like name",
		owners: map[string]*metav1.PartialObjectMetadata{kindJob: ownerMeta("batch", "backup-29000000", "job-1", "", "")},
		pod:    livePodObj("batch", "backup-29000000-x1", ownedByRef("batch/v1", "Job", "backup-29000000", "job-1")),
		want:   "Job/backup-29000000",
	}, {
		name: "unknown Job with a CronJob-like name falls back to the CronJob",
		pod:  livePodObj("batch", "report-29000000-x1", ownedByRef("batch/v1", "Job", "report-29000000", "job-1")),
		want: "CronJob/report",
	}, {
		name: "StatefulSet pod",
		pod:  livePodObj("bank", "db-0", ownedByRef("apps/v1", "StatefulSet", "db", "sts-1")),
		want: "StatefulSet/db",
	}, {
		name: "DaemonSet pod",
		pod:  livePodObj("monitoring", "agent-x1", ownedByRef("apps/v1", "DaemonSet", "agent", "ds-1")),
		want: "DaemonSet/agent",
	}, {
		name: "bare pod is its own workload",
		pod:  livePodObj("web", "debug"),
		want: "Pod/debug",
	}, {
		name: "static pod is its own workload",
		pod:  livePodObj("kube-system", "etcd-worker-1", ownedByRef("v1", "Node", "worker-1", "node-1")),
		want: "Pod/etcd-worker-1",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newTestLive(LiveOptions{})
			addOwners := func() {
				for kind, m := range tt.owners {
					l.upsertOwner(kind)(m)
				}
			}
			if !tt.ownerAfter {
				addOwners()
			}
			l.upsertPod(tt.pod)
			if tt.ownerAfter {
				addOwners()
			}
			ns := tt.pod.Namespace
			want := []flows.PeerID{workloadID(ns, tt.want)}
			if got := l.WorkloadsIn(ns); !reflect.DeepEqual(got, want) {
				t.Errorf("WorkloadsIn(%s) = %v, want %v", ns, got, want)
			}
			if got, wantPeer := whoPeer(l, flows.Peer{Namespace: ns, Pod: tt.pod.Name}, t0), ns+"/"+tt.want; got != wantPeer {
				t.Errorf("pod %s resolves to %s, want %s", tt.pod.Name, got, wantPeer)
			}
		})
	}
}

func TestLiveOwnerDeletedKeepsWorkloadOfItsPods(t *testing.T) {
	l, _ := newTestLive(LiveOptions{})
	l.upsertOwner(kindReplicaSet)(ownerMeta("shop", "cart-v2", "rs-1", "Deployment", "cart"))
	pod := livePodObj("shop", "cart-v2-q1", ownedByRef("apps/v1", "ReplicaSet", "cart-v2", "rs-1"))
	l.upsertPod(pod)
	l.deleteOwner(kindReplicaSet)(types.NamespacedName{Namespace: "shop", Name: "cart-v2"})
	l.upsertPod(pod) // the pod, being deleted with its ReplicaSet, changes meanwhile
	if got := whoPeer(l, flows.Peer{Namespace: "shop", Pod: "cart-v2-q1"}, t0); got != "shop/Deployment/cart" {
		t.Errorf("pod of a deleted ReplicaSet resolves to %s, want shop/Deployment/cart", got)
	}
	l.deletePod(types.NamespacedName{Namespace: "shop", Name: "cart-v2-q1"})
	if len(l.owners) != 0 {
		t.Errorf("owners left after the ReplicaSet and its pods are gone: %v", l.owners)
	}
}

// TestLiveIPHistory follows an address through a restart and a reuse: the pod of
// Deployment shop/cart holds 10.244.1.10 from t0, is deleted at +10m, its replacement
// starts at +10m30s with a new address, and a bare pod of namespace web starting at
// +11m30s is given the old one.
func TestLiveIPHistory(t *testing.T) {
	l, clock := newTestLive(LiveOptions{IPGrace: 5 * time.Minute})
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	rs := ownedByRef("apps/v1", "ReplicaSet", "cart-5c8d", "rs-1")
	l.upsertOwner(kindReplicaSet)(ownerMeta("shop", "cart-5c8d", "rs-1", "Deployment", "cart"))

	clock.SetTime(at(time.Second))
	l.upsertPod(livePodObj("shop", "cart-5c8d-a", rs)) // created, no address yet
	clock.SetTime(at(2 * time.Second))
	l.upsertPod(livePodObj("shop", "cart-5c8d-a", rs, withIP("10.244.1.10")))

	clock.SetTime(at(10 * time.Minute))
	l.deletePod(types.NamespacedName{Namespace: "shop", Name: "cart-5c8d-a"})
	clock.SetTime(at(11 * time.Minute))
	l.upsertPod(livePodObj("shop", "cart-5c8d-b", rs, startedAt(at(10*time.Minute+30*time.Second)), withIP("10.244.1.11")))
	clock.SetTime(at(12 * time.Minute))
	l.upsertPod(livePodObj("web", "debug", startedAt(at(11*time.Minute+30*time.Second)), withIP("10.244.1.10")))

	type check struct {
		ip   string
		at   time.Time
		want string
	}
	for _, c := range []check{
		{"10.244.1.10", at(-time.Minute), "unresolved"}, // before the first pod started
		{"10.244.1.10", at(time.Second), "shop/Deployment/cart"},
		{"10.244.1.10", at(5 * time.Minute), "shop/Deployment/cart"},
		{"10.244.1.10", at(10*time.Minute - time.Second), "shop/Deployment/cart"},
		{"10.244.1.10", at(10*time.Minute + 45*time.Second), "unresolved"}, // nobody held it
		{"10.244.1.10", at(11*time.Minute + 31*time.Second), "web/Pod/debug"},
		{"10.244.1.10", at(time.Hour), "web/Pod/debug"},
		{"10.244.1.11", at(5 * time.Minute), "unresolved"},
		{"10.244.1.11", at(10*time.Minute + 31*time.Second), "shop/Deployment/cart"},
	} {
		if got := who(l, c.ip, c.at); got != c.want {
			t.Errorf("at +%s: %s resolves to %s, want %s", c.at.Sub(t0), c.ip, got, c.want)
		}
	}
	if got := whoPeer(l, flows.Peer{Namespace: "shop", Pod: "cart-5c8d-a"}, at(9*time.Minute)); got != "shop/Deployment/cart" {
		t.Errorf("deleted pod by name within the grace period resolves to %s", got)
	}

	// Past the grace period the old pod is forgotten: its late flows are unresolved, never
	// given to the pod that has the address now.
	clock.SetTime(at(15*time.Minute + time.Second))
	if got := who(l, "10.244.1.10", at(5*time.Minute)); got != "unresolved" {
		t.Errorf("past the grace period, the old holder's flow resolves to %s", got)
	}
	if got := whoPeer(l, flows.Peer{Namespace: "shop", Pod: "cart-5c8d-a"}, at(9*time.Minute)); got != "unresolved" {
		t.Errorf("deleted pod by name past the grace period resolves to %s", got)
	}
	l.upsertNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}) // any event sweeps
	l.upsertPod(livePodObj("web", "debug", startedAt(at(11*time.Minute+30*time.Second)), withIP("10.244.1.10")))
	if hs := l.byIP[netip.MustParseAddr("10.244.1.10")]; len(hs) != 1 || hs[0].pod == nil {
		t.Errorf("history of 10.244.1.10 after the sweep: %+v, want only the current holder", hs)
	}
	if _, ok := l.gone[types.NamespacedName{Namespace: "shop", Name: "cart-5c8d-a"}]; ok {
		t.Error("deleted pod's name kept past the grace period")
	}
}

// A pod seen with an address another pod still lists (its deletion or completion not yet
// seen) takes it over from that moment; the old pod's stale status does not take it back.
func TestLiveIPTakenOverBeforeOldPodIsGone(t *testing.T) {
	l, clock := newTestLive(LiveOptions{})
	l.upsertPod(livePodObj("shop", "old", withIP("10.244.1.10")))
	clock.SetTime(t0.Add(time.Minute))
	l.upsertPod(livePodObj("shop", "new", startedAt(t0.Add(30*time.Second)), withIP("10.244.1.10")))
	clock.SetTime(t0.Add(2 * time.Minute))
	l.upsertPod(livePodObj("shop", "old", withIP("10.244.1.10"), withLabels(map[string]string{"app": "old", "v": "2"})))

	for _, c := range []struct {
		at   time.Duration
		want string
	}{
		{59 * time.Second, "shop/Pod/old"},
		{time.Minute, "shop/Pod/new"},
		{90 * time.Second, "shop/Pod/new"},
	} {
		if got := who(l, "10.244.1.10", t0.Add(c.at)); got != c.want {
			t.Errorf("at +%s: resolves to %s, want %s", c.at, got, c.want)
		}
	}
	l.deletePod(types.NamespacedName{Namespace: "shop", Name: "old"})
	if got := who(l, "10.244.1.10", t0.Add(3*time.Minute)); got != "shop/Pod/new" {
		t.Errorf("after the old pod's deletion: resolves to %s, want shop/Pod/new", got)
	}
}

// A StatefulSet pod recreated under the same name, its deletion missed by the watch.
func TestLivePodReplacedUnderSameName(t *testing.T) {
	l, clock := newTestLive(LiveOptions{})
	sts := ownedByRef("apps/v1", "StatefulSet", "db", "sts-1")
	l.upsertPod(livePodObj("bank", "db-0", sts, withIP("10.244.1.10")))
	clock.SetTime(t0.Add(time.Minute))
	l.upsertPod(livePodObj("bank", "db-0", sts, withUID("db-0-second"), startedAt(t0.Add(50*time.Second)), withIP("10.244.1.20")))
	if got := who(l, "10.244.1.10", t0.Add(30*time.Second)); got != "bank/StatefulSet/db" {
		t.Errorf("first pod's address resolves to %s", got)
	}
	if got := who(l, "10.244.1.10", t0.Add(2*time.Minute)); got != "unresolved" {
		t.Errorf("first pod's address after it was replaced resolves to %s", got)
	}
	if got := who(l, "10.244.1.20", t0.Add(2*time.Minute)); got != "bank/StatefulSet/db" {
		t.Errorf("second pod's address resolves to %s", got)
	}
	if n := len(l.pods); n != 1 {
		t.Errorf("%d pods held, want 1", n)
	}
}

func TestLiveFinishedPodReleasesIP(t *testing.T) {
	l, clock := newTestLive(LiveOptions{})
	l.upsertOwner(kindJob)(ownerMeta("batch", "report-manual", "job-1", "CronJob", "report"))
	job := ownedByRef("batch/v1", "Job", "report-manual", "job-1")
	l.upsertPod(livePodObj("batch", "report-manual-x1", job, withIP("10.244.1.30")))
	clock.SetTime(t0.Add(time.Minute))
	l.upsertPod(livePodObj("batch", "report-manual-x1", job, withIP("10.244.1.30"), phase(corev1.PodSucceeded)))

	if got := who(l, "10.244.1.30", t0.Add(30*time.Second)); got != "batch/CronJob/report" {
		t.Errorf("while running: resolves to %s", got)
	}
	if got := who(l, "10.244.1.30", t0.Add(2*time.Minute)); got != "unresolved" {
		t.Errorf("after it finished (its status still lists the address): resolves to %s", got)
	}
	// The finished pod is still known by name.
	if got := whoPeer(l, flows.Peer{Namespace: "batch", Pod: "report-manual-x1"}, t0.Add(2*time.Minute)); got != "batch/CronJob/report" {
		t.Errorf("finished pod by name resolves to %s", got)
	}
	clock.SetTime(t0.Add(3 * time.Minute))
	l.upsertPod(livePodObj("shop", "next", startedAt(t0.Add(2*time.Minute)), withIP("10.244.1.30")))
	if got := who(l, "10.244.1.30", t0.Add(150*time.Second)); got != "shop/Pod/next" {
		t.Errorf("after reuse: resolves to %s", got)
	}
}

// CronJob between runs: its Job and pod are gone, the CronJob is still judged by the labels
// and ports its pods had.
func TestLiveCronJobBetweenRuns(t *testing.T) {
	l, clock := newTestLive(LiveOptions{})
	l.upsertOwner(kindJob)(ownerMeta("batch", "report-29000000", "job-1", "CronJob", "report"))
	job := ownedByRef("batch/v1", "Job", "report-29000000", "job-1")
	labels := map[string]string{"app": "report", "batch.kubernetes.io/job-name": "report-29000000"}
	l.upsertPod(livePodObj("batch", "report-29000000-x1", job, withLabels(labels), withIP("10.244.1.30")))
	id := workloadID("batch", "CronJob/report")
	before := l.Endpoint(id, nil)

	clock.SetTime(t0.Add(time.Minute))
	l.upsertPod(livePodObj("batch", "report-29000000-x1", job, withLabels(labels), withIP("10.244.1.30"), phase(corev1.PodSucceeded)))
	l.deletePod(types.NamespacedName{Namespace: "batch", Name: "report-29000000-x1"})
	l.deleteOwner(kindJob)(types.NamespacedName{Namespace: "batch", Name: "report-29000000"})

	ep := l.Endpoint(id, nil)
	if ep != before {
		t.Error("endpoint changed although the labels and ports did not")
	}
	// Between runs the CronJob is judged as its last run's pod was: its labels and ports,
	// and where it ran (a probe from that node was its kubelet's).
	want := &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "batch", Name: "CronJob/report", Labels: labels,
		Ports: []evaluator.ContainerPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}},
		Pod:   "report-29000000-x1", NodeName: "worker-1", IP: netip.MustParseAddr("10.244.1.30")}
	if !reflect.DeepEqual(ep, want) {
		t.Errorf("endpoint between runs = %+v, want %+v", ep, want)
	}
	if got := l.WorkloadsIn("batch"); !reflect.DeepEqual(got, []flows.PeerID{id}) {
		t.Errorf("WorkloadsIn(batch) = %v", got)
	}
	if got := who(l, "10.244.1.30", t0.Add(30*time.Second)); got != "batch/CronJob/report" {
		t.Errorf("late flow of the finished run resolves to %s", got)
	}
	o, ok := l.Resolve(flows.Record{Src: flows.Peer{Namespace: "batch", Pod: "report-29000000-x1"}, Dst: flows.Peer{IP: "8.8.8.8"}, Port: 53, Protocol: "UDP", LastSeen: t0.Add(30 * time.Second)})
	if !ok || o.SrcInfo == nil || !maps.Equal(o.SrcInfo.Labels, labels) {
		t.Errorf("deleted pod by name: %+v, %v; want the CronJob with its labels", o, ok)
	}
}

func TestLiveScaleToZeroKeepsLabels(t *testing.T) {
	l, clock := newTestLive(LiveOptions{WorkloadMemory: time.Hour})
	l.upsertOwner(kindReplicaSet)(ownerMeta("shop", "cart-5c8d", "rs-1", "Deployment", "cart"))
	labels := map[string]string{"app": "cart", "pod-template-hash": "5c8d"}
	rs := ownedByRef("apps/v1", "ReplicaSet", "cart-5c8d", "rs-1")
	l.upsertPod(livePodObj("shop", "cart-5c8d-a", rs, withLabels(labels), withIP("10.244.1.10")))
	l.upsertPod(livePodObj("shop", "cart-5c8d-b", rs, withLabels(labels), withIP("10.244.1.11")))
	id := workloadID("shop", "Deployment/cart")
	if ep := l.Endpoint(id, nil); len(ep.Pods) != 2 || ep.Pods[0].Pod != "cart-5c8d-a" || ep.Pods[1].IP != netip.MustParseAddr("10.244.1.11") {
		t.Fatalf("workload of two pods: endpoint pods %v, want cart-5c8d-a and cart-5c8d-b with their addresses", ep.Pods)
	}
	o, _ := l.Resolve(flows.Record{Src: flows.Peer{IP: "10.244.1.10"}, Dst: flows.Peer{IP: "10.244.1.11"}, Port: 80})
	if o.SrcInfo == nil || o.SrcInfo != o.DstInfo {
		t.Fatalf("two pods of one workload give infos %p and %p, want one shared pointer", o.SrcInfo, o.DstInfo)
	}
	info := o.SrcInfo

	clock.SetTime(t0.Add(time.Minute))
	l.deletePod(types.NamespacedName{Namespace: "shop", Name: "cart-5c8d-a"})
	ep := l.Endpoint(id, nil)
	if ep.Pod != "cart-5c8d-b" || ep.IP != netip.MustParseAddr("10.244.1.11") || len(ep.Pods) != 0 {
		t.Errorf("one pod left: endpoint %+v, want that pod's name and address", ep)
	}
	l.deletePod(types.NamespacedName{Namespace: "shop", Name: "cart-5c8d-b"})
	if got := l.Endpoint(id, nil); got != ep || !maps.Equal(got.Labels, labels) {
		t.Errorf("scaled to zero: endpoint %+v (same pointer: %v), want the labels %v and the last pod kept", got, got == ep, labels)
	}
	if got := l.infoOf(id); got != info {
		t.Error("scaled to zero: info pointer changed")
	}

	// Scaled up again with the same template: still the same pointers.
	clock.SetTime(t0.Add(2 * time.Minute))
	l.upsertPod(livePodObj("shop", "cart-5c8d-c", rs, startedAt(t0.Add(2*time.Minute)), withLabels(labels), withIP("10.244.1.12")))
	if got := l.Endpoint(id, nil); got.IP != netip.MustParseAddr("10.244.1.12") || !maps.Equal(got.Labels, labels) {
		t.Errorf("scaled up: endpoint %+v, want the new pod's address with the same labels", got)
	}
	if got := l.infoOf(id); got != info {
		t.Error("scaled up with unchanged labels: info pointer changed")
	}

	// Past WorkloadMemory with no pod, the workload is forgotten; the flow cache's stored
	// info takes over.
	l.deletePod(types.NamespacedName{Namespace: "shop", Name: "cart-5c8d-c"})
	clock.SetTime(t0.Add(2*time.Minute + time.Hour))
	l.upsertNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	if got := l.WorkloadsIn("shop"); len(got) != 0 {
		t.Errorf("WorkloadsIn(shop) past the memory: %v", got)
	}
	stored := &flows.PeerInfo{Labels: map[string]string{"app": "cart", "from": "snapshot"}}
	got := l.Endpoint(id, stored)
	if !maps.Equal(got.Labels, stored.Labels) || got.Kind != evaluator.Pod || got.Name != "Deployment/cart" {
		t.Errorf("forgotten workload: endpoint %+v, want the stored labels", got)
	}
	if l.Endpoint(id, stored) != got {
		t.Error("forgotten workload: same stored info gives another endpoint")
	}
	if l.Endpoint(id, &flows.PeerInfo{Labels: map[string]string{"app": "other"}}) == got {
		t.Error("forgotten workload: other stored info gives the same endpoint")
	}
}

func TestLiveWorkloadLabelsFollowNewestRunningPod(t *testing.T) {
	l, clock := newTestLive(LiveOptions{})
	id := workloadID("shop", "StatefulSet/db")
	sts := ownedByRef("apps/v1", "StatefulSet", "db", "sts-1")
	l.upsertPod(livePodObj("shop", "db-0", sts, withLabels(map[string]string{"app": "db", "v": "1"})))
	first := l.Endpoint(id, nil)

	// A label change on the pod that speaks for the workload: a new endpoint.
	l.upsertPod(livePodObj("shop", "db-0", sts, withLabels(map[string]string{"app": "db", "v": "2"})))
	second := l.Endpoint(id, nil)
	if second == first || second.Labels["v"] != "2" {
		t.Errorf("after relabel: endpoint %+v (new pointer: %v), want v=2", second, second != first)
	}
	// An older pod's labels do not speak for the workload while a newer one runs.
	clock.SetTime(t0.Add(time.Minute))
	l.upsertPod(livePodObj("shop", "db-1", sts, startedAt(t0.Add(time.Minute)), withLabels(map[string]string{"app": "db", "v": "3"})))
	l.upsertPod(livePodObj("shop", "db-0", sts, withLabels(map[string]string{"app": "db", "v": "2", "x": "y"})))
	if got := l.Endpoint(id, nil); got.Labels["v"] != "3" {
		t.Errorf("labels %v, want the newest pod's (v=3)", got.Labels)
	}
	// The newest finishes: the running one speaks.
	l.upsertPod(livePodObj("shop", "db-1", sts, startedAt(t0.Add(time.Minute)), withLabels(map[string]string{"app": "db", "v": "3"}), phase(corev1.PodFailed)))
	if got := l.Endpoint(id, nil); got.Labels["x"] != "y" {
		t.Errorf("labels %v, want the running pod's (x=y)", got.Labels)
	}
}

func TestLiveNodesHostNetworkAndExternal(t *testing.T) {
	l, clock := newTestLive(LiveOptions{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.100.0.0/16")}})
	node := makeNode("worker-1",
		corev1.NodeAddress{Type: corev1.NodeHostName, Address: "worker-1"},
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.168.0.11"},
		corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.11"})
	node.Spec.PodCIDRs = []string{"10.244.1.0/24"}
	l.upsertNode(node)
	l.upsertPod(livePodObj("monitoring", "exporter", hostNetwork, onNode("worker-2", "192.168.0.12"), withIP("192.168.0.12")))
	l.upsertPod(livePodObj("shop", "cart", withIP("10.244.1.10")))

	for _, c := range []struct {
		name string
		peer flows.Peer
		want string
	}{
		{"node internal address", flows.Peer{IP: "192.168.0.11"}, "node/worker-1"},
		{"node external address", flows.Peer{IP: "203.0.113.11"}, "node/worker-1"},
		{"host-network pod by address (its Node unknown)", flows.Peer{IP: "192.168.0.12"}, "node/worker-2"},
		{"host-network pod by name", flows.Peer{Namespace: "monitoring", Pod: "exporter"}, "node/worker-2"},
		{"host-network pod by address with its namespace", flows.Peer{Namespace: "monitoring", IP: "192.168.0.12"}, "node/worker-2"},
		{"pod by address with its namespace", flows.Peer{Namespace: "shop", IP: "10.244.1.10"}, "shop/Pod/cart"},
		{"pod by address with another namespace", flows.Peer{Namespace: "web", IP: "10.244.1.10"}, "unresolved"},
		{"IPv4-mapped pod address", flows.Peer{IP: "::ffff:10.244.1.10"}, "shop/Pod/cart"},
		{"unknown address in a node's podCIDRs", flows.Peer{IP: "10.244.1.99"}, "unresolved"},
		{"unknown address in the configured pod CIDRs", flows.Peer{IP: "10.100.3.3"}, "unresolved"},
		{"address outside the cluster", flows.Peer{IP: "8.8.8.8"}, "8.8.8.8"},
		{"address next to the cluster", flows.Peer{IP: "10.244.2.1"}, "10.244.2.1"},
		{"outside address said to be a pod", flows.Peer{Namespace: "shop", IP: "8.8.8.8"}, "unresolved"},
		{"unknown pod", flows.Peer{Namespace: "shop", Pod: "nope"}, "unresolved"},
		{"unknown pod with its workload", flows.Peer{Namespace: "shop", Pod: "nope", Workload: "Deployment/nope"}, "shop/Deployment/nope"},
		{"unknown pod with a known address", flows.Peer{Namespace: "shop", Pod: "nope", IP: "10.244.1.10"}, "shop/Pod/cart"},
		{"labels alone", flows.Peer{Namespace: "shop", Labels: map[string]string{"app": "cart"}}, "unresolved"},
		{"invalid address", flows.Peer{IP: "10.0.0.300"}, "unresolved"},
		{"host-network workload by name alone", flows.Peer{Namespace: "monitoring", Workload: "Pod/exporter"}, "unresolved"},
		{"host-network workload by name and address", flows.Peer{Namespace: "monitoring", Workload: "Pod/exporter", IP: "192.168.0.12"}, "node/worker-2"},
	} {
		if got := whoPeer(l, c.peer, t0); got != c.want {
			t.Errorf("%s: %+v resolves to %s, want %s", c.name, c.peer, got, c.want)
		}
	}

	if got := l.WorkloadsIn("monitoring"); len(got) != 0 {
		t.Errorf("WorkloadsIn(monitoring) = %v, want no host-network workload", got)
	}

	ep := l.Endpoint(flows.PeerID{Kind: flows.PeerNode, Name: "worker-1"}, nil)
	want := &evaluator.Endpoint{Kind: evaluator.Node, Name: "worker-1", NodeName: "worker-1", IP: netip.MustParseAddr("192.168.0.11")}
	if !reflect.DeepEqual(ep, want) {
		t.Errorf("node endpoint %+v, want %+v", ep, want)
	}
	ext := l.Endpoint(flows.PeerID{Kind: flows.PeerExternal, IP: netip.MustParseAddr("8.8.8.8")}, nil)
	if ext.Kind != evaluator.External || ext.IP.String() != "8.8.8.8" || l.Endpoint(flows.PeerID{Kind: flows.PeerExternal, IP: netip.MustParseAddr("8.8.8.8")}, nil) != ext {
		t.Errorf("external endpoint %+v, or not interned", ext)
	}
	if got := l.Endpoint(flows.PeerID{Kind: flows.PeerNode, Name: "worker-9"}, nil); got.Kind != evaluator.Node || got.NodeName != "worker-9" {
		t.Errorf("unknown node endpoint %+v", got)
	}

	// A deleted node's addresses are remembered for the grace period; its podCIDRs go.
	clock.SetTime(t0.Add(time.Minute))
	l.deleteNode(types.NamespacedName{Name: "worker-1"})
	if got := who(l, "192.168.0.11", t0.Add(30*time.Second)); got != "node/worker-1" {
		t.Errorf("deleted node's address within the grace period resolves to %s", got)
	}
	if got := who(l, "10.244.1.99", t0); got != "10.244.1.99" {
		t.Errorf("address in a deleted node's podCIDRs resolves to %s, want external", got)
	}
	clock.SetTime(t0.Add(time.Minute + DefaultIPGrace))
	if got := who(l, "192.168.0.11", t0.Add(30*time.Second)); got != "192.168.0.11" {
		t.Errorf("deleted node's address past the grace period resolves to %s, want external", got)
	}
	// The host-network pod's address goes with the pod.
	l.deletePod(types.NamespacedName{Namespace: "monitoring", Name: "exporter"})
	if got := who(l, "192.168.0.12", t0); got != "192.168.0.12" {
		t.Errorf("after the host-network pod is gone its address resolves to %s, want external", got)
	}
}

func TestLiveResolveRecord(t *testing.T) {
	l, clock := newTestLive(LiveOptions{})
	l.upsertPod(livePodObj("shop", "cart", withIP("10.244.1.10")))
	clock.SetTime(t0.Add(time.Hour))

	o, ok := l.Resolve(flows.Record{
		Src:  flows.Peer{Namespace: "web", Workload: "Deployment/web", Labels: map[string]string{"app": "web"}},
		Dst:  flows.Peer{IP: "10.244.1.10"},
		Port: 8080, Count: 7,
	})
	if !ok {
		t.Fatal("unresolved")
	}
	want := flows.Observation{
		Src: workloadID("web", "Deployment/web"), Dst: workloadID("shop", "Pod/cart"),
		SrcInfo: &flows.PeerInfo{Labels: map[string]string{"app": "web"}},
		DstInfo: &flows.PeerInfo{Labels: map[string]string{"app": "cart"}, Ports: []evaluator.ContainerPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}},
		Port:    8080, Protocol: corev1.ProtocolTCP, Seen: t0.Add(time.Hour), Count: 7,
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("Resolve = %+v, want %+v", o, want)
	}
	// The source's labels of a workload the view does not know are interned.
	o2, _ := l.Resolve(flows.Record{Src: flows.Peer{Namespace: "web", Workload: "Deployment/web", Labels: map[string]string{"app": "web"}}, Dst: flows.Peer{IP: "10.244.1.10"}, Port: 8080})
	if o2.SrcInfo != o.SrcInfo || o2.DstInfo != o.DstInfo {
		t.Error("same labels gave new info pointers")
	}
	// A workload the view knows is judged by its pods, not by what the source says.
	o3, _ := l.Resolve(flows.Record{Src: flows.Peer{Namespace: "shop", Workload: "Pod/cart", Labels: map[string]string{"app": "lie"}}, Dst: flows.Peer{IP: "8.8.8.8"}, Port: 53, Protocol: "UDP"})
	if o3.SrcInfo != o.DstInfo || o3.Protocol != corev1.ProtocolUDP {
		t.Errorf("known workload by name: info %+v protocol %s", o3.SrcInfo, o3.Protocol)
	}
	// One unresolved end leaves the whole flow unresolved.
	if _, ok := l.Resolve(flows.Record{Src: flows.Peer{IP: "10.244.9.9"}, Dst: flows.Peer{IP: "10.244.1.10"}, Port: 80}); ok {
		t.Error("flow from an unknown in-cluster address resolved")
	}
}

func TestLiveWorld(t *testing.T) {
	l, _ := newTestLive(LiveOptions{})
	l.upsertNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "payments"}}})
	node := makeNode("worker-1", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.168.0.11"})
	node.Labels = map[string]string{"topology.kubernetes.io/zone": "a"}
	l.upsertNode(node)
	w := l.World()
	want := &evaluator.World{
		NamespaceLabels: map[string]map[string]string{"shop": {"team": "payments", corev1.LabelMetadataName: "shop"}},
		NodeAddresses:   map[string][]netip.Addr{"worker-1": {netip.MustParseAddr("192.168.0.11")}},
		NodeLabels:      map[string]map[string]string{"worker-1": {"topology.kubernetes.io/zone": "a"}},
	}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("World = %+v, want %+v", w, want)
	}
	// A heartbeat (same addresses) and an unchanged namespace keep the World.
	hb := node.DeepCopy()
	hb.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	l.upsertNode(hb)
	l.upsertNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "payments"}}})
	if l.World() != w {
		t.Error("World rebuilt although nothing it holds changed")
	}
	l.upsertNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "checkout"}}})
	w2 := l.World()
	if w2 == w || w2.NamespaceLabels["shop"]["team"] != "checkout" || w.NamespaceLabels["shop"]["team"] != "payments" {
		t.Errorf("after a label change: new World %v, old one %v", w2.NamespaceLabels, w.NamespaceLabels)
	}
	relabelled := hb.DeepCopy()
	relabelled.Labels = map[string]string{"topology.kubernetes.io/zone": "b"}
	l.upsertNode(relabelled)
	if got := l.World().NodeLabels["worker-1"]["topology.kubernetes.io/zone"]; got != "b" {
		t.Errorf("after a node label change: zone %q, want b", got)
	}
	l.deleteNamespace(types.NamespacedName{Name: "shop"})
	l.deleteNode(types.NamespacedName{Name: "worker-1"})
	if w3 := l.World(); len(w3.NamespaceLabels) != 0 || len(w3.NodeAddresses) != 0 {
		t.Errorf("after deletes: %+v", w3)
	}
}

func TestLivePolicies(t *testing.T) {
	l, _ := newTestLive(LiveOptions{})
	np := func(ns, name, rv string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + name), ResourceVersion: rv}}
	}
	names := func(ps []*networkingv1.NetworkPolicy) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Namespace+"/"+p.Name)
		}
		return out
	}
	l.upsertPolicy(np("shop", "b", "1"))
	l.upsertPolicy(np("shop", "a", "1"))
	l.upsertPolicy(np("bank", "z", "1"))
	if got, want := names(l.Policies()), []string{"bank/z", "shop/a", "shop/b"}; !slices.Equal(got, want) {
		t.Errorf("Policies = %v, want %v", got, want)
	}
	before := l.PoliciesIn("shop")
	if got, want := names(before), []string{"shop/a", "shop/b"}; !slices.Equal(got, want) {
		t.Errorf("PoliciesIn(shop) = %v, want %v", got, want)
	}
	l.upsertPolicy(np("shop", "a", "2"))
	if got := l.PoliciesIn("shop")[0]; got.ResourceVersion != "2" || before[0].ResourceVersion != "1" {
		t.Errorf("after update: %s, and the list handed out before has %s", got.ResourceVersion, before[0].ResourceVersion)
	}
	l.deletePolicy(types.NamespacedName{Namespace: "shop", Name: "a"})
	l.deletePolicy(types.NamespacedName{Namespace: "bank", Name: "z"})
	if got, want := names(l.Policies()), []string{"shop/b"}; !slices.Equal(got, want) {
		t.Errorf("after deletes: Policies = %v, want %v", got, want)
	}
	if got := l.PoliciesIn("bank"); len(got) != 0 {
		t.Errorf("PoliciesIn(bank) = %v", names(got))
	}
}

func TestLiveHandlerDeletesByTombstone(t *testing.T) {
	l, _ := newTestLive(LiveOptions{})
	h := handler(l.upsertPod, l.deletePod)
	pod := livePodObj("shop", "cart", withIP("10.244.1.10"))
	h.OnAdd(pod, true)
	h.OnUpdate(pod, livePodObj("shop", "cart", withIP("10.244.1.10"), withLabels(map[string]string{"app": "v2"})))
	if got := l.Endpoint(workloadID("shop", "Pod/cart"), nil).Labels["app"]; got != "v2" {
		t.Errorf("after update: app=%s", got)
	}
	h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "shop/cart"})
	if len(l.pods) != 0 {
		t.Error("tombstone without its object did not delete the pod")
	}
	h.OnAdd("not a pod", false) // ignored
}

// TestLiveConcurrent runs handlers and lookups together, for the race detector.
func TestLiveConcurrent(t *testing.T) {
	l, clock := newTestLive(LiveOptions{IPGrace: time.Second})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 300 {
				name := fmt.Sprintf("p%d-%d", w, i%10)
				ip := fmt.Sprintf("10.244.%d.%d", w, i%10)
				if i%3 == 2 {
					l.deletePod(types.NamespacedName{Namespace: "shop", Name: name})
					continue
				}
				l.upsertPod(livePodObj("shop", name, ownedByRef("apps/v1", "ReplicaSet", "cart-5c8d", "rs-1"),
					withLabels(map[string]string{"app": "cart", "i": fmt.Sprint(i % 4)}), withIP(ip)))
				if i%50 == 0 {
					l.upsertOwner(kindReplicaSet)(ownerMeta("shop", "cart-5c8d", "rs-1", "Deployment", fmt.Sprint("cart", i%2)))
					clock.SetTime(clock.Now().Add(time.Second))
				}
			}
		})
		wg.Go(func() {
			for i := range 300 {
				o, ok := l.Resolve(flows.Record{Src: flows.Peer{IP: fmt.Sprintf("10.244.%d.%d", w, i%10)}, Dst: flows.Peer{Namespace: "shop", Pod: fmt.Sprintf("p%d-%d", w, i%10)}, Port: 80})
				if ok {
					_ = l.Endpoint(o.Src, o.SrcInfo)
				}
				_ = l.World()
				_ = l.WorkloadsIn("shop")
			}
		})
	}
	wg.Wait()

	// The end state is what the last event of each pod says, whatever the interleaving:
	// of the names p<w>-<k>, the last touch (i = 290+k) deleted those with k%3 == 0 and
	// upserted the rest, all of the ReplicaSet that Deployment cart0 owns last.
	id := workloadID("shop", "Deployment/cart0")
	ep := l.Endpoint(id, nil)
	if len(ep.Pods) != 24 {
		t.Errorf("Deployment/cart0 has %d pods, want 24", len(ep.Pods))
	}
	for w := range 4 {
		for k := range 10 {
			name := fmt.Sprintf("p%d-%d", w, k)
			_, exists := l.pods[types.NamespacedName{Namespace: "shop", Name: name}]
			if deleted := k%3 == 0; exists == deleted {
				t.Errorf("pod %s exists=%v, want %v", name, exists, !deleted)
				continue
			}
			if k%3 == 0 {
				continue
			}
			o, ok := l.Resolve(flows.Record{Src: flows.Peer{IP: fmt.Sprintf("10.244.%d.%d", w, k)}, Dst: flows.Peer{IP: "8.8.8.8"}, Port: 53})
			if !ok || o.Src != id {
				t.Errorf("address of %s resolves to %v (ok %v), want %v", name, o.Src, ok, id)
			}
		}
	}
}

// BenchmarkLiveResolve resolves flows between pods by address, as ingest does, with 10 k
// pods known.
func BenchmarkLiveResolve(b *testing.B) {
	l, _ := newTestLive(LiveOptions{})
	for i := range 10_000 {
		l.upsertPod(livePodObj("shop", fmt.Sprintf("p-%d", i), ownedByRef("apps/v1", "StatefulSet", fmt.Sprintf("s%d", i%100), ""),
			withIP(fmt.Sprintf("10.244.%d.%d", i/250, i%250))))
	}
	recs := make([]flows.Record, 1024)
	for i := range recs {
		recs[i] = flows.Record{
			Src:  flows.Peer{IP: fmt.Sprintf("10.244.%d.%d", i%40, i%250)},
			Dst:  flows.Peer{IP: fmt.Sprintf("10.244.%d.%d", (i+7)%40, (i*3)%250)},
			Port: 8080, LastSeen: t0.Add(time.Minute),
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := l.Resolve(recs[i%len(recs)]); !ok {
				b.Fatal("unresolved")
			}
			i++
		}
	})
}
