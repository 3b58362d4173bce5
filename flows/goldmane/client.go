package goldmane

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/goldmane/goldmanepb"
	"github.com/netpol-guard/netpol-guard/flows/internal/convert"
	"github.com/netpol-guard/netpol-guard/flows/internal/follow"
)

// Defaults for Options.
const (
	// DefaultBackfill is how far back the first stream asks for flows: Goldmane keeps an
	// hour of them by default.
	DefaultBackfill      = time.Hour
	DefaultBatchSize     = follow.DefaultBatchSize
	DefaultBatchInterval = follow.DefaultBatchInterval
	DefaultMinBackoff    = follow.DefaultMinBackoff
	DefaultMaxBackoff    = follow.DefaultMaxBackoff
	DefaultHealthyAfter  = follow.DefaultHealthyAfter
)

// aggregationInterval is the only interval Goldmane streams flows at: each FlowResult
// covers 15 seconds of one flow.
const aggregationInterval = 15 * time.Second

// TLSOptions are the settings of the mutual TLS Goldmane requires: it verifies client
// certificates against the CA that signs its own (the Tigera operator's CA, in
// calico-system's tigera-ca-bundle), and lets any certificate that CA signed read all flows.
// Files are read again at each connection attempt, so rotated certificates are picked up on
// the next reconnect.
type TLSOptions = follow.TLSOptions

// Tuning is how the client batches records (BatchSize, BatchInterval), reconnects
// (MinBackoff, MaxBackoff, HealthyAfter) and dials (DialOptions).
type Tuning = follow.Tuning

// Options configures a Client.
type Options struct {
	// Address of Goldmane as gRPC dials it, e.g. "goldmane.calico-system.svc:7443".
	// Required.
	Address string
	// TLS is required, with a client certificate and key: Goldmane serves only mutual TLS.
	TLS TLSOptions
	// Backfill is how far back the first stream asks for flows (default DefaultBackfill);
	// after a reconnect the client asks from the start of the newest flow it had seen, less
	// one aggregation interval, and never further back than Backfill. Goldmane takes these
	// as seconds before its own clock, so clock skew between us and it does not matter.
	Backfill time.Duration
	// Tuning sets batches, reconnects and dial options; the zero value takes the defaults.
	Tuning
	// OnVerdict, when set, is called with every flow whose verdict Calico's dataplane
	// settled (Verdict.Final) and whose ends can be named, allowed or denied, so the caller
	// can compare it with its own prediction (Metrics.CompareVerdict). It is called from
	// the goroutine that receives flows, and must be quick.
	OnVerdict func(rec flows.Record, dataplaneAllowed bool)
	// Metrics, when set, counts received and skipped flows.
	Metrics *Metrics
	// Log defaults to the package logger.
	Log logr.Logger
}

// Stats says how the Client is doing, for metrics and status.
type Stats struct {
	// The stream's: connected, reconnects, the last error, the last message received,
	// the records delivered.
	follow.Stats
	// LastFlowStart is the start of the newest flow.
	LastFlowStart time.Time
	// Flows counts flows received; Verdicts the flows passed to OnVerdict.
	Flows, Verdicts uint64
	// Skipped counts the flows not handed over, by reason.
	Skipped map[SkipReason]uint64
}

// Client follows Goldmane's flow stream (goldmane.Flows/Stream) and hands the records
// Convert makes, in batches, to its callback.
//
// It asks for the last Backfill of history first, and, when the stream ends, reconnects
// with jittered exponential backoff, asking again from the newest flow it had seen, so an
// outage shorter than Goldmane's history loses nothing (the flows of the interval it broke
// off in come twice, which only adds to an edge's count).
type Client struct {
	opts Options
	// The Follower keeps the stream open: Start and NeedLeaderElection are its.
	*follow.Follower
	now func() time.Time

	mu        sync.Mutex
	flows     uint64
	verdicts  uint64
	skipped   [numSkipReasons]uint64
	lastStart time.Time
}

// New returns a Client for Goldmane at opts.Address that calls deliver with each batch of
// records, from the goroutine that runs Start, one batch at a time; deliver may keep the
// slice. A slow deliver holds up the stream. TLS files are read once here, to fail early.
func New(opts Options, deliver func(ctx context.Context, recs []flows.Record)) (*Client, error) {
	if !opts.TLS.ClientCert() {
		return nil, errors.New("goldmane requires mutual TLS: a client certificate and key file are needed")
	}
	if opts.Backfill <= 0 {
		opts.Backfill = DefaultBackfill
	}
	c := &Client{opts: opts, now: time.Now}
	var err error
	if c.Follower, err = follow.New(follow.Options{
		Server: "Goldmane", Address: opts.Address, TLS: &c.opts.TLS,
		Tuning: opts.Tuning, Log: follow.Logger(opts.Log, log),
	}, c.open, deliver); err != nil {
		return nil, err
	}
	return c, nil
}

// Stats returns a copy of the client's counters: the stream's, the flows taken and skipped,
// and the verdicts handed to OnVerdict.
func (c *Client) Stats() Stats {
	c.mu.Lock() // before the follower's: it never calls back holding its own
	defer c.mu.Unlock()
	fs := c.Follower.Stats()
	return Stats{Stats: fs, LastFlowStart: c.lastStart, Flows: c.flows, Verdicts: c.verdicts,
		Skipped: convert.Counts[SkipReason](c.skipped[:])}
}

// request is the Stream request for the next stream.
func (c *Client) request() *pb.FlowStreamRequest {
	c.mu.Lock()
	last := c.lastStart
	c.mu.Unlock()
	back := c.opts.Backfill
	if !last.IsZero() {
		back = min(back, c.now().Sub(last)+aggregationInterval)
	}
	// Negative: seconds before Goldmane's now; zero would mean "from now on".
	secs := max(int64(math.Ceil(back.Seconds())), 1)
	return &pb.FlowStreamRequest{StartTimeGte: -secs, AggregationInterval: int64(aggregationInterval / time.Second)}
}

func (c *Client) open(ctx context.Context, conn *grpc.ClientConn) (follow.Next, error) {
	req := c.request()
	stream, err := pb.NewFlowsClient(conn).Stream(ctx, req)
	if err != nil {
		return nil, err
	}
	c.Log().V(levelInfo).Info("Following Goldmane flows", "backfillSeconds", -req.GetStartTimeGte())
	return follow.Receive(stream, c.handle), nil
}

// handle converts the flow of one message, counts it, reports its verdict, and returns its
// record when it is to be delivered.
func (c *Client) handle(m *pb.FlowResult) []flows.Record {
	f := m.GetFlow()
	res, skip, err := Convert(f)
	report := c.opts.OnVerdict != nil && res.Verdict.Final && (skip == NotSkipped || skip == SkipDenied)
	c.mu.Lock()
	c.flows++
	if skip != NotSkipped {
		c.skipped[skip]++
	}
	if t := unixTime(f.GetStartTime()); t.After(c.lastStart) {
		c.lastStart = t
	}
	if report {
		c.verdicts++
	}
	c.mu.Unlock()
	c.opts.Metrics.countFlow(skip)
	if err != nil {
		if l := c.Log().V(levelDebug); l.Enabled() {
			l.Info("Skipping invalid Goldmane flow", "error", err.Error())
		}
	}
	if report {
		c.opts.OnVerdict(res.Record, res.Verdict.Allowed)
	}
	if skip != NotSkipped {
		return nil
	}
	return []flows.Record{res.Record}
}
