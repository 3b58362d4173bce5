package evaluator

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Selector is metav1.LabelSelectorAsSelector, the same selector or the same error, made
// cheap for the common selector of match labels only. apimachinery checks each key and
// value with regular expressions, and a fix, a webhook's decision and a compile build
// selectors by the hundred; valid match labels, checked by hand, skip them. Anything else
// (expressions, or a label the quick checks doubt) goes the long way.
func Selector(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil || len(ls.MatchExpressions) > 0 || len(ls.MatchLabels) == 0 {
		return metav1.LabelSelectorAsSelector(ls)
	}
	for k, v := range ls.MatchLabels {
		if !validLabelKey(k) || !validLabelValue(v) {
			return metav1.LabelSelectorAsSelector(ls)
		}
	}
	return labels.SelectorFromValidatedSet(ls.MatchLabels), nil
}

// validLabelKey reports whether k is a qualified name, [prefix/]name: the prefix a DNS
// subdomain of at most 253 characters, the name at most 63 alphanumerics, '-', '_' and '.',
// starting and ending alphanumeric. A false may be wrong (the caller then asks
// apimachinery); a true may not.
func validLabelKey(k string) bool {
	name := k
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			if !validSubdomain(k[:i]) {
				return false
			}
			name = k[i+1:]
			break
		}
	}
	return name != "" && validLabelValue(name)
}

// validLabelValue reports whether v is empty or at most 63 alphanumerics, '-', '_' and '.',
// starting and ending alphanumeric.
func validLabelValue(v string) bool {
	if len(v) > 63 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case alnum(c):
		case (c == '-' || c == '_' || c == '.') && i > 0 && i < len(v)-1:
		default:
			return false
		}
	}
	return true
}

// validSubdomain reports whether s is a DNS-1123 subdomain: at most 253 lower-case
// alphanumerics, '-' and '.', each dot-separated part starting and ending alphanumeric.
func validSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1 && s[i-1] != '.' && s[i+1] != '.':
		case c == '.' && i > 0 && i < len(s)-1 && s[i-1] != '.':
		default:
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
