package hubble

import (
	"context"
	"crypto/tls"
	"github.com/netpol-guard/netpol-guard/internal/testpki"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"github.com/cilium/cilium/pkg/hubble/parser/fieldmask"
	"github.com/go-logr/logr/testr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/flows/internal/followtest"
)

var (
	_ manager.Runnable               = &Client{}
	_ manager.LeaderElectionRunnable = &Client{}
	_ observerpb.ObserverServer      = &relay{}
)

// relay is a Hubble Relay in the test: a real gRPC server implementing the Observer service.
// Each GetFlows call plays the next script (the last one again when they run out): it sends
// the script's events, masked by the request's field mask as Relay does, then holds the
// stream open until the client goes, or ends it when the script says so.
type relay struct {
	observerpb.UnimplementedObserverServer
	*followtest.Scripts[*observerpb.GetFlowsRequest, script]
}

func newRelay(scripts []script) *relay {
	return &relay{Scripts: followtest.NewScripts[*observerpb.GetFlowsRequest](scripts)}
}

type script struct {
	events []*observerpb.GetFlowsResponse
	end    bool // end the stream after the events instead of holding it open
}

func (r *relay) GetFlows(req *observerpb.GetFlowsRequest, stream grpc.ServerStreamingServer[observerpb.GetFlowsResponse]) error {
	sc := r.Next(req)

	mask, err := fieldmask.New(req.GetFieldMask())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	for _, ev := range sc.events {
		if f := ev.GetFlow(); f != nil && mask.Active() {
			masked := new(flowpb.Flow)
			mask.Alloc(masked.ProtoReflect())
			mask.Copy(masked.ProtoReflect(), f.ProtoReflect())
			ev = &observerpb.GetFlowsResponse{
				ResponseTypes: &observerpb.GetFlowsResponse_Flow{Flow: masked},
				NodeName:      ev.GetNodeName(), Time: ev.GetTime(),
			}
		}
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	if !sc.end {
		<-stream.Context().Done()
	}
	return nil
}

// serve runs r on lis until the test ends; stop stops it sooner.
func serve(t *testing.T, lis net.Listener, r *relay, opts ...grpc.ServerOption) (stop func()) {
	t.Helper()
	s := grpc.NewServer(opts...)
	observerpb.RegisterObserverServer(s, r)
	return followtest.Serve(t, lis, s)
}

func flowEvent(f *flowpb.Flow) *observerpb.GetFlowsResponse {
	return &observerpb.GetFlowsResponse{
		ResponseTypes: &observerpb.GetFlowsResponse_Flow{Flow: f},
		NodeName:      f.GetNodeName(), Time: f.GetTime(),
	}
}

func at(d time.Duration) func(*flowpb.Flow) {
	return func(f *flowpb.Flow) { f.Time = timestamppb.New(t0.Add(d)) }
}

// run starts a Client for addr and stops it when the test ends, checking that Start
// returns nil promptly.
func run(t *testing.T, opts Options, col *followtest.Collector) (*Client, func()) {
	t.Helper()
	opts.Log = testr.New(t)
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	c, err := New(opts, col.Deliver)
	if err != nil {
		t.Fatal(err)
	}
	return c, followtest.Start(t, c.Start)
}

func TestClientDeliversOnlyForwardedAndAuditedRequests(t *testing.T) {
	lis := followtest.Listen(t, "127.0.0.1:0")
	noTime := makeFlow(at(9*time.Second), func(f *flowpb.Flow) { f.L4.GetTCP().SourcePort = 43299 })
	noTimeEvent := flowEvent(noTime)
	noTime.Time = nil
	r := newRelay([]script{{events: []*observerpb.GetFlowsResponse{
		{ResponseTypes: &observerpb.GetFlowsResponse_NodeStatus{NodeStatus: &relaypb.NodeStatusEvent{
			StateChange: relaypb.NodeState_NODE_CONNECTED, NodeNames: []string{"kind-worker", "kind-worker2"}}}},
		flowEvent(makeFlow()),
		flowEvent(makeFlow(at(time.Second), withVerdict(flowpb.Verdict_DROPPED), func(f *flowpb.Flow) {
			f.DropReasonDesc = flowpb.DropReason_POLICY_DENIED
		})),
		flowEvent(makeFlow(at(2*time.Second), asReply)),
		flowEvent(makeFlow(at(3*time.Second), withICMP)),
		flowEvent(makeFlow(at(4*time.Second), toWorld)),
		flowEvent(makeFlow(at(5*time.Second), withVerdict(flowpb.Verdict_AUDIT), withUDP(5353))),
		flowEvent(makeFlow(at(6*time.Second), func(f *flowpb.Flow) { f.Type = flowpb.FlowType_L7 })),
		flowEvent(makeFlow(at(7*time.Second), func(f *flowpb.Flow) { f.IsReply = nil })),
		{ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{LostEvents: &flowpb.LostEvent{
			Source: flowpb.LostEventSource_HUBBLE_RING_BUFFER, NumEventsLost: 42}}},
		noTimeEvent,
	}}})
	serve(t, lis, r)
	col := &followtest.Collector{}
	c, stop := run(t, Options{Address: lis.Addr().String(), Tuning: Tuning{BatchSize: 100, BatchInterval: 20 * time.Millisecond}}, col)

	testutil.Eventually(t, 15*time.Second, "all flows are handled", func() bool { s := c.Stats(); return s.Flows == 9 && s.Delivered == 4 })
	world := webToCart()
	world.Dst, world.Port, world.LastSeen = flows.Peer{IP: "93.184.216.34"}, 443, t0.Add(4*time.Second)
	audit := webToCart()
	audit.Port, audit.Protocol, audit.LastSeen = 5353, "UDP", t0.Add(5*time.Second)
	wrapperTime := webToCart()
	wrapperTime.LastSeen = t0.Add(9 * time.Second)
	want := []flows.Record{webToCart(), world, audit, wrapperTime}
	if got := col.Records(); !reflect.DeepEqual(got, want) {
		t.Errorf("delivered:\n got %+v\nwant %+v", got, want)
	}

	s := c.Stats()
	wantSkipped := map[SkipReason]uint64{SkipVerdict: 1, SkipReply: 1, SkipNotL4: 1, SkipType: 1, SkipReplyUnknown: 1}
	if !reflect.DeepEqual(s.Skipped, wantSkipped) {
		t.Errorf("skipped = %v, want %v", s.Skipped, wantSkipped)
	}
	if !s.Connected || s.Reconnects != 0 || s.LostEvents != 42 || !s.LastFlowTime.Equal(t0.Add(9*time.Second)) || s.LastReceived.IsZero() {
		t.Errorf("stats = %+v", s)
	}

	reqs := r.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d GetFlows calls, want 1", len(reqs))
	}
	req := reqs[0]
	wantFilter := &flowpb.FlowFilter{
		Verdict:  []flowpb.Verdict{flowpb.Verdict_FORWARDED, flowpb.Verdict_AUDIT},
		Protocol: []string{"tcp", "udp", "sctp"},
		Reply:    []bool{false},
	}
	if !req.GetFollow() || req.GetSince() != nil || req.GetNumber() != 0 || len(req.GetWhitelist()) != 1 ||
		!proto.Equal(req.GetWhitelist()[0], wantFilter) || len(req.GetBlacklist()) != 0 {
		t.Errorf("request = %v", req)
	}

	stop()
	if s := c.Stats(); s.Connected {
		t.Error("still connected after Start returned")
	}
}

