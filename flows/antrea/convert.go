package antrea

import (
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/api/validate/content"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/antrea/antreapb"
)

// SkipReason says why Convert passed over an Antrea flow.
type SkipReason uint8

const (
	// NotSkipped: the flow became a record.
	NotSkipped SkipReason = iota
	// SkipDenied: an ingress or egress rule dropped or rejected the connection. Traffic that
	// does not flow cannot be cut.
	SkipDenied
	// SkipNotL4: the protocol is not TCP, UDP or SCTP, or there is no destination port.
	SkipNotL4
	// SkipNoPeer: an end has neither a pod nor a valid IP address.
	SkipNoPeer
	// SkipInvalid: the record would fail flows.Record.Normalize.
	SkipInvalid

	numSkipReasons
)

var skipReasonNames = [numSkipReasons]string{
	NotSkipped:  "notSkipped",
	SkipDenied:  "denied",
	SkipNotL4:   "notL4",
	SkipNoPeer:  "noPeer",
	SkipInvalid: "invalid",
}

// String names the reason in lowerCamelCase ("notL4"), fit for a metric label.
func (r SkipReason) String() string {
	if r < numSkipReasons {
		return skipReasonNames[r]
	}
	return fmt.Sprintf("SkipReason(%d)", uint8(r))
}

// IANA protocol numbers of the transports a record may carry.
const (
	protoTCP  = 6
	protoUDP  = 17
	protoSCTP = 132
)

// Convert turns an Antrea flow into a flow record — or says why not.
//
// Antrea's flows are connections, source to destination as initiated, so there are no
// replies to leave out. A flow is taken unless an ingress or egress NetworkPolicy rule
// dropped or rejected it, it carries TCP, UDP or SCTP with a destination port, and both
// ends can be named. Each end becomes a peer: a pod (source_pod_* or destination_pod_*) by
// namespace, name and labels (less any that are not valid Kubernetes labels); every end
// keeps its IP (ip.source, ip.destination: the destination after Service DNAT), and an end
// that is no pod (a node, an external address) is named by IP only.
//
// The record's port is the transport's destination port, lastSeen the flow's end (its
// start when it has no end), and its count 1. The record is normalised; SkipInvalid comes
// with the error saying why it is not valid.
func Convert(f *pb.Flow) (flows.Record, SkipReason, error) {
	k := f.GetK8S()
	if denies(k.GetIngressNetworkPolicyRuleAction()) || denies(k.GetEgressNetworkPolicyRuleAction()) {
		return flows.Record{}, SkipDenied, nil
	}
	rec := flows.Record{Count: 1}
	switch f.GetTransport().GetProtocolNumber() {
	case protoTCP:
		rec.Protocol = flows.ProtocolTCP
	case protoUDP:
		rec.Protocol = flows.ProtocolUDP
	case protoSCTP:
		rec.Protocol = flows.ProtocolSCTP
	default:
		return flows.Record{}, SkipNotL4, nil
	}
	port := f.GetTransport().GetDestinationPort()
	if port < 1 || port > 65535 {
		return flows.Record{}, SkipNotL4, nil
	}
	rec.Port = int32(port)
	var ok bool
	if rec.Src, ok = peer(k.GetSourcePodNamespace(), k.GetSourcePodName(), k.GetSourcePodLabels(), f.GetIp().GetSource()); !ok {
		return flows.Record{}, SkipNoPeer, nil
	}
	if rec.Dst, ok = peer(k.GetDestinationPodNamespace(), k.GetDestinationPodName(), k.GetDestinationPodLabels(), f.GetIp().GetDestination()); !ok {
		return flows.Record{}, SkipNoPeer, nil
	}
	rec.LastSeen = validTime(f.GetEndTs())
	if rec.LastSeen.IsZero() {
		rec.LastSeen = validTime(f.GetStartTs())
	}
	if err := rec.Normalize(); err != nil {
		return flows.Record{}, SkipInvalid, err
	}
	return rec, NotSkipped, nil
}

func denies(a pb.NetworkPolicyRuleAction) bool {
	return a == pb.NetworkPolicyRuleAction_NETWORK_POLICY_RULE_ACTION_DROP ||
		a == pb.NetworkPolicyRuleAction_NETWORK_POLICY_RULE_ACTION_REJECT
}

// peer names one end; ok is false when there is nothing to name it by.
func peer(namespace, pod string, labels *pb.Labels, ip []byte) (flows.Peer, bool) {
	var p flows.Peer
	if addr, ok := netip.AddrFromSlice(ip); ok {
		p.IP = addr.Unmap().String()
	}
	if pod == "" || namespace == "" {
		return p, p.IP != ""
	}
	p.Namespace, p.Pod = namespace, pod
	for k, v := range labels.GetLabels() {
		if len(content.IsLabelKey(k)) > 0 || len(content.IsLabelValue(v)) > 0 {
			continue
		}
		if p.Labels == nil {
			p.Labels = make(map[string]string, len(labels.GetLabels()))
		}
		p.Labels[k] = v
	}
	return p, true
}

// validTime is ts in UTC, or zero when ts is absent, zero, or out of the range RFC 3339
// can write (years 1 to 9999).
func validTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil || ts.CheckValid() != nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return time.Time{}
	}
	return ts.AsTime()
}
