package picture

import (
	"cmp"
	"slices"
)

// Node is a box of the graph: a workload, a node or an outside address.
type Node struct {
	ID    string
	Label string
	// Group is drawn above the label and colours the box: the namespace.
	Group string
}

// Edge is a flow from one node to another.
type Edge struct {
	From, To string
	// Label is drawn on the edge: "TCP/7070 · 2m ago".
	Label string
	// Cut edges are drawn red.
	Cut bool
	// Title is shown on hover: the rule that cuts, the rule that allowed.
	Title string
}

// Graph is what Render draws.
type Graph struct {
	Nodes []Node
	Edges []Edge
}

// placed is a node's layer and position in it, after layout.
type placed struct {
	layer, pos int
}

// layout assigns each node a layer and an order within it: layers by longest path from the
// sources on the graph with its cycles broken (an edge that closes a cycle in depth-first
// order is followed backwards), then a few sweeps of barycentre ordering, down and up, to
// reduce crossings.
func layout(g Graph) (map[string]placed, [][]string) {
	ids := make([]string, 0, len(g.Nodes))
	index := map[string]int{}
	for _, n := range g.Nodes {
		if _, ok := index[n.ID]; !ok {
			index[n.ID] = len(ids)
			ids = append(ids, n.ID)
		}
	}
	out := make([][]int, len(ids))
	for _, e := range g.Edges {
		f, okf := index[e.From]
		t, okt := index[e.To]
		if okf && okt && f != t && !slices.Contains(out[f], t) {
			out[f] = append(out[f], t)
		}
	}
	// Break cycles: keep the edges of a depth-first search that do not point back to a node
	// on the stack.
	state := make([]int8, len(ids)) // 0 new, 1 on stack, 2 done
	dag := make([][]int, len(ids))
	var visit func(int)
	visit = func(v int) {
		state[v] = 1
		for _, w := range out[v] {
			switch state[w] {
			case 0:
				dag[v] = append(dag[v], w)
				visit(w)
			case 2:
				dag[v] = append(dag[v], w)
			default:
				dag[w] = append(dag[w], v) // back edge, reversed
			}
		}
		state[v] = 2
	}
	for v := range ids {
		if state[v] == 0 {
			visit(v)
		}
	}
	// Longest path layering, in topological order.
	indeg := make([]int, len(ids))
	for v := range dag {
		for _, w := range dag[v] {
			indeg[w]++
		}
	}
	layer := make([]int, len(ids))
	var queue []int
	for v := range ids {
		if indeg[v] == 0 {
			queue = append(queue, v)
		}
	}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range dag[v] {
			layer[w] = max(layer[w], layer[v]+1)
			if indeg[w]--; indeg[w] == 0 {
				queue = append(queue, w)
			}
		}
	}
	nLayers := 0
	for _, l := range layer {
		nLayers = max(nLayers, l+1)
	}
	layers := make([][]int, nLayers)
	for v := range ids {
		layers[layer[v]] = append(layers[layer[v]], v)
	}
	pos := make([]float64, len(ids))
	for _, l := range layers {
		for i, v := range l {
			pos[v] = float64(i)
		}
	}
	// Undirected neighbours in the layers above and below.
	up, down := make([][]int, len(ids)), make([][]int, len(ids))
	for v := range dag {
		for _, w := range dag[v] {
			down[v] = append(down[v], w)
			up[w] = append(up[w], v)
		}
	}
	sweep := func(l []int, nb [][]int) {
		bary := map[int]float64{}
		for _, v := range l {
			if len(nb[v]) == 0 {
				bary[v] = pos[v]
				continue
			}
			s := 0.0
			for _, w := range nb[v] {
				s += pos[w]
			}
			bary[v] = s / float64(len(nb[v]))
		}
		slices.SortStableFunc(l, func(a, b int) int { return cmp.Compare(bary[a], bary[b]) })
		for i, v := range l {
			pos[v] = float64(i)
		}
	}
	for range 4 {
		for i := 1; i < len(layers); i++ {
			sweep(layers[i], up)
		}
		for i := len(layers) - 2; i >= 0; i-- {
			sweep(layers[i], down)
		}
	}
	places := map[string]placed{}
	names := make([][]string, len(layers))
	for li, l := range layers {
		for i, v := range l {
			places[ids[v]] = placed{layer: li, pos: i}
			names[li] = append(names[li], ids[v])
		}
	}
	return places, names
}

// crossings counts the pairs of edges between adjacent layers that cross, for tests.
func crossings(g Graph, places map[string]placed) int {
	type seg struct{ l, a, b int }
	var segs []seg
	for _, e := range g.Edges {
		f, t := places[e.From], places[e.To]
		if f.layer > t.layer {
			f, t = t, f
		}
		if t.layer == f.layer+1 {
			segs = append(segs, seg{f.layer, f.pos, t.pos})
		}
	}
	n := 0
	for i := range segs {
		for j := i + 1; j < len(segs); j++ {
			s, u := segs[i], segs[j]
			if s.l == u.l && (s.a-u.a)*(s.b-u.b) < 0 {
				n++
			}
		}
	}
	return n
}
