package goldmane

import (
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/goldmane/goldmanepb"
	"github.com/netpol-guard/netpol-guard/flows/internal/convert"
)

// SkipReason says why Convert passed over a Goldmane flow, or kept it from the records.
type SkipReason uint8

const (
	// NotSkipped: the flow became a record.
	NotSkipped SkipReason = iota
	// SkipAction: the flow's action is neither Allow nor Deny.
	SkipAction
	// SkipNotL4: the protocol is not TCP, UDP or SCTP, or the destination port is not in
	// 1..65535.
	SkipNotL4
	// SkipNotWorkload: an end is a network ("pub", "pvt"), a network set or a host
	// endpoint. Goldmane names those ends but gives no address, so they cannot be resolved.
	SkipNotWorkload
	// SkipNoPeer: a workload end has no namespace, or neither a pod name nor labels.
	SkipNoPeer
	// SkipInvalid: the record would fail flows.Record.Normalize.
	SkipInvalid
	// SkipDenied: Calico's dataplane denied the flow. Traffic that does not flow cannot be
	// cut; the verdict is still reported (Options.OnVerdict).
	SkipDenied
	// SkipSourceReport: an allowed flow reported by its source, whose destination is a
	// workload: that workload's node reports the same connection with the ingress verdict,
	// which settles it.
	SkipSourceReport

	numSkipReasons
)

var skipReasonNames = [numSkipReasons]string{
	NotSkipped:       "notSkipped",
	SkipAction:       "action",
	SkipNotL4:        "notL4",
	SkipNotWorkload:  "notWorkload",
	SkipNoPeer:       "noPeer",
	SkipInvalid:      "invalid",
	SkipDenied:       "denied",
	SkipSourceReport: "sourceReport",
}

// String names the reason in lowerCamelCase ("notWorkload"), fit for a metric label.
func (r SkipReason) String() string {
	return convert.ReasonName(skipReasonNames[:], r)
}

// Reporters: the end of the connection whose node reported the flow.
const (
	ReporterSource      = "src" // egress policy was applied
	ReporterDestination = "dst" // ingress policy was applied
)

// Actions as Goldmane names them.
const (
	ActionAllow = "Allow"
	ActionDeny  = "Deny"
	ActionPass  = "Pass"
)

// PolicyHit is one policy rule a flow went through, as Goldmane's policy trace reports it.
type PolicyHit struct {
	// Kind is Goldmane's policy kind: NetworkPolicy, StagedKubernetesNetworkPolicy,
	// CalicoNetworkPolicy, GlobalNetworkPolicy, ClusterNetworkPolicy, Profile, EndOfTier, …
	Kind string `json:"kind"`
	// Namespace is empty for cluster-scoped kinds.
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Tier      string `json:"tier,omitempty"`
	// Action is Allow, Deny or Pass.
	Action string `json:"action"`
	// RuleIndex is the rule's index within the policy; -1 for the policy's implicit end.
	RuleIndex int64 `json:"ruleIndex"`
}

// String reads "NetworkPolicy shop/allow-web rule 0: Allow".
func (h PolicyHit) String() string {
	name := h.Name
	if h.Namespace != "" {
		name = h.Namespace + "/" + name
	}
	return fmt.Sprintf("%s %s rule %d: %s", h.Kind, name, h.RuleIndex, h.Action)
}

// Verdict is what Calico's dataplane did with a flow, and why.
type Verdict struct {
	// Reporter is ReporterSource or ReporterDestination.
	Reporter string
	// Allowed is the dataplane's action on the flow.
	Allowed bool
	// Final says this report settles whether the connection flows: a denial by either end,
	// or an allowance by the destination, or by the source when the destination is no
	// workload (nothing applies ingress policy there).
	Final bool
	// Enforced are the policy rules in force the flow went through, in order.
	Enforced []PolicyHit
	// Pending are the rules it would go through were staged policies in force, and
	// PendingAction ("Allow", "Deny") the action it would then get: that of the last Allow
	// or Deny among them; empty when they hold none.
	Pending       []PolicyHit
	PendingAction string
}

// MarshalLog logs a verdict as its action, reporter and the rules behind it.
func (v Verdict) MarshalLog() any {
	hits := func(hs []PolicyHit) []string {
		out := make([]string, len(hs))
		for i, h := range hs {
			out[i] = h.String()
		}
		return out
	}
	action := ActionDeny
	if v.Allowed {
		action = ActionAllow
	}
	return map[string]any{"action": action, "reporter": v.Reporter, "final": v.Final,
		"enforced": hits(v.Enforced), "pending": hits(v.Pending), "pendingAction": v.PendingAction}
}

var _ logr.Marshaler = Verdict{}

// Result is a Goldmane flow as netpol-guard reads it: the record of the traffic, and the
// verdict Calico's dataplane gave it.
type Result struct {
	Record  flows.Record
	Verdict Verdict
}

// Label keys Calico adds to every workload endpoint; they are not the pod's own.
var calicoLabelPrefixes = []string{"projectcalico.org/", "pcns.", "pcsa."}

