package server

import (
	"context"
	"fmt"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
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
// evaluates them, the leader writes their status, and their OpenReports Reports when that
// CRD is installed. A CRD missing at start is looked for again every DiscoveryInterval.
func setupStaged(mgr manager.Manager, cfg *rest.Config, cache *flows.Cache, live *cluster.Live, ready func() bool, opts Options) error {
	if !opts.Staged {
		return nil
	}
	served := func() (bool, error) {
		return servesResource(cfg, v1alpha1.GroupVersion.String(), "stagednetworkpolicies")
	}
	start := func() error {
		guard := webhook.NewGuard(webhook.Options{Cache: cache, View: live, MaxListed: v1alpha1.MaxTop})
		ev := staged.New(staged.Options{Guard: guard, View: live, Cache: cache, Window: opts.CacheWindow, Ready: ready})
		w := &staged.StatusWriter{
			Evaluator: ev, Client: mgr.GetClient(), Reader: mgr.GetClient(),
			Recorder: mgr.GetEventRecorder("netpol-guard"), Interval: opts.StagedStatusInterval,
		}
		reports := &staged.ReportWriter{
			Evaluator: ev, Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
			Served: func() (bool, error) {
				return servesResource(cfg, reportsv1alpha1.SchemeGroupVersion.String(), "reports")
			},
			Interval: opts.StagedStatusInterval, Recheck: discoveryInterval(opts),
		}
		if err := metrics.Registry.Register(staged.Collector{Evaluator: ev}); err != nil {
			return err
		}
		if err := staged.Setup(mgr, ev, w); err != nil {
			return err
		}
		return mgr.Add(reports)
	}
	installed, err := served()
	if err != nil {
		return fmt.Errorf("discovering StagedNetworkPolicies: %w", err)
	}
	if installed {
		return start()
	}
	interval := discoveryInterval(opts)
	log.Info("StagedNetworkPolicy CRD not installed; staged policies are not evaluated until it is", "recheck", interval)
	return mgr.Add(everyReplica{manager.RunnableFunc(func(ctx context.Context) error {
		err := wait.PollUntilContextCancel(ctx, interval, false, func(context.Context) (bool, error) {
			installed, err := served()
			if err != nil {
				log.Error(err, "Discovering StagedNetworkPolicies")
				return false, nil
			}
			return installed, nil
		})
		if err != nil { // ctx is done
			return nil
		}
		log.Info("StagedNetworkPolicy CRD installed; evaluating staged policies")
		return start()
	})})
}

func discoveryInterval(opts Options) time.Duration {
	if opts.DiscoveryInterval > 0 {
		return opts.DiscoveryInterval
	}
	return cluster.DefaultDiscoveryInterval
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
