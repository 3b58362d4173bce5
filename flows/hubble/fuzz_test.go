package hubble

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/netpol-guard/netpol-guard/flows"
)

// FuzzReadJSON checks that no input panics ReadJSON, that every error names its line, that
// every record it hands over is normalised and survives our own JSON Lines unchanged, and
// that it reads as it would with protojson alone, without the fast decoder.
func FuzzReadJSON(f *testing.F) {
	lines := []string{lineForwarded, lineReply, lineDropped, lineICMP, lineWorldUDP, lineAuditSCTP,
		lineBare, lineCamel, lineNodeStatus, lineLost, lineAgentEvent}
	for _, l := range lines {
		f.Add(l)
	}
	f.Add(strings.Join(lines, "\n"))
	f.Add("\uFEFF# comment\r\n\r\n{}\n[]\nnull\n\"x\"\n1\n")
	f.Add(`{"flow":{"verdict":"FORWARDED","l4":{"TCP":{"destination_port":70000}},"is_reply":false}}`)
	f.Add(`{"flow":{"time":"10000-01-01T00:00:00Z","verdict":1,"IP":{"source":"::ffff:10.0.0.1","destination":"fe80::1%eth0"},"l4":{"UDP":{"destination_port":53}},"is_reply":false}}`)
	for _, l := range fastEdgeLines {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, input string) {
		readsAsProtojson(t, input)
		last := 0
		stats, err := ReadJSONStats(strings.NewReader(input), "fuzz", func(n int, rec flows.Record) error {
			if n <= last {
				t.Errorf("line %d after line %d", n, last)
			}
			last = n
			again := rec
			if err := again.Normalize(); err != nil || !reflect.DeepEqual(again, rec) {
				t.Errorf("line %d: record not normalised (%v): %+v", n, err, rec)
			}
			var buf bytes.Buffer
			if err := flows.Write(&buf, rec); err != nil {
				t.Errorf("line %d: writing record: %v", n, err)
				return nil
			}
			back, err := flows.ReadAll(&buf, "written")
			if err != nil || len(back) != 1 {
				t.Errorf("line %d: reading written record: %v", n, err)
				return nil
			}
			back[0].RawSrc, back[0].RawDst = nil, nil
			if !reflect.DeepEqual(back[0], rec) {
				t.Errorf("line %d: record changed through JSON Lines:\n got %+v\nwant %+v", n, back[0], rec)
			}
			return nil
		})
		if err != nil {
			le, ok := errors.AsType[*flows.LineError](err)
			if !ok || le.Line < 1 || le.Source != "fuzz" {
				t.Fatalf("error %v (%T) does not name the line", err, err)
			}
		}
		skipped := 0
		for _, n := range stats.Skipped {
			skipped += n
		}
		if stats.Records+skipped > stats.Flows {
			t.Errorf("stats do not add up: %+v", stats)
		}
	})
}

