package testutil

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	Eventually(t, time.Second, "the third ask", func() bool { return n.Add(1) >= 3 })
	if got := n.Load(); got != 3 {
		t.Errorf("asked %d times, want 3", got)
	}
}

func TestEventuallyFailsWithTheLastError(t *testing.T) {
	ft := &fatalRecorder{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		EventuallyNoError(ft, 30*time.Millisecond, "never", func() error { return errors.New("still broken") })
	}()
	<-done
	if want := "timed out after 30ms waiting until never: still broken"; ft.msg != want {
		t.Errorf("failure %q, want %q", ft.msg, want)
	}
}

// fatalRecorder records Fatalf instead of failing, and ends the goroutine as Fatalf does.
type fatalRecorder struct {
	*testing.T
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
