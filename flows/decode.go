package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/netpol-guard/netpol-guard/internal/jsonscan"
)

// The JSON Lines decoder reads a line in one pass with a hand-written scanner: a record has
// a fixed shape, so there is nothing to gain from a generic JSON value. What it does not
// know is an error at once (an unknown field, a value of the wrong kind), so it never needs
// to skip over a value. Errors are built only when they happen, with the messages
// encoding/json and the field paths gave before: a syntax error anywhere on the line comes
// first, as encoding/json reports it, then the first finding in field order, then what
// Record.Normalize finds.

// maxInterned bounds the strings one Read interns, so that a stream of distinct names
// cannot grow the table without end; past it, strings are allocated as they come.
const maxInterned = 1 << 16

// rawSlabBytes is the size of the slabs RawSrc and RawDst are cut from.
const rawSlabBytes = 32 << 10

// errSyntax says the scanner met something that is not JSON; the message is encoding/json's.
var errSyntax = errors.New("invalid JSON")

// lineDecoder decodes the lines of one Read. Records share its interned strings and the
// slabs their raw peers are cut from; nothing they hold is overwritten later.
type lineDecoder struct {
	sc   jsonscan.Scanner // over the line
	err  error            // a finding of a member reader, which returns false with it
	strs *jsonscan.Interner
	slab []byte
}

func newLineDecoder() *lineDecoder {
	return &lineDecoder{sc: jsonscan.Scanner{Unescape: true}, strs: jsonscan.NewInterner(maxInterned)}
}

// decode decodes one trimmed, non-empty line and normalises the record.
func (d *lineDecoder) decode(line []byte) (Record, error) {
	d.sc.Reset(line)
	d.err = nil
	rec, err := d.record()
	if err == nil {
		err = rec.Normalize()
	}
	if err != nil {
		// The syntax of the whole line is checked first: it gives the byte offset of a
		// syntax error and rejects anything after the object.
		if serr := syntaxError(line); serr != nil {
			return Record{}, serr
		}
		if errors.Is(err, errSyntax) { // the scanner and encoding/json disagree
			return Record{}, fmt.Errorf("invalid JSON near byte %d", d.sc.I)
		}
		return Record{}, err
	}
	return rec, nil
}

