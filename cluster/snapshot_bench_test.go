package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// benchClusterJSON returns what `kubectl get namespaces,pods,networkpolicies -A -o json`
// prints for a cluster of 200 namespaces, pods pods and policies NetworkPolicies: one List,
// objects with the system fields kubectl shows (managedFields, ownerReferences, status).
func benchClusterJSON(pods, policies int) []byte {
	const namespaces = 200
	created := metav1.NewTime(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))
	var items []any
	for i := range namespaces {
		ns := fmt.Sprintf("team-%03d", i)
		items = append(items, &corev1.Namespace{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ns, CreationTimestamp: created, ResourceVersion: "201",
				UID: types.UID(fmt.Sprintf("3f1c7c55-2b7e-4a64-9d3e-%012d", i)), Labels: map[string]string{"kubernetes.io/metadata.name": ns, "team": ns}},
			Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
		})
	}
	for i := range pods {
		ns := fmt.Sprintf("team-%03d", i%namespaces)
		app := fmt.Sprintf("svc-%02d", i/namespaces%25)
		ip := fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)
		items = append(items, &corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("%s-7d9f8b6c5d-%05d", app, i), GenerateName: app + "-7d9f8b6c5d-", Namespace: ns,
				UID: types.UID(fmt.Sprintf("0b5e6f0c-1111-4b1e-8a55-%012d", i)), ResourceVersion: "4711", CreationTimestamp: created,
				Labels: map[string]string{"app": app, "pod-template-hash": "7d9f8b6c5d", "app.kubernetes.io/part-of": "shop"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-7d9f8b6c5d",
					UID: "0b5e6f0c-2222-4b1e-8a55-2d2f1e0f9a01", Controller: new(true), BlockOwnerDeletion: new(true)}},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate,
					APIVersion: "v1", Time: &created, FieldsType: "FieldsV1",
					FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:pod-template-hash":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"0b5e6f0c-2222-4b1e-8a55-2d2f1e0f9a01\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{}}}}}`)}}},
			},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "web", Image: "registry.example.com/shop/" + app + ":1.27",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
					Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
					TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
					ImagePullPolicy: corev1.PullIfNotPresent}},
				NodeName: fmt.Sprintf("worker-%d", i%20), RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst,
				ServiceAccountName: "default", SchedulerName: "default-scheduler",
			},
			Status: corev1.PodStatus{
				Phase: corev1.PodRunning, HostIP: fmt.Sprintf("192.168.0.%d", 10+i%20), PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
				QOSClass: corev1.PodQOSBurstable, StartTime: &created,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: created},
					{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: created}},
			},
		})
	}
	tcp := corev1.ProtocolTCP
	for i := range policies {
		ns := fmt.Sprintf("team-%03d", i%namespaces)
		port := intstr.FromInt32(8080)
		items = append(items, &networkingv1.NetworkPolicy{
			TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("allow-%04d", i), Namespace: ns, Generation: 1, CreationTimestamp: created,
				UID: types.UID(fmt.Sprintf("9a0e6f0c-3333-4b1e-8a55-%012d", i))},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("svc-%02d", i%25)}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From: []networkingv1.NetworkPolicyPeer{
						{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": ns}}},
						{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
							{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}}}}},
					},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
				}},
			},
		})
	}
	data, err := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items,
		"metadata": map[string]string{"resourceVersion": ""}}, "", "    ")
	if err != nil {
		panic(err)
	}
	return data
}

// BenchmarkDecodeKubectlList decodes the kubectl List of 5 k pods and 1.5 k policies.
func BenchmarkDecodeKubectlList(b *testing.B) {
	data := benchClusterJSON(5000, 1500)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := Decode(bytes.NewReader(data), "cluster.json")
		if err != nil || len(s.Pods) != 5000 || len(s.Policies) != 1500 {
			b.Fatalf("Decode: %v", err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/op")
}