func TestClientReconnectsWhenRelayEndsTheStream(t *testing.T) {
	lis := followtest.Listen(t, "127.0.0.1:0")
	r := newRelay([]script{
		{events: []*observerpb.GetFlowsResponse{flowEvent(makeFlow())}, end: true},
		{events: []*observerpb.GetFlowsResponse{flowEvent(makeFlow(at(time.Minute), withUDP(53)))}},
	})
	serve(t, lis, r)
	col := &followtest.Collector{}
	c, _ := run(t, Options{Address: lis.Addr().String(), Tuning: Tuning{BatchInterval: 10 * time.Millisecond}}, col)

	testutil.Eventually(t, 15*time.Second, "both streams delivered", func() bool { return len(col.Records()) == 2 })
	got := col.Records()
	if got[0].Port != 8080 || got[1].Port != 53 {
		t.Errorf("delivered %+v", got)
	}
	s := c.Stats()
	if s.Reconnects != 1 || !strings.Contains(s.LastError, "stream closed by Hubble Relay") {
		t.Errorf("stats = %+v", s)
	}
	reqs := r.Requests()
	if len(reqs) != 2 || !reqs[1].GetSince().AsTime().Equal(t0) || !reqs[1].GetFollow() {
		t.Errorf("second request should follow since the newest flow seen (%v): %v", t0, reqs[len(reqs)-1])
	}
}

