package flows

// The JSON Lines decoder as it was before the hand-written scanner: encoding/json tokens,
// regular expressions for names, field paths built up front. It is kept here, and only
// here, as the reference FuzzReadMatchesReference holds the decoder to.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// refRead is Read with the reference decoder.
func refRead(r io.Reader, source string, fn func(line int, rec Record) error) error {
	sc := bufio.NewScanner(r)
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
		rec, err := refDecodeRecord(b)
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

// refDecodeRecord decodes one trimmed, non-empty line and normalises the record.
func refDecodeRecord(line []byte) (Record, error) {
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
	err := refDecodeObject(line, refTopLevel, func(key string, path *field.Path, v json.RawMessage) error {
		var err error
		switch key {
		case "src":
			if refIsNull(v) {
				return nil
			}
			rec.Src, err = refDecodePeer(v, path)
			rec.RawSrc = v
		case "dst":
			if refIsNull(v) {
				return nil
			}
			rec.Dst, err = refDecodePeer(v, path)
			rec.RawDst = v
		case "port":
			rec.Port, hasPort, err = refDecodePort(v, path)
		case "protocol":
			rec.Protocol, err = refDecodeString(v, path)
		case "lastSeen":
			var s string
			if s, err = refDecodeString(v, path); err == nil && s != "" {
				if rec.LastSeen, err = time.Parse(time.RFC3339, s); err != nil {
					err = fieldErrorf(path, "invalid time %q: must be RFC 3339, e.g. 2026-11-20T10:00:00Z", s)
				}
			}
		case "count":
			rec.Count, err = refDecodeCount(v, path)
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
	if err := refNormalize(&rec); err != nil {
		return Record{}, err
	}
	return rec, nil
}

func refTopLevel(key string) *field.Path { return field.NewPath(key) }

func refDecodePeer(v json.RawMessage, path *field.Path) (Peer, error) {
	var p Peer
	if v[0] != '{' {
		return p, fieldErrorf(path, "must be an object, not %s", JSONKind(v))
	}
	err := refDecodeObject(v, func(k string) *field.Path { return path.Child(k) }, func(key string, path *field.Path, v json.RawMessage) error {
		var err error
		switch key {
		case "namespace":
			p.Namespace, err = refDecodeString(v, path)
		case "pod":
			p.Pod, err = refDecodeString(v, path)
		case "workload":
			p.Workload, err = refDecodeString(v, path)
		case "ip":
			p.IP, err = refDecodeString(v, path)
		case "cidr":
			p.CIDR, err = refDecodeString(v, path)
		case "labels":
			p.Labels, err = refDecodeLabels(v, path)
		default:
			err = fieldErrorf(path, "unknown field")
		}
		return err
	})
	return p, err
}

func refDecodeLabels(v json.RawMessage, path *field.Path) (map[string]string, error) {
	if refIsNull(v) {
		return nil, nil
	}
	if v[0] != '{' {
		return nil, fieldErrorf(path, "must be an object, not %s", JSONKind(v))
	}
	labels := map[string]string{}
	err := refDecodeObject(v, path.Key, func(key string, path *field.Path, v json.RawMessage) error {
		if v[0] != '"' {
			return fieldErrorf(path, "must be a string, not %s", JSONKind(v))
		}
		s, err := refDecodeString(v, path)
		labels[key] = s
		return err
	})
	return labels, err
}

// refDecodeObject walks the members of the JSON object data (known to be syntactically
// valid) in order, calling set with each key, its field path and its exact value bytes.
// A key given twice is an error.
func refDecodeObject(data []byte, child func(key string) *field.Path, set func(key string, path *field.Path, v json.RawMessage) error) error {
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

// refDecodeString decodes a JSON string; null is the empty string.
func refDecodeString(v json.RawMessage, path *field.Path) (string, error) {
	if refIsNull(v) {
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

// refDecodePort decodes a JSON integer in 1..65535. null is absent: ok is false.
func refDecodePort(v json.RawMessage, path *field.Path) (port int32, ok bool, err error) {
	if refIsNull(v) {
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

// refDecodeCount decodes a non-negative JSON integer; null is 0.
func refDecodeCount(v json.RawMessage, path *field.Path) (uint64, error) {
	if refIsNull(v) {
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

func refIsNull(v json.RawMessage) bool { return string(v) == "null" }

// refNormalize is Record.Normalize as it was.
func refNormalize(r *Record) error {
	if err := refNormalizePeer(&r.Src, field.NewPath("src")); err != nil {
		return err
	}
	if err := refNormalizePeer(&r.Dst, field.NewPath("dst")); err != nil {
		return err
	}
	if r.Port < 1 || r.Port > 65535 {
		return fieldErrorf(field.NewPath("port"), "must be between 1 and 65535, got %d", r.Port)
	}
	proto, err := refNormalizeProtocol(r.Protocol)
	if err != nil {
		return &fieldError{path: field.NewPath("protocol"), err: err}
	}
	r.Protocol = proto
	if !r.LastSeen.IsZero() {
		r.LastSeen = r.LastSeen.UTC()
		// Years outside 0..9999 cannot be written back as RFC 3339.
		if y := r.LastSeen.Year(); y < 0 || y > 9999 {
			return fieldErrorf(field.NewPath("lastSeen"), "year %d out of range 0..9999 in UTC", y)
		}
	}
	return nil
}

func refNormalizeProtocol(p string) (string, error) {
	if p == "" {
		return ProtocolTCP, nil
	}
	// ASCII-only folding: strings.ToUpper would turn "ſctp" into "SCTP".
	up := []byte(p)
	for i, c := range up {
		if 'a' <= c && c <= 'z' {
			up[i] = c - 'a' + 'A'
		}
	}
	switch s := string(up); s {
	case ProtocolTCP, ProtocolUDP, ProtocolSCTP:
		return s, nil
	}
	return "", fmt.Errorf("unsupported protocol %q: must be TCP, UDP or SCTP", p)
}

func refNormalizePeer(p *Peer, path *field.Path) error {
	if len(p.Labels) == 0 {
		p.Labels = nil
	}
	if p.CIDR != "" {
		if p.Namespace != "" || p.Pod != "" || p.Workload != "" || p.Labels != nil || p.IP != "" {
			return fieldErrorf(path.Child("cidr"), "must be given alone: a network of external addresses")
		}
		cidr, err := normalizeCIDR(p.CIDR)
		if err != nil {
			return &fieldError{path: path.Child("cidr"), err: err}
		}
		p.CIDR = cidr
		return nil
	}
	if p.Pod == "" && p.Workload == "" && p.Labels == nil && p.IP == "" {
		return fieldErrorf(path, "must give at least one of pod, workload, labels, ip or cidr")
	}
	if p.Namespace == "" {
		if p.Pod != "" || p.Workload != "" || p.Labels != nil {
			return fieldErrorf(path.Child("namespace"), "required with pod, workload or labels")
		}
	} else if msgs := content.IsDNS1123Label(p.Namespace); len(msgs) > 0 {
		return fieldErrorf(path.Child("namespace"), "invalid namespace %q: %s", p.Namespace, strings.Join(msgs, "; "))
	}
	if p.Pod != "" {
		if msgs := content.IsDNS1123Subdomain(p.Pod); len(msgs) > 0 {
			return fieldErrorf(path.Child("pod"), "invalid pod name %q: %s", p.Pod, strings.Join(msgs, "; "))
		}
	}
	if p.Workload != "" {
		if err := refCheckWorkload(p.Workload); err != nil {
			return &fieldError{path: path.Child("workload"), err: err}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.Labels)) {
		if msgs := content.IsLabelKey(k); len(msgs) > 0 {
			return fieldErrorf(path.Child("labels").Key(k), "invalid label key %q: %s", k, strings.Join(msgs, "; "))
		}
		if msgs := content.IsLabelValue(p.Labels[k]); len(msgs) > 0 {
			return fieldErrorf(path.Child("labels").Key(k), "invalid label value %q: %s", p.Labels[k], strings.Join(msgs, "; "))
		}
	}
	if p.IP != "" {
		ip, err := refNormalizeIP(p.IP)
		if err != nil {
			return &fieldError{path: path.Child("ip"), err: err}
		}
		p.IP = ip
	}
	return nil
}

// refCheckWorkload accepts "Kind/name" with both parts non-empty and no further slash. Kind
// is usually one Kubernetes spells (Deployment, StatefulSet, DaemonSet, CronJob, Job,
// ReplicaSet, ReplicationController, Pod), but any other is kept as given.
func refCheckWorkload(w string) error {
	kind, name, ok := strings.Cut(w, "/")
	switch {
	case !utf8.ValidString(w):
		return errors.New("invalid workload: not valid UTF-8")
	case !ok || kind == "" || name == "" || strings.Contains(name, "/"):
		return fmt.Errorf("invalid workload %q: must be Kind/name, e.g. Deployment/cart", w)
	}
	return nil
}

func refNormalizeIP(s string) (string, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("invalid IP address %q", s)
	}
	if addr.Zone() != "" {
		return "", fmt.Errorf("invalid IP address %q: must not have a zone", s)
	}
	return addr.Unmap().String(), nil
}
