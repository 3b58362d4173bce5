package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// Cluster policies (sigs.k8s.io/network-policy-api) are custom resources: a cluster may
// not have their CRDs, or may install and remove them while the webhook runs. The view
// watches each kind only while the API server serves it, and keeps none of its policies
// otherwise. ClusterNetworkPolicies are watched at their storage version, v1beta1: objects
// written as v1alpha2 (the same schema) reach the informer converted to it.

// ClusterPolicyKind is a cluster policy kind the view watches, at the version it reads.
type ClusterPolicyKind struct {
	GVK schema.GroupVersionKind
	// Resource is the kind's plural resource name, as discovery lists it.
	Resource string
	Kind     evaluator.ClusterKind
}

// ClusterPolicyKinds are the kinds of cluster policy the view watches when they are served.
var ClusterPolicyKinds = []ClusterPolicyKind{
	{GVK: v1beta1.SchemeGroupVersion.WithKind("ClusterNetworkPolicy"), Resource: "clusternetworkpolicies", Kind: evaluator.ClusterNetworkPolicyKind},
	{GVK: v1alpha1.SchemeGroupVersion.WithKind("AdminNetworkPolicy"), Resource: "adminnetworkpolicies", Kind: evaluator.AdminNetworkPolicyKind},
	{GVK: v1alpha1.SchemeGroupVersion.WithKind("BaselineAdminNetworkPolicy"), Resource: "baselineadminnetworkpolicies", Kind: evaluator.BaselineAdminNetworkPolicyKind},
}

// AddClusterPolicyTypes registers the Go types of ClusterPolicyKinds in a scheme, so a
// controller-runtime cache built on it can inform on them.
func AddClusterPolicyTypes(s *runtime.Scheme) error {
	return errors.Join(v1beta1.Install(s), v1alpha1.Install(s))
}

func (k ClusterPolicyKind) newObject() client.Object {
	switch k.Kind {
	case evaluator.AdminNetworkPolicyKind:
		return &v1alpha1.AdminNetworkPolicy{}
	case evaluator.BaselineAdminNetworkPolicyKind:
		return &v1alpha1.BaselineAdminNetworkPolicy{}
	default:
		return &v1beta1.ClusterNetworkPolicy{}
	}
}

// clusterHandler feeds one kind's informer events into the view.
func (l *Live) clusterHandler(k ClusterPolicyKind) toolscache.ResourceEventHandler {
	upsert := func(obj client.Object) {
		p, err := evaluator.ClusterPolicyOf(obj)
		if err != nil {
			log.V(1).Info("Unexpected object from informer", "error", err.Error())
			return
		}
		l.upsertClusterPolicy(p, obj.GetResourceVersion())
	}
	remove := func(key types.NamespacedName) {
		l.deleteClusterPolicy(evaluator.ClusterRef{Kind: k.Kind, Name: key.Name})
	}
	return handler(upsert, remove)
}

// ClusterPolicies returns the cluster policies the view holds, by kind and name. Shared; do
// not modify.
func (l *Live) ClusterPolicies() []*evaluator.ClusterPolicy {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*evaluator.ClusterPolicy, 0, len(l.clusterPolicies))
	for _, p := range l.clusterPolicies {
		out = append(out, p.policy)
	}
	slices.SortFunc(out, func(a, b *evaluator.ClusterPolicy) int {
		if a.Kind != b.Kind {
			return cmp.Compare(a.Kind, b.Kind)
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}

type liveClusterPolicy struct {
	policy          *evaluator.ClusterPolicy
	resourceVersion string
}

func (l *Live) upsertClusterPolicy(p *evaluator.ClusterPolicy, resourceVersion string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ref := p.Ref()
	if old, ok := l.clusterPolicies[ref]; ok && resourceVersion != "" && old.resourceVersion == resourceVersion {
		return // a resync
	}
	l.clusterPolicies[ref] = liveClusterPolicy{policy: p, resourceVersion: resourceVersion}
	l.clusterStale[ref] = true
}

func (l *Live) deleteClusterPolicy(ref evaluator.ClusterRef) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropClusterPolicy(ref)
}

// forgetClusterKind drops every policy of a kind no longer served.
func (l *Live) forgetClusterKind(kind evaluator.ClusterKind) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ref := range l.clusterPolicies {
		if ref.Kind == kind {
			l.dropClusterPolicy(ref)
		}
	}
}

// dropClusterPolicy forgets policy ref, when known, and marks it for the cluster tier to
// drop. Called with l.mu held.
func (l *Live) dropClusterPolicy(ref evaluator.ClusterRef) {
	if _, ok := l.clusterPolicies[ref]; ok {
		delete(l.clusterPolicies, ref)
		l.clusterStale[ref] = true
	}
}

// compileClusterStale brings l.compiled's cluster tier up to date with the policies changed
// since the last call, one WithCluster each: the NetworkPolicies are shared, not compiled
// again. A policy the evaluator rejects is left out and logged. Called with l.mu held.
func (l *Live) compileClusterStale() {
	for ref := range l.clusterStale {
		old := l.compiled.GetCluster(ref)
		var cur *evaluator.ClusterPolicy
		if p, ok := l.clusterPolicies[ref]; ok {
			cur = p.policy
		}
		next, err := l.compiled.WithCluster(old, cur)
		if err != nil {
			log.Error(err, "Cluster policy left out of evaluation", "policy", ref.String())
			if next, err = l.compiled.WithCluster(old, nil); err != nil { // cannot happen: the rest compiled before
				log.Error(err, "Cluster policies left as they were", "policy", ref.String())
				continue
			}
		}
		l.compiled = next
	}
	clear(l.clusterStale)
}

