package hubble

import (
	"bytes"
	"strings"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/jsonscan"
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

// The decoder reads a message by a table made once per message and role (see table): for
// each field, the kind of value protojson takes and what the decoder keeps of it. A value
// it does not keep is checked by its kind, and one of a field the message does not have is
// passed over by jsonscan's checking byte scan.

// maxInterned bounds the strings one decoder interns.
const maxInterned = 1 << 16

// maxSkipDepth is how deep an unknown value may nest before the decoder gives up on it.
const maxSkipDepth = 64

// fastDecoder decodes the lines of one ReadJSON.
type fastDecoder struct {
	sc       jsonscan.Scanner // plain strings only
	facts    flowFacts
	isFlow   bool // a flow was read
	flowTime bool // with a time of its own
	evTime   time.Time
	// What the line gives of the strings that Convert keeps and that seldom repeat (pod
	// names and addresses), aliasing the line: they are made into strings together.
	podName, ip [2][]byte
	kind, name  []byte // of the workload being read
	strBuf      []byte
	tables      map[tableKey]*table
	enums       map[protoreflect.FullName]map[string]enumValue
	strs        *jsonscan.Interner
	// What Convert makes of an endpoint's labels and workloads, by the bytes of the list:
	// the lines of a file name the same endpoints again and again.
	labelSets listCache[endpointLabels]
	workloads listCache[string]
	labelsOf  podLabelCache
	labels    []string    // of the endpoint being read, when its labels are not in labelSets
	times     [2]readTime // the last event's and flow's (see timestamp)
	event     *table
}

// readTime is a time as it was written and as it was read.
type readTime struct {
	text []byte
	t    time.Time
}

func newFastDecoder() *fastDecoder {
	d := &fastDecoder{
		tables:   map[tableKey]*table{},
		enums:    map[protoreflect.FullName]map[string]enumValue{},
		strs:     jsonscan.NewInterner(maxInterned),
		labelsOf: podLabelCache{},
	}
	d.event = d.table(exportEventDesc, roleEvent)
	return d
}

var (
	exportEventDesc = (&observerpb.ExportEvent{}).ProtoReflect().Descriptor()
	flowDesc        = (&flowpb.Flow{}).ProtoReflect().Descriptor()
)

// decode decodes one trimmed, non-empty line that holds an event wrapper with a flow into
// d.facts, or reports that it gave up.
func (d *fastDecoder) decode(line []byte) (ok bool) {
	d.sc.Reset(line)
	d.facts = flowFacts{}
	d.isFlow, d.flowTime = false, false
	d.evTime = time.Time{}
	d.podName, d.ip = [2][]byte{}, [2][]byte{}
	if !d.message(d.event) || !d.sc.AtEnd() || !d.isFlow {
		return false
	}
	if !d.flowTime {
		d.facts.time = d.evTime
	}
	// One string for the four, which a record keeps together.
	b := append(append(append(append(d.strBuf[:0], d.podName[0]...), d.podName[1]...), d.ip[0]...), d.ip[1]...)
	d.strBuf = b
	all := string(b)
	cut := func(n int) string {
		s := all[:n]
		all = all[n:]
		return s
	}
	d.facts.src.podName, d.facts.dst.podName = cut(len(d.podName[0])), cut(len(d.podName[1]))
	d.facts.srcIP, d.facts.dstIP = cut(len(d.ip[0])), cut(len(d.ip[1]))
	return true
}

// A role is what a message is read for, which decides what the decoder keeps of its fields.
type role uint8

const (
	roleChecked     role = iota // only checked
	roleEvent                   // observer.ExportEvent
	roleFlow                    // flow.Flow
	roleIP                      // flow.IP
	roleL4                      // flow.Layer4
	roleL4Protocol              // flow.TCP, flow.UDP or flow.SCTP
	roleSource                  // flow.Endpoint, the source
	roleDestination             // flow.Endpoint, the destination
	roleWorkload                // flow.Workload
)

// A keep says what the decoder keeps of a field's value.
type keep uint8

const (
	keepNothing keep = iota
	keepFlow         // ExportEvent.flow: that there is one
	keepEventTime
	keepFlowTime
	keepVerdict
	keepType
	keepIsReply
	keepReply
	keepIP           // IP.source or IP.destination
	keepProtocol     // Layer4.TCP, UDP or SCTP: the protocol
	keepPort         // destination_port
	keepNamespace    // Endpoint.namespace
	keepPodName      // Endpoint.pod_name
	keepLabel        // each of Endpoint.labels
	keepWorkload     // each of Endpoint.workloads, when it is the first with a kind and a name
	keepWorkloadKind // Workload.kind
	keepWorkloadName // Workload.name
)

// keepOf says what the decoder keeps of the field name of a message read for r, and for
// what a message in it is read.
func keepOf(r role, name protoreflect.Name) (keep, role) {
	switch r {
	case roleEvent:
		switch name {
		case "flow":
			return keepFlow, roleFlow
		case "time":
			return keepEventTime, roleChecked
		}
	case roleFlow:
		switch name {
		case "time":
			return keepFlowTime, roleChecked
		case "verdict":
			return keepVerdict, roleChecked
		case "Type":
			return keepType, roleChecked
		case "is_reply":
			return keepIsReply, roleChecked
		case "reply":
			return keepReply, roleChecked
		case "IP":
			return keepNothing, roleIP
		case "l4":
			return keepNothing, roleL4
		case "source":
			return keepNothing, roleSource
		case "destination":
			return keepNothing, roleDestination
		}
	case roleIP:
		if name == "source" || name == "destination" {
			return keepIP, roleChecked
		}
	case roleL4:
		if name == "TCP" || name == "UDP" || name == "SCTP" {
			return keepProtocol, roleL4Protocol
		}
	case roleL4Protocol:
		if name == "destination_port" {
			return keepPort, roleChecked
		}
	case roleSource, roleDestination:
		switch name {
		case "namespace":
			return keepNamespace, roleChecked
		case "pod_name":
			return keepPodName, roleChecked
		case "labels":
			return keepLabel, roleChecked
		case "workloads":
			return keepWorkload, roleWorkload
		}
	case roleWorkload:
		switch name {
		case "kind":
			return keepWorkloadKind, roleChecked
		case "name":
			return keepWorkloadName, roleChecked
		}
	}
	return keepNothing, roleChecked
}

// A valueKind is how protojson reads a field's value.
type valueKind uint8

const (
	kindUnread valueKind = iota // a kind the decoder gives up on: floats, bytes, other well-known types
	kindString
	kindBool
	kindEnum
	kindInt
	kindUint
	kindTimestamp
	kindBoolValue
	kindMessage
)

type tableKey struct {
	md   protoreflect.MessageDescriptor
	role role
}

// table is what the decoder knows of a message read for a role.
type table struct {
	byName map[string]*field // by the names protojson takes: JSON names first, then proto names
	// seen are the names and fields of the members of the last object read, by position:
	// the lines of one file name their fields in the same order.
	seen []namedField
}

type namedField struct {
	name string
	f    *field
	last []byte // the value, when it was only checked
	// changed counts the objects in a row in which the value was not last. Past
	// maxChanged, the value is neither compared nor remembered (a uuid, a port), until
	// the count wraps round and the place is given another try.
	changed uint8
}

// maxChanged is how many times in a row a place's value may change before it is no
// longer remembered.
const maxChanged = 4

// field is what the decoder knows of a field of a message read for a role.
type field struct {
	// Where message marks the field as seen, by its index i among the message's fields:
	// bit 1<<(i%64) of word i/64. bit is 0 past 256 fields, where the decoder gives up.
	bit       uint64
	word      uint8
	kind      valueKind
	bits      int // of an integer
	list      bool
	isMap     bool
	nullBad   bool // null is a value (google.protobuf.Value or NullValue): give up
	oneof     int  // the index of the oneof it is a member of, or -1
	keep      keep
	checkOnly bool   // nothing is kept of its value, nor of any within
	end       int    // the end of the flow an endpoint or IP field is of: 0 source, 1 destination
	protocol  string // of a Layer4 member
	enum      protoreflect.EnumDescriptor
	names     map[string]enumValue // of enum, once read
	last      enumValue            // the last value read, of enum
	md        protoreflect.MessageDescriptor
	role      role   // of the message md
	msg       *table // of md for role, once read
}

// lookup finds the field named key, the member'th of its object, which is not the one
// named at that place in the last object.
func (t *table) lookup(member int, key []byte) *field {
	f := t.byName[string(key)]
	if member < 64 {
		nf := namedField{name: string(key), f: f}
		if member < len(t.seen) {
			t.seen[member] = nf
		} else if member == len(t.seen) {
			t.seen = append(t.seen, nf)
		}
	}
	return f
}

// table returns the table of md read for r.
func (d *fastDecoder) table(md protoreflect.MessageDescriptor, r role) *table {
	key := tableKey{md, r}
	if t, ok := d.tables[key]; ok {
		return t
	}
	fds := md.Fields()
	t := &table{byName: make(map[string]*field, 2*fds.Len())}
	d.tables[key] = t
	fields := make([]field, fds.Len())
	for i := range fds.Len() {
		fd := fds.Get(i)
		f := &fields[i]
		f.list, f.isMap, f.oneof = fd.IsList(), fd.IsMap(), -1
		if i < 256 {
			f.word, f.bit = uint8(i/64), 1<<(i%64)
		}
		if od := fd.ContainingOneof(); od != nil && !fd.IsList() {
			f.oneof = od.Index()
		}
		f.nullBad = fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Value" ||
			fd.Enum() != nil && fd.Enum().FullName() == "google.protobuf.NullValue"
		f.keep, f.role = keepOf(r, fd.Name())
		f.checkOnly = f.keep == keepNothing && f.role == roleChecked
		if r == roleDestination || r == roleIP && fd.Name() == "destination" {
			f.end = 1
		}
		if f.keep == keepProtocol {
			f.protocol = string(fd.Name()) // flows.ProtocolTCP, UDP or SCTP, as the field is named
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			f.kind = kindString
		case protoreflect.BoolKind:
			f.kind = kindBool
		case protoreflect.EnumKind:
			f.kind, f.enum = kindEnum, fd.Enum()
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			f.kind, f.bits = kindInt, 32
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			f.kind, f.bits = kindInt, 64
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			f.kind, f.bits = kindUint, 32
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			f.kind, f.bits = kindUint, 63 // past that, it would not fit Convert's port
		case protoreflect.MessageKind, protoreflect.GroupKind:
			switch name := fd.Message().FullName(); {
			case name == "google.protobuf.Timestamp":
				f.kind = kindTimestamp
			case name == "google.protobuf.BoolValue":
				f.kind = kindBoolValue
			case strings.HasPrefix(string(name), "google.protobuf."):
			default:
				f.kind, f.md = kindMessage, fd.Message()
			}
		}
		t.byName[fd.TextName()] = f
	}
	for i := range fds.Len() {
		t.byName[fds.Get(i).JSONName()] = &fields[i]
	}
	return t
}

// message reads an object of the message of t.
func (d *fastDecoder) message(t *table) bool {
	if !d.sc.Eat('{') {
		return false
	}
	var seen [4]uint64 // by field.word and field.bit
	var oneofs uint64
	for n := 0; ; n++ {
		var key []byte
		var like, more, ok bool
		var guess string
		if n < len(t.seen) {
			guess = t.seen[n].name
			key, like, more, ok = d.sc.MemberLike(n, guess)
		} else {
			key, more, ok = d.sc.Member(n)
		}
		if !ok || !more {
			return ok
		}
		var f *field
		var at *namedField // the member's place in t.seen, when it is the last object's
		if like {
			at = &t.seen[n]
			f = at.f
		} else {
			f = t.lookup(n, key)
		}
		switch {
		case f == nil:
			if len(key) > 0 && key[0] == '[' { // an extension
				return false
			}
		case f.bit == 0 || seen[f.word&3]&f.bit != 0:
			return false
		case d.sc.S[d.sc.I] == 'n' && d.sc.Null():
			if f.nullBad {
				return false
			}
			seen[f.word&3] |= f.bit
			continue
		case f.isMap:
			return false
		case f.oneof >= 0:
			if f.oneof >= 64 || oneofs&(1<<f.oneof) != 0 {
				return false
			}
			oneofs |= 1 << f.oneof
		}
		if f != nil {
			seen[f.word&3] |= f.bit
		}
		// A value that is only checked, and that is the one at this place in the last
		// object byte for byte, was checked then: most of what Hubble prints of a flow
		// repeats from line to line (cluster and node names, directions, ethernet).
		checkOnly := at != nil && (f == nil || f.checkOnly)
		if checkOnly {
			if at.changed >= maxChanged {
				at.changed++
				checkOnly = false
			} else if d.sc.Repeat(at.last) {
				at.changed = 0
				continue
			}
		}
		name, start := guess, d.sc.I
		switch {
		case f == nil:
			ok = d.sc.Skip(maxSkipDepth)
		case f.keep == keepLabel:
			ok = d.labelList(f)
		case f.keep == keepWorkload:
			ok = d.workloadList(f)
		case f.list:
			ok = d.sc.Array(func() bool { return !d.sc.Null() && d.value(f) })
		default:
			ok = d.value(f)
		}
		if !ok {
			return false
		}
		// An object of the same message within may have taken the place meanwhile.
		if checkOnly && at.name == name && d.sc.I-start <= maxRemembered {
			at.last = append(at.last[:0], d.sc.S[start:d.sc.I]...)
			at.changed++
		}
	}
}

// maxRemembered bounds the values remembered at each place of a message's objects.
const maxRemembered = 256

// value reads a value of f, or an element of it if it is a list, and keeps what f says.
func (d *fastDecoder) value(f *field) bool {
	facts := &d.facts
	switch f.kind {
	case kindString:
		b, ok := d.sc.String()
		if !ok {
			return false
		}
		switch f.keep {
		case keepIP:
			d.ip[f.end] = b
		case keepNamespace:
			d.endpoint(f).namespace = d.strs.Intern(b)
		case keepPodName:
			d.podName[f.end] = b
		case keepLabel:
			d.labels = append(d.labels, d.strs.Intern(b))
		case keepWorkloadKind:
			d.kind = b
		case keepWorkloadName:
			d.name = b
		}
		return true
	case kindBool, kindBoolValue:
		v, ok := d.sc.Bool()
		switch f.keep {
		case keepIsReply:
			facts.hasIsReply, facts.isReply = true, v
		case keepReply:
			facts.reply = v
		}
		return ok
	case kindEnum:
		n, ok := d.enum(f)
		switch f.keep {
		case keepVerdict:
			facts.verdict = flowpb.Verdict(n)
		case keepType:
			facts.typ = flowpb.FlowType(n)
		}
		return ok
	case kindInt:
		_, ok := d.sc.Int(f.bits)
		return ok
	case kindUint:
		n, ok := d.sc.Uint(f.bits)
		if f.keep == keepPort {
			facts.port = uint32(n)
		}
		return ok
	case kindTimestamp:
		t, ok := d.timestamp(f.keep == keepFlowTime)
		switch f.keep {
		case keepEventTime:
			d.evTime = t
		case keepFlowTime:
			facts.time, d.flowTime = t, true
		}
		return ok
	case kindMessage:
		if f.msg == nil {
			f.msg = d.table(f.md, f.role)
		}
		switch f.keep {
		case keepFlow:
			d.isFlow = true
		case keepProtocol:
			facts.protocol = f.protocol
		case keepWorkload:
			d.kind, d.name = nil, nil
		}
		if !d.message(f.msg) {
			return false
		}
		if e := d.endpoint(f); f.keep == keepWorkload && e.workload == "" && len(d.kind) > 0 && len(d.name) > 0 {
			e.workload = d.strs.Intern(append(append(append(d.strBuf[:0], d.kind...), '/'), d.name...))
		}
		return true
	}
	return false
}

// labelList reads the labels of an endpoint, a list of strings, into what Convert makes of
// them. Labels met before come to what they came to then, which records then share.
func (d *fastDecoder) labelList(f *field) bool {
	e := d.endpoint(f)
	var ok bool
	if e.labels, ok = d.labelSets.lookup(&d.sc); ok {
		return true
	}
	start := d.sc.WS()
	d.labels = d.labels[:0]
	if !d.sc.Array(func() bool { return !d.sc.Null() && d.value(f) }) {
		return false
	}
	e.labels = endpointLabelsOf(d.labels, d.labelsOf)
	// Checked once here, not in Normalize for each record that shares the map.
	e.labels.checked = flows.LabelsValid(e.labels.pod)
	d.labelSets.add(d.sc.S[start:d.sc.I], e.labels)
	return true
}

// workloadList reads the workloads of an endpoint into the one Convert takes.
func (d *fastDecoder) workloadList(f *field) bool {
	e := d.endpoint(f)
	var ok bool
	if e.workload, ok = d.workloads.lookup(&d.sc); ok {
		return true
	}
	start := d.sc.WS()
	if !d.sc.Array(func() bool { return !d.sc.Null() && d.value(f) }) {
		return false
	}
	d.workloads.add(d.sc.S[start:d.sc.I], e.workload)
	return true
}

// listCache keeps what lists came to by their bytes, so that a list met again, byte for
// byte, is not read again. It is bounded, so that a stream of distinct lists cannot grow
// it without end.
type listCache[V any] struct {
	m     map[string]V
	bytes int // of m's keys
}

const (
	maxCachedLists     = 1 << 14
	maxCachedListBytes = 4 << 20
)

// lookup finds the list that comes next in sc and moves past it. The list is taken to its
// first ']', which ends every list kept.
func (c *listCache[V]) lookup(sc *jsonscan.Scanner) (v V, ok bool) {
	i := sc.WS()
	n := bytes.IndexByte(sc.S[i:], ']')
	if n < 0 || c.m == nil {
		return v, false
	}
	if v, ok = c.m[string(sc.S[i:i+n+1])]; ok {
		sc.I = i + n + 1
	}
	return v, ok
}

// add keeps what raw, a whole list that was read, came to; a list of which a string
// holds a ']' is not kept, as lookup would not find it.
func (c *listCache[V]) add(raw []byte, v V) {
	if bytes.IndexByte(raw, ']') != len(raw)-1 || len(c.m) >= maxCachedLists || c.bytes+len(raw) > maxCachedListBytes {
		return
	}
	if c.m == nil {
		c.m = map[string]V{}
	}
	c.m[string(raw)] = v
	c.bytes += len(raw)
}

// endpoint is the end of the flow that f, a field of an endpoint, is of.
func (d *fastDecoder) endpoint(f *field) *endpointFacts {
	if f.end == 0 {
		return &d.facts.src
	}
	return &d.facts.dst
}

// enum reads an enum value by one of its names.
func (d *fastDecoder) enum(f *field) (protoreflect.EnumNumber, bool) {
	b, ok := d.sc.String()
	if !ok {
		return 0, false
	}
	if f.names == nil {
		if f.names, ok = d.enums[f.enum.FullName()]; !ok {
			vals := f.enum.Values()
			f.names = make(map[string]enumValue, vals.Len())
			for i := range vals.Len() {
				name := string(vals.Get(i).Name())
				f.names[name] = enumValue{name, vals.Get(i).Number()}
			}
			d.enums[f.enum.FullName()] = f.names
		}
	}
	if f.last.name != "" && string(b) == f.last.name { // the lines of one file repeat a field's value
		return f.last.num, true
	}
	v, ok := f.names[string(b)]
	if ok {
		f.last = v
	}
	return v.num, ok
}

// enumValue is a value of an enum by its name.
type enumValue struct {
	name string
	num  protoreflect.EnumNumber
}

// timestamp reads a google.protobuf.Timestamp as protojson does, and returns it as
// Convert takes it (convert.Time). A time that is one of the last flow's and event's,
// byte for byte, is taken as it was read then: a wrapper's time repeats its flow's, or
// that of the wrapper before.
func (d *fastDecoder) timestamp(ofFlow bool) (time.Time, bool) {
	b, ok := d.sc.String()
	if !ok {
		return time.Time{}, false
	}
	for i := range d.times {
		if last := &d.times[i]; len(b) > 0 && string(b) == string(last.text) {
			return last.t, true
		}
	}
	t, ok := d.parseTimestamp(b)
	if ok && len(b) <= maxRemembered {
		last := &d.times[0]
		if ofFlow {
			last = &d.times[1]
		}
		last.text, last.t = append(last.text[:0], b...), t
	}
	return t, ok
}

// parseTimestamp parses the contents of a string that holds a time, as timestamp returns it.
func (d *fastDecoder) parseTimestamp(b []byte) (time.Time, bool) {
	t, ok := jsonscan.ParseTime(b)
	if !ok {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, string(b)); err != nil {
			return time.Time{}, false
		}
	}
	secs := t.Unix()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds {
		return time.Time{}, false
	}
	// protojson takes at most nine digits of a second.
	j := len(b) - 1
	for j >= 0 && b[j] != 'Z' && b[j] != '-' && b[j] != '+' {
		j--
	}
	if i := bytes.LastIndexByte(b, '.'); i >= 0 && j >= i && j-i > len(".999999999") {
		return time.Time{}, false
	}
	return time.Unix(secs, int64(t.Nanosecond())).UTC(), true
}

// The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)
