package flows

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

const cartLine = `{"src":{"namespace":"shop","pod":"web-7d9f-x2"},"dst":{"namespace":"shop","workload":"Deployment/cart"},"port":8080,"protocol":"TCP","lastSeen":"2026-11-20T10:00:00Z","count":42}`

// makeRecord returns a valid, normalised record between two pods, changed by tweaks.
func makeRecord(tweaks ...func(*Record)) Record {
	r := Record{
		Src:      Peer{Namespace: "shop", Pod: "web-7d9f-x2"},
		Dst:      Peer{Namespace: "shop", Pod: "cart-5c-q1"},
		Port:     8080,
		Protocol: "TCP",
	}
	for _, tweak := range tweaks {
		tweak(&r)
	}
	return r
}

// withoutRaw drops RawSrc and RawDst so records can be compared by value.
func withoutRaw(recs []Record) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		r.RawSrc, r.RawDst = nil, nil
		out[i] = r
	}
	return out
}

func TestReadAcceptsValidLines(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Record
	}{
		{
			name: "pod and workload peers with namespaces",
			line: cartLine,
			want: makeRecord(func(r *Record) {
				r.Dst = Peer{Namespace: "shop", Workload: "Deployment/cart"}
				r.LastSeen = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
				r.Count = 42
			}),
		},
		{
			name: "labels peer with namespace",
			line: `{"src":{"namespace":"shop","labels":{"app":"web","app.kubernetes.io/part-of":"shop"}},"dst":{"namespace":"shop","pod":"cart-5c-q1"},"port":8080}`,
			want: makeRecord(func(r *Record) {
				r.Src = Peer{Namespace: "shop", Labels: map[string]string{"app": "web", "app.kubernetes.io/part-of": "shop"}}
			}),
		},
		{
			name: "ip-only peer is an external address without namespace",
			line: `{"src":{"ip":"203.0.113.7"},"dst":{"namespace":"shop","pod":"cart-5c-q1"},"port":8080}`,
			want: makeRecord(func(r *Record) { r.Src = Peer{IP: "203.0.113.7"} }),
		},
		{
			name: "pod peer may also carry its ip",
			line: `{"src":{"namespace":"shop","pod":"web-7d9f-x2","ip":"10.0.0.3"},"dst":{"namespace":"shop","pod":"cart-5c-q1"},"port":8080}`,
			want: makeRecord(func(r *Record) { r.Src.IP = "10.0.0.3" }),
		},
		{
			name: "workload of a kind Kubernetes does not spell is kept",
			line: `{"src":{"namespace":"argo","workload":"Rollout/web"},"dst":{"namespace":"shop","pod":"cart-5c-q1"},"port":8080}`,
			want: makeRecord(func(r *Record) { r.Src = Peer{Namespace: "argo", Workload: "Rollout/web"} }),
		},
		{
			name: "IPv4-mapped IPv6 is stored as IPv4",
			line: `{"src":{"ip":"::ffff:10.0.0.3"},"dst":{"namespace":"shop","pod":"cart-5c-q1"},"port":8080}`,
			want: makeRecord(func(r *Record) { r.Src = Peer{IP: "10.0.0.3"} }),
		},
		{
			name: "IPv6 is stored canonical",
			line: `{"src":{"ip":"2001:DB8:0:0::0001"},"dst":{"namespace":"shop","pod":"cart-5c-q1"},"port":8080}`,
			want: makeRecord(func(r *Record) { r.Src = Peer{IP: "2001:db8::1"} }),
		},
		{
			name: "protocol defaults to TCP and count to zero meaning unknown",
			line: `{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":1}`,
			want: makeRecord(func(r *Record) { r.Src, r.Dst, r.Port = Peer{IP: "10.0.0.3"}, Peer{IP: "10.0.0.4"}, 1 }),
		},
		{
			name: "protocol is case-insensitive and stored upper-case",
			line: `{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":53,"protocol":"uDp"}`,
			want: makeRecord(func(r *Record) {
				r.Src, r.Dst, r.Port, r.Protocol = Peer{IP: "10.0.0.3"}, Peer{IP: "10.0.0.4"}, 53, "UDP"
			}),
		},
		{
			name: "SCTP on the highest port",
			line: `{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":65535,"protocol":"sctp"}`,
			want: makeRecord(func(r *Record) {
				r.Src, r.Dst, r.Port, r.Protocol = Peer{IP: "10.0.0.3"}, Peer{IP: "10.0.0.4"}, 65535, "SCTP"
			}),
		},
		{
			name: "lastSeen with an offset and fraction is stored in UTC",
			line: `{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"lastSeen":"2026-11-20T12:00:00.5+02:00"}`,
			want: makeRecord(func(r *Record) {
				r.Src, r.Dst, r.Port = Peer{IP: "10.0.0.3"}, Peer{IP: "10.0.0.4"}, 80
				r.LastSeen = time.Date(2026, 11, 20, 10, 0, 0, 5e8, time.UTC)
			}),
		},
		{
			name: "null and empty optional fields are absent",
			line: `{"src":{"namespace":"","pod":null,"ip":"10.0.0.3","labels":{}},"dst":{"ip":"10.0.0.4","labels":null},"port":80,"protocol":null,"lastSeen":"","count":null}`,
			want: makeRecord(func(r *Record) { r.Src, r.Dst, r.Port = Peer{IP: "10.0.0.3"}, Peer{IP: "10.0.0.4"}, 80 }),
		},
		{
			name: "whitespace around and inside the object is allowed",
			line: " \t{ \"src\" : {\"ip\" : \"10.0.0.3\"} , \"dst\":{\"ip\":\"10.0.0.4\"},\"port\": 80 } \t",
			want: makeRecord(func(r *Record) { r.Src, r.Dst, r.Port = Peer{IP: "10.0.0.3"}, Peer{IP: "10.0.0.4"}, 80 }),
		},
		{
			name: "HTML characters and escapes in strings decode",
			line: `{"src":{"namespace":"shop","workload":"Job/a\u003cb"},"dst":{"ip":"10.0.0.4"},"port":80}`,
			want: makeRecord(func(r *Record) {
				r.Src, r.Dst, r.Port = Peer{Namespace: "shop", Workload: "Job/a<b"}, Peer{IP: "10.0.0.4"}, 80
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadAll(strings.NewReader(tt.line+"\n"), "flows.jsonl")
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			if want := []Record{tt.want}; !reflect.DeepEqual(withoutRaw(got), want) {
				t.Errorf("ReadAll:\n got %+v\nwant %+v", withoutRaw(got), want)
			}
		})
	}
}

