package cluster

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// The intermediate controllers whose own controller names a pod's workload.
const (
	kindReplicaSet = "ReplicaSet"
	kindJob        = "Job"
)

// ownerKey names a ReplicaSet or Job.
type ownerKey struct {
	kind, namespace, name string
}

// owner is what the view knows of a ReplicaSet or Job: its controller (a Deployment, a
// CronJob, or nothing) once its metadata has been seen, and the pods that name it as theirs,
// whose workload changes with it. A deleted owner is kept while pods still name it.
type owner struct {
	known, deleted     bool
	uid                types.UID
	ctrlKind, ctrlName string
	pods               map[types.NamespacedName]struct{}
}

// livePod is what the view keeps of a pod.
type livePod struct {
	key      types.NamespacedName
	uid      types.UID
	created  time.Time
	start    time.Time // the earliest it can have held an address: its start, else creation
	owner    ownerKey  // its controller, if a ReplicaSet or Job
	ownerUID types.UID
	fallback string // its workload by names alone (WorkloadOf), while the owner is unknown
	wl       *workload
	node     string
	hostNet  bool
	running  bool // not Succeeded or Failed
	info     *flows.PeerInfo

	ips  []netip.Addr // pod addresses it holds now (not host network)
	host []netip.Addr // node addresses it claims, if host network
	// lost are addresses its status still lists but another pod has since been seen with:
	// it does not claim them again.
	lost []netip.Addr
}

// workload is a workload the view knows: by its pods now, or by the memory of them.
type workload struct {
	id   flows.PeerID
	pods map[types.NamespacedName]*livePod
	src  *livePod // the pod info comes from: the newest running, else the newest
	info *flows.PeerInfo
	ep   *evaluator.Endpoint
	// placed are where its running pods are (name, node, address), as ep carries them; the
	// last ones seen while it has none.
	placed     []placement
	emptySince time.Time // when its last pod went; zero while it has pods
	// hostNet says its pods run in their node's network: its flows are its nodes'.
	hostNet bool
}

// better reports whether a should speak for its workload rather than b: running pods before
// finished ones, then the newest (the current template during a rollout), then by name.
func better(a, b *livePod) bool {
	if a.running != b.running {
		return a.running
	}
	if c := a.created.Compare(b.created); c != 0 {
		return c > 0
	}
	return a.key.Name > b.key.Name
}

func (l *Live) upsertPod(pod *corev1.Pod) {
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	now := l.lockAndSweep()
	defer l.mu.Unlock()

	p := l.pods[key]
	if p != nil && p.uid != pod.UID {
		// The pod was replaced by one of the same name (a StatefulSet's) while the watch
		// missed the deletion.
		l.removePod(p, now)
		p = nil
	}
	if p == nil {
		p = &livePod{key: key, uid: pod.UID, created: pod.CreationTimestamp.Time}
		l.pods[key] = p
		delete(l.gone, key)
	}
	p.start = podStart(pod)
	p.node = pod.Spec.NodeName
	p.hostNet = pod.Spec.HostNetwork
	p.running = !terminated(pod)
	p.info = podInfo(pod, p.info)
	p.fallback = WorkloadOf(pod)

	ok, ouid := controllerOwner(pod)
	if ok != p.owner {
		l.detachOwner(p)
		p.owner = ok
		if ok != (ownerKey{}) {
			o := l.owners[ok]
			if o == nil {
				o = &owner{pods: map[types.NamespacedName]struct{}{}}
				l.owners[ok] = o
			}
			o.pods[key] = struct{}{}
		}
	}
	p.ownerUID = ouid

	l.placePod(p, l.workloadName(p), false, now)

	var addrs []netip.Addr
	if p.running {
		addrs = podAddrs(pod)
	}
	if p.hostNet {
		l.setHostAddrs(p, addrs)
	} else {
		p.lost = slices.DeleteFunc(p.lost, func(ip netip.Addr) bool { return !slices.Contains(addrs, ip) })
		addrs = slices.DeleteFunc(addrs, func(ip netip.Addr) bool { return slices.Contains(p.lost, ip) })
		l.setPodAddrs(p, addrs, now)
	}
	l.refreshEndpoint(p.wl)
}

func (l *Live) deletePod(key types.NamespacedName) {
	now := l.lockAndSweep()
	defer l.mu.Unlock()
	if p := l.pods[key]; p != nil {
		l.removePod(p, now)
	}
}

// removePod forgets a pod: its addresses and its name are remembered for the grace period,
// its labels and ports by its workload.
func (l *Live) removePod(p *livePod, now time.Time) {
	l.setPodAddrs(p, nil, now)
	l.setHostAddrs(p, nil)
	l.detachOwner(p)
	if p.wl != nil {
		l.gone[p.key] = gonePod{peer: p.wl.id, until: now}
		l.goneQ.push(expiry{pod: p.key, at: now.Add(l.grace)})
		l.unplacePod(p, false, now)
	}
	delete(l.pods, p.key)
}

