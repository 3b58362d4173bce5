package evaluator

// A workload endpoint stands for its pods, which may run on several nodes and have several
// addresses. Labels, ports and nodes are the workload's, so selectors, named ports and the
// own-node rule judge all of its pods alike; only an ipBlock over the peer's address can
// tell them apart. A flow between workloads is judged pod by pod only where one can apply,
// so most flows cost one verdict, not one per pod.

// maxPodsListed bounds the pods a verdict names.
const maxPodsListed = 8

// splitEnds says which ends of f must be judged pod by pod under the policy sets: the
// source's pods when the destination's ingress rules read addresses, the destination's when
// the source's egress rules do.
func splitEnds(f Flow, sets ...*PolicySet) (src, dst bool) {
	if len(f.Src.Pods) > 1 && f.Dst.Kind == Pod {
		for _, ps := range sets {
			if nsp := ps.byNS[f.Dst.Namespace]; nsp != nil && nsp.ingressIPBlocks {
				src = true
			}
		}
	}
	if len(f.Dst.Pods) > 1 && f.Src.Kind == Pod {
		for _, ps := range sets {
			if nsp := ps.byNS[f.Src.Namespace]; nsp != nil && nsp.egressIPBlocks {
				dst = true
			}
			// Cluster policies' networks and nodes peers read addresses as ipBlock does.
			// (Their ingress peers are pods and namespaces only.)
			if ps.cluster != nil && ps.cluster.egressAddr {
				dst = true
			}
		}
	}
	return src, dst
}

// podPairs calls fn for each pair of pods f stands for, with the split ends replaced by
// their pods, until fn returns false.
func podPairs(f Flow, splitSrc, splitDst bool, fn func(g Flow) bool) {
	ns, nd := 1, 1
	if splitSrc {
		ns = len(f.Src.Pods)
	}
	if splitDst {
		nd = len(f.Dst.Pods)
	}
	g := f
	for i := range ns {
		if splitSrc {
			g.Src = f.Src.Pods[i]
		}
		for j := range nd {
			if splitDst {
				g.Dst = f.Dst.Pods[j]
			}
			if !fn(g) {
				return
			}
		}
	}
}

// pairName names the pods of a pair that were split out: "web-1 (node-a)", or
// "web-1 (node-a) → api-2 (node-b)" when both were.
func pairName(g Flow, splitSrc, splitDst bool) string {
	switch {
	case splitSrc && splitDst:
		return podName(g.Src) + " → " + podName(g.Dst)
	case splitSrc:
		return podName(g.Src)
	default:
		return podName(g.Dst)
	}
}

func podName(ep *Endpoint) string {
	name := ep.Pod
	if name == "" {
		name = ep.String()
	}
	switch {
	case ep.NodeName != "":
		return name + " (" + ep.NodeName + ")"
	case ep.IP.IsValid():
		return name + " (" + ep.IP.String() + ")"
	}
	return name
}

// split returns the ends of f this evaluation must judge pod by pod.
func (e *Evaluation) split(f Flow) (src, dst bool) {
	if len(f.Src.Pods) <= 1 && len(f.Dst.Pods) <= 1 {
		return false, false
	}
	return splitEnds(f, e.ps)
}

// podsAllowed reports whether the flow of every pod pair is allowed.
func (e *Evaluation) podsAllowed(f Flow, splitSrc, splitDst bool) bool {
	ok := true
	podPairs(f, splitSrc, splitDst, func(g Flow) bool {
		ok = e.allowed(g, e.state(g.Src), e.state(g.Dst))
		return ok
	})
	return ok
}

// podsVerdict is the verdict on f from its pods' flows: allowed if every one is; else the
// first denied one's, naming the denied pods when some were allowed.
func (e *Evaluation) podsVerdict(f Flow, splitSrc, splitDst bool) Verdict {
	var first, denied Verdict
	seen, allowed, n := false, 0, 0
	var names []string
	podPairs(f, splitSrc, splitDst, func(g Flow) bool {
		v := e.verdict(g)
		n++
		if !seen {
			first, seen = v, true
		}
		if v.Allowed {
			allowed++
			return true
		}
		// A certain denial explains the flow better than an uncertain one.
		if len(names) == 0 || (denied.Uncertain && !v.Uncertain) {
			denied = v
		}
		if len(names) < maxPodsListed {
			names = append(names, pairName(g, splitSrc, splitDst))
		}
		return true
	})
	if allowed == n {
		return first
	}
	if allowed > 0 {
		denied.Pods = names
	}
	return denied
}

// podCut is a cut flow that was judged pod by pod.
type podCut struct {
	// src and dst are the first pair whose flow is cut: the one explained.
	src, dst *Endpoint
	// pods names the cut pairs when some of the flow's pairs are not cut.
	pods []string
}

// judgePods judges a flow pod by pod: it is cut if the flow of any pair of its pods is.
func (d *differ) judgePods(eb, ea *Evaluation, f Flow, splitSrc, splitDst, srcSel, dstSel bool) (podCut, bool) {
	var cut podTally
	n := 0
	podPairs(f, splitSrc, splitDst, func(g Flow) bool {
		n++
		if d.judge(eb, ea, g, eb.state(g.Src), eb.state(g.Dst), srcSel, dstSel) {
			cut.add(g, splitSrc, splitDst)
		}
		return true
	})
	if cut.n == 0 {
		return podCut{}, false
	}
	return cut.of(n), true
}

// podTally gathers the pairs of a flow's pods that were judged alike (cut, or uncertain):
// how many, the first, and the names of up to maxPodsListed.
type podTally struct {
	n     int
	first podCut
	names []string
}

// add tallies the flow g of one pair of pods.
func (t *podTally) add(g Flow, splitSrc, splitDst bool) {
	if t.n == 0 {
		t.first.src, t.first.dst = g.Src, g.Dst
	}
	t.n++
	if len(t.names) < maxPodsListed {
		t.names = append(t.names, pairName(g, splitSrc, splitDst))
	}
}

// of is the tallied pairs of a flow of n pairs: they are named when not all n are.
func (t *podTally) of(n int) podCut {
	pc := t.first
	if t.n < n {
		pc.pods = t.names
	}
	return pc
}
