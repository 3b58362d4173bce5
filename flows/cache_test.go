package flows

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func wl(ns, name string) PeerID { return PeerID{Kind: PeerWorkload, Namespace: ns, Name: name} }

func ext(ip string) PeerID { return PeerID{Kind: PeerExternal, IP: netip.MustParseAddr(ip)} }

func obs(src, dst PeerID, port int32, at time.Time) Observation {
	return Observation{Src: src, Dst: dst, Port: port, Protocol: corev1.ProtocolTCP, Seen: at}
}

func TestCacheAggregatesIntoEdges(t *testing.T) {
	c := New(Options{})
	web, cart := wl("shop", "Deployment/web"), wl("shop", "Deployment/cart")
	c.Add(obs(web, cart, 8080, t0.Add(time.Minute)), obs(web, cart, 8080, t0))
	c.Add(Observation{Src: web, Dst: cart, Port: 8080, Protocol: corev1.ProtocolTCP, Seen: t0.Add(2 * time.Minute), Count: 40})
	c.Add(obs(web, cart, 8081, t0))                                                             // other port
	c.Add(Observation{Src: web, Dst: cart, Port: 8080, Protocol: corev1.ProtocolUDP, Seen: t0}) // other protocol
	c.Add(obs(cart, web, 8080, t0))                                                             // other direction

	if c.Len() != 4 {
		t.Fatalf("%d edges, want 4", c.Len())
	}
	var got Edge
	for _, e := range c.EdgesInto("shop", nil) {
		if e.Src == web && e.Port == 8080 && e.Protocol == corev1.ProtocolTCP {
			got = e
		}
	}
	if got.Count != 42 || !got.FirstSeen.Equal(t0) || !got.LastSeen.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("aggregated edge %+v: want count 42, first %v, last %v", got, t0, t0.Add(2*time.Minute))
	}
}

func TestCacheCapEvictsLeastRecentlySeen(t *testing.T) {
	c := New(Options{MaxEdges: 3})
	a, b := wl("shop", "Deployment/a"), wl("shop", "Deployment/b")
	c.Add(obs(a, b, 1, t0), obs(a, b, 2, t0), obs(a, b, 3, t0))
	c.Add(obs(a, b, 1, t0.Add(time.Second))) // 1 is now the most recent, 2 the least
	c.Add(obs(a, b, 4, t0.Add(2*time.Second)))
	ports := map[int32]bool{}
	for _, e := range c.EdgesInto("shop", nil) {
		ports[e.Port] = true
	}
	if len(ports) != 3 || ports[2] || !ports[1] || !ports[4] {
		t.Errorf("held ports %v, want 1, 3, 4", ports)
	}
	if cov := c.Coverage(); cov.Evicted != 1 {
		t.Errorf("evicted %d, want 1", cov.Evicted)
	}
}

func TestCacheFloodStaysBounded(t *testing.T) {
	const limit = 1000
	c := New(Options{MaxEdges: limit})
	for i := range 50 * limit {
		c.Add(obs(ext(fmt.Sprintf("203.0.%d.%d", i/256%256, i%256)), wl(fmt.Sprintf("ns-%d", i%97), fmt.Sprintf("Deployment/w%d", i)), int32(1+i%65535), t0))
	}
	cov := c.Coverage()
	if cov.Edges != limit || cov.Peers > 2*limit || cov.Evicted != 49*limit {
		t.Errorf("after a flood: %d edges, %d peers, %d evicted; want %d edges, ≤ %d peers, %d evicted", cov.Edges, cov.Peers, cov.Evicted, limit, 2*limit, 49*limit)
	}
	if len(c.edges) > limit || len(c.peers) > 2*limit {
		t.Errorf("slabs grew past the cap: %d edge slots, %d peer slots", len(c.edges), len(c.peers))
	}
	if n := len(c.byNS); n > 97 {
		t.Errorf("%d namespaces indexed", n)
	}
}

