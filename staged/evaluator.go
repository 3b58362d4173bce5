package staged

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/webhook"
)

// Options configures an Evaluator.
type Options struct {
	// Guard judges changes; give it MaxListed v1alpha1.MaxTop so that the cuts status
	// lists come explained.
	Guard *webhook.Guard
	// View is the cluster view the guard judges by: a new PolicySet or World means the
	// cluster's policies or namespace labels changed.
	View webhook.View
	// Cache is the flow cache the guard reads. The Evaluator sets its OnNewEdge hook.
	Cache *flows.Cache
	// Window is how long a cut remembered from status but no longer cached is kept after it
	// was last seen: the cache's window. Default flows.DefaultWindow.
	Window time.Duration
	// Debounce is how long a change of the cluster waits for more before every staged
	// policy is judged over again. Default 2s.
	Debounce time.Duration
	// Resync re-judges every staged policy over the whole cache this often, refreshing
	// the cut edges' counts and dropping the expired. Default 5m.
	Resync time.Duration
	// Ready reports whether the view and the cache are complete (informers synced, the
	// snapshot restored); until then nothing is judged. nil: always.
	Ready func() bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Evaluator keeps, for every staged policy, what its change would cut now.
type Evaluator struct {
	opts Options

	newEdges chan flows.Edge
	overflow atomic.Bool   // new edges were dropped: judge everything over
	kick     chan struct{} // a staged policy or the cluster changed

	mu       sync.Mutex
	policies map[types.NamespacedName]*entry
	byNS     map[string]map[types.NamespacedName]*entry // by the namespace of the change
	index    map[string]*selectorIndex                  // of byNS's judged entries; built when first needed
	stamp    uint64                                     // counts the edges judged, so each entry judges one once
	all      bool                                       // every entry is due a full evaluation
	ps       *evaluator.PolicySet                       // what the entries' changes were made against
	world    *evaluator.World
	version  uint64 // bumped whenever an entry's findings change
	// judge judges each new edge against the entries' deltas, sharing what the cluster's
	// policies say of it.
	judge *evaluator.DeltaJudge
	// held are the edges the entries' cuts hold, each once however many cut it, numbered:
	// byNum[n] is edge n (nil: free, and in freeNums). Each entry has a slot, its bit in
	// cutEdge.by; freeSlots are the slots of entries gone.
	held      map[edgeID]*cutEdge
	byNum     []*cutEdge
	freeNums  []uint32
	slots     int
	freeSlots []int
}

// entry is one staged policy and what its change would cut.
type entry struct {
	key        types.NamespacedName
	obj        *v1alpha1.StagedNetworkPolicy
	generation int64
	change     *webhook.Change  // nil until evaluated, or when the template does not compile
	invalid    string           // why the change cannot be judged
	delta      *evaluator.Delta // change's, judging the new edges; set with change
	stamp      uint64           // Evaluator.stamp of the edge last judged against it
	due        bool             // a full evaluation is due
	slot       int              // the entry's bit in cutEdge.by

	evaluated bool
	// cuts are the cached edges the change cuts, each once, by number (Evaluator.byNum: a
	// list the garbage collector need not scan), and reasons why for those a full
	// evaluation explained (the others are asked when listed). remembered are those known
	// only from status (written before a restart) and not found in the cache since. No
	// edge is in both.
	cuts         []uint32
	reasons      map[uint32]string
	remembered   map[edgeID]*cut
	coverage     v1alpha1.Coverage
	soakingSince time.Time
	cleanSince   time.Time // zero while something would be cut
	version      uint64    // Evaluator.version when the findings last changed
}

// edgeID names an edge across reads of the cache.
type edgeID struct {
	src, dst flows.PeerID
	port     int32
	proto    corev1.Protocol
}

func idOf(e *flows.Edge) edgeID {
	return edgeID{src: e.Src, dst: e.Dst, port: e.Port, proto: e.Protocol}
}

// cut is an edge a staged change would cut, known only from status.
type cut struct {
	edge   flows.Edge
	reason string
}

// cutEdge is a cached edge that staged changes cut, held once for all of them: a new edge
// that a hundred staged policies cut is recorded once, and each entry's cuts name it by
// its number. The caller of its methods holds ev.mu.
type cutEdge struct {
	id   edgeID // never changes: read without the lock
	num  uint32
	edge flows.Edge
	// by is the bit set of the slots of the entries whose cuts hold it, the first
	// 128 slots here and the rest in more; refs counts them.
	by   [2]uint64
	more []uint64
	refs int
}

func (ce *cutEdge) word(slot int) *uint64 {
	if w := slot / 64; w < len(ce.by) {
		return &ce.by[w]
	} else if w -= len(ce.by); w < len(ce.more) {
		return &ce.more[w]
	}
	return nil
}

func (ce *cutEdge) has(slot int) bool {
	w := ce.word(slot)
	return w != nil && *w&(1<<(slot%64)) != 0
}

// hold marks ce held by the entry of slot, which it is not yet.
func (ce *cutEdge) hold(slot int) {
	w := ce.word(slot)
	if w == nil {
		n := slot/64 - len(ce.by)
		ce.more = append(ce.more, make([]uint64, n+1-len(ce.more))...)
		w = &ce.more[n]
	}
	*w |= 1 << (slot % 64)
	ce.refs++
}

// holder returns the record of edge e for e to be held: the one held already (with e's
// counts if they are newer), or a new one.
func (ev *Evaluator) holder(id edgeID, e *flows.Edge) *cutEdge {
	ce := ev.held[id]
	switch {
	case ce == nil:
		ce = &cutEdge{id: id, edge: *e}
		if n := len(ev.freeNums); n > 0 {
			ce.num = ev.freeNums[n-1]
			ev.freeNums = ev.freeNums[:n-1]
			ev.byNum[ce.num] = ce
		} else {
			ce.num = uint32(len(ev.byNum))
			ev.byNum = append(ev.byNum, ce)
		}
		ev.held[id] = ce
	case !e.LastSeen.Before(ce.edge.LastSeen):
		ce.edge = *e
	}
	return ce
}

// releaseAll drops every cut of e.
func (ev *Evaluator) releaseAll(e *entry) {
	bit := uint64(1) << (e.slot % 64)
	for _, n := range e.cuts {
		ce := ev.byNum[n]
		*ce.word(e.slot) &^= bit
		if ce.refs--; ce.refs == 0 {
			delete(ev.held, ce.id)
			ev.byNum[n] = nil
			ev.freeNums = append(ev.freeNums, n)
		}
	}
	e.cuts, e.reasons = nil, nil
}

// allocSlot returns a slot for a new entry; freeSlot gives back the one of an entry gone
// (its cuts released).
func (ev *Evaluator) allocSlot() int {
	if n := len(ev.freeSlots); n > 0 {
		s := ev.freeSlots[n-1]
		ev.freeSlots = ev.freeSlots[:n-1]
		return s
	}
	ev.slots++
	return ev.slots - 1
}

func (ev *Evaluator) freeSlot(e *entry) {
	ev.releaseAll(e)
	ev.freeSlots = append(ev.freeSlots, e.slot)
}

// cutCount is how many edges e's change cuts.
func (e *entry) cutCount() int { return len(e.cuts) + len(e.remembered) }

// newEdgeBuffer bounds the edges waiting to be judged; past it they are dropped and every
// staged policy is judged over again instead.
const newEdgeBuffer = 1 << 14

// New returns an Evaluator; Start runs it.
func New(opts Options) *Evaluator {
	if opts.Window <= 0 {
		opts.Window = flows.DefaultWindow
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 2 * time.Second
	}
	if opts.Resync <= 0 {
		opts.Resync = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Evaluator{
		opts:     opts,
		newEdges: make(chan flows.Edge, newEdgeBuffer),
		kick:     make(chan struct{}, 1),
		policies: map[types.NamespacedName]*entry{},
		byNS:     map[string]map[types.NamespacedName]*entry{},
		index:    map[string]*selectorIndex{},
		judge:    evaluator.NewDeltaJudge(),
		held:     map[edgeID]*cutEdge{},
	}
}

// onNewEdge is the cache's hook: it runs under the cache's lock, so it only queues.
func (ev *Evaluator) onNewEdge(e flows.Edge) {
	select {
	case ev.newEdges <- e:
	default:
		ev.overflow.Store(true)
	}
}

// NeedLeaderElection is false: every replica evaluates, so any of them can take over
// writing status.
func (ev *Evaluator) NeedLeaderElection() bool { return false }

// Start judges staged policies until ctx ends.
func (ev *Evaluator) Start(ctx context.Context) error {
	ev.opts.Cache.OnNewEdge(ev.onNewEdge)
	defer ev.opts.Cache.OnNewEdge(nil)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	resync := time.NewTicker(ev.opts.Resync)
	defer resync.Stop()
	var debounce <-chan time.Time
	batch := make([]flows.Edge, 0, 256)
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-ev.newEdges:
			batch = append(batch[:0], e)
			for len(batch) < cap(batch) {
				select {
				case e := <-ev.newEdges:
					batch = append(batch, e)
					continue
				default:
				}
				break
			}
			ev.JudgeEdges(batch)
		case <-ev.kick:
			if debounce == nil {
				debounce = time.After(ev.opts.Debounce)
			}
		case <-debounce:
			debounce = nil
			ev.EvaluateDue()
		case <-tick.C:
			if !ev.ready() {
				continue
			}
			if ev.pending() {
				ev.EvaluateDue()
			}
			if ev.clusterChanged() || ev.overflow.Swap(false) {
				ev.markAll()
				if debounce == nil {
					debounce = time.After(ev.opts.Debounce)
				}
			}
		case <-resync.C:
			ev.markAll()
			ev.EvaluateDue()
		}
	}
}

