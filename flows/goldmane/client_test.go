package goldmane

import (
	"context"
	"crypto/tls"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/goldmane/goldmanepb"
	"github.com/netpol-guard/netpol-guard/flows/internal/followtest"
	"github.com/netpol-guard/netpol-guard/internal/testpki"
)

var (
	_ manager.Runnable               = &Client{}
	_ manager.LeaderElectionRunnable = &Client{}
	_ pb.FlowsServer                 = &goldmane{}
)

const serverName = "goldmane.calico-system.svc"

// goldmane is Goldmane in the test: a real gRPC server implementing the Flows service. Each
// Stream call plays the next script (the last one again when they run out): it sends the
// script's flows, then holds the stream open until the client goes, or ends it when the
// script says so.
type goldmane struct {
	pb.UnimplementedFlowsServer
	*followtest.Scripts[*pb.FlowStreamRequest, script]
}

func newGoldmane(scripts []script) *goldmane {
	return &goldmane{Scripts: followtest.NewScripts[*pb.FlowStreamRequest](scripts)}
}

type script struct {
	flows []*pb.Flow
	end   bool
}

func (g *goldmane) Stream(req *pb.FlowStreamRequest, stream grpc.ServerStreamingServer[pb.FlowResult]) error {
	sc := g.Next(req)
	results := make([]*pb.FlowResult, len(sc.flows))
	for i, f := range sc.flows {
		results[i] = &pb.FlowResult{Id: int64(i), Flow: f}
	}
	return followtest.Play(stream, results, sc.end)
}

// pki is the Tigera CA of a test: Goldmane's serving certificate and a client's, with the
// files a Client reads.
type pki struct {
	ca                  *testpki.CA
	server              tls.Certificate
	caFile              string
	certFile, keyFile   string
	otherCAFile         string
	otherCert, otherKey string
}

func newPKI(t *testing.T) *pki {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "tigera-operator-signer")
	other := testpki.NewCA(t, "someone-else")
	p := &pki{ca: ca, server: ca.Server(t, serverName), caFile: ca.WriteCA(t, dir, "ca.crt"), otherCAFile: other.WriteCA(t, dir, "other-ca.crt")}
	p.certFile, p.keyFile = testpki.WriteKeyPair(t, dir, "client", ca.Client(t, "netpol-guard"))
	p.otherCert, p.otherKey = testpki.WriteKeyPair(t, dir, "other-client", other.Client(t, "netpol-guard"))
	return p
}

func (p *pki) clientTLS() TLSOptions {
	return TLSOptions{CAFiles: []string{p.caFile}, CertFile: p.certFile, KeyFile: p.keyFile, ServerName: serverName}
}

// serve runs g on a loopback port with mutual TLS as Goldmane does until the test ends;
// stop stops it sooner.
func serve(t *testing.T, lis net.Listener, p *pki, g *goldmane) (stop func()) {
	t.Helper()
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})))
	pb.RegisterFlowsServer(s, g)
	return followtest.Serve(t, lis, s)
}

// collector gathers what a Client delivers and the verdicts it reports.
type collector struct {
	followtest.Collector

	mu       sync.Mutex
	verdicts []bool
}

func (c *collector) onVerdict(_ flows.Record, allowed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.verdicts = append(c.verdicts, allowed)
}

// run starts a Client and stops it when the test ends, checking that Start returns nil
// promptly.
func run(t *testing.T, opts Options, col *collector) *Client {
	t.Helper()
	opts.Log = testr.New(t)
	opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	if opts.BatchInterval == 0 {
		opts.BatchInterval = 10 * time.Millisecond
	}
	if opts.OnVerdict == nil {
		opts.OnVerdict = col.onVerdict
	}
	c, err := New(opts, col.Deliver)
	if err != nil {
		t.Fatal(err)
	}
	followtest.Start(t, c.Start)
	return c
}

