package antrea

import (
	"net/netip"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/antrea/antreapb"
	"github.com/netpol-guard/netpol-guard/flows/internal/convert"
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
	return convert.ReasonName(skipReasonNames[:], r)
}

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
	var ok bool
	if rec.Protocol, ok = convert.ProtocolNumber(f.GetTransport().GetProtocolNumber()); !ok {
		return flows.Record{}, SkipNotL4, nil
	}
	if rec.Port, ok = convert.Port(f.GetTransport().GetDestinationPort()); !ok {
		return flows.Record{}, SkipNotL4, nil
	}
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
		if !convert.Label(k, v) {
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
	if ts.GetSeconds() == 0 && ts.GetNanos() == 0 {
		return time.Time{}
	}
	return convert.Time(ts)
}
