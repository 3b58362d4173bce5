package suggest

import (
	"maps"
	"testing"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

func TestSelectorUsesStableLabelsAndOnlyAsManyAsTellTheWorkloadApart(t *testing.T) {
	pod := func(name string, l map[string]string) *evaluator.Endpoint {
		return &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/" + name, Labels: l}
	}
	web := pod("web", map[string]string{"app": "web", "tier": "front", "pod-template-hash": "7d9f"})
	webCanary := pod("web-canary", map[string]string{"app": "web", "tier": "canary", "pod-template-hash": "1a2b"})
	cart := pod("cart", map[string]string{"app.kubernetes.io/name": "cart", "app": "shop", "pod-template-hash": "5c7d"})
	job := pod("digest", map[string]string{"job-name": "digest-29411520", "batch.kubernetes.io/controller-uid": "u1", "controller-uid": "u1", "app": "digest"})
	sts := pod("redis", map[string]string{"statefulset.kubernetes.io/pod-name": "redis-0", "controller-revision-hash": "redis-5f", "app": "redis"})
	k := newKnown([]*evaluator.Endpoint{web, webCanary, cart, job, sts}, nil)
	for _, tc := range []struct {
		name string
		ep   *evaluator.Endpoint
		want map[string]string
	}{
		{"app label alone when it is unique", sts, map[string]string{"app": "redis"}},
		{"app.kubernetes.io/name before app", cart, map[string]string{"app.kubernetes.io/name": "cart"}},
		{"a shared app label gets the next stable label", web, map[string]string{"app": "web", "tier": "front"}},
		{"job labels are never used", job, map[string]string{"app": "digest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := k.selector(tc.ep); !maps.Equal(got, tc.want) {
				t.Errorf("selector = %v, want %v", got, tc.want)
			}
		})
	}
}
