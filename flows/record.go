package flows

import (
	"encoding/json"
	"time"
)

// Peer is one end of a flow as a source reports it. It names a pod (with its namespace), a
// workload ("Deployment/cart", with its namespace), labels, and/or an IP address. A peer with
// only an IP that matches no pod or node is an external address. A peer with only a CIDR is
// a network of external addresses held as one (the webhook's cache aggregates an
// internet-facing ingress's clients so); it is given alone.
type Peer struct {
	Namespace string            `json:"namespace,omitempty"`
	Pod       string            `json:"pod,omitempty"`
	Workload  string            `json:"workload,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	IP        string            `json:"ip,omitempty"`
	CIDR      string            `json:"cidr,omitempty"`
}

// Record is one observed flow: src → dst on a destination port (after DNAT) and protocol.
//
// JSON Lines, one record a line:
//
//	{"src":{"namespace":"shop","pod":"web-7d9f-x2"},"dst":{"namespace":"shop","pod":"cart-5c-q1"},"port":8080,"protocol":"TCP","lastSeen":"2026-11-20T10:00:00Z","count":42}
type Record struct {
	Src      Peer      `json:"src"`
	Dst      Peer      `json:"dst"`
	Port     int32     `json:"port"`
	Protocol string    `json:"protocol,omitempty"` // TCP (default), UDP or SCTP
	LastSeen time.Time `json:"lastSeen,omitzero"`
	Count    uint64    `json:"count,omitempty"`

	// RawSrc and RawDst keep the peers exactly as the input gave them, so outputs can echo
	// them. Empty for records that were not decoded from input.
	RawSrc json.RawMessage `json:"-"`
	RawDst json.RawMessage `json:"-"`
}
