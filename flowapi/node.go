package flowapi

import (
	"net/netip"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// A node agent sees its own node's traffic, and nothing else. So a writer whose token is
// bound to a node (User.Node: a projected ServiceAccount token of a pod on it) may push only
// flows with one end on that node — the node itself, or a pod running there — as the live
// view places them now. Its other records are rejected and counted, never added: a stolen
// agent token cannot speak for other nodes, nor fill the cache with made-up workloads
// talking to each other.

// Placement places the resolved peers of pushed records: for a workload, the pods it runs
// now with their nodes and addresses. cluster.Live implements it.
type Placement interface {
	Endpoint(id flows.PeerID, stored *flows.PeerInfo) *evaluator.Endpoint
}

// onNode reports whether peer p of a pushed record, resolved to id, is node itself or one
// of id's pods running on node, named by the record's pod name or address. A workload
// named without a pod or an address cannot be placed, and is not on the node.
func onNode(view Placement, p flows.Peer, id flows.PeerID, node string) bool {
	switch id.Kind {
	case flows.PeerNode:
		return id.Name == node
	case flows.PeerWorkload:
	default:
		return false
	}
	if view == nil || p.Pod == "" && p.IP == "" {
		return false
	}
	ep := view.Endpoint(id, nil)
	if ep == nil {
		return false
	}
	var ip netip.Addr
	if p.IP != "" {
		var err error
		if ip, err = netip.ParseAddr(p.IP); err != nil {
			return false
		}
		ip = ip.Unmap()
	}
	pods := ep.Pods
	if len(pods) == 0 {
		pods = []*evaluator.Endpoint{ep}
	}
	for _, pod := range pods {
		if pod.NodeName != node {
			continue
		}
		if p.Pod != "" && pod.Pod == p.Pod && (!ip.IsValid() || pod.IP == ip) {
			return true
		}
		if p.Pod == "" && ip.IsValid() && pod.IP == ip {
			return true
		}
	}
	return false
}
