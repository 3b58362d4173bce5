package hubble

import (
	"strings"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/flows/internal/convert"
)

// SkipReason says why Convert passed over a Hubble flow.
type SkipReason uint8

const (
	// NotSkipped: the flow became a record.
	NotSkipped SkipReason = iota
	// SkipVerdict: the verdict is neither FORWARDED nor AUDIT (DROPPED, ERROR, REDIRECTED,
	// TRACED, TRANSLATED, unknown). Traffic that does not flow now cannot be cut.
	SkipVerdict
	// SkipType: an L7 or SOCK event. L7 events repeat a connection its L3/L4 events report;
	// SOCK events are socket load-balancer translations, not traffic.
	SkipType
	// SkipReply: is_reply is true — the answer on a connection, not a new one.
	SkipReply
	// SkipReplyUnknown: is_reply is absent. Hubble leaves it so when the datapath did not say
	// (drops, encapsulation and decapsulation trace points), and such flows include replies,
	// whose "destination port" is the client's ephemeral port; Hubble's own reply filter
	// (`hubble observe --is-reply=false`) excludes them too.
	SkipReplyUnknown
	// SkipNotL4: no TCP, UDP or SCTP header (ICMP, VRRP, IGMP, none), or destination port 0.
	SkipNotL4
	// SkipNoPeer: an end has neither a Kubernetes identity nor an IP.
	SkipNoPeer
	// SkipInvalid: the record would fail flows.Record.Normalize.
	SkipInvalid

	numSkipReasons
)

var skipReasonNames = [numSkipReasons]string{
	NotSkipped:       "notSkipped",
	SkipVerdict:      "verdict",
	SkipType:         "type",
	SkipReply:        "reply",
	SkipReplyUnknown: "replyUnknown",
	SkipNotL4:        "notL4",
	SkipNoPeer:       "noPeer",
	SkipInvalid:      "invalid",
}

// String names the reason in lowerCamelCase ("replyUnknown"), fit for a metric label.
func (r SkipReason) String() string {
	return convert.ReasonName(skipReasonNames[:], r)
}

// Label sources and keys, as Cilium writes endpoint labels ("k8s:app=cart").
const (
	labelSourceK8s      = "k8s:"
	labelSourceReserved = "reserved:"
	// Cilium's own labels in the k8s source: the namespace name, the service account,
	// the cluster and the namespace's labels (io.cilium.k8s.namespace.labels.*).
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelCiliumK8sKeys = "io.cilium.k8s."
)

// Convert turns a Hubble flow into a flow record — or says why not.
//
// A flow is taken when its verdict is FORWARDED or AUDIT (policy audit mode: the traffic
// flows), its type is L3_L4 (or unset, as in hand-written files), is_reply is present and
// false, it carries a TCP, UDP or SCTP header with a destination port, and both ends can
// be named. Otherwise the SkipReason tells which rule it failed, in that order.
//
// Each end becomes a peer:
//
//   - a Kubernetes endpoint (one with a namespace and no reserved: label) is named by
//     namespace and pod_name; its workload is the first of Endpoint.workloads as
//     "Kind/name" (Cilium derives it from the owner chain as netpol-guard does:
//     "Deployment/cart", "CronJob/report"; a bare pod has none); its labels are those of
//     the "k8s:" source with the prefix stripped, less Cilium's own
//     (io.kubernetes.pod.namespace and io.cilium.k8s.*: service account, cluster, namespace
//     labels) and less any that are not valid Kubernetes labels. Labels of other sources
//     (container:, cidr:, fqdn:, unspec:) are not pod labels and are dropped. These are the
//     labels Cilium derived the security identity from, which may leave out some pod labels
//     (Cilium's label filter drops pod-template-hash, controller-uid and the like).
//   - any other end — world, CIDR and FQDN identities, host, remote-node, kube-apiserver,
//     health, ingress, or any endpoint with a reserved: label — is named by IP only, which
//     the resolver turns into a node, a pod, or an external address.
//   - every end keeps its IP (IP.source, IP.destination; before SNAT, after DNAT as Hubble
//     reports them), so the resolver can also go by address.
//
// The record's port is the L4 destination port, its protocol TCP, UDP or SCTP, lastSeen the
// flow's time (zero when absent or invalid: flows.Ingest then takes the time of ingest), and
// its count 1. The record is normalised; SkipInvalid comes with the error saying why it is
// not valid.
func Convert(f *flowpb.Flow) (flows.Record, SkipReason, error) {
	c := flowFacts{
		verdict: f.GetVerdict(), typ: f.GetType(), reply: f.GetReply(),
		srcIP: f.GetIP().GetSource(), dstIP: f.GetIP().GetDestination(),
		src: endpointFactsOf(f.GetSource()), dst: endpointFactsOf(f.GetDestination()),
		time: convert.Time(f.GetTime()),
	}
	if r := f.GetIsReply(); r != nil {
		c.hasIsReply, c.isReply = true, r.GetValue()
	}
	switch l4 := f.GetL4().GetProtocol().(type) {
	case *flowpb.Layer4_TCP:
		c.port, c.protocol = l4.TCP.GetDestinationPort(), flows.ProtocolTCP
	case *flowpb.Layer4_UDP:
		c.port, c.protocol = l4.UDP.GetDestinationPort(), flows.ProtocolUDP
	case *flowpb.Layer4_SCTP:
		c.port, c.protocol = l4.SCTP.GetDestinationPort(), flows.ProtocolSCTP
	}
	return c.convert()
}

