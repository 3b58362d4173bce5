package flows

import "testing"

// BenchmarkIngestHitsOneMillionWithHook: hits on a cache of 1M edges with an OnNewEdge
// hook set, as the staged-policy evaluator sets it: the hook is not on the hit path.
func BenchmarkIngestHitsOneMillionWithHook(b *testing.B) {
	obs := benchObservations(1_000_000, 0)
	c := New(Options{})
	newEdges := make(chan Edge, 4096)
	c.OnNewEdge(func(e Edge) {
		select {
		case newEdges <- e:
		default:
		}
	})
	for i := 0; i < len(obs); i += 4096 {
		c.Add(obs[i:min(i+4096, len(obs))]...)
	}
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