func TestReadKeepsRawPeerBytes(t *testing.T) {
	const src = `{ "ip" : "::ffff:10.0.0.3" }`
	const dst = `{"namespace":"shop","labels":{"b":"2","a":"1"}}`
	line := `{"port":80, "src":   ` + src + ` ,"dst":` + dst + "}"
	recs, err := ReadAll(strings.NewReader(line), "flows.jsonl")
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if got := string(recs[0].RawSrc); got != src {
		t.Errorf("RawSrc = %q, want %q", got, src)
	}
	if got := string(recs[0].RawDst); got != dst {
		t.Errorf("RawDst = %q, want %q", got, dst)
	}
	if got := recs[0].Src.IP; got != "10.0.0.3" {
		t.Errorf("Src.IP = %q, want normalised 10.0.0.3", got)
	}
}

func TestReadSkipsCommentsAndBlankLinesButCountsThem(t *testing.T) {
	input := "\uFEFF# flows exported 2026-11-20\n" +
		"\n" +
		cartLine + "\n" +
		"   \t\n" +
		"  # indented comment\n" +
		cartLine + "\r\n" +
		cartLine // no final newline
	var lines []int
	err := Read(strings.NewReader(input), "flows.jsonl", func(line int, rec Record) error {
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if want := []int{3, 6, 7}; !reflect.DeepEqual(lines, want) {
		t.Errorf("records on lines %v, want %v", lines, want)
	}
}

func TestReadOfEmptyInputCallsNothing(t *testing.T) {
	for _, input := range []string{"", "\n\n", "# only a comment\n"} {
		recs, err := ReadAll(strings.NewReader(input), "flows.jsonl")
		if err != nil || len(recs) != 0 {
			t.Errorf("ReadAll(%q) = %v, %v; want no records, no error", input, recs, err)
		}
	}
}

func TestReadErrorsNameLineAndField(t *testing.T) {
	const dst = `"dst":{"namespace":"shop","pod":"cart-5c-q1"}`
	const src = `"src":{"namespace":"shop","pod":"web-7d9f-x2"}`
	withSrc := func(peer string) string { return `{"src":` + peer + `,` + dst + `,"port":80}` }
	withRest := func(rest string) string { return `{` + src + `,` + dst + `,` + rest + `}` }
	tests := []struct {
		name      string
		line      string
		wantField string
		wantMsg   string // substring of the message after the field
	}{
		{"invalid IPv4 address", withSrc(`{"ip":"10.0.0.300"}`), "src.ip", `invalid IP address "10.0.0.300"`},
		{"IP with zone", withSrc(`{"ip":"fe80::1%eth0"}`), "src.ip", "must not have a zone"},
		{"CIDR is not an IP", withSrc(`{"ip":"10.0.0.0/8"}`), "src.ip", `invalid IP address "10.0.0.0/8"`},
		{"cidr with host bits", withSrc(`{"cidr":"203.0.113.7/24"}`), "src.cidr", "host bits set (the network is 203.0.113.0/24)"},
		{"cidr not a network", withSrc(`{"cidr":"203.0.113.7"}`), "src.cidr", `invalid CIDR "203.0.113.7"`},
		{"cidr with an ip", withSrc(`{"cidr":"203.0.113.0/24","ip":"203.0.113.7"}`), "src.cidr", "must be given alone"},
		{"peer with nothing identifying", withSrc(`{}`), "src", "must give at least one of pod, workload, labels, ip or cidr"},
		{"peer with only a namespace", withSrc(`{"namespace":"shop"}`), "src", "must give at least one of"},
		{"peer with only empty labels", withSrc(`{"namespace":"shop","labels":{}}`), "src", "must give at least one of"},
		{"pod without namespace", withSrc(`{"pod":"web"}`), "src.namespace", "required with pod, workload or labels"},
		{"workload without namespace", withSrc(`{"workload":"Deployment/web"}`), "src.namespace", "required"},
		{"labels without namespace", withSrc(`{"labels":{"app":"web"}}`), "src.namespace", "required"},
		{"namespace not an RFC 1123 label", withSrc(`{"namespace":"Shop","pod":"web"}`), "src.namespace", `invalid namespace "Shop"`},
		{"pod name not an RFC 1123 subdomain", withSrc(`{"namespace":"shop","pod":"web_1"}`), "src.pod", `invalid pod name "web_1"`},
		{"workload without kind", withSrc(`{"namespace":"shop","workload":"/web"}`), "src.workload", "must be Kind/name"},
		{"workload without name", withSrc(`{"namespace":"shop","workload":"Deployment/"}`), "src.workload", "must be Kind/name"},
		{"workload without slash", withSrc(`{"namespace":"shop","workload":"web"}`), "src.workload", "must be Kind/name"},
		{"workload with extra slash", withSrc(`{"namespace":"shop","workload":"apps/Deployment/web"}`), "src.workload", "must be Kind/name"},
		{"invalid label key", withSrc(`{"namespace":"shop","labels":{"bad key":"x"}}`), "src.labels[bad key]", `invalid label key "bad key"`},
		{"invalid label value", withSrc(`{"namespace":"shop","labels":{"app":"-web"}}`), "src.labels[app]", `invalid label value "-web"`},
		{"label value not a string", withSrc(`{"namespace":"shop","labels":{"app":1}}`), "src.labels[app]", "must be a string, not number"},
		{"labels not an object", withSrc(`{"namespace":"shop","labels":["app"]}`), "src.labels", "must be an object, not array"},
		{"more than 64 labels", withSrc(`{"namespace":"shop","labels":{` + manyLabels(65, 1) + `}}`), "src.labels", "65 labels: at most 64 per peer"},
		{"more than 4 KiB of labels", withSrc(`{"namespace":"shop","labels":{` + manyLabels(40, 63) + `}}`), "src.labels", "bytes of labels: at most 4096 per peer"},
		{"workload name too long", withSrc(`{"namespace":"shop","workload":"Deployment/` + strings.Repeat("a", 400) + `"}`), "src.workload", "at most 317"},
		{"unknown peer field", withSrc(`{"ip":"10.0.0.3","node":"n1"}`), "src.node", "unknown field"},
		{"peer field names are case-sensitive", withSrc(`{"IP":"10.0.0.3"}`), "src.IP", "unknown field"},
		{"peer field not a string", withSrc(`{"ip":167772163}`), "src.ip", "must be a string, not number"},
		{"peer not an object", withSrc(`"10.0.0.3"`), "src", "must be an object, not string"},
		{"src missing", `{` + dst + `,"port":80}`, "src", "required"},
		{"src null", withSrc(`null`), "src", "required"},
		{"dst missing", `{` + src + `,"port":80}`, "dst", "required"},
		{"invalid dst is named dst", `{` + src + `,"dst":{"ip":"x"},"port":80}`, "dst.ip", `invalid IP address "x"`},
		{"port missing", `{` + src + `,` + dst + `}`, "port", "required"},
		{"port zero", withRest(`"port":0`), "port", "must be between 1 and 65535, got 0"},
		{"port above 65535", withRest(`"port":65536`), "port", "must be between 1 and 65535, got 65536"},
		{"port negative", withRest(`"port":-80`), "port", "must be between 1 and 65535, got -80"},
		{"port beyond int64", withRest(`"port":99999999999999999999`), "port", "must be between 1 and 65535"},
		{"port fractional", withRest(`"port":80.5`), "port", "must be an integer, got 80.5"},
		{"port in exponent form", withRest(`"port":8e1`), "port", "must be an integer, got 8e1"},
		{"port as string", withRest(`"port":"80"`), "port", "must be an integer, not string"},
		{"unsupported protocol", withRest(`"port":80,"protocol":"ICMP"`), "protocol", `unsupported protocol "ICMP"`},
		{"protocol folds ASCII only", withRest(`"port":80,"protocol":"ſctp"`), "protocol", "unsupported protocol"},
		{"protocol not a string", withRest(`"port":80,"protocol":6`), "protocol", "must be a string, not number"},
		{"lastSeen not RFC 3339", withRest(`"port":80,"lastSeen":"2026-11-20 10:00:00"`), "lastSeen", "must be RFC 3339"},
		{"lastSeen as Unix time", withRest(`"port":80,"lastSeen":1763632800`), "lastSeen", "must be a string, not number"},
		{"lastSeen before year 0 in UTC", withRest(`"port":80,"lastSeen":"0000-01-01T00:00:00+01:00"`), "lastSeen", "out of range"},
		{"count negative", withRest(`"port":80,"count":-1`), "count", "must not be negative, got -1"},
		{"count fractional", withRest(`"port":80,"count":1.5`), "count", "must be an integer, got 1.5"},
		{"count beyond uint64", withRest(`"port":80,"count":18446744073709551616`), "count", "out of range"},
		{"unknown top-level field", withRest(`"port":80,"bytes":1024`), "bytes", "unknown field"},
		{"top-level field names are case-sensitive", withRest(`"Port":80`), "Port", "unknown field"},
		{"repeated field", withRest(`"port":80,"port":81`), "port", "duplicate field"},
		{"repeated peer field", withSrc(`{"ip":"10.0.0.3","ip":"10.0.0.4"}`), "src.ip", "duplicate field"},
		{"invalid JSON", `{"src":`, "", "invalid JSON at byte"},
		{"data after the object", withRest(`"port":80`) + ` {}`, "", "invalid JSON"},
		{"array instead of object", `[1,2]`, "", "must be a JSON object, not array"},
		{"null line", `null`, "", "must be a JSON object, not null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := "# header\n" + cartLine + "\n" + tt.line + "\n" + cartLine + "\n"
			var calls int
			err := Read(strings.NewReader(input), "flows.jsonl", func(int, Record) error {
				calls++
				return nil
			})
			le, ok := errors.AsType[*LineError](err)
			if !ok {
				t.Fatalf("Read error = %v, want a *LineError", err)
			}
			if le.Source != "flows.jsonl" || le.Line != 3 || le.Field != tt.wantField {
				t.Errorf("error at %s:%d field %q, want flows.jsonl:3 field %q (%v)", le.Source, le.Line, le.Field, tt.wantField, err)
			}
			if !strings.Contains(le.Err.Error(), tt.wantMsg) {
				t.Errorf("message %q does not contain %q", le.Err.Error(), tt.wantMsg)
			}
			if calls != 1 {
				t.Errorf("fn called %d times, want 1 (only the line before the bad one)", calls)
			}
		})
	}
}

func TestLineErrorReadsSourceLineFieldMessage(t *testing.T) {
	err := Read(strings.NewReader(`{"src":{"ip":"10.0.0.300"},"dst":{"ip":"10.0.0.4"},"port":80}`), "flows.jsonl",
		func(int, Record) error { return nil })
	const want = `flows.jsonl:1: src.ip: invalid IP address "10.0.0.300"`
	if err == nil || err.Error() != want {
		t.Errorf("Read error = %v, want %s", err, want)
	}

	tests := []struct {
		name string
		err  *LineError
		want string
	}{
		{"with field", &LineError{Source: "a.jsonl", Line: 2, Field: "port", Err: errors.New("required")}, "a.jsonl:2: port: required"},
		{"without field", &LineError{Source: "a.jsonl", Line: 2, Err: errors.New("invalid JSON")}, "a.jsonl:2: invalid JSON"},
		{"without source", &LineError{Line: 2, Err: errors.New("invalid JSON")}, "line 2: invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if !errors.Is(tt.err, tt.err.Err) {
				t.Errorf("errors.Is does not reach the wrapped error")
			}
		})
	}
}

