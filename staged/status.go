package staged

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
)

// Status is the status of a staged policy as the findings say, with prev's conditions kept
// where they did not change. ok is false while the staged policy has not been evaluated.
func (ev *Evaluator) Status(key types.NamespacedName, prev v1alpha1.StagedNetworkPolicyStatus) (st v1alpha1.StagedNetworkPolicyStatus, ok bool) {
	f, total, known := ev.Findings(key, v1alpha1.MaxTop)
	if !known || !f.Evaluated {
		return prev, false
	}
	st = v1alpha1.StagedNetworkPolicyStatus{
		ObservedGeneration: f.Generation,
		SoakingSince:       timeOrNil(f.SoakingSince),
		CleanSince:         timeOrNil(f.CleanSince),
		WouldCut:           v1alpha1.WouldCut{Flows: int32(min(total, 1<<31-1))},
		Coverage:           f.Coverage,
	}
	for _, c := range f.Cuts {
		st.WouldCut.Top = append(st.WouldCut.Top, v1alpha1.CutFlow{
			Src: PeerOf(c.Edge.Src), Dst: PeerOf(c.Edge.Dst), Port: c.Edge.Port, Protocol: string(c.Edge.Protocol),
			FirstSeen: metav1.NewTime(c.Edge.FirstSeen), LastSeen: metav1.NewTime(c.Edge.LastSeen),
			Count: int64(min(c.Edge.Count, 1<<63-1)), Reason: c.Reason,
		})
	}
	st.Conditions = append([]metav1.Condition(nil), prev.Conditions...)
	cond := metav1.Condition{Type: v1alpha1.ConditionWouldCut, ObservedGeneration: f.Generation}
	switch {
	case f.Invalid != "":
		cond.Status, cond.Reason, cond.Message = metav1.ConditionUnknown, v1alpha1.ReasonInvalid, truncate(f.Invalid, 1024)
	case total > 0:
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReasonFlowsWouldBeCut
		cond.Message = fmt.Sprintf("would cut %d cached flows, e.g. %s", total, describe(f.Cuts[0]))
	default:
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonClean
		cond.Message = fmt.Sprintf("cuts none of the %d cached flows it could affect", f.Coverage.EdgesConsidered)
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	return st, true
}

func describe(c Cut) string {
	s := fmt.Sprintf("%s → %s %s/%d", c.Edge.Src, c.Edge.Dst, c.Edge.Protocol, c.Edge.Port)
	if c.Reason != "" {
		s += ": " + c.Reason
	}
	return s
}

func timeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// DefaultStatusInterval is the least time between two status writes of one staged policy.
const DefaultStatusInterval = 10 * time.Second

// StatusWriter writes the Evaluator's findings to the staged policies' status, at most once
// per Interval each, and records an Event when a staged policy first would cut something
// and when it turns clean. Only the leader runs it.
type StatusWriter struct {
	Evaluator *Evaluator
	// Client writes status; Reader reads the staged policies (the manager's cache).
	Client client.Client
	Reader client.Reader
	// Recorder records Events; nil records none.
	Recorder events.EventRecorder
	// Interval is the least time between two writes of one staged policy; default
	// DefaultStatusInterval.
	Interval time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	written map[types.NamespacedName]written
}

type written struct {
	at      time.Time
	version uint64
}

// due forgets what was written for staged policies that are gone, and yields those whose
// findings (their version) changed since the last write, if that was at least interval
// ago, with the version to write. Status and Reports are batched by it alike.
func due(e *Evaluator, last map[types.NamespacedName]written, now time.Time, interval time.Duration) iter.Seq2[types.NamespacedName, uint64] {
	keys := e.Keys()
	known := make(map[types.NamespacedName]bool, len(keys))
	for _, key := range keys {
		known[key] = true
	}
	for key := range last {
		if !known[key] {
			delete(last, key)
		}
	}
	return func(yield func(types.NamespacedName, uint64) bool) {
		for _, key := range keys {
			version, w := e.entryVersion(key), last[key]
			if version == w.version || now.Sub(w.at) < interval {
				continue
			}
			if !yield(key, version) {
				return
			}
		}
	}
}

// NeedLeaderElection is true: one replica writes status.
func (w *StatusWriter) NeedLeaderElection() bool { return true }

// Start writes status until ctx ends.
func (w *StatusWriter) Start(ctx context.Context) error {
	if w.Interval <= 0 {
		w.Interval = DefaultStatusInterval
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	w.written = map[types.NamespacedName]written{}
	log.Info("Writing staged policies' status")
	tick := time.NewTicker(w.Interval / 10)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			w.WriteDue(ctx)
		}
	}
}