func TestCacheExpiresPastTheWindow(t *testing.T) {
	c := New(Options{Window: time.Hour})
	a, b := wl("shop", "Deployment/a"), wl("payments", "Deployment/b")
	c.Add(obs(a, b, 1, t0), obs(a, b, 2, t0.Add(30*time.Minute)), obs(b, a, 3, t0.Add(50*time.Minute)))
	if n := c.Expire(t0.Add(61 * time.Minute)); n != 1 {
		t.Errorf("expired %d, want 1", n)
	}
	if n := c.Expire(t0.Add(3 * time.Hour)); n != 2 {
		t.Errorf("expired %d, want 2", n)
	}
	cov := c.Coverage()
	if cov.Edges != 0 || cov.Peers != 0 || cov.Expired != 3 || len(c.byNS) != 0 {
		t.Errorf("after expiry: %+v, %d namespaces indexed", cov, len(c.byNS))
	}
}

func TestCacheIndexesByNamespace(t *testing.T) {
	c := New(Options{})
	web, cart, pay := wl("shop", "Deployment/web"), wl("shop", "Deployment/cart"), wl("payments", "Deployment/api")
	c.Add(obs(web, cart, 80, t0), obs(cart, pay, 443, t0), obs(ext("203.0.113.1"), web, 443, t0), obs(pay, ext("198.51.100.1"), 443, t0))
	if in := c.EdgesInto("shop", nil); len(in) != 2 {
		t.Errorf("into shop: %d edges, want 2", len(in))
	}
	if out := c.EdgesOutOf("shop", nil); len(out) != 2 {
		t.Errorf("out of shop: %d edges, want 2", len(out))
	}
	if in := c.EdgesInto("payments", nil); len(in) != 1 || in[0].Src != cart {
		t.Errorf("into payments: %+v", in)
	}
	onlyCart := func(id PeerID, _ *PeerInfo) bool { return id == cart }
	cands, seen := c.Candidates("shop", onlyCart, nil, 1)
	if len(cands) != 2 || seen != 2 {
		t.Errorf("candidates for cart: %d edges of %d workloads, want 2 of 2", len(cands), seen)
	}
	all := func(PeerID, *PeerInfo) bool { return true }
	if cands, _ := c.Candidates("shop", all, nil, 1); len(cands) != 3 {
		t.Errorf("candidates for all of shop: %d, want 3 (web → cart once)", len(cands))
	}
}

func TestEdgesOfPeer(t *testing.T) {
	c := New(Options{})
	node := PeerID{Kind: PeerNode, Name: "worker-2"}
	other := PeerID{Kind: PeerNode, Name: "worker-3"}
	web, cart := wl("shop", "Deployment/web"), wl("shop", "Deployment/cart")
	c.Add(obs(node, cart, 8080, t0), obs(web, node, 10250, t0), obs(node, node, 22, t0),
		obs(other, cart, 8080, t0), obs(web, cart, 80, t0))
	got := c.EdgesOfPeer(node, nil)
	var names []string
	for _, e := range got {
		if e.Src != node && e.Dst != node {
			t.Errorf("edge %v → %v does not touch %v", e.Src, e.Dst, node)
		}
		names = append(names, fmt.Sprintf("%v→%v:%d", e.Src, e.Dst, e.Port))
	}
	slices.Sort(names)
	want := []string{"node/worker-2→node/worker-2:22", "node/worker-2→shop/Deployment/cart:8080", "shop/Deployment/web→node/worker-2:10250"}
	if !slices.Equal(names, want) {
		t.Errorf("edges of worker-2: %q, want %q (each once, the self-edge too)", names, want)
	}
	if got := c.EdgesOfPeer(web, make([]Edge, 1)); len(got) != 3 {
		t.Errorf("edges of web appended to a buffer of 1: %d, want 1+2", len(got))
	}
	if got := c.EdgesOfPeer(PeerID{Kind: PeerNode, Name: "gone"}, nil); len(got) != 0 {
		t.Errorf("an unknown peer has %d edges", len(got))
	}
	c.Expire(t0.Add(2 * DefaultWindow))
	if got := c.EdgesOfPeer(node, nil); len(got) != 0 {
		t.Errorf("after expiry worker-2 still has %d edges", len(got))
	}
}

