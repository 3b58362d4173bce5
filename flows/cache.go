package flows

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// PeerKind says what one end of an edge is.
type PeerKind uint8

const (
	// PeerExternal is an address outside the cluster's pods and nodes.
	PeerExternal PeerKind = iota
	// PeerWorkload is a workload: namespace and "Kind/name" (Deployment/cart, a bare Pod/x).
	PeerWorkload
	// PeerNode is a cluster node (host-network pods resolve to their node).
	PeerNode
)

func (k PeerKind) String() string {
	switch k {
	case PeerWorkload:
		return "workload"
	case PeerNode:
		return "node"
	default:
		return "external"
	}
}

// PeerID identifies one end of an edge. Pod IPs are only the way in: a cached edge is
// between workloads, nodes and external addresses, so it survives restarts and scale-ups.
type PeerID struct {
	Kind PeerKind
	// Namespace and Name ("Deployment/cart") of a workload.
	Namespace string
	// Name of a workload ("Deployment/cart") or of a node.
	Name string
	// IP of an external peer: its address, or the address of its network.
	IP netip.Addr
	// Bits, when not 0, make an external peer the network IP/Bits (a /24 or /48 the cache
	// aggregates addresses into, see Options.MaxExternalPeers); 0 is the one address IP.
	Bits uint8
}

// Prefix is an external peer's network: IP/Bits, or IP/32 (/128) for a single address.
func (p PeerID) Prefix() netip.Prefix {
	if p.Bits == 0 {
		return netip.PrefixFrom(p.IP, p.IP.BitLen())
	}
	return netip.PrefixFrom(p.IP, int(p.Bits))
}

func (p PeerID) String() string {
	switch p.Kind {
	case PeerWorkload:
		return p.Namespace + "/" + p.Name
	case PeerNode:
		return "node/" + p.Name
	default:
		if p.Bits != 0 {
			return p.Prefix().String()
		}
		return p.IP.String()
	}
}

// PeerInfo is what was last seen of a workload's pods — labels and named ports — so the
// workload can still be judged when no pod of it runs (a CronJob between runs, a Deployment
// scaled to zero). It must not be modified once handed to the cache.
type PeerInfo struct {
	Labels map[string]string
	Ports  []evaluator.ContainerPort
}

// Observation is one resolved flow, ready for the cache.
type Observation struct {
	Src, Dst PeerID
	// SrcInfo and DstInfo, when not nil, replace what the cache keeps of the peer.
	SrcInfo, DstInfo *PeerInfo
	Port             int32
	Protocol         corev1.Protocol
	// Seen is when the flow was observed; Count how many times (0 counts as 1).
	Seen  time.Time
	Count uint64
}

// Edge is aggregated traffic: src → dst on a destination port and protocol.
type Edge struct {
	Src, Dst            PeerID
	SrcInfo, DstInfo    *PeerInfo
	Port                int32
	Protocol            corev1.Protocol
	FirstSeen, LastSeen time.Time
	Count               uint64
	// SrcRef and DstRef number the peers within one read of the cache: edges returned by the
	// same call with equal refs share that peer, so callers can convert each peer once.
	// They mean nothing across calls.
	SrcRef, DstRef uint32
}

// Options configures a Cache.
type Options struct {
	// Window is how long an edge is kept after it was last seen. Default 24h.
	Window time.Duration
	// MaxEdges caps the edges held; past it the least recently seen go first. Default 1M.
	MaxEdges int
	// MaxBytes, when positive, caps the heap the cache is estimated to hold (Bytes): past
	// it the least recently seen edges go first, as past MaxEdges. The estimate counts each
	// edge, each peer with its names, and each peer's labels and ports.
	MaxBytes int64
	// MaxExternalPeers, when positive, bounds the external addresses held one by one: once
	// the cache holds that many external peers, a new external address is held as its /24
	// (IPv4) or /48 (IPv6) network — unless SplitsPrefix says a policy's address range has
	// a boundary inside that network, where the network's addresses are judged apart. So an
	// internet-facing ingress, one peer per client, cannot push the cluster's own edges out.
	// Addresses held already stay as they are. 0: every address is held as itself.
	MaxExternalPeers int
	// SplitsPrefix, when set, reports whether the current policies tell addresses of a
	// network apart (evaluator.PolicySet.SplitsPrefix). It runs under the cache's write
	// lock: it must be quick and must not call back into the cache. Nil: none does.
	SplitsPrefix func(netip.Prefix) bool
}

