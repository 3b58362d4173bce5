package flowapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// reviewStub stands for the API server's TokenReview: it binds the agent's token to its
// node, after the time a review takes.
type reviewStub struct{ reviews int }

func (s *reviewStub) Authenticate(ctx context.Context, token string) (User, error) {
	s.reviews++
	select {
	case <-time.After(5 * time.Millisecond):
	case <-ctx.Done():
		return User{}, ctx.Err()
	}
	if token != "agent-token" {
		return User{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	return User{Name: agentUser, Extra: map[string][]string{NodeNameExtra: {"node-1"}}}, nil
}

// podPlacement places every pod "Pod/<name>" on node-1.
type podPlacement map[string]*evaluator.Endpoint

func (p podPlacement) Endpoint(id flows.PeerID, _ *flows.PeerInfo) *evaluator.Endpoint {
	return p[id.Name]
}

// BenchmarkPushEndToEnd pushes what a node agent pushes — gzipped batches of 10 k flow
// records, with a node-bound token — over HTTPS to the API, whose CachingAuthenticator asks
// a TokenReview stub once and then answers from its cache. The batches cycle over 50 k
// edges of 2 k pods of the node, so after the first round the cache holds them all and
// stays the same size: heapBytes/batch is what the live heap grows by per batch.
func BenchmarkPushEndToEnd(b *testing.B) {
	const (
		batch = 10_000
		edges = 50_000
		pods  = 2_000
	)
	placement := podPlacement{}
	for i := range pods {
		name := fmt.Sprintf("web-%04d", i)
		placement["Pod/"+name] = &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: fmt.Sprintf("team-%02d", i%50), Pod: name, NodeName: "node-1"}
	}
	var bodies [][]byte
	for start := 0; start < edges; start += batch {
		var raw bytes.Buffer
		for i := start; i < start+batch; i++ {
			src, dst := i%pods, (i/pods+i)%pods
			fmt.Fprintf(&raw, `{"src":{"namespace":"team-%02d","pod":"web-%04d"},"dst":{"namespace":"team-%02d","pod":"web-%04d"},"port":%d,"protocol":"TCP","lastSeen":"2026-11-20T11:59:00Z","count":3}`+"\n",
				src%50, src, dst%50, dst, 8000+i/(pods*pods/edges+1)%1000)
		}
		var body bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&body, gzip.BestSpeed)
		zw.Write(raw.Bytes())
		zw.Close()
		bodies = append(bodies, body.Bytes())
	}

	stub := &reviewStub{}
	cache := flows.New(flows.Options{})
	h := NewHandler(HandlerOptions{
		Cache: cache, Resolver: testResolver, Placement: placement,
		Authenticator: NewCachingAuthenticator(stub, AuthCacheOptions{}),
		Writers:       []string{agentUser},
		Now:           func() time.Time { return pushNow },
	})
	mux := http.NewServeMux()
	mux.Handle(FlowsPath, h)
	ts := httptest.NewTLSServer(mux)
	defer ts.Close()
	client := ts.Client()

	push := func(body []byte) {
		req, _ := http.NewRequestWithContext(b.Context(), http.MethodPost, ts.URL+FlowsPath, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer agent-token")
		req.Header.Set("Content-Type", NDJSONContentType)
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set(FlowSourceHeader, "node-1")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), fmt.Sprintf(`"accepted":%d`, batch)) {
			b.Fatalf("push: %d %s", resp.StatusCode, out)
		}
	}
	for _, body := range bodies { // the first round fills the cache
		push(body)
	}
	if cache.Len() != edges {
		b.Fatalf("%d edges cached, want %d", cache.Len(), edges)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		push(bodies[i%len(bodies)])
		i++
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if stub.reviews != 1 {
		b.Errorf("%d TokenReviews, want 1", stub.reviews)
	}
	b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/float64(b.N), "heapBytes/batch")
	b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "heapMiB")
}