func TestCacheKeepsLatestPeerInfo(t *testing.T) {
	c := New(Options{})
	web, cart := wl("shop", "Deployment/web"), wl("shop", "Deployment/cart")
	v1 := &PeerInfo{Labels: map[string]string{"app": "cart", "v": "1"}}
	v2 := &PeerInfo{Labels: map[string]string{"app": "cart", "v": "2"}}
	c.Add(Observation{Src: web, Dst: cart, DstInfo: v1, Port: 80, Seen: t0})
	c.Add(Observation{Src: web, Dst: cart, DstInfo: v2, Port: 80, Seen: t0})
	c.Add(Observation{Src: web, Dst: cart, Port: 80, Seen: t0}) // no info: keep what we had
	if e := c.EdgesInto("shop", nil); len(e) != 1 || e[0].DstInfo != v2 {
		t.Errorf("edge info %+v, want v2", e)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	c := New(Options{})
	info := &PeerInfo{Labels: map[string]string{"app": "cart"}, Ports: nil}
	c.Add(
		Observation{Src: wl("shop", "Deployment/web"), Dst: wl("shop", "Deployment/cart"), DstInfo: info, Port: 8080, Seen: t0, Count: 7},
		Observation{Src: PeerID{Kind: PeerNode, Name: "node-a"}, Dst: wl("shop", "Deployment/cart"), Port: 8080, Seen: t0.Add(time.Minute)},
		Observation{Src: wl("shop", "CronJob/mail"), Dst: ext("2001:db8::1"), Port: 587, Protocol: corev1.ProtocolSCTP, Seen: t0.Add(time.Hour)},
	)
	c.Add(obs(wl("shop", "Deployment/web"), wl("shop", "Deployment/cart"), 8080, t0.Add(2*time.Hour)))
	c.Contact("agent/node-a", t0.Add(time.Hour), 3)

	var buf bytes.Buffer
	if err := c.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r := New(Options{})
	if err := r.ReadSnapshot(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got, want := edgeSet(r), edgeSet(c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restored edges\n%v\nwant\n%v", got, want)
	}
	cov := r.Coverage()
	if !cov.Since.Equal(t0) || cov.Unresolved != 3 || !cov.Sources["agent/node-a"].Equal(t0.Add(time.Hour)) {
		t.Errorf("restored coverage %+v", cov)
	}
	// LRU order survives: the next eviction takes the least recently touched edge.
	r.maxEdges = 3
	r.Add(obs(wl("x", "Pod/p"), wl("x", "Pod/q"), 1, t0))
	if r.Len() != 3 {
		t.Fatalf("%d edges", r.Len())
	}
	for _, e := range r.EdgesInto("shop", nil) {
		if e.Src.Kind == PeerNode {
			t.Errorf("the least recently touched edge (from node-a) survived eviction")
		}
	}
}

func edgeSet(c *Cache) map[string]string {
	out := map[string]string{}
	c.Range(func(e Edge) bool {
		k := fmt.Sprintf("%s>%s %s/%d", e.Src, e.Dst, e.Protocol, e.Port)
		info := ""
		if e.DstInfo != nil {
			info = fmt.Sprint(e.DstInfo.Labels)
		}
		out[k] = fmt.Sprintf("%d %s %s %s", e.Count, e.FirstSeen.Format(time.RFC3339), e.LastSeen.Format(time.RFC3339), info)
		return true
	})
	return out
}

func TestSnapshotCorruptionIsRefusedAndChangesNothing(t *testing.T) {
	c := New(Options{})
	c.Add(obs(wl("shop", "Deployment/web"), wl("shop", "Deployment/cart"), 8080, t0))
	var buf bytes.Buffer
	if err := c.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	versioned := bytes.Clone(good[:len(good)-4])
	versioned[len(snapshotMagic)] = 9

	for name, data := range map[string][]byte{
		"empty":       nil,
		"not ours":    []byte("hello, world"),
		"truncated":   good[:len(good)-7],
		"bit flipped": flipped,
		"new version": withChecksum(versioned),
	} {
		t.Run(name, func(t *testing.T) {
			r := New(Options{})
			r.Add(obs(wl("a", "Pod/a"), wl("a", "Pod/b"), 1, t0))
			err := r.ReadSnapshot(bytes.NewReader(data))
			if err == nil {
				t.Fatal("accepted a bad snapshot")
			}
			if name == "new version" && !bytes.Contains([]byte(err.Error()), []byte("version 9 is not supported")) {
				t.Errorf("error %q does not name the version", err)
			}
			if name != "new version" && !errors.Is(err, ErrSnapshotCorrupt) {
				t.Errorf("error %v is not ErrSnapshotCorrupt", err)
			}
			if r.Len() != 1 {
				t.Errorf("a refused snapshot changed the cache: %d edges", r.Len())
			}
		})
	}
}

func withChecksum(body []byte) []byte {
	var buf bytes.Buffer
	buf.Write(body)
	sum := crc32.ChecksumIEEE(body)
	buf.Write([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
	return buf.Bytes()
}

func TestSnapshotFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.snap")
	c := New(Options{})
	if found, err := c.LoadFile(path); found || err != nil {
		t.Fatalf("missing snapshot: found %v, err %v", found, err)
	}
	c.Add(obs(wl("shop", "Deployment/web"), wl("shop", "Deployment/cart"), 8080, t0))
	if err := c.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	c.Add(obs(wl("shop", "Deployment/web"), wl("shop", "Deployment/cart"), 9090, t0))
	if err := c.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("snapshot directory holds %d files, want just the snapshot", len(entries))
	}
	r := New(Options{})
	if found, err := r.LoadFile(path); !found || err != nil || r.Len() != 2 {
		t.Errorf("restore: found %v, err %v, %d edges", found, err, r.Len())
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if found, err := r.LoadFile(path); !found || err == nil {
		t.Errorf("corrupt file: found %v, err %v", found, err)
	}
}

func TestCacheConcurrentWritersAndReaders(t *testing.T) {
	c := New(Options{MaxEdges: 500})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				c.Add(obs(wl("shop", fmt.Sprintf("Deployment/w%d", w)), wl(fmt.Sprintf("ns%d", i%5), fmt.Sprintf("Pod/p%d", i%300)), int32(1+i%50), t0.Add(time.Duration(i)*time.Second)))
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 200 {
				c.EdgesInto("ns1", nil)
				c.EdgesOutOf("shop", nil)
				c.Candidates("shop", func(PeerID, *PeerInfo) bool { return true }, nil, 2)
				c.Coverage()
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			c.Expire(t0.Add(25 * time.Hour))
			var buf bytes.Buffer
			if err := c.WriteSnapshot(&buf); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if n := c.Len(); n > 500 {
		t.Errorf("%d edges held, cap 500", n)
	}
	seen := 0
	c.Range(func(Edge) bool { seen++; return true })
	if seen != c.Len() {
		t.Errorf("Range saw %d edges of %d", seen, c.Len())
	}
}

func FuzzReadSnapshot(f *testing.F) {
	c := New(Options{})
	c.Add(obs(wl("shop", "Deployment/web"), wl("shop", "Deployment/cart"), 8080, t0))
	c.Add(Observation{Src: wl("shop", "Deployment/web"), Dst: ext("10.1.2.3"), SrcInfo: &PeerInfo{Labels: map[string]string{"a": "b"}}, Port: 53, Protocol: corev1.ProtocolUDP, Seen: t0})
	var buf bytes.Buffer
	c.WriteSnapshot(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := New(Options{})
		if err := r.ReadSnapshot(bytes.NewReader(data)); err != nil {
			return
		}
		// Whatever was accepted must write back and read again to the same edges.
		var out bytes.Buffer
		if err := r.WriteSnapshot(&out); err != nil {
			t.Fatal(err)
		}
		r2 := New(Options{})
		if err := r2.ReadSnapshot(&out); err != nil {
			t.Fatalf("re-reading an accepted snapshot: %v", err)
		}
		if r2.Len() != r.Len() {
			t.Fatalf("%d edges, then %d", r.Len(), r2.Len())
		}
	})
}

func TestCacheEvictionFreeingThePeersOfTheNewEdge(t *testing.T) {
	c := New(Options{MaxEdges: 1})
	a, b, d := wl("shop", "Deployment/a"), wl("shop", "Deployment/b"), wl("shop", "Deployment/d")
	c.Add(obs(a, b, 80, t0))
	c.Add(obs(a, d, 80, t0)) // evicting a → b leaves a with no edge while a → d is added
	c.Add(obs(d, a, 81, t0))
	in := c.EdgesInto("shop", nil)
	if len(in) != 1 || in[0].Src != d || in[0].Dst != a {
		t.Fatalf("edges %+v, want only d → a", in)
	}
	if cov := c.Coverage(); cov.Peers != 2 || cov.Evicted != 2 {
		t.Errorf("coverage %+v, want 2 peers, 2 evicted", cov)
	}
}

func TestHistoryIsWhatTheDataCovers(t *testing.T) {
	c := New(Options{Window: time.Hour})
	if h := c.Coverage().History(t0); h != 0 {
		t.Errorf("empty cache: %s of history, want none", h)
	}
	// A backlog pushed at once, right after a restart without a snapshot: its flows are
	// 25 minutes of history, not the seconds the process has run.
	web, cart := wl("shop", "Deployment/web"), wl("shop", "Deployment/cart")
	c.Add(Observation{Src: web, Dst: cart, Port: 80, Seen: t0.Add(-25 * time.Minute)},
		Observation{Src: cart, Dst: web, Port: 80, Seen: t0.Add(-time.Minute)})
	if h := c.Coverage().History(t0); h != 25*time.Minute {
		t.Errorf("backlog of 25m: %s of history", h)
	}
	// Once everything it held has expired, it has observed nothing it can answer from.
	c.Expire(t0.Add(2 * time.Hour))
	if h := c.Coverage().History(t0.Add(2 * time.Hour)); c.Len() != 0 || h != 0 {
		t.Errorf("all expired: %d edges, %s of history, want none", c.Len(), h)
	}
}

func TestFlowFromYear9999DoesNotStopExpiry(t *testing.T) {
	c := New(Options{Window: time.Hour})
	web, cart := wl("shop", "Deployment/web"), wl("shop", "Deployment/cart")
	resolve := ResolverFunc(func(rec Record) (Observation, bool) {
		return Observation{Src: web, Dst: cart, Port: rec.Port, Protocol: corev1.ProtocolTCP, Seen: rec.LastSeen}, true
	})
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	Ingest(c, resolve, "liar", []Record{{Port: 1, LastSeen: far}}, t0)
	Ingest(c, resolve, "honest", []Record{{Port: 2, LastSeen: t0}, {Port: 3, LastSeen: t0}}, t0)

	if n := c.Expire(t0.Add(2 * time.Hour)); n != 3 {
		t.Errorf("expired %d edges two hours on, want all 3 (the far-future one clamped to now + %v)", n, MaxClockSkew)
	}
	if cov := c.Coverage(); cov.Clamped != 1 {
		t.Errorf("clamped %d records, want 1", cov.Clamped)
	}
}

// recountBytes is the byte estimate computed afresh from what the cache holds.
func recountBytes(c *Cache) int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := int64(c.live) * edgeBytes
	for _, i := range c.peerIndex {
		n += peerCost(c.peers[i].id) + infoCost(c.peers[i].info)
	}
	return n
}

func TestByteCapBoundsACacheOfManyLabelledPeers(t *testing.T) {
	const limit = 1 << 20
	c := New(Options{MaxBytes: limit})
	labels := map[string]string{}
	for i := range MaxPeerLabels {
		labels[fmt.Sprintf("example.com/label-%02d", i)] = strings.Repeat("v", 40)
	}
	info := &PeerInfo{Labels: labels}
	for i := range 5000 {
		o := obs(wl("fake", fmt.Sprintf("Deployment/w%d", i)), wl("shop", "Deployment/cart"), 80, t0.Add(time.Duration(i)*time.Second))
		o.SrcInfo = &PeerInfo{Labels: info.Labels} // a fresh PeerInfo each, as a flood of made-up workloads brings
		c.Add(o)
	}
	cov := c.Coverage()
	if cov.Bytes > limit || cov.Evicted == 0 || cov.Edges == 0 {
		t.Errorf("after 5000 fat peers: %d bytes estimated (cap %d), %d edges, %d evicted", cov.Bytes, limit, cov.Edges, cov.Evicted)
	}
	if got := recountBytes(c); got != cov.Bytes {
		t.Errorf("byte estimate %d drifted from a recount, %d", cov.Bytes, got)
	}
	// The newest edges are the ones kept.
	if e := c.EdgesOutOf("fake", nil); len(e) != cov.Edges || !slices.ContainsFunc(e, func(e Edge) bool { return e.Src.Name == "Deployment/w4999" }) {
		t.Errorf("the most recent edge was evicted")
	}
}

func TestByteEstimateFollowsAddsRelabelsEvictionsAndExpiry(t *testing.T) {
	c := New(Options{MaxEdges: 50, Window: time.Hour})
	for i := range 500 {
		o := obs(wl(fmt.Sprintf("ns-%d", i%7), fmt.Sprintf("Deployment/w%d", i%60)), ext(fmt.Sprintf("192.0.2.%d", i%200)), int32(1+i%9), t0.Add(time.Duration(i)*time.Second))
		if i%3 == 0 {
			o.SrcInfo = &PeerInfo{Labels: map[string]string{"app": fmt.Sprint(i)}, Ports: []evaluator.ContainerPort{{Name: "http", Port: 80}}}
		}
		c.Add(o)
		if got, want := c.Coverage().Bytes, recountBytes(c); got != want {
			t.Fatalf("after %d adds: estimate %d, recount %d", i+1, got, want)
		}
	}
	c.Expire(t0.Add(48 * time.Hour))
	if cov := c.Coverage(); cov.Edges != 0 || cov.Bytes != 0 {
		t.Errorf("empty cache holds %d edges, %d bytes estimated", cov.Edges, cov.Bytes)
	}
}

// A read large enough to be copied in two parts lists every edge of the chosen workloads
// once — edges between two chosen ones too — whatever the part boundary falls on.
func TestCandidatesLargeRead(t *testing.T) {
	c := New(Options{MaxEdges: 1 << 16})
	var o []Observation
	shop := make([]PeerID, 40)
	for i := range shop {
		shop[i] = wl("shop", fmt.Sprintf("Deployment/w%02d", i))
	}
	for i := range 3 * minParallelRead {
		other := wl(fmt.Sprintf("ns-%d", i%9), fmt.Sprintf("Deployment/o%05d", i))
		if i%2 == 0 {
			o = append(o, obs(other, shop[i%len(shop)], 80, t0))
		} else {
			o = append(o, obs(shop[i%len(shop)], other, 80, t0))
		}
		if i%5 == 0 { // within shop, both ends chosen when both are even
			o = append(o, obs(shop[i%len(shop)], shop[(i/5)%len(shop)], int32(1000+i), t0))
		}
	}
	c.Add(o...)
	even := func(id PeerID, _ *PeerInfo) bool {
		var n int
		fmt.Sscanf(id.Name, "Deployment/w%d", &n)
		return n%2 == 0
	}
	want := map[string]bool{}
	for _, e := range append(c.EdgesInto("shop", nil), c.EdgesOutOf("shop", nil)...) {
		if (e.Dst.Namespace == "shop" && even(e.Dst, nil)) || (e.Src.Namespace == "shop" && even(e.Src, nil)) {
			want[fmt.Sprint(e.Src, e.Dst, e.Port)] = true
		}
	}
	got, _ := c.Candidates("shop", even, make([]Edge, 3), 2) // appended after what buf holds
	got = got[3:]
	seen := map[string]bool{}
	for _, e := range got {
		k := fmt.Sprint(e.Src, e.Dst, e.Port)
		if seen[k] {
			t.Fatalf("%s listed twice", k)
		}
		seen[k] = true
	}
	if len(got) < minParallelRead || len(seen) != len(want) {
		t.Fatalf("%d candidates, want %d (at least %d, to be read in parts)", len(seen), len(want), minParallelRead)
	}
	for k := range want {
		if !seen[k] {
			t.Fatalf("%s missing", k)
		}
	}
}
