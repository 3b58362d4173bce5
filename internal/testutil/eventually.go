// Package testutil holds the few helpers the module's tests share, so each is written once:
// waiting for a condition that another goroutine or process brings about.
package testutil

import (
	"testing"
	"time"
)

// pollInterval is how often a condition is asked again.
const pollInterval = 10 * time.Millisecond

// Eventually waits until cond holds, failing the test when it does not within timeout or
// when the test's context ends first. what says what was awaited.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyNoError(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// EventuallyNoError waits until cond returns nil, failing the test with cond's last error
// when it does not within timeout or when the test's context ends first.
func EventuallyNoError(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if err == errNotYet {
				t.Fatalf("timed out after %s waiting until %s", timeout, what)
			}
			t.Fatalf("timed out after %s waiting until %s: %v", timeout, what, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting until %s: %v", what, t.Context().Err())
		case <-time.After(pollInterval):
		}
	}
}

type notYet struct{}

func (notYet) Error() string { return "not yet" }

var errNotYet error = notYet{}
