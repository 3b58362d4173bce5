package hubble

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/netpol-guard/netpol-guard/flows"
)

// A hand-written decoder for the lines `hubble observe -o json` prints: an event wrapper
// holding a flow. It reads a line straight into the flowFacts Convert needs, without
// building a flowpb.Flow. It follows protojson as decodeLine calls it — field names by
// JSON or proto name, unknown fields skipped, a repeated field or two members of a oneof
// an error, null for "not set" — by walking the messages' descriptors, so every field it
// passes over is checked as protojson would check it. It does not decide what protojson
// would reject: on anything beyond the plain forms (an escaped string, a number in a
// string or with an exponent, an enum by number or by an unknown name, a map, a
// well-known type other than Timestamp and BoolValue, a line without a "flow"), it gives
// up and the line is decoded by decodeLine, which gives the same result or the error.
// FuzzReadJSON compares the two.

// maxInterned bounds the strings one decoder interns.
const maxInterned = 1 << 16

// fastDecoder decodes the lines of one ReadJSON.
type fastDecoder struct {
	s        []byte
	i        int
	facts    flowFacts
	isFlow   bool // a flow was read
	flowTime bool // with a time of its own
	evTime   time.Time
	fields   map[protoreflect.MessageDescriptor]*fieldTable
	enums    map[protoreflect.FullName]map[string]protoreflect.EnumNumber
	strs     map[string]string
	labelsOf podLabelCache
	labels   [2][]string
	stack    []byte // skip's open objects and arrays
}

func newFastDecoder() *fastDecoder {
	return &fastDecoder{
		fields:   map[protoreflect.MessageDescriptor]*fieldTable{},
		enums:    map[protoreflect.FullName]map[string]protoreflect.EnumNumber{},
		strs:     make(map[string]string, 1024),
		labelsOf: podLabelCache{},
	}
}

var (
	exportEventDesc = (&observerpb.ExportEvent{}).ProtoReflect().Descriptor()
	flowDesc        = (&flowpb.Flow{}).ProtoReflect().Descriptor()
)

// decode decodes one trimmed, non-empty line that holds an event wrapper with a flow into
// d.facts, or reports that it gave up.
func (d *fastDecoder) decode(line []byte) (ok bool) {
	d.s, d.i = line, 0
	d.facts = flowFacts{}
	d.isFlow, d.flowTime = false, false
	d.evTime = time.Time{}
	d.labels[0], d.labels[1] = d.labels[0][:0], d.labels[1][:0]
	if !d.message(exportEventDesc, d.event) || d.ws() != len(d.s) || !d.isFlow {
		return false
	}
	if !d.flowTime {
		d.facts.time = d.evTime
	}
	// The labels are Convert's to read, not to keep.
	d.facts.src.labels, d.facts.dst.labels = d.labels[0], d.labels[1]
	d.facts.podLabels = d.labelsOf
	return true
}

// A hook reads the value of a field it knows and says so (handled), or leaves it to the
// generic reading; ok is false to give up.
type hook func(fd protoreflect.FieldDescriptor) (handled, ok bool)

func (d *fastDecoder) event(fd protoreflect.FieldDescriptor) (bool, bool) {
	switch fd.Name() {
	case "flow":
		d.isFlow = true
		return true, d.message(flowDesc, d.flow)
	case "time":
		t, ok := d.timestamp()
		d.evTime = t
		return true, ok
	}
	return false, true
}

func (d *fastDecoder) flow(fd protoreflect.FieldDescriptor) (bool, bool) {
	f := &d.facts
	switch fd.Name() {
	case "time":
		t, ok := d.timestamp()
		f.time, d.flowTime = t, true
		return true, ok
	case "verdict":
		n, ok := d.enum(fd)
		f.verdict = flowpb.Verdict(n)
		return true, ok
	case "Type":
		n, ok := d.enum(fd)
		f.typ = flowpb.FlowType(n)
		return true, ok
	case "is_reply":
		f.hasIsReply = true
		return true, d.boolean(&f.isReply)
	case "reply":
		return true, d.boolean(&f.reply)
	case "IP":
		return true, d.message(fd.Message(), func(fd protoreflect.FieldDescriptor) (bool, bool) {
			switch fd.Name() {
			case "source":
				return true, d.strOnce(&f.srcIP)
			case "destination":
				return true, d.strOnce(&f.dstIP)
			}
			return false, true
		})
	case "l4":
		return true, d.message(fd.Message(), func(fd protoreflect.FieldDescriptor) (bool, bool) {
			var protocol string
			switch fd.Name() {
			case "TCP":
				protocol = flows.ProtocolTCP
			case "UDP":
				protocol = flows.ProtocolUDP
			case "SCTP":
				protocol = flows.ProtocolSCTP
			default:
				return false, true
			}
			f.protocol = protocol
			return true, d.message(fd.Message(), func(fd protoreflect.FieldDescriptor) (bool, bool) {
				if fd.Name() == "destination_port" {
					n, ok := d.integer(fd.Kind())
					f.port = uint32(n)
					return true, ok
				}
				return false, true
			})
		})
	case "source":
		return true, d.message(fd.Message(), d.endpoint(&f.src, 0))
	case "destination":
		return true, d.message(fd.Message(), d.endpoint(&f.dst, 1))
	}
	return false, true
}

