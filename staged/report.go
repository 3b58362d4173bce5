package staged

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/flows"
)

// ReportSource is the source of the OpenReports Reports netpol-guard writes: Policy
// Reporter groups results by it.
const ReportSource = "netpol-guard"

// MaxReportResults bounds the cut flows one Report lists.
const MaxReportResults = 50

// ReportName is the name of the Report of a staged policy, in its namespace.
func ReportName(staged string) string { return "netpol-guard-staged-" + staged }

// Report is the OpenReports Report of a staged policy's findings: one result per cut flow
// (at most MaxReportResults, most recently seen first), failing, with the reason as its
// message, the workloads at its ends as its resources, and port, protocol and lastSeen as
// properties; one passing result when the change would cut nothing, or an error result
// when it cannot be judged. The Report is owned by the staged policy, so it goes with it.
func (ev *Evaluator) Report(obj *v1alpha1.StagedNetworkPolicy, now time.Time) (*reportsv1alpha1.Report, bool) {
	f, total, known := ev.Findings(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}, MaxReportResults)
	if !known || !f.Evaluated || f.Generation != obj.Generation {
		return nil, false
	}
	ts := metav1.Timestamp{Seconds: now.Unix()}
	r := &reportsv1alpha1.Report{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: obj.Namespace, Name: ReportName(obj.Name),
			Labels: map[string]string{"app.kubernetes.io/managed-by": ReportSource},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "StagedNetworkPolicy", Name: obj.Name, UID: obj.UID,
			}},
		},
		Source: ReportSource,
		Scope:  &corev1.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "StagedNetworkPolicy", Namespace: obj.Namespace, Name: obj.Name, UID: obj.UID},
	}
	result := func(res reportsv1alpha1.Result, msg string) reportsv1alpha1.ReportResult {
		return reportsv1alpha1.ReportResult{Source: ReportSource, Policy: obj.Name, Rule: "would-cut", Category: "NetworkPolicy", Timestamp: ts, Result: res, Description: msg}
	}
	switch {
	case f.Invalid != "":
		r.Results = []reportsv1alpha1.ReportResult{result("error", truncate(f.Invalid, 1024))}
		r.Summary.Error = 1
	case total == 0:
		r.Results = []reportsv1alpha1.ReportResult{result("pass", fmt.Sprintf("cuts none of the %d cached flows it could affect", f.Coverage.EdgesConsidered))}
		r.Summary.Pass = 1
	default:
		for _, c := range f.Cuts {
			res := result("fail", c.Reason)
			res.Severity = "medium"
			for _, end := range []flows.PeerID{c.Edge.Src, c.Edge.Dst} {
				if ref, ok := workloadRef(end); ok {
					res.Subjects = append(res.Subjects, ref)
				}
			}
			res.Properties = map[string]string{
				"src": c.Edge.Src.String(), "dst": c.Edge.Dst.String(),
				"port": strconv.Itoa(int(c.Edge.Port)), "protocol": string(c.Edge.Protocol),
				"lastSeen": c.Edge.LastSeen.UTC().Format(time.RFC3339),
			}
			r.Results = append(r.Results, res)
		}
		r.Summary.Fail = len(r.Results)
		if total > len(f.Cuts) {
			r.Configuration = &reportsv1alpha1.ReportConfiguration{Limits: reportsv1alpha1.Limits{MaxResults: MaxReportResults}}
		}
	}
	return r, true
}

// workloadRef refers to a workload end of a flow ("Deployment/web" in its namespace).
func workloadRef(id flows.PeerID) (corev1.ObjectReference, bool) {
	if id.Kind != flows.PeerWorkload {
		return corev1.ObjectReference{}, false
	}
	kind, name, ok := strings.Cut(id.Name, "/")
	if !ok {
		kind, name = "Pod", id.Name
	}
	ref := corev1.ObjectReference{Kind: kind, Namespace: id.Namespace, Name: name}
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet":
		ref.APIVersion = "apps/v1"
	case "Job", "CronJob":
		ref.APIVersion = "batch/v1"
	case "Pod":
		ref.APIVersion = "v1"
	}
	return ref, true
}

