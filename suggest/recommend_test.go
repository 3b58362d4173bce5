package suggest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// bigCluster is namespaces × workloads, each workload calling two others (one in another
// namespace now and then), cluster DNS, and sometimes an outside address.
func bigCluster(namespaces, workloads int) RecommendRequest {
	r := rand.New(rand.NewPCG(7, 7))
	w := &evaluator.World{NamespaceLabels: map[string]map[string]string{}, NodeAddresses: map[string][]netip.Addr{}}
	dns := &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "kube-system", Name: "Deployment/coredns",
		Labels: map[string]string{"k8s-app": "kube-dns", "pod-template-hash": "5d78"}, Ports: []evaluator.ContainerPort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}}
	eps := []*evaluator.Endpoint{dns}
	var all []*evaluator.Endpoint
	ip := uint32(10 << 24)
	for i := range namespaces {
		ns := fmt.Sprintf("ns-%03d", i)
		w.NamespaceLabels[ns] = map[string]string{NamespaceNameLabel: ns, "team": fmt.Sprintf("t%d", i%7)}
		for j := range workloads {
			ip++
			ep := &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: ns, Name: fmt.Sprintf("Deployment/svc-%02d", j),
				Labels: map[string]string{"app": fmt.Sprintf("svc-%02d", j), "tier": []string{"web", "api", "db"}[j%3], "pod-template-hash": fmt.Sprintf("%x", r.Uint32())},
				IP:     netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}),
				Ports:  []evaluator.ContainerPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}}
			all = append(all, ep)
		}
	}
	eps = append(eps, all...)
	var fl []evaluator.Flow
	for i, src := range all {
		base := i - i%workloads
		for range 2 {
			dst := all[base+r.IntN(workloads)]
			if r.IntN(10) == 0 {
				dst = all[r.IntN(len(all))]
			}
			if dst != src {
				fl = append(fl, evaluator.Flow{Src: src, Dst: dst, Port: pick(r, []int32{8080, 9090}), Protocol: corev1.ProtocolTCP})
			}
		}
		fl = append(fl, evaluator.Flow{Src: src, Dst: dns, Port: 53, Protocol: corev1.ProtocolUDP})
		if r.IntN(5) == 0 {
			fl = append(fl, evaluator.Flow{Src: src, Dst: &evaluator.Endpoint{Kind: evaluator.External, IP: netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(4))})}, Port: 443, Protocol: corev1.ProtocolTCP})
		}
	}
	ps, _ := evaluator.Compile(nil)
	var nss []string
	for i := range namespaces {
		nss = append(nss, fmt.Sprintf("ns-%03d", i))
	}
	return RecommendRequest{Policies: ps, World: w, Flows: fl, Namespaces: nss, Known: eps}
}

func TestRecommendationOfAGeneratedClusterCutsNoObservedFlow(t *testing.T) {
	// 200 namespaces × 25 workloads, as the benchmark; 40 × 25 under the race detector.
	namespaces := 200
	if raceEnabled {
		namespaces = 40
	}
	req := bigCluster(namespaces, 25)
	start := time.Now()
	recs, err := Recommend(req)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	policies, opens := 0, 0
	for _, rec := range recs {
		if rec.Cut != 0 {
			t.Errorf("%s: the recommendation cuts %d observed flows", rec.Namespace, rec.Cut)
		}
		policies += len(rec.Policies)
		opens += len(rec.Opens)
	}
	// Verified independently of Recommend's own check. The cluster has no policies of its
	// own: the set after is the recommended policies, compiled at once.
	var recommended []*networkingv1.NetworkPolicy
	for _, rec := range recs {
		recommended = append(recommended, rec.Policies...)
	}
	after, err := evaluator.Compile(recommended)
	if err != nil {
		t.Fatal(err)
	}
	ev := evaluator.NewEvaluation(after, req.World)
	for _, f := range req.Flows {
		if !ev.Allowed(f) {
			t.Fatalf("the recommendation denies observed flow %s", f)
		}
	}
	t.Logf("%d namespaces, %d workloads, %d flows: %d policies, 0 cuts, %d pairs allowed beyond the flows, in %s",
		len(recs), len(req.Known)-1, len(req.Flows), policies, opens, took.Round(time.Millisecond))
}

// BenchmarkRecommend5kWorkloads: 200 namespaces × 25 workloads, every namespace at once.
func BenchmarkRecommend5kWorkloads(b *testing.B) {
	req := bigCluster(200, 25)
	for b.Loop() {
		if _, err := Recommend(req); err != nil {
			b.Fatal(err)
		}
	}
}
