package antrea

import (
	"context"
	"crypto/tls"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/antrea/antreapb"
	"github.com/netpol-guard/netpol-guard/flows/internal/followtest"
	"github.com/netpol-guard/netpol-guard/internal/testpki"
)

var (
	_ manager.Runnable               = &Client{}
	_ manager.LeaderElectionRunnable = &Client{}
	_ pb.FlowStreamServiceServer     = &aggregator{}
)

const serverName = "flow-aggregator.flow-aggregator.svc"

// aggregator is the Flow Aggregator in the test: a real gRPC server implementing
// FlowStreamService. Each GetFlows call plays the next script (the last one again when they
// run out): it sends the script's messages, then holds the stream open until the client
// goes, or ends it when the script says so.
type aggregator struct {
	pb.UnimplementedFlowStreamServiceServer
	*followtest.Scripts[*pb.GetFlowsRequest, script]
}

func newAggregator(scripts []script) *aggregator {
	return &aggregator{Scripts: followtest.NewScripts[*pb.GetFlowsRequest](scripts)}
}

type script struct {
	msgs []*pb.GetFlowsResponse
	end  bool
}

func (a *aggregator) GetFlows(req *pb.GetFlowsRequest, stream grpc.ServerStreamingServer[pb.GetFlowsResponse]) error {
	sc := a.Next(req)
	return followtest.Play(stream, sc.msgs, sc.end)
}

func msg(dropped uint64, fs ...*pb.Flow) *pb.GetFlowsResponse {
	return &pb.GetFlowsResponse{Flows: fs, DroppedCount: dropped}
}

// pki is the Flow Aggregator's CA in a test, its serving certificate and the CA file a
// Client reads.
type pki struct {
	server              tls.Certificate
	caFile, otherCAFile string
}

func newPKI(t *testing.T) *pki {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "flow-aggregator-ca")
	return &pki{
		server:      ca.Server(t, serverName),
		caFile:      ca.WriteCA(t, dir, "ca.crt"),
		otherCAFile: testpki.NewCA(t, "someone-else").WriteCA(t, dir, "other-ca.crt"),
	}
}

// serve runs a on a loopback port with server-side TLS, as the FlowStreamService does,
// until the test ends; stop stops it sooner.
func serve(t *testing.T, lis net.Listener, p *pki, a *aggregator) (stop func()) {
	t.Helper()
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12})))
	pb.RegisterFlowStreamServiceServer(s, a)
	return followtest.Serve(t, lis, s)
}

// run starts a Client and stops it when the test ends, checking that Start returns nil
// promptly.
func run(t *testing.T, opts Options, col *followtest.Collector) *Client {
	t.Helper()
	opts.Log = testr.New(t)
	opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	opts.BatchInterval = 10 * time.Millisecond
	c, err := New(opts, col.Deliver)
	if err != nil {
		t.Fatal(err)
	}
	followtest.Start(t, c.Start)
	return c
}

func (p *pki) clientTLS() TLSOptions {
	return TLSOptions{CAFiles: []string{p.caFile}, ServerName: serverName}
}

func TestClientDeliversAllowedConnectionsAndCountsTheRest(t *testing.T) {
	p := newPKI(t)
	lis := followtest.Listen(t, "127.0.0.1:0")
	a := newAggregator([]script{{msgs: []*pb.GetFlowsResponse{
		msg(0, makeFlow(), makeFlow(func(f *pb.Flow) {
			f.K8S.IngressNetworkPolicyRuleAction = pb.NetworkPolicyRuleAction_NETWORK_POLICY_RULE_ACTION_DROP
		})),
		msg(7, &pb.Flow{}, makeFlow(func(f *pb.Flow) { f.K8S.SourcePodNamespace = "Shop" }), nil),
		msg(9),
	}}})
	serve(t, lis, p, a)
	col := &followtest.Collector{}
	c := run(t, Options{Address: lis.Addr().String(), TLS: p.clientTLS()}, col)

	testutil.Eventually(t, 15*time.Second, "all messages are handled", func() bool { s := c.Stats(); return s.Flows == 5 && s.Dropped == 9 })
	testutil.Eventually(t, 15*time.Second, "the record is delivered", func() bool { return len(col.Records()) == 1 })
	if got := col.Records(); !reflect.DeepEqual(got, []flows.Record{webToCart()}) {
		t.Errorf("delivered %+v", got)
	}
	s := c.Stats()
	if want := map[SkipReason]uint64{SkipDenied: 1, SkipNotL4: 2, SkipInvalid: 1}; !reflect.DeepEqual(s.Skipped, want) {
		t.Errorf("skipped = %v, want %v", s.Skipped, want)
	}
	if !s.Connected || s.Reconnects != 0 || !s.LastFlowEnd.Equal(t0) {
		t.Errorf("stats = %+v", s)
	}
	if reqs := a.Requests(); len(reqs) != 1 || !reqs[0].GetFollow() || reqs[0].GetSince() != nil {
		t.Errorf("requests = %v, want one following from the start of the ring buffer", reqs)
	}
}

