package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netpol-guard/netpol-guard/flows"
)

func TestEdgeOf(t *testing.T) {
	tests := []struct {
		name string
		flow func() *conntrackFlow
		want edge
		why  string
	}{{
		name: "pod to pod without NAT keeps the destination port",
		flow: tcp("10.0.1.5:43122", "10.0.2.7:8080", "10.0.2.7:8080", "10.0.1.5:43122"),
		want: mkEdge(protoTCP, "10.0.1.5", "10.0.2.7:8080"),
	}, {
		name: "ClusterIP DNAT gives the backend pod and its real port",
		flow: tcp("10.0.1.5:43122", "10.96.0.10:80", "10.0.2.7:8080", "10.0.1.5:43122"),
		want: mkEdge(protoTCP, "10.0.1.5", "10.0.2.7:8080"),
	}, {
		name: "masquerade to an external address keeps the pod as the client",
		flow: tcp("10.0.1.5:43122", "203.0.113.9:443", "203.0.113.9:443", "192.168.1.10:61000"),
		want: mkEdge(protoTCP, "10.0.1.5", "203.0.113.9:443"),
	}, {
		name: "NodePort with SNAT gives the client as it reached the node and the backend pod",
		flow: tcp("198.51.100.4:50000", "192.168.1.10:30080", "10.0.2.7:8080", "192.168.1.10:41000"),
		want: mkEdge(protoTCP, "198.51.100.4", "10.0.2.7:8080"),
	}, {
		name: "hairpin through a Service to itself is an edge to itself",
		flow: tcp("10.0.2.7:43000", "10.96.0.10:80", "10.0.2.7:8080", "10.0.2.1:43000"),
		want: mkEdge(protoTCP, "10.0.2.7", "10.0.2.7:8080"),
	}, {
		name: "UDP DNS through the kube-dns Service",
		flow: udp("10.0.1.5:53000", "10.96.0.10:53", "10.0.3.3:5353", "10.0.1.5:53000"),
		want: mkEdge(protoUDP, "10.0.1.5", "10.0.3.3:5353"),
	}, {
		name: "SCTP is kept",
		flow: flowOf(protoSCTP, "10.0.1.5:40000", "10.0.2.7:3868", "10.0.2.7:3868", "10.0.1.5:40000"),
		want: mkEdge(protoSCTP, "10.0.1.5", "10.0.2.7:3868"),
	}, {
		name: "IPv6 DNAT",
		flow: tcp("[fd00:1::5]:43122", "[fd00:96::10]:80", "[fd00:2::7]:8080", "[fd00:1::5]:43122"),
		want: mkEdge(protoTCP, "fd00:1::5", "[fd00:2::7]:8080"),
	}, {
		name: "IPv4-mapped IPv6 addresses are unmapped",
		flow: tcp("[::ffff:10.0.1.5]:43122", "[::ffff:10.0.2.7]:8080", "[::ffff:10.0.2.7]:8080", "[::ffff:10.0.1.5]:43122"),
		want: mkEdge(protoTCP, "10.0.1.5", "10.0.2.7:8080"),
	}, {
		name: "loopback is dropped",
		flow: tcp("127.0.0.1:40000", "127.0.0.1:10248", "127.0.0.1:10248", "127.0.0.1:40000"),
		why:  ignoreNoise,
	}, {
		name: "a NodePort reached on localhost is dropped",
		flow: tcp("127.0.0.1:40000", "127.0.0.1:30080", "10.0.2.7:8080", "10.0.2.1:40000"),
		why:  ignoreNoise,
	}, {
		name: "IPv6 loopback is dropped",
		flow: tcp("[::1]:40000", "[::1]:8080", "[::1]:8080", "[::1]:40000"),
		why:  ignoreNoise,
	}, {
		name: "link-local (cloud metadata) is dropped",
		flow: tcp("10.0.1.5:40000", "169.254.169.254:80", "169.254.169.254:80", "10.0.1.5:40000"),
		why:  ignoreNoise,
	}, {
		name: "IPv6 link-local is dropped",
		flow: udp("[fe80::1]:546", "[fe80::2]:547", "[fe80::2]:547", "[fe80::1]:546"),
		why:  ignoreNoise,
	}, {
		name: "multicast (mDNS) is dropped",
		flow: udp("10.0.1.5:5353", "224.0.0.251:5353", "224.0.0.251:5353", "10.0.1.5:5353"),
		why:  ignoreNoise,
	}, {
		name: "broadcast is dropped",
		flow: udp("0.0.0.0:68", "255.255.255.255:67", "255.255.255.255:67", "0.0.0.0:68"),
		why:  ignoreNoise,
	}, {
		name: "ICMP is ignored",
		flow: flowOf(1, "10.0.1.5:0", "10.0.2.7:0", "10.0.2.7:0", "10.0.1.5:0"),
		why:  ignoreProtocol,
	}, {
		name: "a zero port is invalid",
		flow: tcp("10.0.1.5:40000", "10.0.2.7:0", "10.0.2.7:0", "10.0.1.5:40000"),
		why:  ignoreInvalid,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := edgeOf(tt.flow())
			if why != tt.why || got != tt.want {
				t.Errorf("edgeOf = %+v, %q; want %+v, %q", got, why, tt.want, tt.why)
			}
		})
	}
}