// Defaults for Options.
const (
	DefaultWindow   = 24 * time.Hour
	DefaultMaxEdges = 1_000_000
)

// DefaultMaxBytes is the webhook's byte cap (--cache-max-bytes): half the chart's 1 GiB
// memory limit, leaving the rest to admission, pushes being decoded and the informers. The
// edge cap's 1M edges between long-lived workloads take about a fifth of it; a million
// edges to peers of their own (an internet-facing ingress) would take 730 MiB.
// Options.MaxBytes itself defaults to no byte cap.
const DefaultMaxBytes = 512 << 20

// DefaultMaxExternalPeers is the webhook's --cache-max-external-peers. Past it an
// internet-facing ingress costs a peer per /24 (/48) of its clients, not per client.
const DefaultMaxExternalPeers = 10_000

// Networks external addresses are aggregated into past Options.MaxExternalPeers.
const (
	AggregateBitsV4 = 24
	AggregateBitsV6 = 48
)

// Cache is the rolling flow cache: observations aggregated into edges, kept for a window
// and under a cap, indexed by the namespaces of their workloads.
//
// It is safe for concurrent use by many writers and readers. Every operation holds the lock
// for time proportional to its own input (a batch, or the edges a query returns), never to
// the size of the cache: eviction pops from an LRU list, expiry from its tail.
type Cache struct {
	window   time.Duration
	maxEdges int
	maxBytes int64 // 0: no byte cap
	// maxExternal bounds the external peers held one by one (0: no bound); externals
	// counts the external peers held, splits is Options.SplitsPrefix.
	maxExternal int
	externals   int
	splits      func(netip.Prefix) bool
	bytes       int64 // estimated heap held: edgeBytes per edge, peerCost and infoCost per peer

	mu    sync.RWMutex
	edges []edge // slab; free slots are chained through next
	free  uint32 // head of the free list, or none
	index map[edgeKey]uint32
	live  int
	// LRU list of live edges by the time they were last touched: head newest.
	head, tail uint32

	peers     []peer
	peerFree  []uint32
	peerIndex map[PeerID]uint32
	byNS      map[string][]uint32 // workload peers by namespace

	// onNewEdge, when set, is told of each edge added (see OnNewEdge).
	onNewEdge func(Edge)

	since      time.Time
	unresolved uint64
	clamped    uint64
	evicted    uint64
	expired    uint64
	sources    map[string]time.Time
}

const none = ^uint32(0)

type edgeKey struct {
	src, dst uint32
	port     uint16
	proto    uint8
}

// edge is one slab entry: 56 bytes, plus its index entry and two list positions.
type edge struct {
	key         edgeKey
	first, last int64 // unix seconds
	count       uint64
	prev, next  uint32 // LRU links; next chains the free list
	inPos       uint32 // position in peers[key.dst].in
	outPos      uint32 // position in peers[key.src].out
}

type peer struct {
	id      PeerID
	info    *PeerInfo
	in, out []uint32 // edges into and out of this peer
	nsPos   uint32   // position in byNS[id.Namespace]
	live    bool
}

// New returns an empty cache.
func New(opts Options) *Cache {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.MaxEdges <= 0 {
		opts.MaxEdges = DefaultMaxEdges
	}
	c := &Cache{window: opts.Window, maxEdges: opts.MaxEdges, maxBytes: max(opts.MaxBytes, 0), maxExternal: max(opts.MaxExternalPeers, 0), splits: opts.SplitsPrefix}
	c.reset(time.Time{})
	return c
}

func (c *Cache) reset(since time.Time) {
	c.edges = nil
	c.free = none
	c.index = map[edgeKey]uint32{}
	c.live = 0
	c.bytes = 0
	c.head, c.tail = none, none
	c.peers = nil
	c.peerFree = nil
	c.peerIndex = map[PeerID]uint32{}
	c.externals = 0
	c.byNS = map[string][]uint32{}
	c.since = since
	c.unresolved, c.clamped, c.evicted, c.expired = 0, 0, 0, 0
	c.sources = map[string]time.Time{}
}

