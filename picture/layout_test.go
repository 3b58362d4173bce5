package picture

import (
	"fmt"
	"strings"
	"testing"
)

func TestLayoutPutsEveryEdgeForwardOnAnAcyclicGraph(t *testing.T) {
	g := Graph{}
	for _, n := range []string{"ingress", "web", "cart", "catalog", "redis", "dns"} {
		g.Nodes = append(g.Nodes, Node{ID: n, Label: n})
	}
	for _, e := range [][2]string{{"ingress", "web"}, {"web", "cart"}, {"web", "catalog"}, {"cart", "redis"}, {"cart", "dns"}, {"web", "dns"}} {
		g.Edges = append(g.Edges, Edge{From: e[0], To: e[1]})
	}
	places, layers := layout(g)
	for _, e := range g.Edges {
		if places[e.To].layer <= places[e.From].layer {
			t.Errorf("edge %s → %s not forward: %v", e.From, e.To, places)
		}
	}
	if len(layers) != 4 || places["dns"].layer != 3 {
		t.Errorf("layers by longest path: %v", layers)
	}
}

func TestBarycentreOrderingUncrossesAnX(t *testing.T) {
	// a1 → b2 and a2 → b1 cross in input order; the sweeps put b2 beside a1.
	g := Graph{Nodes: []Node{{ID: "a1"}, {ID: "a2"}, {ID: "b1"}, {ID: "b2"}}, Edges: []Edge{{From: "a1", To: "b2"}, {From: "a2", To: "b1"}}}
	places, _ := layout(g)
	if n := crossings(g, places); n != 0 {
		t.Errorf("%d crossings: %v", n, places)
	}
}

func TestLayoutSurvivesCycles(t *testing.T) {
	g := Graph{}
	for i := range 20 {
		g.Nodes = append(g.Nodes, Node{ID: fmt.Sprint(i)})
		g.Edges = append(g.Edges, Edge{From: fmt.Sprint(i), To: fmt.Sprint((i*7 + 3) % 20)}, Edge{From: fmt.Sprint(i), To: fmt.Sprint((i + 1) % 20)})
	}
	places, _ := layout(g)
	if len(places) != 20 {
		t.Fatalf("%d of 20 nodes placed", len(places))
	}
	var b strings.Builder
	if err := HTML(&b, Page{Title: "t", Graph: g}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<script") || strings.Contains(b.String(), "http://") && !strings.Contains(b.String(), "http://www.w3.org/2000/svg") {
		t.Error("the page refers outside itself")
	}
}
