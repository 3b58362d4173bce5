package flows

// Hand-written forms of the name checks of k8s.io/apimachinery/pkg/api/validate/content,
// which run a regular expression each. They accept exactly what those accept
// (TestNameChecksAgreeWithApimachinery, FuzzNameChecks); the messages for what they reject
// still come from apimachinery.

// isDNS1123Label: content.IsDNS1123Label, [a-z0-9]([-a-z0-9]*[a-z0-9])? of at most 63.
func isDNS1123Label(s string) bool {
	return len(s) <= 63 && isDNSLabelPart(s)
}

// isDNS1123Subdomain: content.IsDNS1123Subdomain, labels joined by dots, at most 253. In
// one pass: it starts and ends with a letter or digit, and a dot has one on either side.
func isDNS1123Subdomain(s string) bool {
	if s == "" || len(s) > 253 || dnsByte[s[0]] != dnsAlnum || dnsByte[s[len(s)-1]] != dnsAlnum {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		switch dnsByte[s[i]] {
		case dnsAlnum, dnsDash:
		case dnsDot:
			if dnsByte[s[i-1]] != dnsAlnum || dnsByte[s[i+1]] != dnsAlnum {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// isDNSLabelPart matches [a-z0-9]([-a-z0-9]*[a-z0-9])? of any length.
func isDNSLabelPart(s string) bool {
	if s == "" || dnsByte[s[0]] != dnsAlnum || dnsByte[s[len(s)-1]] != dnsAlnum {
		return false
	}
	for i := range len(s) {
		if dnsByte[s[i]]&(dnsAlnum|dnsDash) == 0 {
			return false
		}
	}
	return true
}

// What a byte is in a DNS name.
const (
	dnsAlnum = 1 << iota // a lower-case letter or a digit
	dnsDash
	dnsDot
)

var dnsByte = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = dnsAlnum
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = dnsAlnum
	}
	t['-'], t['.'] = dnsDash, dnsDot
	return t
}()

// isLabelKey: content.IsLabelKey, an optional DNS subdomain prefix and '/', then a name.
func isLabelKey(s string) bool {
	for i := range len(s) {
		if s[i] == '/' {
			return i > 0 && isDNS1123Subdomain(s[:i]) && isLabelName(s[i+1:])
		}
	}
	return isLabelName(s)
}

// isLabelValue: content.IsLabelValue, empty or a label name.
func isLabelValue(s string) bool {
	return s == "" || isLabelName(s)
}

// isLabelName matches ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] of at most 63.
func isLabelName(s string) bool {
	if s == "" || len(s) > 63 || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
