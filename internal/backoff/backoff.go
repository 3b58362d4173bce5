// Package backoff is the wait before retrying that netpol-guard's long-running loops share:
// the flow sources reconnecting to their servers (flows/internal/follow), and the node
// agent pushing to a webhook replica and reopening conntrack. It is a leaf (time and
// math/rand), so the agent links nothing of the flow sources' gRPC through it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// The bounds a Backoff has when its user leaves them unset (Bounds).
const (
	DefaultMin = time.Second
	DefaultMax = time.Minute
)

// Bounds returns min and max with DefaultMin and DefaultMax for those not positive, and max
// raised to min.
func Bounds(minWait, maxWait time.Duration) (time.Duration, time.Duration) {
	if minWait <= 0 {
		minWait = DefaultMin
	}
	if maxWait <= 0 {
		maxWait = DefaultMax
	}
	return minWait, max(maxWait, minWait)
}

// Backoff is exponential backoff: each wait Next returns doubles the one before, from Min up
// to Max, spread by Jitter. Reset starts again from Min. Min and Max are used as they are;
// Bounds fills in defaults.
type Backoff struct {
	Min, Max time.Duration
	// Jitter, when set, spreads each wait (Equal, or a caller's own); nil waits exactly.
	Jitter func(time.Duration) time.Duration

	cur time.Duration // the next wait before jitter; zero: Min
}

// Next returns the wait before the next attempt, and doubles the one after.
func (b *Backoff) Next() time.Duration {
	d := max(b.cur, b.Min)
	b.cur = min(2*d, b.Max)
	if b.Jitter != nil {
		return b.Jitter(d)
	}
	return d
}

// Reset makes the next wait Min again, as after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Equal is "equal jitter": a wait between half and all of d.
func Equal(d time.Duration) time.Duration {
	half := d / 2
	return half + rand.N(d-half+1)
}

// Sleep waits d, or until ctx is done; it says whether it waited all of d.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