func TestClientDeliversAllowedFlowsAndReportsSettledVerdicts(t *testing.T) {
	p := newPKI(t)
	lis := followtest.Listen(t, "127.0.0.1:0")
	g := newGoldmane([]script{{flows: []*pb.Flow{
		makeFlow(),
		makeFlow(func(f *pb.Flow) { f.Key.Action, f.Key.DestName = pb.Action_Deny, "cart-1" }),
		makeFlow(func(f *pb.Flow) { f.Key.Reporter = pb.Reporter_Src }),
		makeFlow(func(f *pb.Flow) { f.Key.DestType, f.Key.DestName = pb.EndpointType_Network, "pub" }),
		{}, // no key
		makeFlow(func(f *pb.Flow) { f.Key.SourceNamespace = "Not_A_Namespace" }),
		nil,
	}}})
	serve(t, lis, p, g)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	col := &collector{}
	c := run(t, Options{Address: lis.Addr().String(), TLS: p.clientTLS(), Metrics: m}, col)

	testutil.Eventually(t, 15*time.Second, "all flows are handled", func() bool { s := c.Stats(); return s.Flows == 7 && s.Delivered == 1 })
	if got, want := col.Records(), []flows.Record{webToCart()}; !reflect.DeepEqual(got, want) {
		t.Errorf("delivered:\n got %+v\nwant %+v", got, want)
	}
	col.mu.Lock()
	if want := []bool{true, false}; !reflect.DeepEqual(col.verdicts, want) {
		t.Errorf("verdicts reported = %v, want %v (the allowed and the denied flow)", col.verdicts, want)
	}
	col.mu.Unlock()
	s := c.Stats()
	wantSkipped := map[SkipReason]uint64{SkipDenied: 1, SkipSourceReport: 1, SkipNotWorkload: 1, SkipAction: 2, SkipInvalid: 1}
	if !reflect.DeepEqual(s.Skipped, wantSkipped) {
		t.Errorf("skipped = %v, want %v", s.Skipped, wantSkipped)
	}
	if !s.Connected || s.Reconnects != 0 || s.Verdicts != 2 || !s.LastFlowStart.Equal(t0) || s.LastReceived.IsZero() {
		t.Errorf("stats = %+v", s)
	}
	if got := counterValue(t, m.flows); got != 7 {
		t.Errorf("flows metric = %v, want 7", got)
	}
	if got := counterValue(t, m.skipped.WithLabelValues("notWorkload")); got != 1 {
		t.Errorf("skipped{reason=notWorkload} = %v, want 1", got)
	}

	reqs := g.Requests()
	if len(reqs) != 1 || reqs[0].GetStartTimeGte() != -3600 || reqs[0].GetAggregationInterval() != 15 {
		t.Errorf("requests = %v, want one backfilling the default hour at Goldmane's 15 s interval", reqs)
	}
}

func TestClientBackfillsFromTheNewestFlowAfterGoldmaneRestarts(t *testing.T) {
	p := newPKI(t)
	lis := followtest.Listen(t, "127.0.0.1:0")
	addr := lis.Addr().String()
	start := time.Now().Add(-100 * time.Second).Truncate(time.Second)
	first := newGoldmane([]script{{flows: []*pb.Flow{
		makeFlow(func(f *pb.Flow) { f.StartTime, f.EndTime = start.Add(-time.Minute).Unix(), start.Unix() }),
		makeFlow(func(f *pb.Flow) { f.StartTime, f.EndTime = start.Unix(), start.Add(15*time.Second).Unix() }),
	}}})
	stop := serve(t, lis, p, first)
	col := &collector{}
	c := run(t, Options{Address: addr, TLS: p.clientTLS(), Backfill: 2 * time.Hour}, col)
	testutil.Eventually(t, 15*time.Second, "the first Goldmane's flows are delivered", func() bool { return len(col.Records()) == 2 })
	if reqs := first.Requests(); len(reqs) != 1 || reqs[0].GetStartTimeGte() != -7200 {
		t.Errorf("first request = %v, want start_time_gte -7200 (the backfill)", reqs)
	}

	stop()
	testutil.Eventually(t, 15*time.Second, "the client notices", func() bool { s := c.Stats(); return !s.Connected && s.Reconnects > 0 })
	second := newGoldmane([]script{{flows: []*pb.Flow{makeFlow(func(f *pb.Flow) { f.Key.DestPort = 9090 })}}})
	serve(t, followtest.Listen(t, addr), p, second)
	testutil.Eventually(t, 15*time.Second, "the restarted Goldmane's flow is delivered", func() bool { return len(col.Records()) == 3 })
	if got := col.Records()[2]; got.Port != 9090 {
		t.Errorf("third record = %+v", got)
	}
	reqs := second.Requests()
	// From the newest start, 100 s ago, less one interval: 115 s, and a little more for the
	// time the test took.
	if len(reqs) != 1 || reqs[0].GetStartTimeGte() > -115 || reqs[0].GetStartTimeGte() < -125 {
		t.Errorf("request to the restarted Goldmane = %v, want start_time_gte about -115", reqs)
	}
	if s := c.Stats(); !s.Connected || s.LastError == "" {
		t.Errorf("stats = %+v", s)
	}
}

