package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// More output formats: YAML is the JSON value converted, a document per JSON line; wide is
// the table with more columns.
const (
	OutputYAML = "yaml"
	OutputWide = "wide"
)

// OutputFormats are the values -o takes, in the order help lists them.
var OutputFormats = []string{OutputTable, OutputWide, OutputJSON, OutputYAML}

// structured reports whether o is a machine-readable format rather than a table.
func structured(o string) bool { return o == OutputJSON || o == OutputYAML }

// encoder writes values as JSON lines or as YAML documents separated by "---".
type encoder struct {
	w      io.Writer
	format string
	n      int
}

func newEncoder(w io.Writer, format string) *encoder { return &encoder{w: w, format: format} }

func (e *encoder) Encode(v any) error {
	if e.format != OutputYAML {
		return json.NewEncoder(e.w).Encode(v)
	}
	y, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	if e.n > 0 {
		if _, err := io.WriteString(e.w, "---\n"); err != nil {
			return err
		}
	}
	e.n++
	_, err = e.w.Write(y)
	return err
}

// isolatedBy names the policies that isolate either end of a flow, or "-".
func isolatedBy(v evaluator.Verdict) string {
	var parts []string
	for _, s := range []evaluator.Side{v.Egress, v.Ingress} {
		for _, p := range s.IsolatedBy {
			parts = append(parts, p.String())
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), ",")
}

// seenAs is a peer as the flow record gave it: namespace/pod, namespace/workload, or IP.
func seenAs(p flows.Peer) string {
	var parts []string
	switch {
	case p.Pod != "":
		parts = append(parts, p.Namespace+"/"+p.Pod)
	case p.Workload != "":
		parts = append(parts, p.Namespace+"/"+p.Workload)
	}
	if p.IP != "" {
		parts = append(parts, p.IP)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func checkOutput(o string) error { return checkOutputIn(o, OutputFormats) }

func checkOutputIn(o string, formats []string) error {
	if slices.Contains(formats, o) {
		return nil
	}
	return fmt.Errorf("-o %q: must be one of %s", o, strings.Join(formats, ", "))
}
