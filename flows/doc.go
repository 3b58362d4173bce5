// Package flows holds the flow record — the one shape in which observed traffic travels
// between node agents, Hubble, Goldmane, Antrea, the push API, files, the flow cache and the offline CLI — and
// the readers and writers for it.
package flows