func TestBadLineInTheMiddleStopsWithThatLineNumber(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= 20; i++ {
		switch {
		case i == 12:
			b.WriteString(`{"src":{"ip":"10.0.0.300"},"dst":{"ip":"10.0.0.4"},"port":80}` + "\n")
		case i%5 == 0:
			b.WriteString("# comment\n")
		default:
			b.WriteString(cartLine + "\n")
		}
	}
	recs, err := ReadAll(strings.NewReader(b.String()), "flows.jsonl")
	const want = `flows.jsonl:12: src.ip: invalid IP address "10.0.0.300"`
	if err == nil || err.Error() != want {
		t.Errorf("ReadAll error = %v, want %s", err, want)
	}
	if len(recs) != 9 { // lines 1..11 less the comments on 5 and 10
		t.Errorf("ReadAll returned %d records read before the bad line, want 9", len(recs))
	}
}

func TestReadStopsAtCallbackErrorAndKeepsIt(t *testing.T) {
	errFull := errors.New("cache full")
	input := cartLine + "\n" + cartLine + "\n" + cartLine + "\n"
	var calls int
	err := Read(strings.NewReader(input), "push", func(line int, _ Record) error {
		calls++
		if line == 2 {
			return errFull
		}
		return nil
	})
	if !errors.Is(err, errFull) || err.Error() != "push:2: cache full" {
		t.Errorf("Read error = %v, want push:2: cache full wrapping errFull", err)
	}
	if calls != 2 {
		t.Errorf("fn called %d times, want 2", calls)
	}
}

