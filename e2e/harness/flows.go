package harness

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/netpol-guard/netpol-guard/flows"
)

// ReadFlows reads a JSON Lines flow file.
func ReadFlows(path string) ([]flows.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return flows.ReadAll(f, path)
}

// ShiftFlows moves the records' lastSeen so that the newest is at now, keeping the gaps
// between them: a recorded file then reads as traffic seen up to now, inside the cache's
// window, and after the pods whose addresses it names were created here. Records without a
// lastSeen are left without one (the API takes them as seen on arrival).
func ShiftFlows(recs []flows.Record, now time.Time) []flows.Record {
	var newest time.Time
	for _, r := range recs {
		if r.LastSeen.After(newest) {
			newest = r.LastSeen
		}
	}
	out := make([]flows.Record, len(recs))
	for i, r := range recs {
		if !r.LastSeen.IsZero() {
			r.LastSeen = r.LastSeen.Add(now.Sub(newest)).UTC().Truncate(time.Second)
		}
		out[i] = r
	}
	return out
}

// EncodeFlows writes records as JSON Lines, the push API's body.
func EncodeFlows(recs []flows.Record) ([]byte, error) {
	var b bytes.Buffer
	if err := flows.Write(&b, recs...); err != nil {
		return nil, fmt.Errorf("encoding flows: %w", err)
	}
	return b.Bytes(), nil
}
