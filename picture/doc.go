// Package picture draws a graph of workloads and the flows between them as SVG, laid out
// server-side in layers (Sugiyama: layers by longest path, crossings reduced by
// barycentres, coordinates by position in the layer), inside one self-contained HTML page
// that needs no script, font or network. `netpol-guard check -o html` uses it to show what
// a change cuts: the cut flows red, with the rule that cuts and the rule that allowed on
// hover, and the suggested fix beside the graph.
package picture