// Kick asks for the due evaluations to run (after the debounce).
func (ev *Evaluator) Kick() {
	select {
	case ev.kick <- struct{}{}:
	default:
	}
}

// ClusterChanged asks for every staged policy to be judged over again: pods or their labels
// changed in a way the view's PolicySet and World do not show.
func (ev *Evaluator) ClusterChanged() {
	ev.markAll()
	ev.Kick()
}

func (ev *Evaluator) ready() bool { return ev.opts.Ready == nil || ev.opts.Ready() }

// pending reports whether some staged policy has never been evaluated: one that arrived
// before the view was ready.
func (ev *Evaluator) pending() bool {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, e := range ev.policies {
		if e.due && !e.evaluated {
			return true
		}
	}
	return false
}

func (ev *Evaluator) markAll() {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.all = true
}

// clusterChanged reports whether the cluster's policies or namespace labels changed since
// the entries' changes were made.
func (ev *Evaluator) clusterChanged() bool {
	ps, w := ev.opts.View.PolicySet(), ev.opts.View.World()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return (ev.ps != nil && ps != ev.ps) || (ev.world != nil && w != ev.world)
}

// Upsert takes a staged policy as the API server has it now. A new generation starts a new
// soak; the status of the generation it has (written by this or another replica before)
// carries over when and how long it has been soaking, and the cuts it listed.
func (ev *Evaluator) Upsert(obj *v1alpha1.StagedNetworkPolicy) {
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
	now := ev.opts.Now()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	e := ev.policies[key]
	if e != nil && e.generation == obj.Generation && e.obj.UID == obj.UID {
		e.obj = obj
		ev.adoptStatus(e, obj)
		return
	}
	var slot int
	if old := ev.policies[key]; old != nil {
		ev.releaseAll(old)
		slot = old.slot
	} else {
		slot = ev.allocSlot()
	}
	e = &entry{key: key, obj: obj, generation: obj.Generation, due: true, slot: slot, remembered: map[edgeID]*cut{}, soakingSince: now}
	ev.adoptStatus(e, obj)
	if st := obj.Status; st.ObservedGeneration == obj.Generation && obj.Generation != 0 {
		for _, cf := range st.WouldCut.Top {
			edge, ok := edgeOf(cf)
			if ok {
				e.remembered[idOf(&edge)] = &cut{edge: edge, reason: cf.Reason}
			}
		}
	}
	ev.policies[key] = e
	if ev.byNS[key.Namespace] == nil {
		ev.byNS[key.Namespace] = map[types.NamespacedName]*entry{}
	}
	ev.byNS[key.Namespace][key] = e
	delete(ev.index, key.Namespace)
	ev.Kick()
}

