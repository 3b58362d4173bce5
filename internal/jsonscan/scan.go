package jsonscan

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Scanner reads the JSON in S from the position I. Each method passes over white space
// first, reads one piece and moves I past it; on false, I is left where the piece failed
// or anywhere in it.
type Scanner struct {
	S []byte
	I int
	// Unescape reads strings as encoding/json does: escapes decoded, invalid UTF-8 turned
	// into U+FFFD. Otherwise String (and Member and Skip) read only strings without an
	// escape or a control character, in valid UTF-8, and fail on any other.
	Unescape bool

	buf   []byte // an unescaped string, valid until the next one
	stack []byte // Skip's open objects and arrays
}

// Reset sets the scanner to read b from its start.
func (s *Scanner) Reset(b []byte) {
	s.S, s.I = b, 0
}

// SkipSpace returns the position of the first byte at or after i in b that is not JSON
// white space.
func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ':
			// Indented JSON is much white space: pass it eight bytes at a time.
			if i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:]) == ones*' ' {
				i += 8
				continue
			}
			i++
		case '\n', '\r', '\t':
			i++
		default:
			return i
		}
	}
	return i
}

// WS passes over white space and returns the position.
func (s *Scanner) WS() int {
	if s.I < len(s.S) && s.S[s.I] > ' ' {
		return s.I
	}
	s.I = SkipSpace(s.S, s.I)
	return s.I
}

// Peek returns the byte that comes next, after white space, or 0 at the end.
func (s *Scanner) Peek() byte {
	if i := s.WS(); i < len(s.S) {
		return s.S[i]
	}
	return 0
}

// Eat consumes c if it comes next, after white space.
func (s *Scanner) Eat(c byte) bool {
	if i := s.WS(); i < len(s.S) && s.S[i] == c {
		s.I = i + 1
		return true
	}
	return false
}

// AtEnd reports whether nothing but white space is left.
func (s *Scanner) AtEnd() bool {
	return s.WS() == len(s.S)
}

// Null consumes a null if one comes next.
func (s *Scanner) Null() bool {
	i := s.WS()
	if i+4 <= len(s.S) && s.S[i] == 'n' && string(s.S[i:i+4]) == "null" {
		s.I = i + 4
		return true
	}
	return false
}

// Bool reads true or false.
func (s *Scanner) Bool() (v, ok bool) {
	switch s.Peek() {
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	}
	return false, false
}

func (s *Scanner) literal(lit string) bool {
	i := s.WS()
	if len(s.S)-i >= len(lit) && string(s.S[i:i+len(lit)]) == lit {
		s.I = i + len(lit)
		return true
	}
	return false
}

// Member moves to the next member of an object whose '{' has been read; n counts the
// members read before it. It returns the member's key, with the position at its value
// (there is a byte there), or more false past the object's '}'. The key is valid until
// the next string is read.
func (s *Scanner) Member(n int) (key []byte, more, ok bool) {
	switch s.next('}', n) {
	case closed:
		return nil, false, true
	case broken:
		return nil, false, false
	}
	if key, ok = s.String(); !ok || !s.Eat(':') || s.WS() >= len(s.S) {
		return nil, false, false
	}
	return key, true, true
}

// MemberLike is Member for a decoder that can guess the key, as the one at the same place
// in the last object of the same kind: when the key is guess, as written, it is taken
// without a scan for escapes, and like is true. guess must be a string String reads as
// written, such as a key Member returned in plain mode.
func (s *Scanner) MemberLike(n int, guess string) (key []byte, like, more, ok bool) {
	// Compact JSON: `,"guess":` and a value.
	b, i := s.S, s.I
	if n > 0 && i < len(b) && b[i] == ',' {
		i++
	}
	if end := i + 1 + len(guess); (n == 0 || i > s.I) && end+2 < len(b) && b[i] == '"' && b[end] == '"' && b[end+1] == ':' &&
		string(b[i+1:end]) == guess {
		s.I = end + 2
		if s.S[s.I] <= ' ' && s.WS() >= len(b) {
			return nil, false, false, false // no value after the colon, as Member says
		}
		return b[i+1 : end], true, true, true
	}
	switch s.next('}', n) {
	case closed:
		return nil, false, false, true
	case broken:
		return nil, false, false, false
	}
	if i, end := s.WS(), s.I+1+len(guess); end < len(s.S) && s.S[i] == '"' && s.S[end] == '"' && string(s.S[i+1:end]) == guess {
		key, like, s.I = s.S[i+1:end], true, end+1
	} else if key, ok = s.String(); !ok {
		return nil, false, false, false
	}
	if !s.Eat(':') || s.WS() >= len(s.S) {
		return nil, false, false, false
	}
	return key, like, true, true
}

// Repeat consumes the value that comes next if it is last, byte for byte: a whole value
// read before, which it then is again.
func (s *Scanner) Repeat(last []byte) bool {
	i := s.WS()
	end := i + len(last)
	if len(last) == 0 || end > len(s.S) || string(s.S[i:end]) != string(last) {
		return false
	}
	// A number or a literal could go on.
	if end < len(s.S) && !ends[s.S[end]] {
		return false
	}
	s.I = end
	return true
}