func TestClientAsksSinceTheNewestFlowAfterTheAggregatorRestarts(t *testing.T) {
	p := newPKI(t)
	lis := followtest.Listen(t, "127.0.0.1:0")
	addr := lis.Addr().String()
	first := newAggregator([]script{{msgs: []*pb.GetFlowsResponse{msg(3,
		makeFlow(func(f *pb.Flow) { f.EndTs = timestamppb.New(t0.Add(-time.Minute)) }), makeFlow())}}})
	stop := serve(t, lis, p, first)
	col := &followtest.Collector{}
	c := run(t, Options{Address: addr, TLS: p.clientTLS()}, col)
	testutil.Eventually(t, 15*time.Second, "the first aggregator's flows are delivered", func() bool { return len(col.Records()) == 2 })

	stop()
	testutil.Eventually(t, 15*time.Second, "the client notices", func() bool { s := c.Stats(); return !s.Connected && s.Reconnects > 0 })
	second := newAggregator([]script{{msgs: []*pb.GetFlowsResponse{msg(2, makeFlow(func(f *pb.Flow) {
		f.EndTs = timestamppb.New(t0.Add(time.Minute))
		f.Transport.DestinationPort = 9090
	}))}}})
	serve(t, followtest.Listen(t, addr), p, second)
	testutil.Eventually(t, 15*time.Second, "the restarted aggregator's flow is delivered", func() bool { return len(col.Records()) == 3 })
	if got := col.Records()[2]; got.Port != 9090 {
		t.Errorf("third record = %+v", got)
	}
	if reqs := second.Requests(); len(reqs) != 1 || !reqs[0].GetSince().AsTime().Equal(t0) {
		t.Errorf("request to the restarted aggregator = %v, want since %v", reqs, t0)
	}
	if s := c.Stats(); s.Dropped != 5 || s.LastError == "" || !s.LastFlowEnd.Equal(t0.Add(time.Minute)) {
		t.Errorf("stats = %+v, want 3+2 dropped flows over two streams", s)
	}
}

func TestClientTLSFailures(t *testing.T) {
	p := newPKI(t)
	lis := followtest.Listen(t, "127.0.0.1:0")
	serve(t, lis, p, newAggregator([]script{{msgs: []*pb.GetFlowsResponse{msg(0, makeFlow())}}}))
	tests := []struct {
		name string
		tls  TLSOptions
	}{
		{"server signed by another CA fails", TLSOptions{CAFiles: []string{p.otherCAFile}, ServerName: serverName}},
		{"server name not in the certificate fails", TLSOptions{CAFiles: []string{p.caFile}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := &followtest.Collector{}
			c := run(t, Options{Address: lis.Addr().String(), TLS: tt.tls}, col)
			testutil.Eventually(t, 15*time.Second, "the client retries", func() bool { return c.Stats().Reconnects >= 2 })
			s := c.Stats()
			if n := len(col.Records()); n != 0 || s.Flows != 0 {
				t.Errorf("%d records delivered, %d flows received", n, s.Flows)
			}
			if !strings.Contains(s.LastError, "certificate") {
				t.Errorf("last error %q does not mention the certificate", s.LastError)
			}
		})
	}
}

func TestNewChecksOptions(t *testing.T) {
	deliver := func(context.Context, []flows.Record) {}
	if _, err := New(Options{}, deliver); err == nil || !strings.Contains(err.Error(), "address is required") {
		t.Errorf("no address: %v", err)
	}
	if _, err := New(Options{Address: "fa:14740", TLS: TLSOptions{CAFiles: []string{"/nonexistent/ca.crt"}}}, deliver); err == nil || !strings.Contains(err.Error(), "reading Antrea Flow Aggregator CA") {
		t.Errorf("missing CA file: %v", err)
	}
	if _, err := New(Options{Address: "fa:14740"}, nil); err == nil || !strings.Contains(err.Error(), "function to deliver") {
		t.Errorf("no deliver: %v", err)
	}
}