// adoptStatus takes from the status of the entry's generation the earlier of its own and
// the recorded start of the soak and of the clean spell.
func (ev *Evaluator) adoptStatus(e *entry, obj *v1alpha1.StagedNetworkPolicy) {
	st := obj.Status
	if st.ObservedGeneration != e.generation || e.generation == 0 {
		return
	}
	if st.SoakingSince != nil && st.SoakingSince.Time.Before(e.soakingSince) {
		e.soakingSince = st.SoakingSince.Time
	}
	if st.CleanSince != nil && (!e.evaluated || (e.cutCount() == 0 && st.CleanSince.Time.Before(e.cleanSince))) {
		e.cleanSince = st.CleanSince.Time
	}
}

// Remove forgets a deleted staged policy.
func (ev *Evaluator) Remove(key types.NamespacedName) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	e, ok := ev.policies[key]
	if !ok {
		return
	}
	ev.freeSlot(e)
	delete(ev.policies, key)
	delete(ev.byNS[key.Namespace], key)
	delete(ev.index, key.Namespace)
	if len(ev.byNS[key.Namespace]) == 0 {
		delete(ev.byNS, key.Namespace)
	}
	ev.version++
}

// EvaluateDue judges the staged policies that are due (all of them after a change of the
// cluster) over the whole cache.
func (ev *Evaluator) EvaluateDue() {
	if !ev.ready() {
		return // the tick tries again
	}
	ev.mu.Lock()
	all := ev.all
	ev.all = false
	var due []*entry
	for _, e := range ev.policies {
		if all || e.due {
			e.due = false
			due = append(due, e)
		}
	}
	ev.mu.Unlock()
	if len(due) == 0 {
		return
	}
	// The policies and world the changes are made against are read first: a change of
	// them from here on is seen by the next tick.
	ps, w := ev.opts.View.PolicySet(), ev.opts.View.World()
	for _, e := range due {
		ev.evaluate(e)
	}
	ev.mu.Lock()
	ev.ps, ev.world = ps, w
	ev.mu.Unlock()
}

