package evaluator

import "unsafe"

// endpointMap maps endpoints (by pointer) to their memo state: an open-addressing table
// with a multiplicative hash of the address, several times cheaper per lookup than a Go map
// on the evaluator's hottest path (two lookups a flow).
type endpointMap struct {
	keys  []*Endpoint
	vals  []*endpointState
	n     int
	shift uint
}

func newEndpointMap() *endpointMap {
	m := &endpointMap{}
	m.resize(64)
	return m
}

func (m *endpointMap) resize(size int) {
	keys, vals := m.keys, m.vals
	m.keys = make([]*Endpoint, size)
	m.vals = make([]*endpointState, size)
	m.n = 0
	m.shift = uint(64 - bitsLen(size-1))
	for i, k := range keys {
		if k != nil {
			m.put(k, vals[i])
		}
	}
}

func bitsLen(x int) int {
	n := 0
	for ; x > 0; x >>= 1 {
		n++
	}
	return n
}

func (m *endpointMap) slot(ep *Endpoint) int {
	return int((uint64(uintptr(unsafe.Pointer(ep))) * 0x9E3779B97F4A7C15) >> m.shift)
}

func (m *endpointMap) get(ep *Endpoint) *endpointState {
	mask := len(m.keys) - 1
	for i := m.slot(ep); ; i = (i + 1) & mask {
		switch m.keys[i] {
		case ep:
			return m.vals[i]
		case nil:
			return nil
		}
	}
}

func (m *endpointMap) put(ep *Endpoint, st *endpointState) {
	if 4*(m.n+1) > 3*len(m.keys) {
		m.resize(2 * len(m.keys))
	}
	mask := len(m.keys) - 1
	for i := m.slot(ep); ; i = (i + 1) & mask {
		if m.keys[i] == nil {
			m.keys[i], m.vals[i] = ep, st
			m.n++
			return
		}
		if m.keys[i] == ep {
			m.vals[i] = st
			return
		}
	}
}
