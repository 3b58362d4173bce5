// Package jsonlines reads the flow files of the sources that write them one JSON object a
// line (flows/hubble: `hubble observe -o json` and the Hubble exporter; flows/goldmane: its
// emitter's pushes), so that each reader skips, counts and reports lines the same way and
// says only how to decode and convert its own flows.
package jsonlines

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/netpol-guard/netpol-guard/flows"
)

// Stats counts what Read read.
type Stats[R comparable] struct {
	// Lines read, blank and comment lines included.
	Lines int
	// Flows is the number of flows; Records how many of them were handed to fn; NonFlow the
	// lines that held something else the source writes.
	Flows, Records, NonFlow int
	// Skipped counts the flows convert passed over, by reason.
	Skipped map[R]int
}

// Source says how to read one source's flows: decode reads a trimmed, non-empty line into
// a flow F, or says the line holds something other than a flow (ok false); convert makes
// a record of a flow, or names the reason it passes the flow over (anything but
// NotSkipped). Name names the source's flows in errors ("Hubble").
type Source[F any, R comparable] struct {
	Name       string
	NotSkipped R
	Decode     func(line []byte) (f F, ok bool, err error)
	Convert    func(f F) (flows.Record, R, error)
}

// Read reads r, one JSON object a line, and calls fn with the record of each flow and its
// 1-based line number. Lines that are blank or start with '#' are skipped, and so is a
// byte order mark before the first. It stops at a line longer than flows.MaxLineBytes, at
// the first error from decode, convert or fn, or at a read error, and returns it as a
// *flows.LineError naming source and line, with the stats up to there.
func Read[F any, R comparable](r io.Reader, source string, s Source[F, R], fn func(line int, rec flows.Record) error) (Stats[R], error) {
	st := Stats[R]{Skipped: map[R]int{}}
	lineError := func(err error) error { return &flows.LineError{Source: source, Line: st.Lines, Err: err} }
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), flows.MaxLineBytes+2)
	for sc.Scan() {
		st.Lines++
		b := sc.Bytes()
		if st.Lines == 1 {
			b = bytes.TrimPrefix(b, []byte("\uFEFF"))
		}
		if len(b) > flows.MaxLineBytes {
			return st, lineError(fmt.Errorf("%w: more than %d bytes", flows.ErrLineTooLong, flows.MaxLineBytes))
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		f, ok, err := s.Decode(b)
		if err != nil {
			return st, lineError(err)
		}
		if !ok {
			st.NonFlow++
			continue
		}
		st.Flows++
		rec, skip, err := s.Convert(f)
		switch {
		case err != nil:
			return st, lineError(fmt.Errorf("converting %s flow: %w", s.Name, err))
		case skip != s.NotSkipped:
			st.Skipped[skip]++
			continue
		}
		st.Records++
		if err := fn(st.Lines, rec); err != nil {
			return st, lineError(err)
		}
	}
	if err := sc.Err(); err != nil {
		return st, flows.ScanError(source, st.Lines, err)
	}
	return st, nil
}