// syntaxError returns the error encoding/json finds in line, if any.
func syntaxError(line []byte) error {
	err := json.Unmarshal(line, new(json.RawMessage))
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// Fields of a record and of a peer, as bits of a set of those seen: the bit of the field
// named fieldNames[i] is 1<<i.
const (
	fieldSrc = 1 << iota
	fieldDst
	fieldPort
	fieldProtocol
	fieldLastSeen
	fieldCount
)

const (
	fieldNamespace = 1 << iota
	fieldPod
	fieldWorkload
	fieldIP
	fieldLabels
	fieldCIDR
)

var (
	recordFieldNames = []string{"src", "dst", "port", "protocol", "lastSeen", "count"}
	peerFieldNames   = []string{"namespace", "pod", "workload", "ip", "labels", "cidr"}
)

// fieldNamed finds key among names and returns its bit and name, or 0 when it is not there.
func fieldNamed(names []string, key []byte) (bit uint8, name string) {
	for i, name := range names {
		if name == string(key) {
			return 1 << i, name
		}
	}
	return 0, ""
}

// pathOf is the field path of key in parent, or of key at the top when parent is empty.
func pathOf(parent, key string) *field.Path {
	if parent == "" {
		return field.NewPath(key)
	}
	return field.NewPath(parent).Child(key)
}

func (d *lineDecoder) record() (Record, error) {
	var rec Record
	if c := d.sc.Peek(); c != '{' {
		return rec, fmt.Errorf("must be a JSON object, not %s", JSONKind(d.sc.S))
	}
	var seen uint8
	hasPort := false
	ok := d.sc.Object(func(key []byte) bool {
		bit, name := fieldNamed(recordFieldNames, key)
		if bit == 0 {
			return d.fail(fieldErrorf(field.NewPath(string(key)), "unknown field"))
		}
		if seen&bit != 0 {
			return d.fail(fieldErrorf(field.NewPath(name), "duplicate field"))
		}
		seen |= bit
		var err error
		switch bit {
		case fieldSrc:
			rec.Src, rec.RawSrc, err = d.peer(name)
		case fieldDst:
			rec.Dst, rec.RawDst, err = d.peer(name)
		case fieldPort:
			rec.Port, hasPort, err = d.port()
		case fieldProtocol:
			rec.Protocol, err = d.stringValue("", name)
		case fieldLastSeen:
			rec.LastSeen, err = d.lastSeen()
		case fieldCount:
			rec.Count, err = d.count()
		}
		return d.fail(err)
	})
	switch {
	case !ok:
		return rec, d.syntaxOr()
	case !d.sc.AtEnd():
		return rec, errSyntax
	case rec.RawSrc == nil:
		return rec, fieldErrorf(field.NewPath("src"), "required")
	case rec.RawDst == nil:
		return rec, fieldErrorf(field.NewPath("dst"), "required")
	case !hasPort:
		return rec, fieldErrorf(field.NewPath("port"), "required")
	}
	return rec, nil
}

// fail keeps err, if any, for syntaxOr, and returns whether there was none: what a member
// reader returns.
func (d *lineDecoder) fail(err error) bool {
	if err != nil && d.err == nil {
		d.err = err
	}
	return err == nil
}

// syntaxOr is the finding a member reader failed with, or else errSyntax.
func (d *lineDecoder) syntaxOr() error {
	if d.err != nil {
		return d.err
	}
	return errSyntax
}

// peer decodes the peer called name and returns it with a copy of its raw bytes; null is
// no peer.
func (d *lineDecoder) peer(name string) (p Peer, raw []byte, err error) {
	switch c := d.sc.Peek(); c {
	case 'n':
		return p, nil, d.null()
	case '{':
	default:
		return p, nil, fieldErrorf(field.NewPath(name), "must be an object, not %s", kindOf(c))
	}
	start := d.sc.I
	var seen uint8
	ok := d.sc.Object(func(key []byte) bool {
		bit, child := fieldNamed(peerFieldNames, key)
		if bit == 0 {
			return d.fail(fieldErrorf(pathOf(name, string(key)), "unknown field"))
		}
		if seen&bit != 0 {
			return d.fail(fieldErrorf(pathOf(name, child), "duplicate field"))
		}
		seen |= bit
		var err error
		switch bit {
		case fieldNamespace:
			p.Namespace, err = d.stringValue(name, child)
		case fieldPod:
			p.Pod, err = d.stringValue(name, child)
		case fieldWorkload:
			p.Workload, err = d.stringValue(name, child)
		case fieldIP:
			p.IP, err = d.stringValue(name, child)
		case fieldCIDR:
			p.CIDR, err = d.stringValue(name, child)
		case fieldLabels:
			p.Labels, err = d.labels(name)
		}
		return d.fail(err)
	})
	if !ok {
		return p, nil, d.syntaxOr()
	}
	return p, d.keep(d.sc.S[start:d.sc.I]), nil
}

// labels decodes the labels of peer; null is none.
func (d *lineDecoder) labels(peer string) (map[string]string, error) {
	switch c := d.sc.Peek(); c {
	case 'n':
		return nil, d.null()
	case '{':
	default:
		return nil, fieldErrorf(pathOf(peer, "labels"), "must be an object, not %s", kindOf(c))
	}
	var labels map[string]string
	ok := d.sc.Object(func(key []byte) bool {
		k := d.strs.Intern(key)
		if c := d.sc.Peek(); c != '"' {
			if _, dup := labels[k]; dup {
				return d.fail(fieldErrorf(pathOf(peer, "labels").Key(k), "duplicate field"))
			}
			return d.fail(fieldErrorf(pathOf(peer, "labels").Key(k), "must be a string, not %s", kindOf(c)))
		}
		v, ok := d.sc.String()
		if !ok {
			return false // a syntax error, which decode reports before any finding
		}
		if labels == nil {
			labels = make(map[string]string, 4)
		}
		n := len(labels)
		if labels[k] = d.strs.Intern(v); len(labels) == n {
			return d.fail(fieldErrorf(pathOf(peer, "labels").Key(k), "duplicate field"))
		}
		return true
	})
	if !ok {
		return nil, d.syntaxOr()
	}
	return labels, nil
}

// null reads a null, which the value's first byte promises.
func (d *lineDecoder) null() error {
	if !d.sc.Null() {
		return errSyntax
	}
	return nil
}

// str reads a string, which the value's first byte promises. The result aliases the line
// or the scanner's buffer.
func (d *lineDecoder) str() ([]byte, error) {
	b, ok := d.sc.String()
	if !ok {
		return nil, errSyntax
	}
	return b, nil
}

// stringValue decodes a string, interned; null is the empty string.
func (d *lineDecoder) stringValue(parent, key string) (string, error) {
	switch c := d.sc.Peek(); c {
	case 'n':
		return "", d.null()
	case '"':
		b, err := d.str()
		if err != nil {
			return "", err
		}
		return d.strs.Intern(b), nil
	default:
		return "", fieldErrorf(pathOf(parent, key), "must be a string, not %s", kindOf(c))
	}
}

func (d *lineDecoder) lastSeen() (time.Time, error) {
	switch c := d.sc.Peek(); c {
	case 'n':
		return time.Time{}, d.null()
	case '"':
	default:
		return time.Time{}, fieldErrorf(field.NewPath("lastSeen"), "must be a string, not %s", kindOf(c))
	}
	b, err := d.str()
	if err != nil || len(b) == 0 {
		return time.Time{}, err
	}
	if t, ok := jsonscan.ParseTime(b); ok {
		return t, nil
	}
	s := string(b)
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fieldErrorf(field.NewPath("lastSeen"), "invalid time %q: must be RFC 3339, e.g. 2026-11-20T10:00:00Z", s)
	}
	return t, nil
}

