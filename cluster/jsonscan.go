package cluster

import (
	"bytes"
	gojson "encoding/json"

	"github.com/netpol-guard/netpol-guard/internal/jsonscan"
)

// Walking the JSON of snapshot files, with internal/jsonscan. The input is checked once,
// when it is split into documents; after that, objects and lists are walked by byte ranges
// of the one copy of the input, and only objects of the kinds a snapshot keeps are decoded,
// once, into their types. Nothing is parsed twice for being nested in a List.

// maxJSONDepth is encoding/json's limit on nesting, which the scanner shares so that it
// accepts what the decoders accept.
const maxJSONDepth = 10000

// splitJSONObjects splits a stream of JSON objects, separated by whitespace or nothing,
// into the objects. ok is false when the stream holds anything else: something that is not
// valid JSON, or a value that is not an object; splitJSON then says what.
func splitJSONObjects(data []byte) (docs [][]byte, ok bool) {
	sc := jsonscan.Scanner{S: data, Unescape: true}
	for !sc.AtEnd() {
		start := sc.I
		if data[start] != '{' || !sc.Skip(maxJSONDepth) {
			return nil, false
		}
		docs = append(docs, data[start:sc.I])
	}
	return docs, true
}

// The walkers below take JSON that has been checked.

// eachMember calls fn with the key, quoted as written, and the value of each member of
// the object that obj starts with, in order, and returns the object's length.
func eachMember(obj []byte, fn func(key, value []byte)) int {
	for i := 1; ; {
		i = jsonscan.SkipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return min(i+1, len(obj))
		}
		if obj[i] == ',' {
			i = jsonscan.SkipSpace(obj, i+1)
		}
		end := jsonscan.End(obj, i)
		key := obj[i:end]
		i = jsonscan.SkipSpace(obj, end) + 1 // past ':'
		i = jsonscan.SkipSpace(obj, i)
		end = jsonscan.End(obj, i)
		fn(key, obj[i:end])
		i = end
	}
}

// eachElement calls fn with each element of the array arr and its index, in order. fn is
// given arr from the element on, to its end, and returns the element's length.
func eachElement(arr []byte, fn func(i int, rest []byte) (int, error)) error {
	n := 0
	for i := 1; ; {
		i = jsonscan.SkipSpace(arr, i)
		if i >= len(arr) || arr[i] == ']' {
			return nil
		}
		if arr[i] == ',' {
			i = jsonscan.SkipSpace(arr, i+1)
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
