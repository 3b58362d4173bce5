package flows

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestOnNewEdgeIsToldOfNewEdgesOnly(t *testing.T) {
	c := New(Options{})
	var got []Edge
	c.OnNewEdge(func(e Edge) { got = append(got, e) })
	a, b := wl("shop", "Deployment/cart"), wl("shop", "Deployment/redis")
	obs := Observation{Src: a, Dst: b, Port: 6379, Protocol: corev1.ProtocolTCP, Seen: t0}
	c.Add(obs)
	obs.Seen = t0.Add(time.Minute)
	c.Add(obs) // a hit: not new
	obs.Port = 26379
	c.Add(obs)
	if len(got) != 2 || got[0].Port != 6379 || got[1].Port != 26379 || got[0].Src != a || got[0].Dst != b {
		t.Fatalf("told of %+v, want the two new edges", got)
	}
	c.OnNewEdge(nil)
	obs.Port = 1
	c.Add(obs)
	if len(got) != 2 {
		t.Fatalf("told of %d edges after the hook was removed", len(got))
	}
}
