package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/backoff"
	"github.com/netpol-guard/netpol-guard/internal/option"
)

// Defaults for Options.
const (
	DefaultBatchSize     = 1000
	DefaultBatchInterval = time.Second
	DefaultMinBackoff    = backoff.DefaultMin
	DefaultMaxBackoff    = backoff.DefaultMax
	DefaultHealthyAfter  = time.Minute
)

// keepaliveTime is how long a quiet connection waits before pinging the server. gRPC servers
// keep the default enforcement, which closes connections that ping more often than every
// five minutes.
const keepaliveTime = 6 * time.Minute

// Options configures a Follower.
type Options struct {
	// Server names the server in messages and errors: "Goldmane".
	Server string
	// Address of the server as gRPC dials it ("host:port"). Required.
	Address string
	// TLS, when set, connects with TLS; nil is plaintext.
	TLS *TLSOptions
	Tuning
	// Log defaults to the package logger; a source passes its own (Logger).
	Log logr.Logger
}

// Tuning is how a Follower batches records, reconnects and dials. Each source's Options
// embed it; the zero value takes the defaults.
type Tuning struct {
	// BatchSize is the most records handed over at once (default DefaultBatchSize);
	// BatchInterval the longest a record waits for its batch to fill (DefaultBatchInterval).
	BatchSize     int
	BatchInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting, which doubles after each
	// failure and is jittered between half and all of it. A stream that stayed up for
	// HealthyAfter starts again from MinBackoff. Defaults: 1s, 1m, 1m.
	MinBackoff, MaxBackoff, HealthyAfter time.Duration
	// DialOptions are added to the follower's own (transport credentials, keepalive).
	DialOptions []grpc.DialOption
}

// Logger is l, or def when l is the zero Logger: a source's Options.Log, defaulting to the
// source's package logger.
func Logger(l, def logr.Logger) logr.Logger {
	if l.GetSink() == nil {
		return def
	}
	return l
}

// Next blocks for the stream's next message and returns the records it decodes to, maybe
// none. An error ends the stream.
type Next func() ([]flows.Record, error)

// Receive is the Next of a gRPC stream of messages M, each of which handle turns into
// records.
func Receive[M any](stream grpc.ServerStreamingClient[M], handle func(*M) []flows.Record) Next {
	return func() ([]flows.Record, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return handle(m), nil
	}
}

// Open opens a source's flow stream on conn, asking for history as the source sees fit
// (from the newest flow it has seen, typically). The stream ends when ctx is done.
type Open func(ctx context.Context, conn *grpc.ClientConn) (Next, error)

// Stats says how a Follower is doing, for metrics and status.
type Stats struct {
	// Connected is true while a flow stream is open.
	Connected bool
	// Reconnects counts connection attempts after the first.
	Reconnects uint64
	// LastError is the error that ended the last stream or attempt; empty before any.
	LastError string
	// LastReceived is when the last message arrived.
	LastReceived time.Time
	// Messages counts the messages received; Delivered the records handed over.
	Messages, Delivered uint64
}

// Follower keeps one flow stream open and delivers what it decodes, in batches.
type Follower struct {
	opts    Options
	open    Open
	deliver func(context.Context, []flows.Record)
	log     logr.Logger

	mu    sync.Mutex
	stats Stats
}

// New returns a Follower that opens streams with open and calls deliver with each batch of
// records, from the goroutine that runs Start, one batch at a time; deliver may keep the
// slice. TLS files are read once here, to fail early.
func New(opts Options, open Open, deliver func(ctx context.Context, recs []flows.Record)) (*Follower, error) {
	if opts.Address == "" {
		return nil, fmt.Errorf("%s address is required", opts.Server)
	}
	if open == nil || deliver == nil {
		return nil, fmt.Errorf("%s client needs a function to deliver flows to", opts.Server)
	}
	if opts.TLS != nil {
		if _, err := opts.TLS.Config(opts.Server); err != nil {
			return nil, err
		}
	}
	option.Default(&opts.BatchSize, DefaultBatchSize)
	option.Default(&opts.BatchInterval, DefaultBatchInterval)
	opts.MinBackoff, opts.MaxBackoff = backoff.Bounds(opts.MinBackoff, opts.MaxBackoff)
	option.Default(&opts.HealthyAfter, DefaultHealthyAfter)
	l := Logger(opts.Log, log)
	return &Follower{opts: opts, open: open, deliver: deliver, log: l.WithValues("address", opts.Address)}, nil
}

