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
// workloads "Kind/name", labels valid Kubernetes label keys and values; IPs are stored
// canonical (IPv4-mapped IPv6 as IPv4); lastSeen is stored in UTC; empty labels are nil.
//
// The error names the offending field, e.g. `src.ip: invalid IP address "10.0.0.300"`.
// Normalize is idempotent. RawSrc and RawDst are left alone.
func (r *Record) Normalize() error {
	if err := normalizePeer(&r.Src, field.NewPath("src")); err != nil {
		return err
	}
	if err := normalizePeer(&r.Dst, field.NewPath("dst")); err != nil {
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

func normalizePeer(p *Peer, path *field.Path) error {
	if len(p.Labels) == 0 {
		p.Labels = nil
	}
	if p.Pod == "" && p.Workload == "" && p.Labels == nil && p.IP == "" {
		return fieldErrorf(path, "must give at least one of pod, workload, labels or ip")
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
		if err := checkWorkload(p.Workload); err != nil {
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
		ip, err := normalizeIP(p.IP)
		if err != nil {
			return &fieldError{path: path.Child("ip"), err: err}
		}
		p.IP = ip
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
	}
	return nil
}

func normalizeIP(s string) (string, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("invalid IP address %q", s)
	}
	if addr.Zone() != "" {
		return "", fmt.Errorf("invalid IP address %q: must not have a zone", s)
	}
	return addr.Unmap().String(), nil
}