func (d *fastDecoder) endpoint(e *endpointFacts, end int) hook {
	return func(fd protoreflect.FieldDescriptor) (bool, bool) {
		switch fd.Name() {
		case "namespace":
			return true, d.str(&e.namespace)
		case "pod_name":
			return true, d.strOnce(&e.podName)
		case "labels":
			return true, d.list(func() bool {
				var l string
				ok := d.str(&l)
				d.labels[end] = append(d.labels[end], l)
				return ok
			})
		case "workloads":
			return true, d.list(func() bool {
				var kind, name string
				ok := d.message(fd.Message(), func(fd protoreflect.FieldDescriptor) (bool, bool) {
					switch fd.Name() {
					case "kind":
						return true, d.str(&kind)
					case "name":
						return true, d.str(&name)
					}
					return false, true
				})
				if e.workload == "" && kind != "" && name != "" {
					e.workload = d.intern2(kind, name)
				}
				return ok
			})
		}
		return false, true
	}
}

// message reads an object of the message md, handing each field to h first.
func (d *fastDecoder) message(md protoreflect.MessageDescriptor, h hook) bool {
	if d.ws() >= len(d.s) || d.s[d.i] != '{' {
		return false
	}
	d.i++
	fields := d.fieldsOf(md)
	member := 0
	var seen [4]uint64 // field numbers below 256
	var seenHigh []protoreflect.FieldNumber
	var oneofs uint64
	if d.ws() < len(d.s) && d.s[d.i] == '}' {
		d.i++
		return true
	}
	for {
		key, ok := d.plainString()
		if !ok || d.ws() >= len(d.s) || d.s[d.i] != ':' {
			return false
		}
		d.i++
		d.ws()
		fd := fields.lookup(member, key)
		member++
		if fd == nil {
			if len(key) > 0 && key[0] == '[' { // an extension
				return false
			}
			if !d.skip() {
				return false
			}
		} else {
			if n := fd.Number(); n < 256 {
				if seen[n/64]&(1<<(n%64)) != 0 {
					return false
				}
				seen[n/64] |= 1 << (n % 64)
			} else {
				if slices.Contains(seenHigh, n) {
					return false
				}
				seenHigh = append(seenHigh, n)
			}
			switch {
			case d.null():
				if fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Value" ||
					fd.Enum() != nil && fd.Enum().FullName() == "google.protobuf.NullValue" {
					return false
				}
			case fd.IsMap():
				return false
			default:
				if od := fd.ContainingOneof(); od != nil && !fd.IsList() {
					if oneofs&(1<<od.Index()) != 0 || od.Index() >= 64 {
						return false
					}
					oneofs |= 1 << od.Index()
				}
				handled, ok := h(fd)
				if !ok {
					return false
				}
				if !handled && !d.field(fd) {
					return false
				}
			}
		}
		if d.ws() >= len(d.s) {
			return false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
			d.ws()
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// fieldTable finds the fields of a message by the names protojson takes for them.
type fieldTable struct {
	byName map[string]protoreflect.FieldDescriptor // JSON names first, then proto names
	// seen are the names and fields of the members of the last object read, by position:
	// the lines of one file name their fields in the same order.
	seen []namedField
}

type namedField struct {
	name string
	fd   protoreflect.FieldDescriptor
}

// lookup finds the field named key, the member'th of its object.
func (t *fieldTable) lookup(member int, key []byte) protoreflect.FieldDescriptor {
	if member < len(t.seen) && t.seen[member].name == string(key) {
		return t.seen[member].fd
	}
	fd := t.byName[string(key)]
	if member < 64 {
		nf := namedField{name: string(key), fd: fd}
		if member < len(t.seen) {
			t.seen[member] = nf
		} else if member == len(t.seen) {
			t.seen = append(t.seen, nf)
		}
	}
	return fd
}

// fieldsOf returns the fieldTable of md.
func (d *fastDecoder) fieldsOf(md protoreflect.MessageDescriptor) *fieldTable {
	if t, ok := d.fields[md]; ok {
		return t
	}
	fds := md.Fields()
	t := &fieldTable{byName: make(map[string]protoreflect.FieldDescriptor, 2*fds.Len())}
	for i := range fds.Len() {
		fd := fds.Get(i)
		t.byName[fd.TextName()] = fd
	}
	for i := range fds.Len() {
		fd := fds.Get(i)
		t.byName[fd.JSONName()] = fd
	}
	d.fields[md] = t
	return t
}

// field reads the value of a field no hook took, as protojson would, to check it.
func (d *fastDecoder) field(fd protoreflect.FieldDescriptor) bool {
	if fd.IsList() {
		return d.list(func() bool { return !d.null() && d.single(fd) })
	}
	return d.single(fd)
}

func (d *fastDecoder) single(fd protoreflect.FieldDescriptor) bool {
	switch fd.Kind() {
	case protoreflect.StringKind:
		_, ok := d.plainString()
		return ok
	case protoreflect.BoolKind:
		var b bool
		return d.boolean(&b)
	case protoreflect.EnumKind:
		_, ok := d.enum(fd)
		return ok
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		_, ok := d.integer(fd.Kind())
		return ok
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := fd.Message()
		switch name := md.FullName(); {
		case name == "google.protobuf.Timestamp":
			_, ok := d.timestamp()
			return ok
		case name == "google.protobuf.BoolValue":
			var b bool
			return d.boolean(&b)
		case strings.HasPrefix(string(name), "google.protobuf."):
			return false
		}
		return d.message(md, func(protoreflect.FieldDescriptor) (bool, bool) { return false, true })
	}
	return false // floats, bytes
}

// list reads an array, each element with elem.
func (d *fastDecoder) list(elem func() bool) bool {
	if d.ws() >= len(d.s) || d.s[d.i] != '[' {
		return false
	}
	d.i++
	if d.ws() < len(d.s) && d.s[d.i] == ']' {
		d.i++
		return true
	}
	for {
		if !elem() || d.ws() >= len(d.s) {
			return false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
			d.ws()
		case ']':
			d.i++
			return true
		default:
			return false
		}
	}
}

func (d *fastDecoder) ws() int {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
			continue
		}
		break
	}
	return d.i
}

func (d *fastDecoder) null() bool {
	if bytes.HasPrefix(d.s[d.i:], []byte("null")) && !isWordByte(d.s, d.i+4) {
		d.i += 4
		return true
	}
	return false
}

// isWordByte reports whether s[i] would continue a literal or number.
func isWordByte(s []byte, i int) bool {
	if i >= len(s) {
		return false
	}
	c := s[i]
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '+' || c == '_'
}

// plainString reads a string without escapes, in valid UTF-8.
func (d *fastDecoder) plainString() ([]byte, bool) {
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.s); {
		c := d.s[j]
		if plainASCII[c] {
			j++
			continue
		}
		switch {
		case c == '"':
			d.i = j + 1
			return d.s[start:j], true
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(d.s[j:])
			if r == utf8.RuneError && n == 1 {
				return nil, false
			}
			j += n
		default: // a control character, or an escape
			return nil, false
		}
	}
	return nil, false
}

