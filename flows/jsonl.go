package flows

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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
	return read(r, source, func(line int, _ int64, rec Record) error { return fn(line, rec) })
}

// read reads as Read does, and also tells fn how many bytes of r the lines up to this
// one took.
func read(r io.Reader, source string, fn func(line int, read int64, rec Record) error) error {
	sc := bufio.NewScanner(r)
	// Room for a MaxLineBytes line plus "\r\n"; longer lines are caught below or by the
	// scanner's ErrTooLong.
	sc.Buffer(make([]byte, 0, 64*1024), MaxLineBytes+2)
	d := newLineDecoder()
	line := 0
	var n int64
	for sc.Scan() {
		line++
		b := sc.Bytes()
		n += int64(len(b)) + 1
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
		if err := fn(line, n, rec); err != nil {
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
	// Records are large: growing the slice by append would copy a large file's records
	// several times over. When r can say how many bytes it holds, the slice is made
	// for as many records as they hold at the rate of the first thousand, with a margin;
	// otherwise it doubles.
	size := bytesLeft(r)
	var recs []Record
	err := read(r, source, func(_ int, read int64, rec Record) error {
		if len(recs) == cap(recs) {
			n := max(2*cap(recs), 64)
			if len(recs) >= 1024 && size > read {
				n = len(recs) + int(float64(len(recs))*float64(size-read)/float64(read)*1.05) + 64
			}
			recs = append(make([]Record, 0, n), recs...)
		}
		recs = append(recs, rec)
		return nil
	})
	if len(recs) == 0 {
		return nil, err
	}
	return recs, err
}

// bytesLeft is how many bytes are left to read in r, or -1 when r does not say.
func bytesLeft(r io.Reader) int64 {
	switch r := r.(type) {
	case interface{ Len() int }: // bytes.Reader, bytes.Buffer, strings.Reader
		return int64(r.Len())
	case *os.File:
		info, err := r.Stat()
		if err != nil || !info.Mode().IsRegular() {
			return -1
		}
		at, err := r.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return info.Size() - at
	}
	return -1
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