func TestEdgeOfWithoutReplyTupleUsesTheOriginalDestination(t *testing.T) {
	f := tcp("10.0.1.5:43122", "10.0.2.7:8080", "10.0.2.7:8080", "10.0.1.5:43122")()
	f.TupleReply = conntrackTuple{}
	got, why := edgeOf(f)
	if want := mkEdge(protoTCP, "10.0.1.5", "10.0.2.7:8080"); why != "" || got != want {
		t.Errorf("edgeOf = %+v, %q; want %+v", got, why, want)
	}
}

func TestEdgeRecord(t *testing.T) {
	rec := mkEdge(protoUDP, "10.0.1.5", "10.0.3.3:5353").record(edgeStats{count: 3, lastSeen: 1_790_000_000})
	want := flows.Record{
		Src: flows.Peer{IP: "10.0.1.5"}, Dst: flows.Peer{IP: "10.0.3.3"}, Port: 5353, Protocol: "UDP",
		LastSeen: time.Unix(1_790_000_000, 0).UTC(), Count: 3,
	}
	if rec.Src.IP != want.Src.IP || rec.Dst.IP != want.Dst.IP || rec.Port != want.Port || rec.Protocol != want.Protocol ||
		!rec.LastSeen.Equal(want.LastSeen) || rec.Count != want.Count {
		t.Errorf("record = %+v, want %+v", rec, want)
	}
	if err := rec.Normalize(); err != nil {
		t.Errorf("record is not valid: %v", err)
	}
}

func TestSelfSetMatchesOnlyTheAgentsOwnPushes(t *testing.T) {
	s := &selfSet{
		local: map[netip.Addr]struct{}{netip.MustParseAddr("192.168.1.10"): {}},
		targets: map[netip.AddrPort]struct{}{
			netip.MustParseAddrPort("10.0.5.5:9443"):  {}, // a replica, through the headless Service
			netip.MustParseAddrPort("10.96.0.44:443"): {}, // a --webhook-url through a ClusterIP
		},
	}
	tests := []struct {
		name string
		flow *conntrackFlow
		want bool
	}{
		{"node to a replica", tcp("192.168.1.10:50000", "10.0.5.5:9443", "10.0.5.5:9443", "192.168.1.10:50000")(), true},
		{"node to the webhook's ClusterIP", tcp("192.168.1.10:50000", "10.96.0.44:443", "10.0.5.5:9443", "192.168.1.10:50000")(), true},
		{"a pod to a replica", tcp("10.0.1.5:50000", "10.0.5.5:9443", "10.0.5.5:9443", "10.0.1.5:50000")(), false},
		{"node to another port of a replica", tcp("192.168.1.10:50000", "10.0.5.5:8081", "10.0.5.5:8081", "192.168.1.10:50000")(), false},
		{"node elsewhere", tcp("192.168.1.10:50000", "10.0.6.6:9443", "10.0.6.6:9443", "192.168.1.10:50000")(), false},
	}
	for _, tt := range tests {
		if got := s.match(tt.flow); got != tt.want {
			t.Errorf("%s: match = %v, want %v", tt.name, got, tt.want)
		}
	}
	var none *selfSet
	if none.match(tests[0].flow) {
		t.Error("a nil selfSet matched")
	}
}
