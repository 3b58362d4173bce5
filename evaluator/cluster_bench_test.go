package evaluator_test

import (
	"math/rand/v2"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
)

// benchMillionFlows are a million flows drawn from the benchmark cluster's flows: the cache
// of a large cluster, every one a candidate for a cluster-wide policy.
var benchMillionFlows = sync.OnceValue(func() []evaluator.Flow {
	in, err := benchSetup()
	if err != nil {
		panic(err)
	}
	r := rand.New(rand.NewPCG(7, 7))
	out := make([]evaluator.Flow, 1_000_000)
	for i := range out {
		out[i] = in.flows[r.IntN(len(in.flows))]
		if r.IntN(4) == 0 { // vary ports so flows are not all repeats
			out[i].Port = int32(1024 + r.IntN(4096))
			out[i].Protocol = corev1.ProtocolTCP
		}
	}
	return out
})

// benchListed is how many cuts an admission message explains.
const benchListed = 5

// BenchmarkDiffCluster is one admission decision on a cluster policy change over the
// benchmark cluster's NetworkPolicies, taken as the webhook takes it: one diff without
// explanations, with a Memo kept from the decision before, then the explanation of the
// few cuts a message lists. B/op is the memory of one decision; cpu-ms/op its CPU time (GC
// included), steadier than ns/op on a shared machine.
//   - admin-deny-internet-1M: a cluster-wide Admin policy that passes pod traffic and denies
//     egress to every other address, over 1M flows (every flow from a pod is a candidate);
//   - admin-deny-one-namespace: an Admin policy whose subject is the shop namespace, denying
//     ingress from batch, over the 100k flows.
func BenchmarkDiffCluster(b *testing.B) {
	in := benchInputs(b)
	internet := &evaluator.ClusterPolicy{Kind: evaluator.ClusterNetworkPolicyKind, Name: "deny-egress-internet", Spec: v1beta1.ClusterNetworkPolicySpec{
		Tier: v1beta1.AdminTier, Priority: 10,
		Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
		Egress: []v1beta1.ClusterNetworkPolicyEgressRule{
			{Name: "pods", Action: pass, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: &metav1.LabelSelector{}}}},
			{Name: "nodes", Action: pass, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: &metav1.LabelSelector{}}}},
			{Name: "internet", Action: deny, To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{"0.0.0.0/0", "::/0"}}}},
		},
	}}
	shop := &evaluator.ClusterPolicy{Kind: evaluator.ClusterNetworkPolicyKind, Name: "shop-no-batch", Spec: v1beta1.ClusterNetworkPolicySpec{
		Tier: v1beta1.AdminTier, Priority: 20,
		Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: nsName("shop")},
		Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{
			{Name: "batch", Action: deny, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: nsName("batch")}}},
		},
	}}
	for _, c := range []struct {
		name  string
		cnp   *evaluator.ClusterPolicy
		flows []evaluator.Flow
	}{
		{"admin-deny-internet-1M", internet, benchMillionFlows()},
		{"admin-deny-one-namespace", shop, in.flows},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			memo := evaluator.NewMemo()
			var res evaluator.DiffResult
			cpu := testutil.ProcessCPU()
			for b.Loop() {
				after, err := in.set.WithCluster(nil, c.cnp)
				if err != nil {
					b.Fatal(err)
				}
				res = evaluator.DiffWith(in.set, after, in.w, c.flows, evaluator.DiffOptions{Memo: memo})
				for _, i := range res.CutIndexes[:min(len(res.CutIndexes), benchListed)] {
					if cut := res.Explain(i); cut.After.Allowed {
						b.Fatalf("cut %d explained as allowed: %+v", i, cut)
					}
				}
			}
			b.ReportMetric(float64((testutil.ProcessCPU()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(res.Summary.Candidates), "candidates")
			b.ReportMetric(float64(res.Summary.Cut), "cut")
			b.ReportMetric(float64(b.N*len(c.flows))/b.Elapsed().Seconds(), "flows/s")
		})
	}
}
