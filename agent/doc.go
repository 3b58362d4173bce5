// Package agent is the node flow agent behind `netpol-guard agent`: a DaemonSet that reads
// the node's kernel connection-tracking table and pushes what it sees, as flow records, to
// every replica of the webhook (POST /v1/flows). It gives clusters without Hubble a flow
// source that does not depend on the CNI.
//
// # What it reads
//
// The agent opens a netlink socket to ctnetlink (it needs CAP_NET_ADMIN and the host's
// network namespace), dumps the table once, so that long-lived idle connections are seen,
// and then follows the event stream (new, update, destroy). When the kernel drops events
// because the socket buffer overran (ENOBUFS), the agent counts the overrun, reopens the
// socket and dumps the table again; it also re-dumps every resync interval, so that idle
// connections stay fresh in the webhook's flow cache.
//
// A conntrack entry holds the connection as its initiator sent it (the original tuple) and as
// the answer came back (the reply tuple). The flow is the original direction: the original
// source is the client, and the reply's source address and port are the server that really
// answered — behind a kube-proxy ClusterIP or NodePort that is the backend pod and its
// container port, after DNAT. Source NAT (masquerade) only changes the reply's destination,
// which the agent does not use. TCP, UDP and SCTP are kept; loopback, link-local, multicast
// and broadcast addresses, and the agent's own pushes to the webhook, are dropped. Peers are
// pushed by IP: the webhook resolves them to workloads, nodes or external addresses.
//
// Edges (source IP, destination IP, destination port, protocol) are aggregated over an
// interval and pushed to each replica, with the node's projected ServiceAccount token read
// afresh for every push. Failed pushes are retried with exponential backoff; meanwhile the
// edges wait in a buffer bounded in edges for all replicas together, the least recently seen
// dropped first and counted.
//
// # Where it is blind
//
// The agent sees only what passes through this node's conntrack:
//
//   - eBPF dataplanes that bypass conntrack do not show here, or show only partly: Cilium
//     with its kube-proxy replacement (socket-level load balancing translates the Service
//     address in connect() and the packets never meet a DNAT rule, and Cilium keeps its own
//     connection table rather than the kernel's), Calico's eBPF dataplane, and others that
//     install no netfilter conntrack rules. On such clusters use the Hubble source instead
//     (`netpol-guard webhook --hubble-relay-address`), which reads the dataplane's own flow
//     log.
//   - Traffic that never hits this node's conntrack: host-network processes whose packets no
//     netfilter rule makes the kernel track, traffic between pods handled entirely by a
//     bridge or an eBPF program without netfilter, and conntrack zones or notrack rules that
//     exempt traffic.
//   - Connections that opened and closed while the event socket was overrun are lost (the
//     re-dump after an overrun only finds those still open).
//   - With source NAT before this node (externalTrafficPolicy: Cluster on another node), the
//     client seen is the forwarding node, not the original client.
//
// main.go (cmd_agent.go) wires it to flags, health and metrics endpoints and signals.
package agent

import ctrl "sigs.k8s.io/controller-runtime/pkg/log"

var log = ctrl.Log.WithName("agent")

// Verbosity levels, named once.
const (
	levelDebug = 4
)
