package cluster

import (
	"maps"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWorkloadsKeepTheirTemplateLabelsAndPodsName(t *testing.T) {
	s, err := Decode(strings.NewReader(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout, namespace: shop}
spec:
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout, track: stable}}
    spec: {containers: [{name: c, image: checkout}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: checkout-5c8d
  namespace: shop
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: checkout, uid: u1, controller: true}]
spec:
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout, pod-template-hash: 5c8d}}
    spec: {containers: [{name: c, image: checkout}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "@hourly"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: report}}
        spec: {restartPolicy: Never, containers: [{name: r, image: report}]}
`), "workloads.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name   string
		labels map[string]string
	}{
		{"Deployment/checkout", map[string]string{"app": "checkout", "track": "stable"}},
		{"Deployment/checkout", map[string]string{"app": "checkout", "pod-template-hash": "5c8d"}},
		{"CronJob/report", map[string]string{"app": "report"}},
	}
	if len(s.Workloads) != len(want) {
		t.Fatalf("%d workloads, want %d", len(s.Workloads), len(want))
	}
	for i, w := range want {
		obj := s.Workloads[i]
		if got := WorkloadName(KindOf(obj), obj); got != w.name {
			t.Errorf("workload %d: pods named %s, want %s", i, got, w.name)
		}
		if got, ok := TemplateLabels(obj); !ok || !maps.Equal(got, w.labels) {
			t.Errorf("workload %d: template labels %v, want %v", i, got, w.labels)
		}
	}
	if _, ok := TemplateLabels(&metav1.PartialObjectMetadata{}); ok {
		t.Error("an object that is not a workload has template labels")
	}
}
