package cluster

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

func TestAggregatedPeerResolvesToAnExternalNetwork(t *testing.T) {
	l := offlineView(t)
	web := flows.Peer{Namespace: "shop", Workload: "Deployment/web"}

	o, err := l.Identify(flows.Record{Src: flows.Peer{CIDR: "198.51.100.0/24"}, Dst: web, Port: 443, LastSeen: t0})
	if err != nil {
		t.Fatal(err)
	}
	want := flows.PeerID{Kind: flows.PeerExternal, IP: netip.MustParseAddr("198.51.100.0"), Bits: 24}
	if o.Src != want {
		t.Errorf("resolved to %+v, want %+v", o.Src, want)
	}
	ep := l.Endpoint(o.Src, nil)
	if ep.Kind != evaluator.External || ep.Prefix != netip.MustParsePrefix("198.51.100.0/24") || ep.IP.IsValid() {
		t.Errorf("endpoint %+v, want External 198.51.100.0/24 with no single address", ep)
	}
	if ep.String() != "198.51.100.0/24" {
		t.Errorf("endpoint named %q", ep)
	}

	// A network holding a node's address (worker-1's 203.0.113.11) is no external peer.
	if _, err := l.Identify(flows.Record{Src: flows.Peer{CIDR: "203.0.113.0/24"}, Dst: web, Port: 443, LastSeen: t0}); err == nil || !strings.Contains(err.Error(), "cidr 203.0.113.0/24: "+whyCIDRInCluster) {
		t.Errorf("a network holding a node's address: err %v", err)
	}
}
