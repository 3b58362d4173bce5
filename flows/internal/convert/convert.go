// Package convert holds the rules the flow sources' Convert functions (flows/hubble,
// flows/goldmane, flows/antrea) share, so each is written once: which transports and ports a
// record may carry, which labels are a pod's, which times are valid, and how skip reasons
// read and are counted.
package convert

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/api/validate/content"

	"github.com/netpol-guard/netpol-guard/flows"
)

// IANA protocol numbers of the transports a record may carry.
const (
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoSCTP = 132
)

// ProtocolName is the record protocol of a transport named in any case ("tcp", "UDP"), or
// false for any other.
func ProtocolName(name string) (string, bool) {
	switch strings.ToLower(name) {
	case "tcp":
		return flows.ProtocolTCP, true
	case "udp":
		return flows.ProtocolUDP, true
	case "sctp":
		return flows.ProtocolSCTP, true
	}
	return "", false
}

// ProtocolNumber is the record protocol of a transport by IANA number, or false for any
// other.
func ProtocolNumber(n uint32) (string, bool) {
	switch n {
	case ProtoTCP:
		return flows.ProtocolTCP, true
	case ProtoUDP:
		return flows.ProtocolUDP, true
	case ProtoSCTP:
		return flows.ProtocolSCTP, true
	}
	return "", false
}

// Port is a destination port as a record holds it, or false when it is not in 1..65535.
func Port[P ~int32 | ~uint32 | ~int64](p P) (int32, bool) {
	if p < 1 || p > 65535 {
		return 0, false
	}
	return int32(p), true
}

// Label says whether k=v is a valid Kubernetes label, one a pod may carry.
func Label(k, v string) bool {
	return len(content.IsLabelKey(k)) == 0 && len(content.IsLabelValue(v)) == 0
}

// Time is ts in UTC, or zero when ts is absent or out of the range RFC 3339 can write
// (years 1 to 9999).
func Time(ts *timestamppb.Timestamp) time.Time {
	if ts == nil || ts.CheckValid() != nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// ReasonName is names[r], the name of a source's skip reason, or "SkipReason(r)" for one
// beyond them.
func ReasonName[R ~uint8](names []string, r R) string {
	if int(r) < len(names) {
		return names[r]
	}
	return fmt.Sprintf("SkipReason(%d)", uint8(r))
}

// Counts are a source's counts by skip reason, indexed by reason, as a map of those not
// zero (a Stats' Skipped).
func Counts[R ~uint8](counts []uint64) map[R]uint64 {
	m := make(map[R]uint64, len(counts))
	for r, n := range counts {
		if n > 0 {
			m[R(r)] = n
		}
	}
	return m
}
