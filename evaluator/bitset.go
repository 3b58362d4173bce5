package evaluator

import "math/bits"

// bitset is a fixed-size set of small integers: the rules of a namespace that apply to a pod,
// or whose peers match an endpoint. Intersecting two of them costs a word per 64 rules.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int) { b[i/64] |= 1 << (uint(i) % 64) }

func (b bitset) or(o bitset) {
	for i := range o {
		b[i] |= o[i]
	}
}

func trailingZeros(x uint64) int { return bits.TrailingZeros64(x) }

func (b bitset) has(i int) bool { return b[i/64]&(1<<(uint(i)%64)) != 0 }