// fastEdgeLines are lines on the edge of what the fast decoder reads.
var fastEdgeLines = []string{
	`{"flow":{"verdict":"FORWARDED","is_reply":false,"l4":{"TCP":{"destination_port":80}},"source":{"namespace":"a","podName":"p"},"destination":{"namespace":"b","pod_name":"q"}}}`,
	`{"flow":{"verdict":"FORWARDED","verdict":"DROPPED"}}`,
	`{"flow":{"verdict":null,"verdict":"DROPPED"}}`,
	`{"flow":{"l4":{"TCP":{"destination_port":80},"UDP":{"destination_port":53}}}}`,
	`{"flow":{"l4":{"TCP":null,"UDP":{"destination_port":53}},"is_reply":false,"verdict":"AUDIT","IP":{"source":"10.0.0.1","destination":"10.0.0.2"}}}`,
	`{"flow":null,"node_name":"n"}`,
	`{"flow":{},"node_status":{}}`,
	`{"flow":{"verdict":2,"Type":"L7"}}`,
	`{"flow":{"verdict":"NOPE"}}`,
	`{"flow":{"verdict":"FORWARDED","source":{"namespace":"a\u0062"}}}`,
	`{"flow":{"x":[1,"a":2]}}`,
	`{"flow":{"x":[1,{"a":[true,false,null,-0.5e+3]}]}}`,
	`{"flow":{"x":[1}}`,
	`{"flow":{}} x`,
	`{"flow":{"time":"0001-01-01T00:00:00Z"},"time":"2026-11-20T10:00:00Z"}`,
	`{"flow":{"time":"2026-11-20T10:00:00.1234567890Z"}}`,
	`{"flow":{"time":"2026-11-20T10:00:00+02:00","verdict":"FORWARDED","is_reply":false,"l4":{"SCTP":{"destination_port":"80"}}}}`,
	`{"flow":{"l4":{"TCP":{"destination_port":080}}}}`,
	`{"flow":{"l4":{"TCP":{"destination_port":4294967296}}}}`,
	`{"flow":{"source":{"ID":-1,"labels":["k8s:app=web",null]}}}`,
	`{"flow":{"source":{"workloads":[{"kind":"Deployment"},{"kind":"StatefulSet","name":"db"}],"namespace":"a"},"destination":{"workloads":null}}}`,
	`{"flow":{"event_type":{"type":4,"sub_type":"x"}}}`,
	`{"flow":{"ethernet":{"source":1}}}`,
	`{"flow":{"is_reply":true,"isReply":false}}`,
	`{"flow":{"[x.y]":1}}`,
	"{\"flow\":{\"source\":{\"namespace\":\"\xff\"}}}",
	`{"flow":{"trace_context":{"parent":{"trace_id":"abc"}}},"time":null}`,
	`{"":0`,
	`{"flow":{"":1,"":2},"":{}}`,
	// Values the decoder remembers at a place of a message, then meets again, or nearly.
	lineForwarded + "\n" + lineForwarded + "\n" + strings.Replace(lineForwarded, `"cluster_name":"default"`, `"cluster_name":1`, 1),
	`{"flow":{"event_type":{"type":4}}}` + "\n" + `{"flow":{"event_type":{"type":4}}}` + "\n" + `{"flow":{"event_type":{"type":4.5}}}`,
	`{"flow":{"x":1}}` + "\n" + `{"flow":{"x":1}}` + "\n" + `{"flow":{"x":1x}}` + "\n" + `{"flow":{"y":1}}` + "\n" + `{"flow":{"y":"\u0061"}}`,
	// A place whose value changes on every line, then repeats.
	`{"flow":{"x":1}}` + "\n" + `{"flow":{"x":2}}` + "\n" + `{"flow":{"x":3}}` + "\n" + `{"flow":{"x":4}}` + "\n" +
		`{"flow":{"x":5}}` + "\n" + `{"flow":{"x":5}}` + "\n" + `{"flow":{"x":5x}}`,
	// Labels and workloads lists the decoder keeps by their bytes, met again, or nearly.
	edgeFlow(`"labels":["k8s:app=web","k8s:tier=a]b"],"workloads":[{"kind":"Job","name":"j]"}]`) + "\n" +
		edgeFlow(`"labels":["k8s:app=web","k8s:tier=a]b"],"workloads":[{"kind":"Job","name":"j]"}]`),
	edgeFlow(`"labels":["k8s:app=web"],"workloads":[{"kind":"Job","name":"j"}]`) + "\n" +
		edgeFlow(`"labels":["k8s:app=web"] ,"workloads":[{"kind":"Job","name":"j"}] `) + "\n" +
		edgeFlow(`"labels":[ "k8s:app=web"],"workloads":[{"kind":"Job","name":"j"},{}]`) + "\n" +
		edgeFlow(`"labels":["k8s:app=web"]]`),
	edgeFlow(`"labels":["k8s:app=web"],"workloads":[{"kind":"Job","name":"j"}]`) + "\n" +
		edgeFlow(`"labels":["k8s:app=web"]x,"workloads":[]`),
	edgeFlow(`"labels":["k8s:app=web","reserved:host"]`) + "\n" + edgeFlow(`"labels":["k8s:app=web","reserved:host"]`) + "\n" +
		edgeFlow(`"labels":["k8s:app=web"],"labels":["k8s:app=web"]`),
	edgeFlow(`"labels":[]`) + "\n" + edgeFlow(`"workloads":[]`) + "\n" + edgeFlow(`"labels":[],"workloads":[]`) + "\n" +
		edgeFlow(`"labels":[null]`) + "\n" + edgeFlow(`"labels":["k8s:app=w\u0065b"]`),
	// Labels past flows.MaxPeerLabels, on a flow passed over and then, from the decoder's
	// cache, on one taken; then as many as allowed: the check the decoder makes of each
	// list, once, is Normalize's.
	strings.Replace(edgeFlow(`"labels":[`+manyK8sLabels(flows.MaxPeerLabels+1)+`]`), "FORWARDED", "DROPPED", 1) + "\n" +
		edgeFlow(`"labels":[`+manyK8sLabels(flows.MaxPeerLabels+1)+`]`),
	edgeFlow(`"labels":[`+manyK8sLabels(flows.MaxPeerLabels)+`]`) + "\n" +
		edgeFlow(`"labels":[`+manyK8sLabels(flows.MaxPeerLabels)+`]`),
	// Times the decoder takes as they were read on the line before, or not.
	`{"flow":{"time":"2026-11-20T10:00:00Z","verdict":"FORWARDED","is_reply":false,"l4":{"UDP":{"destination_port":53}},"IP":{"source":"10.0.0.1"}},"time":"2026-11-20T10:00:00Z"}` + "\n" +
		`{"flow":{"verdict":"FORWARDED","is_reply":false,"l4":{"UDP":{"destination_port":53}},"IP":{"source":"10.0.0.1"}},"time":"2026-11-20T10:00:00Z"}` + "\n" +
		`{"flow":{"time":"2026-11-20T10:00:00Z","verdict":"FORWARDED","is_reply":false,"l4":{"UDP":{"destination_port":53}},"IP":{"source":"10.0.0.1"}},"time":"2026-11-20T10:00:00Zx"}` + "\n" +
		`{"flow":{"time":"2026-11-20T10:00:00+01:00","verdict":"FORWARDED","is_reply":false,"l4":{"UDP":{"destination_port":53}},"IP":{"source":"10.0.0.1"}},"time":"2026-11-20T10:00:00+01:00"}` + "\n" +
		`{"flow":{"time":"10000-01-01T00:00:00Z","verdict":"FORWARDED","is_reply":false,"l4":{"UDP":{"destination_port":53}},"IP":{"source":"10.0.0.1"}},"time":"10000-01-01T00:00:00Z"}` + "\n" +
		`{"flow":{"time":"10000-01-01T00:00:00Z","verdict":"FORWARDED","is_reply":false,"l4":{"UDP":{"destination_port":53}},"IP":{"source":"10.0.0.1"}}}`,
}