// DiscoveryClient is the part of client-go's discovery client the watcher asks.
type DiscoveryClient interface {
	ServerResourcesForGroupVersion(groupVersion string) (*metav1.APIResourceList, error)
}

// ClusterPolicyWatcher starts the informers of ClusterPolicyKinds on a cache when the API
// server starts serving them (their CRD is installed) and stops them when it stops, asking
// discovery every Interval. Add it to the manager that runs the cache; the view's HasSynced
// waits for its first look and for the informers it started.
type ClusterPolicyWatcher struct {
	live     *Live
	cache    cache.Cache
	disc     DiscoveryClient
	interval time.Duration

	mu       sync.Mutex
	watching map[evaluator.ClusterKind]watched
}

type watched struct {
	obj client.Object
	inf cache.Informer
	reg toolscache.ResourceEventHandlerRegistration
}

// DefaultDiscoveryInterval is how often a ClusterPolicyWatcher asks by default.
const DefaultDiscoveryInterval = 30 * time.Second

// WatchClusterPolicies returns a watcher that feeds l from c's informers for the cluster
// policy kinds disc reports served. interval 0 means DefaultDiscoveryInterval.
func (l *Live) WatchClusterPolicies(c cache.Cache, disc DiscoveryClient, interval time.Duration) *ClusterPolicyWatcher {
	if interval <= 0 {
		interval = DefaultDiscoveryInterval
	}
	w := &ClusterPolicyWatcher{live: l, cache: c, disc: disc, interval: interval, watching: map[evaluator.ClusterKind]watched{}}
	l.mu.Lock()
	l.clusterWatcher = w
	l.mu.Unlock()
	return w
}

// NeedLeaderElection is false: every replica judges admissions.
func (w *ClusterPolicyWatcher) NeedLeaderElection() bool { return false }

// Start looks at once, then every interval until ctx ends, and stops the informers it
// started.
func (w *ClusterPolicyWatcher) Start(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.Sync(ctx)
		select {
		case <-ctx.Done():
			w.mu.Lock()
			defer w.mu.Unlock()
			for kind, wd := range w.watching {
				w.stop(context.WithoutCancel(ctx), kind, wd)
			}
			return nil
		case <-t.C:
		}
	}
}

// Sync asks discovery once and starts or stops informers to match.
func (w *ClusterPolicyWatcher) Sync(ctx context.Context) {
	served := map[string]map[string]bool{} // group version → resources; nil: unknown
	for _, k := range ClusterPolicyKinds {
		gv := k.GVK.GroupVersion().String()
		if _, ok := served[gv]; ok {
			continue
		}
		list, err := w.disc.ServerResourcesForGroupVersion(gv)
		switch {
		case err == nil:
			set := map[string]bool{}
			for _, r := range list.APIResources {
				set[r.Name] = true
			}
			served[gv] = set
		case apierrors.IsNotFound(err):
			served[gv] = map[string]bool{}
		default:
			log.V(1).Info("Discovery failed; cluster policy informers left as they are", "groupVersion", gv, "error", err.Error())
			served[gv] = nil
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range ClusterPolicyKinds {
		set := served[k.GVK.GroupVersion().String()]
		if set == nil {
			continue
		}
		wd, on := w.watching[k.Kind]
		switch {
		case set[k.Resource] && !on:
			if err := w.start(ctx, k); err != nil {
				log.Error(err, "Cannot watch cluster policies yet", "kind", k.GVK.Kind)
			}
		case !set[k.Resource] && on:
			w.stop(ctx, k.Kind, wd)
		}
	}
	w.live.clusterPolled.Store(true)
}

func (w *ClusterPolicyWatcher) start(ctx context.Context, k ClusterPolicyKind) error {
	obj := k.newObject()
	inf, err := w.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
	if err != nil {
		if meta.IsNoMatchError(err) {
			return fmt.Errorf("%s not known to the REST mapper yet: %w", k.GVK, err)
		}
		return fmt.Errorf("getting informer for %s: %w", k.GVK, err)
	}
	reg, err := inf.AddEventHandler(w.live.clusterHandler(k))
	if err != nil {
		return fmt.Errorf("adding event handler for %s: %w", k.GVK, err)
	}
	w.watching[k.Kind] = watched{obj: obj, inf: inf, reg: reg}
	log.Info("Watching cluster policies", "kind", k.GVK.Kind, "version", k.GVK.Version)
	return nil
}

func (w *ClusterPolicyWatcher) stop(ctx context.Context, kind evaluator.ClusterKind, wd watched) {
	if err := wd.inf.RemoveEventHandler(wd.reg); err != nil {
		log.V(1).Info("Removing event handler failed", "kind", kind.Short(), "error", err.Error())
	}
	if err := w.cache.RemoveInformer(ctx, wd.obj); err != nil {
		log.V(1).Info("Removing informer failed", "kind", kind.Short(), "error", err.Error())
	}
	delete(w.watching, kind)
	w.live.forgetClusterKind(kind)
	log.Info("Stopped watching cluster policies: no longer served", "kind", kind.Short())
}

// hasSynced reports whether the watcher has looked once and every informer it started has
// handed over its initial list.
func (w *ClusterPolicyWatcher) hasSynced() bool {
	if !w.live.clusterPolled.Load() {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wd := range w.watching {
		if !wd.reg.HasSynced() {
			return false
		}
	}
	return true
}

// Watching lists the kinds the watcher has informers for, by short name ("cnp").
func (w *ClusterPolicyWatcher) Watching() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for kind := range w.watching {
		out = append(out, kind.Short())
	}
	slices.Sort(out)
	return out
}
