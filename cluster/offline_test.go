package cluster

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

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

func testObjects() *Objects {
	return &Objects{
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

// The offline commands resolve flow records through a view loaded from a file: the same
// rules as the webhook's informer-fed view (live_test.go), here on what files hold.

func offlineView(t *testing.T) *Live {
	t.Helper()
	return LiveFromObjects(testObjects(), LiveOptions{Now: func() time.Time { return t0 }})
}

func TestOfflineIdentify(t *testing.T) {
	tests := []struct {
		name    string
		peer    flows.Peer
		want    string // the cache identity
		wantErr string
	}{
		{name: "pod by name is its deployment", peer: flows.Peer{Namespace: "shop", Pod: "web-7d9f8b6c5d-b2"}, want: "shop/Deployment/web"},
		{name: "job pod named like a cronjob's is the cronjob", peer: flows.Peer{Namespace: "shop", Pod: "report-29000000-x1"}, want: "shop/CronJob/report"},
		{name: "host-network pod is its node", peer: flows.Peer{Namespace: "monitoring", Pod: "node-exporter-q1"}, want: "node/worker-1"},
		{name: "missing pod with an ip is who held the ip", peer: flows.Peer{Namespace: "shop", Pod: "web-gone", IP: "10.244.2.7"}, want: "shop/Deployment/web"},
		{name: "missing pod without an ip does not resolve", peer: flows.Peer{Namespace: "shop", Pod: "web-gone", Labels: map[string]string{"app": "web"}},
			wantErr: "pod shop/web-gone: names no pod or workload the cluster knows, and no ip"},
		{name: "pod without namespace is judged by its ip", peer: flows.Peer{Pod: "web-7d9f8b6c5d-b2", IP: "10.244.3.3"}, want: "bank/StatefulSet/db"},
		{name: "workload is itself", peer: flows.Peer{Namespace: "shop", Workload: "Deployment/web"}, want: "shop/Deployment/web"},
		{name: "workload the cluster does not run is taken as named", peer: flows.Peer{Namespace: "shop", Workload: "CronJob/nightly", Labels: map[string]string{"job": "nightly"}}, want: "shop/CronJob/nightly"},
		{name: "labels alone do not resolve", peer: flows.Peer{Namespace: "shop", Labels: map[string]string{"app": "cart"}}, wantErr: "labels alone"},
		{name: "IP of a running pod is that pod, not the finished pod that had it", peer: flows.Peer{IP: "10.244.1.5"}, want: "shop/Deployment/web"},
		{name: "second IP of a dual-stack pod is that pod", peer: flows.Peer{IP: "fd00::5"}, want: "shop/Deployment/web"},
		{name: "IPv4-mapped IPv6 address is the IPv4 pod", peer: flows.Peer{IP: "::ffff:10.244.3.3"}, want: "bank/StatefulSet/db"},
		{name: "IP of a node is that node", peer: flows.Peer{IP: "203.0.113.11"}, want: "node/worker-1"},
		{name: "host IP of a pod on a node the file does not list is that node", peer: flows.Peer{IP: "192.168.0.12"}, want: "node/worker-2"},
		{name: "IP of nothing known is external", peer: flows.Peer{IP: "8.8.8.8"}, want: "8.8.8.8"},
		{name: "pod IP given with another namespace does not resolve", peer: flows.Peer{Namespace: "bank", IP: "10.244.1.5"}, wantErr: "no pod of that namespace"},
		{name: "invalid IP does not resolve", peer: flows.Peer{IP: "10.0.0.300"}, wantErr: "invalid ip"},
		{name: "namespace alone does not resolve", peer: flows.Peer{Namespace: "shop"}, wantErr: "names no pod or workload"},
	}
	l := offlineView(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := l.Identify(flows.Record{Src: tc.peer, Dst: flows.Peer{IP: "8.8.8.8"}, Port: 53, LastSeen: t0})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "src: ") {
					t.Fatalf("error = %v, want src: …%s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Identify: %v", err)
			}
			if got := o.Src.String(); got != tc.want {
				t.Errorf("resolved to %s, want %s", got, tc.want)
			}
		})
	}
}

func TestOfflineEndpointCarriesPods(t *testing.T) {
	l := offlineView(t)
	web := l.Endpoint(flows.PeerID{Kind: flows.PeerWorkload, Namespace: "shop", Name: "Deployment/web"}, nil)
	webLabels := map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5d"}
	if !reflect.DeepEqual(web.Labels, webLabels) || !reflect.DeepEqual(web.Ports, webPorts) {
		t.Errorf("web: labels %v ports %v, want %v %v", web.Labels, web.Ports, webLabels, webPorts)
	}
	if !reflect.DeepEqual(web.Nodes, []string{"worker-2", "worker-1"}) && !reflect.DeepEqual(web.Nodes, []string{"worker-1", "worker-2"}) {
		t.Errorf("web runs on nodes %v, want worker-1 and worker-2", web.Nodes)
	}
	var pods []string
	for _, p := range web.Pods {
		pods = append(pods, p.Pod+"@"+p.NodeName+"/"+p.IP.String())
	}
	if want := []string{"web-7d9f8b6c5d-a1@worker-2/10.244.2.7", "web-7d9f8b6c5d-b2@worker-1/10.244.1.5"}; !reflect.DeepEqual(pods, want) {
		t.Errorf("web's pods %v, want %v", pods, want)
	}
	db := l.Endpoint(flows.PeerID{Kind: flows.PeerWorkload, Namespace: "bank", Name: "StatefulSet/db"}, nil)
	if db.Pod != "db-0" || db.NodeName != "worker-1" || db.IP != netip.MustParseAddr("10.244.3.3") || len(db.Pods) != 0 {
		t.Errorf("single-pod workload: %+v, want db-0 on worker-1 at 10.244.3.3", db)
	}
}

func TestOfflineWorld(t *testing.T) {
	w := offlineView(t).World()
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

	snap := testObjects()
	LiveFromObjects(snap, LiveOptions{})
	if _, ok := snap.Namespaces[0].Labels[corev1.LabelMetadataName]; ok {
		t.Errorf("loading changed the file's namespace labels")
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

// ExampleLiveFromObjects resolves the peers of flow records against a cluster file, as the
// offline commands do.
func ExampleLiveFromObjects() {
	l := LiveFromObjects(testObjects(), LiveOptions{})
	for _, p := range []flows.Peer{
		{Namespace: "shop", Pod: "web-7d9f8b6c5d-b2"},
		{Namespace: "monitoring", Pod: "node-exporter-q1"},
		{IP: "1.1.1.1"},
		{Namespace: "shop", Labels: map[string]string{"app": "cart"}},
	} {
		o, err := l.Identify(flows.Record{Src: p, Dst: flows.Peer{IP: "1.1.1.1"}, Port: 443})
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(l.Endpoint(o.Src, o.SrcInfo))
	}
	// Output:
	// shop/Deployment/web
	// node/worker-1
	// 1.1.1.1
	// src: peer: labels alone do not say which workload it is: give a pod, a workload or an ip
}