// evaluate judges one staged policy over the whole cache. The judging runs without the
// lock; only the findings are swapped in under it.
func (ev *Evaluator) evaluate(e *entry) {
	ev.mu.Lock()
	obj := e.obj
	remembered := make([]flows.Edge, 0, len(e.remembered))
	for _, c := range e.remembered {
		remembered = append(remembered, c.edge)
	}
	ev.mu.Unlock()

	now := ev.opts.Now()
	g := ev.opts.Guard
	ps := ev.opts.View.PolicySet()
	current := ps.Get(obj.Namespace, obj.Name)
	change, err := g.NewChange(obj.Namespace, current, obj.NetworkPolicy())
	var live []webhook.Cut
	stillRemembered := map[edgeID]*cut{}
	var coverage v1alpha1.Coverage
	var delta *evaluator.Delta
	invalid := ""
	if err == nil {
		delta = evaluator.NewDelta(change.Before, change.After)
	}
	switch {
	case err != nil:
		invalid = err.Error()
		change = nil
	case obj.Action() == v1alpha1.StagedDelete && current == nil:
		// Nothing to delete: nothing to cut.
	default:
		d := g.Decide(change)
		live = d.Cuts
		coverage = v1alpha1.Coverage{
			HistorySeconds:  int64(d.Coverage.History / time.Second),
			EdgesConsidered: int64(d.Coverage.Edges),
			UnresolvedFlows: int64(d.Coverage.Unresolved),
		}
		// Cuts known from status but not cached now (the cache started over) are judged
		// again until they fall out of the window.
		if len(remembered) > 0 {
			cached := make(map[edgeID]bool, len(live))
			for i := range live {
				cached[idOf(&live[i].Edge)] = true
			}
			for i := range remembered {
				r := &remembered[i]
				id := idOf(r)
				if cached[id] || stillRemembered[id] != nil || now.Sub(r.LastSeen) > ev.opts.Window {
					continue
				}
				if isCut, reason := g.Judge(change, r, nil); isCut {
					stillRemembered[id] = &cut{edge: *r, reason: reason}
				}
			}
		}
	}

	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.policies[e.key] != e || e.obj.Generation != obj.Generation {
		return // replaced meanwhile; its own evaluation is due
	}
	ev.releaseAll(e)
	e.cuts = make([]uint32, 0, len(live))
	for i := range live {
		c := &live[i]
		ce := ev.holder(idOf(&c.Edge), &c.Edge)
		if ce.has(e.slot) {
			continue // listed twice
		}
		ce.hold(e.slot)
		e.cuts = append(e.cuts, ce.num)
		if c.Reason != "" {
			if e.reasons == nil {
				e.reasons = map[uint32]string{}
			}
			e.reasons[ce.num] = c.Reason
		}
	}
	e.change, e.delta, e.invalid, e.remembered, e.coverage = change, delta, invalid, stillRemembered, coverage
	// The index's entry is gone with the old change.
	delete(ev.index, e.key.Namespace)
	ev.settle(e, now)
	if l := log.V(4); l.Enabled() {
		l.Info("Staged policy evaluated", "staged", e.key.String(), "wouldCut", e.cutCount(), "edges", coverage.EdgesConsidered)
	}
}

