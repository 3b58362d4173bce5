package agent

import (
	"net/netip"
	"time"

	"github.com/ti-mo/conntrack"

	"github.com/netpol-guard/netpol-guard/flows"
)

// IP protocol numbers the agent keeps.
const (
	protoTCP  = 6
	protoUDP  = 17
	protoSCTP = 132
)

// edge is what the agent aggregates and pushes: traffic from a client address to a server
// address on the server's real port (after DNAT) and protocol.
type edge struct {
	src, dst netip.Addr
	port     uint16
	proto    uint8
}

// edgeStats is what is known of an edge: connections seen and when it was last seen (Unix
// seconds).
type edgeStats struct {
	count    uint64
	lastSeen int64
}

func (s *edgeStats) merge(o edgeStats) {
	s.count += o.count
	s.lastSeen = max(s.lastSeen, o.lastSeen)
}

// Reasons a conntrack flow gives no edge; they label the ignored-flows metric.
const (
	ignoreProtocol = "protocol" // not TCP, UDP or SCTP
	ignoreNoise    = "noise"    // loopback, link-local, multicast, broadcast, unspecified
	ignoreSelf     = "self"     // the agent's own pushes to the webhook
	ignoreInvalid  = "invalid"  // missing addresses or port
)

// edgeOf returns the edge of a conntrack flow, or why there is none.
//
// The flow is the original direction, initiator to responder. The original tuple's source is
// the client. The reply tuple's source is the server that actually answered: behind a
// ClusterIP or NodePort (kube-proxy's DNAT) the backend pod and its real port, so the edge
// names the pod, not the Service address. Source NAT (masquerade) rewrites only the reply
// tuple's destination, which is not used.
func edgeOf(f *conntrack.Flow) (edge, string) {
	proto := f.TupleOrig.Proto.Protocol
	switch proto {
	case protoTCP, protoUDP, protoSCTP:
	default:
		return edge{}, ignoreProtocol
	}
	src := f.TupleOrig.IP.SourceAddress.Unmap()
	origDst := f.TupleOrig.IP.DestinationAddress.Unmap()
	dst := f.TupleReply.IP.SourceAddress.Unmap()
	port := f.TupleReply.Proto.SourcePort
	if !dst.IsValid() { // no reply tuple: no NAT known
		dst, port = origDst, f.TupleOrig.Proto.DestinationPort
	}
	switch {
	case !src.IsValid() || !dst.IsValid() || port == 0:
		return edge{}, ignoreInvalid
	case noise(src) || noise(dst) || (origDst.IsValid() && noise(origDst)):
		return edge{}, ignoreNoise
	}
	return edge{src: src, dst: dst, port: port, proto: proto}, ""
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// noise reports whether a is an address no pod-to-pod or pod-to-external flow uses:
// loopback, link-local, multicast, broadcast or unspecified.
func noise(a netip.Addr) bool {
	return a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a == limitedBroadcast
}

func protocolName(p uint8) string {
	switch p {
	case protoUDP:
		return flows.ProtocolUDP
	case protoSCTP:
		return flows.ProtocolSCTP
	}
	return flows.ProtocolTCP
}

// record is the flow record pushed for an edge: peers by IP, for the webhook to resolve.
func (e edge) record(s edgeStats) flows.Record {
	return flows.Record{
		Src:      flows.Peer{IP: e.src.String()},
		Dst:      flows.Peer{IP: e.dst.String()},
		Port:     int32(e.port),
		Protocol: protocolName(e.proto),
		LastSeen: time.Unix(s.lastSeen, 0).UTC(),
		Count:    s.count,
	}
}

// selfSet recognises the agent's own connections to the webhook: from an address of this
// node (the agent runs in the host network) to an address and port it pushes to, before or
// after DNAT.
type selfSet struct {
	local   map[netip.Addr]struct{}
	targets map[netip.AddrPort]struct{}
}

func (s *selfSet) match(f *conntrack.Flow) bool {
	if s == nil || len(s.targets) == 0 {
		return false
	}
	if _, ok := s.local[f.TupleOrig.IP.SourceAddress.Unmap()]; !ok {
		return false
	}
	orig := netip.AddrPortFrom(f.TupleOrig.IP.DestinationAddress.Unmap(), f.TupleOrig.Proto.DestinationPort)
	reply := netip.AddrPortFrom(f.TupleReply.IP.SourceAddress.Unmap(), f.TupleReply.Proto.SourcePort)
	_, o := s.targets[orig]
	_, r := s.targets[reply]
	return o || r
}
