package flows

import (
	"bufio"
	"bytes"
	"hash/crc32"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// clientAddr is the i-th of an internet-facing ingress's clients, from 198.18.0.0/15.
func clientAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})
}

// clusterEdges adds the cluster's own traffic: 50 edges between workloads.
func clusterEdges(c *Cache) {
	for i := range 50 {
		c.Add(obs(wl("shop", "Deployment/web"), wl("shop", "Deployment/cart"), int32(8000+i), t0))
	}
}

func countShopEdges(c *Cache) int {
	n := 0
	for _, e := range c.EdgesOutOf("shop", nil) {
		if e.Dst.Kind == PeerWorkload {
			n++
		}
	}
	return n
}

func TestInternetFacingIngressDoesNotEvictTheClustersEdges(t *testing.T) {
	ingress := wl("ingress", "Deployment/ingress-nginx")
	push := func(c *Cache) {
		for i := range 20_000 {
			c.Add(obs(PeerID{Kind: PeerExternal, IP: clientAddr(i)}, ingress, 443, t0.Add(time.Duration(i)*time.Millisecond)))
		}
	}

	t.Run("one by one, the clients evict them", func(t *testing.T) {
		c := New(Options{MaxEdges: 5000})
		clusterEdges(c)
		push(c)
		if n := countShopEdges(c); n != 0 {
			t.Errorf("%d of the cluster's 50 edges survived without aggregation; the test no longer shows the need", n)
		}
	})
	t.Run("aggregated, they stay", func(t *testing.T) {
		c := New(Options{MaxEdges: 5000, MaxExternalPeers: 1000})
		clusterEdges(c)
		push(c)
		if n := countShopEdges(c); n != 50 {
			t.Errorf("%d of the cluster's 50 edges survived 20 000 client addresses", n)
		}
		cov := c.Coverage()
		// 1000 addresses one by one, then the /24s of the other 19 000 (75 of them, one
		// shared with the exact ones).
		if cov.Peers > 1000+80+2 || cov.Evicted != 0 {
			t.Errorf("%d peers held, %d edges evicted", cov.Peers, cov.Evicted)
		}
		var agg Edge
		for _, e := range c.EdgesInto("ingress", nil) {
			if e.Src.Bits != 0 && e.Src.Prefix() == netip.MustParsePrefix("198.18.10.0/24") {
				agg = e
			}
		}
		if agg.Count != 256 {
			t.Errorf("198.18.10.0/24 → ingress holds %d flows, want its 256 clients'", agg.Count)
		}
	})
	t.Run("a policy's boundary inside a network keeps its addresses apart", func(t *testing.T) {
		split := netip.MustParsePrefix("198.18.64.0/25") // an ipBlock cidr
		c := New(Options{MaxEdges: 50_000, MaxExternalPeers: 1000, SplitsPrefix: func(p netip.Prefix) bool {
			return p.Bits() < split.Bits() && p.Overlaps(split)
		}})
		push(c)
		exact, aggregated := 0, 0
		for _, e := range c.EdgesInto("ingress", nil) {
			if netip.MustParsePrefix("198.18.64.0/24").Contains(e.Src.IP) {
				if e.Src.Bits == 0 {
					exact++
				} else {
					aggregated++
				}
			}
		}
		if exact != 256 || aggregated != 0 {
			t.Errorf("198.18.64.0/24 held as %d addresses and %d networks, want its 256 addresses", exact, aggregated)
		}
	})
}

func TestSnapshotKeepsAggregatedPeers(t *testing.T) {
	c := New(Options{})
	net24 := PeerID{Kind: PeerExternal, IP: netip.MustParseAddr("203.0.113.0"), Bits: 24}
	net48 := PeerID{Kind: PeerExternal, IP: netip.MustParseAddr("2001:db8:1::"), Bits: 48}
	c.Add(obs(net24, wl("shop", "Deployment/web"), 443, t0), obs(net48, wl("shop", "Deployment/web"), 443, t0), obs(ext("203.0.113.7"), wl("shop", "Deployment/web"), 443, t0))
	var buf bytes.Buffer
	if err := c.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r := New(Options{})
	if err := r.ReadSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	got := edgeSet(r)
	for _, want := range []string{"203.0.113.0/24>shop/Deployment/web TCP/443", "2001:db8:1::/48>shop/Deployment/web TCP/443", "203.0.113.7>shop/Deployment/web TCP/443"} {
		if _, ok := got[want]; !ok {
			t.Errorf("restored edges %v lack %s", got, want)
		}
	}
}

// TestSnapshotVersion1IsRead reads a snapshot as version 1 wrote it: no prefix lengths.
func TestSnapshotVersion1IsRead(t *testing.T) {
	var body bytes.Buffer
	bw := bufio.NewWriter(&body)
	enc := &encoder{w: bw}
	enc.raw([]byte(snapshotMagic))
	enc.uvarint(1)
	enc.varint(t0.UnixNano())
	enc.uvarint(0) // unresolved
	enc.uvarint(0) // evicted
	enc.uvarint(0) // expired
	enc.uvarint(0) // sources
	enc.uvarint(2) // peers
	enc.uvarint(uint64(PeerWorkload))
	enc.str("shop")
	enc.str("Deployment/web")
	enc.bytes(nil)
	enc.uvarint(0)
	enc.uvarint(uint64(PeerExternal))
	enc.str("")
	enc.str("")
	ip, _ := netip.MustParseAddr("203.0.113.7").MarshalBinary()
	enc.bytes(ip)
	enc.uvarint(0)
	enc.uvarint(1) // edges
	enc.uvarint(1)
	enc.uvarint(0)
	enc.uvarint(443)
	enc.uvarint(uint64(protoCode(corev1.ProtocolTCP)))
	enc.varint(t0.Unix())
	enc.varint(60)
	enc.uvarint(3)
	bw.Flush()
	data := body.Bytes()
	data = append(data, byte(crc32.ChecksumIEEE(data)>>24), byte(crc32.ChecksumIEEE(data)>>16), byte(crc32.ChecksumIEEE(data)>>8), byte(crc32.ChecksumIEEE(data)))

	r := New(Options{})
	if err := r.ReadSnapshot(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	got := edgeSet(r)
	if _, ok := got["203.0.113.7>shop/Deployment/web TCP/443"]; !ok || len(got) != 1 {
		t.Errorf("version 1 snapshot restored as %v", got)
	}
}
