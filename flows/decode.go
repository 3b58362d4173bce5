package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation/field"
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
	s    []byte // the line
	i    int    // read position in s
	strs map[string]string
	buf  []byte // an unescaped string, valid until the next one
	slab []byte
}

func newLineDecoder() *lineDecoder {
	return &lineDecoder{strs: make(map[string]string, 1024)}
}

// decode decodes one trimmed, non-empty line and normalises the record.
func (d *lineDecoder) decode(line []byte) (Record, error) {
	d.s, d.i = line, 0
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
			return Record{}, fmt.Errorf("invalid JSON near byte %d", d.i)
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

// Fields of a record and of a peer, as bits of a set of those seen.
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

func recordField(key []byte) (bit uint8, name string) {
	switch string(key) {
	case "src":
		return fieldSrc, "src"
	case "dst":
		return fieldDst, "dst"
	case "port":
		return fieldPort, "port"
	case "protocol":
		return fieldProtocol, "protocol"
	case "lastSeen":
		return fieldLastSeen, "lastSeen"
	case "count":
		return fieldCount, "count"
	}
	return 0, ""
}

func peerField(key []byte) (bit uint8, name string) {
	switch string(key) {
	case "namespace":
		return fieldNamespace, "namespace"
	case "pod":
		return fieldPod, "pod"
	case "workload":
		return fieldWorkload, "workload"
	case "ip":
		return fieldIP, "ip"
	case "labels":
		return fieldLabels, "labels"
	case "cidr":
		return fieldCIDR, "cidr"
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
	d.ws()
	if d.i >= len(d.s) || d.s[d.i] != '{' {
		return rec, fmt.Errorf("must be a JSON object, not %s", JSONKind(d.s))
	}
	d.i++
	var seen uint8
	hasPort := false
	for first := true; ; first = false {
		key, ok, err := d.next(first)
		if err != nil {
			return rec, err
		}
		if !ok {
			break
		}
		bit, name := recordField(key)
		if bit == 0 {
			return rec, fieldErrorf(field.NewPath(string(key)), "unknown field")
		}
		if seen&bit != 0 {
			return rec, fieldErrorf(field.NewPath(name), "duplicate field")
		}
		seen |= bit
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
		if err != nil {
			return rec, err
		}
	}
	d.ws()
	switch {
	case d.i != len(d.s):
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

// peer decodes the peer called name and returns it with a copy of its raw bytes; null is
// no peer.
func (d *lineDecoder) peer(name string) (p Peer, raw []byte, err error) {
	start := d.i
	switch c := d.s[d.i]; c {
	case 'n':
		return p, nil, d.literal("null")
	case '{':
	default:
		return p, nil, fieldErrorf(field.NewPath(name), "must be an object, not %s", kindOf(c))
	}
	d.i++
	var seen uint8
	for first := true; ; first = false {
		key, ok, err := d.next(first)
		if err != nil {
			return p, nil, err
		}
		if !ok {
			break
		}
		bit, child := peerField(key)
		if bit == 0 {
			return p, nil, fieldErrorf(pathOf(name, string(key)), "unknown field")
		}
		if seen&bit != 0 {
			return p, nil, fieldErrorf(pathOf(name, child), "duplicate field")
		}
		seen |= bit
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
		if err != nil {
			return p, nil, err
		}
	}
	return p, d.keep(d.s[start:d.i]), nil
}

// labels decodes the labels of peer; null is none.
func (d *lineDecoder) labels(peer string) (map[string]string, error) {
	switch c := d.s[d.i]; c {
	case 'n':
		return nil, d.literal("null")
	case '{':
	default:
		return nil, fieldErrorf(pathOf(peer, "labels"), "must be an object, not %s", kindOf(c))
	}
	d.i++
	var labels map[string]string
	for first := true; ; first = false {
		key, ok, err := d.next(first)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		k := d.intern(key)
		if _, dup := labels[k]; dup {
			return nil, fieldErrorf(pathOf(peer, "labels").Key(k), "duplicate field")
		}
		if c := d.s[d.i]; c != '"' {
			return nil, fieldErrorf(pathOf(peer, "labels").Key(k), "must be a string, not %s", kindOf(c))
		}
		v, err := d.str()
		if err != nil {
			return nil, err
		}
		if labels == nil {
			labels = make(map[string]string, 4)
		}
		labels[k] = d.intern(v)
	}
	return labels, nil
}

// stringValue decodes a string, interned; null is the empty string.
func (d *lineDecoder) stringValue(parent, key string) (string, error) {
	switch c := d.s[d.i]; c {
	case 'n':
		return "", d.literal("null")
	case '"':
		b, err := d.str()
		if err != nil {
			return "", err
		}
		return d.intern(b), nil
	default:
		return "", fieldErrorf(pathOf(parent, key), "must be a string, not %s", kindOf(c))
	}
}

func (d *lineDecoder) lastSeen() (time.Time, error) {
	switch c := d.s[d.i]; c {
	case 'n':
		return time.Time{}, d.literal("null")
	case '"':
	default:
		return time.Time{}, fieldErrorf(field.NewPath("lastSeen"), "must be a string, not %s", kindOf(c))
	}
	b, err := d.str()
	if err != nil || len(b) == 0 {
		return time.Time{}, err
	}
	if t, ok := parseRFC3339(b); ok {
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
	if n, ok := parseDigits(num); ok && num[0] != '-' && n >= 1 && n <= 65535 {
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
	n, ok := parseDigits(num)
	if !ok {
		return 0, fieldErrorf(field.NewPath("count"), "out of range, got %s", num)
	}
	return n, nil
}

// parseDigits parses the decimal digits of an integer's text, after its sign; ok is false
// when the value does not fit in a uint64.
func parseDigits(num []byte) (n uint64, ok bool) {
	if num[0] == '-' {
		num = num[1:]
	}
	for _, c := range num {
		if n > (1<<64-1)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n < uint64(c-'0') {
			return 0, false
		}
	}
	return n, true
}

// numberValue reads a number and says whether it is an integer (no fraction, no exponent);
// null is a nil num.
func (d *lineDecoder) numberValue(key, want string) (num []byte, integer bool, err error) {
	c := d.s[d.i]
	switch {
	case c == 'n':
		return nil, false, d.literal("null")
	case c != '-' && (c < '0' || c > '9'):
		return nil, false, fieldErrorf(field.NewPath(key), "must be an %s, not %s", want, kindOf(c))
	}
	s, start := d.s, d.i
	i := start
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return nil, false, errSyntax
	}
	integer = true
	if i < len(s) && s[i] == '.' {
		integer = false
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return nil, false, errSyntax
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		integer = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return nil, false, errSyntax
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	d.i = i
	return s[start:i], integer, nil
}

// next moves to the next member of an object whose '{' has been read, returning its key
// with the position at its value, or ok false past the closing '}'. The key is valid until
// the next string is read.
func (d *lineDecoder) next(first bool) (key []byte, ok bool, err error) {
	d.ws()
	if d.i >= len(d.s) {
		return nil, false, errSyntax
	}
	switch c := d.s[d.i]; {
	case c == '}' && first:
		d.i++
		return nil, false, nil
	case first:
	case c == '}':
		d.i++
		return nil, false, nil
	case c == ',':
		d.i++
		d.ws()
	default:
		return nil, false, errSyntax
	}
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return nil, false, errSyntax
	}
	if key, err = d.str(); err != nil {
		return nil, false, err
	}
	d.ws()
	if d.i >= len(d.s) || d.s[d.i] != ':' {
		return nil, false, errSyntax
	}
	d.i++
	d.ws()
	if d.i >= len(d.s) {
		return nil, false, errSyntax
	}
	return key, true, nil
}

func (d *lineDecoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

func (d *lineDecoder) literal(lit string) error {
	if len(d.s)-d.i < len(lit) || string(d.s[d.i:d.i+len(lit)]) != lit {
		return errSyntax
	}
	d.i += len(lit)
	return nil
}

// str reads the string at the position, which is at its opening quote, and returns it
// unescaped as encoding/json would, invalid UTF-8 turned into U+FFFD. The result aliases
// the line or the decoder's buffer.
func (d *lineDecoder) str() ([]byte, error) {
	start := d.i + 1
	for j := start; j < len(d.s); j++ {
		switch c := d.s[j]; {
		case c == '"':
			d.i = j + 1
			return d.s[start:j], nil
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return d.strSlow(start, j)
		}
	}
	return nil, errSyntax
}

// strSlow goes on from str at j, where the first byte that needs a look is.
func (d *lineDecoder) strSlow(start, j int) ([]byte, error) {
	s := d.s
	b := append(d.buf[:0], s[start:j]...)
	for j < len(s) {
		switch c := s[j]; {
		case c == '"':
			d.i, d.buf = j+1, b
			return b, nil
		case c < 0x20:
			return nil, errSyntax
		case c == '\\':
			if j+1 >= len(s) {
				return nil, errSyntax
			}
			switch e := s[j+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := hex4(s[j:])
				if r < 0 {
					return nil, errSyntax
				}
				j += 6
				if utf16.IsSurrogate(r) {
					if dec := utf16.DecodeRune(r, hex4(s[j:])); dec != unicode.ReplacementChar {
						j += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					r = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				return nil, errSyntax
			}
			j += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			j++
		default:
			r, size := utf8.DecodeRune(s[j:])
			b = utf8.AppendRune(b, r)
			j += size
		}
	}
	return nil, errSyntax
}

// hex4 decodes `\uXXXX` at the start of s, or returns -1.
func hex4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// intern returns b as a string, the same string for the same bytes.
func (d *lineDecoder) intern(b []byte) string {
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.strs) < maxInterned {
		d.strs[s] = s
	}
	return s
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

// parseRFC3339 parses what time.Parse(time.RFC3339, …) parses on its fast path, without
// allocating, and returns it in UTC; ok is false for anything else, which time.Parse must
// then judge.
func parseRFC3339(s []byte) (t time.Time, ok bool) {
	ok = true
	num := func(s []byte, lo, hi int) int {
		x := 0
		for _, c := range s {
			if c < '0' || '9' < c {
				ok = false
				return lo
			}
			x = x*10 + int(c-'0')
		}
		if x < lo || hi < x {
			ok = false
			return lo
		}
		return x
	}
	if len(s) < len("2006-01-02T15:04:05") {
		return time.Time{}, false
	}
	year := num(s[0:4], 0, 9999)
	month := num(s[5:7], 1, 12)
	day := num(s[8:10], 1, daysIn(time.Month(month), year))
	hour := num(s[11:13], 0, 23)
	minute := num(s[14:16], 0, 59)
	sec := num(s[17:19], 0, 59)
	if !ok || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	s = s[19:]
	nsec := 0
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		n := 1
		for ; n < len(s) && '0' <= s[n] && s[n] <= '9'; n++ {
			if n <= 9 {
				nsec = nsec*10 + int(s[n]-'0')
			}
		}
		for k := n; k <= 9; k++ {
			nsec *= 10
		}
		s = s[n:]
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if len(s) == 1 && s[0] == 'Z' {
		return t, true
	}
	if len(s) != len("-07:00") {
		return time.Time{}, false
	}
	hr := num(s[1:3], 0, 23)
	mm := num(s[4:6], 0, 59)
	if !ok || (s[0] != '-' && s[0] != '+') || s[3] != ':' {
		return time.Time{}, false
	}
	offset := time.Duration(hr*60+mm) * time.Minute
	if s[0] == '-' {
		offset = -offset
	}
	return t.Add(-offset), true
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int((m-1)%7%2)
}