func TestReadReportsReaderFailureWithLine(t *testing.T) {
	errDisk := errors.New("disk on fire")
	r := io.MultiReader(strings.NewReader(cartLine+"\n"), iotest.ErrReader(errDisk))
	recs, err := ReadAll(r, "flows.jsonl")
	le, ok := errors.AsType[*LineError](err)
	if !ok || !errors.Is(err, errDisk) || le.Line != 2 {
		t.Errorf("ReadAll error = %v, want a LineError on line 2 wrapping the read error", err)
	}
	if len(recs) != 1 {
		t.Errorf("ReadAll returned %d records, want the 1 before the failure", len(recs))
	}
}

func TestReadLineLengthLimit(t *testing.T) {
	// padded returns cartLine padded with spaces inside the object to exactly n bytes.
	padded := func(n int) string {
		return cartLine[:1] + strings.Repeat(" ", n-len(cartLine)) + cartLine[1:]
	}
	tests := []struct {
		name     string
		input    string
		wantRecs int
		wantLine int // 0: no error
	}{
		{"line of exactly MaxLineBytes is read", cartLine + "\n" + padded(MaxLineBytes) + "\n", 2, 0},
		{"line of MaxLineBytes with CRLF is read", padded(MaxLineBytes) + "\r\n" + cartLine, 2, 0},
		{"last line of MaxLineBytes without newline is read", cartLine + "\n" + padded(MaxLineBytes), 2, 0},
		{"line one byte too long names its line", cartLine + "\n" + padded(MaxLineBytes+1) + "\n" + cartLine + "\n", 1, 2},
		{"last line one byte too long without newline names its line", cartLine + "\n" + padded(MaxLineBytes+1), 1, 2},
		{"much longer line names its line", cartLine + "\n\n" + padded(3*MaxLineBytes) + "\n" + cartLine + "\n", 1, 3},
		{"long comment is still too long", "#" + strings.Repeat("x", MaxLineBytes) + "\n", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := ReadAll(strings.NewReader(tt.input), "big.jsonl")
			if len(recs) != tt.wantRecs {
				t.Errorf("ReadAll returned %d records, want %d", len(recs), tt.wantRecs)
			}
			if tt.wantLine == 0 {
				if err != nil {
					t.Errorf("ReadAll: %v", err)
				}
				return
			}
			le, ok := errors.AsType[*LineError](err)
			if !ok || le.Line != tt.wantLine || !errors.Is(err, ErrLineTooLong) {
				t.Errorf("ReadAll error = %v, want ErrLineTooLong on line %d", err, tt.wantLine)
			}
		})
	}
}