// settle updates the clean spell after the cuts changed, and marks the findings changed.
func (ev *Evaluator) settle(e *entry, now time.Time) {
	switch {
	case e.cutCount() > 0 || e.invalid != "":
		e.cleanSince = time.Time{}
	case e.cleanSince.IsZero():
		e.cleanSince = now
	}
	e.evaluated = true
	ev.version++
	e.version = ev.version
}

// JudgeEdges judges new edges against the staged policies of their ends' namespaces that
// may select one of their ends.
func (ev *Evaluator) JudgeEdges(edges []flows.Edge) {
	now := ev.opts.Now()
	// A change of these from here on is seen by the next tick, which judges everything over.
	ps, w := ev.opts.View.PolicySet(), ev.opts.View.World()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for i := range edges {
		ev.stamp++
		j := judging{e: &edges[i], ps: ps, w: w, now: now}
		ev.judgeAt(&j, true)
		ev.judgeAt(&j, false)
	}
}

// judging is one new edge being judged: what is worked out about it once for every staged
// policy it is judged against.
type judging struct {
	e   *flows.Edge
	ps  *evaluator.PolicySet
	w   *evaluator.World
	now time.Time

	src, dst *evaluator.Endpoint // resolved when first needed
	begun    bool                // ev.judge has begun the flow
	looked   bool                // id and held are known
	id       edgeID
	held     *cutEdge // the edge as the entries' cuts hold it; nil while none does
	before   bool     // held was held before this edge came: some entry may hold it already
	updated  bool     // held has taken the edge's counts
}

// endpoint resolves an end of the edge once.
func (ev *Evaluator) endpoint(j *judging, src bool) *evaluator.Endpoint {
	if src {
		if j.src == nil {
			j.src = ev.opts.View.Endpoint(j.e.Src, j.e.SrcInfo)
		}
		return j.src
	}
	if j.dst == nil {
		j.dst = ev.opts.View.Endpoint(j.e.Dst, j.e.DstInfo)
	}
	return j.dst
}

