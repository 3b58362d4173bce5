package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/backoff"
)

// pusher delivers edges to every webhook replica. Each replica (target) has its own buffer
// and worker, so one unreachable replica neither holds up nor duplicates the others. The
// buffers together, with the batches in flight, hold at most max edges: past it the least
// recently seen edge of the largest buffer is dropped.
type pusher struct {
	log        logr.Logger
	metrics    *metrics
	tokenFile  string
	caFile     string
	serverName string
	source     string // X-Flow-Source: the node name
	maxBatch   int
	timeout    time.Duration
	// retry is the backoff each replica's worker starts from after a failed push.
	retry backoff.Backoff

	client atomic.Pointer[http.Client]
	caPEM  []byte // what client trusts; only reloadCA touches it

	attempted, succeeded atomic.Bool

	mu      sync.Mutex
	ctx     context.Context // parent of the workers; nil until start
	targets map[string]*target
	orphan  *edgeBuffer // edges no replica has taken yet: none was known, or theirs left
	total   int         // edges in all buffers and in flight
	// inFlight counts the edges of batches being pushed. They are older than what is
	// buffered, so the cap applies to the buffers alone, and a batch that fails comes back
	// as the oldest edges, first to go.
	inFlight int
	max      int
	workers  sync.WaitGroup
}

// target is one webhook replica, by its push URL.
type target struct {
	url    string
	buf    *edgeBuffer
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// start lets targets run their workers under ctx.
func (p *pusher) start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx = ctx
	for _, t := range p.targets {
		p.startLocked(t)
	}
}

// wait waits for the workers to stop, after the start context is done.
func (p *pusher) wait() { p.workers.Wait() }

func (p *pusher) startLocked(t *target) {
	if p.ctx == nil || t.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	t.cancel = cancel
	p.workers.Add(1)
	go func() {
		defer p.workers.Done()
		defer close(t.done)
		p.run(ctx, t)
	}()
	t.poke()
}