// Convert turns a Goldmane flow into a record and the dataplane's verdict — or says why not.
//
// Each end of a flow becomes a peer when it is a workload endpoint (a pod): named by its
// namespace and, when Goldmane gives the pod's own name, by pod; Goldmane aggregates pods
// that share a generateName under "prefix-*", which names no pod, so such ends go by their
// labels: the labels all the aggregated pods share ("key=value" strings), less Calico's own
// (projectcalico.org/*) and any that are not valid Kubernetes labels. Ends that are
// networks, network sets or host endpoints have no address in Goldmane's flows and cannot
// be named (SkipNotWorkload).
//
// The record's port is the destination port (after DNAT), its protocol TCP, UDP or SCTP,
// lastSeen the end of the flow's aggregation interval, and its count the connections started
// in it (at least 1: a flow reported with none carries traffic of connections that started
// before).
//
// The skip reasons are checked in their order. Results come with SkipDenied and
// SkipSourceReport too: the record and verdict are filled, but the record is not traffic to
// add to the cache. With the other reasons the Result is empty; SkipInvalid comes with the
// error saying why.
func Convert(f *pb.Flow) (Result, SkipReason, error) {
	k := f.GetKey()
	var allowed bool
	switch k.GetAction() {
	case pb.Action_Allow:
		allowed = true
	case pb.Action_Deny:
	default:
		return Result{}, SkipAction, nil
	}
	var rec flows.Record
	var ok bool
	if rec.Protocol, ok = convert.ProtocolName(k.GetProto()); !ok {
		return Result{}, SkipNotL4, nil
	}
	if rec.Port, ok = convert.Port(k.GetDestPort()); !ok {
		return Result{}, SkipNotL4, nil
	}
	if k.GetSourceType() != pb.EndpointType_WorkloadEndpoint || k.GetDestType() != pb.EndpointType_WorkloadEndpoint {
		// Nor is the verdict reported: the webhook could not predict one for an end it
		// cannot resolve.
		return Result{}, SkipNotWorkload, nil
	}
	if rec.Src, ok = peer(k.GetSourceNamespace(), k.GetSourceName(), f.GetSourceLabels()); !ok {
		return Result{}, SkipNoPeer, nil
	}
	if rec.Dst, ok = peer(k.GetDestNamespace(), k.GetDestName(), f.GetDestLabels()); !ok {
		return Result{}, SkipNoPeer, nil
	}
	rec.LastSeen = unixTime(f.GetEndTime())
	if rec.LastSeen.IsZero() {
		rec.LastSeen = unixTime(f.GetStartTime())
	}
	rec.Count = max(uint64(max(f.GetNumConnectionsStarted(), 0)), 1)
	if err := rec.Normalize(); err != nil {
		return Result{}, SkipInvalid, err
	}

	v := Verdict{
		Reporter: ReporterSource,
		Allowed:  allowed,
		Enforced: policyHits(k.GetPolicies().GetEnforcedPolicies()),
		Pending:  policyHits(k.GetPolicies().GetPendingPolicies()),
	}
	if k.GetReporter() == pb.Reporter_Dst {
		v.Reporter = ReporterDestination
	}
	for _, h := range v.Pending {
		if h.Action == ActionAllow || h.Action == ActionDeny {
			v.PendingAction = h.Action
		}
	}
	// Both ends are workloads here, so the destination's node reports every connection
	// that reached it.
	v.Final = !allowed || v.Reporter == ReporterDestination
	res := Result{Record: rec, Verdict: v}
	switch {
	case !allowed:
		return res, SkipDenied, nil
	case !v.Final:
		return res, SkipSourceReport, nil
	}
	return res, NotSkipped, nil
}

// peer names a workload end; ok is false when there is nothing to name it by.
func peer(namespace, name string, labels []string) (flows.Peer, bool) {
	if namespace == "" || namespace == "-" {
		return flows.Peer{}, false
	}
	p := flows.Peer{Namespace: namespace, Labels: podLabels(labels)}
	if name != "" && name != "-" && !strings.HasSuffix(name, "*") {
		p.Pod = name
	}
	return p, p.Pod != "" || p.Labels != nil
}

// podLabels picks the pod's own labels out of Goldmane's "key=value" strings; see Convert.
func podLabels(labels []string) map[string]string {
	var m map[string]string
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || !convert.Label(k, v) || calicoLabel(k) {
			continue
		}
		if m == nil {
			m = make(map[string]string, len(labels))
		}
		m[k] = v
	}
	return m
}

func calicoLabel(k string) bool {
	for _, p := range calicoLabelPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func policyHits(hs []*pb.PolicyHit) []PolicyHit {
	if len(hs) == 0 {
		return nil
	}
	out := make([]PolicyHit, 0, len(hs))
	for _, h := range hs {
		out = append(out, PolicyHit{
			Kind: h.GetKind().String(), Namespace: h.GetNamespace(), Name: h.GetName(), Tier: h.GetTier(),
			Action: h.GetAction().String(), RuleIndex: h.GetRuleIndex(),
		})
	}
	return out
}

// unixTime is a Goldmane time (seconds since the epoch) in UTC, or zero when it is not
// positive or beyond year 9999.
func unixTime(s int64) time.Time {
	const maxUnix = 253402300799 // 9999-12-31T23:59:59Z
	if s <= 0 || s > maxUnix {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}
