package agent

import (
	"context"
	"fmt"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/netpol-guard/netpol-guard/flows"
)

func oneEdge(i int) map[edge]edgeStats {
	return map[edge]edgeStats{mkEdge(protoTCP, fmt.Sprintf("10.0.1.%d", i), "10.0.2.7:8080"): {count: 1, lastSeen: 1_790_000_000 + int64(i)}}
}

func TestPushSendsFlowRecordsWithTokenAndNodeName(t *testing.T) {
	w := newWebhook(t, nil)
	a := newTestAgent(t, func(o *Options) { o.WebhookURLs = []string{w.srv.URL}; o.CAFile = w.caFile(t) })
	startPushing(t, a)
	a.cycle(t.Context())
	a.push.add(oneEdge(1))
	testutil.Eventually(t, 5*time.Second, "the push", func() bool { return len(w.records()) == 1 })
	rec := w.records()[0]
	if rec.Src.IP != "10.0.1.1" || rec.Dst.IP != "10.0.2.7" || rec.Port != 8080 || rec.Protocol != flows.ProtocolTCP || rec.Count != 1 ||
		!rec.LastSeen.Equal(time.Unix(1_790_000_001, 0)) {
		t.Errorf("pushed %+v", rec)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tokens[0] != "Bearer token-1" || w.sources[0] != "node-1" {
		t.Errorf("token %q, source %q; want Bearer token-1, node-1", w.tokens[0], w.sources[0])
	}
	testutil.Eventually(t, time.Second, "nothing pending", func() bool { return a.push.pending() == 0 })
	if v := value(t, a.metrics.edgesPushed); v != 1 {
		t.Errorf("edges pushed = %v, want 1", v)
	}
	if err := a.Readyz(nil); err != nil {
		t.Errorf("Readyz after a push: %v", err)
	}
}

func TestPushRejectedTokenIsReadAgainForTheNextTry(t *testing.T) {
	w := newWebhook(t, nil)
	w.status = func(_ int, token string, _ []flows.Record) int {
		if token != "Bearer token-2" {
			return http.StatusUnauthorized
		}
		return http.StatusOK
	}
	a := newTestAgent(t, func(o *Options) { o.WebhookURLs = []string{w.srv.URL}; o.CAFile = w.caFile(t) })
	startPushing(t, a)
	a.cycle(t.Context())
	if err := a.Readyz(nil); err != nil {
		t.Errorf("Readyz before any push: %v", err)
	}
	a.push.add(oneEdge(1))
	testutil.Eventually(t, 5*time.Second, "a rejected push", func() bool { return value(t, a.push.metrics.pushErrors.WithLabelValues("401")) >= 1 })
	if err := a.Readyz(nil); err == nil {
		t.Error("Readyz with only failed pushes: want an error")
	}
	writeFile(t, a.opts.TokenFile, "token-2") // the kubelet rotated the projected token
	testutil.Eventually(t, 5*time.Second, "the push with the new token", func() bool { return len(w.records()) == 1 })
	// The webhook has the records once it has read them; the agent counts the push as
	// succeeded once it has read the answer.
	testutil.Eventually(t, 5*time.Second, "ready after the push", func() bool { return a.Readyz(nil) == nil })
}

func TestPushServerErrorsBackOffExponentially(t *testing.T) {
	w := newWebhook(t, nil)
	w.status = func(attempt int, _ string, _ []flows.Record) int {
		if attempt <= 4 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	a := newTestAgent(t, func(o *Options) {
		o.WebhookURLs = []string{w.srv.URL}
		o.CAFile = w.caFile(t)
		o.MinBackoff, o.MaxBackoff = 40*time.Millisecond, 10*time.Second
	})
	startPushing(t, a)
	a.cycle(t.Context())
	a.push.add(oneEdge(1))
	testutil.Eventually(t, 10*time.Second, "the push after the errors", func() bool { return len(w.records()) == 1 })
	w.mu.Lock()
	attempts := slices.Clone(w.attempts)
	w.mu.Unlock()
	// Backoffs 40, 80, 160, 320 ms, each ±20% (latency only adds).
	if len(attempts) != 5 {
		t.Fatalf("%d attempts, want 5", len(attempts))
	}
	var gaps []time.Duration
	for i := 1; i < len(attempts); i++ {
		gap := attempts[i].Sub(attempts[i-1])
		gaps = append(gaps, gap)
		if least := 40 * time.Millisecond << (i - 1) * 4 / 5; gap < least {
			t.Errorf("gap before attempt %d is %s: want at least %s", i+1, gap, least)
		}
	}
	if gaps[3] < 3*gaps[0] {
		t.Errorf("gaps %v do not grow exponentially", gaps)
	}
	if v := value(t, a.metrics.pushErrors.WithLabelValues("503")); v != 4 {
		t.Errorf("push errors (503) = %v, want 4", v)
	}
}

func TestPushTooLargeHalvesTheBatch(t *testing.T) {
	w := newWebhook(t, nil)
	w.status = func(_ int, _ string, recs []flows.Record) int {
		if len(recs) > 3 {
			return http.StatusRequestEntityTooLarge
		}
		return http.StatusOK
	}
	a := newTestAgent(t, func(o *Options) { o.WebhookURLs = []string{w.srv.URL}; o.CAFile = w.caFile(t); o.MaxBatch = 16 })
	startPushing(t, a)
	a.cycle(t.Context())
	edges := map[edge]edgeStats{}
	for i := range 10 {
		maps := oneEdge(i + 1)
		for e, s := range maps {
			edges[e] = s
		}
	}
	a.push.add(edges)
	testutil.Eventually(t, 10*time.Second, "every edge", func() bool { return len(w.records()) == 10 })
	// 16 → 8 → 4 → 2.
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.batches {
		if n != 2 {
			t.Errorf("accepted a batch of %d, want 2", n)
		}
	}
}

func TestPushMalformedBatchIsDroppedNotRetried(t *testing.T) {
	w := newWebhook(t, nil)
	w.status = func(attempt int, _ string, _ []flows.Record) int {
		if attempt == 1 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	}
	a := newTestAgent(t, func(o *Options) { o.WebhookURLs = []string{w.srv.URL}; o.CAFile = w.caFile(t) })
	startPushing(t, a)
	a.cycle(t.Context())
	a.push.add(oneEdge(1))
	testutil.Eventually(t, 5*time.Second, "the rejection", func() bool { return value(t, a.metrics.dropped[dropRejected]) == 1 })
	a.push.add(oneEdge(2))
	testutil.Eventually(t, 5*time.Second, "the next push", func() bool { return len(w.records()) == 1 })
	if got := w.records()[0].Src.IP; got != "10.0.1.2" {
		t.Errorf("pushed %s, want only the edge after the rejected batch", got)
	}
}

func TestPushUnreachableReplicaKeepsTheMostRecentEdges(t *testing.T) {
	w := newWebhook(t, nil)
	var mu sync.Mutex
	down := true
	w.status = func(int, string, []flows.Record) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	a := newTestAgent(t, func(o *Options) {
		o.WebhookURLs = []string{w.srv.URL}
		o.CAFile = w.caFile(t)
		o.MaxBufferedEdges = 3
		o.MaxBackoff = 20 * time.Millisecond
	})
	startPushing(t, a)
	a.cycle(t.Context())
	for i := 1; i <= 6; i++ {
		a.push.add(oneEdge(i))
	}
	testutil.Eventually(t, 5*time.Second, "failed pushes", func() bool { return value(t, a.metrics.pushErrors.WithLabelValues("503")) >= 2 })
	if got := a.push.pending(); got > 3 {
		t.Errorf("pending = %d, want at most 3", got)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	testutil.Eventually(t, 5*time.Second, "the buffer drained", func() bool { return a.push.pending() == 0 })
	want := []string{"10.0.1.4 -> 10.0.2.7:8080/TCP", "10.0.1.5 -> 10.0.2.7:8080/TCP", "10.0.1.6 -> 10.0.2.7:8080/TCP"}
	if got := w.edges(); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want the 3 most recent %v", got, want)
	}
	if v := value(t, a.metrics.dropped[dropBufferFull]); v != 3 {
		t.Errorf("dropped (buffer_full) = %v, want 3", v)
	}
}

// fakeResolver answers LookupHost from a settable list.
type fakeResolver struct {
	mu    sync.Mutex
	hosts map[string][]string
	asked []string
}

func (r *fakeResolver) set(host string, ips ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hosts == nil {
		r.hosts = map[string][]string{}
	}
	r.hosts[host] = ips
}

func (r *fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, host)
	ips := r.hosts[host]
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return ips, nil
}

// replicaListeners listens on 127.0.0.1 and 127.0.0.2 on one port, as two replicas behind a
// headless Service.
func replicaListeners(t *testing.T) (net.Listener, net.Listener, int) {
	t.Helper()
	for range 20 {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
		if err == nil {
			return l1, l2, port
		}
		l1.Close()
	}
	t.Skip("cannot listen on 127.0.0.2 with the port of 127.0.0.1")
	return nil, nil, 0
}

func TestPushFansOutToEveryReplicaOfTheHeadlessService(t *testing.T) {
	l1, l2, port := replicaListeners(t)
	w1, w2 := newWebhook(t, l1), newWebhook(t, l2)
	// Both replicas serve httptest's certificate, whose DNS name is example.com: verifying it
	// against the server name, not the replica's IP, is what the agent does in a cluster.
	res := &fakeResolver{}
	res.set("netpol-guard-flows.netpol-guard.svc", "127.0.0.1", "127.0.0.2")
	a := newTestAgent(t, func(o *Options) {
		o.WebhookURLs = nil
		o.WebhookService, o.Namespace, o.WebhookPort = "netpol-guard-flows", "netpol-guard", port
		o.ServerName = "example.com"
		o.CAFile = w1.caFile(t)
		o.HostLookup = res
	})
	startPushing(t, a)
	a.cycle(t.Context())
	a.push.add(oneEdge(1))
	for _, w := range []*webhook{w1, w2} {
		testutil.Eventually(t, 5*time.Second, "the push to "+w.srv.URL, func() bool { return len(w.records()) == 1 })
	}
	if v := value(t, a.metrics.replicas); v != 2 {
		t.Errorf("replicas gauge = %v, want 2", v)
	}

	// One replica goes; the next interval's edges go to the other only.
	res.set("netpol-guard-flows.netpol-guard.svc", "127.0.0.1")
	a.agg.add(mkEdge(protoTCP, "10.0.1.2", "10.0.2.7:8080"), 1, 1_790_000_002)
	a.cycle(t.Context())
	testutil.Eventually(t, 5*time.Second, "the second push", func() bool { return len(w1.records()) == 2 })
	if n := len(w2.records()); n != 1 {
		t.Errorf("the replica that left got %d records, want 1", n)
	}
	if v := value(t, a.metrics.replicas); v != 1 {
		t.Errorf("replicas gauge = %v, want 1", v)
	}
}

func TestPushEdgesWaitForTheFirstReplica(t *testing.T) {
	w := newWebhook(t, nil)
	_, port, _ := net.SplitHostPort(w.srv.Listener.Addr().String())
	res := &fakeResolver{} // no endpoints yet
	a := newTestAgent(t, func(o *Options) {
		o.WebhookURLs = nil
		o.WebhookService, o.Namespace = "flows", "ng"
		o.WebhookPort, _ = strconv.Atoi(port)
		o.ServerName = "example.com"
		o.CAFile = w.caFile(t)
		o.HostLookup = res
	})
	startPushing(t, a)
	a.agg.add(mkEdge(protoTCP, "10.0.1.1", "10.0.2.7:8080"), 1, 1_790_000_001)
	a.cycle(t.Context())
	if got := a.push.pending(); got != 1 {
		t.Fatalf("pending with no replica = %d, want 1", got)
	}
	res.set("flows.ng.svc", "127.0.0.1")
	a.cycle(t.Context())
	testutil.Eventually(t, 5*time.Second, "the held edge pushed", func() bool { return len(w.records()) == 1 })
}

func TestRolledReplicasTakeOverWhatTheOldOnesMissed(t *testing.T) {
	a := newTestAgent(t, nil)
	// Not started: the old replica never got its edges.
	a.push.setTargets([]string{"https://10.0.5.5:9443/v1/flows"})
	a.push.add(oneEdge(1))
	a.push.setTargets([]string{"https://10.0.5.9:9443/v1/flows"})
	if len(a.push.targets) != 1 || a.push.targets["https://10.0.5.9:9443/v1/flows"].buf.len() != 1 || a.push.pending() != 1 {
		t.Errorf("after the roll: targets %v, pending %d; want the new replica holding the edge", a.push.targets, a.push.pending())
	}
	// A replica that leaves while another stays: the other had its own copy.
	a.push.setTargets([]string{"https://10.0.5.9:9443/v1/flows", "https://10.0.5.10:9443/v1/flows"})
	a.push.add(oneEdge(2))
	a.push.setTargets([]string{"https://10.0.5.10:9443/v1/flows"})
	if got := a.push.pending(); got != 1 {
		t.Errorf("pending = %d, want 1 (the staying replica's copy)", got)
	}
	if v := value(t, a.metrics.dropped[dropReplicaGone]); v != 2 {
		t.Errorf("dropped (replica_gone) = %v, want 2", v)
	}
}

func TestPushWaitsForACABundleThatIsNotThereYet(t *testing.T) {
	w := newWebhook(t, nil)
	caFile := filepath.Join(t.TempDir(), "ca.crt") // a self-signed webhook fills it later
	a := newTestAgent(t, func(o *Options) { o.WebhookURLs = []string{w.srv.URL}; o.CAFile = caFile })
	if err := a.push.reloadCA(); err == nil {
		t.Fatal("loaded a CA bundle that does not exist")
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.push.start(ctx)
	t.Cleanup(func() { cancel(); a.push.wait() })
	a.cycle(t.Context())
	a.push.add(oneEdge(1))
	time.Sleep(100 * time.Millisecond)
	if n := len(w.records()); n != 0 {
		t.Fatalf("pushed %d records without a CA to verify the webhook", n)
	}
	if a.push.pending() != 1 {
		t.Fatalf("%d edges pending, want the one buffered", a.push.pending())
	}
	ca, err := os.ReadFile(w.caFile(t))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, caFile, string(ca))
	a.cycle(t.Context()) // the next interval reads it
	testutil.Eventually(t, 5*time.Second, "the push once the CA bundle appeared", func() bool { return len(w.records()) == 1 })
}
