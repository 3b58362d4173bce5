package cluster

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netpol-guard/netpol-guard/flows"
)

// holding is a time during which an address belonged to a pod (or a node): from when it
// can first have had it until it was seen letting go. A current holding (pod set, until
// zero) is open-ended; a past one names who held it and is kept for the grace period.
//
// The holdings of one address never overlap. A pod's holding starts at its start time (the
// address is assigned after the kubelet took the pod) but never before the previous holder
// was seen letting go; a pod seen with an address another pod still holds takes it over
// from that moment. So a flow observed at t resolves to the one pod that held the address
// at t, as far as the informer could tell, and to nobody when nobody did.
type holding struct {
	pod         *livePod     // the current holder; nil once it let go
	peer        flows.PeerID // who held it, once it let go
	from, until time.Time
}

// hostAddr is a node address that host-network pods report as theirs.
type hostAddr struct {
	node string
	pods int
}

// gonePod is a deleted pod's workload, kept for the grace period so that a flow naming the
// pod still resolves.
type gonePod struct {
	peer  flows.PeerID
	until time.Time
}

// expiry is one thing to forget at a time: an address's past holdings, a gone pod's name,
// or an empty workload's memory.
type expiry struct {
	at    time.Time
	ip    netip.Addr
	pod   types.NamespacedName
	wl    *workload
	since time.Time // the workload's emptySince when it was queued
}

// expiryQueue is a FIFO: things are queued in the order the clock gave them, so the head is
// the first due.
type expiryQueue struct {
	items []expiry
	head  int
}

func (q *expiryQueue) push(e expiry) { q.items = append(q.items, e) }