var protocols = []corev1.Protocol{"", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

func protoCode(p corev1.Protocol) uint8 {
	switch p {
	case corev1.ProtocolUDP:
		return 2
	case corev1.ProtocolSCTP:
		return 3
	default:
		return 1
	}
}

// Add records a batch of observations. Edges already held are updated in place; new ones
// are added, and past the cap the least recently seen edges are evicted.
func (c *Cache) Add(obs ...Observation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range obs {
		c.add(&obs[i])
	}
}

// add records one observation and returns the slot of its edge, or none.
func (c *Cache) add(o *Observation) uint32 {
	if o.Port < 1 || o.Port > 65535 {
		return none
	}
	seen := o.Seen.Unix()
	count := o.Count
	if count == 0 {
		count = 1
	}
	proto := protoCode(o.Protocol)
	srcID, dstID := o.Src, o.Dst
	if c.maxExternal > 0 && c.externals >= c.maxExternal {
		srcID, dstID = c.aggregate(srcID), c.aggregate(dstID)
	}
	if c.since.IsZero() || o.Seen.Before(c.since) {
		c.since = o.Seen
	}
	// The hit path: both peers and the edge are held.
	if src, ok := c.peerIndex[srcID]; ok {
		if dst, ok := c.peerIndex[dstID]; ok {
			if i, ok := c.index[edgeKey{src: src, dst: dst, port: uint16(o.Port), proto: proto}]; ok {
				c.setInfo(src, o.SrcInfo)
				c.setInfo(dst, o.DstInfo)
				e := &c.edges[i]
				e.count += count
				e.last = max(e.last, seen)
				e.first = min(e.first, seen)
				if c.head != i {
					c.unlink(i)
					c.pushFront(i)
				}
				return i
			}
		}
	}
	// A new edge. Make room first: eviction may free the very peers this edge names, so
	// they are interned only afterwards.
	if c.live >= c.maxEdges {
		c.removeEdge(c.tail)
		c.evicted++
	}
	src := c.internPeer(srcID, o.SrcInfo)
	dst := c.internPeer(dstID, o.DstInfo)
	i := c.allocEdge()
	e := &c.edges[i]
	*e = edge{key: edgeKey{src: src, dst: dst, port: uint16(o.Port), proto: proto}, first: seen, last: seen, count: count}
	c.index[e.key] = i
	c.live++
	c.bytes += edgeBytes
	c.pushFront(i)
	sp, dp := &c.peers[src], &c.peers[dst]
	e.outPos = uint32(len(sp.out))
	sp.out = append(sp.out, i)
	e.inPos = uint32(len(dp.in))
	dp.in = append(dp.in, i)
	c.newEdge(i)
	c.shrink()
	return i
}

// aggregate returns the peer an external address is held as once the cache holds
// maxExternal external peers: itself if held already or if a policy splits its network,
// else its network. It runs under the write lock.
func (c *Cache) aggregate(id PeerID) PeerID {
	if id.Kind != PeerExternal || id.Bits != 0 || !id.IP.IsValid() {
		return id
	}
	if _, ok := c.peerIndex[id]; ok {
		return id
	}
	bits := AggregateBitsV4
	if id.IP.Is6() {
		bits = AggregateBitsV6
	}
	p, err := id.IP.Prefix(bits)
	if err != nil || (c.splits != nil && c.splits(p)) {
		return id
	}
	return PeerID{Kind: PeerExternal, IP: p.Addr(), Bits: uint8(bits)}
}

// OnNewEdge sets fn to be called with every edge the cache adds from then on (not with
// updates of edges it holds: the hit path stays as it is). fn runs under the cache's write
// lock: it must be quick and must not call back into the cache — hand the edge to a
// buffered channel, say, and drop it when that is full. nil removes it.
func (c *Cache) OnNewEdge(fn func(Edge)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onNewEdge = fn
}

// newEdge tells the OnNewEdge function, if any, of edge i.
func (c *Cache) newEdge(i uint32) {
	if c.onNewEdge != nil {
		c.onNewEdge(c.edgeAt(i))
	}
}

// shrink evicts the least recently seen edges while the cache is estimated to hold more
// than its byte cap. The edge touched last (at the head) stays.
func (c *Cache) shrink() {
	for c.maxBytes > 0 && c.bytes > c.maxBytes && c.live > 1 {
		c.removeEdge(c.tail)
		c.evicted++
	}
}

func (c *Cache) setInfo(i uint32, info *PeerInfo) {
	if p := &c.peers[i]; info != nil && info != p.info {
		c.bytes += infoCost(info) - infoCost(p.info)
		p.info = info
	}
}

// Estimated heap bytes, for the byte cap. edgeBytes and peerBytes are what
// BenchmarkMemoryPerEdge and BenchmarkMemoryPerPeer measure (slab entries, index entries,
// edge lists, the slack of slices grown by doubling), rounded up.
const (
	edgeBytes  = 128
	peerBytes  = 320
	labelBytes = 64 // a label's map slot and string headers
	portBytes  = 48 // a ContainerPort
	infoBytes  = 96 // a PeerInfo and its map's header
)

func peerCost(id PeerID) int64 { return peerBytes + int64(len(id.Namespace)+len(id.Name)) }

// infoCost estimates a PeerInfo's heap. Peers may share one; each is charged for it.
func infoCost(info *PeerInfo) int64 {
	if info == nil {
		return 0
	}
	n := int64(infoBytes + labelBytes*len(info.Labels) + portBytes*len(info.Ports))
	for k, v := range info.Labels {
		n += int64(len(k) + len(v))
	}
	for _, p := range info.Ports {
		n += int64(len(p.Name))
	}
	return n
}

func (c *Cache) allocEdge() uint32 {
	if c.free != none {
		i := c.free
		c.free = c.edges[i].next
		return i
	}
	c.edges = append(c.edges, edge{})
	return uint32(len(c.edges) - 1)
}

func (c *Cache) pushFront(i uint32) {
	e := &c.edges[i]
	e.prev, e.next = none, c.head
	if c.head != none {
		c.edges[c.head].prev = i
	}
	c.head = i
	if c.tail == none {
		c.tail = i
	}
}

func (c *Cache) unlink(i uint32) {
	e := &c.edges[i]
	if e.prev != none {
		c.edges[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next != none {
		c.edges[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
}

// removeEdge drops edge i from the index, the LRU list and its peers' lists, and frees the
// peers no edge refers to any more.
func (c *Cache) removeEdge(i uint32) {
	e := &c.edges[i]
	c.unlink(i)
	delete(c.index, e.key)
	c.live--
	c.bytes -= edgeBytes
	src, dst := e.key.src, e.key.dst
	c.peers[src].out = c.dropPos(c.peers[src].out, e.outPos, false)
	c.peers[dst].in = c.dropPos(c.peers[dst].in, e.inPos, true)
	e.next = c.free
	c.free = i
	c.releasePeer(src)
	if dst != src {
		c.releasePeer(dst)
	}
}

// dropPos swap-removes position pos from a peer's edge list, fixing the moved edge's
// position.
func (c *Cache) dropPos(list []uint32, pos uint32, in bool) []uint32 {
	last := uint32(len(list) - 1)
	if pos != last {
		moved := list[last]
		list[pos] = moved
		if in {
			c.edges[moved].inPos = pos
		} else {
			c.edges[moved].outPos = pos
		}
	}
	return list[:last]
}

func (c *Cache) internPeer(id PeerID, info *PeerInfo) uint32 {
	if i, ok := c.peerIndex[id]; ok {
		c.setInfo(i, info)
		return i
	}
	var i uint32
	if n := len(c.peerFree); n > 0 {
		i = c.peerFree[n-1]
		c.peerFree = c.peerFree[:n-1]
	} else {
		c.peers = append(c.peers, peer{})
		i = uint32(len(c.peers) - 1)
	}
	p := &c.peers[i]
	*p = peer{id: id, info: info, live: true}
	c.bytes += peerCost(id) + infoCost(info)
	c.peerIndex[id] = i
	if id.Kind == PeerExternal {
		c.externals++
	}
	if id.Kind == PeerWorkload {
		p.nsPos = uint32(len(c.byNS[id.Namespace]))
		c.byNS[id.Namespace] = append(c.byNS[id.Namespace], i)
	}
	return i
}

func (c *Cache) releasePeer(i uint32) {
	p := &c.peers[i]
	if len(p.in) > 0 || len(p.out) > 0 || !p.live {
		return
	}
	delete(c.peerIndex, p.id)
	c.bytes -= peerCost(p.id) + infoCost(p.info)
	if p.id.Kind == PeerExternal {
		c.externals--
	}
	if p.id.Kind == PeerWorkload {
		list := c.byNS[p.id.Namespace]
		last := uint32(len(list) - 1)
		if p.nsPos != last {
			moved := list[last]
			list[p.nsPos] = moved
			c.peers[moved].nsPos = p.nsPos
		}
		if last == 0 {
			delete(c.byNS, p.id.Namespace)
		} else {
			c.byNS[p.id.Namespace] = list[:last]
		}
	}
	*p = peer{}
	c.peerFree = append(c.peerFree, i)
}

// Expire drops the edges last seen before now minus the window, oldest first, and returns
// how many went. It holds the lock for at most a bounded batch at a time.
func (c *Cache) Expire(now time.Time) int {
	cutoff := now.Add(-c.window).Unix()
	total := 0
	for {
		n, more := c.expireBatch(cutoff, 4096)
		total += n
		if !more {
			return total
		}
	}
}

func (c *Cache) expireBatch(cutoff int64, max int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	// The tail is the edge touched longest ago, so edges leave in the order they were last
	// touched. A late observation with an old timestamp keeps its edge until the edges
	// touched before it are gone; memory stays bounded by the cap all the same.
	for n < max && c.tail != none && c.edges[c.tail].last < cutoff {
		c.removeEdge(c.tail)
		n++
	}
	c.expired += uint64(n)
	if c.live == 0 {
		c.since = time.Time{} // nothing observed is held any more
	}
	return n, n == max
}

// EdgesInto appends the edges into workloads of namespace ns to buf.
func (c *Cache) EdgesInto(ns string, buf []Edge) []Edge {
	return c.edgesOfNS(ns, buf, func(p *peer) []uint32 { return p.in })
}

// EdgesOutOf appends the edges out of workloads of namespace ns to buf.
func (c *Cache) EdgesOutOf(ns string, buf []Edge) []Edge {
	return c.edgesOfNS(ns, buf, func(p *peer) []uint32 { return p.out })
}

// edgesOfNS appends the edges that list gives of each workload of namespace ns to buf.
func (c *Cache) edgesOfNS(ns string, buf []Edge, list func(*peer) []uint32) []Edge {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, pi := range c.byNS[ns] {
		for _, ei := range list(&c.peers[pi]) {
			buf = append(buf, c.edgeAt(ei))
		}
	}
	return buf
}

// EdgesOfPeer appends to buf the edges with peer id at one end — into it, then out of it —
// each once (a peer's edge to itself is listed as an in-edge). It reads the peer's own edge
// lists, so it costs the peer's edges, not the cache's; a peer the cache does not hold has
// none. Any kind of peer: a node's edges are what a change to that node's labels can affect.
func (c *Cache) EdgesOfPeer(id PeerID, buf []Edge) []Edge {
	c.mu.RLock()
	defer c.mu.RUnlock()
	pi, ok := c.peerIndex[id]
	if !ok {
		return buf
	}
	p := &c.peers[pi]
	buf = slices.Grow(buf, len(p.in)+len(p.out))
	for _, ei := range p.in {
		buf = append(buf, c.edgeAt(ei))
	}
	for _, ei := range p.out {
		if c.edges[ei].key.dst != pi {
			buf = append(buf, c.edgeAt(ei))
		}
	}
	return buf
}

// Candidates appends, once each, the edges into or out of the workloads of namespace ns for
// which selected returns true — the only edges a change to a policy of ns can affect — and
// returns how many workloads of ns the cache knows. selected runs under the cache's read
// lock: it must be quick and must not call back into the cache. With workers of 2 or more,
// a large read is copied by two goroutines.
func (c *Cache) Candidates(ns string, selected func(PeerID, *PeerInfo) bool, buf []Edge, workers int) ([]Edge, int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	peers := c.byNS[ns]
	var chosen []uint32
	isChosen := make(map[uint32]bool, len(peers))
	for _, pi := range peers {
		p := &c.peers[pi]
		if selected(p.id, p.info) {
			chosen = append(chosen, pi)
			isChosen[pi] = true
		}
	}
	// At most n edges: each chosen workload's, less its out-edges to another chosen one.
	// A large read is copied by two goroutines, each into its own part of buf; the gap the
	// first leaves (its skipped out-edges) is closed after.
	n, half, split := 0, 0, 0
	for _, pi := range chosen {
		n += len(c.peers[pi].in) + len(c.peers[pi].out)
	}
	for i, pi := range chosen {
		if 2*half >= n {
			break
		}
		half += len(c.peers[pi].in) + len(c.peers[pi].out)
		split = i + 1
	}
	start := len(buf)
	buf = slices.Grow(buf, n)[:start+n]
	if n < minParallelRead || workers < 2 || split == len(chosen) {
		w := c.readEdges(chosen, isChosen, buf[start:])
		return buf[:start+w], len(peers)
	}
	var second int
	done := make(chan struct{})
	go func() {
		second = c.readEdges(chosen[split:], isChosen, buf[start+half:])
		close(done)
	}()
	first := c.readEdges(chosen[:split], isChosen, buf[start:start+half])
	<-done
	copy(buf[start+first:], buf[start+half:start+half+second])
	return buf[:start+first+second], len(peers)
}

// minParallelRead is the least read Candidates shares between two goroutines.
const minParallelRead = 4096

// readEdges copies the edges of the chosen workloads into out, each once, and returns how
// many. The caller holds the read lock.
func (c *Cache) readEdges(chosen []uint32, isChosen map[uint32]bool, out []Edge) int {
	w := 0
	for _, pi := range chosen {
		p := &c.peers[pi]
		for _, ei := range p.in {
			out[w] = c.edgeAt(ei)
			w++
		}
		for _, ei := range p.out {
			// An edge between two chosen workloads is already listed as the other's in-edge.
			if !isChosen[c.edges[ei].key.dst] {
				out[w] = c.edgeAt(ei)
				w++
			}
		}
	}
	return w
}

// Range calls fn for every edge until fn returns false. It copies edges out in batches, so
// writers are not held up by a slow fn; an edge added or removed meanwhile may or may not be
// seen, but none is seen twice.
func (c *Cache) Range(fn func(Edge) bool) {
	batch := make([]Edge, 0, 1024)
	for slot := 0; ; {
		batch = batch[:0]
		c.mu.RLock()
		for ; slot < len(c.edges) && len(batch) < cap(batch); slot++ {
			if c.isLive(uint32(slot)) {
				batch = append(batch, c.edgeAt(uint32(slot)))
			}
		}
		end := slot >= len(c.edges)
		c.mu.RUnlock()
		for _, e := range batch {
			if !fn(e) {
				return
			}
		}
		if end {
			return
		}
	}
}

func (c *Cache) isLive(i uint32) bool {
	j, ok := c.index[c.edges[i].key]
	return ok && j == i
}

func (c *Cache) edgeAt(i uint32) Edge {
	e := &c.edges[i]
	src, dst := &c.peers[e.key.src], &c.peers[e.key.dst]
	return Edge{
		Src: src.id, SrcInfo: src.info,
		Dst: dst.id, DstInfo: dst.info,
		Port:      int32(e.key.port),
		Protocol:  protocols[e.key.proto],
		FirstSeen: time.Unix(e.first, 0).UTC(),
		LastSeen:  time.Unix(e.last, 0).UTC(),
		Count:     e.count,
		SrcRef:    e.key.src,
		DstRef:    e.key.dst,
	}
}

// Len is the number of edges held.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.live
}

// History is how long before now the cache's data reaches: 0 while it holds nothing.
func (c Coverage) History(now time.Time) time.Duration {
	if c.Since.IsZero() || now.Before(c.Since) {
		return 0
	}
	return now.Sub(c.Since)
}

// Coverage is what the cache's answers rest on.
type Coverage struct {
	// Since is when the oldest observation the cache took was seen (kept across restarts by
	// the snapshot; a restore that drops edges past the window counts from the oldest edge
	// kept, so downtime is not history): the history the cache's answers rest on. Zero
	// while it holds nothing.
	Since time.Time
	// Edges held now; Peers they connect; Bytes the heap they are estimated to hold.
	Edges, Peers int
	Bytes        int64
	// Unresolved counts flows whose addresses resolved to nothing known.
	Unresolved uint64
	// Clamped counts flows whose lastSeen lay too far in the future (MaxClockSkew).
	Clamped uint64
	// Evicted counts edges dropped to stay under the cap; Expired those past the window.
	Evicted, Expired uint64
	// Sources maps each flow source to when it last delivered.
	Sources map[string]time.Time
}

// Coverage reports what the cache holds and how it came by it.
func (c *Cache) Coverage() Coverage {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cov := Coverage{
		Since: c.since, Edges: c.live, Peers: len(c.peerIndex), Bytes: c.bytes,
		Unresolved: c.unresolved, Clamped: c.clamped, Evicted: c.evicted, Expired: c.expired,
		Sources: make(map[string]time.Time, len(c.sources)),
	}
	for k, v := range c.sources {
		cov.Sources[k] = v
	}
	return cov
}

// Contact records that a source delivered at t, with n flows that could not be resolved.
func (c *Cache) Contact(source string, t time.Time, unresolved int) {
	c.contact(source, t, unresolved, 0)
}

func (c *Cache) contact(source string, t time.Time, unresolved, clamped int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sources) < maxSources || !c.sources[source].IsZero() {
		c.sources[source] = t
	}
	c.unresolved += uint64(unresolved)
	c.clamped += uint64(clamped)
}

// maxSources bounds the per-source table, whatever names callers send.
const maxSources = 4096
