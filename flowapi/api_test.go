package flowapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/flows/goldmane"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
)

var (
	agentUser    = ServiceAccountUser("netpol-guard", "netpol-guard-agent")
	exporterUser = ServiceAccountUser("ci", "flow-exporter")
	strangerUser = ServiceAccountUser("default", "default")
	pushNow      = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
)

// tokenAuth is a test double for the TokenReview: a fixed token → user table. The token
// "unverifiable" stands for an API server that cannot be reached.
type tokenAuth map[string]string

func (a tokenAuth) Authenticate(_ context.Context, token string) (User, error) {
	if token == "unverifiable" {
		return User{}, errors.New("connection refused")
	}
	if u, ok := a[token]; ok {
		return User{Name: u}, nil
	}
	return User{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
}

var testTokens = tokenAuth{"agent-token": agentUser, "exporter-token": exporterUser, "stranger-token": strangerUser}

// testResolver is a test double for the cluster's resolver: workloads and pods resolve by
// name, IPs in 192.0.2.0/24 are external, any other IP is unknown (unresolved).
var testResolver = flows.ResolverFunc(func(rec flows.Record) (flows.Observation, bool) {
	src, srcInfo, ok1 := resolveTestPeer(rec.Src)
	dst, dstInfo, ok2 := resolveTestPeer(rec.Dst)
	if !ok1 || !ok2 {
		return flows.Observation{}, false
	}
	return flows.Observation{
		Src: src, Dst: dst, SrcInfo: srcInfo, DstInfo: dstInfo,
		Port: rec.Port, Protocol: corev1.Protocol(rec.Protocol), Seen: rec.LastSeen, Count: rec.Count,
	}, true
})

func resolveTestPeer(p flows.Peer) (flows.PeerID, *flows.PeerInfo, bool) {
	var info *flows.PeerInfo
	if p.Labels != nil {
		info = &flows.PeerInfo{Labels: p.Labels}
	}
	switch {
	case p.Workload != "":
		return flows.PeerID{Kind: flows.PeerWorkload, Namespace: p.Namespace, Name: p.Workload}, info, true
	case p.Pod != "":
		return flows.PeerID{Kind: flows.PeerWorkload, Namespace: p.Namespace, Name: "Pod/" + p.Pod}, info, true
	}
	addr, err := netip.ParseAddr(p.IP)
	if err == nil && netip.MustParsePrefix("192.0.2.0/24").Contains(addr) {
		return flows.PeerID{Kind: flows.PeerExternal, IP: addr}, nil, true
	}
	return flows.PeerID{}, nil, false
}

const (
	webToCart    = `{"src":{"namespace":"shop","workload":"Deployment/web","labels":{"app":"web"}},"dst":{"namespace":"shop","workload":"Deployment/cart","labels":{"app":"cart"}},"port":8080,"protocol":"TCP","lastSeen":"2026-11-20T11:59:00Z","count":7}`
	cartToBank   = `{"src":{"namespace":"shop","workload":"Deployment/cart"},"dst":{"ip":"192.0.2.10"},"port":443,"protocol":"TCP"}`
	unknownToWeb = `{"src":{"ip":"10.99.0.1"},"dst":{"namespace":"shop","pod":"web-1"},"port":8080,"protocol":"TCP"}`
	badIPLine    = `{"src":{"ip":"10.0.0.300"},"dst":{"namespace":"shop","pod":"web-1"},"port":8080}`
)

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func gzipped(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := io.WriteString(zw, s); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// newTestHandler returns the API over a fresh cache, changed by tweaks.
func newTestHandler(t testing.TB, tweaks ...func(*HandlerOptions)) (http.Handler, *flows.Cache) {
	c := flows.New(flows.Options{})
	opts := HandlerOptions{
		Cache: c, Resolver: testResolver, Authenticator: testTokens,
		AnyNodeWriters: []string{agentUser}, Readers: []string{exporterUser},
		Now: func() time.Time { return pushNow },
	}
	if tt, ok := t.(*testing.T); ok {
		opts.Log = testr.New(tt)
	}
	for _, tweak := range tweaks {
		tweak(&opts)
	}
	return NewHandler(opts), c
}

// guardedBody fails the test if it is read: authentication comes before the body.
type guardedBody struct {
	t    *testing.T
	read bool
}

func (g *guardedBody) Read([]byte) (int, error) {
	g.read = true
	g.t.Error("body read before the request was authorised")
	return 0, io.EOF
}

func TestPushAPI(t *testing.T) {
	type want struct {
		code       int
		result     *IngestResult // for 200
		line       int           // for 400 naming a line
		field      string
		errHas     string // in the JSON error message
		edges      int
		unresolved uint64
		source     string // a source whose contact is recorded
		header     map[string]string
	}
	cases := []struct {
		name    string
		method  string
		path    string
		token   string // "Bearer <token>"; "-" sends no Authorization
		auth    string // raw Authorization header, overrides token
		headers map[string]string
		body    []byte
		guard   bool // the body must not be read
		opts    func(*HandlerOptions)
		want    want
	}{
		{
			name: "valid batch is accepted, unresolved flows counted",
			body: []byte(lines(webToCart, cartToBank, unknownToWeb)),
			want: want{code: 200, result: &IngestResult{Accepted: 2, Unresolved: 1}, edges: 2, unresolved: 1, source: agentUser},
		},
		{
			name:    "X-Flow-Source names the sender within its user",
			headers: map[string]string{FlowSourceHeader: "node-a"},
			body:    []byte(lines(webToCart)),
			want:    want{code: 200, result: &IngestResult{Accepted: 1}, edges: 1, source: agentUser + "/node-a"},
		},
		{
			name: "repeated flows aggregate into one edge",
			body: []byte(lines(webToCart, webToCart, "# a comment", "", webToCart)),
			want: want{code: 200, result: &IngestResult{Accepted: 3}, edges: 1},
		},
		{
			name: "empty batch is accepted and records the contact",
			body: nil,
			want: want{code: 200, result: &IngestResult{}, source: agentUser},
		},
		{
			name:    "gzip body is accepted",
			headers: map[string]string{"Content-Encoding": "gzip"},
			body:    gzipped(t, lines(webToCart, cartToBank)),
			want:    want{code: 200, result: &IngestResult{Accepted: 2}, edges: 2},
		},
		{
			name: "malformed line 3 is 400 naming line and field, nothing applied",
			body: []byte(lines(webToCart, cartToBank, badIPLine, webToCart)),
			want: want{code: 400, line: 3, field: "src.ip", errHas: `line 3: src.ip: invalid IP address "10.0.0.300"`},
		},
		{
			name: "line that is not JSON is 400 naming the line",
			body: []byte(lines(webToCart, `{"src":`)),
			want: want{code: 400, line: 2, errHas: "line 2: invalid JSON"},
		},
		{
			name: "unknown field is 400 naming it",
			body: []byte(lines(`{"src":{"ip":"192.0.2.1"},"dst":{"ip":"192.0.2.2"},"port":53,"proto":"UDP"}`)),
			want: want{code: 400, line: 1, field: "proto"},
		},
		{
			name: "body over MaxBodyBytes is 413, nothing applied",
			opts: func(o *HandlerOptions) { o.MaxBodyBytes = 1000 },
			body: []byte(strings.Repeat(webToCart+"\n", 10)),
			want: want{code: 413, errHas: "larger than 1000 bytes"},
		},
		{
			name: "body cut by the limit mid-line is 413, not a malformed line",
			opts: func(o *HandlerOptions) { o.MaxBodyBytes = int64(len(webToCart) + 10) },
			body: []byte(lines(webToCart, webToCart)),
			want: want{code: 413},
		},
		{
			name:    "gzip bomb is cut at MaxBodyBytes after decompression",
			opts:    func(o *HandlerOptions) { o.MaxBodyBytes = 64 << 10 },
			headers: map[string]string{"Content-Encoding": "gzip"},
			body:    gzipped(t, strings.Repeat(webToCart+"\n", 100_000)), // ~24 MiB inflated
			want:    want{code: 413},
		},
		{
			name:    "gzip bomb of blank lines is cut too",
			opts:    func(o *HandlerOptions) { o.MaxBodyBytes = 64 << 10 },
			headers: map[string]string{"Content-Encoding": "gzip"},
			body:    gzipped(t, strings.Repeat("\n", 8<<20)),
			want:    want{code: 413},
		},
		{
			name: "more records than MaxRecords is 413, nothing applied",
			opts: func(o *HandlerOptions) { o.MaxRecords = 2 },
			body: []byte(lines(webToCart, cartToBank, webToCart)),
			want: want{code: 413, errHas: "more than 2 flow records"},
		},
		{
			name:    "invalid gzip is 400",
			headers: map[string]string{"Content-Encoding": "gzip"},
			body:    []byte(lines(webToCart)),
			want:    want{code: 400, errHas: "invalid gzip body"},
		},
		{
			name:    "truncated gzip is 400, nothing applied",
			headers: map[string]string{"Content-Encoding": "gzip"},
			body:    gzipped(t, lines(webToCart, cartToBank))[:30],
			want:    want{code: 400, errHas: "invalid gzip body"},
		},
		{
			name:    "unsupported Content-Encoding is 415",
			headers: map[string]string{"Content-Encoding": "br"},
			body:    []byte(lines(webToCart)),
			guard:   true,
			want:    want{code: 415},
		},
		{
			name:    "over-long X-Flow-Source is 400",
			headers: map[string]string{FlowSourceHeader: strings.Repeat("n", 129)},
			guard:   true,
			want:    want{code: 400, errHas: FlowSourceHeader},
		},
		{
			name:  "no token is 401 with a Bearer challenge",
			token: "-",
			guard: true,
			want:  want{code: 401, errHas: "missing bearer token", header: map[string]string{"WWW-Authenticate": `Bearer realm="netpol-guard"`}},
		},
		{
			name:  "basic credentials are 401",
			auth:  "Basic YWdlbnQ6cHc=",
			guard: true,
			want:  want{code: 401},
		},
		{
			name:  "bad token is 401",
			token: "forged",
			guard: true,
			want:  want{code: 401, errHas: "invalid bearer token", header: map[string]string{"WWW-Authenticate": `Bearer realm="netpol-guard", error="invalid_token"`}},
		},
		{
			name:  "valid token of a user not allowed to write is 403",
			token: "stranger-token",
			guard: true,
			want:  want{code: 403, errHas: strangerUser},
		},
		{
			name:  "readers may not write",
			token: "exporter-token",
			guard: true,
			want:  want{code: 403},
		},
		{
			name:  "no writers configured refuses every push",
			opts:  func(o *HandlerOptions) { o.Writers, o.AnyNodeWriters = nil, nil },
			guard: true,
			want:  want{code: 403},
		},
		{
			name:  "token that cannot be verified now is 503",
			token: "unverifiable",
			guard: true,
			want:  want{code: 503, header: map[string]string{"Retry-After": "5"}},
		},
		{
			name:   "PUT is 405 naming the allowed methods",
			method: http.MethodPut,
			guard:  true,
			want:   want{code: 405, header: map[string]string{"Allow": "GET, POST"}},
		},
		{
			name:   "DELETE is 405",
			method: http.MethodDelete,
			guard:  true,
			want:   want{code: 405},
		},
		{
			name:  "other paths are 404",
			path:  "/v1/flowsx",
			guard: true,
			want:  want{code: 404},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tweaks []func(*HandlerOptions)
			if tc.opts != nil {
				tweaks = append(tweaks, tc.opts)
			}
			h, c := newTestHandler(t, tweaks...)
			method, path := cmpOr(tc.method, http.MethodPost), cmpOr(tc.path, FlowsPath)
			var body io.Reader = bytes.NewReader(tc.body)
			guard := &guardedBody{t: t}
			if tc.guard {
				body = guard
			}
			req := httptest.NewRequestWithContext(t.Context(), method, path, body)
			switch {
			case tc.auth != "":
				req.Header.Set("Authorization", tc.auth)
			case tc.token != "-":
				req.Header.Set("Authorization", "Bearer "+cmpOr(tc.token, "agent-token"))
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)

			if rr.Code != tc.want.code {
				t.Fatalf("status %d, want %d; body %s", rr.Code, tc.want.code, rr.Body)
			}
			if ct := rr.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			for k, v := range tc.want.header {
				if got := rr.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tc.want.code == http.StatusOK {
				var got IngestResult
				if err := json.Unmarshal(rr.Body.Bytes(), &got); err != nil {
					t.Fatalf("decoding %s: %v", rr.Body, err)
				}
				if got != *tc.want.result {
					t.Errorf("result %+v, want %+v", got, *tc.want.result)
				}
			} else {
				var got struct {
					Error string `json:"error"`
					Line  int    `json:"line"`
					Field string `json:"field"`
				}
				if err := json.Unmarshal(rr.Body.Bytes(), &got); err != nil {
					t.Fatalf("error body is not JSON: %s: %v", rr.Body, err)
				}
				if got.Error == "" || !strings.Contains(got.Error, tc.want.errHas) {
					t.Errorf("error %q, want it to contain %q", got.Error, tc.want.errHas)
				}
				if got.Line != tc.want.line || got.Field != tc.want.field {
					t.Errorf("line %d field %q, want line %d field %q", got.Line, got.Field, tc.want.line, tc.want.field)
				}
			}
			cov := c.Coverage()
			if cov.Edges != tc.want.edges || cov.Unresolved != tc.want.unresolved {
				t.Errorf("cache holds %d edges, %d unresolved; want %d, %d", cov.Edges, cov.Unresolved, tc.want.edges, tc.want.unresolved)
			}
			if tc.want.code != http.StatusOK && len(cov.Sources) != 0 {
				t.Errorf("refused push recorded a contact: %v", cov.Sources)
			}
			if tc.want.source != "" && !cov.Sources[tc.want.source].Equal(pushNow) {
				t.Errorf("contact of %q not recorded at %v: %v", tc.want.source, pushNow, cov.Sources)
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestPushedFlowsLandAsEdges(t *testing.T) {
	h, c := newTestHandler(t)
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, FlowsPath, strings.NewReader(lines(webToCart, cartToBank, webToCart)))
	req.Header.Set("Authorization", "Bearer agent-token")
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	if rr.Code != 200 {
		t.Fatalf("status %d: %s", rr.Code, rr.Body)
	}
	into := c.EdgesInto("shop", nil)
	if len(into) != 1 {
		t.Fatalf("edges into shop: %+v", into)
	}
	e := into[0]
	if e.Src.String() != "shop/Deployment/web" || e.Dst.String() != "shop/Deployment/cart" || e.Count != 14 {
		t.Errorf("edge %v → %v count %d, want web → cart count 14", e.Src, e.Dst, e.Count)
	}
	if !e.LastSeen.Equal(time.Date(2026, 11, 20, 11, 59, 0, 0, time.UTC)) {
		t.Errorf("lastSeen %v, want the record's", e.LastSeen)
	}
	out := c.EdgesOutOf("shop", nil)
	var bank *flows.Edge
	for i := range out {
		if out[i].Dst.Kind == flows.PeerExternal {
			bank = &out[i]
		}
	}
	if bank == nil || !bank.LastSeen.Equal(pushNow) {
		t.Errorf("edge to 192.0.2.10 without lastSeen not taken as seen now: %+v", bank)
	}
}

func TestPushMetrics(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	h, _ := newTestHandler(t, func(o *HandlerOptions) { o.Metrics = m })
	push := func(token, body string) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, FlowsPath, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	push("agent-token", lines(webToCart, unknownToWeb))
	push("agent-token", lines(badIPLine))
	push("forged", lines(webToCart))
	get := httptest.NewRequestWithContext(t.Context(), http.MethodGet, FlowsPath, nil)
	get.Header.Set("Authorization", "Bearer exporter-token")
	h.ServeHTTP(httptest.NewRecorder(), get)

	for name, tc := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"ingest 200":       {m.IngestRequests.WithLabelValues("200"), 1},
		"ingest 400":       {m.IngestRequests.WithLabelValues("400"), 1},
		"ingest 401":       {m.IngestRequests.WithLabelValues("401"), 1},
		"flows accepted":   {m.FlowsAccepted, 1},
		"flows unresolved": {m.FlowsUnresolved, 1},
		"export 200":       {m.ExportRequests.WithLabelValues("200"), 1},
	} {
		if got := counterValue(t, tc.c); got != tc.want {
			t.Errorf("%s = %v, want %v", name, got, tc.want)
		}
	}
}

func counterValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// newTestServer serves the API over TLS, as the webhook does.
func newTestServer(t *testing.T, tweaks ...func(*HandlerOptions)) (*httptest.Server, *flows.Cache) {
	h, c := newTestHandler(t, tweaks...)
	mux := http.NewServeMux()
	mux.Handle(FlowsPath, h)
	ts := httptest.NewTLSServer(mux)
	t.Cleanup(ts.Close)
	return ts, c
}

func TestExportRoundTrip(t *testing.T) {
	ts, _ := newTestServer(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+FlowsPath, strings.NewReader(lines(webToCart, cartToBank, unknownToWeb)))
	req.Header.Set("Authorization", "Bearer agent-token")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: status %d", resp.StatusCode)
	}

	for _, tc := range []struct {
		token  string
		export func(context.Context, *http.Client, string, string, io.Writer) error
	}{{"exporter-token", Export}, {"exporter-token", ExportThroughProxy}} {
		token := tc.token
		var out bytes.Buffer
		if err := tc.export(t.Context(), ts.Client(), ts.URL, token, &out); err != nil {
			t.Fatalf("Export with %s: %v", token, err)
		}
		recs, err := flows.ReadAll(&out, "export")
		if err != nil {
			t.Fatalf("export does not read back: %v\n%s", err, out.String())
		}
		got := recordStrings(recs)
		want := []string{
			// cart's labels were learnt from the other record: peers are kept once.
			`{"src":{"namespace":"shop","workload":"Deployment/cart","labels":{"app":"cart"}},"dst":{"ip":"192.0.2.10"},"port":443,"protocol":"TCP","lastSeen":"2026-11-20T12:00:00Z","count":1}`,
			`{"src":{"namespace":"shop","workload":"Deployment/web","labels":{"app":"web"}},"dst":{"namespace":"shop","workload":"Deployment/cart","labels":{"app":"cart"}},"port":8080,"protocol":"TCP","lastSeen":"2026-11-20T11:59:00Z","count":7}`,
		}
		if !slices.Equal(got, want) {
			t.Errorf("export with %s:\n got %q\nwant %q", token, got, want)
		}

		// Re-importing the export into another cache gives the same edges.
		h2, c2 := newTestHandler(t)
		var body bytes.Buffer
		if err := flows.Write(&body, recs...); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, FlowsPath, &body)
		req.Header.Set("Authorization", "Bearer agent-token")
		rr := httptest.NewRecorder()
		h2.ServeHTTP(rr, req)
		if rr.Code != 200 || c2.Len() != 2 {
			t.Errorf("re-import: status %d, %d edges; want 200, 2", rr.Code, c2.Len())
		}
	}
}

// recordStrings writes each record on its own, sorted, for order-free comparison.
func recordStrings(recs []flows.Record) []string {
	var out []string
	for _, r := range recs {
		var b bytes.Buffer
		if err := flows.Write(&b, r); err != nil {
			panic(err)
		}
		out = append(out, strings.TrimSpace(b.String()))
	}
	slices.Sort(out)
	return out
}

func TestExportNamespaceFilter(t *testing.T) {
	h, c := newTestHandler(t)
	shop := func(n string) flows.PeerID { return flows.PeerID{Kind: flows.PeerWorkload, Namespace: "shop", Name: n} }
	bill := flows.PeerID{Kind: flows.PeerWorkload, Namespace: "billing", Name: "Deployment/ledger"}
	ops := flows.PeerID{Kind: flows.PeerWorkload, Namespace: "ops", Name: "DaemonSet/probe"}
	bank := flows.PeerID{Kind: flows.PeerExternal, IP: netip.MustParseAddr("192.0.2.10")}
	at := pushNow.Add(-time.Minute)
	c.Add(
		flows.Observation{Src: shop("Deployment/web"), Dst: shop("Deployment/cart"), Port: 8080, Seen: at},
		flows.Observation{Src: shop("Deployment/cart"), Dst: bill, Port: 9000, Seen: at},
		flows.Observation{Src: bill, Dst: shop("Deployment/cart"), Port: 8081, Seen: at},
		flows.Observation{Src: bank, Dst: shop("Deployment/web"), Port: 443, Seen: at},
		flows.Observation{Src: ops, Dst: ops, Port: 9100, Seen: at},
		flows.Observation{Src: bill, Dst: bank, Port: 443, Seen: at},
	)
	cases := []struct {
		name  string
		query string
		code  int
		want  []string // "src>dst:port"
	}{
		{"no filter exports every edge", "", 200, []string{
			"192.0.2.10>shop/Deployment/web:443", "billing/Deployment/ledger>192.0.2.10:443",
			"billing/Deployment/ledger>shop/Deployment/cart:8081", "ops/DaemonSet/probe>ops/DaemonSet/probe:9100",
			"shop/Deployment/cart>billing/Deployment/ledger:9000", "shop/Deployment/web>shop/Deployment/cart:8080",
		}},
		{"namespace exports edges into and out of it, each once", "?namespace=shop", 200, []string{
			"192.0.2.10>shop/Deployment/web:443", "billing/Deployment/ledger>shop/Deployment/cart:8081",
			"shop/Deployment/cart>billing/Deployment/ledger:9000", "shop/Deployment/web>shop/Deployment/cart:8080",
		}},
		{"edge within one namespace is exported once", "?namespace=ops", 200, []string{"ops/DaemonSet/probe>ops/DaemonSet/probe:9100"}},
		{"namespace with no edges exports nothing", "?namespace=empty", 200, nil},
		{"invalid namespace is 400", "?namespace=Not_A_Namespace", 400, nil},
		{"empty namespace is 400", "?namespace=", 400, nil},
		{"namespace twice is 400", "?namespace=shop&namespace=ops", 400, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, FlowsPath+tc.query, nil)
			req.Header.Set("Authorization", "Bearer exporter-token")
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rr.Code, tc.code, rr.Body)
			}
			if tc.code != 200 {
				return
			}
			if ct := rr.Header().Get("Content-Type"); ct != NDJSONContentType {
				t.Errorf("Content-Type %q", ct)
			}
			recs, err := flows.ReadAll(rr.Body, "export")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, fmt.Sprintf("%s>%s:%d", peerString(r.Src), peerString(r.Dst), r.Port))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func peerString(p flows.Peer) string {
	if p.Workload != "" {
		return p.Namespace + "/" + p.Workload
	}
	return p.IP
}

func TestExportNodePeers(t *testing.T) {
	m := NewMetrics(nil)
	h, c := newTestHandler(t, func(o *HandlerOptions) {
		o.Metrics = m
		o.NodeAddress = func(name string) (netip.Addr, bool) {
			if name == "node-a" {
				return netip.MustParseAddr("172.18.0.2"), true
			}
			return netip.Addr{}, false
		}
	})
	web := flows.PeerID{Kind: flows.PeerWorkload, Namespace: "shop", Name: "Deployment/web"}
	c.Add(
		flows.Observation{Src: flows.PeerID{Kind: flows.PeerNode, Name: "node-a"}, Dst: web, Port: 8080, Seen: pushNow},
		flows.Observation{Src: flows.PeerID{Kind: flows.PeerNode, Name: "node-b"}, Dst: web, Port: 8080, Seen: pushNow},
		flows.Observation{Src: web, Dst: flows.PeerID{Kind: flows.PeerNode, Name: "node-b"}, Port: 10250, Seen: pushNow},
	)
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, FlowsPath, nil)
	req.Header.Set("Authorization", "Bearer exporter-token")
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	recs, err := flows.ReadAll(rr.Body, "export")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Src.IP != "172.18.0.2" {
		t.Errorf("want only the edge of node-a, by its address; got %+v", recs)
	}
	if got := counterValue(t, m.ExportSkippedEdges); got != 2 {
		t.Errorf("skipped edges counted %v, want 2", got)
	}
}

func TestExportCompressesWhenAsked(t *testing.T) {
	h, c := newTestHandler(t)
	c.Add(flows.Observation{Src: wl("shop", "Deployment/web"), Dst: wl("shop", "Deployment/cart"), Port: 8080, Seen: pushNow})
	for _, tc := range []struct {
		acceptEncoding string
		gzip           bool
	}{
		{"", false}, {"gzip", true}, {"br, gzip;q=0.5", true}, {"gzip;q=0", false}, {"identity", false},
	} {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, FlowsPath, nil)
		req.Header.Set("Authorization", "Bearer exporter-token")
		req.Header.Set("Accept-Encoding", tc.acceptEncoding)
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		var body io.Reader = rr.Body
		if got := rr.Header().Get("Content-Encoding") == "gzip"; got != tc.gzip {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", tc.acceptEncoding, got, tc.gzip)
			continue
		}
		if tc.gzip {
			zr, err := gzip.NewReader(rr.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		if recs, err := flows.ReadAll(body, "export"); err != nil || len(recs) != 1 {
			t.Errorf("Accept-Encoding %q: %d records, %v", tc.acceptEncoding, len(recs), err)
		}
	}
}

func TestExportClientErrors(t *testing.T) {
	ts, _ := newTestServer(t)
	proxy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream connect error", http.StatusBadGateway)
	}))
	t.Cleanup(proxy.Close)
	html := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>login</html>")
	}))
	t.Cleanup(html.Close)

	cases := []struct {
		name     string
		server   *httptest.Server
		url      string
		token    string
		code     int      // of a *StatusError; 0 for other errors
		contains []string // in the error message
	}{
		{"bad token is 401 with the server's message", ts, "", "forged", 401, []string{"401 Unauthorized", "invalid bearer token", "token valid"}},
		{"user not allowed to read is 403 naming the user", ts, "", "stranger-token", 403, []string{"403 Forbidden", strangerUser, "may not read"}},
		{"non-200 with a text body carries the text", proxy, "", "exporter-token", 502, []string{"502 Bad Gateway", "upstream connect error"}},
		{"200 that is not flows is an error", html, "", "exporter-token", 0, []string{`Content-Type "text/html"`}},
		{"invalid namespace query is 400", ts, ts.URL + "/?namespace=Bad_NS", "exporter-token", 400, []string{"invalid namespace"}},
		{"empty token is refused before asking", ts, "", "  \n", 0, []string{"empty token"}},
		{"token is not sent over plain http to another host", nil, "http://netpol-guard.example:8443", "exporter-token", 0, []string{"refusing to send a token", "use https"}},
		{"URL without a host is refused", nil, "netpol-guard:8443", "exporter-token", 0, []string{"server URL"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url, client := tc.url, http.DefaultClient
			if tc.server != nil {
				client = tc.server.Client()
				url = cmpOr(url, tc.server.URL)
			}
			var out bytes.Buffer
			err := Export(t.Context(), client, url, tc.token, &out)
			if err == nil {
				t.Fatal("Export succeeded")
			}
			se, isStatus := errors.AsType[*StatusError](err)
			switch {
			case tc.code != 0 && (!isStatus || se.Code != tc.code):
				t.Errorf("error %v, want a StatusError with code %d", err, tc.code)
			case tc.code == 0 && isStatus:
				t.Errorf("error %v is a StatusError", err)
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if strings.Contains(err.Error(), tc.token) && strings.TrimSpace(tc.token) != "" {
				t.Errorf("error %q reveals the token", err)
			}
		})
	}
}

