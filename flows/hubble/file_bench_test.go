package hubble

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/netpol-guard/netpol-guard/flows"
)

// BenchmarkReadJSON reads 34 k lines of `hubble observe -o json` among 200 namespaces of
// 25 workloads; run with -cpu 1 for one core.
func BenchmarkReadJSON(b *testing.B) {
	const n = 34_000
	r := rand.New(rand.NewPCG(5, 6))
	endpoint := func() (string, string) {
		ns, app, pod := fmt.Sprintf("team-%03d", r.IntN(200)), fmt.Sprintf("svc-%02d", r.IntN(25)), r.IntN(100_000)
		ip := fmt.Sprintf("10.%d.%d.%d", r.IntN(3), r.IntN(200), 2+r.IntN(250))
		return ip, fmt.Sprintf(`{"ID":%d,"identity":%d,"cluster_name":"default","namespace":%q,"labels":["k8s:app=%s","k8s:io.cilium.k8s.policy.cluster=default","k8s:io.kubernetes.pod.namespace=%s"],"pod_name":"%s-7d9f8b6c5d-%05d","workloads":[{"name":%q,"kind":"Deployment"}]}`,
			r.IntN(4000), 1000+r.IntN(60000), ns, app, ns, app, pod, app)
	}
	var data bytes.Buffer
	for i := range n {
		srcIP, src := endpoint()
		dstIP, dst := endpoint()
		fmt.Fprintf(&data, `{"flow":{"time":"2026-11-20T10:%02d:%02d.%09dZ","uuid":"5f0c6c3e-2b1a-4e8e-9d55-%012d","verdict":"FORWARDED","ethernet":{"source":"9a:3b:11:5c:20:01","destination":"6e:12:9f:aa:31:07"},"IP":{"source":%q,"destination":%q,"ipVersion":"IPv4"},"l4":{"TCP":{"source_port":%d,"destination_port":8080,"flags":{"SYN":true}}},"source":%s,"destination":%s,"Type":"L3_L4","node_name":"kind-worker","event_type":{"type":4},"traffic_direction":"INGRESS","trace_observation_point":"TO_ENDPOINT","is_reply":false,"Summary":"TCP Flags: SYN"},"node_name":"kind-worker","time":"2026-11-20T10:00:00Z"}`+"\n",
			i/60%60, i%60, r.IntN(1e9), i, srcIP, dstIP, 30000+r.IntN(30000), src, dst)
	}
	b.SetBytes(int64(data.Len()))
	b.ReportAllocs()
	for b.Loop() {
		got := 0
		err := ReadJSON(bytes.NewReader(data.Bytes()), "bench.json", func(int, flows.Record) error {
			got++
			return nil
		})
		if err != nil || got != n {
			b.Fatalf("ReadJSON: %d records, %v", got, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}
