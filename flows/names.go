package flows

// Hand-written forms of the name checks of k8s.io/apimachinery/pkg/api/validate/content,
// which run a regular expression each. They accept exactly what those accept
// (TestNameChecksAgreeWithApimachinery, FuzzNameChecks); the messages for what they reject
// still come from apimachinery.

// isDNS1123Label: content.IsDNS1123Label, [a-z0-9]([-a-z0-9]*[a-z0-9])? of at most 63.
func isDNS1123Label(s string) bool {
	return len(s) <= 63 && isDNSLabelPart(s)
}

// isDNS1123Subdomain: content.IsDNS1123Subdomain, labels joined by dots, at most 253.
func isDNS1123Subdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if !isDNSLabelPart(s[start:i]) {
				return false
			}
			start = i + 1
		}
	}
	return true
}

// isDNSLabelPart matches [a-z0-9]([-a-z0-9]*[a-z0-9])? of any length.
func isDNSLabelPart(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

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
