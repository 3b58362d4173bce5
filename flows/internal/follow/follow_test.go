package follow

import (
	"testing"
	"time"
)

func TestBackoffDoublesWithJitterUpToMaxAndResets(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second, cur: 100 * time.Millisecond}
	for i, base := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		base *= time.Millisecond
		if d := b.next(); d < base/2 || d > base {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, d, base/2, base)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("wait after reset = %v, want at most 100ms", d)
	}
}