// plainASCII are the bytes that stand for themselves in a JSON string.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (d *fastDecoder) str(dst *string) bool {
	b, ok := d.plainString()
	if ok {
		*dst = d.intern(b)
	}
	return ok
}

// strOnce reads a string seldom repeated (a pod name, an address), which is not interned.
func (d *fastDecoder) strOnce(dst *string) bool {
	b, ok := d.plainString()
	if ok {
		*dst = string(b)
	}
	return ok
}

func (d *fastDecoder) intern(b []byte) string {
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.strs) < maxInterned {
		d.strs[s] = s
	}
	return s
}

// intern2 is kind + "/" + name, interned.
func (d *fastDecoder) intern2(kind, name string) string {
	var buf [128]byte
	b := append(append(append(buf[:0], kind...), '/'), name...)
	return d.intern(b)
}

func (d *fastDecoder) boolean(dst *bool) bool {
	switch {
	case bytes.HasPrefix(d.s[d.i:], []byte("true")) && !isWordByte(d.s, d.i+4):
		*dst = true
		d.i += 4
	case bytes.HasPrefix(d.s[d.i:], []byte("false")) && !isWordByte(d.s, d.i+5):
		*dst = false
		d.i += 5
	default:
		return false
	}
	return true
}

// integer reads an integer in plain JSON form, within the range of kind.
func (d *fastDecoder) integer(kind protoreflect.Kind) (int64, bool) {
	start := d.i
	if d.i < len(d.s) && d.s[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.s) && '0' <= d.s[d.i] && d.s[d.i] <= '9' {
		d.i++
	}
	if d.i == digits || d.s[digits] == '0' && d.i > digits+1 || isWordByte(d.s, d.i) {
		return 0, false
	}
	num := string(d.s[start:d.i])
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(num, 10, 32)
		return n, err == nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(num, 10, 64)
		return n, err == nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(num, 10, 32)
		return int64(n), err == nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(num, 10, 63) // past that, it would not fit the result
		return int64(n), err == nil
	}
	return 0, false
}

