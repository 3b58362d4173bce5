package human

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second:                "45s",
		12*time.Minute + 59*time.Second: "12m",
		26 * time.Hour:                  "26h",
		71 * time.Hour:                  "71h",
		9*24*time.Hour + time.Hour:      "9d",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%s) = %q, want %q", d, got, want)
		}
	}
}