func TestWriteThenReadRoundTrips(t *testing.T) {
	recs := []Record{
		makeRecord(),
		makeRecord(func(r *Record) {
			r.Src = Peer{Namespace: "batch", Workload: "CronJob/report", Labels: map[string]string{"b": "2", "a": "1"}, IP: "10.0.0.9"}
			r.Dst = Peer{IP: "2001:db8::1"}
			r.Port, r.Protocol, r.Count = 443, "UDP", 7
			r.LastSeen = time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)
		}),
		makeRecord(func(r *Record) { r.Dst = Peer{Namespace: "shop", Workload: "Job/a<b&c>"} }),
	}
	var buf bytes.Buffer
	if err := Write(&buf, recs...); err != nil {
		t.Fatalf("Write: %v", err)
	}
	const want = `{"src":{"namespace":"shop","pod":"web-7d9f-x2"},"dst":{"namespace":"shop","pod":"cart-5c-q1"},"port":8080,"protocol":"TCP"}
{"src":{"namespace":"batch","workload":"CronJob/report","labels":{"a":"1","b":"2"},"ip":"10.0.0.9"},"dst":{"ip":"2001:db8::1"},"port":443,"protocol":"UDP","lastSeen":"2026-11-20T10:00:00.123456789Z","count":7}
{"src":{"namespace":"shop","pod":"web-7d9f-x2"},"dst":{"namespace":"shop","workload":"Job/a<b&c>"},"port":8080,"protocol":"TCP"}
`
	if got := buf.String(); got != want {
		t.Errorf("Write wrote\n%s\nwant\n%s", got, want)
	}
	got, err := ReadAll(&buf, "written")
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !reflect.DeepEqual(withoutRaw(got), recs) {
		t.Errorf("round trip:\n got %+v\nwant %+v", withoutRaw(got), recs)
	}
}

