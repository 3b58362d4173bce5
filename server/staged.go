package server

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/staged"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// LeaderElectionID names the Lease the replicas elect the one that writes status by.
const LeaderElectionID = "netpol-guard.netpol-guard.io"

// setupStaged soaks StagedNetworkPolicies when their CRD is installed: every replica
// evaluates them, the leader writes their status.
func setupStaged(mgr manager.Manager, cfg *rest.Config, cache *flows.Cache, live *cluster.Live, ready func() bool, opts Options) error {
	if !opts.Staged {
		return nil
	}
	installed, err := servesResource(cfg, v1alpha1.GroupVersion.String(), "stagednetworkpolicies")
	if err != nil {
		return fmt.Errorf("discovering StagedNetworkPolicies: %w", err)
	}
	if !installed {
		log.Info("StagedNetworkPolicy CRD not installed; staged policies are not evaluated")
		return nil
	}
	guard := webhook.NewGuard(webhook.Options{Cache: cache, View: live, MaxListed: v1alpha1.MaxTop})
	ev := staged.New(staged.Options{Guard: guard, View: live, Cache: cache, Window: opts.CacheWindow, Ready: ready})
	w := &staged.StatusWriter{
		Evaluator: ev, Client: mgr.GetClient(), Reader: mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("netpol-guard"), Interval: opts.StagedStatusInterval,
	}
	if err := metrics.Registry.Register(staged.Collector{Evaluator: ev}); err != nil {
		return err
	}
	return staged.Setup(mgr, ev, w)
}

// servesResource reports whether the API server serves resource in groupVersion.
func servesResource(cfg *rest.Config, groupVersion, resource string) (bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, err
	}
	list, err := dc.ServerResourcesForGroupVersion(groupVersion)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	for _, r := range list.APIResources {
		if r.Name == resource {
			return true, nil
		}
	}
	return false, nil
}

// everyReplica runs a runnable on every replica, whether or not it leads.
type everyReplica struct{ manager.Runnable }

func (everyReplica) NeedLeaderElection() bool { return false }
