package cluster

import (
	"bytes"
	"encoding"
	"encoding/json"
	"math/bits"
	"reflect"
	"strings"
	"sync"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol-guard/netpol-guard/internal/jsonscan"
)

// A fast decoder for the Pods, NetworkPolicies and Namespaces of a cluster file, which are
// nearly all of its bytes and of the time the strict typed decoder takes. It decodes as
// sigs.k8s.io/json does, by the same rules read off the same Go types: a decoder is made
// once for each type (a struct's fields by their exact JSON names, embedded structs
// inlined, types with an UnmarshalJSON of their own handed their bytes), and walks the
// object with a jsonscan.Scanner. On anything else — a field it does not know or in
// another case, a value of another type, a field or map key given twice, a string with an
// escape or invalid UTF-8, an integer out of range or with a fraction, a float, bytes, an
// interface — it gives up, and the object is decoded again by strictUnmarshal, which gives
// the same object or names the field at fault. So it never decides what is valid: it
// accepts a subset of what the strict decoder accepts, and decodes that subset to the same
// objects (TestFastDecodeMatchesStrict and FuzzDecode check both).
//
// The input has been checked to be JSON when it was split into documents, and the object
// decoded into is new: a null leaves a value as it is, the zero value.

// decodeFast decodes raw into obj, which must be new, and reports whether it could; when it
// could not, obj must be reset before it is decoded again. keys is scratch space.
func decodeFast(raw []byte, obj kubeObject, keys [][]byte) (ok bool, scratch [][]byte) {
	switch obj.(type) {
	case *corev1.Pod, *networkingv1.NetworkPolicy, *corev1.Namespace:
	default:
		return false, keys
	}
	v := reflect.ValueOf(obj)
	p := scanners.Get().(*objectScanner)
	p.Scanner, p.keys = jsonscan.Scanner{S: raw}, keys[:0]
	ok = decoders.of(v.Type().Elem())(p, v.UnsafePointer()) && p.AtEnd()
	scratch = p.keys
	p.Scanner, p.keys = jsonscan.Scanner{}, nil
	scanners.Put(p)
	return ok, scratch
}

// objectScanner reads one object. Decoders return false to give up.
type objectScanner struct {
	jsonscan.Scanner // plain strings only
	// keys are those of the structs being read, for finding repeats; each struct's start
	// where its parent's end.
	keys   [][]byte
	spares []reflect.Value
}

// spare returns a settable zero value of t from those p keeps, to be given back with keep:
// a map's key and value are read into one and copied into the map.
func (p *objectScanner) spare(t reflect.Type) reflect.Value {
	for i, v := range p.spares {
		if v.Type() == t {
			p.spares[i] = p.spares[len(p.spares)-1]
			p.spares = p.spares[:len(p.spares)-1]
			v.SetZero()
			return v
		}
	}
	return reflect.New(t).Elem()
}

func (p *objectScanner) keep(vs ...reflect.Value) {
	p.spares = append(p.spares, vs...)
}

// scanners keeps objectScanners for reuse: a decodeFunc, called through a variable, makes
// the one it is given escape.
var scanners = sync.Pool{New: func() any { return new(objectScanner) }}

// A decodeFunc reads the value that comes next into the value of its type at ptr.
type decodeFunc func(p *objectScanner, ptr unsafe.Pointer) bool

// decoders holds the decodeFunc of each type met, made once.
var decoders = &decoderCache{byType: map[reflect.Type]decodeFunc{}}

type decoderCache struct {
	mu     sync.Mutex
	byType map[reflect.Type]decodeFunc
	ready  sync.Map // reflect.Type to decodeFunc, of the types made with all they hold
}

