package cluster

import (
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// makePod is a running pod of Deployment shop/web on worker-1, plus tweaks.
func makePod(name string, tweaks ...func(*corev1.Pod)) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop",
			Name:      name,
			Labels:    map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5d"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8b6c5d", Controller: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			NodeName: "worker-1",
			Containers: []corev1.Container{
				{Name: "web", Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 8080},
					{ContainerPort: 8081}, // unnamed: not needed for named-port rules
				}},
				{Name: "metrics", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolUDP}}},
			},
		},
		Status: corev1.PodStatus{
			Phase:   corev1.PodRunning,
			HostIP:  "192.168.0.11",
			PodIP:   "10.244.1.5",
			PodIPs:  []corev1.PodIP{{IP: "10.244.1.5"}, {IP: "fd00::5"}},
			HostIPs: []corev1.HostIP{{IP: "192.168.0.11"}},
		},
	}
	for _, tweak := range tweaks {
		tweak(pod)
	}
	return pod
}

func inNamespace(ns string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Namespace = ns } }

func withIP(ip string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Status.PodIP = ip; p.Status.PodIPs = []corev1.PodIP{{IP: ip}} }
}

func withLabels(labels map[string]string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Labels = labels }
}

func onNode(node, hostIP string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.NodeName = node
		p.Status.HostIP = hostIP
		p.Status.HostIPs = []corev1.HostIP{{IP: hostIP}}
	}
}

func ownedBy(kind, name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: name, Controller: ptr.To(true)}}
	}
}

func hostNetwork(p *corev1.Pod) {
	p.Spec.HostNetwork = true
	p.Status.PodIP = p.Status.HostIP
	p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.HostIP}}
}

func phase(ph corev1.PodPhase) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Status.Phase = ph } }

func makeNode(name string, addrs ...corev1.NodeAddress) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: addrs}}
}

func testSnapshot() *Snapshot {
	return &Snapshot{
		Namespaces: []*corev1.Namespace{
			{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "payments"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", Labels: map[string]string{corev1.LabelMetadataName: "kube-system"}}},
		},
		Nodes: []*corev1.Node{
			makeNode("worker-1",
				corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.168.0.11"},
				corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.11"},
				corev1.NodeAddress{Type: corev1.NodeHostName, Address: "worker-1"},
				corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: "worker-1.internal"}),
		},
		Pods: []*corev1.Pod{
			makePod("web-7d9f8b6c5d-b2"),
			makePod("web-7d9f8b6c5d-a1", withIP("10.244.2.7"), onNode("worker-2", "192.168.0.12")),
			makePod("report-29000000-x1", ownedBy("Job", "report-29000000"), withLabels(map[string]string{"job": "report"}), withIP("10.244.1.9")),
			makePod("db-0", ownedBy("StatefulSet", "db"), inNamespace("bank"), withLabels(map[string]string{"app": "db"}), withIP("10.244.3.3")),
			makePod("node-exporter-q1", ownedBy("DaemonSet", "node-exporter"), inNamespace("monitoring"), hostNetwork),
			makePod("old-1", ownedBy("Job", "old"), withIP("10.244.1.5"), phase(corev1.PodSucceeded), withLabels(map[string]string{"app": "old"})),
		},
		Policies: []*networkingv1.NetworkPolicy{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "audit", Name: "deny-all"}},
		},
	}
}

var webPorts = []evaluator.ContainerPort{
	{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP},
	{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolUDP},
}

