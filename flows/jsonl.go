package flows

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
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
		rec, err := decodeRecord(b)
		if err != nil {
			return lineError(source, line, err)
		}
		if err := fn(line, rec); err != nil {
			return &LineError{Source: source, Line: line, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &LineError{Source: source, Line: line + 1, Err: fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, MaxLineBytes)}
		}
		return &LineError{Source: source, Line: line + 1, Err: fmt.Errorf("reading: %w", err)}
	}
	return nil
}

// ReadAll reads every record from r as Read does. On error it returns the records read
// before the bad line together with the *LineError.
func ReadAll(r io.Reader, source string) ([]Record, error) {
	var recs []Record
	err := Read(r, source, func(_ int, rec Record) error {
		recs = append(recs, rec)
		return nil
	})
	return recs, err
}

func lineError(source string, line int, err error) *LineError {
	if fe, ok := errors.AsType[*fieldError](err); ok {
		return &LineError{Source: source, Line: line, Field: fe.path.String(), Err: fe.err}
	}
	return &LineError{Source: source, Line: line, Err: err}
}

// decodeRecord decodes one trimmed, non-empty line and normalises the record.
func decodeRecord(line []byte) (Record, error) {
	// Check the syntax of the whole line first: it gives the byte offset of a syntax
	// error and rejects anything after the object.
	if err := json.Unmarshal(line, new(json.RawMessage)); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return Record{}, fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
		}
		return Record{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if line[0] != '{' {
		return Record{}, fmt.Errorf("must be a JSON object, not %s", JSONKind(line))
	}

	var rec Record
	var hasPort bool
	err := decodeObject(line, topLevel, func(key string, path *field.Path, v json.RawMessage) error {
		var err error
		switch key {
		case "src":
			if isNull(v) {
				return nil
			}
			rec.Src, err = decodePeer(v, path)
			rec.RawSrc = v
		case "dst":
			if isNull(v) {
				return nil
			}
			rec.Dst, err = decodePeer(v, path)
			rec.RawDst = v
		case "port":
			rec.Port, hasPort, err = decodePort(v, path)
		case "protocol":
			rec.Protocol, err = decodeString(v, path)
		case "lastSeen":
			var s string
			if s, err = decodeString(v, path); err == nil && s != "" {
				if rec.LastSeen, err = time.Parse(time.RFC3339, s); err != nil {
					err = fieldErrorf(path, "invalid time %q: must be RFC 3339, e.g. 2026-11-20T10:00:00Z", s)
				}
			}
		case "count":
			rec.Count, err = decodeCount(v, path)
		default:
			err = fieldErrorf(path, "unknown field")
		}
		return err
	})
	switch {
	case err != nil:
		return Record{}, err
	case rec.RawSrc == nil:
		return Record{}, fieldErrorf(field.NewPath("src"), "required")
	case rec.RawDst == nil:
		return Record{}, fieldErrorf(field.NewPath("dst"), "required")
	case !hasPort:
		return Record{}, fieldErrorf(field.NewPath("port"), "required")
	}
	if err := rec.Normalize(); err != nil {
		return Record{}, err
	}
	return rec, nil
}

func topLevel(key string) *field.Path { return field.NewPath(key) }

func decodePeer(v json.RawMessage, path *field.Path) (Peer, error) {
	var p Peer
	if v[0] != '{' {
		return p, fieldErrorf(path, "must be an object, not %s", JSONKind(v))
	}
	err := decodeObject(v, func(k string) *field.Path { return path.Child(k) }, func(key string, path *field.Path, v json.RawMessage) error {
		var err error
		switch key {
		case "namespace":
			p.Namespace, err = decodeString(v, path)
		case "pod":
			p.Pod, err = decodeString(v, path)
		case "workload":
			p.Workload, err = decodeString(v, path)
		case "ip":
			p.IP, err = decodeString(v, path)
		case "labels":
			p.Labels, err = decodeLabels(v, path)
		default:
			err = fieldErrorf(path, "unknown field")
		}
		return err
	})
	return p, err
}

func decodeLabels(v json.RawMessage, path *field.Path) (map[string]string, error) {
	if isNull(v) {
		return nil, nil
	}
	if v[0] != '{' {
		return nil, fieldErrorf(path, "must be an object, not %s", JSONKind(v))
	}
	labels := map[string]string{}
	err := decodeObject(v, path.Key, func(key string, path *field.Path, v json.RawMessage) error {
		if v[0] != '"' {
			return fieldErrorf(path, "must be a string, not %s", JSONKind(v))
		}
		s, err := decodeString(v, path)
		labels[key] = s
		return err
	})
	return labels, err
}

// decodeObject walks the members of the JSON object data (known to be syntactically
// valid) in order, calling set with each key, its field path and its exact value bytes.
// A key given twice is an error.
func decodeObject(data []byte, child func(key string) *field.Path, set func(key string, path *field.Path, v json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '{'
		return fmt.Errorf("decoding object: %w", err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("decoding object key: %w", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("decoding value of %q: %w", key, err)
		}
		path := child(key)
		if seen[key] {
			return fieldErrorf(path, "duplicate field")
		}
		seen[key] = true
		if err := set(key, path, v); err != nil {
			return err
		}
	}
	return nil
}

// decodeString decodes a JSON string; null is the empty string.
func decodeString(v json.RawMessage, path *field.Path) (string, error) {
	if isNull(v) {
		return "", nil
	}
	if v[0] != '"' {
		return "", fieldErrorf(path, "must be a string, not %s", JSONKind(v))
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", &fieldError{path: path, err: err}
	}
	return s, nil
}

// decodePort decodes a JSON integer in 1..65535. null is absent: ok is false.
func decodePort(v json.RawMessage, path *field.Path) (port int32, ok bool, err error) {
	if isNull(v) {
		return 0, false, nil
	}
	if k := JSONKind(v); k != "number" {
		return 0, false, fieldErrorf(path, "must be an integer, not %s", k)
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrSyntax):
		return 0, false, fieldErrorf(path, "must be an integer, got %s", v)
	case err != nil || n < 1 || n > 65535:
		return 0, false, fieldErrorf(path, "must be between 1 and 65535, got %s", v)
	}
	return int32(n), true, nil
}

// decodeCount decodes a non-negative JSON integer; null is 0.
func decodeCount(v json.RawMessage, path *field.Path) (uint64, error) {
	if isNull(v) {
		return 0, nil
	}
	if k := JSONKind(v); k != "number" {
		return 0, fieldErrorf(path, "must be an integer, not %s", k)
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err == nil {
		return n, nil
	}
	if errors.Is(err, strconv.ErrRange) {
		return 0, fieldErrorf(path, "out of range, got %s", v)
	}
	// ParseUint rejects any sign; tell a negative integer from a non-integer.
	switch i, ierr := strconv.ParseInt(string(v), 10, 64); {
	case ierr == nil && i == 0: // "-0"
		return 0, nil
	case ierr == nil || errors.Is(ierr, strconv.ErrRange):
		return 0, fieldErrorf(path, "must not be negative, got %s", v)
	}
	return 0, fieldErrorf(path, "must be an integer, got %s", v)
}

func isNull(v json.RawMessage) bool { return string(v) == "null" }

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
