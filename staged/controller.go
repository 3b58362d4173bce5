package staged

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
)

// Setup feeds ev from the manager's informers — staged policies, and pods' labels — and
// adds it (every replica) and w (the leader) to the manager. The manager's scheme must
// know v1alpha1.
func Setup(mgr manager.Manager, ev *Evaluator, w *StatusWriter) error {
	c := mgr.GetCache()
	inf, err := c.GetInformer(context.Background(), &v1alpha1.StagedNetworkPolicy{}, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("getting informer for StagedNetworkPolicies: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { upsert(ev, obj) },
		UpdateFunc: func(_, obj any) { upsert(ev, obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if s, ok := obj.(*v1alpha1.StagedNetworkPolicy); ok {
				ev.Remove(types.NamespacedName{Namespace: s.Namespace, Name: s.Name})
			}
		},
	}); err != nil {
		return err
	}
	pods, err := c.GetInformer(context.Background(), &corev1.Pod{}, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("getting informer for Pods: %w", err)
	}
	// A pod that comes, goes or is relabelled can change who a staged change selects or
	// what its rules admit; the live view's policies and world do not show it.
	if _, err := pods.AddEventHandler(toolscache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(_ any, initial bool) {
			if !initial {
				ev.ClusterChanged()
			}
		},
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(*corev1.Pod)
			n, ok2 := obj.(*corev1.Pod)
			if ok1 && ok2 && !maps.Equal(o.Labels, n.Labels) {
				ev.ClusterChanged()
			}
		},
		DeleteFunc: func(any) { ev.ClusterChanged() },
	}); err != nil {
		return err
	}
	if err := mgr.Add(ev); err != nil {
		return err
	}
	return mgr.Add(w)
}

func upsert(ev *Evaluator, obj any) {
	if s, ok := obj.(*v1alpha1.StagedNetworkPolicy); ok {
		ev.Upsert(s)
	}
}
