package goldmane

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/goldmane/goldmanepb"
)

// Lines as Goldmane's emitter writes them: encoding/json of the generated Flow (proto field
// names, "Key", enums as numbers).
const (
	lineAllowed = `{"Key":{"source_name":"web-7d9f4c-*","source_namespace":"shop","source_type":1,"dest_name":"cart-0","dest_namespace":"shop","dest_type":1,"dest_port":8080,"dest_service_name":"cart","dest_service_namespace":"shop","dest_service_port_name":"http","dest_service_port":80,"proto":"tcp","reporter":2,"action":1,"policies":{"enforced_policies":[{"kind":6,"namespace":"shop","name":"allow-web","tier":"default","action":1}],"pending_policies":[{"kind":6,"namespace":"shop","name":"allow-web","tier":"default","action":1}]}},"start_time":1795176000,"end_time":1795176015,"source_labels":["app=web","projectcalico.org/namespace=shop"],"dest_labels":["app=cart","tier=backend"],"packets_in":12,"packets_out":10,"bytes_in":2048,"bytes_out":1024,"num_connections_started":3,"num_connections_completed":3}`
	lineDenied  = `{"Key":{"source_name":"web-7d9f4c-*","source_namespace":"shop","source_type":1,"dest_name":"postgres-0","dest_namespace":"db","dest_type":1,"dest_port":5432,"proto":"tcp","reporter":1,"action":2,"policies":{"enforced_policies":[{"kind":10,"name":"default.default-deny","tier":"default","action":2,"policy_index":1,"rule_index":-1,"trigger":{"kind":6,"namespace":"db","name":"default-deny","tier":"default"}}]}},"start_time":1795176015,"end_time":1795176030,"source_labels":["app=web"],"dest_labels":["app=postgres"],"packets_out":3,"num_connections_started":1}`
	linePublic  = `{"Key":{"source_name":"web-7d9f4c-*","source_namespace":"shop","source_type":1,"dest_name":"pub","dest_namespace":"-","dest_type":4,"dest_port":443,"proto":"tcp","reporter":1,"action":1},"start_time":1795176000,"end_time":1795176015,"source_labels":["app=web"],"num_connections_started":1}`
	lineICMP    = `{"Key":{"source_name":"web-0","source_namespace":"shop","source_type":1,"dest_name":"cart-0","dest_namespace":"shop","dest_type":1,"proto":"icmp","reporter":2,"action":1},"start_time":1795176000,"end_time":1795176015}`
)

func TestReadJSON(t *testing.T) {
	allowed := webToCart()
	allowed.LastSeen = time.Unix(1795176015, 0).UTC()
	type line struct {
		n   int
		rec flows.Record
	}
	protojsonLine, err := protojson.Marshal(&pb.FlowResult{Id: 7, Flow: makeFlow(func(f *pb.Flow) { f.Key.DestPort = 9090 })})
	if err != nil {
		t.Fatal(err)
	}
	emitted, err := json.Marshal(makeFlow(func(f *pb.Flow) { f.Key.Proto = "sctp" }))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		input   string
		want    []line
		stats   FileStats
		wantErr string
		errLine int
	}{
		{
			name:  "emitter lines keep the allowed flows between workloads",
			input: "\uFEFF# pushed by goldmane\n" + strings.Join([]string{lineAllowed, lineDenied, "", linePublic, lineICMP}, "\r\n") + "\n",
			want:  []line{{2, allowed}},
			stats: FileStats{Lines: 6, Flows: 4, Records: 1, Skipped: map[SkipReason]int{SkipDenied: 1, SkipNotWorkload: 1, SkipNotL4: 1}},
		},
		{
			name:  "a flow marshalled as the emitter does reads back",
			input: string(emitted),
			want: []line{{1, func() flows.Record {
				r := webToCart()
				r.Protocol = flows.ProtocolSCTP
				return r
			}()}},
			stats: FileStats{Lines: 1, Flows: 1, Records: 1, Skipped: map[SkipReason]int{}},
		},
		{
			name:  "protojson flow results read",
			input: string(protojsonLine),
			want: []line{{1, func() flows.Record {
				r := webToCart()
				r.Port = 9090
				return r
			}()}},
			stats: FileStats{Lines: 1, Flows: 1, Records: 1, Skipped: map[SkipReason]int{}},
		},
		{name: "not JSON names the line", input: lineAllowed + "\n{\"Key\":", wantErr: "invalid JSON", errLine: 2},
		{name: "an array is no flow", input: "[]", wantErr: "must be a JSON object, not array", errLine: 1},
		{name: "null is no flow", input: "\n\nnull", wantErr: "must be a JSON object", errLine: 3},
		{name: "an object without a Key is no flow", input: `{"src":{"pod":"a"}}`, wantErr: `no "Key"`, errLine: 1},
		{name: "a null Key is no flow", input: `{"Key":null,"start_time":1}`, wantErr: `no "Key"`, errLine: 1},
		{name: "wrong field type", input: `{"Key":{"dest_port":"eighty"}}`, wantErr: "decoding Goldmane flow", errLine: 1},
		{name: "invalid namespace", input: strings.Replace(lineAllowed, `"dest_namespace":"shop"`, `"dest_namespace":"Shop"`, 1), wantErr: "dst.namespace", errLine: 1},
		{name: "line too long", input: lineAllowed + "\n" + strings.Repeat(" ", flows.MaxLineBytes+10), wantErr: "line too long", errLine: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []line
			stats, err := ReadJSONStats(strings.NewReader(tt.input), "push.ndjson", func(n int, rec flows.Record) error {
				got = append(got, line{n, rec})
				return nil
			})
			if tt.wantErr != "" {
				le, ok := errors.AsType[*flows.LineError](err)
				if !ok || le.Line != tt.errLine || le.Source != "push.ndjson" || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want line %d of push.ndjson mentioning %q", err, tt.errLine, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("records:\n got %+v\nwant %+v", got, tt.want)
			}
			if !reflect.DeepEqual(stats, tt.stats) {
				t.Errorf("stats = %+v, want %+v", stats, tt.stats)
			}
		})
	}
}

func TestReadJSONStopsAtTheCallbacksError(t *testing.T) {
	stop := errors.New("cache full")
	err := ReadJSON(strings.NewReader(lineAllowed+"\n"+lineAllowed), "f", func(int, flows.Record) error { return stop })
	if le, ok := errors.AsType[*flows.LineError](err); !ok || le.Line != 1 || !errors.Is(err, stop) {
		t.Errorf("error = %v, want the callback's on line 1", err)
	}
}

func TestLooksLike(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{lineAllowed, true},
		{"\uFEFF  " + linePublic, true},
		{`{"id":"3","flow":{"Key":{"proto":"tcp"},"startTime":"1795176000"}}`, true},
		{`{"src":{"namespace":"shop","pod":"web"},"dst":{"ip":"10.0.0.1"},"port":80}`, false},
		{`{"flow":{"time":"2026-11-20T10:00:00Z","verdict":"FORWARDED","Type":"L3_L4"}}`, false},
		{`["Key","start_time"]`, false},
		{"", false},
	}
	for _, tt := range tests {
		if got := LooksLike([]byte(tt.line)); got != tt.want {
			t.Errorf("LooksLike(%.60q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}
