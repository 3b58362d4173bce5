package agent

import "sync"

// aggregator gathers the edges seen during one interval. It is safe for concurrent use:
// the event stream and a concurrent table dump feed it while the push loop flushes it.
type aggregator struct {
	mu    sync.Mutex
	edges map[edge]edgeStats
	max   int // distinct edges held; past it new edges are refused
}

func newAggregator(max int) *aggregator {
	return &aggregator{edges: map[edge]edgeStats{}, max: max}
}

// add records count connections of e seen at lastSeen (Unix seconds). It returns false when
// e is new and the aggregator is full.
func (g *aggregator) add(e edge, count uint64, lastSeen int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.edges[e]
	if !ok && len(g.edges) >= g.max {
		return false
	}
	s.merge(edgeStats{count: count, lastSeen: lastSeen})
	g.edges[e] = s
	return true
}

// flush returns the edges gathered since the last flush and starts afresh.
func (g *aggregator) flush() map[edge]edgeStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.edges
	g.edges = make(map[edge]edgeStats, min(len(out), g.max))
	return out
}

// edgeBuffer holds edges waiting to be pushed, from the least to the most recently seen (or
// merged). Merging an edge already held adds its count and moves it to the newest end;
// popOldest takes from the other end. It is not safe for concurrent use.
type edgeBuffer struct {
	m          map[edge]*bufEntry
	head, tail *bufEntry // head is the oldest
}

type bufEntry struct {
	edge
	edgeStats
	prev, next *bufEntry
}

func newEdgeBuffer() *edgeBuffer { return &edgeBuffer{m: map[edge]*bufEntry{}} }

func (b *edgeBuffer) len() int { return len(b.m) }

// add merges e as the newest edge. It returns true when e was not held before.
func (b *edgeBuffer) add(e edge, s edgeStats) bool {
	if x, ok := b.m[e]; ok {
		x.merge(s)
		b.unlink(x)
		b.pushBack(x)
		return false
	}
	x := &bufEntry{edge: e, edgeStats: s}
	b.m[e] = x
	b.pushBack(x)
	return true
}

// addOldest merges e where it is, or holds it as the oldest edge when new; it is how a
// batch that failed to push goes back. It returns true when e was not held before.
func (b *edgeBuffer) addOldest(e edge, s edgeStats) bool {
	if x, ok := b.m[e]; ok {
		x.merge(s)
		return false
	}
	x := &bufEntry{edge: e, edgeStats: s, next: b.head}
	if b.head != nil {
		b.head.prev = x
	} else {
		b.tail = x
	}
	b.head = x
	b.m[e] = x
	return true
}

// popOldest removes and returns the oldest edge.
func (b *edgeBuffer) popOldest() (bufItem, bool) {
	x := b.head
	if x == nil {
		return bufItem{}, false
	}
	b.unlink(x)
	delete(b.m, x.edge)
	return bufItem{x.edge, x.edgeStats}, true
}

// take removes and returns up to n edges, oldest first.
func (b *edgeBuffer) take(n int) []bufItem {
	items := make([]bufItem, 0, min(n, b.len()))
	for len(items) < n {
		it, ok := b.popOldest()
		if !ok {
			break
		}
		items = append(items, it)
	}
	return items
}

// each calls fn with every edge, oldest first.
func (b *edgeBuffer) each(fn func(edge, edgeStats)) {
	for x := b.head; x != nil; x = x.next {
		fn(x.edge, x.edgeStats)
	}
}

func (b *edgeBuffer) pushBack(x *bufEntry) {
	x.prev, x.next = b.tail, nil
	if b.tail != nil {
		b.tail.next = x
	} else {
		b.head = x
	}
	b.tail = x
}

func (b *edgeBuffer) unlink(x *bufEntry) {
	if x.prev != nil {
		x.prev.next = x.next
	} else {
		b.head = x.next
	}
	if x.next != nil {
		x.next.prev = x.prev
	} else {
		b.tail = x.prev
	}
	x.prev, x.next = nil, nil
}

// bufItem is an edge taken out of a buffer.
type bufItem struct {
	edge
	edgeStats
}
