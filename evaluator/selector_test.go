package evaluator

import (
	"math/rand/v2"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Selector gives what apimachinery gives — the same selector or an error — for keys and
// values near every edge of the rules: lengths 63/64 and 253/254, dots, dashes, slashes,
// upper case in a prefix.
func TestSelectorAsApimachinery(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := "aZ09-_./"
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	fixed := []string{"", "a", "app", "app.kubernetes.io/name", "-a", "a-", "a..b", "a.-b", "a-.b", "a--b", "A/b", "a/", "/a", "a/b/c",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 253) + "/b", strings.Repeat("a", 254) + "/b", "a_b", "_a", "a.b.c/d_e.f"}
	var inputs []string
	inputs = append(inputs, fixed...)
	for range 5000 {
		inputs = append(inputs, word(1+r.IntN(8)))
	}
	for i, k := range inputs {
		v := inputs[(i*7+3)%len(inputs)]
		ls := &metav1.LabelSelector{MatchLabels: map[string]string{k: v, "tier": "api"}}
		want, wantErr := metav1.LabelSelectorAsSelector(ls)
		got, err := Selector(ls)
		if (err != nil) != (wantErr != nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("key %q value %q: error %v, apimachinery %v", k, v, err, wantErr)
		}
		if err == nil && got.String() != want.String() {
			t.Fatalf("key %q value %q: %q, apimachinery %q", k, v, got, want)
		}
	}
	for _, ls := range []*metav1.LabelSelector{nil, {}, {MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpExists}}}} {
		want, _ := metav1.LabelSelectorAsSelector(ls)
		if got, err := Selector(ls); err != nil || got.String() != want.String() || got.Empty() != want.Empty() {
			t.Errorf("%v: %v %v, apimachinery %v", ls, got, err, want)
		}
	}
}
