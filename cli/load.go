package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/flows/goldmane"
	"github.com/netpol-guard/netpol-guard/flows/hubble"
)

// Exit codes shared by the offline commands.
const (
	ExitOK       = 0
	ExitCut      = 1 // check: the change would cut at least one flow
	ExitBadInput = 2
)

// Inputs names the files both commands read.
type Inputs struct {
	// Cluster is a file or directory of Kubernetes objects (Namespaces, Pods, Nodes,
	// NetworkPolicies), or "-" for standard input.
	Cluster string
	// Flows is a JSON Lines file of flow records, or "-" for standard input.
	Flows string
	// FlowsFormat is FormatAuto (default), FormatFlows (our JSON Lines), FormatHubble
	// (`hubble observe -o json`, Hubble exporter files) or FormatGoldmane (the JSON lines
	// Calico's Goldmane pushes).
	FlowsFormat string
	// Stdin is read for "-"; os.Stdin when nil.
	Stdin io.Reader
	// AllowNoFlows accepts flows of which none can be judged (an empty file, or records
	// that all resolve to nothing the cluster knows). Without it that is bad input: a
	// check that judged nothing must not pass as one that found nothing cut.
	AllowNoFlows bool
	// Objects, when not nil, are the cluster, listed from the API server: Cluster is not
	// read.
	Objects *cluster.Objects
	// FlowsFrom, when not nil, is read for the flows (the webhook's export), and Flows only
	// names it in messages.
	FlowsFrom io.Reader
}

// Flow file formats.
const (
	FormatAuto     = "auto"
	FormatFlows    = "flows"
	FormatHubble   = "hubble"
	FormatGoldmane = "goldmane"
)

// readFlows reads records in the given format; auto looks at the first record's fields.
func readFlows(r io.Reader, source, format string, fn func(line int, rec flows.Record) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	if format == "" || format == FormatAuto {
		format = sniffFormat(br)
	}
	switch format {
	case FormatFlows:
		return flows.Read(br, source, fn)
	case FormatHubble:
		return hubble.ReadJSON(br, source, fn)
	case FormatGoldmane:
		return goldmane.ReadJSON(br, source, fn)
	}
	return fmt.Errorf("flows format %q: must be auto, flows, hubble or goldmane", format)
}

// sniffFormat peeks at the first record: ours has "src" and "dst"; Goldmane's has "Key"
// and a start time (goldmane.LooksLike), also inside a FlowResult's "flow"; Hubble's has
// "flow" (hubble observe -o json, exporter files) or the flow's own fields.
func sniffFormat(br *bufio.Reader) string {
	data, _ := br.Peek(br.Size())
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(line, &top) != nil {
			return FormatFlows // let the reader name the error
		}
		_, src := top["src"]
		_, dst := top["dst"]
		if src || dst {
			return FormatFlows
		}
		if goldmane.LooksLike(line) {
			return FormatGoldmane
		}
		for _, k := range []string{"flow", "verdict", "IP", "l4", "node_status", "lost_events"} {
			if _, ok := top[k]; ok {
				return FormatHubble
			}
		}
		return FormatFlows
	}
	return FormatFlows
}

// observed is a cluster and the flows seen in it, resolved to evaluator endpoints through
// the same live view the webhook judges with.
type observed struct {
	snapshot *cluster.Objects
	view     *cluster.Live
	world    *evaluator.World
	// records are the flows that resolved, in input order, and flows the same as the
	// evaluator sees them.
	records []flows.Record
	flows   []evaluator.Flow
	// read counts the records read; skipped are those that did not resolve, each with its
	// line and why (the first maxSkippedListed of them).
	read, skippedCount int
	skipped            []string
	// namespaces are those the cluster file holds, as Namespaces or through pods; filled
	// by warnAbsentNamespaces.
	namespaces map[string]bool
}

// maxSkippedListed bounds the skipped records named on standard error.
const maxSkippedListed = 10

func (in Inputs) stdin() io.Reader {
	if in.Stdin != nil {
		return in.Stdin
	}
	return os.Stdin
}

