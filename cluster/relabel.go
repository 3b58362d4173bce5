package cluster

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Workloads are the objects that make pods from a template: relabelling the template
// relabels the pods it makes, and so changes which policies select them. A snapshot keeps
// them (Objects.Workloads) so that `check -f` can judge a template relabel, and the webhook
// decodes them from admission requests; both name a workload's pods the same way.

// WorkloadKinds are the workload kinds netpol-guard judges template relabels of, at the
// only versions it understands.
var WorkloadKinds = []schema.GroupVersionKind{
	appsv1.SchemeGroupVersion.WithKind("Deployment"),
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"),
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"),
	appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
	batchv1.SchemeGroupVersion.WithKind("Job"),
	batchv1.SchemeGroupVersion.WithKind("CronJob"),
}

// NewWorkload returns an empty typed object of a workload kind (*appsv1.Deployment …), or
// an error for another kind.
func NewWorkload(kind string) (client.Object, error) {
	switch kind {
	case "Deployment":
		return &appsv1.Deployment{}, nil
	case "StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "DaemonSet":
		return &appsv1.DaemonSet{}, nil
	case "ReplicaSet":
		return &appsv1.ReplicaSet{}, nil
	case "Job":
		return &batchv1.Job{}, nil
	case "CronJob":
		return &batchv1.CronJob{}, nil
	}
	return nil, fmt.Errorf("kind %q is not a workload netpol-guard knows (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob)", kind)
}

// TemplateLabels are the labels a workload's pod template gives its pods (a CronJob's, its
// job template's pod template's); false for an object that is not a workload.
func TemplateLabels(obj client.Object) (map[string]string, bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Spec.Template.Labels, true
	case *appsv1.StatefulSet:
		return o.Spec.Template.Labels, true
	case *appsv1.DaemonSet:
		return o.Spec.Template.Labels, true
	case *appsv1.ReplicaSet:
		return o.Spec.Template.Labels, true
	case *batchv1.Job:
		return o.Spec.Template.Labels, true
	case *batchv1.CronJob:
		return o.Spec.JobTemplate.Spec.Template.Labels, true
	}
	return nil, false
}

// WorkloadName names the workload whose pods a workload object makes, "Kind/name", as
// WorkloadOf names a pod's: a ReplicaSet controlled by a Deployment is that Deployment, a
// Job controlled by a CronJob that CronJob; anything else is itself.
func WorkloadName(kind string, obj client.Object) string {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller == nil || !*ref.Controller || ref.Name == "" {
			continue
		}
		switch {
		case kind == "ReplicaSet" && ref.Kind == "Deployment", kind == "Job" && ref.Kind == "CronJob":
			return ref.Kind + "/" + ref.Name
		}
	}
	return kind + "/" + obj.GetName()
}

// KindOf is the kind of a typed object this package decodes: a workload kind, Namespace,
// Pod, Node, NetworkPolicy; empty for another.
func KindOf(obj client.Object) string {
	switch obj.(type) {
	case *appsv1.Deployment:
		return "Deployment"
	case *appsv1.StatefulSet:
		return "StatefulSet"
	case *appsv1.DaemonSet:
		return "DaemonSet"
	case *appsv1.ReplicaSet:
		return "ReplicaSet"
	case *batchv1.Job:
		return "Job"
	case *batchv1.CronJob:
		return "CronJob"
	case *corev1.Namespace:
		return "Namespace"
	case *corev1.Pod:
		return "Pod"
	case *corev1.Node:
		return "Node"
	}
	return ""
}

// mergeWorkloads is mergeObjects for workloads, whose kinds share one list.
func mergeWorkloads(dst, src []client.Object) []client.Object {
	type key struct {
		kind string
		types.NamespacedName
	}
	return merge(dst, src, func(obj client.Object) key { return key{KindOf(obj), client.ObjectKeyFromObject(obj)} })
}
