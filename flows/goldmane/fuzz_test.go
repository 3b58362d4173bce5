package goldmane

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/netpol-guard/netpol-guard/flows"
)

// FuzzReadJSON checks that no input panics ReadJSON, that every error names its line, and
// that every record it hands over is normalised.
func FuzzReadJSON(f *testing.F) {
	for _, l := range []string{lineAllowed, lineDenied, linePublic, lineICMP} {
		f.Add(l)
	}
	f.Add(lineAllowed + "\n# c\n\n" + lineDenied)
	f.Add(`{"Key":{"source_namespace":"a","source_name":"p","source_type":1,"dest_namespace":"b","dest_name":"q","dest_type":1,"dest_port":1,"proto":"udp","reporter":2,"action":1},"end_time":253402300800}`)
	f.Add("[]\nnull\n{}\n")
	f.Fuzz(func(t *testing.T, input string) {
		last := 0
		_, err := ReadJSONStats(strings.NewReader(input), "fuzz", func(n int, rec flows.Record) error {
			if n <= last {
				t.Errorf("line %d after line %d", n, last)
			}
			last = n
			again := rec
			if err := again.Normalize(); err != nil || !reflect.DeepEqual(again, rec) {
				t.Errorf("line %d: record not normalised (%v): %+v", n, err, rec)
			}
			return nil
		})
		if err != nil {
			if le, ok := errors.AsType[*flows.LineError](err); !ok || le.Line < 1 || le.Source != "fuzz" {
				t.Fatalf("error %v (%T) does not name the line", err, err)
			}
		}
	})
}
