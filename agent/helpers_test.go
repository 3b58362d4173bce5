package agent

import (
	"compress/gzip"
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/ti-mo/conntrack"

	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/flows"
)

// ctFlow builds a conntrack entry from its original tuple (as the client sent it) and its
// reply tuple (as the answer came back), each "addr:port".
func ctFlow(proto uint8, origSrc, origDst, replySrc, replyDst string) *conntrack.Flow {
	var f conntrack.Flow
	ps, od := netip.MustParseAddrPort(origSrc), netip.MustParseAddrPort(origDst)
	rs, rd := netip.MustParseAddrPort(replySrc), netip.MustParseAddrPort(replyDst)
	f.TupleOrig.IP.SourceAddress, f.TupleOrig.Proto.SourcePort = ps.Addr(), ps.Port()
	f.TupleOrig.IP.DestinationAddress, f.TupleOrig.Proto.DestinationPort = od.Addr(), od.Port()
	f.TupleReply.IP.SourceAddress, f.TupleReply.Proto.SourcePort = rs.Addr(), rs.Port()
	f.TupleReply.IP.DestinationAddress, f.TupleReply.Proto.DestinationPort = rd.Addr(), rd.Port()
	f.TupleOrig.Proto.Protocol, f.TupleReply.Proto.Protocol = proto, proto
	return &f
}

// mkEdge is an edge from "src", "dst:port".
func mkEdge(proto uint8, src, dst string) edge {
	d := netip.MustParseAddrPort(dst)
	return edge{src: netip.MustParseAddr(src), dst: d.Addr(), port: d.Port(), proto: proto}
}

// value reads a counter or gauge.
func value(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// newTestAgent returns an agent with a token file holding "token-1", fast backoffs and a
// test logger; tweak the options with opts.
func newTestAgent(t testing.TB, tweak func(*Options)) *Agent {
	t.Helper()
	dir := t.TempDir()
	o := Options{
		TokenFile:        filepath.Join(dir, "token"),
		WebhookURLs:      []string{"https://127.0.0.1:1"},
		Interval:         50 * time.Millisecond,
		MinBackoff:       10 * time.Millisecond,
		MaxBackoff:       100 * time.Millisecond,
		PushTimeout:      5 * time.Second,
		MaxBufferedEdges: 1000,
		NodeName:         "node-1",
		Log:              testr.NewWithInterface(t, testr.Options{Verbosity: 1}),
	}
	writeFile(t, o.TokenFile, "token-1\n")
	if tweak != nil {
		tweak(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	a.localAddrs = func() ([]netip.Addr, error) { return nil, nil }
	return a
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startPushing starts a's replica workers until the test ends.
func startPushing(t *testing.T, a *Agent) {
	t.Helper()
	if err := a.push.reloadCA(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.push.start(ctx)
	t.Cleanup(func() {
		cancel()
		a.push.wait()
	})
}

// webhook is a fake replica of the push API: it records what it is sent and answers what
// status tells it (200 when nil).
type webhook struct {
	srv *httptest.Server

	mu       sync.Mutex
	recs     []flows.Record
	batches  []int
	tokens   []string
	sources  []string
	attempts []time.Time
	status   func(attempt int, token string, recs []flows.Record) int
}

func newWebhook(t *testing.T, ln net.Listener) *webhook {
	t.Helper()
	w := &webhook{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(w.serve))
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	w.srv = srv
	return w
}

func (w *webhook) serve(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != flowapi.FlowsPath || r.Method != http.MethodPost {
		http.Error(rw, "not found", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	recs, err := flows.ReadAll(body, "")
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	token := r.Header.Get("Authorization")
	w.mu.Lock()
	w.attempts = append(w.attempts, time.Now())
	w.tokens = append(w.tokens, token)
	code := http.StatusOK
	if w.status != nil {
		code = w.status(len(w.attempts), token, recs)
	}
	if code == http.StatusOK {
		w.recs = append(w.recs, recs...)
		w.batches = append(w.batches, len(recs))
		w.sources = append(w.sources, r.Header.Get(flowapi.FlowSourceHeader))
	}
	w.mu.Unlock()
	if code != http.StatusOK {
		http.Error(rw, `{"error":"no"}`, code)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	io.WriteString(rw, `{"accepted":1,"unresolved":0}`)
}

// caFile writes the server's certificate as a CA bundle.
func (w *webhook) caFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.crt")
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.srv.Certificate().Raw})))
	return path
}

func (w *webhook) records() []flows.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.recs)
}

// edges returns the distinct edges received, as "src -> dst:port/PROTO".
func (w *webhook) edges() []string {
	return recordEdges(w.records())
}

func recordEdges(recs []flows.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Src.IP+" -> "+net.JoinHostPort(r.Dst.IP, strconv.Itoa(int(r.Port)))+"/"+r.Protocol)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

type (
	conntrackFlow  = conntrack.Flow
	conntrackTuple = conntrack.Tuple
)

func flowOf(proto uint8, origSrc, origDst, replySrc, replyDst string) func() *conntrack.Flow {
	return func() *conntrack.Flow { return ctFlow(proto, origSrc, origDst, replySrc, replyDst) }
}

func tcp(origSrc, origDst, replySrc, replyDst string) func() *conntrack.Flow {
	return flowOf(protoTCP, origSrc, origDst, replySrc, replyDst)
}

func udp(origSrc, origDst, replySrc, replyDst string) func() *conntrack.Flow {
	return flowOf(protoUDP, origSrc, origDst, replySrc, replyDst)
}

func discardLogger() logr.Logger { return logr.Discard() }
