package hubble

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/netpol-guard/netpol-guard/flows"
)

// Defaults for Options.
const (
	DefaultBatchSize     = 1000
	DefaultBatchInterval = time.Second
	DefaultMinBackoff    = time.Second
	DefaultMaxBackoff    = time.Minute
	DefaultHealthyAfter  = time.Minute
)

// keepaliveTime is how long a quiet connection waits before pinging Relay. Relay keeps
// gRPC's default enforcement, which closes connections that ping more often than every
// five minutes.
const keepaliveTime = 6 * time.Minute

// Options configures a Client.
type Options struct {
	// Address of Hubble Relay as gRPC dials it: "hubble-relay.kube-system.svc:80" in
	// plaintext, port 443 with TLS. Required.
	Address string
	// TLS, when set, connects with TLS; nil is plaintext, Relay's default.
	TLS *TLSOptions
	// BatchSize is the most records handed over at once (default DefaultBatchSize);
	// BatchInterval the longest a record waits for its batch to fill (DefaultBatchInterval).
	BatchSize     int
	BatchInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting, which doubles after each
	// failure and is jittered between half and all of it. A stream that stayed up for
	// HealthyAfter starts again from MinBackoff. Defaults: 1s, 1m, 1m.
	MinBackoff, MaxBackoff, HealthyAfter time.Duration
	// DialOptions are added to the client's own (transport credentials, keepalive).
	DialOptions []grpc.DialOption
	// Log defaults to the package logger.
	Log logr.Logger
}

// TLSOptions are the TLS settings Hubble Relay's clients have (`hubble observe --tls …`).
// Files are read again at each connection attempt, so certificates rotated by cert-manager
// are picked up on the next reconnect.
type TLSOptions struct {
	// CAFiles are PEM bundles of the CAs that sign Relay's certificate (Cilium's
	// hubble-relay-server-certs ca.crt); empty trusts the system roots.
	CAFiles []string
	// CertFile and KeyFile are a PEM client certificate and key for mutual TLS (Cilium's
	// hubble-relay-client-certs); both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name Relay's certificate is checked against; Cilium issues
	// Relay's for *.hubble-relay.cilium.io, e.g. "ui.hubble-relay.cilium.io". Empty: the
	// host of Address.
	ServerName string
}

func (o *TLSOptions) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if len(o.CAFiles) > 0 {
		pool := x509.NewCertPool()
		for _, f := range o.CAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading Hubble Relay CA: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("reading Hubble Relay CA %s: no PEM certificate found", f)
			}
		}
		cfg.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading Hubble Relay client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, errors.New("hubble relay client certificate: both a certificate and a key file are needed")
	}
	return cfg, nil
}

// Stats says how the Client is doing, for metrics and status.
type Stats struct {
	// Connected is true while a flow stream is open.
	Connected bool
	// Reconnects counts connection attempts after the first.
	Reconnects uint64
	// LastError is the error that ended the last stream or attempt; empty before any.
	LastError string
	// LastReceived is when the last flow arrived; LastFlowTime the time of the newest flow.
	LastReceived, LastFlowTime time.Time
	// Flows counts flow events received; Delivered the records handed over.
	Flows, Delivered uint64
	// Skipped counts the flows Convert passed over, by reason.
	Skipped map[SkipReason]uint64
	// LostEvents adds up the events Hubble reported lost (ring buffer overruns, slow
	// clients, unavailable nodes).
	LostEvents uint64
}

// Client follows Hubble Relay's flow stream (observer.Observer/GetFlows with follow) and
// hands the flows Convert takes, in batches, to its callback.
//
// It asks Relay for forwarded and audited, non-reply TCP, UDP and SCTP flows, and for only
// the fields Convert reads, and checks every flow with Convert all the same. When the
// stream ends it reconnects with jittered exponential backoff, asking for the flows since
// the newest it had seen, so a short outage loses nothing Relay's buffers still hold (the
// flows at that instant may come twice, which only adds to an edge's count).
type Client struct {
	opts    Options
	deliver func(context.Context, []flows.Record)
	log     logr.Logger

	mu           sync.Mutex
	stats        Stats
	skipped      [numSkipReasons]uint64
	lastFlowTime time.Time
}