func TestWriteNormalises(t *testing.T) {
	tests := []struct {
		name string
		in   Record
		want string
	}{
		{
			name: "protocol is upper-cased and IPs canonical",
			in: makeRecord(func(r *Record) {
				r.Src, r.Dst, r.Protocol = Peer{IP: "::ffff:10.0.0.3"}, Peer{IP: "2001:DB8::0:1"}, "sctp"
			}),
			want: `{"src":{"ip":"10.0.0.3"},"dst":{"ip":"2001:db8::1"},"port":8080,"protocol":"SCTP"}`,
		},
		{
			name: "empty protocol is written as TCP and lastSeen in UTC",
			in: makeRecord(func(r *Record) {
				r.Protocol = ""
				r.LastSeen = time.Date(2026, 11, 20, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
			}),
			want: `{"src":{"namespace":"shop","pod":"web-7d9f-x2"},"dst":{"namespace":"shop","pod":"cart-5c-q1"},"port":8080,"protocol":"TCP","lastSeen":"2026-11-20T10:00:00Z"}`,
		},
		{
			name: "raw peers are not echoed",
			in: makeRecord(func(r *Record) {
				r.Src.IP, r.RawSrc = "10.0.0.3", []byte(`{"ip":"10.9.9.9"}`)
			}),
			want: `{"src":{"namespace":"shop","pod":"web-7d9f-x2","ip":"10.0.0.3"},"dst":{"namespace":"shop","pod":"cart-5c-q1"},"port":8080,"protocol":"TCP"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tt.in); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if got := buf.String(); got != tt.want+"\n" {
				t.Errorf("Write wrote %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestWriteRejectsInvalidRecordsNamingRecordAndField(t *testing.T) {
	tests := []struct {
		name    string
		rec     Record
		wantMsg string
	}{
		{"zero port", makeRecord(func(r *Record) { r.Port = 0 }), "invalid flow record 2: port: must be between 1 and 65535, got 0"},
		{"empty peer", makeRecord(func(r *Record) { r.Dst = Peer{} }), "invalid flow record 2: dst: must give at least one of"},
		{"bad IP", makeRecord(func(r *Record) { r.Src.IP = "nope" }), `invalid flow record 2: src.ip: invalid IP address "nope"`},
		{"invalid UTF-8 workload", makeRecord(func(r *Record) { r.Src.Workload = "Job/\xff" }), "invalid flow record 2: src.workload: invalid workload"},
		{"unknown protocol", makeRecord(func(r *Record) { r.Protocol = "ICMP" }), `invalid flow record 2: protocol: unsupported protocol "ICMP"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, makeRecord(), tt.rec, makeRecord())
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantMsg) {
				t.Errorf("Write error = %v, want prefix %q", err, tt.wantMsg)
			}
			if n := strings.Count(buf.String(), "\n"); n != 1 {
				t.Errorf("Write wrote %d lines, want only the 1 before the invalid record", n)
			}
		})
	}
}