// edgeFlow is a forwarded TCP flow whose source endpoint has the members given, JSON as
// they are written inside the object.
func edgeFlow(members string) string {
	return `{"flow":{"verdict":"FORWARDED","is_reply":false,"l4":{"TCP":{"destination_port":80}},"IP":{"source":"10.0.0.1","destination":"10.0.0.2"},` +
		`"source":{"namespace":"a","pod_name":"p",` + members + `},"destination":{"namespace":"b","pod_name":"q"}}}`
}

// manyK8sLabels is n Cilium labels of the k8s source, JSON strings separated by commas.
func manyK8sLabels(n int) string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprintf(`"k8s:label-%02d=v"`, i)
	}
	return strings.Join(l, ",")
}

// readsAsProtojson fails unless input reads the same with the fast decoder as without it.
func readsAsProtojson(t *testing.T, input string) {
	t.Helper()
	type read struct {
		line int
		rec  flows.Record
	}
	run := func(fast *fastDecoder) (got []read, stats FileStats, err error) {
		stats, err = readJSON(strings.NewReader(input), "fuzz", fast, func(line int, rec flows.Record) error {
			got = append(got, read{line, rec})
			return nil
		})
		return got, stats, err
	}
	fastRecs, fastStats, fastErr := run(newFastDecoder())
	recs, stats, err := run(nil)
	if fmt.Sprint(fastErr) != fmt.Sprint(err) {
		t.Fatalf("errors differ:\n fast:      %v\n protojson: %v", fastErr, err)
	}
	if !reflect.DeepEqual(fastStats, stats) {
		t.Errorf("stats differ:\n fast:      %+v\n protojson: %+v", fastStats, stats)
	}
	if !reflect.DeepEqual(fastRecs, recs) {
		t.Errorf("records differ:\n fast:      %+v\n protojson: %+v", fastRecs, recs)
	}
}

func TestFastDecoderReadsWhatProtojsonReads(t *testing.T) {
	for _, l := range append([]string{lineForwarded, lineReply, lineDropped, lineICMP, lineWorldUDP, lineAuditSCTP,
		lineBare, lineCamel, lineNodeStatus, lineLost, lineAgentEvent}, fastEdgeLines...) {
		readsAsProtojson(t, l)
	}
	// The lines hubble prints are read by the fast decoder.
	for _, l := range []string{lineForwarded, lineReply, lineDropped, lineICMP, lineWorldUDP, lineAuditSCTP} {
		if !newFastDecoder().decode([]byte(l)) {
			t.Errorf("the fast decoder gave up on %s", l)
		}
	}
}
