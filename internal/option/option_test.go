package option

import (
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{{0, time.Second}, {-1, time.Second}, {time.Minute, time.Minute}} {
		got := tc.in
		Default(&got, time.Second)
		if got != tc.want {
			t.Errorf("Default(%v, 1s) = %v, want %v", tc.in, got, tc.want)
		}
	}
	n := 0.5
	if Default(&n, 2); n != 0.5 {
		t.Errorf("a positive rate was replaced: %v", n)
	}
}