// FuzzPushBody throws arbitrary bodies, plain and gzipped, at the push API: it must answer
// 200, 400 or 413, never panic or 500, and a refused push must leave the cache untouched.
func FuzzPushBody(f *testing.F) {
	for _, s := range []string{
		lines(webToCart, cartToBank, unknownToWeb),
		lines(webToCart, badIPLine),
		"", "\n\n", "#\n", "{}", "null\n", `{"src":{"ip":"192.0.2.1"},"dst":{"ip":"192.0.2.2"},"port":70000}`,
		"\uFEFF" + webToCart, strings.Repeat("{", 100), webToCart + webToCart,
	} {
		f.Add([]byte(s), false)
		f.Add(gzipped(f, s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, gz bool) {
		h, c := newTestHandler(t, func(o *HandlerOptions) { o.MaxBodyBytes = 4096; o.MaxRecords = 10 })
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, FlowsPath, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer agent-token")
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		switch rr.Code {
		case 200:
		case 400, 413:
			if c.Len() != 0 || len(c.Coverage().Sources) != 0 {
				t.Fatalf("refused push (%d) changed the cache", rr.Code)
			}
		default:
			t.Fatalf("status %d: %s", rr.Code, rr.Body)
		}
		if !json.Valid(rr.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", rr.Body)
		}
	})
}

func wl(ns, name string) flows.PeerID {
	return flows.PeerID{Kind: flows.PeerWorkload, Namespace: ns, Name: name}
}

// Goldmane's emitter push, and the flow records it stands for (see goldmane.Convert): the
// denied flow and the one only its source reported add nothing; a FlowResult line reads
// as its flow.
var (
	goldmanePush = lines(
		`{"Key":{"source_name":"web-1","source_namespace":"shop","source_type":1,"dest_name":"cart-0","dest_namespace":"shop","dest_type":1,"dest_port":8080,"proto":"tcp","reporter":2,"action":1},"start_time":1795176000,"end_time":1795176015,"source_labels":["app=web","projectcalico.org/namespace=shop"],"dest_labels":["app=cart"],"num_connections_started":3}`,
		`{"Key":{"source_name":"web-1","source_namespace":"shop","source_type":1,"dest_name":"db-0","dest_namespace":"shop","dest_type":1,"dest_port":5432,"proto":"tcp","reporter":1,"action":2},"start_time":1795176000,"end_time":1795176015,"source_labels":["app=web"],"dest_labels":["app=db"],"num_connections_started":1}`,
		`{"Key":{"source_name":"web-1","source_namespace":"shop","source_type":1,"dest_name":"db-0","dest_namespace":"shop","dest_type":1,"dest_port":5432,"proto":"tcp","reporter":1,"action":1},"start_time":1795176000,"end_time":1795176015,"source_labels":["app=web"],"dest_labels":["app=db"],"num_connections_started":1}`,
		`{"id":7,"flow":{"Key":{"source_name":"cart-0","source_namespace":"shop","source_type":"WorkloadEndpoint","dest_name":"dns-0","dest_namespace":"kube-system","dest_type":"WorkloadEndpoint","dest_port":"53","proto":"udp","reporter":"Dst","action":"Allow"},"start_time":"1795176015","end_time":"1795176030","source_labels":["app=cart"],"dest_labels":["k8s-app=kube-dns"]}}`,
	)
	goldmaneAsRecords = lines(
		`{"src":{"namespace":"shop","pod":"web-1","labels":{"app":"web"}},"dst":{"namespace":"shop","pod":"cart-0","labels":{"app":"cart"}},"port":8080,"protocol":"TCP","lastSeen":"2026-11-20T12:00:15Z","count":3}`,
		`{"src":{"namespace":"shop","pod":"cart-0","labels":{"app":"cart"}},"dst":{"namespace":"kube-system","pod":"dns-0","labels":{"k8s-app":"kube-dns"}},"port":53,"protocol":"UDP","lastSeen":"2026-11-20T12:00:30Z","count":1}`,
	)
)

var goldmaneFormat = Format{Name: "goldmane", Detect: goldmane.LooksLike, Read: goldmane.ReadJSON}

// push sends body to h as the agent and returns the status and response.
func push(t *testing.T, h http.Handler, body []byte, gzipped bool) (int, string) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, FlowsPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer agent-token")
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	return rr.Code, rr.Body.String()
}