// ReportWriter writes the Evaluator's findings as OpenReports Reports, at most once per
// Interval each, while the API server serves Reports: Served is asked at start and every
// Recheck, so Reports start when their CRD is installed and stop when it goes. Only the
// leader runs it.
type ReportWriter struct {
	Evaluator *Evaluator
	// Client writes Reports; Reader reads them and the staged policies, uncached.
	Client client.Client
	Reader client.Reader
	// Served reports whether the API server serves openreports.io/v1alpha1 Reports.
	Served func() (bool, error)
	// Interval is the least time between two writes of one Report; default
	// DefaultStatusInterval. Recheck is how often Served is asked; default 1m.
	Interval, Recheck time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	written map[types.NamespacedName]written
	served  bool
	checked time.Time
}

// NeedLeaderElection is true: one replica writes Reports.
func (w *ReportWriter) NeedLeaderElection() bool { return true }

// Start writes Reports until ctx ends.
func (w *ReportWriter) Start(ctx context.Context) error {
	if w.Interval <= 0 {
		w.Interval = DefaultStatusInterval
	}
	tick := time.NewTicker(w.Interval / 10)
	defer tick.Stop()
	for {
		w.WriteDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// WriteDue writes the Report of every staged policy whose findings changed since its last
// write, if that was at least Interval ago and Reports are served.
func (w *ReportWriter) WriteDue(ctx context.Context) {
	if w.Now == nil {
		w.Now = time.Now
	}
	if w.Recheck <= 0 {
		w.Recheck = time.Minute
	}
	if w.written == nil {
		w.written = map[types.NamespacedName]written{}
	}
	now := w.Now()
	if w.checked.IsZero() || now.Sub(w.checked) >= w.Recheck {
		w.checked = now
		served, err := w.Served()
		switch {
		case err != nil:
			log.Error(err, "Discovering OpenReports Reports")
		case served != w.served:
			w.served = served
			clear(w.written)
			log.Info("OpenReports Reports", "served", served)
		}
	}
	if !w.served {
		return
	}
	for key, version := range due(w.Evaluator, w.written, now, w.Interval) {
		if version == 0 {
			continue // not evaluated yet: no findings to report
		}
		if err := w.write(ctx, key, now); err != nil {
			if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
				log.Error(err, "Writing staged policy report", "staged", key.String())
			}
			continue
		}
		w.written[key] = written{at: now, version: version}
	}
}

func (w *ReportWriter) write(ctx context.Context, key types.NamespacedName, now time.Time) error {
	obj := &v1alpha1.StagedNetworkPolicy{}
	if err := w.Reader.Get(ctx, key, obj); err != nil {
		return err
	}
	want, ok := w.Evaluator.Report(obj, now)
	if !ok {
		return nil
	}
	have := &reportsv1alpha1.Report{}
	err := w.Reader.Get(ctx, client.ObjectKeyFromObject(want), have)
	switch {
	case apierrors.IsNotFound(err):
		return w.Client.Create(ctx, want)
	case err != nil:
		return err
	}
	if sameReport(have, want) {
		return nil
	}
	have.Labels, have.OwnerReferences = want.Labels, want.OwnerReferences
	have.Source, have.Scope, have.Configuration, have.Summary, have.Results = want.Source, want.Scope, want.Configuration, want.Summary, want.Results
	return w.Client.Update(ctx, have)
}

// sameReport compares two Reports but for their results' timestamps.
func sameReport(a, b *reportsv1alpha1.Report) bool {
	strip := func(r *reportsv1alpha1.Report) *reportsv1alpha1.Report {
		r = r.DeepCopy()
		for i := range r.Results {
			r.Results[i].Timestamp = metav1.Timestamp{}
		}
		return r
	}
	a, b = strip(a), strip(b)
	return equality.Semantic.DeepEqual(a.OwnerReferences, b.OwnerReferences) && a.Source == b.Source &&
		equality.Semantic.DeepEqual(a.Scope, b.Scope) && equality.Semantic.DeepEqual(a.Configuration, b.Configuration) &&
		a.Summary == b.Summary && equality.Semantic.DeepEqual(a.Results, b.Results)
}
