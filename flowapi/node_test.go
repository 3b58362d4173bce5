package flowapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// A two-node world: node-a (10.0.0.1) runs shop/Deployment/web's pod web-a (10.1.0.1) and
// node-b (10.0.0.2) runs web-b (10.1.0.2) and the one pod of shop/Deployment/cart, cart-b
// (10.1.0.3). 192.0.2.0/24 is outside.
var (
	webID  = flows.PeerID{Kind: flows.PeerWorkload, Namespace: "shop", Name: "Deployment/web"}
	cartID = flows.PeerID{Kind: flows.PeerWorkload, Namespace: "shop", Name: "Deployment/cart"}
	world  = map[flows.PeerID]*evaluator.Endpoint{
		webID: {Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/web", Pods: []*evaluator.Endpoint{
			{Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/web", Pod: "web-a", NodeName: "node-a", IP: netip.MustParseAddr("10.1.0.1")},
			{Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/web", Pod: "web-b", NodeName: "node-b", IP: netip.MustParseAddr("10.1.0.2")},
		}},
		cartID: {Kind: evaluator.Pod, Namespace: "shop", Name: "Deployment/cart", Pod: "cart-b", NodeName: "node-b", IP: netip.MustParseAddr("10.1.0.3")},
	}
	worldIPs = map[string]flows.PeerID{
		"10.0.0.1": {Kind: flows.PeerNode, Name: "node-a"}, "10.0.0.2": {Kind: flows.PeerNode, Name: "node-b"},
		"10.1.0.1": webID, "10.1.0.2": webID, "10.1.0.3": cartID,
	}
)

type worldPlacement struct{}

func (worldPlacement) Endpoint(id flows.PeerID, _ *flows.PeerInfo) *evaluator.Endpoint {
	return world[id]
}

var worldResolver = flows.ResolverFunc(func(rec flows.Record) (flows.Observation, bool) {
	peer := func(p flows.Peer) (flows.PeerID, bool) {
		switch {
		case p.Workload != "":
			return flows.PeerID{Kind: flows.PeerWorkload, Namespace: p.Namespace, Name: p.Workload}, true
		case p.Pod == "web-a" || p.Pod == "web-b":
			return webID, true
		case p.Pod == "cart-b":
			return cartID, true
		}
		if id, ok := worldIPs[p.IP]; ok {
			return id, true
		}
		if a, err := netip.ParseAddr(p.IP); err == nil && netip.MustParsePrefix("192.0.2.0/24").Contains(a) {
			return flows.PeerID{Kind: flows.PeerExternal, IP: a}, true
		}
		return flows.PeerID{}, false
	}
	src, ok1 := peer(rec.Src)
	dst, ok2 := peer(rec.Dst)
	return flows.Observation{Src: src, Dst: dst, Port: rec.Port, Protocol: corev1.Protocol(rec.Protocol), Seen: rec.LastSeen}, ok1 && ok2
})

// nodeAuth: "agent-a"/"agent-b" are the agent's tokens bound to node-a/node-b, "agent-unbound"
// the agent's token bound to no node, "relay" a pusher listed for any node, "reader" a
// reader.
type nodeAuth struct{}

func (nodeAuth) Authenticate(_ context.Context, token string) (User, error) {
	switch token {
	case "agent-a", "agent-b":
		return User{Name: agentUser, Extra: map[string][]string{NodeNameExtra: {"node-" + strings.TrimPrefix(token, "agent-")}}}, nil
	case "agent-unbound":
		return User{Name: agentUser}, nil
	case "relay":
		return User{Name: "system:serviceaccount:kube-system:hubble-relay"}, nil
	case "reader":
		return User{Name: exporterUser}, nil
	}
	return User{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
}

func newNodeHandler(t *testing.T) (http.Handler, *flows.Cache) {
	return newTestHandler(t, func(o *HandlerOptions) {
		o.Resolver, o.Authenticator, o.Placement = worldResolver, nodeAuth{}, worldPlacement{}
		o.Writers, o.AnyNodeWriters, o.Readers = []string{agentUser}, []string{"system:serviceaccount:kube-system:hubble-relay"}, []string{exporterUser}
	})
}

func TestNodeBoundWriterPushesOnlyFlowsOfItsNode(t *testing.T) {
	body := strings.Join([]string{
		`{"src":{"ip":"10.1.0.1"},"dst":{"ip":"192.0.2.7"},"port":443}`,                                                        // web-a on node-a → outside: taken
		`{"src":{"ip":"10.0.0.1"},"dst":{"ip":"10.1.0.3"},"port":8080}`,                                                        // node-a → cart-b: taken (node-a's end)
		`{"src":{"namespace":"shop","pod":"web-a"},"dst":{"ip":"10.1.0.3"},"port":8081}`,                                       // web-a by name → cart-b: taken
		`{"src":{"ip":"10.1.0.2"},"dst":{"ip":"10.1.0.3"},"port":8082}`,                                                        // web-b → cart-b, all on node-b: rejected
		`{"src":{"namespace":"shop","workload":"Deployment/web"},"dst":{"ip":"192.0.2.7"},"port":444}`,                         // web, no pod named: rejected
		`{"src":{"namespace":"evil","workload":"Deployment/x"},"dst":{"namespace":"evil","workload":"Deployment/y"},"port":1}`, // made up: rejected
		`{"src":{"namespace":"shop","pod":"web-b"},"dst":{"ip":"10.0.0.2"},"port":10250}`,                                      // node-b's business: rejected
		`{"src":{"ip":"10.9.9.9"},"dst":{"ip":"10.1.0.1"},"port":80}`,                                                          // unknown: unresolved
	}, "\n")
	cases := []struct {
		name, token, source string
		code                int
		want                IngestResult
		sourceSeen          string
	}{
		{name: "agent on node-a", token: "agent-a", code: 200, want: IngestResult{Accepted: 3, Unresolved: 1, Rejected: 4}, sourceSeen: agentUser + "/node-a"},
		{name: "agent on node-a naming its node", token: "agent-a", source: "node-a", code: 200, want: IngestResult{Accepted: 3, Unresolved: 1, Rejected: 4}},
		{name: "agent on node-b", token: "agent-b", code: 200, want: IngestResult{Accepted: 4, Unresolved: 1, Rejected: 3}},
		{name: "agent on node-a claiming node-b", token: "agent-a", source: "node-b", code: 403},
		{name: "agent token bound to no node", token: "agent-unbound", code: 403},
		{name: "writer listed for any node", token: "relay", code: 200, want: IngestResult{Accepted: 7, Unresolved: 1}},
		{name: "reader", token: "reader", code: 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, c := newNodeHandler(t)
			req := httptest.NewRequest(http.MethodPost, FlowsPath, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tc.token)
			if tc.source != "" {
				req.Header.Set(FlowSourceHeader, tc.source)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rr.Code, tc.code, rr.Body)
			}
			if tc.code != 200 {
				if c.Len() != 0 {
					t.Errorf("%d edges added by a refused push", c.Len())
				}
				return
			}
			var got IngestResult
			if err := json.Unmarshal(rr.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Accepted != tc.want.Accepted || got.Unresolved != tc.want.Unresolved || got.Rejected != tc.want.Rejected {
				t.Errorf("answered %s, want %+v", rr.Body, tc.want)
			}
			if (got.Rejected > 0) != strings.Contains(got.Reason, "neither end on node") {
				t.Errorf("reason %q for %d rejected", got.Reason, got.Rejected)
			}
			if c.Len() != tc.want.Accepted {
				t.Errorf("%d edges held, want %d", c.Len(), tc.want.Accepted)
			}
			if tc.sourceSeen != "" {
				if _, ok := c.Coverage().Sources[tc.sourceSeen]; !ok {
					t.Errorf("sources %v, want %q", c.Coverage().Sources, tc.sourceSeen)
				}
			}
		})
	}
}

func TestWritersDoNotReadUnlessListedAsReaders(t *testing.T) {
	for _, tc := range []struct {
		token string
		code  int
	}{{"agent-a", 403}, {"relay", 403}, {"reader", 200}} {
		h, _ := newNodeHandler(t)
		req := httptest.NewRequest(http.MethodGet, FlowsPath, nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code != tc.code {
			t.Errorf("export with %s: status %d, want %d", tc.token, rr.Code, tc.code)
		}
	}
}

func TestUserNode(t *testing.T) {
	for _, tc := range []struct {
		extra map[string][]string
		want  string
	}{
		{nil, ""},
		{map[string][]string{NodeNameExtra: {"n1"}}, "n1"},
		{map[string][]string{NodeNameExtra: {"n1", "n2"}}, ""},
		{map[string][]string{"authentication.kubernetes.io/pod-name": {"p"}}, ""},
	} {
		if got := (User{Extra: tc.extra}).Node(); got != tc.want {
			t.Errorf("Node() of %v = %q, want %q", tc.extra, got, tc.want)
		}
	}
}
