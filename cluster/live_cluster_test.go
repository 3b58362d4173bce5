package cluster

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

const clusterPoliciesYAML = `
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: deny-shop-egress}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
  egress:
  - {name: no-internet, action: Deny, to: [{networks: [0.0.0.0/0]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline}
spec:
  tier: Baseline
  priority: 5
  subject: {namespaces: {}}
  ingress:
  - {action: Deny, from: [{namespaces: {}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: allow-dns}
spec:
  priority: 3
  subject: {namespaces: {}}
  egress:
  - {name: dns, action: Allow, to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - {action: Deny, from: [{namespaces: {}}]}
`

func TestDecodeKeepsClusterPoliciesOfEveryKindAndVersion(t *testing.T) {
	s, err := Decode(strings.NewReader(clusterPoliciesYAML), "cnp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range s.ClusterPolicies {
		got = append(got, p.Ref().String()+" "+string(p.Spec.Tier))
	}
	want := "cnp/deny-shop-egress Admin, cnp/baseline Baseline, anp/allow-dns Admin, banp/default Baseline"
	if strings.Join(got, ", ") != want {
		t.Errorf("cluster policies = %s, want %s", strings.Join(got, ", "), want)
	}
	if len(s.Ignored) != 0 {
		t.Errorf("ignored %v", s.Ignored)
	}
}

func TestDecodeRejectsClusterPolicyAtUnknownVersionAndUnknownField(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown version", "apiVersion: policy.networking.k8s.io/v1\nkind: ClusterNetworkPolicy\nmetadata: {name: x}\n", `supported values: "policy.networking.k8s.io/v1beta1", "policy.networking.k8s.io/v1alpha2"`},
		{"unknown field", "apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: x}\nspec: {tier: Admin, subjekt: {}}\n", "spec.subjekt: unknown field"},
		{"duplicate across versions", "apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: x}\n---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: x}\n", "duplicate of object 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.doc), "cnp.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLiveFromObjectsCompilesClusterPoliciesWithNetworkPolicies(t *testing.T) {
	s, err := Decode(strings.NewReader(clusterPoliciesYAML), "cnp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.Policies = []*networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deny"}}}
	s.Nodes = []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Labels: map[string]string{"zone": "a"}}}}
	l := LiveFromObjects(s, LiveOptions{})
	ps := l.PolicySet()
	if ps.Len() != 1 || len(ps.ClusterPolicies()) != 4 {
		t.Fatalf("policy set holds %d NetworkPolicies and %d cluster policies, want 1 and 4", ps.Len(), len(ps.ClusterPolicies()))
	}
	if got := l.World().NodeLabels["worker-1"]["zone"]; got != "a" {
		t.Errorf("world node labels of worker-1: zone=%q, want a", got)
	}
}

func TestClusterTierIsRecompiledOnlyWhenAClusterPolicyChanges(t *testing.T) {
	l := newLive(LiveOptions{})
	cnp := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "1"}, Spec: v1beta1.ClusterNetworkPolicySpec{
		Tier: v1beta1.AdminTier, Priority: 1, Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
	}}
	h := l.clusterHandler(ClusterPolicyKinds[0])
	h.OnAdd(cnp, false)
	first := l.PolicySet().GetCluster(evaluator.ClusterRef{Name: "a"})
	if first == nil {
		t.Fatal("cluster policy a not in the policy set")
	}

	// A NetworkPolicy change recompiles its namespace, and keeps the compiled cluster tier.
	l.upsertPolicy(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deny", ResourceVersion: "2"}})
	ps := l.PolicySet()
	if ps.Len() != 1 || ps.GetCluster(evaluator.ClusterRef{Name: "a"}) != first {
		t.Errorf("after a NetworkPolicy change: %d policies, cluster policy a recompiled or lost", ps.Len())
	}

	// A resync changes nothing; an update and a delete do.
	h.OnUpdate(cnp, cnp)
	if l.PolicySet() != ps {
		t.Error("a resync made a new policy set")
	}
	updated := cnp.DeepCopy()
	updated.ResourceVersion, updated.Spec.Priority = "3", 7
	h.OnUpdate(cnp, updated)
	if got := l.PolicySet().GetCluster(evaluator.ClusterRef{Name: "a"}); got == nil || got.Spec.Priority != 7 {
		t.Errorf("after an update: %+v, want priority 7", got)
	}
	h.OnDelete(updated)
	ps = l.PolicySet()
	if len(ps.ClusterPolicies()) != 0 || ps.Len() != 1 {
		t.Errorf("after a delete: %d cluster policies and %d NetworkPolicies, want 0 and 1", len(ps.ClusterPolicies()), ps.Len())
	}
}

func TestInvalidClusterPolicyIsLeftOut(t *testing.T) {
	l := newLive(LiveOptions{})
	good := &evaluator.ClusterPolicy{Name: "good", Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}}}
	bad := &evaluator.ClusterPolicy{Name: "bad", Spec: v1beta1.ClusterNetworkPolicySpec{Tier: "Middle"}}
	l.upsertClusterPolicy(good, "1")
	l.upsertClusterPolicy(bad, "1")
	if got := l.PolicySet().ClusterPolicies(); len(got) != 1 || got[0].Name != "good" {
		t.Errorf("cluster policies = %v, want good alone", got)
	}
}

// fakeDiscovery serves the resources of group versions set in served.
type fakeDiscovery struct{ served map[string][]string }

func (f *fakeDiscovery) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	names, ok := f.served[gv]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{}, gv)
	}
	list := &metav1.APIResourceList{GroupVersion: gv}
	for _, n := range names {
		list.APIResources = append(list.APIResources, metav1.APIResource{Name: n})
	}
	return list, nil
}

func TestWatcherWithNothingServedIsSyncedAfterItsFirstLook(t *testing.T) {
	l := newLive(LiveOptions{})
	w := l.WatchClusterPolicies(nil, &fakeDiscovery{}, 0)
	if l.HasSynced() {
		t.Error("synced before the watcher looked")
	}
	w.Sync(context.Background())
	if !l.HasSynced() || len(w.Watching()) != 0 {
		t.Errorf("synced %v, watching %v; want synced, watching nothing", l.HasSynced(), w.Watching())
	}
}
