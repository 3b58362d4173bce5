package hubble

import (
	"context"
	"sync"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/netpol-guard/netpol-guard/flows"
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

// Options configures a Client.
type Options struct {
	// Address of Hubble Relay as gRPC dials it: "hubble-relay.kube-system.svc:80" in
	// plaintext, port 443 with TLS. Required.
	Address string
	// TLS, when set, connects with TLS; nil is plaintext, Relay's default.
	TLS *TLSOptions
	// Tuning sets batches, reconnects and dial options; the zero value takes the defaults.
	Tuning
	// Log defaults to the package logger.
	Log logr.Logger
}

// TLSOptions are the TLS settings Hubble Relay's clients have (`hubble observe --tls …`).
// Files are read again at each connection attempt, so certificates rotated by cert-manager
// are picked up on the next reconnect.
//
// CAFiles are the CAs that sign Relay's certificate (Cilium's hubble-relay-server-certs
// ca.crt); CertFile and KeyFile a client certificate for mutual TLS (Cilium's
// hubble-relay-client-certs); ServerName overrides the name Relay's certificate is checked
// against: Cilium issues Relay's for *.hubble-relay.cilium.io, e.g.
// "ui.hubble-relay.cilium.io".
type TLSOptions = follow.TLSOptions

// Tuning is how the client batches records (BatchSize, BatchInterval), reconnects
// (MinBackoff, MaxBackoff, HealthyAfter) and dials (DialOptions).
type Tuning = follow.Tuning

// Stats says how the Client is doing, for metrics and status.
type Stats struct {
	// The stream's: connected, reconnects, the last error, the last message received,
	// the records delivered.
	follow.Stats
	// LastFlowTime is the time of the newest flow.
	LastFlowTime time.Time
	// Flows counts flow events received.
	Flows uint64
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
	opts Options
	// The Follower keeps the stream open: Start and NeedLeaderElection are its.
	*follow.Follower

	mu           sync.Mutex
	flows        uint64
	lostEvents   uint64
	skipped      [numSkipReasons]uint64
	lastReceived time.Time
	lastFlowTime time.Time
}

// New returns a Client for Relay at opts.Address that calls deliver with each batch of
// records, from the goroutine that runs Start, one batch at a time; deliver may keep the
// slice. A slow deliver holds up the stream (Relay drops flows for clients that fall
// behind, and reports them as lost events). TLS files are read once here, to fail early.
func New(opts Options, deliver func(ctx context.Context, recs []flows.Record)) (*Client, error) {
	c := &Client{opts: opts}
	var err error
	if c.Follower, err = follow.New(follow.Options{
		Server: "Hubble Relay", Address: opts.Address, TLS: opts.TLS,
		Tuning: opts.Tuning, Log: follow.Logger(opts.Log, log),
	}, c.open, deliver); err != nil {
		return nil, err
	}
	return c, nil
}

// Stats returns a copy of the client's counters: the stream's, the flows taken and skipped,
// and the events Hubble reported lost.
func (c *Client) Stats() Stats {
	c.mu.Lock() // before the follower's: it never calls back holding its own
	defer c.mu.Unlock()
	fs := c.Follower.Stats()
	fs.LastReceived = c.lastReceived // a flow, not any message
	return Stats{Stats: fs, LastFlowTime: c.lastFlowTime, Flows: c.flows, LostEvents: c.lostEvents,
		Skipped: convert.Counts[SkipReason](c.skipped[:])}
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

func (c *Client) open(ctx context.Context, conn *grpc.ClientConn) (follow.Next, error) {
	stream, err := observerpb.NewObserverClient(conn).GetFlows(ctx, c.request())
	if err != nil {
		return nil, err
	}
	return follow.Receive(stream, c.handle), nil
}

// handle takes one message off the stream, counts it, and returns its record, if any.
func (c *Client) handle(m *observerpb.GetFlowsResponse) []flows.Record {
	switch ev := m.GetResponseTypes().(type) {
	case *observerpb.GetFlowsResponse_Flow:
		f := ev.Flow
		rec, skip, err := Convert(f)
		t := convert.Time(f.GetTime())
		if t.IsZero() {
			t = convert.Time(m.GetTime())
		}
		c.mu.Lock()
		c.flows++
		c.lastReceived = time.Now()
		if t.After(c.lastFlowTime) {
			c.lastFlowTime = t
		}
		if skip != NotSkipped {
			c.skipped[skip]++
		}
		c.mu.Unlock()
		if err != nil {
			if l := c.Log().V(levelDebug); l.Enabled() {
				l.Info("Skipping invalid Hubble flow", "error", err.Error(), "node", m.GetNodeName())
			}
		}
		if skip != NotSkipped {
			return nil
		}
		if rec.LastSeen.IsZero() {
			rec.LastSeen = t
		}
		return []flows.Record{rec}
	case *observerpb.GetFlowsResponse_LostEvents:
		lost := ev.LostEvents
		c.mu.Lock()
		c.lostEvents += lost.GetNumEventsLost()
		c.mu.Unlock()
		c.Log().V(levelWarn).Info("Hubble lost flow events", "source", lost.GetSource().String(), "lostEvents", lost.GetNumEventsLost())
	case *observerpb.GetFlowsResponse_NodeStatus:
		ns := ev.NodeStatus
		c.Log().V(levelInfo).Info("Hubble node status", "state", ns.GetStateChange().String(), "nodes", ns.GetNodeNames(), "message", ns.GetMessage())
	}
	return nil
}