func TestClientBackfillNeverReachesFurtherThanOptionsBackfill(t *testing.T) {
	p := newPKI(t)
	c, err := New(Options{Address: "goldmane:7443", TLS: p.clientTLS(), Backfill: time.Minute}, func(context.Context, []flows.Record) {})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	c.now = func() time.Time { return now }
	c.lastStart = t0
	if got := c.request().GetStartTimeGte(); got != -60 {
		t.Errorf("start_time_gte after an hour away = %d, want -60", got)
	}
	c.lastStart = now.Add(5 * time.Second) // Goldmane's clock ahead of ours
	if got := c.request().GetStartTimeGte(); got != -10 {
		t.Errorf("start_time_gte with the newest flow ahead of us = %d, want -10", got)
	}
}

func TestClientTLSFailures(t *testing.T) {
	p := newPKI(t)
	lis := followtest.Listen(t, "127.0.0.1:0")
	serve(t, lis, p, newGoldmane([]script{{flows: []*pb.Flow{makeFlow()}}}))
	addr := lis.Addr().String()

	tests := []struct {
		name string
		tls  TLSOptions
		want string
	}{
		{"server signed by another CA fails", TLSOptions{CAFiles: []string{p.otherCAFile}, CertFile: p.certFile, KeyFile: p.keyFile, ServerName: serverName}, "certificate"},
		{"server name not in the certificate fails", TLSOptions{CAFiles: []string{p.caFile}, CertFile: p.certFile, KeyFile: p.keyFile}, "certificate"},
		{"client certificate of another CA is refused", TLSOptions{CAFiles: []string{p.caFile}, CertFile: p.otherCert, KeyFile: p.otherKey, ServerName: serverName}, "Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := &collector{}
			c := run(t, Options{Address: addr, TLS: tt.tls}, col)
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
	p := newPKI(t)
	deliver := func(context.Context, []flows.Record) {}
	tests := []struct {
		name    string
		opts    Options
		deliver func(context.Context, []flows.Record)
		want    string
	}{
		{"address is required", Options{TLS: p.clientTLS()}, deliver, "address is required"},
		{"no client certificate: Goldmane requires mutual TLS", Options{Address: "goldmane:7443", TLS: TLSOptions{CAFiles: []string{p.caFile}}}, deliver, "requires mutual TLS"},
		{"deliver is required", Options{Address: "goldmane:7443", TLS: p.clientTLS()}, nil, "function to deliver"},
		{"unreadable key pair", Options{Address: "goldmane:7443", TLS: TLSOptions{CertFile: "nope.crt", KeyFile: "nope.key"}}, deliver, "loading Goldmane client certificate"},
		{"CA file without certificates", Options{Address: "goldmane:7443", TLS: TLSOptions{CAFiles: []string{p.keyFile}, CertFile: p.certFile, KeyFile: p.keyFile}}, deliver, "no PEM certificate"},
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

func TestCompareVerdictCountsAndLogsDisagreements(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	l := testr.New(t)
	if !m.CompareVerdict(l, webToCart(), true, true) {
		t.Error("allow and allow should agree")
	}
	if m.CompareVerdict(l, webToCart(), false, true) {
		t.Error("deny and allow should disagree")
	}
	if got := counterValue(t, m.disagreements); got != 1 {
		t.Errorf("disagreements = %v, want 1", got)
	}
	if got := counterValue(t, m.verdicts.WithLabelValues("deny", "allow")); got != 1 {
		t.Errorf("verdicts{dataplane=deny,predicted=allow} = %v, want 1", got)
	}
	var none *Metrics
	if none.CompareVerdict(l, webToCart(), true, false) {
		t.Error("a nil Metrics still compares")
	}
}

func counterValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