func TestResolverEndpoint(t *testing.T) {
	webLabels := map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5d"}
	tests := []struct {
		name    string
		peer    flows.Peer
		want    evaluator.Endpoint
		wantErr string
	}{
		{
			name: "pod by name is its deployment with its labels, node, IP and named ports",
			peer: flows.Peer{Namespace: "shop", Pod: "web-7d9f8b6c5d-b2"},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/web", Labels: webLabels,
				NodeName: "worker-1", IP: netip.MustParseAddr("10.244.1.5"), Ports: webPorts},
		},
		{
			name: "labels and IP given with a pod win over the pod's",
			peer: flows.Peer{Namespace: "shop", Pod: "web-7d9f8b6c5d-b2", Labels: map[string]string{"app": "web-old"}, IP: "10.244.9.9"},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/web", Labels: map[string]string{"app": "web-old"},
				NodeName: "worker-1", IP: netip.MustParseAddr("10.244.9.9"), Ports: webPorts},
		},
		{
			name: "job pod named like a cronjob's is the cronjob",
			peer: flows.Peer{Namespace: "shop", Pod: "report-29000000-x1"},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "CronJob/report", Labels: map[string]string{"job": "report"},
				NodeName: "worker-1", IP: netip.MustParseAddr("10.244.1.9"), Ports: webPorts},
		},
		{
			name: "host-network pod is its node",
			peer: flows.Peer{Namespace: "monitoring", Pod: "node-exporter-q1"},
			want: evaluator.Endpoint{Kind: evaluator.Node, Name: "worker-1", NodeName: "worker-1", IP: netip.MustParseAddr("192.168.0.11")},
		},
		{
			name: "missing pod with labels is judged by them",
			peer: flows.Peer{Namespace: "shop", Pod: "web-gone", Labels: map[string]string{"app": "web"}},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "web-gone", Labels: map[string]string{"app": "web"}},
		},
		{
			name:    "missing pod without labels is an error",
			peer:    flows.Peer{Namespace: "shop", Pod: "x"},
			wantErr: "pod shop/x not found in the cluster and no labels given",
		},
		{
			name:    "pod without namespace is an error",
			peer:    flows.Peer{Pod: "web-7d9f8b6c5d-b2"},
			wantErr: "pod web-7d9f8b6c5d-b2: no namespace given",
		},
		{
			name: "workload is its first pod's labels and ports, without node or IP",
			peer: flows.Peer{Namespace: "shop", Workload: "Deployment/web"},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/web", Labels: webLabels, Ports: webPorts},
		},
		{
			name: "workload with the IP of one of its pods is that pod",
			peer: flows.Peer{Namespace: "shop", Workload: "Deployment/web", IP: "10.244.1.5"},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/web", Labels: webLabels,
				NodeName: "worker-1", IP: netip.MustParseAddr("10.244.1.5"), Ports: webPorts},
		},
		{
			name: "workload with an IP none of its pods has keeps the IP but no node",
			peer: flows.Peer{Namespace: "shop", Workload: "Deployment/web", IP: "10.244.7.7", Labels: map[string]string{"app": "web"}},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/web", Labels: map[string]string{"app": "web"},
				IP: netip.MustParseAddr("10.244.7.7"), Ports: webPorts},
		},
		{
			name: "statefulset workload",
			peer: flows.Peer{Namespace: "bank", Workload: "StatefulSet/db"},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "bank", Name: "StatefulSet/db", Labels: map[string]string{"app": "db"}, Ports: webPorts},
		},
		{
			name: "workload with no pods is judged by the labels given",
			peer: flows.Peer{Namespace: "shop", Workload: "CronJob/nightly", Labels: map[string]string{"job": "nightly"}},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "CronJob/nightly", Labels: map[string]string{"job": "nightly"}},
		},
		{
			name:    "workload with no pods and no labels is an error",
			peer:    flows.Peer{Namespace: "shop", Workload: "CronJob/nightly"},
			wantErr: "workload shop/CronJob/nightly not found in the cluster and no labels given",
		},
		{
			name: "labels alone are a pod with those labels",
			peer: flows.Peer{Namespace: "shop", Labels: map[string]string{"app": "cart"}},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Labels: map[string]string{"app": "cart"}},
		},
		{
			name:    "labels without a namespace are an error",
			peer:    flows.Peer{Labels: map[string]string{"app": "cart"}},
			wantErr: "peer with labels map[app:cart]: no namespace given",
		},
		{
			name: "IP of a running pod is that pod, not the finished pod that had it",
			peer: flows.Peer{IP: "10.244.1.5"},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/web", Labels: webLabels,
				NodeName: "worker-1", IP: netip.MustParseAddr("10.244.1.5"), Ports: webPorts},
		},
		{
			name: "second IP of a dual-stack pod is that pod",
			peer: flows.Peer{IP: "fd00::5"},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/web", Labels: webLabels,
				NodeName: "worker-1", IP: netip.MustParseAddr("fd00::5"), Ports: webPorts},
		},
		{
			name: "IPv4-mapped IPv6 address is the IPv4 pod",
			peer: flows.Peer{IP: "::ffff:10.244.3.3"},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "bank", Name: "StatefulSet/db", Labels: map[string]string{"app": "db"},
				NodeName: "worker-1", IP: netip.MustParseAddr("10.244.3.3"), Ports: webPorts},
		},
		{
			name: "IP of a node is that node",
			peer: flows.Peer{IP: "203.0.113.11"},
			want: evaluator.Endpoint{Kind: evaluator.Node, Name: "worker-1", NodeName: "worker-1", IP: netip.MustParseAddr("203.0.113.11")},
		},
		{
			name: "host IP of a pod on a node the snapshot does not list is that node",
			peer: flows.Peer{IP: "192.168.0.12"},
			want: evaluator.Endpoint{Kind: evaluator.Node, Name: "worker-2", NodeName: "worker-2", IP: netip.MustParseAddr("192.168.0.12")},
		},
		{
			name: "IP of nothing known is external",
			peer: flows.Peer{IP: "8.8.8.8"},
			want: evaluator.Endpoint{Kind: evaluator.External, IP: netip.MustParseAddr("8.8.8.8")},
		},
		{
			name: "unknown IP with a namespace is an unknown pod there",
			peer: flows.Peer{Namespace: "shop", IP: "10.244.8.8", Labels: map[string]string{"app": "x"}},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Labels: map[string]string{"app": "x"}, IP: netip.MustParseAddr("10.244.8.8")},
		},
		{
			name: "pod IP given with another namespace is not that pod",
			peer: flows.Peer{Namespace: "bank", IP: "10.244.1.5"},
			want: evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "bank", IP: netip.MustParseAddr("10.244.1.5")},
		},
		{
			name:    "invalid IP is an error",
			peer:    flows.Peer{IP: "10.0.0.300"},
			wantErr: `peer ip "10.0.0.300": ParseAddr("10.0.0.300"): IPv4 field has value >255`,
		},
		{
			name:    "namespace alone is an error",
			peer:    flows.Peer{Namespace: "shop"},
			wantErr: "peer in namespace shop names no pod, workload, labels or ip",
		},
		{
			name:    "empty peer is an error",
			wantErr: "empty peer",
		},
	}
	r := NewResolver(testSnapshot())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Endpoint(tc.peer)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Endpoint: %v", err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestResolverInterns(t *testing.T) {
	r := NewResolver(testSnapshot())
	resolve := func(p flows.Peer) *evaluator.Endpoint {
		t.Helper()
		e, err := r.Endpoint(p)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	byName := resolve(flows.Peer{Namespace: "shop", Pod: "web-7d9f8b6c5d-b2"})
	tests := []struct {
		name string
		peer flows.Peer
		same bool
	}{
		{"same peer again is the same endpoint", flows.Peer{Namespace: "shop", Pod: "web-7d9f8b6c5d-b2"}, true},
		{"same pod by IP is the same endpoint", flows.Peer{IP: "10.244.1.5"}, true},
		{"same pod through its workload and IP is the same endpoint", flows.Peer{Namespace: "shop", Workload: "Deployment/web", IP: "10.244.1.5"}, true},
		{"same labels given in another map are the same endpoint", flows.Peer{Namespace: "shop", Pod: "web-7d9f8b6c5d-b2",
			Labels: map[string]string{"pod-template-hash": "7d9f8b6c5d", "app": "web"}}, true},
		{"other pod of the workload is another endpoint", flows.Peer{Namespace: "shop", Pod: "web-7d9f8b6c5d-a1"}, false},
		{"workload without IP is another endpoint", flows.Peer{Namespace: "shop", Workload: "Deployment/web"}, false},
		{"other labels are another endpoint", flows.Peer{Namespace: "shop", Pod: "web-7d9f8b6c5d-b2", Labels: map[string]string{"app": "web"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(tc.peer); (got == byName) != tc.same {
				t.Errorf("same pointer = %v, want %v (%+v vs %+v)", got == byName, tc.same, *got, *byName)
			}
		})
	}

	t.Run("peer's label map is not aliased", func(t *testing.T) {
		labels := map[string]string{"app": "cart"}
		e := resolve(flows.Peer{Namespace: "shop", Labels: labels})
		labels["app"] = "changed"
		if e.Labels["app"] != "cart" {
			t.Errorf("endpoint labels changed with the peer's map")
		}
	})

	t.Run("concurrent resolution of one identity yields one endpoint", func(t *testing.T) {
		r := NewResolver(testSnapshot())
		var wg sync.WaitGroup
		got := make([]*evaluator.Endpoint, 16)
		for i := range got {
			wg.Go(func() {
				got[i], _ = r.Endpoint(flows.Peer{IP: "8.8.4.4"})
			})
		}
		wg.Wait()
		for i := range got {
			if got[i] != got[0] || got[i] == nil {
				t.Fatalf("endpoint %d = %p, want %p", i, got[i], got[0])
			}
		}
	})
}

func TestResolverWorld(t *testing.T) {
	w := NewResolver(testSnapshot()).World()
	wantNamespaces := map[string]map[string]string{
		"shop":        {"team": "payments", corev1.LabelMetadataName: "shop"},
		"kube-system": {corev1.LabelMetadataName: "kube-system"},
		"bank":        {corev1.LabelMetadataName: "bank"},       // a pod's, not listed
		"monitoring":  {corev1.LabelMetadataName: "monitoring"}, // a pod's, not listed
		"audit":       {corev1.LabelMetadataName: "audit"},      // a policy's, not listed
	}
	if !reflect.DeepEqual(w.NamespaceLabels, wantNamespaces) {
		t.Errorf("NamespaceLabels = %v\nwant %v", w.NamespaceLabels, wantNamespaces)
	}
	wantNodes := map[string][]netip.Addr{
		"worker-1": {netip.MustParseAddr("192.168.0.11"), netip.MustParseAddr("203.0.113.11")},
		"worker-2": {netip.MustParseAddr("192.168.0.12")}, // from its pods' host IPs
	}
	if !reflect.DeepEqual(w.NodeAddresses, wantNodes) {
		t.Errorf("NodeAddresses = %v\nwant %v", w.NodeAddresses, wantNodes)
	}

	snap := testSnapshot()
	NewResolver(snap)
	if _, ok := snap.Namespaces[0].Labels[corev1.LabelMetadataName]; ok {
		t.Errorf("World changed the snapshot's namespace labels")
	}
}

func TestWorkloadOf(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"replicaset named by deployment and pod-template-hash is the deployment", makePod("web-7d9f8b6c5d-b2"), "Deployment/web"},
		{"replicaset without pod-template-hash is itself", makePod("x", withLabels(nil)), "ReplicaSet/web-7d9f8b6c5d"},
		{"replicaset whose name does not end in the hash is itself", makePod("x", ownedBy("ReplicaSet", "web")), "ReplicaSet/web"},
		{"replicaset named only the hash is itself", makePod("x", ownedBy("ReplicaSet", "-7d9f8b6c5d")), "ReplicaSet/-7d9f8b6c5d"},
		{"job named cronjob-minutes is the cronjob", makePod("x", ownedBy("Job", "nightly-backup-29000000")), "CronJob/nightly-backup"},
		{"job with a short number is a job", makePod("x", ownedBy("Job", "migrate-42")), "Job/migrate-42"},
		{"job with a non-numeric suffix is a job", makePod("x", ownedBy("Job", "migrate-v2")), "Job/migrate-v2"},
		{"statefulset", makePod("db-0", ownedBy("StatefulSet", "db")), "StatefulSet/db"},
		{"daemonset", makePod("x", ownedBy("DaemonSet", "node-exporter")), "DaemonSet/node-exporter"},
		{"replicationcontroller", makePod("x", ownedBy("ReplicationController", "legacy")), "ReplicationController/legacy"},
		{"custom controller", makePod("x", ownedBy("Rollout", "canary")), "Rollout/canary"},
		{"static pod owned by its node is itself", makePod("etcd-worker-1", ownedBy("Node", "worker-1")), "Pod/etcd-worker-1"},
		{"bare pod is itself", makePod("debug", func(p *corev1.Pod) { p.OwnerReferences = nil }), "Pod/debug"},
		{"owner that is not the controller is not the workload", makePod("x", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{
				{Kind: "ConfigMap", Name: "cfg"},
				{Kind: "StatefulSet", Name: "db", Controller: ptr.To(false)},
			}
		}), "Pod/x"},
		{"controller among owners is the workload", makePod("x", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{
				{Kind: "ConfigMap", Name: "cfg"},
				{Kind: "StatefulSet", Name: "db", Controller: ptr.To(true)},
			}
		}), "StatefulSet/db"},
		{"nil pod", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := WorkloadOf(tc.pod); got != tc.want {
				t.Errorf("WorkloadOf = %q, want %q", got, tc.want)
			}
		})
	}
}

// ExampleResolver_Endpoint resolves the peers of a flow record against a snapshot.
func ExampleResolver_Endpoint() {
	r := NewResolver(testSnapshot())
	for _, p := range []flows.Peer{
		{Namespace: "shop", Pod: "web-7d9f8b6c5d-b2"},
		{Namespace: "monitoring", Pod: "node-exporter-q1"},
		{IP: "1.1.1.1"},
		{Namespace: "shop", Labels: map[string]string{"app": "cart"}},
	} {
		e, err := r.Endpoint(p)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(e.Kind, e)
	}
	// Output:
	// pod shop/Deployment/web
	// node node/worker-1
	// external 1.1.1.1
	// pod shop/
}
