// Package followtest holds what the tests of the streaming flow sources (flows/hubble,
// flows/goldmane, flows/antrea) share, so each is written once: a loopback gRPC server
// playing scripted streams, a collector of delivered batches, and a client run that must
// stop promptly.
package followtest

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/netpol-guard/netpol-guard/flows"
)

// Listen listens on addr ("127.0.0.1:0" for any port), failing the test when it cannot.
func Listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// Serve runs s, with its services registered, on lis until the test ends; stop stops it
// sooner, as a server that goes away.
func Serve(t testing.TB, lis net.Listener, s *grpc.Server) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			s.Stop()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// Batch is one delivery: its records, and the error of the context they came with.
type Batch struct {
	Records []flows.Record
	CtxErr  error
}

// Collector gathers what a client delivers; Deliver is the client's callback.
type Collector struct {
	mu      sync.Mutex
	batches []Batch
}

// Deliver records one batch.
func (c *Collector) Deliver(ctx context.Context, recs []flows.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, Batch{Records: recs, CtxErr: ctx.Err()})
}

// Batches returns the batches delivered so far.
func (c *Collector) Batches() []Batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Batch(nil), c.batches...)
}

// Records returns the records delivered so far, in order.
func (c *Collector) Records() []flows.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []flows.Record
	for _, b := range c.batches {
		all = append(all, b.Records...)
	}
	return all
}

// Start runs start (a client's Start) until the test ends or stop is called, and checks
// that it then returns nil promptly.
func Start(t testing.TB, start func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Start returned %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Start did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Scripts are a test server's scripted answers, one a stream: each call plays the next
// script (the last one again when they run out), and the requests are kept.
type Scripts[Req proto.Message, S any] struct {
	mu      sync.Mutex
	scripts []S
	calls   int
	reqs    []Req
}

// NewScripts returns Scripts that play scripts, of which there must be at least one.
func NewScripts[Req proto.Message, S any](scripts []S) *Scripts[Req, S] {
	return &Scripts[Req, S]{scripts: scripts}
}

// Next keeps a copy of req and returns the script to play for it.
func (s *Scripts[Req, S]) Next(req Req) S {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scripts[min(s.calls, len(s.scripts)-1)]
	s.calls++
	s.reqs = append(s.reqs, proto.CloneOf(req))
	return sc
}

// Requests returns the requests received so far.
func (s *Scripts[Req, S]) Requests() []Req {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// Play sends msgs on a server stream, then holds the stream open until the client goes,
// or ends it at once when end is set: one scripted stream of a test server.
func Play[M any](stream grpc.ServerStreamingServer[M], msgs []*M, end bool) error {
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	if !end {
		<-stream.Context().Done()
	}
	return nil
}