// exported is the handler's cache as sorted flow records.
func exported(t *testing.T, h http.Handler) []string {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, FlowsPath, nil)
	req.Header.Set("Authorization", "Bearer exporter-token")
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	if rr.Code != 200 {
		t.Fatalf("export: status %d: %s", rr.Code, rr.Body)
	}
	recs, err := flows.ReadAll(rr.Body, "export")
	if err != nil {
		t.Fatal(err)
	}
	return recordStrings(recs)
}

func TestPushOfGoldmaneJSONGivesTheEquivalentRecords(t *testing.T) {
	withGoldmane := func(o *HandlerOptions) { o.Formats = []Format{goldmaneFormat} }
	ref, _ := newTestHandler(t, withGoldmane)
	if code, body := push(t, ref, []byte(goldmaneAsRecords), false); code != 200 || body != `{"accepted":2,"unresolved":0,"rejected":0}`+"\n" {
		t.Fatalf("flow records: status %d: %s", code, body)
	}
	want := exported(t, ref)

	for _, tc := range []struct {
		name    string
		body    []byte
		gzipped bool
	}{
		{"plain", []byte(goldmanePush), false},
		{"after a comment and blank lines", []byte("# from goldmane\n\n" + goldmanePush), false},
		{"gzip", gzipped(t, goldmanePush), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newTestHandler(t, withGoldmane)
			if code, body := push(t, h, tc.body, tc.gzipped); code != 200 || body != `{"accepted":2,"unresolved":0,"rejected":0}`+"\n" {
				t.Fatalf("status %d: %s", code, body)
			}
			if got := exported(t, h); !slices.Equal(got, want) {
				t.Errorf("cache after the Goldmane push:\n got %q\nwant %q", got, want)
			}
		})
	}

	t.Run("bad line names its line", func(t *testing.T) {
		h, c := newTestHandler(t, withGoldmane)
		code, body := push(t, h, []byte(goldmanePush+`{"Key":{"proto":"tcp"},"start_time":`+"\n"), false)
		if code != 400 || !strings.Contains(body, `"line":5`) || c.Len() != 0 {
			t.Errorf("status %d, %d edges: %s; want 400 naming line 5, nothing added", code, c.Len(), body)
		}
	})
	t.Run("not a format the handler was given", func(t *testing.T) {
		h, c := newTestHandler(t)
		if code, body := push(t, h, []byte(goldmanePush), false); code != 400 || c.Len() != 0 {
			t.Errorf("status %d, %d edges: %s; want 400, nothing added", code, c.Len(), body)
		}
	})
}

