package cluster

import (
	"net/netip"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// CacheOptions are the controller-runtime cache options Live is meant for: managed fields
// are dropped from every object, since nothing here reads them and they are most of a
// pod's size.
func CacheOptions() cache.Options {
	return cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
}

// PolicySet returns every NetworkPolicy and cluster policy, compiled. Namespaces whose
// policies changed since the last call are compiled again, and the cluster tier only when a
// cluster policy changed; the rest is shared. A policy the evaluator rejects (the API server
// validated it, so this means a version skew) is left out and logged.
func (l *Live) PolicySet() *evaluator.PolicySet {
	l.mu.RLock()
	ps, stale := l.compiled, len(l.stale)+len(l.clusterStale)
	l.mu.RUnlock()
	if stale == 0 {
		return ps
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.clusterStale) > 0 {
		l.compileClusterStale()
	}
	for ns := range l.stale {
		next, err := l.compiled.WithNamespace(ns, l.policyList[ns])
		if err != nil {
			var good []*networkingv1.NetworkPolicy
			for _, p := range l.policyList[ns] {
				if _, err := evaluator.Compile([]*networkingv1.NetworkPolicy{p}); err != nil {
					log.Error(err, "NetworkPolicy left out of evaluation", "namespace", p.Namespace, "policy", p.Name)
					continue
				}
				good = append(good, p)
			}
			next, err = l.compiled.WithNamespace(ns, good)
			if err != nil { // cannot happen: each of them compiled alone
				log.Error(err, "Namespace left out of evaluation", "namespace", ns)
				continue
			}
		}
		l.compiled = next
	}
	clear(l.stale)
	return l.compiled
}

// NamespaceLabels returns a namespace's labels (with kubernetes.io/metadata.name), nil if
// the namespace is unknown. Shared; do not modify.
func (l *Live) NamespaceLabels(ns string) map[string]string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.namespaces[ns]
}

// NodeAddress returns a node's first InternalIP or ExternalIP.
func (l *Live) NodeAddress(name string) (netip.Addr, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if n := l.nodes[name]; n != nil && len(n.addrs) > 0 {
		return n.addrs[0], true
	}
	return netip.Addr{}, false
}

// WebhookBackend names the admission webhook a workload serves: one whose clientConfig calls
// a Service of the workload's namespace that selects the workload's pods. Cutting ingress to
// it cuts the API server's path to that webhook.
func (l *Live) WebhookBackend(id flows.PeerID) (string, bool) {
	if id.Kind != flows.PeerWorkload {
		return "", false
	}
	l.mu.RLock()
	called := l.webhookNamespaces[id.Namespace] > 0
	l.mu.RUnlock()
	if !called {
		return "", false
	}
	ep := l.Endpoint(id, nil)
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, byService := range l.webhookConfigs {
		for svc, names := range byService {
			if svc.Namespace != id.Namespace {
				continue
			}
			sel, ok := l.services[svc]
			if ok && len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(ep.Labels)) {
				return names[0], true
			}
		}
	}
	return "", false
}

func (l *Live) upsertService(svc *corev1.Service) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.services[types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}] = svc.Spec.Selector
}

func (l *Live) deleteService(key types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.services, key)
}

func (l *Live) upsertValidating(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
	refs := map[types.NamespacedName][]string{}
	for _, w := range c.Webhooks {
		addServiceRef(refs, w.ClientConfig.Service, w.Name)
	}
	l.setWebhookConfig("validating/"+c.Name, refs)
}

func (l *Live) upsertMutating(c *admissionregistrationv1.MutatingWebhookConfiguration) {
	refs := map[types.NamespacedName][]string{}
	for _, w := range c.Webhooks {
		addServiceRef(refs, w.ClientConfig.Service, w.Name)
	}
	l.setWebhookConfig("mutating/"+c.Name, refs)
}

func addServiceRef(refs map[types.NamespacedName][]string, svc *admissionregistrationv1.ServiceReference, webhook string) {
	if svc == nil {
		return
	}
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	if !slices.Contains(refs[key], webhook) {
		refs[key] = append(refs[key], webhook)
	}
}

func (l *Live) setWebhookConfig(key string, refs map[types.NamespacedName][]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(refs) == 0 {
		delete(l.webhookConfigs, key)
	} else {
		l.webhookConfigs[key] = refs
	}
	// Namespaces whose Services some webhook calls: the quick no for every other workload.
	clear(l.webhookNamespaces)
	for _, byService := range l.webhookConfigs {
		for svc := range byService {
			l.webhookNamespaces[svc.Namespace]++
		}
	}
}

func (l *Live) deleteWebhookConfig(kind string) func(types.NamespacedName) {
	return func(key types.NamespacedName) {
		l.setWebhookConfig(kind+"/"+key.Name, nil)
	}
}
