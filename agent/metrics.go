package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	const ns, sub = "netpol_guard", "agent"
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "conntrack_events_total",
		Help: "Conntrack entries read, by kind: dump (an entry of a table dump), new, update, destroy.",
	}, []string{"kind"})
	ignored := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "conntrack_ignored_total",
		Help: "Conntrack entries that gave no edge, by reason: protocol, noise, self, invalid.",
	}, []string{"reason"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "dropped_edges_total",
		Help: "Edges dropped before reaching a webhook replica, by reason: buffer_full, aggregation_full, replica_gone, rejected.",
	}, []string{"reason"})
	m := &metrics{
		events:  map[string]prometheus.Counter{},
		ignored: map[string]prometheus.Counter{},
		dropped: map[string]prometheus.Counter{},
		overruns: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "conntrack_overruns_total",
			Help: "Times the conntrack event socket overran (ENOBUFS) and the table was dumped again.",
		}),
		readerErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "conntrack_errors_total",
			Help: "Times reading conntrack failed for a reason other than an overrun and was restarted.",
		}),
		edgesPushed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "edges_pushed_total",
			Help: "Edges accepted by a webhook replica (each replica counts).",
		}),
		pushErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "push_errors_total",
			Help: "Failed pushes, by HTTP status code, or network (no answer) or token (token file unreadable).",
		}, []string{"code"}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "buffered_edges",
			Help: "Edges waiting to be pushed, for all replicas together (bounded by --max-buffered-edges).",
		}),
		replicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "webhook_replicas",
			Help: "Webhook replicas pushed to.",
		}),
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
	if reg != nil {
		reg.MustRegister(events, ignored, dropped, m.overruns, m.readerErrors, m.edgesPushed, m.pushErrors, m.buffered, m.replicas)
	}
	return m
}

// newRegistry is a registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