func (l *Live) detachOwner(p *livePod) {
	if p.owner == (ownerKey{}) {
		return
	}
	if o := l.owners[p.owner]; o != nil {
		delete(o.pods, p.key)
		if (!o.known || o.deleted) && len(o.pods) == 0 {
			delete(l.owners, p.owner)
		}
	}
	p.owner = ownerKey{}
}

// controllerOwner returns a pod's controller if it is a ReplicaSet (apps) or a Job (batch).
func controllerOwner(pod *corev1.Pod) (ownerKey, types.UID) {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil || ref.Name == "" {
		return ownerKey{}, ""
	}
	group := ""
	if ref.APIVersion != "" {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return ownerKey{}, ""
		}
		group = gv.Group
	}
	switch {
	case ref.Kind == kindReplicaSet && (group == "apps" || ref.APIVersion == ""),
		ref.Kind == kindJob && (group == "batch" || ref.APIVersion == ""):
		return ownerKey{kind: ref.Kind, namespace: pod.Namespace, name: ref.Name}, ref.UID
	}
	return ownerKey{}, ""
}

// workloadName is a pod's workload: its owner's controller when the owner is known, else
// what the names say.
func (l *Live) workloadName(p *livePod) string {
	if p.owner == (ownerKey{}) {
		return p.fallback
	}
	o := l.owners[p.owner]
	if o == nil || !o.known || (p.ownerUID != "" && o.uid != "" && p.ownerUID != o.uid) {
		return p.fallback
	}
	if o.ctrlKind != "" {
		return o.ctrlKind + "/" + o.ctrlName
	}
	return p.owner.kind + "/" + p.owner.name
}

// upsertOwner returns the handler for ReplicaSet or Job metadata.
func (l *Live) upsertOwner(kind string) func(*metav1.PartialObjectMetadata) {
	return func(m *metav1.PartialObjectMetadata) {
		var ctrlKind, ctrlName string
		if ref := metav1.GetControllerOfNoCopy(m); ref != nil && ref.Kind != "" && ref.Name != "" {
			ctrlKind, ctrlName = ref.Kind, ref.Name
		}
		key := ownerKey{kind: kind, namespace: m.Namespace, name: m.Name}
		now := l.lockAndSweep()
		defer l.mu.Unlock()
		o := l.owners[key]
		if o == nil {
			o = &owner{pods: map[types.NamespacedName]struct{}{}}
			l.owners[key] = o
		}
		o.deleted = false
		if o.known && o.uid == m.UID && o.ctrlKind == ctrlKind && o.ctrlName == ctrlName {
			return
		}
		o.known, o.uid, o.ctrlKind, o.ctrlName = true, m.UID, ctrlKind, ctrlName
		l.reresolve(o, now)
	}
}

// deleteOwner returns the delete handler for ReplicaSets or Jobs.
func (l *Live) deleteOwner(kind string) func(types.NamespacedName) {
	return func(name types.NamespacedName) {
		key := ownerKey{kind: kind, namespace: name.Namespace, name: name.Name}
		l.lockAndSweep()
		defer l.mu.Unlock()
		o := l.owners[key]
		if o == nil {
			return
		}
		// Its pods, being deleted with it or orphaned, keep the workload it named until
		// they are gone or name no owner.
		o.deleted = true
		if len(o.pods) == 0 {
			delete(l.owners, key)
		}
	}
}

// reresolve moves the pods of an owner to the workload it now names.
func (l *Live) reresolve(o *owner, now time.Time) {
	for k := range o.pods {
		if p := l.pods[k]; p != nil {
			l.placePod(p, l.workloadName(p), true, now)
		}
	}
}

// placePod puts p in workload name of its namespace (moving it if it was in another) and
// lets the workload take its labels and ports if p now speaks for it. moved says the pod
// moves because its owner became known: a workload it leaves empty was only ever a guess,
// and is forgotten.
func (l *Live) placePod(p *livePod, name string, moved bool, now time.Time) {
	if p.wl != nil && p.wl.id.Name != name {
		l.unplacePod(p, moved, now)
	}
	wl := p.wl
	if wl == nil {
		byName := l.workloads[p.key.Namespace]
		if byName == nil {
			byName = map[string]*workload{}
			l.workloads[p.key.Namespace] = byName
		}
		wl = byName[name]
		if wl == nil {
			wl = &workload{
				id:   flows.PeerID{Kind: flows.PeerWorkload, Namespace: p.key.Namespace, Name: name},
				pods: map[types.NamespacedName]*livePod{},
			}
			byName[name] = wl
		}
		wl.pods[p.key] = p
		wl.emptySince = time.Time{}
		p.wl = wl
	}
	switch {
	case wl.src == nil || (wl.src != p && better(p, wl.src)):
		wl.src = p
	case wl.src == p && !p.running:
		l.chooseSource(wl) // it may have stopped speaking for the workload
	}
	wl.hostNet = wl.src.hostNet
	l.setInfo(wl, wl.src.info)
}

