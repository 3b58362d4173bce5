package flowapi

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/validate/content"

	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/internal/metric"
)

// The push and export API, mounted by the webhook's HTTPS server:
//
//	POST /v1/flows   body: JSON Lines flow records, or a format of HandlerOptions.Formats
//	                 detected from its first line (Content-Encoding gzip accepted)
//	                 200 {"accepted":N,"unresolved":M,"rejected":K}
//	                 400 {"error":"line 3: src.ip: invalid IP address \"x\"","line":3,"field":"src.ip"}
//	GET  /v1/flows   the cache as JSON Lines flow records; ?namespace=N for the edges into
//	                 or out of workloads of namespace N
//
// Both take "Authorization: Bearer <token>" (or TokenHeader): no or a rejected token is 401, a user not
// allowed to write (POST) or read (GET) is 403.
const (
	// FlowsPath is the path the handler serves.
	FlowsPath = "/v1/flows"
	// FlowSourceHeader optionally names the sender within its user (a node name, say): the
	// source recorded for coverage is "<user>/<value>".
	FlowSourceHeader = "X-Flow-Source"
	// NDJSONContentType is the media type of exported flows.
	NDJSONContentType = "application/x-ndjson"
	// TokenHeader carries "Bearer <token>" when Authorization cannot: through the API
	// server's Service proxy, which authenticates the caller by Authorization and removes
	// it before proxying. Authorization wins when both are sent.
	TokenHeader = "X-Netpol-Guard-Authorization"
)

// Defaults for HandlerOptions.
const (
	DefaultMaxBodyBytes         = 8 << 20
	DefaultMaxRecords           = 100_000
	DefaultMaxConcurrentIngests = 4
)

const (
	maxFlowSourceBytes = 128
	authTimeout        = 10 * time.Second
	// ingestQueueTimeout is how long a push waits for a free ingest slot before 503.
	ingestQueueTimeout = 10 * time.Second
	maxErrorBodyBytes  = 64 << 10
)

// HandlerOptions configures the push and export API.
type HandlerOptions struct {
	// flows.Cache receives pushed flows and is exported. Required.
	Cache *flows.Cache
	// flows.Resolver turns pushed records into cache identities. Required.
	Resolver flows.Resolver
	// Authenticator checks bearer tokens. Required.
	Authenticator Authenticator
	// Writers are the users allowed to push the flows of one node: the node agent's
	// ServiceAccount (ServiceAccountUser("netpol-guard", "netpol-guard-agent")). Their
	// tokens must be bound to a node (User.Node), and of their records only those with one
	// end on that node are taken (see Placement); a token bound to no node is refused.
	Writers []string
	// AnyNodeWriters are the users allowed to push any flows, with or without a node
	// binding: Hubble Relay-like pushers that see the whole cluster.
	AnyNodeWriters []string
	// Readers are the users allowed to export. Writing does not imply reading, nor reading
	// writing: a user that does both is listed in both.
	Readers []string
	// Placement places the peers of the Writers' records on nodes. Nil: no record of a
	// node-bound writer has an end on its node but the node itself.
	Placement Placement
	// MaxBodyBytes bounds a push body, before and after decompression. Default 8 MiB.
	MaxBodyBytes int64
	// MaxRecords bounds the records of one push. Default 100 000.
	MaxRecords int
	// MaxConcurrentIngests bounds the pushes decoded at once, and with MaxBodyBytes the
	// memory they take. Default 4.
	MaxConcurrentIngests int
	// NodeAddress gives an address by which to export a node peer; edges of nodes it does
	// not know (or all, when nil) are left out of exports, and counted.
	NodeAddress func(name string) (netip.Addr, bool)
	// Formats are the flow formats a push body may come in besides flow records, such as
	// Goldmane's JSON lines; see Format.
	Formats []Format
	// Metrics, when not nil, counts requests and flows.
	Metrics *Metrics
	// Log receives one line per rejected request (V(1)) and per push and export (V(1)).
	Log logr.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Format is a flow format a push body may come in besides flow records (JSON Lines): a
// body whose first line (blank and '#' lines aside) a Format's Detect accepts is read with
// its Read, the first such Format winning; any other body with flows.Read. The webhook
// passes the formats of its sources (Goldmane's: goldmane.LooksLike, goldmane.ReadJSON), so
// this package, which the node agent links, links no decoder of theirs.
type Format struct {
	// Name is for logs: "goldmane".
	Name string
	// Detect looks at a body's first line, or at as much of it as fits in 64 KiB.
	Detect func(firstLine []byte) bool
	// Read reads the body as flows.Read does, returning *flows.LineError for a bad line.
	Read func(r io.Reader, source string, fn func(line int, rec flows.Record) error) error
}

// detectPeek is how much of a push body is looked at to tell its format.
const detectPeek = 64 << 10

// read reads a push body in the format its first line shows.
func (h *handler) read(in io.Reader, fn func(line int, rec flows.Record) error) (format string, err error) {
	if len(h.formats) == 0 {
		return "flows", flows.Read(in, "", fn)
	}
	br := bufio.NewReaderSize(in, detectPeek)
	data, _ := br.Peek(detectPeek) // a read error comes again from the reader
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		for _, f := range h.formats {
			if f.Detect(line) {
				return f.Name, f.Read(br, "", fn)
			}
		}
		break
	}
	return "flows", flows.Read(br, "", fn)
}