// New returns a Client for Relay at opts.Address that calls deliver with each batch of
// records, from the goroutine that runs Start, one batch at a time; deliver may keep the
// slice. A slow deliver holds up the stream (Relay drops flows for clients that fall
// behind, and reports them as lost events). TLS files are read once here, to fail early.
func New(opts Options, deliver func(ctx context.Context, recs []flows.Record)) (*Client, error) {
	if opts.Address == "" {
		return nil, errors.New("hubble relay address is required")
	}
	if deliver == nil {
		return nil, errors.New("hubble client needs a function to deliver flows to")
	}
	if opts.TLS != nil {
		if _, err := opts.TLS.config(); err != nil {
			return nil, err
		}
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchInterval <= 0 {
		opts.BatchInterval = DefaultBatchInterval
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.HealthyAfter <= 0 {
		opts.HealthyAfter = DefaultHealthyAfter
	}
	l := opts.Log
	if l.GetSink() == nil {
		l = log
	}
	return &Client{opts: opts, deliver: deliver, log: l.WithValues("address", opts.Address)}, nil
}

// NeedLeaderElection is false: every webhook replica keeps its own flow cache, so every
// replica follows Relay. (controller-runtime's manager.LeaderElectionRunnable.)
func (c *Client) NeedLeaderElection() bool { return false }

// Start follows Relay until ctx is done, reconnecting whenever the stream ends, and returns
// nil then, after delivering the records it holds. It fits controller-runtime's
// manager.Runnable.
func (c *Client) Start(ctx context.Context) error {
	b := backoff{min: c.opts.MinBackoff, max: c.opts.MaxBackoff, cur: c.opts.MinBackoff}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.mu.Lock()
			c.stats.Reconnects++
			c.mu.Unlock()
		}
		up, err := c.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if up >= c.opts.HealthyAfter {
			b.reset()
		}
		wait := b.next()
		c.mu.Lock()
		c.stats.LastError = err.Error()
		c.mu.Unlock()
		c.log.Error(err, "Hubble flow stream ended; reconnecting", "after", wait.String(), "streamUp", up.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Stats returns a copy of the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Skipped = make(map[SkipReason]uint64, len(c.skipped))
	for r, n := range c.skipped {
		if n > 0 {
			s.Skipped[SkipReason(r)] = n
		}
	}
	return s
}

// flowFields are the fields of a flow Convert reads, as a field mask (proto names).
var flowFields = []string{"time", "verdict", "Type", "is_reply", "IP", "l4", "source", "destination"}

// request is the GetFlows request for the next stream.
func (c *Client) request() *observerpb.GetFlowsRequest {
	req := &observerpb.GetFlowsRequest{
		Follow: true,
		// Filters within one FlowFilter are ANDed, values within one field ORed. Relay's reply
		// filter, like Convert, leaves out flows whose is_reply is unknown.
		Whitelist: []*flowpb.FlowFilter{{
			Verdict:  []flowpb.Verdict{flowpb.Verdict_FORWARDED, flowpb.Verdict_AUDIT},
			Protocol: []string{"tcp", "udp", "sctp"},
			Reply:    []bool{false},
		}},
		// Relays older than field masks ignore it and send whole flows.
		FieldMask: &fieldmaskpb.FieldMask{Paths: flowFields},
	}
	c.mu.Lock()
	if !c.lastFlowTime.IsZero() {
		req.Since = timestamppb.New(c.lastFlowTime)
	}
	c.mu.Unlock()
	return req
}

func (c *Client) credentials() (credentials.TransportCredentials, error) {
	if c.opts.TLS == nil {
		return insecure.NewCredentials(), nil
	}
	cfg, err := c.opts.TLS.config()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// follow runs one flow stream until it ends or ctx is done, and says how long it was up.
func (c *Client) follow(ctx context.Context) (up time.Duration, err error) {
	creds, err := c.credentials()
	if err != nil {
		return 0, err
	}
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: 30 * time.Second}),
	}, c.opts.DialOptions...)
	conn, err := grpc.NewClient(c.opts.Address, dialOpts...)
	if err != nil {
		return 0, fmt.Errorf("connecting to Hubble Relay: %w", err)
	}
	defer conn.Close()

	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, below
	defer cancel()
	stream, err := observerpb.NewObserverClient(conn).GetFlows(sctx, c.request())
	if err != nil {
		return 0, fmt.Errorf("opening Hubble flow stream: %w", err)
	}
	start := time.Now()
	c.setConnected(true)
	defer c.setConnected(false)
	c.log.V(levelInfo).Info("Following Hubble flows")

	// Recv blocks, so it runs on its own; every message it got is in msgs before its error
	// is in errc.
	msgs := make(chan *observerpb.GetFlowsResponse, 256)
	errc := make(chan error, 1)
	wg.Go(func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-sctx.Done():
				return
			}
		}
	})

	batch := make([]flows.Record, 0, c.opts.BatchSize)
	timer := time.NewTimer(c.opts.BatchInterval)
	timer.Stop()
	defer timer.Stop()
	flush := func(ctx context.Context) {
		timer.Stop()
		if len(batch) == 0 {
			return
		}
		c.deliver(ctx, batch)
		c.mu.Lock()
		c.stats.Delivered += uint64(len(batch))
		c.mu.Unlock()
		batch = make([]flows.Record, 0, c.opts.BatchSize)
	}
	handle := func(m *observerpb.GetFlowsResponse) {
		n := len(batch)
		batch = c.handle(m, batch)
		switch {
		case len(batch) >= c.opts.BatchSize:
			flush(ctx)
		case n == 0 && len(batch) > 0:
			timer.Reset(c.opts.BatchInterval)
		}
	}
	drain := func() {
		for {
			select {
			case m := <-msgs:
				handle(m)
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
				err = errors.New("stream closed by Hubble Relay")
			}
			return time.Since(start), fmt.Errorf("receiving Hubble flows: %w", err)
		case m := <-msgs:
			handle(m)
		case <-timer.C:
			flush(ctx)
		}
	}
}

