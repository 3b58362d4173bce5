package flows

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// benchObservations returns n distinct observations among 10k workloads in 100 namespaces,
// with exactly target of them into namespace "target".
func benchObservations(n, target int) []Observation {
	r := rand.New(rand.NewPCG(1, 2))
	workloads := make([]PeerID, 10_000)
	infos := make([]*PeerInfo, len(workloads))
	for i := range workloads {
		workloads[i] = wl(fmt.Sprintf("ns-%02d", i%100), fmt.Sprintf("Deployment/app-%05d", i))
		infos[i] = &PeerInfo{Labels: map[string]string{"app": fmt.Sprintf("app-%05d", i), "tier": "api"}}
	}
	targets := make([]PeerID, 100)
	for i := range targets {
		targets[i] = wl("target", fmt.Sprintf("Deployment/t-%03d", i))
	}
	seen := map[edgeKey]bool{}
	out := make([]Observation, 0, n)
	at := t0
	for len(out) < n {
		o := Observation{Protocol: corev1.ProtocolTCP, Seen: at, Count: 1}
		s := r.IntN(len(workloads))
		o.Src, o.SrcInfo = workloads[s], infos[s]
		d := r.IntN(len(workloads))
		o.Dst, o.DstInfo = workloads[d], infos[d]
		if len(out) < target {
			o.Dst, o.DstInfo = targets[r.IntN(len(targets))], nil
			d = 10_000 + int(o.Dst.Name[len(o.Dst.Name)-1])
		}
		o.Port = int32(1 + r.IntN(65535))
		k := edgeKey{src: uint32(s), dst: uint32(d), port: uint16(o.Port)}
		if len(out) < target {
			k.dst = uint32(1<<20) + uint32(len(out)%100)
			k.proto = 9
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, o)
		at = at.Add(time.Millisecond)
	}
	return out
}

// BenchmarkIngestHits: records that hit edges already held — the steady state of a cluster
// whose traffic the cache has seen.
func BenchmarkIngestHits(b *testing.B) {
	obs := benchObservations(10_000, 0)
	c := New(Options{})
	c.Add(obs...)
	const batch = 1024
	n := 0
	for b.Loop() {
		for i := 0; i+batch <= len(obs); i += batch {
			c.Add(obs[i : i+batch]...)
			n += batch
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkMemoryPerEdge: heap held by a cache of 1M edges, per edge.
func BenchmarkMemoryPerEdge(b *testing.B) {
	obs := benchObservations(1_000_000, 0)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := New(Options{})
		for i := 0; i < len(obs); i += 4096 {
			c.Add(obs[i:min(i+4096, len(obs))]...)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.Len() != len(obs) {
			b.Fatalf("%d edges", c.Len())
		}
		heap := float64(after.HeapAlloc - before.HeapAlloc)
		b.ReportMetric(heap/float64(c.Len()), "bytes/edge")
		b.ReportMetric(float64(c.Coverage().Bytes)/heap, "estimate/heap")
		runtime.KeepAlive(c)
	}
}

// BenchmarkMemoryPerPeer: heap held by a cache of 500k edges each between two peers of its
// own (an internet-facing ingress: an external client per edge, and a workload), per edge,
// and how the byte estimate compares.
func BenchmarkMemoryPerPeer(b *testing.B) {
	const n = 500_000
	obs := make([]Observation, n)
	for i := range obs {
		ip := netip.AddrFrom4([4]byte{byte(11 + i>>16), byte(i >> 8), byte(i), 1})
		obs[i] = Observation{
			Src: PeerID{Kind: PeerExternal, IP: ip}, Dst: wl(fmt.Sprintf("ns-%03d", i%300), fmt.Sprintf("Deployment/app-%07d", i)),
			Port: 443, Protocol: corev1.ProtocolTCP, Seen: t0, Count: 1,
		}
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := New(Options{})
		for i := 0; i < len(obs); i += 4096 {
			c.Add(obs[i:min(i+4096, len(obs))]...)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.Len() != n {
			b.Fatalf("%d edges", c.Len())
		}
		heap := float64(after.HeapAlloc - before.HeapAlloc)
		b.ReportMetric(heap/n, "bytes/edge")
		b.ReportMetric(float64(c.Coverage().Bytes)/heap, "estimate/heap")
		runtime.KeepAlive(c)
	}
}

// BenchmarkEdgesInto: the admission read — 10k edges into one namespace among 1M.
func BenchmarkEdgesInto(b *testing.B) {
	c := New(Options{})
	c.Add(benchObservations(1_000_000, 10_000)...)
	buf := make([]Edge, 0, 16384)
	var got int
	for b.Loop() {
		got = len(c.EdgesInto("target", buf[:0]))
	}
	if got != 10_000 {
		b.Fatalf("%d edges into target", got)
	}
}

// BenchmarkSnapshot: write and restore 1M edges.
func BenchmarkSnapshot(b *testing.B) {
	c := New(Options{})
	c.Add(benchObservations(1_000_000, 0)...)
	var buf bytes.Buffer
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			if err := c.WriteSnapshot(&buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(buf.Len())/float64(c.Len()), "bytes/edge")
	})
	b.Run("restore", func(b *testing.B) {
		for b.Loop() {
			r := New(Options{})
			if err := r.ReadSnapshot(bytes.NewReader(buf.Bytes())); err != nil {
				b.Fatal(err)
			}
			if r.Len() != c.Len() {
				b.Fatalf("%d edges restored of %d", r.Len(), c.Len())
			}
		}
	})
}