// judgeAt judges the edge against the staged policies that may select its source (or
// destination).
func (ev *Evaluator) judgeAt(j *judging, src bool) {
	at := j.e.Dst
	if src {
		at = j.e.Src
	}
	if at.Kind != flows.PeerWorkload {
		return
	}
	idx := ev.indexOf(at.Namespace)
	if idx == nil {
		return
	}
	ev.judgeAgainst(j, idx.any)
	if len(idx.byLabel) == 0 {
		return
	}
	for k, v := range ev.endpoint(j, src).Labels {
		ev.judgeAgainst(j, idx.byLabel[label{k, v}])
	}
}

func (ev *Evaluator) judgeAgainst(j *judging, entries []*entry) {
	for _, p := range entries {
		if p.stamp == ev.stamp {
			continue
		}
		p.stamp = ev.stamp
		if !j.looked {
			j.looked = true
			j.id = idOf(j.e)
			j.held = ev.held[j.id]
			j.before = j.held != nil
		}
		if j.before {
			if j.held.has(p.slot) {
				if !j.updated {
					j.updated = true
					j.held.edge = *j.e
				}
				continue
			}
		}
		if !j.begun {
			j.begun = true
			ev.judge.Begin(j.ps, j.w, evaluator.Flow{Src: ev.endpoint(j, true), Dst: ev.endpoint(j, false), Port: j.e.Port, Protocol: j.e.Protocol})
		}
		// Why is asked when the cut is listed (Findings), not for every cut edge.
		if ev.judge.Cuts(p.delta) {
			if j.held == nil {
				j.held = ev.holder(j.id, j.e)
			} else if !j.updated {
				j.held.edge = *j.e
			}
			j.updated = true
			j.held.hold(p.slot)
			p.cuts = append(p.cuts, j.held.num)
			if len(p.remembered) > 0 {
				delete(p.remembered, j.id)
			}
			ev.settle(p, j.now)
		}
	}
}

// Version changes whenever some staged policy's findings do.
func (ev *Evaluator) Version() uint64 {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.version
}

// Findings is what an Evaluator found for one staged policy.
type Findings struct {
	Generation   int64
	Evaluated    bool
	Invalid      string
	SoakingSince time.Time
	CleanSince   time.Time
	Cuts         []Cut // most recently seen first
	Coverage     v1alpha1.Coverage
}

// Cut is one edge a staged change would cut.
type Cut struct {
	Edge   flows.Edge
	Reason string
}

// Findings returns what was found for a staged policy, with at most top cuts (the most
// recently seen) and the count of all; ok is false for one it does not know.
func (ev *Evaluator) Findings(key types.NamespacedName, top int) (f Findings, total int, ok bool) {
	ev.mu.Lock()
	e := ev.policies[key]
	if e == nil {
		ev.mu.Unlock()
		return Findings{}, 0, false
	}
	f = Findings{Generation: e.generation, Evaluated: e.evaluated, Invalid: e.invalid, SoakingSince: e.soakingSince, CleanSince: e.cleanSince, Coverage: e.coverage}
	total = e.cutCount()
	if top <= 0 || total == 0 {
		ev.mu.Unlock()
		return f, total, true
	}
	// The cuts are ordered outside the lock, by when they were last seen then: the edges
	// the entries hold are updated under it.
	listed := make([]listedCut, 0, total)
	for _, n := range e.cuts {
		ce := ev.byNum[n]
		listed = append(listed, listedCut{id: &ce.id, lastSeen: ce.edge.LastSeen, held: ce, reason: e.reasons[n]})
	}
	for id, c := range e.remembered {
		listed = append(listed, listedCut{id: &id, lastSeen: c.edge.LastSeen, remembered: c})
	}
	change := e.change
	ev.mu.Unlock()

	slices.SortFunc(listed, compareListed)
	listed = listed[:min(top, len(listed))]
	f.Cuts = make([]Cut, len(listed))
	ev.mu.Lock()
	for i, c := range listed {
		if c.held != nil {
			f.Cuts[i] = Cut{Edge: c.held.edge, Reason: c.reason}
		} else {
			f.Cuts[i] = Cut{Edge: c.remembered.edge, Reason: c.remembered.reason}
		}
	}
	ev.mu.Unlock()
	// Seen again since they were ordered: the order of the listed ones by now.
	slices.SortStableFunc(f.Cuts, func(a, b Cut) int { return compareCuts(&a.Edge, &b.Edge) })
	for i := range f.Cuts {
		if c := &f.Cuts[i]; c.Reason == "" && change != nil {
			_, c.Reason = ev.opts.Guard.Judge(change, &c.Edge, nil)
		}
	}
	return f, total, true
}

