package agent

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestAggregatorCountsConnectionsAndKeepsTheLatestSighting(t *testing.T) {
	a := newTestAgent(t, nil)
	f := tcp("10.0.1.5:43122", "10.96.0.10:80", "10.0.2.7:8080", "10.0.1.5:43122")
	other := tcp("10.0.1.5:43123", "10.96.0.10:80", "10.0.2.7:8080", "10.0.1.5:43123") // same edge, next connection
	t0 := time.Unix(1_790_000_000, 0)
	a.observe(f(), kindNew, 1, t0)
	a.observe(f(), kindUpdate, 0, t0.Add(time.Second))
	a.observe(other(), kindNew, 1, t0.Add(2*time.Second))
	a.observe(f(), kindDestroy, 0, t0.Add(3*time.Second))
	a.observe(tcp("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:2", "127.0.0.1:1")(), kindNew, 1, t0)

	got := a.agg.flush()
	want := map[edge]edgeStats{mkEdge(protoTCP, "10.0.1.5", "10.0.2.7:8080"): {count: 2, lastSeen: t0.Unix() + 3}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("flushed %v, want %v", got, want)
	}
	if n := len(a.agg.flush()); n != 0 {
		t.Errorf("second flush has %d edges, want 0", n)
	}
	if v := value(t, a.metrics.events[kindNew]); v != 3 {
		t.Errorf("new events = %v, want 3", v)
	}
	if v := value(t, a.metrics.ignored[ignoreNoise]); v != 1 {
		t.Errorf("ignored noise = %v, want 1", v)
	}
}

func TestAggregatorFullRefusesNewEdgesAndCountsThem(t *testing.T) {
	a := newTestAgent(t, func(o *Options) { o.MaxBufferedEdges = 2 })
	now := time.Unix(1_790_000_000, 0)
	for i := range 4 {
		a.observe(tcp(fmt.Sprintf("10.0.1.%d:40000", i+1), "10.0.2.7:8080", "10.0.2.7:8080", fmt.Sprintf("10.0.1.%d:40000", i+1))(), kindNew, 1, now)
	}
	// A known edge is still updated when full.
	a.observe(tcp("10.0.1.1:40001", "10.0.2.7:8080", "10.0.2.7:8080", "10.0.1.1:40001")(), kindNew, 1, now)
	got := a.agg.flush()
	if len(got) != 2 || got[mkEdge(protoTCP, "10.0.1.1", "10.0.2.7:8080")].count != 2 {
		t.Errorf("flushed %v, want 10.0.1.1 (count 2) and 10.0.1.2", got)
	}
	if v := value(t, a.metrics.dropped[dropAggregationFull]); v != 2 {
		t.Errorf("dropped (aggregation_full) = %v, want 2", v)
	}
}

func TestEdgeBufferDropsTheLeastRecentlySeenFirst(t *testing.T) {
	b := newEdgeBuffer()
	e := func(i int) edge { return mkEdge(protoTCP, fmt.Sprintf("10.0.0.%d", i), "10.0.9.9:80") }
	for i := 1; i <= 4; i++ {
		b.add(e(i), edgeStats{count: 1, lastSeen: int64(i)})
	}
	b.add(e(1), edgeStats{count: 1, lastSeen: 5}) // seen again: now the newest
	if !b.addOldest(e(9), edgeStats{count: 1, lastSeen: 0}) {
		t.Error("addOldest of a new edge reported it known")
	}
	if b.addOldest(e(3), edgeStats{count: 4, lastSeen: 2}) {
		t.Error("addOldest of a known edge reported it new")
	}
	var order []string
	var counts []uint64
	b.each(func(x edge, s edgeStats) {
		order = append(order, x.src.String())
		counts = append(counts, s.count)
	})
	if want := []string{"10.0.0.9", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.1"}; !slices.Equal(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
	if want := []uint64{1, 1, 5, 1, 2}; !slices.Equal(counts, want) {
		t.Errorf("counts = %v, want %v", counts, want)
	}
	taken := b.take(2)
	if len(taken) != 2 || taken[0].src.String() != "10.0.0.9" || taken[1].src.String() != "10.0.0.2" || b.len() != 3 {
		t.Errorf("take(2) = %v, leaving %d", taken, b.len())
	}
	for b.len() > 0 {
		b.popOldest()
	}
	if _, ok := b.popOldest(); ok || b.head != nil || b.tail != nil {
		t.Error("empty buffer still pops")
	}
}

func TestPushBufferIsBoundedForAllReplicasTogether(t *testing.T) {
	a := newTestAgent(t, func(o *Options) { o.MaxBufferedEdges = 5 })
	// Two replicas, never started: everything stays buffered.
	a.push.setTargets([]string{"https://10.0.5.5:9443/v1/flows", "https://10.0.5.6:9443/v1/flows"})
	for i := 1; i <= 4; i++ {
		a.push.add(map[edge]edgeStats{mkEdge(protoTCP, fmt.Sprintf("10.0.0.%d", i), "10.0.9.9:80"): {count: 1, lastSeen: int64(i)}})
	}
	if got := a.push.pending(); got != 5 {
		t.Errorf("pending = %d, want 5", got)
	}
	if v := value(t, a.metrics.dropped[dropBufferFull]); v != 3 {
		t.Errorf("dropped (buffer_full) = %v, want 3", v)
	}
	if v := value(t, a.metrics.buffered); v != 5 {
		t.Errorf("buffered gauge = %v, want 5", v)
	}
	for _, tg := range a.push.targets {
		var kept []string
		tg.buf.each(func(e edge, _ edgeStats) { kept = append(kept, e.src.String()) })
		if len(kept) == 0 || kept[len(kept)-1] != "10.0.0.4" || slices.Contains(kept, "10.0.0.1") {
			t.Errorf("%s kept %v: want the most recent, never the oldest", tg.url, kept)
		}
	}
}
