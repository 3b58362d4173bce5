package backoff

import (
	"context"
	"testing"
	"time"
)

func TestBackoffDoublesWithJitterUpToMaxAndResets(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second, Jitter: Equal}
	for i, base := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		base *= time.Millisecond
		if d := b.Next(); d < base/2 || d > base {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, d, base/2, base)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("wait after reset = %v, want at most 100ms", d)
	}
}

func TestBackoffWithoutJitterWaitsExactlyAndStopsAtMax(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 30 * time.Second}
	for i, want := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
		want *= time.Second
		if d := b.Next(); d != want {
			t.Errorf("wait %d = %v, want %v", i, d, want)
		}
	}
}

func TestBoundsFillsDefaultsAndRaisesMaxToMin(t *testing.T) {
	tests := []struct {
		name             string
		minIn, maxIn     time.Duration
		wantMin, wantMax time.Duration
	}{
		{"unset bounds are the defaults", 0, 0, DefaultMin, DefaultMax},
		{"negative bounds are the defaults", -1, -1, DefaultMin, DefaultMax},
		{"set bounds are kept", time.Millisecond, time.Second, time.Millisecond, time.Second},
		{"a max below min is raised to min", 2 * time.Minute, time.Second, 2 * time.Minute, 2 * time.Minute},
		{"a min above the default max raises it", 2 * time.Minute, 0, 2 * time.Minute, 2 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if gotMin, gotMax := Bounds(tt.minIn, tt.maxIn); gotMin != tt.wantMin || gotMax != tt.wantMax {
				t.Errorf("Bounds(%v, %v) = %v, %v, want %v, %v", tt.minIn, tt.maxIn, gotMin, gotMax, tt.wantMin, tt.wantMax)
			}
		})
	}
}

func TestSleepReturnsEarlyWhenTheContextEnds(t *testing.T) {
	if !Sleep(t.Context(), time.Millisecond) {
		t.Error("Sleep of 1ms with a live context did not wait it out")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep with a cancelled context says it waited")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Sleep with a cancelled context took %v", d)
	}
}
