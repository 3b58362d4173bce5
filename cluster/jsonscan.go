package cluster

import (
	"bytes"
	"encoding/binary"
	gojson "encoding/json"
)

// A small JSON scanner for snapshot files. The input is checked once, when it is split
// into documents; after that, objects and lists are walked by byte ranges of the one copy
// of the input, and only objects of the kinds a snapshot keeps are decoded, once, into their
// types. Nothing is parsed twice for being nested in a List.

// maxJSONDepth is encoding/json's limit on nesting, which the scanner shares so that it
// accepts what the decoders accept.
const maxJSONDepth = 10000

// splitJSONObjects splits a stream of JSON objects, separated by whitespace or nothing,
// into the objects. ok is false when the stream holds anything else: something that is not
// valid JSON, or a value that is not an object; splitJSON then says what.
func splitJSONObjects(data []byte) (docs [][]byte, ok bool) {
	var stack []byte
	for i := skipSpace(data, 0); i < len(data); i = skipSpace(data, i) {
		if data[i] != '{' {
			return nil, false
		}
		end := validValue(data, i, &stack)
		if end < 0 {
			return nil, false
		}
		docs = append(docs, data[i:end])
		i = end
	}
	return docs, true
}

// validValue returns the end of the valid JSON value at s[i], or -1 if there is none.
// stack is scratch space for the open objects and arrays.
func validValue(s []byte, i int, stack *[]byte) int {
	open := (*stack)[:0]
	defer func() { *stack = open }()
	for {
		// A value starts at i.
		i = skipSpace(s, i)
		if i >= len(s) {
			return -1
		}
		closed := false
		switch c := s[i]; c {
		case '{', '[':
			if len(open) >= maxJSONDepth {
				return -1
			}
			open = append(open, c)
			i = skipSpace(s, i+1)
			switch {
			case i >= len(s):
				return -1
			case c == '{' && s[i] == '}', c == '[' && s[i] == ']':
				open = open[:len(open)-1]
				i++
				closed = true
			case c == '{':
				if i = validKey(s, i); i < 0 {
					return -1
				}
			}
		case '"':
			if i = validString(s, i); i < 0 {
				return -1
			}
			closed = true
		case 't':
			i = validLiteral(s, i, "true")
			closed = true
		case 'f':
			i = validLiteral(s, i, "false")
			closed = true
		case 'n':
			i = validLiteral(s, i, "null")
			closed = true
		default:
			i = validNumber(s, i)
			closed = true
		}
		if i < 0 {
			return -1
		}
		// After a complete value: close containers, or go on to the next member or element.
		for closed {
			if len(open) == 0 {
				return i
			}
			i = skipSpace(s, i)
			if i >= len(s) {
				return -1
			}
			top := open[len(open)-1]
			switch c := s[i]; {
			case c == ',':
				i++
				if top == '{' {
					if i = validKey(s, skipSpace(s, i)); i < 0 {
						return -1
					}
				}
				closed = false
			case top == '{' && c == '}', top == '[' && c == ']':
				open = open[:len(open)-1]
				i++
			default:
				return -1
			}
		}
	}
}

// validKey checks `"key" :` at s[i] and returns the position after the colon, or -1.
func validKey(s []byte, i int) int {
	if i >= len(s) || s[i] != '"' {
		return -1
	}
	if i = validString(s, i); i < 0 {
		return -1
	}
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != ':' {
		return -1
	}
	return i + 1
}

func validString(s []byte, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return j + 1
		case c < 0x20:
			return -1
		case c == '\\':
			j++
			if j >= len(s) {
				return -1
			}
			switch s[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s) {
					return -1
				}
				for _, h := range s[j+1 : j+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				j += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func validLiteral(s []byte, i int, lit string) int {
	if len(s)-i < len(lit) || string(s[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

func validNumber(s []byte, i int) int {
	digits := func(i int) int {
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return -1
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i
	}
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	default:
		if i = digits(i); i < 0 {
			return -1
		}
	}
	if i < len(s) && s[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}

func skipSpace(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
		i++
	}
	return i
}

// The walkers below take JSON that has been checked.

// skipValue returns the end of the value at s[i].
func skipValue(s []byte, i int) int {
	switch s[i] {
	case '"':
		return skipString(s, i)
	case '{', '[':
		depth := 0
		for ; i < len(s); i++ {
			for i < len(s) && !structural[s[i]] {
				// Indented JSON is much white space: pass it eight bytes at a time.
				if s[i] == ' ' && i+8 <= len(s) && binary.LittleEndian.Uint64(s[i:]) == eightSpaces {
					i += 8
					continue
				}
				i++
			}
			if i == len(s) {
				break
			}
			switch s[i] {
			case '"':
				i = skipString(s, i) - 1
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
		for i < len(s) && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t' {
			i++
		}
		return i
	}
}

const eightSpaces = 0x2020202020202020

// structural are the bytes skipValue stops at within an object or array.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// skipString returns the end of the string at s[i].
func skipString(s []byte, i int) int {
	for j := i + 1; ; {
		k := bytes.IndexByte(s[j:], '"')
		if k < 0 {
			return len(s)
		}
		j += k
		n := 0 // backslashes before the quote
		for n < j-i-1 && s[j-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
}

// eachMember calls fn with the key, quoted as written, and the value of each member of
// the object that obj starts with, in order, and returns the object's length.
func eachMember(obj []byte, fn func(key, value []byte)) int {
	for i := 1; ; {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return min(i+1, len(obj))
		}
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		end := skipString(obj, i)
		key := obj[i:end]
		i = skipSpace(obj, end) + 1 // past ':'
		i = skipSpace(obj, i)
		end = skipValue(obj, i)
		fn(key, obj[i:end])
		i = end
	}
}

// eachElement calls fn with each element of the array arr and its index, in order. fn is
// given arr from the element on, to its end, and returns the element's length.
func eachElement(arr []byte, fn func(i int, rest []byte) (int, error)) error {
	n := 0
	for i := 1; ; {
		i = skipSpace(arr, i)
		if i >= len(arr) || arr[i] == ']' {
			return nil
		}
		if arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
		l, err := fn(n, arr[i:])
		if err != nil {
			return err
		}
		n++
		i += l
	}
}

// keyIs reports whether the quoted key decodes to name.
func keyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key[1:len(key)-1]) == name
	}
	var s string
	return gojson.Unmarshal(key, &s) == nil && s == name
}