func TestClientReconnectsAfterRelayRestarts(t *testing.T) {
	lis := followtest.Listen(t, "127.0.0.1:0")
	addr := lis.Addr().String()
	first := newRelay([]script{{events: []*observerpb.GetFlowsResponse{flowEvent(makeFlow())}}})
	stop := serve(t, lis, first)
	col := &followtest.Collector{}
	c, _ := run(t, Options{Address: addr, Tuning: Tuning{BatchInterval: 10 * time.Millisecond}}, col)
	testutil.Eventually(t, 15*time.Second, "the first relay's flow is delivered", func() bool { return len(col.Records()) == 1 })

	stop()
	testutil.Eventually(t, 15*time.Second, "the client notices", func() bool { s := c.Stats(); return !s.Connected && s.Reconnects > 0 })

	second := newRelay([]script{{events: []*observerpb.GetFlowsResponse{flowEvent(makeFlow(at(time.Minute), withUDP(53)))}}})
	serve(t, followtest.Listen(t, addr), second)
	testutil.Eventually(t, 15*time.Second, "the restarted relay's flow is delivered", func() bool { return len(col.Records()) == 2 })
	if got := col.Records()[1]; got.Port != 53 || !got.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Errorf("second record = %+v", got)
	}
	s := c.Stats()
	if !s.Connected || s.LastError == "" {
		t.Errorf("stats = %+v", s)
	}
	reqs := second.Requests()
	if len(reqs) != 1 || !reqs[0].GetSince().AsTime().Equal(t0) {
		t.Errorf("request to the restarted relay should ask since %v: %v", t0, reqs)
	}
}

func TestClientBatches(t *testing.T) {
	lis := followtest.Listen(t, "127.0.0.1:0")
	var events []*observerpb.GetFlowsResponse
	for i := range 5 {
		events = append(events, flowEvent(makeFlow(at(time.Duration(i)*time.Second))))
	}
	serve(t, lis, newRelay([]script{{events: events}}))
	col := &followtest.Collector{}
	run(t, Options{Address: lis.Addr().String(), Tuning: Tuning{BatchSize: 2, BatchInterval: 50 * time.Millisecond}}, col)

	testutil.Eventually(t, 15*time.Second, "all records delivered, the last by the interval", func() bool { return len(col.Records()) == 5 })
	for i, b := range col.Batches() {
		if len(b.Records) == 0 || len(b.Records) > 2 {
			t.Errorf("batch %d has %d records, want 1 or 2", i, len(b.Records))
		}
	}
}

func TestClientDeliversWhatItHoldsOnShutdown(t *testing.T) {
	lis := followtest.Listen(t, "127.0.0.1:0")
	serve(t, lis, newRelay([]script{{events: []*observerpb.GetFlowsResponse{flowEvent(makeFlow())}}}))
	col := &followtest.Collector{}
	c, stop := run(t, Options{Address: lis.Addr().String(), Tuning: Tuning{BatchInterval: time.Hour}}, col)
	testutil.Eventually(t, 15*time.Second, "the flow is received", func() bool { return c.Stats().Flows == 1 })
	if n := len(col.Records()); n != 0 {
		t.Fatalf("%d records delivered before the batch was due", n)
	}
	stop()
	if bs := col.Batches(); len(bs) != 1 || len(bs[0].Records) != 1 || bs[0].CtxErr != nil {
		t.Errorf("on shutdown delivered %+v, want one record with a live context", bs)
	}
}