// handle takes one message off the stream and returns batch with its record, if any.
func (c *Client) handle(m *observerpb.GetFlowsResponse, batch []flows.Record) []flows.Record {
	switch ev := m.GetResponseTypes().(type) {
	case *observerpb.GetFlowsResponse_Flow:
		f := ev.Flow
		rec, skip, err := Convert(f)
		t := validTime(f.GetTime())
		if t.IsZero() {
			t = validTime(m.GetTime())
		}
		c.mu.Lock()
		c.stats.Flows++
		c.stats.LastReceived = time.Now()
		if t.After(c.lastFlowTime) {
			c.lastFlowTime = t
			c.stats.LastFlowTime = t
		}
		if skip != NotSkipped {
			c.skipped[skip]++
		}
		c.mu.Unlock()
		if err != nil {
			if l := c.log.V(levelDebug); l.Enabled() {
				l.Info("Skipping invalid Hubble flow", "error", err.Error(), "node", m.GetNodeName())
			}
		}
		if skip != NotSkipped {
			return batch
		}
		if rec.LastSeen.IsZero() {
			rec.LastSeen = t
		}
		return append(batch, rec)
	case *observerpb.GetFlowsResponse_LostEvents:
		lost := ev.LostEvents
		c.mu.Lock()
		c.stats.LostEvents += lost.GetNumEventsLost()
		c.mu.Unlock()
		c.log.V(levelWarn).Info("Hubble lost flow events", "source", lost.GetSource().String(), "lostEvents", lost.GetNumEventsLost())
	case *observerpb.GetFlowsResponse_NodeStatus:
		ns := ev.NodeStatus
		c.log.V(levelInfo).Info("Hubble node status", "state", ns.GetStateChange().String(), "nodes", ns.GetNodeNames(), "message", ns.GetMessage())
	}
	return batch
}

func (c *Client) setConnected(v bool) {
	c.mu.Lock()
	c.stats.Connected = v
	c.mu.Unlock()
}

// backoff is exponential backoff with "equal jitter": each wait is between half and all of
// a delay that doubles from min up to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(2*b.cur, b.max)
	half := d / 2
	return half + rand.N(d-half+1)
}

func (b *backoff) reset() { b.cur = b.min }