// of returns the decodeFunc of t.
func (c *decoderCache) of(t reflect.Type) decodeFunc {
	if dec, ok := c.ready.Load(t); ok {
		return dec.(decodeFunc)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dec := c.make(t)
	c.ready.Store(t, dec)
	return dec
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	timeType            = reflect.TypeFor[metav1.Time]()
	stringMapType       = reflect.TypeFor[map[string]string]()
)

// make makes the decodeFunc of t, and of the types it holds, with c.mu held.
func (c *decoderCache) make(t reflect.Type) decodeFunc {
	if dec, ok := c.byType[t]; ok {
		return dec
	}
	// A type may hold itself: until it is made, it is reached through this.
	var dec decodeFunc
	c.byType[t] = func(p *objectScanner, ptr unsafe.Pointer) bool { return dec(p, ptr) }
	dec = c.makeNew(t)
	c.byType[t] = dec
	return dec
}

func (c *decoderCache) makeNew(t reflect.Type) decodeFunc {
	switch {
	case t == timeType:
		return decodeTime
	case reflect.PointerTo(t).Implements(unmarshalerType):
		return func(p *objectScanner, ptr unsafe.Pointer) bool {
			start := p.WS()
			p.I = jsonscan.End(p.S, start)
			u := reflect.NewAt(t, ptr).Interface().(json.Unmarshaler)
			return u.UnmarshalJSON(p.S[start:p.I]) == nil
		}
	case unmarshals(t):
		return giveUp
	}
	switch t.Kind() {
	case reflect.String:
		return decodeString
	case reflect.Bool:
		return decodeBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return decodeInteger(t)
	case reflect.Pointer:
		return c.pointer(t)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 { // base64, or the elements' own decoding
			return giveUp
		}
		return c.slice(t)
	case reflect.Map:
		return c.mapOf(t)
	case reflect.Struct:
		return c.structOf(t)
	}
	return giveUp // floats, interfaces, arrays, channels, functions
}

func giveUp(*objectScanner, unsafe.Pointer) bool { return false }

// unmarshals reports whether t decodes itself from JSON or from text.
func unmarshals(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return pt.Implements(unmarshalerType) || pt.Implements(textUnmarshalerType)
}

// decodeTime reads a metav1.Time as its UnmarshalJSON does.
func decodeTime(p *objectScanner, ptr unsafe.Pointer) bool {
	if p.Null() {
		return true
	}
	b, ok := p.String()
	if !ok {
		return false
	}
	t, ok := jsonscan.ParseTime(b)
	if !ok {
		var err error
		if t, err = time.Parse(time.RFC3339, string(b)); err != nil {
			return false
		}
	}
	(*metav1.Time)(ptr).Time = t.Local()
	return true
}

func decodeString(p *objectScanner, ptr unsafe.Pointer) bool {
	if p.Null() {
		return true
	}
	b, ok := p.String()
	*(*string)(ptr) = string(b)
	return ok
}

func decodeBool(p *objectScanner, ptr unsafe.Pointer) bool {
	if p.Null() {
		return true
	}
	v, ok := p.Bool()
	*(*bool)(ptr) = v
	return ok
}

// decodeInteger decodes integers of t's kind, which must be one.
func decodeInteger(t reflect.Type) decodeFunc {
	bits, signed := t.Bits(), t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64
	return func(p *objectScanner, ptr unsafe.Pointer) bool {
		if p.Null() {
			return true
		}
		var n uint64
		var ok bool
		if signed {
			var v int64
			v, ok = p.Int(bits)
			n = uint64(v)
		} else {
			n, ok = p.Uint(bits)
		}
		switch bits { // two's complement: the low bits of n, signed or not
		case 8:
			*(*uint8)(ptr) = uint8(n)
		case 16:
			*(*uint16)(ptr) = uint16(n)
		case 32:
			*(*uint32)(ptr) = uint32(n)
		default:
			*(*uint64)(ptr) = n
		}
		return ok
	}
}

// pointer: null is nil; anything else is decoded into a new value.
func (c *decoderCache) pointer(t reflect.Type) decodeFunc {
	elem := c.make(t.Elem())
	return func(p *objectScanner, ptr unsafe.Pointer) bool {
		if p.Null() {
			return true
		}
		v := reflect.New(t.Elem()).UnsafePointer()
		*(*unsafe.Pointer)(ptr) = v
		return elem(p, v)
	}
}

// slice: null is nil; [] an empty slice, not nil.
func (c *decoderCache) slice(t reflect.Type) decodeFunc {
	elem, size := c.make(t.Elem()), t.Elem().Size()
	return func(p *objectScanner, ptr unsafe.Pointer) bool {
		if p.Null() {
			return true
		}
		if !p.Eat('[') {
			return false
		}
		s := (*sliceHeader)(ptr)
		for n := 0; ; n++ {
			more, ok := p.Element(n)
			if n == s.cap && (more || n == 0) { // [] is an empty slice, not nil
				reflect.NewAt(t, ptr).Elem().Grow(1)
			}
			if !ok || !more {
				return ok
			}
			s.len = n + 1
			if !elem(p, unsafe.Add(s.data, uintptr(n)*size)) {
				return false
			}
		}
	}
}

// sliceHeader is how a slice is laid out.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// mapOf decodes maps with string keys; a key given twice gives up.
func (c *decoderCache) mapOf(t reflect.Type) decodeFunc {
	if t.Key().Kind() != reflect.String || unmarshals(t.Key()) {
		return giveUp
	}
	if t == stringMapType { // labels, annotations, selectors: most maps
		return func(p *objectScanner, ptr unsafe.Pointer) bool {
			if p.Null() {
				return true
			}
			m := map[string]string{}
			*(*map[string]string)(ptr) = m
			return p.Object(func(key []byte) bool {
				var v string
				if !p.Null() {
					b, ok := p.String()
					if !ok {
						return false
					}
					v = string(b)
				}
				n := len(m)
				m[string(key)] = v
				return len(m) > n
			})
		}
	}
	elem := c.make(t.Elem())
	return func(p *objectScanner, ptr unsafe.Pointer) bool {
		if p.Null() {
			return true
		}
		m := reflect.MakeMap(t)
		reflect.NewAt(t, ptr).Elem().Set(m)
		k, v := p.spare(t.Key()), p.spare(t.Elem())
		defer p.keep(k, v)
		return p.Object(func(key []byte) bool {
			k.SetString(string(key))
			if m.MapIndex(k).IsValid() {
				return false
			}
			v.SetZero()
			if !elem(p, v.Addr().UnsafePointer()) {
				return false
			}
			m.SetMapIndex(k, v)
			return true
		})
	}
}

// structField is a field of a struct as the decoder of the struct finds it: by its JSON
// name, at its offset from the struct's start (through embedded structs).
type structField struct {
	name   string
	offset uintptr
	decode decodeFunc
	str    bool // a string, the most common field, decoded without a call through decode
}

// fieldTable finds the fields of a struct by a hash of a name's length and of its first,
// middle and last bytes, which is quicker than a map's hash of the whole name; it is at
// most a quarter full.
type fieldTable struct {
	slots []structField // a power of two
}

func (t *fieldTable) slot(key []byte) int {
	h := uint(len(key))
	if len(key) > 0 {
		h = h<<24 | uint(key[0])<<16 | uint(key[len(key)/2])<<8 | uint(key[len(key)-1])
	}
	return int((h * 0x9e3779b97f4a7c15) >> 40)
}

func (t *fieldTable) add(f structField) {
	mask := len(t.slots) - 1
	i := t.slot([]byte(f.name)) & mask
	for t.slots[i].decode != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = f
}

func (t *fieldTable) find(key []byte) *structField {
	mask := len(t.slots) - 1
	for i := t.slot(key) & mask; t.slots[i].decode != nil; i = (i + 1) & mask {
		if t.slots[i].name == string(key) {
			return &t.slots[i]
		}
	}
	return nil
}

func (c *decoderCache) structOf(t reflect.Type) decodeFunc {
	fields := jsonFields(t)
	table := fieldTable{slots: make([]structField, max(8, 1<<bits.Len(uint(4*len(fields)))))}
	for name, f := range fields {
		str := f.dec == nil && f.typ.Kind() == reflect.String && !unmarshals(f.typ)
		if f.dec == nil {
			f.dec = c.make(f.typ)
		}
		table.add(structField{name: name, offset: f.offset, decode: f.dec, str: str})
	}
	return func(p *objectScanner, ptr unsafe.Pointer) bool {
		if p.Null() {
			return true
		}
		first := len(p.keys)
		ok := p.Object(func(key []byte) bool {
			f := table.find(key)
			if f == nil {
				return false
			}
			for _, k := range p.keys[first:] {
				if bytes.Equal(k, key) {
					return false
				}
			}
			p.keys = append(p.keys, key)
			if f.str {
				return decodeString(p, unsafe.Add(ptr, f.offset))
			}
			return f.decode(p, unsafe.Add(ptr, f.offset))
		})
		p.keys = p.keys[:first]
		return ok
	}
}

// jsonField is a field of a struct as encoding/json names it.
type jsonField struct {
	offset uintptr
	typ    reflect.Type
	dec    decodeFunc // set for a field the decoder gives up on
	depth  int        // of embedding
	tagged bool
}

// jsonFields returns the fields of t by their JSON names, as encoding/json finds them:
// the fields of an embedded struct without a name of its own are t's, and of two fields
// of one name the shallower wins, or the one with a tag; a name two fields hold alike is
// no field's. A field with the ",string" option is given up on.
func jsonFields(t reflect.Type) map[string]jsonField {
	fields := map[string]jsonField{}
	ambiguous := map[string]bool{}
	var walk func(t reflect.Type, offset uintptr, depth int)
	walk = func(t reflect.Type, offset uintptr, depth int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" || !sf.IsExported() && !(sf.Anonymous && sf.Type.Kind() == reflect.Struct) {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, offset+sf.Offset, depth+1)
				continue
			}
			if !sf.IsExported() {
				continue
			}
			f := jsonField{offset: offset + sf.Offset, typ: sf.Type, depth: depth, tagged: name != ""}
			if name == "" {
				name = sf.Name
			}
			if strings.Contains(","+opts+",", ",string,") {
				f.dec = giveUp
			}
			switch old, ok := fields[name]; {
			case !ok || f.depth < old.depth:
				fields[name] = f
				delete(ambiguous, name)
			case f.depth == old.depth && f.tagged != old.tagged:
				if f.tagged {
					fields[name] = f
				}
			case f.depth == old.depth:
				ambiguous[name] = true
			}
		}
	}
	walk(t, 0, 0)
	for name := range ambiguous {
		delete(fields, name)
	}
	return fields
}
