package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"github.com/netpol-guard/netpol-guard/internal/backoff"
)

// ctConn is what the agent uses of a ctnetlink socket (*conntrack.Conn).
type ctConn interface {
	Dump(*conntrack.DumpOptions) ([]conntrack.Flow, error)
	Listen(chan<- conntrack.Event, uint8, []netfilter.NetlinkGroup) (chan error, error)
	SetReadBuffer(int) error
	Close() error
}

var _ ctConn = (*conntrack.Conn)(nil)

// eventGroups are the conntrack multicast groups followed: every event of an entry's life.
var eventGroups = []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTUpdate, netfilter.GroupCTDestroy}

const (
	// eventQueue is how many decoded events wait between the socket and the aggregator.
	eventQueue = 4096
	// maxReaderBackoff bounds the wait before reopening conntrack after an error.
	maxReaderBackoff = 30 * time.Second
)

// readConntrack follows the conntrack table until ctx is done: subscribe to events, dump the
// table, process events; on an overrun start again at once, on another error after a
// backoff.
func (a *Agent) readConntrack(ctx context.Context) {
	b := backoff.Backoff{Min: time.Second, Max: maxReaderBackoff}
	for {
		err := a.readOnce(ctx)
		a.setAlive(false)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, unix.ENOBUFS) {
			// The kernel dropped events: the socket buffer overran. What was missed and is
			// still open comes back with the dump that starts the next round.
			a.metrics.overruns.Inc()
			a.log.Info("Conntrack events overran the socket buffer: dumping the table again", "reason", err.Error())
			b.Reset()
			continue
		}
		a.metrics.readerErrors.Inc()
		wait := b.Next()
		a.log.Error(err, "Reading conntrack failed: retrying", "backoff", wait)
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

// readOnce subscribes to conntrack events, dumps the table (concurrently, on a second
// socket, so events are not held up by a large dump) and processes events until an error or
// ctx is done. Events come first so nothing falls between the dump and the stream.
func (a *Agent) readOnce(ctx context.Context) error {
	events, err := a.dial()
	if err != nil {
		return fmt.Errorf("opening conntrack event socket: %w", err)
	}
	if err := events.SetReadBuffer(a.opts.ReadBuffer); err != nil {
		a.log.Info("Cannot enlarge the conntrack event socket buffer", "bytes", a.opts.ReadBuffer, "reason", err.Error())
	}
	evCh := make(chan conntrack.Event, eventQueue)
	errCh, err := events.Listen(evCh, 1, eventGroups)
	if err != nil {
		events.Close()
		return fmt.Errorf("subscribing to conntrack events: %w", err)
	}
	defer closeListening(events, evCh, errCh, a.observeEvent)

	var resync <-chan time.Time
	if a.opts.ResyncInterval > 0 {
		t := time.NewTicker(a.opts.ResyncInterval)
		defer t.Stop()
		resync = t.C
	}
	dumpDone := make(chan error, 1)
	dumping := true
	go func() { dumpDone <- a.dump() }()
	for {
		select {
		case ev := <-evCh:
			a.observeEvent(ev)
		case err := <-errCh:
			return err
		case err := <-dumpDone:
			dumping = false
			if err != nil {
				return err
			}
			a.setAlive(true)
		case <-resync:
			if !dumping {
				dumping = true
				go func() { dumpDone <- a.dump() }()
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// closeListening closes a listening socket. Its worker may be blocked handing over an event
// or an error, so both are drained until the close (which waits for the worker) is done; the
// events still queued, decoded before the error, are handed to observe.
func closeListening(c ctConn, evCh chan conntrack.Event, errCh chan error, observe func(conntrack.Event)) {
	done := make(chan struct{})
	go func() {
		c.Close()
		close(done)
	}()
	for {
		select {
		case ev := <-evCh:
			observe(ev)
		case <-errCh:
		case <-done:
			for {
				select {
				case ev := <-evCh:
					observe(ev)
				default:
					return
				}
			}
		}
	}
}

// dump reads the whole table on its own socket. Entries of the first complete dump count
// as connections; later dumps (after an overrun, or to keep idle connections fresh) only
// refresh when an edge was last seen.
func (a *Agent) dump() error {
	c, err := a.dial()
	if err != nil {
		return fmt.Errorf("opening conntrack dump socket: %w", err)
	}
	defer c.Close()
	start := time.Now()
	fl, err := c.Dump(nil)
	if err != nil {
		return fmt.Errorf("dumping conntrack table: %w", err)
	}
	initial := !a.dumped.Load()
	var count uint64
	if initial {
		count = 1
	}
	now := time.Now()
	for i := range fl {
		a.observe(&fl[i], kindDump, count, now)
	}
	a.dumped.Store(true)
	a.log.V(1).Info("Conntrack table dumped", "entries", len(fl), "initial", initial, "took", time.Since(start).String())
	return nil
}

// observeEvent takes one conntrack event. A new entry counts as a connection; updates and
// destroys only refresh when its edge was last seen.
func (a *Agent) observeEvent(ev conntrack.Event) {
	if ev.Flow == nil {
		return
	}
	switch ev.Type {
	case conntrack.EventNew:
		a.observe(ev.Flow, kindNew, 1, time.Now())
	case conntrack.EventUpdate:
		a.observe(ev.Flow, kindUpdate, 0, time.Now())
	case conntrack.EventDestroy:
		a.observe(ev.Flow, kindDestroy, 0, time.Now())
	}
}

// observe turns a conntrack entry into an edge and adds it to the current interval.
func (a *Agent) observe(f *conntrack.Flow, kind string, count uint64, now time.Time) {
	a.metrics.events[kind].Inc()
	e, why := edgeOf(f)
	if why == "" && a.self.Load().match(f) {
		why = ignoreSelf
	}
	if why != "" {
		a.metrics.ignored[why].Inc()
		return
	}
	if !a.agg.add(e, count, now.Unix()) {
		a.metrics.dropped[dropAggregationFull].Inc()
	}
}