// listedCut is a cut being ordered for Findings.
type listedCut struct {
	id         *edgeID
	lastSeen   time.Time
	held       *cutEdge
	reason     string
	remembered *cut
}

func compareListed(a, b listedCut) int {
	return cmp.Or(b.lastSeen.Compare(a.lastSeen), compareIDs(a.id, b.id))
}

// Keys lists the staged policies known.
func (ev *Evaluator) Keys() []types.NamespacedName {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	keys := make([]types.NamespacedName, 0, len(ev.policies))
	for k := range ev.policies {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return cmp.Compare(a.String(), b.String()) })
	return keys
}

// compareCuts orders cut edges most recently seen first, then by name.
func compareCuts(a, b *flows.Edge) int {
	return cmp.Or(b.LastSeen.Compare(a.LastSeen), compareIDs(&edgeID{a.Src, a.Dst, a.Port, a.Protocol}, &edgeID{b.Src, b.Dst, b.Port, b.Protocol}))
}

// compareIDs orders edges by name.
func compareIDs(a, b *edgeID) int {
	return cmp.Or(
		cmp.Compare(a.src.String(), b.src.String()),
		cmp.Compare(a.dst.String(), b.dst.String()),
		cmp.Compare(a.port, b.port),
		cmp.Compare(a.proto, b.proto),
	)
}

// edgeOf turns a cut listed in status back into an edge.
func edgeOf(cf v1alpha1.CutFlow) (flows.Edge, bool) {
	src, ok1 := peerID(cf.Src)
	dst, ok2 := peerID(cf.Dst)
	if !ok1 || !ok2 {
		return flows.Edge{}, false
	}
	proto := corev1.Protocol(cf.Protocol)
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	return flows.Edge{
		Src: src, Dst: dst, Port: cf.Port, Protocol: proto,
		FirstSeen: cf.FirstSeen.Time, LastSeen: cf.LastSeen.Time, Count: uint64(max(cf.Count, 0)),
	}, true
}

func peerID(p v1alpha1.Peer) (flows.PeerID, bool) {
	switch {
	case p.Workload != "":
		return flows.PeerID{Kind: flows.PeerWorkload, Namespace: p.Namespace, Name: p.Workload}, p.Namespace != ""
	case p.Node != "":
		return flows.PeerID{Kind: flows.PeerNode, Name: p.Node}, true
	default:
		ip, err := netip.ParseAddr(p.IP)
		return flows.PeerID{Kind: flows.PeerExternal, IP: ip}, err == nil
	}
}

// PeerOf is a cache identity in status's shape.
func PeerOf(id flows.PeerID) v1alpha1.Peer {
	switch id.Kind {
	case flows.PeerWorkload:
		return v1alpha1.Peer{Namespace: id.Namespace, Workload: id.Name}
	case flows.PeerNode:
		return v1alpha1.Peer{Node: id.Name}
	default:
		return v1alpha1.Peer{IP: id.IP.String()}
	}
}
