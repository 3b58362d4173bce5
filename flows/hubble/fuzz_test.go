package hubble

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/netpol-guard/netpol-guard/flows"
)

// FuzzReadJSON checks that no input panics ReadJSON, that every error names its line, and
// that every record it hands over is normalised and survives our own JSON Lines unchanged.
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
	f.Fuzz(func(t *testing.T, input string) {
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
