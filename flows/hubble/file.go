package hubble

import (
	"fmt"
	"io"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/flows/internal/jsonlines"
)

// FileStats counts what ReadJSONStats read.
type FileStats struct {
	// Lines read, blank and comment lines included.
	Lines int
	// Flows is the number of flow events; Records how many of them were handed to fn.
	Flows, Records int
	// NonFlow counts the other events: node status, lost events, agent and debug events,
	// and objects that are no Hubble event at all.
	NonFlow int
	// Skipped counts the flow events Convert passed over, by reason.
	Skipped map[SkipReason]int
}

var unmarshalOptions = protojson.UnmarshalOptions{DiscardUnknown: true}

// Top-level keys that make an object a Hubble event other than a flow
// (observer.GetFlowsResponse and observer.ExportEvent).
var nonFlowKeys = []string{"node_status", "lost_events", "agent_event", "debug_event",
	"nodeStatus", "lostEvents", "agentEvent", "debugEvent"}

// Top-level keys of a flow.Flow printed on its own, by proto and JSON name. "time" and
// "node_name" are not among them: an event wrapper has them too.
var flowKeys = []string{"verdict", "IP", "l4", "source", "destination", "Type", "is_reply", "isReply",
	"uuid", "ethernet", "event_type", "eventType", "traffic_direction", "trafficDirection"}

// ReadJSON reads Hubble flows, one JSON object a line, and calls fn with each flow that
// Convert takes and its 1-based line number. It reads what `hubble observe -o json`
// prints — an event wrapper, {"flow":{…},"node_name":…,"time":…}, or, from older versions,
// the flow object alone — and the files the Hubble exporter writes (the same wrappers).
// Field names are the proto names Hubble prints ("pod_name", "is_reply"); the JSON names
// protojson also accepts ("podName") do as well, and unknown fields are ignored, so files
// from newer Hubble versions read. A flow without a time of its own takes its wrapper's.
//
// Lines that are blank or start with '#' are skipped, as are events that are not flows
// (node status, lost events) and flows Convert passes over; ReadJSONStats counts them.
//
// Records of the same endpoint may share its labels map: fn may read it and keep it, but
// not change it.
//
// ReadJSON stops at the first line that is not a JSON object, that does not decode as a
// Hubble event, or whose flow converts to an invalid record, at the first error from fn,
// or at a read error, and returns it as a *flows.LineError naming source and line.
func ReadJSON(r io.Reader, source string, fn func(line int, rec flows.Record) error) error {
	_, err := ReadJSONStats(r, source, fn)
	return err
}

// ReadJSONStats reads as ReadJSON does and also says what it read, up to the error if
// there is one.
func ReadJSONStats(r io.Reader, source string, fn func(line int, rec flows.Record) error) (FileStats, error) {
	return readJSON(r, source, newFastDecoder(), fn)
}

// readJSON reads as ReadJSONStats does, with fast when not nil for the lines it can read.
func readJSON(r io.Reader, source string, fast *fastDecoder, fn func(line int, rec flows.Record) error) (FileStats, error) {
	st, err := jsonlines.Read(r, source, jsonlines.Source[lineFlow, SkipReason]{
		Name: "Hubble", NotSkipped: NotSkipped,
		Decode: func(b []byte) (lineFlow, bool, error) {
			if fast != nil && fast.decode(b) {
				return lineFlow{fast: fast}, true, nil
			}
			f, err := decodeLine(b)
			return lineFlow{flow: f}, f != nil, err
		},
		Convert: lineFlow.convert,
	}, fn)
	return FileStats{Lines: st.Lines, Flows: st.Flows, Records: st.Records, NonFlow: st.NonFlow, Skipped: st.Skipped}, err
}

// lineFlow is the flow of one line: the facts fast read of it, or the flow decodeLine
// decoded.
type lineFlow struct {
	fast *fastDecoder
	flow *flowpb.Flow
}

func (l lineFlow) convert() (flows.Record, SkipReason, error) {
	if l.fast != nil {
		return l.fast.facts.convert()
	}
	return Convert(l.flow)
}

// decodeLine decodes one trimmed, non-empty line. It returns the flow, with its wrapper's
// time when it has none of its own, or nil for an event that is not a flow.
func decodeLine(b []byte) (*flowpb.Flow, error) {
	top, err := flows.DecodeObject(b)
	if err != nil {
		return nil, err
	}
	if _, ok := top["flow"]; ok {
		var ev observerpb.ExportEvent
		if err := unmarshalOptions.Unmarshal(b, &ev); err != nil {
			return nil, fmt.Errorf("decoding Hubble event: %w", err)
		}
		f := ev.GetFlow()
		if f == nil { // "flow": null
			return nil, nil
		}
		if f.GetTime() == nil && ev.GetTime() != nil {
			f.Time = ev.GetTime()
		}
		return f, nil
	}
	for _, k := range nonFlowKeys {
		if _, ok := top[k]; ok {
			return nil, nil
		}
	}
	for _, k := range flowKeys {
		if _, ok := top[k]; ok {
			f := new(flowpb.Flow)
			if err := unmarshalOptions.Unmarshal(b, f); err != nil {
				return nil, fmt.Errorf("decoding Hubble flow: %w", err)
			}
			return f, nil
		}
	}
	return nil, nil
}