// ends are the bytes that may follow a value.
var ends = [256]bool{',': true, '}': true, ']': true, ' ': true, '\t': true, '\n': true, '\r': true}

// Element moves to the next element of an array whose '[' has been read; n counts the
// elements read before it. more is false past the array's ']'; otherwise the position is
// at the element (there is a byte there).
func (s *Scanner) Element(n int) (more, ok bool) {
	switch s.next(']', n) {
	case closed:
		return false, true
	case broken:
		return false, false
	}
	return true, s.WS() < len(s.S)
}

// What comes after an opening or a value in an object or array.
const (
	another = iota // a member or element
	closed         // the end: the object or array is closed
	broken         // anything else
)

// next consumes the closing byte end, or the comma before a member or element that is not
// the first.
func (s *Scanner) next(end byte, n int) int {
	i := s.WS()
	if i >= len(s.S) {
		return broken
	}
	switch c := s.S[i]; {
	case c == end:
		s.I = i + 1
		return closed
	case n == 0:
	case c == ',':
		s.I = i + 1
	default:
		return broken
	}
	return another
}

// String reads a string and returns its contents. They alias S, or a buffer of the
// Scanner's that the next String overwrites.
func (s *Scanner) String() ([]byte, bool) {
	i := s.WS()
	if i >= len(s.S) || s.S[i] != '"' {
		return nil, false
	}
	start := i + 1
	j := start
	// Eight bytes at a time, to the first that needs a look.
	for j+8 <= len(s.S) {
		m := special(binary.LittleEndian.Uint64(s.S[j:]))
		if m == 0 {
			j += 8
			continue
		}
		if j += bits.TrailingZeros64(m) >> 3; s.S[j] == '"' {
			s.I = j + 1
			return s.S[start:j], true
		}
		return s.slowString(start, j)
	}
	for ; j < len(s.S); j++ {
		if c := s.S[j]; !plainASCII[c] {
			if c == '"' {
				s.I = j + 1
				return s.S[start:j], true
			}
			return s.slowString(start, j)
		}
	}
	return nil, false
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special is not zero when one of the eight bytes of w, read little-endian, is '"', '\\',
// a control character or not ASCII; its lowest bit set is the high bit of the first such
// byte (the subtractions borrow only from bytes above one that matches).
func special(w uint64) uint64 {
	q := w ^ (ones * '"')
	b := w ^ (ones * '\\')
	return ((q-ones)&^q | (b-ones)&^b | (w-ones*0x20)&^w | w) & highs
}

// plainASCII are the bytes that stand for themselves in a JSON string.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// slowString goes on from String at j, the first byte that needs a look.
func (s *Scanner) slowString(start, j int) ([]byte, bool) {
	b := s.S
	if !s.Unescape {
		for j < len(b) {
			switch c := b[j]; {
			case plainASCII[c]:
				j++
			case c == '"':
				s.I = j + 1
				return b[start:j], true
			case c >= utf8.RuneSelf:
				r, n := utf8.DecodeRune(b[j:])
				if r == utf8.RuneError && n == 1 {
					return nil, false
				}
				j += n
			default: // an escape or a control character
				return nil, false
			}
		}
		return nil, false
	}
	out := append(s.buf[:0], b[start:j]...)
	for j < len(b) {
		switch c := b[j]; {
		case c == '"':
			s.I, s.buf = j+1, out
			return out, true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if j+1 >= len(b) {
				return nil, false
			}
			switch e := b[j+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(b[j:])
				if r < 0 {
					return nil, false
				}
				j += 6
				if utf16.IsSurrogate(r) {
					if dec := utf16.DecodeRune(r, hex4(b[j:])); dec != unicode.ReplacementChar {
						j += 6
						out = utf8.AppendRune(out, dec)
						continue
					}
					r = unicode.ReplacementChar
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				return nil, false
			}
			j += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			j++
		default:
			r, size := utf8.DecodeRune(b[j:])
			out = utf8.AppendRune(out, r)
			j += size
		}
	}
	return nil, false
}

// hex4 decodes `\uXXXX` at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
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

// Number reads a number and returns its text, saying whether it is an integer: no
// fraction, no exponent.
func (s *Scanner) Number() (num []byte, integer, ok bool) {
	b, start := s.S, s.WS()
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return nil, false, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		if i = digits(b, i+1); i < 0 {
			return nil, false, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(b, i); i < 0 {
			return nil, false, false
		}
	}
	s.I = i
	return b[start:i], integer, true
}

// digits returns the end of the digits at b[i], or -1 if there are none.
func digits(b []byte, i int) int {
	if i >= len(b) || b[i] < '0' || b[i] > '9' {
		return -1
	}
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// Int reads an integer that fits in a signed integer of bits bits.
func (s *Scanner) Int(bits int) (int64, bool) {
	num, integer, ok := s.Number()
	if !ok || !integer {
		return 0, false
	}
	n, ok := Digits(num)
	switch {
	case !ok:
		return 0, false
	case num[0] == '-':
		return -int64(n), n <= 1<<(bits-1)
	}
	return int64(n), n <= 1<<(bits-1)-1
}

// Uint reads a non-negative integer that fits in bits bits.
func (s *Scanner) Uint(bits int) (uint64, bool) {
	// Most integers are a few digits, the first not 0, and no fraction or exponent: they are
	// read and summed in one pass. At most 19 digits always fit in a uint64.
	b, i := s.S, s.WS()
	if i < len(b) && '1' <= b[i] && b[i] <= '9' {
		var n uint64
		j := i
		for ; j < len(b) && j-i < 19 && '0' <= b[j] && b[j] <= '9'; j++ {
			n = n*10 + uint64(b[j]-'0')
		}
		if j == len(b) || !numberGoesOn[b[j]] {
			s.I = j
			return n, bits == 64 || n < 1<<bits
		}
	}
	num, integer, ok := s.Number()
	if !ok || !integer || num[0] == '-' {
		return 0, false
	}
	n, ok := Digits(num)
	return n, ok && (bits == 64 || n < 1<<bits)
}

// numberGoesOn are the bytes that may follow digits within a number.
var numberGoesOn = [256]bool{'0': true, '1': true, '2': true, '3': true, '4': true, '5': true,
	'6': true, '7': true, '8': true, '9': true, '.': true, 'e': true, 'E': true}

// Digits returns the magnitude of an integer's text, its sign left aside; ok is false when
// it does not fit in a uint64.
func Digits(num []byte) (n uint64, ok bool) {
	if len(num) > 0 && num[0] == '-' {
		num = num[1:]
	}
	for _, c := range num {
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// Skip passes over the value that comes next, checking that it is JSON, with objects and
// arrays nested at most maxDepth deep.
func (s *Scanner) Skip(maxDepth int) bool {
	open := s.stack[:0]
	ok := s.skip(&open, maxDepth)
	s.stack = open
	return ok
}

func (s *Scanner) skip(open *[]byte, maxDepth int) bool {
	b := s.S
	for {
		// A value starts here.
		i := SkipSpace(b, s.I)
		if i >= len(b) {
			return false
		}
		s.I = i
		switch c := b[i]; c {
		case '{', '[':
			if len(*open) >= maxDepth {
				return false
			}
			*open = append(*open, c)
			if i = SkipSpace(b, i+1); i < len(b) && b[i] == c+2 { // '}' or ']', empty
				*open = (*open)[:len(*open)-1]
				s.I = i + 1
			} else if s.I = i; c == '{' && !s.key() {
				return false
			} else {
				continue
			}
		case '"':
			if _, ok := s.String(); !ok {
				return false
			}
		case 't', 'f':
			if _, ok := s.Bool(); !ok {
				return false
			}
		case 'n':
			if !s.Null() {
				return false
			}
		default:
			if _, _, ok := s.Number(); !ok {
				return false
			}
		}
		// After a value: close what ends here, or go on to the next member or element.
		for {
			if len(*open) == 0 {
				return true
			}
			i := SkipSpace(b, s.I)
			if i >= len(b) {
				return false
			}
			top := (*open)[len(*open)-1]
			if c := b[i]; c == top+2 {
				*open = (*open)[:len(*open)-1]
				s.I = i + 1
				continue
			} else if c != ',' {
				return false
			}
			s.I = i + 1
			if top == '{' && !s.key() {
				return false
			}
			break
		}
	}
}

// key reads a member's key and the colon after it.
func (s *Scanner) key() bool {
	if s.Peek() != '"' {
		return false
	}
	_, ok := s.String()
	return ok && s.Eat(':')
}

// End returns the end of the value that starts at b[i], in JSON that has been checked.
func End(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			for i < len(b) && !structural[b[i]] {
				// Indented JSON is much white space: pass it eight bytes at a time.
				if b[i] == ' ' && i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:]) == ones*' ' {
					i += 8
					continue
				}
				i++
			}
			if i == len(b) {
				break
			}
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default:
		for i < len(b) && !structural[b[i]] && b[i] != ',' && b[i] > ' ' {
			i++
		}
		return i
	}
}

// structural are the bytes End stops at within an object or array.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// stringEnd returns the end of the string at b[i], in JSON that has been checked.
func stringEnd(b []byte, i int) int {
	for j := i + 1; ; {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		j += k
		n := 0 // backslashes before the quote
		for n < j-i-1 && b[j-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
}

// Object reads an object, calling member with each key and the position at its value,
// which member must read. It returns false if the syntax breaks or member returns false.
func (s *Scanner) Object(member func(key []byte) bool) bool {
	if !s.Eat('{') {
		return false
	}
	for n := 0; ; n++ {
		key, more, ok := s.Member(n)
		if !ok || !more {
			return ok
		}
		if !member(key) {
			return false
		}
	}
}

// Array reads an array, calling elem with the position at each element, which elem must
// read. It returns false if the syntax breaks or elem returns false.
func (s *Scanner) Array(elem func() bool) bool {
	if !s.Eat('[') {
		return false
	}
	for n := 0; ; n++ {
		more, ok := s.Element(n)
		if !ok || !more {
			return ok
		}
		if !elem() {
			return false
		}
	}
}