// port decodes an integer in 1..65535. null is absent: ok is false.
func (d *lineDecoder) port() (port int32, ok bool, err error) {
	num, integer, err := d.numberValue("port", "integer")
	switch {
	case err != nil || num == nil:
		return 0, false, err
	case !integer:
		return 0, false, fieldErrorf(field.NewPath("port"), "must be an integer, got %s", num)
	}
	if n, ok := jsonscan.Digits(num); ok && num[0] != '-' && n >= 1 && n <= 65535 {
		return int32(n), true, nil
	}
	return 0, false, fieldErrorf(field.NewPath("port"), "must be between 1 and 65535, got %s", num)
}

// count decodes a non-negative integer; null is 0.
func (d *lineDecoder) count() (uint64, error) {
	num, integer, err := d.numberValue("count", "integer")
	switch {
	case err != nil || num == nil:
		return 0, err
	case !integer:
		return 0, fieldErrorf(field.NewPath("count"), "must be an integer, got %s", num)
	case num[0] == '-':
		if string(num) == "-0" {
			return 0, nil
		}
		return 0, fieldErrorf(field.NewPath("count"), "must not be negative, got %s", num)
	}
	n, ok := jsonscan.Digits(num)
	if !ok {
		return 0, fieldErrorf(field.NewPath("count"), "out of range, got %s", num)
	}
	return n, nil
}

// numberValue reads a number and says whether it is an integer (no fraction, no exponent);
// null is a nil num.
func (d *lineDecoder) numberValue(key, want string) (num []byte, integer bool, err error) {
	switch c := d.sc.Peek(); {
	case c == 'n':
		return nil, false, d.null()
	case c != '-' && (c < '0' || c > '9'):
		return nil, false, fieldErrorf(field.NewPath(key), "must be an %s, not %s", want, kindOf(c))
	}
	num, integer, ok := d.sc.Number()
	if !ok {
		return nil, false, errSyntax
	}
	return num, integer, nil
}

// keep copies b to the current slab, capped so that appending to it cannot reach the next.
func (d *lineDecoder) keep(b []byte) []byte {
	if len(b) > rawSlabBytes/8 {
		return append([]byte(nil), b...)
	}
	if cap(d.slab)-len(d.slab) < len(b) {
		d.slab = make([]byte, 0, rawSlabBytes)
	}
	n := len(d.slab)
	d.slab = append(d.slab, b...)
	return d.slab[n:len(d.slab):len(d.slab)]
}

// kindOf names the kind of the JSON value that starts with c, as JSONKind does.
func kindOf(c byte) string {
	return JSONKind([]byte{c})
}