func TestClientTLS(t *testing.T) {
	const serverName = "ui.hubble-relay.cilium.io"
	dir := t.TempDir()
	ca := testpki.NewCA(t, "hubble-ca.cilium.io")
	caFile := ca.WriteCA(t, dir, "ca.crt")
	serverCert := ca.Server(t, "*.hubble-relay.cilium.io")
	clientCertFile, clientKeyFile := testpki.WriteKeyPair(t, dir, "client", ca.Client(t, "netpol-guard.hubble-relay.cilium.io"))
	otherCAFile := testpki.NewCA(t, "other-ca").WriteCA(t, dir, "other-ca.crt")

	pool := ca.Pool()
	lis := followtest.Listen(t, "127.0.0.1:0")
	serve(t, lis, newRelay([]script{{events: []*observerpb.GetFlowsResponse{flowEvent(makeFlow())}}}),
		grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS13,
		})))
	addr := lis.Addr().String()

	t.Run("mutual TLS with the Relay CA and a server name override delivers flows", func(t *testing.T) {
		col := &followtest.Collector{}
		c, _ := run(t, Options{Address: addr, Tuning: Tuning{BatchInterval: 10 * time.Millisecond}, TLS: &TLSOptions{
			CAFiles: []string{caFile}, CertFile: clientCertFile, KeyFile: clientKeyFile, ServerName: serverName,
		}}, col)
		testutil.Eventually(t, 15*time.Second, "the flow is delivered over TLS", func() bool { return len(col.Records()) == 1 })
		if s := c.Stats(); !s.Connected || s.Reconnects != 0 {
			t.Errorf("stats = %+v", s)
		}
	})

	failures := []struct {
		name string
		tls  *TLSOptions
		want string
	}{
		{"plaintext to a TLS relay fails", nil, "Unavailable"},
		{"server signed by another CA fails", &TLSOptions{CAFiles: []string{otherCAFile}, CertFile: clientCertFile, KeyFile: clientKeyFile, ServerName: serverName}, "certificate"},
		{"server name not in the certificate fails", &TLSOptions{CAFiles: []string{caFile}, CertFile: clientCertFile, KeyFile: clientKeyFile}, "certificate"},
		{"missing client certificate fails", &TLSOptions{CAFiles: []string{caFile}, ServerName: serverName}, "Unavailable"},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			col := &followtest.Collector{}
			c, _ := run(t, Options{Address: addr, Tuning: Tuning{BatchInterval: 10 * time.Millisecond}, TLS: tt.tls}, col)
			testutil.Eventually(t, 15*time.Second, "the client retries", func() bool { return c.Stats().Reconnects >= 2 })
			s := c.Stats()
			if n := len(col.Records()); n != 0 || s.Flows != 0 {
				t.Errorf("%d records delivered, %d flows received", n, s.Flows)
			}
			if !strings.Contains(s.LastError, tt.want) {
				t.Errorf("last error %q does not mention %q", s.LastError, tt.want)
			}
		})
	}
}

func TestNewChecksOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	deliver := func(context.Context, []flows.Record) {}
	tests := []struct {
		name    string
		opts    Options
		deliver func(context.Context, []flows.Record)
		want    string
	}{
		{"address is required", Options{}, deliver, "address is required"},
		{"deliver is required", Options{Address: "relay:80"}, nil, "function to deliver"},
		{"missing CA file", Options{Address: "relay:443", TLS: &TLSOptions{CAFiles: []string{filepath.Join(dir, "nope")}}}, deliver, "reading Hubble Relay CA"},
		{"CA file without certificates", Options{Address: "relay:443", TLS: &TLSOptions{CAFiles: []string{notPEM}}}, deliver, "no PEM certificate"},
		{"certificate without key", Options{Address: "relay:443", TLS: &TLSOptions{CertFile: notPEM}}, deliver, "both a certificate and a key"},
		{"unreadable key pair", Options{Address: "relay:443", TLS: &TLSOptions{CertFile: notPEM, KeyFile: notPEM}}, deliver, "loading Hubble Relay client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts, tt.deliver)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
