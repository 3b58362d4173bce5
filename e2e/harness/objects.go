package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netpol-guard/netpol-guard/cluster"
)

// CreateCluster creates a snapshot's objects (cluster.Load reads one from files) as a
// running cluster would hold them: namespaces (existing ones get the snapshot's labels),
// nodes with their status addresses, pods with the addresses, phase and host of their
// status — set through the status subresource, since no kubelet runs here — and
// NetworkPolicies. Owners named by pods' ownerReferences are not created: the API server
// does not require them, and the webhook names a pod's workload from the names alone while
// its ReplicaSet or Job is unknown.
func (cp *ControlPlane) CreateCluster(ctx context.Context, snap *cluster.Objects) error {
	for _, ns := range snap.Namespaces {
		if err := cp.EnsureNamespace(ctx, ns.Name, ns.Labels); err != nil {
			return fmt.Errorf("namespace %s: %w", ns.Name, err)
		}
	}
	nodeIPs := map[string]string{}
	for _, n := range snap.Nodes {
		if err := cp.CreateNode(ctx, n); err != nil {
			return err
		}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && nodeIPs[n.Name] == "" {
				nodeIPs[n.Name] = a.Address
			}
		}
	}
	if err := cp.CreatePods(ctx, snap.Pods, nodeIPs); err != nil {
		return err
	}
	for _, p := range snap.Policies {
		p = p.DeepCopy()
		clearServerFields(&p.ObjectMeta)
		if err := cp.Client.Create(ctx, p); err != nil {
			return fmt.Errorf("NetworkPolicy %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}

// CreateNode creates a node, then sets its status (addresses) through the status subresource.
func (cp *ControlPlane) CreateNode(ctx context.Context, node *corev1.Node) error {
	n := node.DeepCopy()
	clearServerFields(&n.ObjectMeta)
	status := n.Status
	n.Status = corev1.NodeStatus{}
	if err := cp.Client.Create(ctx, n); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	n.Status = status
	if err := cp.Client.Status().Update(ctx, n); err != nil {
		return fmt.Errorf("node %s status: %w", n.Name, err)
	}
	return nil
}

// CreatePods creates pods, a few at a time, each as CreatePod does.
func (cp *ControlPlane) CreatePods(ctx context.Context, pods []*corev1.Pod, nodeIPs map[string]string) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 8)
	for _, p := range pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := cp.CreatePod(ctx, p, nodeIPs[p.Spec.NodeName]); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// CreatePod creates a pod (spec.nodeName set: there is no scheduler) and then gives it the
// status a kubelet would: the snapshot's pod IPs and phase (Running when it names none), the
// node's address as host IP, and its start time.
func (cp *ControlPlane) CreatePod(ctx context.Context, pod *corev1.Pod, hostIP string) error {
	p := pod.DeepCopy()
	clearServerFields(&p.ObjectMeta)
	want := p.Status
	p.Status = corev1.PodStatus{}
	if err := cp.Client.Create(ctx, p); err != nil {
		return fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	st := want
	if st.Phase == "" {
		st.Phase = corev1.PodRunning
	}
	if st.PodIP == "" && len(st.PodIPs) > 0 {
		st.PodIP = st.PodIPs[0].IP
	}
	if len(st.PodIPs) == 0 && st.PodIP != "" {
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	if st.HostIP == "" && hostIP != "" && !p.Spec.HostNetwork {
		st.HostIP = hostIP
	}
	if st.HostIP != "" && len(st.HostIPs) == 0 {
		st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	}
	if st.StartTime == nil {
		t := p.CreationTimestamp
		st.StartTime = &t
	}
	if st.Phase == corev1.PodRunning && len(st.Conditions) == 0 {
		st.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: p.CreationTimestamp}}
	}
	p.Status = st
	if err := cp.Client.Status().Update(ctx, p); err != nil {
		return fmt.Errorf("pod %s/%s status: %w", p.Namespace, p.Name, err)
	}
	return nil
}

func clearServerFields(m *metav1.ObjectMeta) {
	m.ResourceVersion = ""
	m.UID = ""
	m.CreationTimestamp = metav1.Time{}
	m.Generation = 0
	m.ManagedFields = nil
}

// DeploymentPod is a pod of Deployment namespace/name as its ReplicaSet would make it:
// named "<name>-<hash>-<suffix>", owned by ReplicaSet "<name>-<hash>", labelled with labels
// and pod-template-hash, on node, holding address ip, with one container exposing ports.
func DeploymentPod(namespace, name, hash, suffix string, labels map[string]string, node, ip string, ports ...corev1.ContainerPort) *corev1.Pod {
	l := map[string]string{"pod-template-hash": hash}
	for k, v := range labels {
		l[k] = v
	}
	rs := name + "-" + hash
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: rs + "-" + suffix, Labels: l,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs, UID: types.UID("e2e-" + namespace + "-" + rs),
				Controller: new(true), BlockOwnerDeletion: new(true),
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: name, Image: "registry.example.com/" + name + ":1", Ports: ports}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
}

// Namespace returns a namespace object with labels.
func Namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}