func TestNormalizeIsIdempotentAndKeepsCallerLabels(t *testing.T) {
	labels := map[string]string{}
	r := makeRecord(func(r *Record) { r.Src = Peer{IP: "::ffff:10.0.0.3", Labels: labels}; r.Protocol = "udp" })
	if err := r.Normalize(); err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	once := r
	if err := r.Normalize(); err != nil {
		t.Fatalf("second Normalize: %v", err)
	}
	if !reflect.DeepEqual(r, once) {
		t.Errorf("second Normalize changed %+v to %+v", once, r)
	}
	if r.Src.Labels != nil || r.Src.IP != "10.0.0.3" || r.Protocol != "UDP" {
		t.Errorf("Normalize gave %+v, want nil labels, IP 10.0.0.3, UDP", r)
	}
}

func FuzzRead(f *testing.F) {
	for _, seed := range []string{
		cartLine,
		"# comment\n\n" + cartLine + "\r\n" + cartLine,
		`{"src":{"namespace":"shop","labels":{"app":"web","app.kubernetes.io/name":"x"}},"dst":{"ip":"::ffff:10.0.0.3"},"port":53,"protocol":"udp","count":0}`,
		`{"src":{"ip":"2001:DB8::1"},"dst":{"namespace":"a","workload":"Job/b","ip":"1.2.3.4"},"port":65535,"protocol":"SCTP","lastSeen":"2026-11-20T12:00:00.5+02:00"}`,
		`{"src":{"ip":"10.0.0.300"},"dst":{"ip":"10.0.0.4"},"port":80}`,
		`{"src":{"ip":"10.0.0.3","ip":"x"},"dst":null,"port":-0,"count":-0}`,
		`{"src":{"namespace":"a","pod":"b","labels":{}},"dst":{"ip":"1.1.1.1"},"port":1e1}`,
		`[{"src":1}]`,
		"\uFEFF" + cartLine,
		`{"src":{"namespace":"a","workload":"K/\u00e9\ufffd"},"dst":{"ip":"fe80::1%eth0"},"port":1,"lastSeen":"9999-12-31T23:59:59-01:00"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var accepted []Record
		err := Read(bytes.NewReader(data), "fuzz", func(_ int, rec Record) error {
			accepted = append(accepted, rec)
			return nil
		})
		if err != nil {
			if _, ok := errors.AsType[*LineError](err); !ok {
				t.Fatalf("Read error %v is not a *LineError", err)
			}
		}
		var buf bytes.Buffer
		if err := Write(&buf, accepted...); err != nil {
			t.Fatalf("Write of accepted records: %v", err)
		}
		again, err := ReadAll(bytes.NewReader(buf.Bytes()), "rewritten")
		if err != nil {
			t.Fatalf("Read of written records: %v\n%s", err, buf.Bytes())
		}
		if !reflect.DeepEqual(withoutRaw(again), withoutRaw(accepted)) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", withoutRaw(again), withoutRaw(accepted))
		}
	})
}

// manyLabels is n valid JSON label members "<prefix>/kNN": "vvv…" with values of size bytes
// (at most 63) and keys of 64.
func manyLabels(n, size int) string {
	prefix := strings.Repeat("p", 60)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"%s/k%02d":%q`, prefix, i, strings.Repeat("v", size))
	}
	return strings.Join(parts, ",")
}