// Metrics of the push and export API. Register them once with NewMetrics.
type Metrics struct {
	// IngestRequests counts pushes by HTTP status code.
	IngestRequests *prometheus.CounterVec
	// FlowsAccepted and FlowsUnresolved count pushed records that went into the cache and
	// those that resolved to nothing known; FlowsRejected those of a node-bound writer with
	// no end on its node.
	FlowsAccepted, FlowsUnresolved, FlowsRejected prometheus.Counter
	// ExportRequests counts exports by HTTP status code.
	ExportRequests *prometheus.CounterVec
	// ExportSkippedEdges counts edges left out of exports for want of a node address.
	ExportSkippedEdges prometheus.Counter
	// TokenReviews counts the reviews a CachingAuthenticator asked for, by result
	// (authenticated, unauthenticated, error); TokensRefused the tokens it refused without
	// one, by reason (malformed, concurrency, rate).
	TokenReviews, TokensRefused *prometheus.CounterVec
}

// NewMetrics creates the API's metrics and registers them with reg, when not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := metric.Factory{Subsystem: "flows", Registerer: reg}
	return &Metrics{
		IngestRequests:     f.CounterVec("ingest_requests_total", "Flow pushes (POST /v1/flows) by HTTP status code.", "code"),
		FlowsAccepted:      f.Counter("accepted_total", "Pushed flow records added to the flow cache."),
		FlowsUnresolved:    f.Counter("unresolved_total", "Pushed flow records whose peers resolved to nothing known."),
		FlowsRejected:      f.Counter("rejected_total", "Pushed flow records of a node-bound writer with neither end on its node."),
		ExportRequests:     f.CounterVec("export_requests_total", "Flow exports (GET /v1/flows) by HTTP status code.", "code"),
		ExportSkippedEdges: f.Counter("export_skipped_edges_total", "Edges left out of flow exports because a node peer had no known address."),
		TokenReviews:       f.CounterVec("token_reviews_total", "TokenReviews asked for flow API callers, by result (authenticated, unauthenticated, error).", "result"),
		TokensRefused:      f.CounterVec("tokens_refused_total", "Flow API bearer tokens refused without a TokenReview, by reason (malformed, concurrency, rate).", "reason"),
	}
}

type handler struct {
	cache       *flows.Cache
	resolver    flows.Resolver
	auth        Authenticator
	pushers     map[string]bool // Writers and AnyNodeWriters
	anyNode     map[string]bool
	readers     map[string]bool
	placement   Placement
	maxBody     int64
	maxRecords  int
	ingestSlots chan struct{}
	nodeAddress func(string) (netip.Addr, bool)
	formats     []Format
	metrics     *Metrics
	log         logr.Logger
	now         func() time.Time
}

