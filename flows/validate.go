package flows

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Bounds on what one peer of a record may carry, so that memory held per peer is bounded
// in bytes, not only in count: a workload's labels (Kubernetes itself allows a pod any
// number, up to 256 KiB in all) and its name.
const (
	MaxPeerLabels     = 64
	MaxPeerLabelBytes = 4 << 10 // keys and values
	MaxWorkloadBytes  = 63 + 1 + 253
)

// Protocols a record may carry, as stored after normalisation.
const (
	ProtocolTCP  = "TCP"
	ProtocolUDP  = "UDP"
	ProtocolSCTP = "SCTP"
)

// fieldError is a finding about one field of a record. Its path reads like kubectl's
// ("src.labels[app]"); Read moves it into a LineError.
type fieldError struct {
	path *field.Path
	err  error
}

func (e *fieldError) Error() string { return e.path.String() + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func fieldErrorf(path *field.Path, format string, args ...any) error {
	return &fieldError{path: path, err: fmt.Errorf(format, args...)}
}

// Normalize checks r and brings it to the one form the rest of netpol-guard relies on:
// the port is in 1..65535; the protocol is TCP, UDP or SCTP in upper case (empty means TCP);
// each peer gives at least one of pod, workload, labels or ip, with a namespace for pod,
// workload and labels; namespaces are RFC 1123 labels, pod names RFC 1123 subdomains,
// workloads "Kind/name" of at most MaxWorkloadBytes, labels valid Kubernetes label keys and
// values, at most MaxPeerLabels of at most MaxPeerLabelBytes per peer; IPs are stored
// canonical (IPv4-mapped IPv6 as IPv4); lastSeen is stored in UTC; empty labels are nil.
//
// The error names the offending field, e.g. `src.ip: invalid IP address "10.0.0.300"`.
// Normalize is idempotent. RawSrc and RawDst are left alone.
func (r *Record) Normalize() error {
	return r.normalize(false, false)
}

// NormalizeCheckedLabels is Normalize for a record whose source labels (srcChecked) or
// destination labels (dstChecked) are a map that passed LabelsValid and has not changed
// since: it does not check that map again. A reader that hands many records one labels
// map, as the Hubble reader does for the records of one endpoint, checks it once.
func (r *Record) NormalizeCheckedLabels(srcChecked, dstChecked bool) error {
	return r.normalize(srcChecked, dstChecked)
}

func (r *Record) normalize(srcChecked, dstChecked bool) error {
	if err := normalizePeer(&r.Src, "src", srcChecked); err != nil {
		return err
	}
	if err := normalizePeer(&r.Dst, "dst", dstChecked); err != nil {
		return err
	}
	if r.Port < 1 || r.Port > 65535 {
		return fieldErrorf(field.NewPath("port"), "must be between 1 and 65535, got %d", r.Port)
	}
	proto, err := normalizeProtocol(r.Protocol)
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

func normalizeProtocol(p string) (string, error) {
	// ASCII-only folding: strings.EqualFold would take "ſctp" for "SCTP".
	switch {
	case p == "" || equalFoldASCII(p, ProtocolTCP):
		return ProtocolTCP, nil
	case equalFoldASCII(p, ProtocolUDP):
		return ProtocolUDP, nil
	case equalFoldASCII(p, ProtocolSCTP):
		return ProtocolSCTP, nil
	}
	return "", fmt.Errorf("unsupported protocol %q: must be TCP, UDP or SCTP", p)
}

// equalFoldASCII reports whether s is upper, an upper-case ASCII word, in any case.
func equalFoldASCII(s, upper string) bool {
	if len(s) != len(upper) {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// normalizePeer checks the peer called name, its labels only when labelsChecked is false.
// The checks are hand-written (names.go) and agree with apimachinery's; its messages are
// asked for only when a check fails.
func normalizePeer(p *Peer, name string, labelsChecked bool) error {
	if len(p.Labels) == 0 {
		p.Labels = nil
	}
	if p.CIDR != "" {
		if p.Namespace != "" || p.Pod != "" || p.Workload != "" || p.Labels != nil || p.IP != "" {
			return fieldErrorf(pathOf(name, "cidr"), "must be given alone: a network of external addresses")
		}
		cidr, err := normalizeCIDR(p.CIDR)
		if err != nil {
			return &fieldError{path: pathOf(name, "cidr"), err: err}
		}
		p.CIDR = cidr
		return nil
	}
	if p.Pod == "" && p.Workload == "" && p.Labels == nil && p.IP == "" {
		return fieldErrorf(field.NewPath(name), "must give at least one of pod, workload, labels, ip or cidr")
	}
	if p.Namespace == "" {
		if p.Pod != "" || p.Workload != "" || p.Labels != nil {
			return fieldErrorf(pathOf(name, "namespace"), "required with pod, workload or labels")
		}
	} else if !isDNS1123Label(p.Namespace) {
		msgs := content.IsDNS1123Label(p.Namespace)
		return fieldErrorf(pathOf(name, "namespace"), "invalid namespace %q: %s", p.Namespace, strings.Join(msgs, "; "))
	}
	if p.Pod != "" && !isDNS1123Subdomain(p.Pod) {
		msgs := content.IsDNS1123Subdomain(p.Pod)
		return fieldErrorf(pathOf(name, "pod"), "invalid pod name %q: %s", p.Pod, strings.Join(msgs, "; "))
	}
	if p.Workload != "" {
		if err := checkWorkload(p.Workload); err != nil {
			return &fieldError{path: pathOf(name, "workload"), err: err}
		}
	}
	if !labelsChecked {
		if err := checkLabels(p.Labels, name); err != nil {
			return err
		}
	}
	if p.IP != "" {
		ip, err := normalizeIP(p.IP)
		if err != nil {
			return &fieldError{path: pathOf(name, "ip"), err: err}
		}
		p.IP = ip
	}
	return nil
}

// LabelsValid reports whether labels pass the check Normalize makes of a peer's labels:
// valid Kubernetes label keys and values, at most MaxPeerLabels of at most
// MaxPeerLabelBytes. See NormalizeCheckedLabels.
func LabelsValid(labels map[string]string) bool {
	_, ok := labelsSize(labels)
	return ok
}

// labelsSize returns the bytes of labels' keys and values (0 when there are more than
// MaxPeerLabels), and whether the labels are within the bounds and all valid.
func labelsSize(labels map[string]string) (size int, ok bool) {
	if len(labels) > MaxPeerLabels {
		return 0, false
	}
	ok = true
	for k, v := range labels {
		size += len(k) + len(v)
		ok = ok && isLabelKey(k) && isLabelValue(v)
	}
	return size, ok && size <= MaxPeerLabelBytes
}

// checkLabels checks label keys and values, and their count and size; of several bad labels
// it names the first key in sorted order.
func checkLabels(labels map[string]string, peer string) error {
	size, ok := labelsSize(labels)
	if ok {
		return nil
	}
	if len(labels) > MaxPeerLabels {
		return fieldErrorf(pathOf(peer, "labels"), "%d labels: at most %d per peer", len(labels), MaxPeerLabels)
	}
	if size > MaxPeerLabelBytes {
		return fieldErrorf(pathOf(peer, "labels"), "%d bytes of labels: at most %d per peer", size, MaxPeerLabelBytes)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if msgs := content.IsLabelKey(k); len(msgs) > 0 {
			return fieldErrorf(pathOf(peer, "labels").Key(k), "invalid label key %q: %s", k, strings.Join(msgs, "; "))
		}
		if msgs := content.IsLabelValue(labels[k]); len(msgs) > 0 {
			return fieldErrorf(pathOf(peer, "labels").Key(k), "invalid label value %q: %s", labels[k], strings.Join(msgs, "; "))
		}
	}
	return nil
}

// checkWorkload accepts "Kind/name" with both parts non-empty and no further slash. Kind
// is usually one Kubernetes spells (Deployment, StatefulSet, DaemonSet, CronJob, Job,
// ReplicaSet, ReplicationController, Pod), but any other is kept as given.
func checkWorkload(w string) error {
	kind, name, ok := strings.Cut(w, "/")
	switch {
	case !utf8.ValidString(w):
		return errors.New("invalid workload: not valid UTF-8")
	case !ok || kind == "" || name == "" || strings.Contains(name, "/"):
		return fmt.Errorf("invalid workload %q: must be Kind/name, e.g. Deployment/cart", w)
	case len(w) > MaxWorkloadBytes:
		return fmt.Errorf("invalid workload: %d bytes, at most %d", len(w), MaxWorkloadBytes)
	}
	return nil
}

// normalizeCIDR returns the network s names in canonical form ("203.0.113.0/24"); host
// bits must be zero.
func normalizeCIDR(s string) (string, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "", fmt.Errorf("invalid CIDR %q", s)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		if !p.IsValid() {
			return "", fmt.Errorf("invalid CIDR %q", s)
		}
	}
	if p.Masked() != p {
		return "", fmt.Errorf("invalid CIDR %q: host bits set (the network is %s)", s, p.Masked())
	}
	return p.String(), nil
}

// normalizeIP returns s in canonical form, s itself when it already is.
func normalizeIP(s string) (string, error) {
	if isCanonicalIPv4(s) {
		return s, nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("invalid IP address %q", s)
	}
	if addr.Zone() != "" {
		return "", fmt.Errorf("invalid IP address %q: must not have a zone", s)
	}
	var buf [64]byte
	if canon := addr.Unmap().AppendTo(buf[:0]); string(canon) != s {
		return string(canon), nil
	}
	return s, nil
}

// isCanonicalIPv4 reports whether s is an IPv4 address as netip writes it: four decimal
// octets of at most 255, without leading zeros.
func isCanonicalIPv4(s string) bool {
	dots, n, digits := 0, 0, 0
	for i := range len(s) {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			if digits > 0 && n == 0 { // a leading zero
				return false
			}
			n, digits = n*10+int(c-'0'), digits+1
			if n > 255 {
				return false
			}
		case c == '.' && digits > 0 && dots < 3:
			dots, n, digits = dots+1, 0, 0
		default:
			return false
		}
	}
	return dots == 3 && digits > 0
}