// WriteDue writes the status of every staged policy whose findings changed since its last
// write, if that was at least Interval ago.
func (w *StatusWriter) WriteDue(ctx context.Context) {
	if w.written == nil {
		w.written = map[types.NamespacedName]written{}
	}
	now := w.Now()
	for key, version := range due(w.Evaluator, w.written, now, w.Interval) {
		if err := w.write(ctx, key); err != nil {
			if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				log.Error(err, "Writing staged policy status", "staged", key.String())
			}
			continue
		}
		w.written[key] = written{at: now, version: version}
	}
}

func (w *StatusWriter) write(ctx context.Context, key types.NamespacedName) error {
	obj := &v1alpha1.StagedNetworkPolicy{}
	if err := w.Reader.Get(ctx, key, obj); err != nil {
		return err
	}
	st, ok := w.Evaluator.Status(key, obj.Status)
	if !ok || st.ObservedGeneration != obj.Generation {
		return nil
	}
	if equality.Semantic.DeepEqual(st, obj.Status) {
		return nil
	}
	prev := obj.Status
	obj = obj.DeepCopy()
	obj.Status = st
	if err := w.Client.Status().Update(ctx, obj); err != nil {
		return err
	}
	w.record(obj, prev, st)
	return nil
}

// record writes the Events of a status change: the first cut, and turning clean.
func (w *StatusWriter) record(obj *v1alpha1.StagedNetworkPolicy, prev, st v1alpha1.StagedNetworkPolicyStatus) {
	was, is := prev.WouldCut.Flows > 0, st.WouldCut.Flows > 0
	firstStatus := prev.ObservedGeneration != st.ObservedGeneration
	switch {
	case is && (!was || firstStatus):
		log.Info("Staged policy would cut flows", "staged", klogKey(obj), "wouldCut", st.WouldCut.Flows)
		if w.Recorder != nil {
			w.Recorder.Eventf(obj, nil, "Warning", "WouldCutFlows", "Soak", "applying it would cut %d cached flows, e.g. %s", st.WouldCut.Flows, cutNote(st))
		}
	case !is && was && !firstStatus:
		log.Info("Staged policy is clean", "staged", klogKey(obj))
		if w.Recorder != nil {
			w.Recorder.Eventf(obj, nil, "Normal", "Clean", "Soak", "applying it would cut none of the cached flows")
		}
	}
}

func cutNote(st v1alpha1.StagedNetworkPolicyStatus) string {
	if len(st.WouldCut.Top) == 0 {
		return "-"
	}
	c := st.WouldCut.Top[0]
	return fmt.Sprintf("%s → %s %s/%d (%s)", peerString(c.Src), peerString(c.Dst), c.Protocol, c.Port, c.Reason)
}

func peerString(p v1alpha1.Peer) string {
	switch {
	case p.Workload != "":
		return p.Namespace + "/" + p.Workload
	case p.Node != "":
		return "node/" + p.Node
	default:
		return p.IP
	}
}

func klogKey(obj client.Object) string { return obj.GetNamespace() + "/" + obj.GetName() }

// entryVersion is when a staged policy's findings last changed (0: unknown).
func (ev *Evaluator) entryVersion(key types.NamespacedName) uint64 {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if e := ev.policies[key]; e != nil && e.evaluated {
		return e.version
	}
	return 0
}

// Collector exports per staged policy the flows it would cut and how long it has been
// clean, as this replica sees them.
type Collector struct {
	Evaluator *Evaluator
	Now       func() time.Time
}

var (
	wouldCutDesc = prometheus.NewDesc("netpol_guard_staged_would_cut_flows", "Cached flows a staged NetworkPolicy would cut now.", []string{"namespace", "name"}, nil)
	cleanDesc    = prometheus.NewDesc("netpol_guard_staged_clean_seconds", "How long a staged NetworkPolicy has cut none of the cached flows (0 while it would cut some).", []string{"namespace", "name"}, nil)
)

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) { ch <- wouldCutDesc; ch <- cleanDesc }

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	for _, key := range c.Evaluator.Keys() {
		f, total, ok := c.Evaluator.Findings(key, 0)
		if !ok || !f.Evaluated {
			continue
		}
		clean := 0.0
		if !f.CleanSince.IsZero() {
			clean = now.Sub(f.CleanSince).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(wouldCutDesc, prometheus.GaugeValue, float64(total), key.Namespace, key.Name)
		ch <- prometheus.MustNewConstMetric(cleanDesc, prometheus.GaugeValue, clean, key.Namespace, key.Name)
	}
}