func load(in Inputs) (*observed, error) {
	if in.Cluster == "" && in.Objects == nil {
		return nil, errors.New("--cluster is required")
	}
	if in.Flows == "" {
		return nil, errors.New("--flows is required")
	}
	if in.Objects == nil && in.FlowsFrom == nil && in.Cluster == "-" && in.Flows == "-" {
		return nil, errors.New("--cluster and --flows cannot both read standard input")
	}
	snap := in.Objects
	var err error
	switch {
	case snap != nil:
	case in.Cluster == "-":
		snap, err = cluster.Decode(in.stdin(), "<stdin>")
	default:
		snap, err = cluster.Load(in.Cluster)
	}
	if err != nil {
		return nil, fmt.Errorf("reading cluster: %w", err)
	}
	view := cluster.LiveFromObjects(snap, cluster.LiveOptions{})
	obs := &observed{snapshot: snap, view: view, world: view.World()}

	source, r := in.Flows, in.FlowsFrom
	switch {
	case r != nil:
	case in.Flows == "-":
		source, r = "<stdin>", in.stdin()
	default:
		f, err := os.Open(in.Flows)
		if err != nil {
			return nil, fmt.Errorf("reading flows: %w", err)
		}
		defer f.Close()
		r = f
	}
	err = readFlows(r, source, in.FlowsFormat, func(line int, rec flows.Record) error {
		obs.read++
		// The webhook resolves a record into cache identities when it is pushed, and judges
		// the identities' endpoints when a change comes: the same two steps here.
		o, err := view.Identify(rec)
		if err != nil {
			obs.skippedCount++
			if len(obs.skipped) < maxSkippedListed {
				obs.skipped = append(obs.skipped, fmt.Sprintf("%s:%d: %v", source, line, err))
			}
			return nil
		}
		obs.records = append(obs.records, rec)
		obs.flows = append(obs.flows, evaluator.Flow{
			Src: view.Endpoint(o.Src, o.SrcInfo), Dst: view.Endpoint(o.Dst, o.DstInfo), Port: rec.Port, Protocol: protocolOf(rec),
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading flows: %w", err)
	}
	if len(obs.flows) == 0 && !in.AllowNoFlows {
		msg := fmt.Sprintf("%s holds no flow that can be judged", source)
		if obs.read > 0 {
			msg = fmt.Sprintf("none of the %d flow records in %s resolves to anything the cluster knows (first: %s)", obs.read, source, obs.skipped[0])
		}
		return nil, errors.New(msg + "; pass --allow-no-flows to accept that")
	}
	return obs, nil
}

// warnAbsentNamespaces names on errw each policy whose namespace the cluster file holds
// neither as a Namespace nor through a pod: such a policy selects no pod the flows can
// name, so it judges nothing — most likely a typo or a namespace left out of the dump.
func (obs *observed) warnAbsentNamespaces(errw io.Writer, policies []*networkingv1.NetworkPolicy) {
	if obs.namespaces == nil {
		obs.namespaces = map[string]bool{}
		for _, ns := range obs.snapshot.Namespaces {
			obs.namespaces[ns.Name] = true
		}
		for _, p := range obs.snapshot.Pods {
			obs.namespaces[p.Namespace] = true
		}
	}
	for _, p := range policies {
		if !obs.namespaces[p.Namespace] {
			fmt.Fprintf(errw, "warning: networkpolicy %s/%s: namespace %q is not in the cluster file, so the policy selects no pod of it\n", p.Namespace, p.Name, p.Namespace)
		}
	}
}

// reportSkipped writes to errw how many records were read and which were skipped, and why.
func (obs *observed) reportSkipped(errw io.Writer) {
	if obs.skippedCount == 0 {
		return
	}
	fmt.Fprintf(errw, "warning: %d of %d flow records skipped: they resolve to nothing the cluster knows\n", obs.skippedCount, obs.read)
	for _, s := range obs.skipped {
		fmt.Fprintf(errw, "  %s\n", s)
	}
	if n := obs.skippedCount - len(obs.skipped); n > 0 {
		fmt.Fprintf(errw, "  … and %d more\n", n)
	}
}

// Import converts a flow file (ours, Hubble's or Goldmane's) into our JSON Lines on w, checking every
// line. It returns how many records it wrote.
func Import(path, format string, stdin io.Reader, w io.Writer) (int, error) {
	source, r := path, stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		r = f
	} else {
		source = "<stdin>"
	}
	bw := bufio.NewWriter(w)
	fw := flows.NewWriter(bw)
	n := 0
	err := readFlows(r, source, format, func(_ int, rec flows.Record) error {
		n++
		return fw.Write(rec)
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}
