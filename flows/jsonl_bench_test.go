package flows

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// benchFlowsFile returns a JSON Lines file of n flows among 200 namespaces of 25
// workloads each, as an agent export reads: peers by pod, by workload or by IP alone, labels
// on some, lastSeen and count on all.
func benchFlowsFile(n int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	kinds := []string{"Deployment", "StatefulSet", "DaemonSet"}
	peer := func() string {
		ns := fmt.Sprintf("team-%03d", r.IntN(200))
		w := r.IntN(25)
		name := fmt.Sprintf("svc-%02d", w)
		var b bytes.Buffer
		switch r.IntN(4) {
		case 0: // a pod, with its IP
			fmt.Fprintf(&b, `{"namespace":%q,"pod":"%s-7d9f8b6c5d-%05d","ip":"10.%d.%d.%d"}`, ns, name, r.IntN(3), r.IntN(200), r.IntN(25), 2+r.IntN(250))
		case 1: // a workload with its labels
			fmt.Fprintf(&b, `{"namespace":%q,"workload":"%s/%s","labels":{"app":%q,"app.kubernetes.io/part-of":"shop","tier":"backend"}}`, ns, kinds[w%3], name, name)
		case 2: // a workload
			fmt.Fprintf(&b, `{"namespace":%q,"workload":"%s/%s"}`, ns, kinds[w%3], name)
		default: // an address outside the cluster
			fmt.Fprintf(&b, `{"ip":"203.0.113.%d"}`, r.IntN(256))
		}
		return b.String()
	}
	protocols := []string{"TCP", "TCP", "TCP", "UDP"}
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	for range n {
		fmt.Fprintf(&b, `{"src":%s,"dst":%s,"port":%d,"protocol":%q,"lastSeen":%q,"count":%d}`+"\n",
			peer(), peer(), []int{80, 443, 8080, 5432, 53}[r.IntN(5)], protocols[r.IntN(4)],
			at.Add(time.Duration(r.IntN(86400))*time.Second).Format(time.RFC3339), 1+r.IntN(10_000))
	}
	return b.Bytes()
}

// BenchmarkReadAll decodes a file of 34 k flows; run with -cpu 1 for one core.
func BenchmarkReadAll(b *testing.B) {
	const n = 34_000
	data := benchFlowsFile(n)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		recs, err := ReadAll(bytes.NewReader(data), "bench.jsonl")
		if err != nil || len(recs) != n {
			b.Fatalf("ReadAll: %d records, %v", len(recs), err)
		}
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n*b.N), "allocs/record")
	b.ReportMetric(0, "ns/op")
}