// unplacePod takes p out of its workload, which keeps the memory of it once empty.
func (l *Live) unplacePod(p *livePod, moved bool, now time.Time) {
	wl := p.wl
	p.wl = nil
	delete(wl.pods, p.key)
	defer l.refreshEndpoint(wl)
	if len(wl.pods) == 0 {
		wl.src = nil
		if moved {
			l.forgetWorkload(wl)
			return
		}
		wl.emptySince = now
		l.memQ.push(expiry{wl: wl, since: now, at: now.Add(l.memory)})
		return
	}
	if wl.src == p {
		l.chooseSource(wl)
		wl.hostNet = wl.src.hostNet
		l.setInfo(wl, wl.src.info)
	}
}

func (l *Live) chooseSource(wl *workload) {
	wl.src = nil
	for _, p := range wl.pods {
		if wl.src == nil || better(p, wl.src) {
			wl.src = p
		}
	}
}

func (l *Live) forgetWorkload(wl *workload) {
	byName := l.workloads[wl.id.Namespace]
	if byName[wl.id.Name] != wl {
		return
	}
	delete(byName, wl.id.Name)
	if len(byName) == 0 {
		delete(l.workloads, wl.id.Namespace)
	}
}

// setInfo gives a workload new labels and ports; the same as it has keep their pointers.
func (l *Live) setInfo(wl *workload, info *flows.PeerInfo) {
	if info == nil || wl.info == info || (wl.info != nil && equalInfo(wl.info, info)) {
		return
	}
	wl.info = info
	wl.ep = nil
	l.refreshEndpoint(wl)
}

// placement is where one pod of a workload runs.
type placement struct {
	pod, node string
	ip        netip.Addr
}

// refreshEndpoint makes the workload's endpoint carry its labels and ports and where its
// running pods are: the node and address of its one pod, or each of its pods. The offline
// CLI and the webhook judge a workload by this same endpoint, so a probe from the node one of
// its pods runs on, or an ipBlock over its pods' addresses, is decided alike. A workload
// whose pods are all gone keeps where they last were. An unchanged endpoint keeps its
// pointer, and with it what the evaluator memoised.
func (l *Live) refreshEndpoint(wl *workload) {
	if wl.info == nil {
		return
	}
	var placed []placement
	for _, p := range wl.pods {
		if !p.running || p.hostNet {
			continue
		}
		pl := placement{pod: p.key.Name, node: p.node}
		if len(p.ips) > 0 {
			pl.ip = p.ips[0]
		}
		placed = append(placed, pl)
	}
	if len(placed) == 0 {
		placed = wl.placed
	}
	slices.SortFunc(placed, func(a, b placement) int { return strings.Compare(a.pod, b.pod) })
	if wl.ep != nil && slices.Equal(placed, wl.placed) {
		return
	}
	wl.placed = placed
	ep := &evaluator.Endpoint{
		Kind:      evaluator.Pod,
		Namespace: wl.id.Namespace,
		Name:      wl.id.Name,
		Labels:    wl.info.Labels,
		Ports:     wl.info.Ports,
	}
	switch len(placed) {
	case 0:
	case 1:
		ep.Pod, ep.NodeName, ep.IP = placed[0].pod, placed[0].node, placed[0].ip
	default:
		for _, pl := range placed {
			if pl.node != "" && !slices.Contains(ep.Nodes, pl.node) {
				ep.Nodes = append(ep.Nodes, pl.node)
			}
		}
		ep.Pods = make([]*evaluator.Endpoint, len(placed))
		for i, pl := range placed {
			pod := *ep
			pod.Pods = nil
			pod.Pod, pod.NodeName, pod.IP = pl.pod, pl.node, pl.ip
			ep.Pods[i] = &pod
		}
	}
	wl.ep = ep
}

func equalInfo(a, b *flows.PeerInfo) bool {
	return maps.Equal(a.Labels, b.Labels) && slices.Equal(a.Ports, b.Ports)
}

// podInfo is a pod's labels, exactly as on the pod, and its named container ports; prev if
// they are the same.
func podInfo(pod *corev1.Pod, prev *flows.PeerInfo) *flows.PeerInfo {
	var ports []evaluator.ContainerPort
	for _, c := range pod.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "" {
				continue // only named ports matter: rules name them
			}
			proto := port.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ports = append(ports, evaluator.ContainerPort{Name: port.Name, Port: port.ContainerPort, Protocol: proto})
		}
	}
	if prev != nil && maps.Equal(prev.Labels, pod.Labels) && slices.Equal(prev.Ports, ports) {
		return prev
	}
	return &flows.PeerInfo{Labels: copyLabels(pod.Labels), Ports: ports}
}

// podStart is the earliest a pod can have been given an address: when the kubelet took it
// (status.startTime), else when it was created.
func podStart(pod *corev1.Pod) time.Time {
	t := pod.CreationTimestamp.Time
	if st := pod.Status.StartTime; st != nil && st.After(t) {
		t = st.Time
	}
	return t
}

// infoOf is what the view knows of a peer's labels and ports: a workload's, or nil.
func (l *Live) infoOf(id flows.PeerID) *flows.PeerInfo {
	if id.Kind != flows.PeerWorkload {
		return nil
	}
	if wl := l.workloads[id.Namespace][id.Name]; wl != nil {
		return wl.info
	}
	return nil
}
