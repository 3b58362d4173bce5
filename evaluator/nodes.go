package evaluator

// HasNodePeers reports whether a cluster policy of the set has a nodes peer: only then can a
// node's labels decide a verdict, and a Node relabel cut anything. It reads the set's
// distinct peers, a few dozen at most; a nil set has none.
func (ps *PolicySet) HasNodePeers() bool {
	if ps == nil || ps.cluster == nil {
		return false
	}
	for i := range ps.cluster.peers {
		if ps.cluster.peers[i].nodes != nil {
			return true
		}
	}
	return false
}
