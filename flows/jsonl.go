package flows

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// MaxLineBytes is the longest line Read accepts, not counting the line ending.
const MaxLineBytes = 1 << 20

// ErrLineTooLong is wrapped by the LineError Read returns for a line longer than
// MaxLineBytes.
var ErrLineTooLong = errors.New("line too long")

// LineError is the error Read returns: what went wrong, on which line of which source, and
// in which field of the record when it is about one field.
type LineError struct {
	Source string // as passed to Read, e.g. a file name
	Line   int    // 1-based
	Field  string // field path such as "src.ip" or "src.labels[app]"; empty for the whole line
	Err    error
}

// Error reads "source:line: field: msg", e.g. `flows.jsonl:12: src.ip: invalid IP address "10.0.0.300"`.
func (e *LineError) Error() string {
	var b bytes.Buffer
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteByte(':')
	} else {
		b.WriteString("line ")
	}
	b.WriteString(strconv.Itoa(e.Line))
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

var utf8BOM = []byte("\uFEFF")

// Read streams flow records from r, one JSON object a line (JSON Lines), and calls fn with
// each record and its 1-based line number. Blank lines and lines whose first non-blank
// character is '#' are skipped; a UTF-8 byte order mark before the first line is ignored.
//
// Each line is decoded strictly: field names must match exactly, and unknown or repeated
// fields are errors. The record is then checked and normalised by Record.Normalize, and
// RawSrc and RawDst are set to the exact bytes of the src and dst values on the line.
//
// Read stops at the first bad line, at the first error from fn, or at a read error, and
// returns it as a *LineError naming source and line. It returns nil at the end of r.
func Read(r io.Reader, source string, fn func(line int, rec Record) error) error {
	sc := bufio.NewScanner(r)
	// Room for a MaxLineBytes line plus "\r\n"; longer lines are caught below or by the
	// scanner's ErrTooLong.
	sc.Buffer(make([]byte, 0, 64*1024), MaxLineBytes+2)
	d := newLineDecoder()
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if line == 1 {
			b = bytes.TrimPrefix(b, utf8BOM)
		}
		if len(b) > MaxLineBytes {
			return &LineError{Source: source, Line: line, Err: fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, MaxLineBytes)}
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		rec, err := d.decode(b)
		if err != nil {
			return lineError(source, line, err)
		}
		if err := fn(line, rec); err != nil {
			return &LineError{Source: source, Line: line, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		return ScanError(source, line, err)
	}
	return nil
}

// ScanError is the *LineError of a bufio.Scanner's error after lines lines were read: the
// next line is longer than MaxLineBytes, or could not be read. Every JSON Lines reader of
// flows (ours, Hubble's, Goldmane's) names it alike.
func ScanError(source string, lines int, err error) *LineError {
	if errors.Is(err, bufio.ErrTooLong) {
		return &LineError{Source: source, Line: lines + 1, Err: fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, MaxLineBytes)}
	}
	return &LineError{Source: source, Line: lines + 1, Err: fmt.Errorf("reading: %w", err)}
}

// DecodeObject decodes a line that must hold one JSON object into its members, with the
// messages the flow readers give: where the syntax breaks, or what the line holds instead.
func DecodeObject(b []byte) (map[string]json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return nil, fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
		}
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return nil, fmt.Errorf("must be a JSON object, not %s", JSONKind(b))
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if top == nil { // null
		return nil, fmt.Errorf("must be a JSON object, not %s", JSONKind(b))
	}
	return top, nil
}

// ReadAll reads every record from r as Read does. On error it returns the records read
// before the bad line together with the *LineError.
func ReadAll(r io.Reader, source string) ([]Record, error) {
	// Records are gathered in chunks and copied once into a slice of the right length:
	// growing one slice by append would copy a large file's records several times over.
	const chunkLen = 4096
	var chunks [][]Record
	chunk := make([]Record, 0, 64)
	n := 0
	err := Read(r, source, func(_ int, rec Record) error {
		if len(chunk) == cap(chunk) {
			chunks = append(chunks, chunk)
			chunk = make([]Record, 0, min(2*cap(chunk), chunkLen))
		}
		chunk = append(chunk, rec)
		n++
		return nil
	})
	if n == 0 {
		return nil, err
	}
	if len(chunks) == 0 {
		return chunk, err
	}
	recs := make([]Record, 0, n)
	for _, c := range chunks {
		recs = append(recs, c...)
	}
	return append(recs, chunk...), err
}

func lineError(source string, line int, err error) *LineError {
	if fe, ok := errors.AsType[*fieldError](err); ok {
		return &LineError{Source: source, Line: line, Field: fe.path.String(), Err: fe.err}
	}
	return &LineError{Source: source, Line: line, Err: err}
}

// JSONKind names the kind of a JSON value by its first byte, for error messages: object,
// array, string, boolean, null, number, or nothing for blank input.
func JSONKind(v []byte) string {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// Writer writes flow records as JSON Lines that Read reads back: one compact object a line,
// empty fields omitted. It is not safe for concurrent use.
type Writer struct {
	enc *json.Encoder
	n   int
}

// NewWriter returns a Writer that writes to w. Each record is written with a single Write
// call on w; wrap w in a bufio.Writer for many small records.
func NewWriter(w io.Writer) *Writer {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Writer{enc: enc}
}

// Write normalises a copy of rec (see Record.Normalize) and writes it as one line. An
// invalid record is not written: the error names the record (counting from 1 over the
// Writer's life) and the field. RawSrc and RawDst are not written; Src and Dst are.
func (w *Writer) Write(rec Record) error {
	w.n++
	if err := rec.Normalize(); err != nil {
		return fmt.Errorf("invalid flow record %d: %w", w.n, err)
	}
	if err := w.enc.Encode(rec); err != nil {
		return fmt.Errorf("writing flow record %d: %w", w.n, err)
	}
	return nil
}

// Write writes recs to w as JSON Lines, one a line, stopping at the first error. See
// Writer.Write.
func Write(w io.Writer, recs ...Record) error {
	fw := NewWriter(w)
	for _, rec := range recs {
		if err := fw.Write(rec); err != nil {
			return err
		}
	}
	return nil
}
