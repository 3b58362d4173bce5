package goldmane

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/goldmane/goldmanepb"
	"github.com/netpol-guard/netpol-guard/flows/internal/jsonlines"
)

// FileStats counts what ReadJSONStats read.
type FileStats struct {
	// Lines read, blank and comment lines included.
	Lines int
	// Flows is the number of flows; Records how many of them were handed to fn.
	Flows, Records int
	// Skipped counts the flows Convert passed over or kept from the records, by reason.
	Skipped map[SkipReason]int
}

var unmarshalOptions = protojson.UnmarshalOptions{DiscardUnknown: true}

var bom = []byte("\uFEFF")

// LooksLike says whether a line (the first of a file or a request body) looks like a
// Goldmane flow as ReadJSON reads it: a JSON object with a "Key" and a start time. It only
// looks for those keys; ReadJSON decides.
func LooksLike(firstLine []byte) bool {
	b := bytes.TrimSpace(bytes.TrimPrefix(firstLine, bom))
	return len(b) > 0 && b[0] == '{' && bytes.Contains(b, []byte(`"Key"`)) &&
		(bytes.Contains(b, []byte(`"start_time"`)) || bytes.Contains(b, []byte(`"startTime"`)))
}

// ReadJSON reads Goldmane flows, one JSON object a line, and calls fn with each flow that
// Convert makes a record of and its 1-based line number.
//
// It reads what Goldmane's emitter pushes to its PUSH_URL (application/x-ndjson: each
// flow marshalled by encoding/json, so proto field names, "Key", enums as numbers) and the
// protojson form (enum names, int64 as strings, lowerCamelCase names); unknown fields are
// ignored, so flows from newer Goldmane versions read. A line may also be a FlowResult,
// {"id":…,"flow":{…}}, as the List and Stream APIs return.
//
// Lines that are blank or start with '#' are skipped, as are flows Convert passes over
// (denied flows among them); ReadJSONStats counts them.
//
// ReadJSON stops at the first line that is not a JSON object, that does not decode as a
// Goldmane flow or has no "Key", or whose flow converts to an invalid record, at the first
// error from fn, or at a read error, and returns it as a *flows.LineError naming source and
// line.
func ReadJSON(r io.Reader, source string, fn func(line int, rec flows.Record) error) error {
	_, err := ReadJSONStats(r, source, fn)
	return err
}

// ReadJSONStats reads as ReadJSON does and also says what it read, up to the error if
// there is one.
func ReadJSONStats(r io.Reader, source string, fn func(line int, rec flows.Record) error) (FileStats, error) {
	st, err := jsonlines.Read(r, source, jsonlines.Source[*pb.Flow, SkipReason]{
		Name: "Goldmane", NotSkipped: NotSkipped,
		Decode: func(b []byte) (*pb.Flow, bool, error) {
			f, err := decodeLine(b)
			return f, err == nil, err
		},
		Convert: func(f *pb.Flow) (flows.Record, SkipReason, error) {
			res, skip, err := Convert(f)
			return res.Record, skip, err
		},
	}, fn)
	return FileStats{Lines: st.Lines, Flows: st.Flows, Records: st.Records, Skipped: st.Skipped}, err
}

// decodeLine decodes one trimmed, non-empty line into a flow.
func decodeLine(b []byte) (*pb.Flow, error) {
	top, err := flows.DecodeObject(b)
	if err != nil {
		return nil, err
	}
	if _, ok := top["Key"]; !ok {
		if _, ok := top["flow"]; ok {
			var res pb.FlowResult
			if err := unmarshalOptions.Unmarshal(b, &res); err != nil {
				return nil, fmt.Errorf("decoding Goldmane flow result: %w", err)
			}
			if res.GetFlow().GetKey() != nil {
				return res.GetFlow(), nil
			}
		}
		return nil, errors.New(`not a Goldmane flow: no "Key" object`)
	}
	f := new(pb.Flow)
	if err := unmarshalOptions.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("decoding Goldmane flow: %w", err)
	}
	if f.GetKey() == nil { // "Key": null
		return nil, errors.New(`not a Goldmane flow: no "Key" object`)
	}
	return f, nil
}