// pop returns the head if it is due at now.
func (q *expiryQueue) pop(now time.Time) (expiry, bool) {
	if q.head == len(q.items) || q.items[q.head].at.After(now) {
		return expiry{}, false
	}
	e := q.items[q.head]
	q.items[q.head] = expiry{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head > len(q.items)/2 {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	return e, true
}

// lockAndSweep takes l.mu for a change from a watch, forgets what is past its time, and
// returns the time it swept at. The caller unlocks.
func (l *Live) lockAndSweep() time.Time {
	now := l.now()
	l.mu.Lock()
	l.sweep(now)
	return now
}

// sweep forgets what is past its time. Lookups check the times themselves, so this only
// bounds memory; it costs what it forgets.
func (l *Live) sweep(now time.Time) {
	for {
		e, ok := l.ipQ.pop(now)
		if !ok {
			break
		}
		l.pruneIP(e.ip, now)
	}
	for {
		e, ok := l.goneQ.pop(now)
		if !ok {
			break
		}
		if g, ok := l.gone[e.pod]; ok && !now.Before(g.until.Add(l.grace)) {
			delete(l.gone, e.pod)
		}
	}
	for {
		e, ok := l.memQ.pop(now)
		if !ok {
			break
		}
		if len(e.wl.pods) == 0 && e.wl.emptySince.Equal(e.since) {
			l.forgetWorkload(e.wl)
		}
	}
}

func (l *Live) pruneIP(ip netip.Addr, now time.Time) {
	hs := slices.DeleteFunc(l.byIP[ip], func(h holding) bool {
		return h.pod == nil && !now.Before(h.until.Add(l.grace))
	})
	if len(hs) == 0 {
		delete(l.byIP, ip)
	} else {
		l.byIP[ip] = hs
	}
}

// setPodAddrs makes addrs the addresses p holds now: those it no longer lists it let go of
// now, and those it newly lists it holds from its start, or from when the previous holder
// let go.
func (l *Live) setPodAddrs(p *livePod, addrs []netip.Addr, now time.Time) {
	for _, ip := range p.ips {
		if !slices.Contains(addrs, ip) {
			l.release(ip, p, now)
		}
	}
	for _, ip := range addrs {
		if !slices.Contains(p.ips, ip) {
			l.claim(ip, p, now)
		}
	}
	p.ips = slices.Clone(addrs)
}

func (l *Live) claim(ip netip.Addr, p *livePod, now time.Time) {
	from := p.start
	if from.IsZero() || from.After(now) {
		from = now
	}
	hs := l.byIP[ip]
	for i := range hs {
		h := &hs[i]
		if h.pod != nil && h.pod != p {
			// Another pod still holds it as far as we saw: it has let go by now.
			other := h.pod
			log.V(1).Info("Pod address taken over by another pod", "ip", ip.String(), "pod", other.key.String(), "newPod", p.key.String())
			l.endHolding(h, now)
			l.ipQ.push(expiry{ip: ip, at: now.Add(l.grace)})
			other.ips = slices.DeleteFunc(other.ips, func(a netip.Addr) bool { return a == ip })
			other.lost = append(other.lost, ip)
			if other.wl != nil && other.wl != p.wl {
				l.refreshEndpoint(other.wl)
			}
		}
		if h.pod == nil && h.until.After(from) {
			from = h.until
		}
	}
	l.byIP[ip] = append(hs, holding{pod: p, from: from})
}

func (l *Live) release(ip netip.Addr, p *livePod, now time.Time) {
	hs := l.byIP[ip]
	for i := range hs {
		if hs[i].pod == p {
			l.endHolding(&hs[i], now)
			l.ipQ.push(expiry{ip: ip, at: now.Add(l.grace)})
		}
	}
}

func (l *Live) endHolding(h *holding, now time.Time) {
	h.peer = h.pod.wl.id
	h.pod = nil
	h.until = now
	if h.until.Before(h.from) {
		h.until = h.from
	}
}

// setHostAddrs makes addrs the node addresses host-network pod p reports.
func (l *Live) setHostAddrs(p *livePod, addrs []netip.Addr) {
	for _, ip := range p.host {
		if slices.Contains(addrs, ip) {
			continue
		}
		if h := l.hostNet[ip]; h != nil {
			if h.pods--; h.pods <= 0 {
				delete(l.hostNet, ip)
			}
		}
	}
	for _, ip := range addrs {
		if slices.Contains(p.host, ip) {
			continue
		}
		if h := l.hostNet[ip]; h != nil {
			h.pods++
		} else {
			l.hostNet[ip] = &hostAddr{node: p.node, pods: 1}
		}
	}
	p.host = slices.Clone(addrs)
}

// Resolve turns a flow record into cache identities as they were when the flow was observed
// (rec.LastSeen; now if zero). Each peer resolves, first that applies:
//
//   - namespace and pod: the pod's workload (its node for a host-network pod); a pod
//     deleted within the grace period still resolves to the workload it was of.
//   - namespace and workload: that workload, as the source names it (for a workload of
//     host-network pods, the node with the peer's ip).
//   - ip: the node with that address; else the pod that held the address at that time, by
//     the view's IP history, to its workload (a host-network pod to its node); else, for an
//     address outside the cluster's pod CIDRs, an external address. A namespace given with
//     the ip must be the pod's.
//
// Anything else — an in-cluster address no known pod held then, a pod never seen, labels
// alone — is unresolved (ok false), never guessed. Workload peers come with the labels and
// ports the view knows of them (pointer-stable while unchanged), or the source's labels for a
// workload the view does not know.
func (l *Live) Resolve(rec flows.Record) (flows.Observation, bool) {
	o, srcWhy, dstWhy := l.identify(&rec)
	return o, srcWhy == "" && dstWhy == ""
}

// Identify is Resolve, saying why a record does not resolve: the offline commands report it
// for the line. (Resolve, on the push path, builds no message.)
func (l *Live) Identify(rec flows.Record) (flows.Observation, error) {
	o, srcWhy, dstWhy := l.identify(&rec)
	switch {
	case srcWhy != "":
		return flows.Observation{}, fmt.Errorf("src: %s", peerProblem(&rec.Src, srcWhy))
	case dstWhy != "":
		return flows.Observation{}, fmt.Errorf("dst: %s", peerProblem(&rec.Dst, dstWhy))
	}
	return o, nil
}

// identify resolves rec, or says why an end does not resolve.
func (l *Live) identify(rec *flows.Record) (o flows.Observation, srcWhy, dstWhy string) {
	now := l.now()
	at := rec.LastSeen
	if at.IsZero() {
		at = now
	}
	l.mu.RLock()
	src, srcInfo, srcWhy := l.resolvePeer(&rec.Src, at, now)
	dst, dstInfo, dstWhy := l.resolvePeer(&rec.Dst, at, now)
	l.mu.RUnlock()
	if srcWhy != "" || dstWhy != "" {
		return flows.Observation{}, srcWhy, dstWhy
	}
	if src.Kind == flows.PeerWorkload && srcInfo == nil {
		srcInfo = l.sourceInfo(src, rec.Src.Labels)
	}
	if dst.Kind == flows.PeerWorkload && dstInfo == nil {
		dstInfo = l.sourceInfo(dst, rec.Dst.Labels)
	}
	proto := corev1.Protocol(rec.Protocol)
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	return flows.Observation{
		Src: src, Dst: dst, SrcInfo: srcInfo, DstInfo: dstInfo,
		Port: rec.Port, Protocol: proto, Seen: at, Count: rec.Count,
	}, "", ""
}

// Why a peer does not resolve.
const (
	whyNoIdentity    = "names no pod or workload the cluster knows, and no ip"
	whyBadIP         = "invalid ip"
	whyNoHolder      = "no known pod held the address then (it is inside the pod networks)"
	whyOtherNS       = "the address belonged to no pod of that namespace then"
	whyLabelsOnly    = "labels alone do not say which workload it is: give a pod, a workload or an ip"
	whyHostNetNoNode = "host-network pod on no node"
	whyBadCIDR       = "invalid cidr"
	whyCIDRInCluster = "the network reaches into the pod networks or holds a node's address"
)

// peerProblem describes a peer that did not resolve, for humans.
func peerProblem(p *flows.Peer, why string) string {
	var who string
	switch {
	case p.Pod != "":
		who = "pod " + p.Namespace + "/" + p.Pod
	case p.Workload != "":
		who = "workload " + p.Namespace + "/" + p.Workload
	case p.IP != "":
		who = "ip " + p.IP
	case p.CIDR != "":
		who = "cidr " + p.CIDR
	default:
		who = "peer"
	}
	if p.IP != "" && p.Pod+p.Workload != "" {
		who += " (ip " + p.IP + ")"
	}
	return who + ": " + why
}

// resolvePeer resolves one end of a flow observed at at, or says why it cannot. It runs
// under the read lock.
func (l *Live) resolvePeer(p *flows.Peer, at, now time.Time) (flows.PeerID, *flows.PeerInfo, string) {
	if p.CIDR != "" {
		return l.resolveCIDR(p.CIDR)
	}
	if p.Namespace != "" && p.Pod != "" {
		key := types.NamespacedName{Namespace: p.Namespace, Name: p.Pod}
		if lp := l.pods[key]; lp != nil && lp.wl != nil {
			if lp.hostNet {
				if lp.node == "" {
					return flows.PeerID{}, nil, whyHostNetNoNode
				}
				return flows.PeerID{Kind: flows.PeerNode, Name: lp.node}, nil, ""
			}
			return lp.wl.id, lp.wl.info, ""
		}
		if g, ok := l.gone[key]; ok && now.Before(g.until.Add(l.grace)) {
			return g.peer, l.infoOf(g.peer), ""
		}
	}
	if p.Namespace != "" && p.Workload != "" {
		id := flows.PeerID{Kind: flows.PeerWorkload, Namespace: p.Namespace, Name: p.Workload}
		wl := l.workloads[id.Namespace][id.Name]
		switch {
		case wl == nil:
			return id, nil, ""
		case !wl.hostNet:
			return id, wl.info, ""
		}
		// A host-network workload's flows are its nodes': only the address can tell which.
	}
	if p.IP == "" {
		if p.Pod == "" && p.Workload == "" && len(p.Labels) > 0 {
			return flows.PeerID{}, nil, whyLabelsOnly
		}
		return flows.PeerID{}, nil, whyNoIdentity
	}
	ip, err := netip.ParseAddr(p.IP)
	if err != nil {
		return flows.PeerID{}, nil, whyBadIP
	}
	ip = ip.Unmap().WithZone("")
	id, ok := l.resolveIP(ip, at, now)
	switch {
	case !ok:
		return flows.PeerID{}, nil, whyNoHolder
	case p.Namespace == "":
	case id.Kind == flows.PeerWorkload && id.Namespace != p.Namespace,
		id.Kind == flows.PeerExternal:
		// The source says a pod of p.Namespace had the address; the view disagrees.
		return flows.PeerID{}, nil, whyOtherNS
	}
	return id, l.infoOf(id), ""
}

// resolveCIDR resolves a network of external addresses held as one peer (what the flow
// cache aggregates an ingress's clients into). It must lie outside the pod networks and
// hold no node's address: only external addresses are ever aggregated. A single address is
// resolved as an ip. It runs under the read lock.
func (l *Live) resolveCIDR(s string) (flows.PeerID, *flows.PeerInfo, string) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil || pfx.Masked() != pfx {
		return flows.PeerID{}, nil, whyBadCIDR
	}
	if pfx.IsSingleIP() {
		id, ok := l.resolveIP(pfx.Addr(), time.Time{}, time.Time{})
		if !ok || id.Kind != flows.PeerExternal {
			return flows.PeerID{}, nil, whyCIDRInCluster
		}
		return id, nil, ""
	}
	for _, c := range l.cidrs {
		if c.Overlaps(pfx) {
			return flows.PeerID{}, nil, whyCIDRInCluster
		}
	}
	for ip := range l.nodeByIP {
		if pfx.Contains(ip) {
			return flows.PeerID{}, nil, whyCIDRInCluster
		}
	}
	return flows.PeerID{Kind: flows.PeerExternal, IP: pfx.Addr(), Bits: uint8(pfx.Bits())}, nil, ""
}

// resolveIP names who had address ip at time at. It runs under the read lock.
func (l *Live) resolveIP(ip netip.Addr, at, now time.Time) (flows.PeerID, bool) {
	if node, ok := l.nodeByIP[ip]; ok {
		return flows.PeerID{Kind: flows.PeerNode, Name: node}, true
	}
	if h := l.hostNet[ip]; h != nil && h.node != "" {
		return flows.PeerID{Kind: flows.PeerNode, Name: h.node}, true
	}
	for _, h := range l.byIP[ip] {
		if at.Before(h.from) {
			continue
		}
		if h.pod != nil {
			if h.pod.wl != nil {
				return h.pod.wl.id, true
			}
			continue
		}
		if at.Before(h.until) && now.Before(h.until.Add(l.grace)) {
			return h.peer, true
		}
	}
	for _, p := range l.cidrs {
		if p.Contains(ip) {
			return flows.PeerID{}, false
		}
	}
	return flows.PeerID{Kind: flows.PeerExternal, IP: ip}, true
}

// sourceInfo interns the labels a source gives for a workload the view does not know, so an
// unchanged label set keeps its pointer.
func (l *Live) sourceInfo(id flows.PeerID, labels map[string]string) *flows.PeerInfo {
	if len(labels) == 0 {
		return nil
	}
	l.memoMu.Lock()
	defer l.memoMu.Unlock()
	if info, ok := l.infos[id]; ok && maps.Equal(info.Labels, labels) {
		return info
	}
	if len(l.infos) >= maxMemo {
		clear(l.infos)
	}
	info := &flows.PeerInfo{Labels: maps.Clone(labels)}
	l.infos[id] = info
	return info
}
