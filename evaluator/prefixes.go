package evaluator

import (
	"net/netip"
	"slices"
)

// An external peer may stand for a whole network (Endpoint.Prefix): the flow cache holds an
// internet-facing ingress's clients by /24 or /48 rather than one by one. Judging such an
// aggregate is exact as long as no address range a policy names has a boundary strictly
// inside it: every range then holds all of its addresses or none. SplitsPrefix says where
// that fails, so the cache can keep those addresses one by one.

// SplitsPrefix reports whether the boundary of an address range the policies name — an
// ipBlock's cidr or one of its excepts, a cluster policy's networks — falls strictly inside
// p, so that some addresses of p are in the range and others are not. It is pure; the
// ranges are gathered once per PolicySet.
func (ps *PolicySet) SplitsPrefix(p netip.Prefix) bool {
	if !p.IsValid() {
		return false
	}
	p = p.Masked()
	bounds := ps.addressBounds()
	// A range strictly inside p starts inside p. Those starting at p's own address with no
	// more bits than p hold p whole, and come first among the ranges that start there.
	i, _ := slices.BinarySearchFunc(bounds, p.Addr(), func(q netip.Prefix, a netip.Addr) int { return q.Addr().Compare(a) })
	for ; i < len(bounds) && p.Contains(bounds[i].Addr()); i++ {
		if bounds[i].Bits() > p.Bits() {
			return true
		}
	}
	return false
}

// addressBounds returns the distinct address ranges the policies name, sorted by address
// then length.
func (ps *PolicySet) addressBounds() []netip.Prefix {
	ps.boundsOnce.Do(func() {
		var out []netip.Prefix
		for _, nsp := range ps.byNS {
			for _, p := range nsp.peers {
				if p.ipBlock != nil && p.ipBlock.cidr.IsValid() {
					out = append(out, p.ipBlock.cidr)
					out = append(out, p.ipBlock.except...)
				}
			}
		}
		if ps.cluster != nil {
			for _, p := range ps.cluster.peers {
				for _, n := range p.networks {
					out = append(out, n.Masked())
				}
			}
		}
		slices.SortFunc(out, func(a, b netip.Prefix) int {
			if c := a.Addr().Compare(b.Addr()); c != 0 {
				return c
			}
			return a.Bits() - b.Bits()
		})
		ps.bounds = slices.Compact(out)
	})
	return ps.bounds
}

// containsPrefix reports whether the block holds every address of p: the cidr holds p and
// no except reaches into it.
func (b *compiledIPBlock) containsPrefix(p netip.Prefix) bool {
	p = p.Masked()
	if !p.IsValid() || b.cidr.Bits() > p.Bits() || !b.cidr.Contains(p.Addr()) {
		return false
	}
	for _, e := range b.except {
		if e.Overlaps(p) {
			return false
		}
	}
	return true
}

// within reports whether ep's address, or every address of its prefix, is in n.
func (ep *Endpoint) within(n netip.Prefix) bool {
	if ep.Prefix.IsValid() {
		p := ep.Prefix.Masked()
		return n.Bits() <= p.Bits() && n.Contains(p.Addr())
	}
	return ep.IP.IsValid() && n.Contains(ep.IP.Unmap())
}