// NewHandler returns the push and export API for FlowsPath. It panics when flows.Cache,
// flows.Resolver or Authenticator is missing.
func NewHandler(opts HandlerOptions) http.Handler {
	if opts.Cache == nil || opts.Resolver == nil || opts.Authenticator == nil {
		panic("flowapi.NewHandler: Cache, Resolver and Authenticator are required")
	}
	h := &handler{
		cache: opts.Cache, resolver: opts.Resolver, auth: opts.Authenticator,
		pushers: map[string]bool{}, anyNode: map[string]bool{}, readers: map[string]bool{}, placement: opts.Placement,
		maxBody: opts.MaxBodyBytes, maxRecords: opts.MaxRecords,
		nodeAddress: opts.NodeAddress, formats: opts.Formats, metrics: opts.Metrics, log: opts.Log, now: opts.Now,
	}
	for _, u := range opts.Writers {
		h.pushers[u] = true
	}
	for _, u := range opts.AnyNodeWriters {
		h.pushers[u], h.anyNode[u] = true, true
	}
	for _, u := range opts.Readers {
		h.readers[u] = true
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.maxRecords <= 0 {
		h.maxRecords = DefaultMaxRecords
	}
	n := opts.MaxConcurrentIngests
	if n <= 0 {
		n = DefaultMaxConcurrentIngests
	}
	h.ingestSlots = make(chan struct{}, n)
	if h.nodeAddress == nil {
		h.nodeAddress = func(string) (netip.Addr, bool) { return netip.Addr{}, false }
	}
	if h.now == nil {
		h.now = time.Now
	}
	if len(h.pushers) == 0 {
		h.log.Info("No flow writers configured: every flow push will be refused")
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != FlowsPath {
		writeError(w, http.StatusNotFound, apiError{Error: "not found: " + r.URL.Path})
		return
	}
	switch r.Method {
	case http.MethodPost:
		code := h.ingest(w, r)
		if h.metrics != nil {
			h.metrics.IngestRequests.WithLabelValues(strconv.Itoa(code)).Inc()
		}
	case http.MethodGet:
		code := h.export(w, r)
		if h.metrics != nil {
			h.metrics.ExportRequests.WithLabelValues(strconv.Itoa(code)).Inc()
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, apiError{Error: fmt.Sprintf("method %s not allowed: use GET or POST", r.Method)})
	}
}

// apiError is the JSON body of every error answer.
type apiError struct {
	Error string `json:"error"`
	Line  int    `json:"line,omitempty"`
	Field string `json:"field,omitempty"`
}

// IngestResult is the JSON body of a successful push.
type IngestResult struct {
	Accepted   int `json:"accepted"`
	Unresolved int `json:"unresolved"`
	// Rejected records were of a node-bound writer and had no end on its node; Reason
	// says so.
	Rejected int    `json:"rejected"`
	Reason   string `json:"reason,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, e apiError) int {
	writeJSON(w, code, e)
	return code
}

// authorize authenticates the request's bearer token and checks its user is in allowed.
// On failure it has answered and returns the status code.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request, allowed map[string]bool, verb string) (User, int) {
	v := r.Header.Get("Authorization")
	if v == "" {
		v = r.Header.Get(TokenHeader)
	}
	token, ok := bearerToken(v)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="netpol-guard"`)
		h.log.V(1).Info("Flow request without bearer token", "method", r.Method, "remote", r.RemoteAddr)
		return User{}, writeError(w, http.StatusUnauthorized, apiError{Error: "missing bearer token"})
	}
	ctx, cancel := context.WithTimeout(r.Context(), authTimeout)
	defer cancel()
	user, err := h.auth.Authenticate(ctx, token)
	limited, isLimited := errors.AsType[*LimitedError](err)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="netpol-guard", error="invalid_token"`)
		h.log.V(1).Info("Flow request with rejected token", "method", r.Method, "remote", r.RemoteAddr, "reason", err.Error())
		return User{}, writeError(w, http.StatusUnauthorized, apiError{Error: "invalid bearer token"})
	case isLimited:
		h.log.V(1).Info("Flow request token not reviewed", "method", r.Method, "remote", r.RemoteAddr, "reason", limited.Reason)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(limited.RetryAfter)))
		return User{}, writeError(w, limited.Code, apiError{Error: limited.Reason + "; retry later"})
	case err != nil:
		h.log.Error(err, "Cannot verify flow request token", "method", r.Method, "remote", r.RemoteAddr)
		w.Header().Set("Retry-After", "5")
		return User{}, writeError(w, http.StatusServiceUnavailable, apiError{Error: "cannot verify the bearer token now; retry later"})
	case !allowed[user.Name]:
		h.log.V(1).Info("Flow request from user not allowed", "method", r.Method, "user", user.Name)
		return User{}, writeError(w, http.StatusForbidden, apiError{Error: fmt.Sprintf("user %q may not %s flows", user.Name, verb)})
	}
	return user, 0
}

// bearerToken takes the token from an "Authorization: Bearer <token>" value.
func bearerToken(v string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// errTooManyRecords stops flows.Read when a batch holds more records than allowed.
var errTooManyRecords = errors.New("too many records")

// The records of a push are gathered before any is applied, so that a bad line rejects the
// whole push. Their slices are reused: an agent pushes batches of the same size again and
// again, and growing a new slice to 10 k records each time is most of what a push allocates.
var recordSlices sync.Pool

// maxPooledRecords bounds the slices kept for reuse (about 2.5 MiB of records each).
const maxPooledRecords = 1 << 14

func getRecords() []flows.Record {
	if p, ok := recordSlices.Get().(*[]flows.Record); ok {
		return (*p)[:0]
	}
	return make([]flows.Record, 0, 1024)
}

func putRecords(recs []flows.Record) {
	if cap(recs) > maxPooledRecords {
		return
	}
	clear(recs) // drop what the records point to
	recordSlices.Put(&recs)
}

// ingest answers a push: authenticate, authorise, read and validate the whole batch, and
// only then add it to the cache. It returns the status code it answered with.
func (h *handler) ingest(w http.ResponseWriter, r *http.Request) int {
	u, code := h.authorize(w, r, h.pushers, "write")
	if code != 0 {
		return code
	}
	user := u.Name
	// A writer not listed for any node pushes for the node its token is bound to.
	node := ""
	if !h.anyNode[user] {
		if node = u.Node(); node == "" {
			return h.reject(w, user, http.StatusForbidden, apiError{Error: fmt.Sprintf(
				"user %q may push only with a token bound to a node (a projected ServiceAccount token of a pod on it); this one names none", user)})
		}
	}
	source := user
	if s := r.Header.Get(FlowSourceHeader); s != "" {
		if err := checkFlowSource(s); err != nil {
			return h.reject(w, user, http.StatusBadRequest, apiError{Error: err.Error()})
		}
		if node != "" && s != node {
			return h.reject(w, user, http.StatusForbidden, apiError{Error: fmt.Sprintf("%s %q is not %q, the node the token is bound to", FlowSourceHeader, s, node)})
		}
		source = user + "/" + s
	} else if node != "" {
		source = user + "/" + node
	}
	var decode func(io.Reader) (io.Reader, error)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		decode = func(body io.Reader) (io.Reader, error) {
			zr, err := gzip.NewReader(body)
			if err != nil {
				return nil, err
			}
			// Bound what the body inflates to as well as what it weighs on the wire.
			return &maxReader{r: zr, left: h.maxBody, limit: h.maxBody}, nil
		}
	default:
		return h.reject(w, user, http.StatusUnsupportedMediaType, apiError{Error: fmt.Sprintf("unsupported Content-Encoding %q: send gzip or no encoding", enc)})
	}

	// Wait for a slot: the bodies decoded at once, and so their memory, are bounded.
	switch ok, err := acquire(r.Context(), h.ingestSlots, ingestQueueTimeout); {
	case err != nil:
		return h.reject(w, user, http.StatusServiceUnavailable, apiError{Error: "request ended while waiting"})
	case !ok:
		w.Header().Set("Retry-After", "1")
		return h.reject(w, user, http.StatusServiceUnavailable, apiError{Error: "too many flow pushes at once; retry later"})
	}
	defer func() { <-h.ingestSlots }()

	body := &readTap{r: http.MaxBytesReader(w, r.Body, h.maxBody)}
	var in io.Reader = body
	if decode != nil {
		var err error
		if in, err = decode(body); err != nil {
			if tooLarge(body.err) {
				return h.reject(w, user, http.StatusRequestEntityTooLarge, h.tooLarge())
			}
			return h.reject(w, user, http.StatusBadRequest, apiError{Error: fmt.Sprintf("invalid gzip body: %v", err)})
		}
		in = &readTap{r: in}
	}

	recs := getRecords()
	defer func() { putRecords(recs) }()
	format, err := h.read(in, func(_ int, rec flows.Record) error {
		if len(recs) >= h.maxRecords {
			return errTooManyRecords
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		// A read error comes first: a body cut short by a limit ends in a partial line that
		// would otherwise be reported as malformed.
		readErr := body.err
		if t, ok := in.(*readTap); ok && t.err != nil {
			readErr = t.err
		}
		le, isLineErr := errors.AsType[*flows.LineError](err)
		switch {
		case tooLarge(readErr):
			return h.reject(w, user, http.StatusRequestEntityTooLarge, h.tooLarge())
		case readErr != nil && decode != nil && body.err == nil:
			return h.reject(w, user, http.StatusBadRequest, apiError{Error: fmt.Sprintf("invalid gzip body: %v", readErr)})
		case readErr != nil:
			return h.reject(w, user, http.StatusBadRequest, apiError{Error: fmt.Sprintf("reading body: %v", readErr)})
		case errors.Is(err, errTooManyRecords):
			return h.reject(w, user, http.StatusRequestEntityTooLarge, apiError{Error: fmt.Sprintf("more than %d flow records in one push: split the batch", h.maxRecords)})
		case isLineErr:
			return h.reject(w, user, http.StatusBadRequest, apiError{Error: le.Error(), Line: le.Line, Field: le.Field})
		default:
			return h.reject(w, user, http.StatusBadRequest, apiError{Error: err.Error()})
		}
	}

	var check func(flows.Record, flows.Observation) bool
	if node != "" {
		check = func(rec flows.Record, o flows.Observation) bool {
			return onNode(h.placement, rec.Src, o.Src, node) || onNode(h.placement, rec.Dst, o.Dst, node)
		}
	}
	n := flows.IngestChecked(h.cache, h.resolver, source, recs, h.now(), check)
	res := IngestResult{Accepted: n.Accepted, Unresolved: n.Unresolved, Rejected: n.Rejected}
	if n.Rejected > 0 {
		res.Reason = fmt.Sprintf("%d records have neither end on node %q, the node the token is bound to (by pod name or address, as the cluster places its pods now)", n.Rejected, node)
	}
	if h.metrics != nil {
		h.metrics.FlowsAccepted.Add(float64(n.Accepted))
		h.metrics.FlowsUnresolved.Add(float64(n.Unresolved))
		h.metrics.FlowsRejected.Add(float64(n.Rejected))
	}
	h.log.V(1).Info("Flows pushed", "user", user, "source", source, "format", format, "accepted", n.Accepted, "unresolved", n.Unresolved, "rejected", n.Rejected)
	writeJSON(w, http.StatusOK, res)
	return http.StatusOK
}

func (h *handler) reject(w http.ResponseWriter, user string, code int, e apiError) int {
	h.log.V(1).Info("Flow push rejected", "user", user, "code", code, "reason", e.Error)
	return writeError(w, code, e)
}

func (h *handler) tooLarge() apiError {
	return apiError{Error: fmt.Sprintf("flow push body larger than %d bytes (after decompression too): split the batch", h.maxBody)}
}

func tooLarge(err error) bool {
	_, ok := errors.AsType[*http.MaxBytesError](err)
	return ok
}

// checkFlowSource accepts a short printable ASCII name without spaces.
func checkFlowSource(s string) error {
	if len(s) > maxFlowSourceBytes {
		return fmt.Errorf("%s longer than %d bytes", FlowSourceHeader, maxFlowSourceBytes)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("%s must be printable ASCII without spaces", FlowSourceHeader)
		}
	}
	return nil
}

// readTap passes reads through and keeps the first error other than io.EOF.
type readTap struct {
	r   io.Reader
	err error
}

func (t *readTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// maxReader fails with an *http.MaxBytesError once more than limit bytes were read.
type maxReader struct {
	r           io.Reader
	left, limit int64
}

func (m *maxReader) Read(p []byte) (int, error) {
	if m.left < 0 {
		return 0, &http.MaxBytesError{Limit: m.limit}
	}
	if int64(len(p)) > m.left+1 {
		p = p[:m.left+1]
	}
	n, err := m.r.Read(p)
	if int64(n) > m.left {
		n = int(m.left)
		m.left = -1
		return n, &http.MaxBytesError{Limit: m.limit}
	}
	m.left -= int64(n)
	return n, err
}

// export streams the cache, or the edges into and out of one namespace's workloads, as
// flow records. It returns the status code it answered with.
func (h *handler) export(w http.ResponseWriter, r *http.Request) int {
	u, code := h.authorize(w, r, h.readers, "read")
	if code != 0 {
		return code
	}
	user := u.Name
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return writeError(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("invalid query: %v", err)})
	}
	ns := q.Get("namespace")
	if len(q["namespace"]) > 1 {
		return writeError(w, http.StatusBadRequest, apiError{Error: "namespace given more than once"})
	}
	if _, given := q["namespace"]; given {
		if msgs := content.IsDNS1123Label(ns); len(msgs) > 0 {
			return writeError(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("invalid namespace %q: %s", ns, strings.Join(msgs, "; "))})
		}
	}

	w.Header().Set("Content-Type", NDJSONContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Add("Vary", "Accept-Encoding")
	var out io.Writer = w
	var zw *gzip.Writer
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = zw
	}
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(out, 64<<10)
	fw := flows.NewWriter(bw)

	var exported, skipped int
	var writeErr error
	emit := func(e flows.Edge) bool {
		rec, ok := h.edgeRecord(e)
		if !ok {
			skipped++
			return true
		}
		if writeErr = fw.Write(rec); writeErr != nil {
			return false
		}
		exported++
		return true
	}
	if ns == "" {
		h.cache.Range(emit)
	} else {
		for _, e := range h.cache.EdgesInto(ns, nil) {
			if !emit(e) {
				break
			}
		}
		for _, e := range h.cache.EdgesOutOf(ns, nil) {
			if writeErr != nil {
				break
			}
			// An edge between two workloads of ns was listed as an edge into ns.
			if e.Dst.Kind == flows.PeerWorkload && e.Dst.Namespace == ns {
				continue
			}
			emit(e)
		}
	}
	if writeErr == nil {
		writeErr = bw.Flush()
	}
	if writeErr == nil && zw != nil {
		writeErr = zw.Close()
	}
	if h.metrics != nil && skipped > 0 {
		h.metrics.ExportSkippedEdges.Add(float64(skipped))
	}
	if writeErr != nil {
		// Only a broken connection fails a write; the status is long sent.
		h.log.V(1).Info("Flow export cut short", "user", user, "namespace", ns, "exported", exported, "err", writeErr.Error())
		return http.StatusOK
	}
	if skipped > 0 {
		h.log.Info("Flow export left out edges of nodes with no known address", "user", user, "namespace", ns, "exported", exported, "skipped", skipped)
	}
	h.log.V(1).Info("Flows exported", "user", user, "namespace", ns, "exported", exported, "skipped", skipped)
	return http.StatusOK
}

// edgeRecord turns an edge into a flow record with its peers by identity. ok is false when
// a peer cannot be named in a record (a node with no known address) or the record would be
// invalid.
func (h *handler) edgeRecord(e flows.Edge) (flows.Record, bool) {
	src, ok := h.exportPeer(e.Src, e.SrcInfo)
	if !ok {
		return flows.Record{}, false
	}
	dst, ok := h.exportPeer(e.Dst, e.DstInfo)
	if !ok {
		return flows.Record{}, false
	}
	rec := flows.Record{Src: src, Dst: dst, Port: e.Port, Protocol: string(e.Protocol), LastSeen: e.LastSeen, Count: e.Count}
	if err := rec.Normalize(); err != nil {
		h.log.V(1).Info("Flow export left out an invalid edge", "src", e.Src.String(), "dst", e.Dst.String(), "err", err.Error())
		return flows.Record{}, false
	}
	return rec, true
}

func (h *handler) exportPeer(id flows.PeerID, info *flows.PeerInfo) (flows.Peer, bool) {
	switch id.Kind {
	case flows.PeerWorkload:
		p := flows.Peer{Namespace: id.Namespace, Workload: id.Name}
		if info != nil {
			p.Labels = info.Labels
		}
		return p, true
	case flows.PeerNode:
		addr, ok := h.nodeAddress(id.Name)
		if !ok || !addr.IsValid() {
			return flows.Peer{}, false
		}
		return flows.Peer{IP: addr.String()}, true
	default:
		if !id.IP.IsValid() {
			return flows.Peer{}, false
		}
		if id.Bits != 0 {
			return flows.Peer{CIDR: id.Prefix().String()}, true
		}
		return flows.Peer{IP: id.IP.String()}, true
	}
}

// acceptsGzip reports whether an Accept-Encoding value accepts gzip.
func acceptsGzip(v string) bool {
	for part := range strings.SplitSeq(v, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		for param := range strings.SplitSeq(params, ";") {
			k, val, _ := strings.Cut(param, "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				q, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				return err == nil && q > 0
			}
		}
		return true
	}
	return false
}

// StatusError is what Export returns when the server answers other than 200.
type StatusError struct {
	URL     string // without credentials
	Code    int
	Message string // the server's error message
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("exporting flows from %s: server answered %d %s", e.URL, e.Code, http.StatusText(e.Code))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	switch e.Code {
	case http.StatusUnauthorized:
		msg += " (is the token valid and unexpired?)"
	case http.StatusForbidden:
		msg += " (the token's user must be one of the webhook's flow readers)"
	}
	return msg
}

// Export fetches the server's flows (GET /v1/flows) with a bearer token and copies them,
// as JSON Lines flow records, to w. serverURL is the server's base URL (FlowsPath is
// appended unless already there; a query such as ?namespace=shop is kept). A token is
// only sent over https, or over http to a loopback address. client nil means
// http.DefaultClient. A non-200 answer is a *StatusError carrying the server's message.
func Export(ctx context.Context, client *http.Client, serverURL, token string, w io.Writer) error {
	return export(ctx, client, serverURL, "Authorization", token, w)
}

// ExportThroughProxy is Export through the API server's Service proxy: proxyURL is the
// Service's proxy base (https://API-SERVER/api/v1/namespaces/NS/services/https:NAME:PORT/proxy),
// client carries the caller's credentials for the API server, and token, which the proxy
// would not pass on in Authorization, goes in TokenHeader.
func ExportThroughProxy(ctx context.Context, client *http.Client, proxyURL, token string, w io.Writer) error {
	return export(ctx, client, proxyURL, TokenHeader, token, w)
}

func export(ctx context.Context, client *http.Client, serverURL, tokenHeader, token string, w io.Writer) error {
	u, err := url.Parse(serverURL)
	if err != nil {
		return fmt.Errorf("parsing server URL: %w", err)
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("server URL %q: want https://host[:port]", serverURL)
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return fmt.Errorf("server URL %s: refusing to send a token over %q; use https", u.Redacted(), u.Scheme)
	}
	if !strings.HasSuffix(u.Path, FlowsPath) {
		u.Path = strings.TrimSuffix(u.Path, "/") + FlowsPath
		u.RawPath = ""
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return errors.New("exporting flows: empty token")
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("exporting flows: %w", err)
	}
	req.Header.Set(tokenHeader, "Bearer "+token)
	req.Header.Set("Accept", NDJSONContentType)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("exporting flows from %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &StatusError{URL: u.Redacted(), Code: resp.StatusCode, Message: errorMessage(resp)}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != NDJSONContentType {
		return fmt.Errorf("exporting flows from %s: server answered with Content-Type %q, want %s", u.Redacted(), resp.Header.Get("Content-Type"), NDJSONContentType)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("exporting flows from %s: %w", u.Redacted(), err)
	}
	return nil
}

// errorMessage reads the message of an error answer: the "error" of a JSON body, or the
// start of any other body.
func errorMessage(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	var e apiError
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	if r := []rune(s); len(r) > 512 {
		s = string(r[:512]) + "…"
	}
	return s
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