// Log is the follower's logger, with the server's address: the one a source logs its
// stream's events with.
func (f *Follower) Log() logr.Logger { return f.log }

// NeedLeaderElection is false: every webhook replica keeps its own flow cache, so every
// replica follows the server. With Start, a source that embeds the Follower is a
// controller-runtime manager.Runnable (and LeaderElectionRunnable).
func (f *Follower) NeedLeaderElection() bool { return false }

// Start follows the stream until ctx is done, reconnecting whenever it ends, and returns nil
// then, after delivering the records it holds.
func (f *Follower) Start(ctx context.Context) error {
	b := backoff.Backoff{Min: f.opts.MinBackoff, Max: f.opts.MaxBackoff, Jitter: backoff.Equal}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			f.mu.Lock()
			f.stats.Reconnects++
			f.mu.Unlock()
		}
		up, err := f.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if up >= f.opts.HealthyAfter {
			b.Reset()
		}
		wait := b.Next()
		f.mu.Lock()
		f.stats.LastError = err.Error()
		f.mu.Unlock()
		f.log.Error(err, "Flow stream ended; reconnecting", "server", f.opts.Server, "after", wait.String(), "streamUp", up.String())
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

// Stats returns a copy of the follower's counters.
func (f *Follower) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *Follower) credentials() (credentials.TransportCredentials, error) {
	if f.opts.TLS == nil {
		return insecure.NewCredentials(), nil
	}
	cfg, err := f.opts.TLS.Config(f.opts.Server)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// follow runs one stream until it ends or ctx is done, and says how long it was up.
func (f *Follower) follow(ctx context.Context) (up time.Duration, err error) {
	creds, err := f.credentials()
	if err != nil {
		return 0, err
	}
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: 30 * time.Second}),
	}, f.opts.DialOptions...)
	conn, err := grpc.NewClient(f.opts.Address, dialOpts...)
	if err != nil {
		return 0, fmt.Errorf("connecting to %s: %w", f.opts.Server, err)
	}
	defer conn.Close()

	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, below
	defer cancel()
	next, err := f.open(sctx, conn)
	if err != nil {
		return 0, fmt.Errorf("opening %s flow stream: %w", f.opts.Server, err)
	}
	start := time.Now()
	f.setConnected(true)
	defer f.setConnected(false)
	f.log.V(levelInfo).Info("Following flows", "server", f.opts.Server)

	// Next blocks, so it runs on its own; every message it got is in msgs before its error
	// is in errc.
	msgs := make(chan []flows.Record, 256)
	errc := make(chan error, 1)
	wg.Go(func() {
		for {
			recs, err := next()
			if err != nil {
				errc <- err
				return
			}
			f.mu.Lock()
			f.stats.Messages++
			f.stats.LastReceived = time.Now()
			f.mu.Unlock()
			if len(recs) == 0 {
				continue
			}
			select {
			case msgs <- recs:
			case <-sctx.Done():
				return
			}
		}
	})

	batch := make([]flows.Record, 0, f.opts.BatchSize)
	timer := time.NewTimer(f.opts.BatchInterval)
	timer.Stop()
	defer timer.Stop()
	flush := func(ctx context.Context) {
		timer.Stop()
		if len(batch) == 0 {
			return
		}
		f.deliver(ctx, batch)
		f.mu.Lock()
		f.stats.Delivered += uint64(len(batch))
		f.mu.Unlock()
		batch = make([]flows.Record, 0, f.opts.BatchSize)
	}
	handle := func(recs []flows.Record) {
		wasEmpty := len(batch) == 0
		for _, r := range recs {
			batch = append(batch, r)
			if len(batch) >= f.opts.BatchSize {
				flush(ctx)
			}
		}
		if wasEmpty && len(batch) > 0 {
			timer.Reset(f.opts.BatchInterval)
		}
	}
	drain := func() {
		for {
			select {
			case recs := <-msgs:
				handle(recs)
			default:
				return
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			drain()
			flush(context.WithoutCancel(ctx))
			return time.Since(start), ctx.Err()
		case err := <-errc:
			drain()
			if ctx.Err() != nil {
				flush(context.WithoutCancel(ctx))
			} else {
				flush(ctx)
			}
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("stream closed by %s", f.opts.Server)
			}
			return time.Since(start), fmt.Errorf("receiving %s flows: %w", f.opts.Server, err)
		case recs := <-msgs:
			handle(recs)
		case <-timer.C:
			flush(ctx)
		}
	}
}

func (f *Follower) setConnected(v bool) {
	f.mu.Lock()
	f.stats.Connected = v
	f.mu.Unlock()
}
