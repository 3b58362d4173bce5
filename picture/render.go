package picture

import (
	"fmt"
	"hash/fnv"
	"html/template"
	"io"
	"strings"
)

// Page is one HTML page: a title, a summary line, the graph, and sections beside it.
type Page struct {
	Title   string
	Summary string
	Graph   Graph
	Aside   []Section
}

// Section is a heading with lines, or preformatted text (a policy's YAML).
type Section struct {
	Title string
	Lines []string
	Pre   string
}

// Colours of edges; CutColour is what a person sees a cut flow drawn in.
const (
	CutColour  = "#d62728"
	FlowColour = "#9aa5b1"
)

const (
	boxW, boxH   = 210, 46
	colGap       = 170
	rowH         = 78
	margin       = 30
	maxLabelRune = 30
)

var palette = []string{"#e8f1fb", "#eaf7ea", "#fdf1e3", "#f3eafb", "#e9f7f6", "#fbeaf0", "#f4f4e6", "#eceff3"}

// SVG draws the graph laid out in layers, left to right.
func SVG(w io.Writer, g Graph) error {
	places, layers := layout(g)
	rows := 0
	for _, l := range layers {
		rows = max(rows, len(l))
	}
	width := margin*2 + len(layers)*(boxW+colGap) - colGap
	height := margin*2 + max(1, rows)*rowH + rowH/2
	xy := func(id string) (float64, float64) {
		p := places[id]
		x := float64(margin + p.layer*(boxW+colGap))
		y := float64(margin) + float64(rows-len(layers[p.layer]))*rowH/2 + float64(p.pos*rowH)
		return x, y
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<defs><marker id="arrow-cut" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="%s"/></marker>`, CutColour)
	fmt.Fprintf(&b, `<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="%s"/></marker></defs>`+"\n", FlowColour)
	// Flows first, cut ones last so they are drawn on top.
	seen := map[[2]string]int{}
	for pass := range 2 {
		for _, e := range g.Edges {
			if e.Cut != (pass == 1) {
				continue
			}
			if _, ok := places[e.From]; !ok {
				continue
			}
			if _, ok := places[e.To]; !ok {
				continue
			}
			k := [2]string{e.From, e.To}
			nth := seen[k]
			seen[k]++
			x1, y1 := xy(e.From)
			x2, y2 := xy(e.To)
			off := float64(nth) * 14
			var d string
			var lx, ly float64
			if places[e.To].layer > places[e.From].layer {
				sx, sy, tx, ty := x1+boxW, y1+boxH/2+off/2, x2, y2+boxH/2+off/2
				mx := (sx + tx) / 2
				d = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", sx, sy, mx, sy+off, mx, ty+off, tx, ty)
				lx, ly = mx, (sy+ty)/2+off-4
			} else {
				// Back or same layer: loop under the boxes.
				sx, sy, tx, ty := x1+boxW/2+off, y1+boxH, x2+boxW/2-off, y2+boxH
				dip := 40 + off
				d = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", sx, sy, sx, sy+dip, tx, ty+dip, tx, ty)
				lx, ly = (sx+tx)/2, max(sy, ty)+dip*0.75
			}
			colour, width, marker, class := FlowColour, 1.5, "arrow", "flow"
			if e.Cut {
				colour, width, marker, class = CutColour, 3.0, "arrow-cut", "flow cut"
			}
			fmt.Fprintf(&b, `<g class="%s"><title>%s</title><path d="%s" fill="none" stroke="%s" stroke-width="%.1f" marker-end="url(#%s)"/>`, class, esc(e.Title), d, colour, width, marker)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s" stroke="white" stroke-width="3" paint-order="stroke">%s</text></g>`+"\n", lx, ly, textColour(e.Cut), esc(e.Label))
		}
	}
	for _, n := range g.Nodes {
		if _, ok := places[n.ID]; !ok {
			continue
		}
		x, y := xy(n.ID)
		fmt.Fprintf(&b, `<g class="node"><title>%s</title><rect x="%.1f" y="%.1f" width="%d" height="%d" rx="6" fill="%s" stroke="#52606d"/>`, esc(n.ID), x, y, boxW, boxH, groupColour(n.Group))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#52606d" font-size="10">%s</text>`, x+8, y+15, esc(clip(n.Group)))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-weight="bold">%s</text></g>`+"\n", x+8, y+33, esc(clip(n.Label)))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func textColour(cut bool) string {
	if cut {
		return CutColour
	}
	return "#3e4c59"
}

func groupColour(g string) string {
	h := fnv.New32a()
	h.Write([]byte(g))
	return palette[h.Sum32()%uint32(len(palette))]
}

func clip(s string) string {
	r := []rune(s)
	if len(r) <= maxLabelRune {
		return s
	}
	return string(r[:maxLabelRune-1]) + "…"
}

func esc(s string) string { return template.HTMLEscapeString(s) }

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font-family:sans-serif;margin:20px;color:#1f2933}
h1{font-size:20px;margin:0 0 6px}
p.summary{margin:0 0 16px;color:#52606d}
.wrap{display:flex;gap:24px;align-items:flex-start}
.graph{border:1px solid #d9e2ec;border-radius:6px;flex:0 1 65%;min-width:0}
.graph svg{max-width:100%;height:auto;display:block}
aside{flex:1;min-width:320px;font-size:13px}
aside h2{font-size:15px;margin:12px 0 6px}
aside li{margin:2px 0}
pre{background:#f5f7fa;padding:8px;border-radius:4px;font-size:11px;overflow:auto}
.flow:hover path{stroke-width:5}
</style></head><body>
<h1>{{.Title}}</h1>
<p class="summary">{{.Summary}}</p>
<div class="wrap"><div class="graph">{{.SVG}}</div>
<aside>{{range .Aside}}<section><h2>{{.Title}}</h2>{{if .Lines}}<ul>{{range .Lines}}<li>{{.}}</li>{{end}}</ul>{{end}}{{if .Pre}}<pre>{{.Pre}}</pre>{{end}}</section>
{{end}}</aside></div>
</body></html>
`))

// HTML writes the page: one file, with the SVG inline and no script, stylesheet, font or
// image from anywhere else.
func HTML(w io.Writer, p Page) error {
	var svg strings.Builder
	if err := SVG(&svg, p.Graph); err != nil {
		return err
	}
	return page.Execute(w, struct {
		Page
		SVG template.HTML
	}{p, template.HTML(svg.String())})
}
