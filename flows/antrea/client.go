package antrea

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/antrea/antreapb"
	"github.com/netpol-guard/netpol-guard/flows/internal/convert"
	"github.com/netpol-guard/netpol-guard/flows/internal/follow"
)

// Defaults for Options.
const (
	DefaultBatchSize     = follow.DefaultBatchSize
	DefaultBatchInterval = follow.DefaultBatchInterval
	DefaultMinBackoff    = follow.DefaultMinBackoff
	DefaultMaxBackoff    = follow.DefaultMaxBackoff
	DefaultHealthyAfter  = follow.DefaultHealthyAfter
)

// TLSOptions are the TLS settings of the Flow Aggregator's FlowStreamService, which serves
// TLS only, with the certificate its own CA signs (published in the flow-aggregator
// namespace's ConfigMap flow-aggregator-ca, key ca.crt), and asks for no client
// certificate. Files are read again at each connection attempt.
type TLSOptions = follow.TLSOptions

// Tuning is how the client batches records (BatchSize, BatchInterval), reconnects
// (MinBackoff, MaxBackoff, HealthyAfter) and dials (DialOptions).
type Tuning = follow.Tuning

// Options configures a Client.
type Options struct {
	// Address of the Flow Aggregator's FlowStreamService as gRPC dials it, e.g.
	// "flow-aggregator.flow-aggregator.svc:14740". Required.
	Address string
	// TLS settings; the FlowStreamService serves TLS only.
	TLS TLSOptions
	// Tuning sets batches, reconnects and dial options; the zero value takes the defaults.
	Tuning
	// Log defaults to the package logger.
	Log logr.Logger
}

// Stats says how the Client is doing, for metrics and status.
type Stats struct {
	// The stream's: connected, reconnects, the last error, the last message received,
	// the records delivered.
	follow.Stats
	// LastFlowEnd is the end of the newest flow.
	LastFlowEnd time.Time
	// Flows counts flows received.
	Flows uint64
	// Skipped counts the flows Convert passed over, by reason.
	Skipped map[SkipReason]uint64
	// Dropped adds up the flows the Flow Aggregator dropped because this client fell behind
	// (its ring buffer wrapped around), as each stream last reported them.
	Dropped uint64
}

// Client follows the Flow Aggregator's flow stream (FlowStreamService.GetFlows with
// follow) and hands the records Convert makes, in batches, to its callback.
//
// The first stream starts with the flows in the aggregator's ring buffer; when a stream
// ends the client reconnects with jittered exponential backoff, asking for the flows that
// ended since the newest it had seen (those that ended at that instant may come twice,
// which only adds to an edge's count).
type Client struct {
	opts Options
	// The Follower keeps the stream open: Start and NeedLeaderElection are its.
	*follow.Follower

	mu          sync.Mutex
	flows       uint64
	skipped     [numSkipReasons]uint64
	lastEnd     time.Time
	dropped     uint64 // by the streams that ended
	streamDrops uint64 // by the current stream, cumulative
}

// New returns a Client for the Flow Aggregator at opts.Address that calls deliver with each
// batch of records, from the goroutine that runs Start, one batch at a time; deliver may
// keep the slice. TLS files are read once here, to fail early.
func New(opts Options, deliver func(ctx context.Context, recs []flows.Record)) (*Client, error) {
	c := &Client{opts: opts}
	var err error
	if c.Follower, err = follow.New(follow.Options{
		Server: "Antrea Flow Aggregator", Address: opts.Address, TLS: &c.opts.TLS,
		Tuning: opts.Tuning, Log: follow.Logger(opts.Log, log),
	}, c.open, deliver); err != nil {
		return nil, err
	}
	return c, nil
}

// Stats returns a copy of the client's counters: the stream's, the flows taken and skipped,
// and those the Flow Aggregator dropped.
func (c *Client) Stats() Stats {
	c.mu.Lock() // before the follower's: it never calls back holding its own
	defer c.mu.Unlock()
	fs := c.Follower.Stats()
	return Stats{Stats: fs, LastFlowEnd: c.lastEnd, Flows: c.flows, Dropped: c.dropped + c.streamDrops,
		Skipped: convert.Counts[SkipReason](c.skipped[:])}
}

// request is the GetFlows request for the next stream.
func (c *Client) request() *pb.GetFlowsRequest {
	req := &pb.GetFlowsRequest{Follow: true}
	c.mu.Lock()
	if !c.lastEnd.IsZero() {
		req.Since = timestamppb.New(c.lastEnd)
	}
	c.mu.Unlock()
	return req
}

func (c *Client) open(ctx context.Context, conn *grpc.ClientConn) (follow.Next, error) {
	stream, err := pb.NewFlowStreamServiceClient(conn).GetFlows(ctx, c.request())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.dropped += c.streamDrops
	c.streamDrops = 0
	c.mu.Unlock()
	return follow.Receive(stream, c.handle), nil
}

// handle converts the flows of one message and counts them.
func (c *Client) handle(m *pb.GetFlowsResponse) []flows.Record {
	recs := make([]flows.Record, 0, len(m.GetFlows()))
	var invalid []error
	c.mu.Lock()
	if d := m.GetDroppedCount(); d > c.streamDrops {
		c.Log().V(levelWarn).Info("Antrea Flow Aggregator dropped flows for this client", "droppedFlows", d-c.streamDrops)
		c.streamDrops = d
	}
	for _, f := range m.GetFlows() {
		c.flows++
		if t := validTime(f.GetEndTs()); t.After(c.lastEnd) {
			c.lastEnd = t
		}
		rec, skip, err := Convert(f)
		if err != nil {
			invalid = append(invalid, err)
		}
		if skip != NotSkipped {
			c.skipped[skip]++
			continue
		}
		recs = append(recs, rec)
	}
	c.mu.Unlock()
	if l := c.Log().V(levelDebug); l.Enabled() {
		for _, err := range invalid {
			l.Info("Skipping invalid Antrea flow", "error", err.Error())
		}
	}
	return recs
}