func (t *target) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// setTargets makes urls the replicas pushed to. An empty list changes nothing: during an
// outage the headless Service has no endpoints, and the buffered edges must wait for them.
// Edges buffered for replicas that left go to the replicas that joined (a rolling update
// replaces every pod); with none joining they are dropped, the remaining replicas having
// had their own copies.
func (p *pusher) setTargets(urls []string) {
	if len(urls) == 0 {
		return
	}
	want := map[string]bool{}
	for _, u := range urls {
		want[u] = true
	}
	p.mu.Lock()
	var gone []*target
	for u, t := range p.targets {
		if !want[u] {
			gone = append(gone, t)
			delete(p.targets, u)
		}
	}
	p.mu.Unlock()
	for _, t := range gone {
		if t.cancel != nil {
			t.cancel()
			<-t.done // the worker has given back its batch in flight
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range gone {
		t.buf.each(func(e edge, s edgeStats) {
			if !p.orphan.add(e, s) {
				p.total--
			}
		})
		p.log.Info("Webhook replica left", "url", t.url, "bufferedEdges", t.buf.len())
	}
	var added []*target
	for _, u := range urls {
		if p.targets[u] == nil {
			t := &target{url: u, buf: newEdgeBuffer(), wake: make(chan struct{}, 1), done: make(chan struct{})}
			p.targets[u] = t
			added = append(added, t)
			p.log.Info("Webhook replica joined", "url", u)
		}
	}
	if n := p.orphan.len(); n > 0 {
		if len(added) == 0 {
			p.metrics.dropped[dropReplicaGone].Add(float64(n))
			p.log.Info("Dropped edges buffered for webhook replicas that left", "edges", n)
		}
		for _, t := range added {
			p.orphan.each(func(e edge, s edgeStats) { t.buf.add(e, s) })
			p.total += n
		}
		p.total -= n
		p.orphan = newEdgeBuffer()
		p.evictLocked()
	}
	for _, t := range added {
		p.startLocked(t)
	}
	p.metrics.replicas.Set(float64(len(p.targets)))
}

// add hands a flushed interval's edges to every replica, or holds them until one is known.
func (p *pusher) add(edges map[edge]edgeStats) {
	if len(edges) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.targets) == 0 {
		for e, s := range edges {
			if p.orphan.add(e, s) {
				p.total++
			}
		}
	}
	for _, t := range p.targets {
		for e, s := range edges {
			if t.buf.add(e, s) {
				p.total++
			}
		}
	}
	p.evictLocked()
	for _, t := range p.targets {
		t.poke()
	}
}

// evictLocked drops the least recently seen edges of the largest buffers until at most max
// edges are buffered (besides at most a batch per replica in flight).
func (p *pusher) evictLocked() {
	for p.total-p.inFlight > p.max {
		largest := p.orphan
		for _, t := range p.targets {
			if t.buf.len() > largest.len() {
				largest = t.buf
			}
		}
		if _, ok := largest.popOldest(); !ok {
			break // only batches in flight are left
		}
		p.total--
		p.metrics.dropped[dropBufferFull].Inc()
	}
	p.metrics.buffered.Set(float64(p.total))
}

// pending is how many edges are buffered or in flight.
func (p *pusher) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

func (p *pusher) take(t *target, n int) []bufItem {
	p.mu.Lock()
	defer p.mu.Unlock()
	items := t.buf.take(n)
	p.inFlight += len(items)
	return items
}

// release forgets a batch that was delivered or is discarded.
func (p *pusher) release(items []bufItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total -= len(items)
	p.inFlight -= len(items)
	p.metrics.buffered.Set(float64(p.total))
}

// giveBack returns a batch that could not be pushed to its replica's buffer, as its oldest
// edges.
func (p *pusher) giveBack(t *target, items []bufItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight -= len(items)
	for _, it := range slices.Backward(items) {
		if !t.buf.addOldest(it.edge, it.edgeStats) {
			p.total--
		}
	}
	p.evictLocked()
}

// run is a replica's worker: when woken, push its buffer in batches; after a failure, wait
// a growing backoff before trying again.
func (p *pusher) run(ctx context.Context, t *target) {
	batch := p.maxBatch
	b := p.retry
	var wait time.Duration
	for {
		if wait > 0 {
			if !backoff.Sleep(ctx, wait) {
				return
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
			}
		}
		if p.drain(ctx, t, &batch) {
			b.Reset()
			wait = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		wait = b.Next()
	}
}

// drain pushes t's buffer until it is empty or a push fails; it reports success.
func (p *pusher) drain(ctx context.Context, t *target, batch *int) bool {
	for {
		items := p.take(t, *batch)
		if len(items) == 0 {
			return true
		}
		err := p.send(ctx, t.url, items)
		if err == nil {
			p.release(items)
			p.metrics.edgesPushed.Add(float64(len(items)))
			continue
		}
		if ctx.Err() != nil {
			p.giveBack(t, items)
			return false
		}
		pe, ok := errors.AsType[*pushError](err)
		if !ok {
			pe = &pushError{err: err}
		}
		p.metrics.pushErrors.WithLabelValues(pe.label()).Inc()
		switch {
		case pe.code == http.StatusRequestEntityTooLarge && *batch > 1:
			*batch /= 2
			p.giveBack(t, items)
			p.log.Info("Webhook refused a push as too large: halving the batch", "url", t.url, "batch", *batch)
			continue
		case pe.code == http.StatusBadRequest, pe.code == http.StatusRequestEntityTooLarge:
			// Retrying the same records cannot help; keep the rest flowing.
			p.release(items)
			p.metrics.dropped[dropRejected].Add(float64(len(items)))
			p.log.Error(err, "Webhook rejected a batch of flows: dropped", "url", t.url, "edges", len(items))
			continue
		}
		p.giveBack(t, items)
		p.log.Error(err, "Pushing flows failed: will retry", "url", t.url, "edges", len(items))
		return false
	}
}

// jitter spreads retries of many agents: d ± 20%.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

// pushError is a failed push: the HTTP status code when the webhook answered.
type pushError struct {
	code  int  // 0 when there was no answer
	token bool // the token file could not be read
	err   error
}

func (e *pushError) Error() string { return e.err.Error() }
func (e *pushError) Unwrap() error { return e.err }

func (e *pushError) label() string {
	switch {
	case e == nil:
		return "unknown"
	case e.token:
		return "token"
	case e.code == 0:
		return "network"
	}
	return strconv.Itoa(e.code)
}

// send pushes one batch to one replica, with the token as the token file holds it now:
// projected ServiceAccount tokens are rotated by the kubelet.
func (p *pusher) send(ctx context.Context, url string, items []bufItem) error {
	p.attempted.Store(true)
	token, err := readToken(p.tokenFile)
	if err != nil {
		return &pushError{token: true, err: err}
	}
	var body bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&body, gzip.BestSpeed)
	w := flows.NewWriter(zw)
	for _, it := range items {
		if err := w.Write(it.record(it.edgeStats)); err != nil {
			p.log.Error(err, "Skipped an edge that makes no valid flow record", "src", it.src, "dst", it.dst, "port", it.port)
		}
	}
	if err := zw.Close(); err != nil {
		return &pushError{err: fmt.Errorf("compressing flows: %w", err)}
	}

	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &body)
	if err != nil {
		return &pushError{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", flowapi.NDJSONContentType)
	req.Header.Set("Content-Encoding", "gzip")
	if p.source != "" {
		req.Header.Set(flowapi.FlowSourceHeader, p.source)
	}
	client := p.client.Load()
	if client == nil {
		return &pushError{err: errors.New("no TLS configuration loaded")}
	}
	resp, err := client.Do(req)
	if err != nil {
		return &pushError{err: fmt.Errorf("pushing flows to %s: %w", url, err)}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return &pushError{code: resp.StatusCode, err: fmt.Errorf("pushing flows to %s: webhook answered %d %s: %s",
			url, resp.StatusCode, http.StatusText(resp.StatusCode), bytes.TrimSpace(msg))}
	}
	p.succeeded.Store(true)
	if l := p.log.V(levelDebug); l.Enabled() {
		var res flowapi.IngestResult
		_ = json.Unmarshal(msg, &res)
		l.Info("Flows pushed", "url", url, "edges", len(items), "accepted", res.Accepted, "unresolved", res.Unresolved)
	}
	return nil
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("reading token: %s holds no bearer token", path)
	}
	return token, nil
}

// reloadCA (re)builds the HTTP client when the CA bundle changed, so a rotated CA is
// trusted without a restart. Without a CA file the system roots are used. A CA file that
// cannot be read keeps the client already built.
func (p *pusher) reloadCA() error {
	var pem []byte
	if p.caFile != "" {
		var err error
		if pem, err = os.ReadFile(p.caFile); err != nil {
			return fmt.Errorf("reading CA bundle: %w", err)
		}
		if p.client.Load() != nil && bytes.Equal(pem, p.caPEM) {
			return nil
		}
	} else if p.client.Load() != nil {
		return nil
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: p.serverName}
	if pem != nil {
		tlsConfig.RootCAs = x509.NewCertPool()
		if !tlsConfig.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("CA bundle %s holds no PEM certificate", p.caFile)
		}
	}
	transport := &http.Transport{
		TLSClientConfig:     tlsConfig,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	p.caPEM = pem
	if old := p.client.Swap(&http.Client{Transport: transport}); old != nil {
		old.CloseIdleConnections()
		p.log.Info("Webhook CA bundle reloaded", "caFile", p.caFile)
	}
	return nil
}
