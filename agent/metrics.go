package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/netpol-guard/netpol-guard/internal/metric"
)

// Reasons edges are dropped before reaching the webhook; they label the dropped-edges metric.
const (
	dropBufferFull      = "buffer_full"      // the push buffer was full: the least recently seen went
	dropAggregationFull = "aggregation_full" // more distinct edges in one interval than the buffer holds
	dropReplicaGone     = "replica_gone"     // buffered for a replica that left, with none new to take them
	dropRejected        = "rejected"         // the webhook refused the batch as malformed (400)
)

// Event kinds; they label the events metric.
const (
	kindDump    = "dump" // an entry of a table dump
	kindNew     = "new"
	kindUpdate  = "update"
	kindDestroy = "destroy"
)

type metrics struct {
	events       map[string]prometheus.Counter
	overruns     prometheus.Counter
	readerErrors prometheus.Counter
	ignored      map[string]prometheus.Counter
	edgesPushed  prometheus.Counter
	pushErrors   *prometheus.CounterVec
	dropped      map[string]prometheus.Counter
	buffered     prometheus.Gauge
	replicas     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := metric.Factory{Subsystem: "agent", Registerer: reg}
	events := f.CounterVec("conntrack_events_total", "Conntrack entries read, by kind: dump (an entry of a table dump), new, update, destroy.", "kind")
	ignored := f.CounterVec("conntrack_ignored_total", "Conntrack entries that gave no edge, by reason: protocol, noise, self, invalid.", "reason")
	dropped := f.CounterVec("dropped_edges_total", "Edges dropped before reaching a webhook replica, by reason: buffer_full, aggregation_full, replica_gone, rejected.", "reason")
	m := &metrics{
		events:       map[string]prometheus.Counter{},
		ignored:      map[string]prometheus.Counter{},
		dropped:      map[string]prometheus.Counter{},
		overruns:     f.Counter("conntrack_overruns_total", "Times the conntrack event socket overran (ENOBUFS) and the table was dumped again."),
		readerErrors: f.Counter("conntrack_errors_total", "Times reading conntrack failed for a reason other than an overrun and was restarted."),
		edgesPushed:  f.Counter("edges_pushed_total", "Edges accepted by a webhook replica (each replica counts)."),
		pushErrors:   f.CounterVec("push_errors_total", "Failed pushes, by HTTP status code, or network (no answer) or token (token file unreadable).", "code"),
		buffered:     f.Gauge("buffered_edges", "Edges waiting to be pushed, for all replicas together (bounded by --max-buffered-edges)."),
		replicas:     f.Gauge("webhook_replicas", "Webhook replicas pushed to."),
	}
	for _, k := range []string{kindDump, kindNew, kindUpdate, kindDestroy} {
		m.events[k] = events.WithLabelValues(k)
	}
	for _, r := range []string{ignoreProtocol, ignoreNoise, ignoreSelf, ignoreInvalid} {
		m.ignored[r] = ignored.WithLabelValues(r)
	}
	for _, r := range []string{dropBufferFull, dropAggregationFull, dropReplicaGone, dropRejected} {
		m.dropped[r] = dropped.WithLabelValues(r)
	}
	return m
}

// newRegistry is a registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