func TestAggregatedPeerRoundTrips(t *testing.T) {
	line := `{"src":{"cidr":"2001:DB8:1::/48"},"dst":{"namespace":"shop","workload":"Deployment/web"},"port":443}` + "\n"
	var got []Record
	if err := Read(strings.NewReader(line), "in", func(_ int, r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Src.CIDR != "2001:db8:1::/48" {
		t.Fatalf("read %+v, want src cidr 2001:db8:1::/48", got)
	}
	var out strings.Builder
	if err := Write(&out, got[0]); err != nil {
		t.Fatal(err)
	}
	if want := `{"src":{"cidr":"2001:db8:1::/48"},`; !strings.HasPrefix(out.String(), want) {
		t.Errorf("written %s, want it to start %s", out.String(), want)
	}
}

func TestLabelsValidAgreesWithNormalize(t *testing.T) {
	many := func(n, size int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("%s/k%02d", strings.Repeat("p", 60), i)] = strings.Repeat("v", size)
		}
		return m
	}
	tests := []struct {
		name   string
		labels map[string]string
	}{
		{"none", nil},
		{"empty", map[string]string{}},
		{"valid", map[string]string{"app": "web", "app.kubernetes.io/name": "x"}},
		{"bad key", map[string]string{"app": "web", "-bad": "x"}},
		{"bad value", map[string]string{"app": "web!"}},
		{"too many", many(MaxPeerLabels+1, 1)},
		{"as many and as long as allowed", many(MaxPeerLabels, 0)},
		{"too many bytes", many(40, 63)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := makeRecord(func(r *Record) { r.Src.Labels = tt.labels })
			if got, want := LabelsValid(tt.labels), r.Normalize() == nil; got != want {
				t.Errorf("LabelsValid = %v, Normalize accepts = %v", got, want)
			}
		})
	}
}

func TestNormalizeCheckedLabelsSkipsOnlyTheLabelsCheck(t *testing.T) {
	labels := map[string]string{"app": "web"}
	r := makeRecord(func(r *Record) { r.Src.Labels, r.Dst.Labels, r.Protocol = labels, labels, "udp" })
	want := r
	if err := want.Normalize(); err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	if err := r.NormalizeCheckedLabels(true, true); err != nil || !reflect.DeepEqual(r, want) {
		t.Errorf("NormalizeCheckedLabels gave %+v, %v; want %+v as Normalize does", r, err, want)
	}
	bad := makeRecord(func(r *Record) { r.Src.Labels, r.Dst.Pod = labels, "Not-A-Pod" })
	if err := bad.NormalizeCheckedLabels(true, true); err == nil || !strings.HasPrefix(err.Error(), "dst.pod: ") {
		t.Errorf("NormalizeCheckedLabels of a bad pod name = %v, want a dst.pod error", err)
	}
	unchecked := makeRecord(func(r *Record) { r.Dst.Labels = map[string]string{"app": "web!"} })
	if err := unchecked.NormalizeCheckedLabels(true, false); err == nil || !strings.HasPrefix(err.Error(), "dst.labels[app]: ") {
		t.Errorf("NormalizeCheckedLabels of bad unchecked labels = %v, want a dst.labels[app] error", err)
	}
}