// flowFacts are what Convert reads of a flow, whether from a flowpb.Flow or straight from
// a line of JSON (fastDecoder).
type flowFacts struct {
	verdict             flowpb.Verdict
	typ                 flowpb.FlowType
	hasIsReply, isReply bool
	reply               bool // the deprecated field
	protocol            string
	port                uint32
	srcIP, dstIP        string
	src, dst            endpointFacts
	time                time.Time // valid, or zero
}

// endpointFacts are what Convert reads of an endpoint.
type endpointFacts struct {
	namespace, podName string
	workload           string // the first of the workloads with a kind and a name: "Kind/name"
	labels             endpointLabels
}

// endpointLabels are what Convert makes of an endpoint's labels.
type endpointLabels struct {
	pod      map[string]string // the pod's own, nil when there are none; read, never written
	reserved bool              // one is of the reserved: source, so the end is no pod
	checked  bool              // pod passes flows.LabelsValid
}

func endpointFactsOf(ep *flowpb.Endpoint) endpointFacts {
	e := endpointFacts{namespace: ep.GetNamespace(), podName: ep.GetPodName(), labels: endpointLabelsOf(ep.GetLabels(), nil)}
	for _, w := range ep.GetWorkloads() {
		if w.GetKind() != "" && w.GetName() != "" {
			e.workload = w.GetKind() + "/" + w.GetName()
			break
		}
	}
	return e
}

func (f *flowFacts) convert() (flows.Record, SkipReason, error) {
	switch f.verdict {
	case flowpb.Verdict_FORWARDED, flowpb.Verdict_AUDIT:
	default:
		return flows.Record{}, SkipVerdict, nil
	}
	switch f.typ {
	case flowpb.FlowType_L3_L4, flowpb.FlowType_UNKNOWN_TYPE:
	default:
		return flows.Record{}, SkipType, nil
	}
	switch {
	case f.hasIsReply && f.isReply:
		return flows.Record{}, SkipReply, nil
	case !f.hasIsReply && f.reply: // deprecated field, only ever wrong when false
		return flows.Record{}, SkipReply, nil
	case !f.hasIsReply:
		return flows.Record{}, SkipReplyUnknown, nil
	}

	rec := flows.Record{Count: 1, Protocol: f.protocol}
	var ok bool
	if rec.Port, ok = convert.Port(f.port); !ok {
		return flows.Record{}, SkipNotL4, nil
	}

	if rec.Src, ok = peer(&f.src, f.srcIP); !ok {
		return flows.Record{}, SkipNoPeer, nil
	}
	if rec.Dst, ok = peer(&f.dst, f.dstIP); !ok {
		return flows.Record{}, SkipNoPeer, nil
	}
	rec.LastSeen = f.time
	if err := rec.NormalizeCheckedLabels(f.src.labels.checked, f.dst.labels.checked); err != nil {
		return flows.Record{}, SkipInvalid, err
	}
	return rec, NotSkipped, nil
}

// peer names one end of a flow; ok is false when there is nothing to name it by.
func peer(ep *endpointFacts, ip string) (p flows.Peer, ok bool) {
	p.IP = ip
	if ep.namespace == "" || ep.labels.reserved {
		return p, p.IP != ""
	}
	p.Namespace = ep.namespace
	p.Pod = ep.podName
	p.Workload = ep.workload
	p.Labels = ep.labels.pod
	if p.Pod == "" && p.Workload == "" && p.Labels == nil && p.IP == "" {
		return flows.Peer{}, false
	}
	return p, true
}

// endpointLabelsOf says whether one of an endpoint's labels is reserved: and picks the
// pod's own out of them; see Convert. cache, when not nil, keeps what each label came to.
func endpointLabelsOf(labels []string, cache podLabelCache) endpointLabels {
	var e endpointLabels
	for _, l := range labels {
		if strings.HasPrefix(l, labelSourceReserved) {
			return endpointLabels{reserved: true}
		}
	}
	for _, l := range labels {
		pl, ok := cache[l]
		if !ok {
			pl = podLabelOf(l)
			if cache != nil && len(cache) < maxCachedLabels {
				cache[l] = pl
			}
		}
		if !pl.ok {
			continue
		}
		if e.pod == nil {
			e.pod = make(map[string]string, len(labels))
		}
		e.pod[pl.key] = pl.value
	}
	return e
}

// podLabel is an endpoint label as a pod label, ok when it is one.
type podLabel struct {
	key, value string
	ok         bool
}

func podLabelOf(l string) podLabel {
	kv, ok := strings.CutPrefix(l, labelSourceK8s)
	if !ok {
		return podLabel{}
	}
	k, v, _ := strings.Cut(kv, "=")
	if k == labelPodNamespace || strings.HasPrefix(k, labelCiliumK8sKeys) || !convert.Label(k, v) {
		return podLabel{}
	}
	return podLabel{key: k, value: v, ok: true}
}

// podLabelCache maps endpoint labels to what podLabelOf makes of them.
type podLabelCache map[string]podLabel

// maxCachedLabels bounds a podLabelCache.
const maxCachedLabels = 1 << 14