// enum reads an enum value by one of its names.
func (d *fastDecoder) enum(fd protoreflect.FieldDescriptor) (protoreflect.EnumNumber, bool) {
	b, ok := d.plainString()
	if !ok {
		return 0, false
	}
	ed := fd.Enum()
	names, ok := d.enums[ed.FullName()]
	if !ok {
		vals := ed.Values()
		names = make(map[string]protoreflect.EnumNumber, vals.Len())
		for i := range vals.Len() {
			names[string(vals.Get(i).Name())] = vals.Get(i).Number()
		}
		d.enums[ed.FullName()] = names
	}
	n, ok := names[string(b)]
	return n, ok
}

// timestamp reads a google.protobuf.Timestamp as protojson does, and returns it as
// Convert takes it (convert.Time).
func (d *fastDecoder) timestamp() (time.Time, bool) {
	b, ok := d.plainString()
	if !ok {
		return time.Time{}, false
	}
	s := string(b)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	secs := t.Unix()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds {
		return time.Time{}, false
	}
	i := strings.LastIndexByte(s, '.')
	j := strings.LastIndexAny(s, "Z-+")
	if i >= 0 && j >= i && j-i > len(".999999999") {
		return time.Time{}, false
	}
	return time.Unix(secs, int64(t.Nanosecond())).UTC(), true
}

// The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// skip passes over a value of a field the message does not have, checking that it is JSON.
func (d *fastDecoder) skip() bool {
	open := d.stack[:0]
	defer func() { d.stack = open }()
	for {
		// A value starts here.
		if d.ws() >= len(d.s) {
			return false
		}
		switch c := d.s[d.i]; {
		case c == '{' || c == '[':
			if len(open) >= 64 {
				return false
			}
			open = append(open, c)
			d.i++
			if d.ws() < len(d.s) && (c == '{' && d.s[d.i] == '}' || c == '[' && d.s[d.i] == ']') {
				d.i++
				open = open[:len(open)-1]
				break
			}
			if c == '{' && !d.memberKey() {
				return false
			}
			continue
		case c == '"':
			if _, ok := d.plainString(); !ok {
				return false
			}
		case c == 't' || c == 'f':
			var b bool
			if !d.boolean(&b) {
				return false
			}
		case c == 'n':
			if !d.null() {
				return false
			}
		default:
			if !d.number() {
				return false
			}
		}
		// After a value: close what ends here, or go on to the next member or element.
		for {
			if len(open) == 0 {
				return true
			}
			if d.ws() >= len(d.s) {
				return false
			}
			top := open[len(open)-1]
			c := d.s[d.i]
			if top == '{' && c == '}' || top == '[' && c == ']' {
				d.i++
				open = open[:len(open)-1]
				continue
			}
			if c != ',' {
				return false
			}
			d.i++
			if top == '{' && !d.memberKey() {
				return false
			}
			break
		}
	}
}

// memberKey reads `"key" :`.
func (d *fastDecoder) memberKey() bool {
	d.ws()
	if _, ok := d.plainString(); !ok || d.ws() >= len(d.s) || d.s[d.i] != ':' {
		return false
	}
	d.i++
	return true
}

// number checks a JSON number.
func (d *fastDecoder) number() bool {
	s, i := d.s, d.i
	if i < len(s) && s[i] == '-' {
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
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		j := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	if isWordByte(s, i) {
		return false
	}
	d.i = i
	return true
}
