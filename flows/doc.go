// Package flows holds the flow record — the one shape in which observed traffic travels
// between node agents, Hubble, Goldmane, Antrea, the push API, files, the flow cache and the
// offline CLI — with its JSON Lines reader and writer, and the rolling, identity-keyed flow
// cache that the webhook judges changes against (edges, window, cap, indexes, binary
// snapshots, metrics). The HTTP API that fills and reads the cache is package flowapi; the
// sources that feed it live beside it (flows/hubble, flows/goldmane, flows/antrea, the node
// agent).
package flows
