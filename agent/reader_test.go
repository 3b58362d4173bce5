package agent

import (
	"context"
	"errors"
	"fmt"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// fakeKernel plays ctnetlink: every dump returns table; every Listen plays the next script
// (events, then an error if any) and then waits, as the library's worker does, until closed.
type fakeKernel struct {
	table []conntrack.Flow

	mu      sync.Mutex
	scripts []listenScript
	dumps   atomic.Int32
	listens atomic.Int32
	open    atomic.Int32
}

type listenScript struct {
	events []conntrack.Event
	err    error
}

func (k *fakeKernel) dial() (ctConn, error) {
	k.open.Add(1)
	return &fakeConn{k: k, closed: make(chan struct{})}, nil
}

type fakeConn struct {
	k         *fakeKernel
	closed    chan struct{}
	closeOnce sync.Once
	workers   sync.WaitGroup
}

func (c *fakeConn) Dump(*conntrack.DumpOptions) ([]conntrack.Flow, error) {
	c.k.dumps.Add(1)
	return append([]conntrack.Flow(nil), c.k.table...), nil
}

func (c *fakeConn) SetReadBuffer(int) error { return nil }

func (c *fakeConn) Listen(evCh chan<- conntrack.Event, _ uint8, groups []netfilter.NetlinkGroup) (chan error, error) {
	if len(groups) != 3 {
		return nil, fmt.Errorf("joined %d groups, want new, update and destroy", len(groups))
	}
	c.k.listens.Add(1)
	c.k.mu.Lock()
	var s listenScript
	if len(c.k.scripts) > 0 {
		s, c.k.scripts = c.k.scripts[0], c.k.scripts[1:]
	}
	c.k.mu.Unlock()
	errCh := make(chan error)
	c.workers.Add(1)
	go func() {
		defer c.workers.Done()
		for _, ev := range s.events {
			select {
			case evCh <- ev:
			case <-c.closed:
				return
			}
		}
		if s.err != nil {
			select {
			case errCh <- s.err:
			case <-c.closed:
			}
			return
		}
		<-c.closed
	}()
	return errCh, nil
}

func (c *fakeConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.k.open.Add(-1)
	})
	c.workers.Wait()
	return nil
}

func TestReaderOverrunCountsAndDumpsAgain(t *testing.T) {
	idle := ctFlow(protoTCP, "10.0.1.5:40000", "10.96.0.10:80", "10.0.2.7:8080", "10.0.1.5:40000")
	fresh := ctFlow(protoUDP, "10.0.1.5:53000", "10.0.3.3:53", "10.0.3.3:53", "10.0.1.5:53000")
	k := &fakeKernel{
		table: []conntrack.Flow{*idle},
		scripts: []listenScript{
			{events: []conntrack.Event{{Type: conntrack.EventNew, Flow: fresh}}, err: fmt.Errorf("Receive() netlink error, closing worker 0: %w", unix.ENOBUFS)},
			{events: []conntrack.Event{{Type: conntrack.EventUpdate, Flow: fresh}, {Type: conntrack.EventDestroy, Flow: fresh}}},
		},
	}
	a := newTestAgent(t, func(o *Options) { o.ResyncInterval = -1 })
	a.dial = k.dial
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.readConntrack(ctx)
	}()
	testutil.Eventually(t, 5*time.Second, "the second round", func() bool {
		return k.dumps.Load() == 2 && a.alive.Load() && value(t, a.metrics.events[kindDestroy]) == 1
	})
	if v := value(t, a.metrics.overruns); v != 1 {
		t.Errorf("overruns = %v, want 1", v)
	}
	if v := value(t, a.metrics.readerErrors); v != 0 {
		t.Errorf("reader errors = %v, want 0", v)
	}
	if err := a.Healthz(nil); err != nil {
		t.Errorf("Healthz: %v", err)
	}
	got := a.agg.flush()
	// The idle connection counts once (the first dump), not again for the re-dump.
	if s := got[mkEdge(protoTCP, "10.0.1.5", "10.0.2.7:8080")]; s.count != 1 {
		t.Errorf("idle connection counted %d times, want 1", s.count)
	}
	if s := got[mkEdge(protoUDP, "10.0.1.5", "10.0.3.3:53")]; s.count != 1 {
		t.Errorf("UDP connection counted %d times, want 1", s.count)
	}
	cancel()
	<-done
	if n := k.open.Load(); n != 0 {
		t.Errorf("%d conntrack sockets left open", n)
	}
}

func TestReaderErrorsAreRetriedAndHealthFailsAfterTheGrace(t *testing.T) {
	a := newTestAgent(t, nil)
	var dials atomic.Int32
	a.dial = func() (ctConn, error) {
		dials.Add(1)
		return nil, errors.New("operation not permitted")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.readConntrack(ctx)
	}()
	testutil.Eventually(t, 5*time.Second, "a retry", func() bool { return dials.Load() >= 2 })
	cancel()
	<-done
	if v := value(t, a.metrics.readerErrors); v < 1 {
		t.Errorf("reader errors = %v, want at least 1", v)
	}
	if err := a.Healthz(nil); err != nil {
		t.Errorf("Healthz within the grace: %v", err)
	}
	a.aliveAt.Store(time.Now().Add(-HealthGrace - time.Second).UnixNano())
	if err := a.Healthz(nil); err == nil {
		t.Error("Healthz after the grace with the reader down: want an error")
	}
}