// limitedAuth refuses every token as a CachingAuthenticator past its limits does.
type limitedAuth struct{ err *LimitedError }

func (a limitedAuth) Authenticate(context.Context, string) (User, error) { return User{}, a.err }

func TestTokenReviewLimitsAnswerWithRetryAfter(t *testing.T) {
	for _, le := range []*LimitedError{
		{Code: http.StatusTooManyRequests, RetryAfter: 1500 * time.Millisecond, Reason: "too many token reviews a second"},
		{Code: http.StatusServiceUnavailable, RetryAfter: time.Second, Reason: "too many token reviews in flight"},
	} {
		h, _ := newTestHandler(t, func(o *HandlerOptions) { o.Authenticator = limitedAuth{le} })
		req := httptest.NewRequest(http.MethodPost, FlowsPath, strings.NewReader(""))
		req.Header.Set("Authorization", "Bearer x.y.z")
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code != le.Code || rr.Header().Get("Retry-After") == "" || !strings.Contains(rr.Body.String(), le.Reason) {
			t.Errorf("%s: answered %d, Retry-After %q, %s", le.Reason, rr.Code, rr.Header().Get("Retry-After"), rr.Body)
		}
		if le.Code == http.StatusTooManyRequests && rr.Header().Get("Retry-After") != "2" {
			t.Errorf("Retry-After %q for a 1.5s wait, want 2", rr.Header().Get("Retry-After"))
		}
	}
}

func TestExportAggregatedPeers(t *testing.T) {
	h, c := newTestHandler(t)
	web := flows.PeerID{Kind: flows.PeerWorkload, Namespace: "shop", Name: "Deployment/web"}
	c.Add(flows.Observation{Src: flows.PeerID{Kind: flows.PeerExternal, IP: netip.MustParseAddr("203.0.113.0"), Bits: 24}, Dst: web, Port: 443, Seen: pushNow})
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, FlowsPath, nil)
	req.Header.Set("Authorization", "Bearer exporter-token")
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	recs, err := flows.ReadAll(rr.Body, "export")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || !reflect.DeepEqual(recs[0].Src, flows.Peer{CIDR: "203.0.113.0/24"}) {
		t.Errorf("want the network written as its cidr; got %+v", recs)
	}
}
