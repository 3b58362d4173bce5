package cli

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/picture"
	"github.com/netpol-guard/netpol-guard/suggest"
)

// Check's pictures: one self-contained HTML page, or a summary for a pull-request comment.
const (
	OutputHTML     = "html"
	OutputMarkdown = "markdown"
)

// CheckOutputFormats are the values check's -o takes.
var CheckOutputFormats = append(slices.Clone(OutputFormats), OutputHTML, OutputMarkdown)

// checkPicture writes check's answer as HTML or Markdown.
func checkPicture(out io.Writer, format string, changes []change, res evaluator.DiffResult, obs *observed, fix *suggest.Fix, now time.Time) error {
	if format == OutputMarkdown {
		return checkMarkdown(out, changes, res, obs, fix, now)
	}
	return checkHTML(out, changes, res, obs, fix, now)
}

func headline(changes []change, s evaluator.DiffSummary) string {
	names := make([]string, len(changes))
	for i, c := range changes {
		names[i] = c.String()
	}
	if s.Cut == 0 {
		return fmt.Sprintf("%s cuts none of %d observed flows", strings.Join(names, ", "), s.Flows)
	}
	return fmt.Sprintf("%s would cut %d of %d observed flows", strings.Join(names, ", "), s.Cut, s.Flows)
}

// checkHTML draws the workloads of the changed namespaces and their peers, the observed
// flows between them as edges, the cut ones red; the fix beside the graph.
func checkHTML(out io.Writer, changes []change, res evaluator.DiffResult, obs *observed, fix *suggest.Fix, now time.Time) error {
	touched := map[string]bool{}
	for _, c := range changes {
		if c.new != nil {
			touched[c.new.Namespace] = true
		} else {
			touched[c.old.Namespace] = true
		}
	}
	cut := map[int]evaluator.Cut{}
	for _, c := range res.Cut {
		cut[c.Index] = c
	}
	var g picture.Graph
	nodes := map[string]bool{}
	node := func(ep *evaluator.Endpoint) string {
		id := ep.String()
		if !nodes[id] {
			nodes[id] = true
			group, label := ep.Namespace, ep.Name
			switch ep.Kind {
			case evaluator.Node:
				group, label = "node", ep.NodeName
			case evaluator.External:
				group, label = "outside the cluster", id
			}
			g.Nodes = append(g.Nodes, picture.Node{ID: id, Label: label, Group: group})
		}
		return id
	}
	for i, f := range obs.flows {
		if !touched[f.Src.Namespace] && !touched[f.Dst.Namespace] {
			continue
		}
		rec := obs.records[i]
		e := picture.Edge{From: node(f.Src), To: node(f.Dst), Label: portString(f)}
		title := fmt.Sprintf("%s → %s %s\nlast seen %s", f.Src, f.Dst, portString(f), age(rec.LastSeen, now))
		if c, ok := cut[i]; ok {
			e.Cut = true
			e.Label += " · " + age(rec.LastSeen, now)
			title += "\ncut: " + c.After.Denial() + "\nwas allowed by: " + allowedBy(c.Before)
		} else {
			title += "\nnot cut"
		}
		e.Title = title
		g.Edges = append(g.Edges, e)
	}
	p := picture.Page{Title: "netpol-guard check", Summary: headline(changes, res.Summary), Graph: g}
	var lines []string
	for _, c := range res.Cut {
		lines = append(lines, fmt.Sprintf("%s → %s %s (last seen %s): %s; was allowed by %s", c.Flow.Src, c.Flow.Dst, portString(c.Flow), age(obs.records[c.Index].LastSeen, now), c.After.Denial(), allowedBy(c.Before)))
	}
	if len(lines) > 0 {
		p.Aside = append(p.Aside, picture.Section{Title: "Cut flows", Lines: lines})
	}
	if fix != nil && len(fix.Rules) > 0 {
		s := picture.Section{Title: "Suggested fix"}
		s.Lines = append(s.Lines, fmt.Sprintf("Keeps %d of %d cut flows; with it the change cuts %d observed flows.", fix.Kept, len(res.Cut), fix.StillCut))
		for _, r := range fix.Rules {
			s.Lines = append(s.Lines, "add "+r.String())
		}
		for _, o := range fix.Opens {
			s.Lines = append(s.Lines, "also opens "+o.String())
		}
		var y bytes.Buffer
		if err := writePolicies(&y, fix.Policies); err != nil {
			return err
		}
		s.Pre = y.String()
		p.Aside = append(p.Aside, s)
	}
	return picture.HTML(out, p)
}

// checkMarkdown is a short summary for a pull-request comment.
func checkMarkdown(out io.Writer, changes []change, res evaluator.DiffResult, obs *observed, fix *suggest.Fix, now time.Time) error {
	mark := "✅"
	if len(res.Cut) > 0 {
		mark = "❌"
	}
	fmt.Fprintf(out, "### %s netpol-guard: %s\n\n", mark, headline(changes, res.Summary))
	if len(res.Cut) > 0 {
		fmt.Fprintln(out, "| source | destination | port | last seen | denied because | was allowed by |")
		fmt.Fprintln(out, "|---|---|---|---|---|---|")
		for _, c := range res.Cut {
			fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s |\n", mdCell(c.Flow.Src.String()), mdCell(c.Flow.Dst.String()), portString(c.Flow), age(obs.records[c.Index].LastSeen, now), mdCell(c.After.Denial()), mdCell(allowedBy(c.Before)))
		}
	}
	if fix != nil && len(fix.Rules) > 0 {
		fmt.Fprintf(out, "\n**Suggested fix** — keeps %d of %d cut flows; with it the change cuts %d:\n\n", fix.Kept, len(res.Cut), fix.StillCut)
		for _, r := range fix.Rules {
			fmt.Fprintf(out, "- add %s\n", mdCell(r.String()))
		}
		for _, o := range fix.Opens {
			fmt.Fprintf(out, "- also opens %s\n", mdCell(o.String()))
		}
		fmt.Fprint(out, "\n<details><summary>Policies to apply with the change</summary>\n\n```yaml\n")
		if err := writePolicies(out, fix.Policies); err != nil {
			return err
		}
		fmt.Fprint(out, "```\n</details>\n")
	}
	return nil
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
