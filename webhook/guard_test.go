package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// testView is the cluster as the guard sees it, held in memory: a shop with web, cart,
// checkout and a CronJob, CoreDNS, and a node.
type testView struct {
	mu       sync.Mutex
	policies []*networkingv1.NetworkPolicy
	nsLabels map[string]map[string]string
	pods     map[flows.PeerID]*evaluator.Endpoint
	webhooks map[flows.PeerID]string
	block    chan struct{} // when set, PolicySet waits on it: an evaluation that takes too long
	// panics, when set, makes PolicySet panic with it: a bug in an evaluation.
	panics any
	// remembered interns endpoints of workloads known only from the cache, as Live does:
	// the same identity and stored info give the same pointer.
	remembered map[*flows.PeerInfo]*evaluator.Endpoint
	world      *evaluator.World
	nodeLabels map[string]map[string]string // the World's, for nodes peers
}

func newTestView(policies ...*networkingv1.NetworkPolicy) *testView {
	v := &testView{
		policies:   policies,
		nsLabels:   map[string]map[string]string{"shop": {"team": "shop"}, "kube-system": {}, "payments": {}},
		pods:       map[flows.PeerID]*evaluator.Endpoint{},
		webhooks:   map[flows.PeerID]string{},
		remembered: map[*flows.PeerInfo]*evaluator.Endpoint{},
	}
	for _, w := range []struct{ ns, name, app string }{
		{"shop", "Deployment/web", "web"}, {"shop", "Deployment/cart", "cart"}, {"shop", "Deployment/checkout", "checkout"},
		{"shop", "CronJob/report", "report"}, {"kube-system", "Deployment/coredns", "kube-dns"}, {"payments", "Deployment/api", "payments"},
	} {
		labels := map[string]string{"app": w.app}
		if w.app == "kube-dns" {
			labels = map[string]string{"k8s-app": "kube-dns"}
		}
		v.pods[flows.PeerID{Kind: flows.PeerWorkload, Namespace: w.ns, Name: w.name}] = &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: w.ns, Name: w.name, Labels: labels, NodeName: "node-a"}
	}
	return v
}

func (v *testView) PolicySet() *evaluator.PolicySet {
	if v.block != nil {
		<-v.block
	}
	if v.panics != nil {
		panic(v.panics)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	ps, err := evaluator.Compile(v.policies)
	if err != nil {
		panic(err)
	}
	return ps
}

// World is the same pointer until namespace labels change, as Live's is.
func (v *testView) World() *evaluator.World {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.world == nil || fmt.Sprint(v.world.NamespaceLabels) != fmt.Sprint(v.nsLabels) || fmt.Sprint(v.world.NodeLabels) != fmt.Sprint(v.nodeLabels) {
		labels := map[string]map[string]string{}
		for k, l := range v.nsLabels {
			labels[k] = l
		}
		v.world = &evaluator.World{NamespaceLabels: labels, NodeAddresses: map[string][]netip.Addr{"node-a": {netip.MustParseAddr("192.168.0.10")}}, NodeLabels: v.nodeLabels}
	}
	return v.world
}

func (v *testView) Endpoint(id flows.PeerID, stored *flows.PeerInfo) *evaluator.Endpoint {
	switch id.Kind {
	case flows.PeerWorkload:
		if ep, ok := v.pods[id]; ok {
			return ep
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if ep, ok := v.remembered[stored]; ok && stored != nil && ep.Namespace == id.Namespace && ep.Name == id.Name {
			return ep
		}
		ep := &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: id.Namespace, Name: id.Name}
		if stored != nil {
			ep.Labels = stored.Labels
			v.remembered[stored] = ep
		}
		return ep
	case flows.PeerNode:
		return &evaluator.Endpoint{Kind: evaluator.Node, NodeName: id.Name}
	default:
		return &evaluator.Endpoint{Kind: evaluator.External, IP: id.IP}
	}
}

func (v *testView) WorkloadsIn(ns string) []flows.PeerID {
	var out []flows.PeerID
	for id := range v.pods {
		if id.Namespace == ns {
			out = append(out, id)
		}
	}
	return out
}

func (v *testView) NamespaceLabels(ns string) map[string]string { return v.nsLabels[ns] }

func (v *testView) WebhookBackend(id flows.PeerID) (string, bool) {
	name, ok := v.webhooks[id]
	return name, ok
}

func wl(ns, name string) flows.PeerID {
	return flows.PeerID{Kind: flows.PeerWorkload, Namespace: ns, Name: name}
}

// observingSince gives the cache history back to since: a flow between workloads no test
// changes a policy of, seen then. History is what the cache's data covers.
func observingSince(c *flows.Cache, since time.Time) *flows.Cache {
	c.Add(flows.Observation{Src: wl("elsewhere", "Deployment/a"), Dst: wl("elsewhere", "Deployment/b"), Port: 80, Seen: since})
	return c
}

// shopCache holds the flows the shop carried: web → cart, checkout → cart, cart → DNS,
// probes from cart's own node, the CronJob → cart; the cache has been observing since since.
func shopCache(since time.Time) *flows.Cache {
	c := observingSince(flows.New(flows.Options{}), since)
	add := func(src, dst flows.PeerID, port int32, proto corev1.Protocol, ago time.Duration, count uint64) {
		c.Add(flows.Observation{Src: src, Dst: dst, Port: port, Protocol: proto, Seen: now.Add(-ago), Count: count})
	}
	add(wl("shop", "Deployment/web"), wl("shop", "Deployment/cart"), 8080, corev1.ProtocolTCP, 2*time.Minute, 5210)
	add(wl("shop", "Deployment/checkout"), wl("shop", "Deployment/cart"), 8080, corev1.ProtocolTCP, 5*time.Minute, 300)
	add(wl("shop", "Deployment/cart"), wl("kube-system", "Deployment/coredns"), 53, corev1.ProtocolUDP, time.Minute, 9000)
	add(flows.PeerID{Kind: flows.PeerNode, Name: "node-a"}, wl("shop", "Deployment/cart"), 8080, corev1.ProtocolTCP, 10*time.Second, 8000)
	add(wl("payments", "Deployment/api"), wl("shop", "Deployment/cart"), 8080, corev1.ProtocolTCP, time.Hour, 12)
	return c
}

func policy(name string, tweaks ...func(*networkingv1.NetworkPolicy)) *networkingv1.NetworkPolicy {
	p := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}}},
	}
	for _, t := range tweaks {
		t(p)
	}
	return p
}

func annotated(k, v string) func(*networkingv1.NetworkPolicy) {
	return func(p *networkingv1.NetworkPolicy) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
}

func allowFrom(app string) func(*networkingv1.NetworkPolicy) {
	return func(p *networkingv1.NetworkPolicy) {
		p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}},
		})
	}
}

func selectAll(p *networkingv1.NetworkPolicy) { p.Spec.PodSelector = metav1.LabelSelector{} }

func egressOnly(p *networkingv1.NetworkPolicy) {
	p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
}

func request(op admissionv1.Operation, old, new *networkingv1.NetworkPolicy, dryRun bool) admission.Request {
	raw := func(p *networkingv1.NetworkPolicy) runtime.RawExtension {
		if p == nil {
			return runtime.RawExtension{}
		}
		b, _ := json.Marshal(p)
		return runtime.RawExtension{Raw: b}
	}
	subject := new
	if subject == nil {
		subject = old
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid-1",
		Kind:      metav1.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"},
		Resource:  metav1.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
		Name:      subject.Name,
		Namespace: subject.Namespace,
		Operation: op,
		UserInfo:  authenticationv1.UserInfo{Username: "alice@example.com"},
		Object:    raw(new),
		OldObject: raw(old),
		DryRun:    &dryRun,
	}}
}

type fixture struct {
	guard    *Guard
	view     *testView
	recorder *events.FakeRecorder
	bypass   *fakeBypass
	metrics  *Metrics
}

// fakeBypass grants the bypass right to the users listed, and counts the questions.
type fakeBypass struct {
	mu      sync.Mutex
	allowed map[string]bool
	err     error
	asked   []string // "user namespace"
}

func (f *fakeBypass) MayBypass(_ context.Context, u authenticationv1.UserInfo, namespace string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, u.Username+" "+namespace)
	return f.allowed[u.Username], f.err
}

func newFixture(t *testing.T, mode Mode, cache *flows.Cache, policies ...*networkingv1.NetworkPolicy) fixture {
	t.Helper()
	return newFixtureWith(t, Options{Mode: mode, Cache: cache}, policies...)
}

// newFixtureWith fills in the view, recorder, bypass authorizer, metrics and clock of opts.
func newFixtureWith(t *testing.T, opts Options, policies ...*networkingv1.NetworkPolicy) fixture {
	t.Helper()
	log = testr.New(t)
	f := fixture{view: newTestView(policies...), recorder: events.NewFakeRecorder(10), bypass: &fakeBypass{}, metrics: NewMetrics(prometheus.NewRegistry())}
	opts.View, opts.Recorder, opts.Bypass, opts.Metrics, opts.Now = f.view, f.recorder, f.bypass, f.metrics, func() time.Time { return now }
	f.guard = NewGuard(opts)
	return f
}

func (f fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

var defaultDeny = policy("default-deny", selectAll)

func TestDecisionLogsThroughTheRequestLogger(t *testing.T) {
	// controller-runtime's webhook server hands each admission a logger naming its request;
	// the decision's lines must go there, not to a package logger without the request.
	var lines []string
	var mu sync.Mutex
	reqLog := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, prefix+" "+args)
	}, funcr.Options{}).WithValues("requestID", "req-42")
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	f.guard.Handle(logr.NewContext(t.Context(), reqLog), request(admissionv1.Create, nil, defaultDeny, false))
	mu.Lock()
	defer mu.Unlock()
	for _, l := range lines {
		if strings.Contains(l, "NetworkPolicy change would cut flows") && strings.Contains(l, `"requestID"="req-42"`) {
			return
		}
	}
	t.Errorf("no decision line through the request's logger; got %q", lines)
}

func TestEnforceRejectsACutNamingIt(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
	if resp.Allowed {
		t.Fatal("enforce admitted a default-deny that cuts live flows")
	}
	msg := resp.Result.Message
	lead := strings.SplitN(msg, "\n", 2)[0]
	// web → cart and checkout → cart, payments → cart: 3 cut; the probe from cart's own node is not.
	if lead != "would cut 3 active flows, e.g. shop/web → shop/cart TCP/8080 (last seen 2m ago)" {
		t.Errorf("lead line %q", lead)
	}
	for _, want := range []string{
		"create shop/default-deny (mode enforce, from the global --mode)",
		"1. shop/web → shop/cart TCP/8080, last seen 2m ago, 5210×; now ingress isolated by shop/default-deny and no rule allows it",
		"payments/api → shop/cart TCP/8080, last seen 1h ago",
		"Coverage: 48h of flow history, 5 edges considered, 0 flows unresolved; 1 selected workload never seen (CronJob/report).",
		"netpol-guard.io/allow-cut=\"<reason>\"",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "node/node-a") {
		t.Errorf("message reports a probe from the pod's own node:\n%s", msg)
	}
	if resp.AuditAnnotations["outcome"] != outcomeRejected || resp.AuditAnnotations["cut-flows"] != "3" {
		t.Errorf("audit annotations %v", resp.AuditAnnotations)
	}
	if ev := f.events(); len(ev) != 1 || !strings.Contains(ev[0], "CutRejected") {
		t.Errorf("events %v", ev)
	}
}

func TestEnforceListsAtMostMaxListed(t *testing.T) {
	c := observingSince(flows.New(flows.Options{}), now.Add(-48*time.Hour))
	for i := range 9 {
		c.Add(flows.Observation{Src: wl("payments", fmt.Sprintf("Deployment/client-%d", i)), Dst: wl("shop", "Deployment/cart"), Port: 8080, Seen: now.Add(-time.Duration(i) * time.Minute)})
	}
	f := newFixture(t, Enforce, c)
	msg := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false)).Result.Message
	if !strings.Contains(msg, "  5. ") || strings.Contains(msg, "  6. ") || !strings.Contains(msg, "… and 4 more.") {
		t.Errorf("message should list 5 of 9 and say 4 more:\n%s", msg)
	}
}

func TestWarnAdmitsWithShortWarnings(t *testing.T) {
	f := newFixture(t, Warn, shopCache(now.Add(-48*time.Hour)))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, policy("deny-egress", selectAll, egressOnly), false))
	if !resp.Allowed {
		t.Fatalf("warn rejected: %v", resp.Result)
	}
	if len(resp.Warnings) < 3 || len(resp.Warnings) > 5+2 {
		t.Fatalf("%d warnings: %q", len(resp.Warnings), resp.Warnings)
	}
	for _, w := range resp.Warnings {
		if n := len([]rune(w)); n > maxWarning {
			t.Errorf("warning of %d characters: %q", n, w)
		}
	}
	// The egress lock-down cuts DNS from cart: self-protection first, named.
	if !strings.HasPrefix(resp.Warnings[1], "cut DNS: shop/cart → kube-system/coredns UDP/53") {
		t.Errorf("warnings %q: DNS cut not named first", resp.Warnings)
	}
}

func TestWarningsStayWithinBudgetForManyCuts(t *testing.T) {
	c := flows.New(flows.Options{})
	for i := range 40 {
		c.Add(flows.Observation{Src: wl("payments", fmt.Sprintf("Deployment/a-very-long-client-name-that-goes-on-and-on-%d", i)), Dst: wl("shop", "Deployment/cart"), Port: 8080, Seen: now})
	}
	f := newFixture(t, Warn, c)
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
	if len(resp.Warnings) != 7 || !strings.HasSuffix(resp.Warnings[6], "36 more cut") {
		t.Errorf("%d warnings, want 7 ending in the count of the rest: %q", len(resp.Warnings), resp.Warnings)
	}
	for _, w := range resp.Warnings {
		if len([]rune(w)) > maxWarning {
			t.Errorf("warning of %d characters", len([]rune(w)))
		}
	}
}

func TestAuditAdmitsAndRecords(t *testing.T) {
	f := newFixture(t, Audit, shopCache(now.Add(-48*time.Hour)))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
	if !resp.Allowed || len(resp.Warnings) != 0 {
		t.Fatalf("audit: allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
	a := resp.AuditAnnotations
	if a["outcome"] != outcomeAudited || a["cut-flows"] != "3" || !strings.Contains(a["cut"], "shop/web → shop/cart TCP/8080") {
		t.Errorf("audit annotations %v", a)
	}
	if ev := f.events(); len(ev) != 1 || !strings.Contains(ev[0], "CutAudited") || !strings.Contains(ev[0], "would cut 3 active flows") {
		t.Errorf("events %v", ev)
	}
}

func TestDryRunGetsTheVerdictWithoutSideEffects(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	dry := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, true))
	wet := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
	if dry.Allowed || dry.Result.Message != wet.Result.Message {
		t.Errorf("dry run answered differently:\n%s\n---\n%s", dry.Result.Message, wet.Result.Message)
	}
	if ev := f.events(); len(ev) != 1 {
		t.Errorf("%d events for one real and one dry run: %v", len(ev), ev)
	}
}

func TestDeleteOfOneOfTwoAllowingPoliciesIsCaught(t *testing.T) {
	allowWeb := policy("allow-web", allowFrom("web"))
	allowCheckout := policy("allow-checkout", allowFrom("checkout"))
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)), allowWeb, allowCheckout)
	resp := f.guard.Handle(t.Context(), request(admissionv1.Delete, allowCheckout, nil, false))
	if resp.Allowed {
		t.Fatal("deleting allow-checkout cuts checkout → cart; admitted")
	}
	if !strings.HasPrefix(resp.Result.Message, "would cut 1 active flow, e.g. shop/checkout → shop/cart TCP/8080") ||
		!strings.Contains(resp.Result.Message, "was allowed by shop/allow-checkout ingress[0]") {
		t.Errorf("message:\n%s", resp.Result.Message)
	}
	// Deleting allow-web while allow-checkout stays cuts web → cart, not checkout → cart.
	resp = f.guard.Handle(t.Context(), request(admissionv1.Delete, allowWeb, nil, false))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "shop/web → shop/cart") || strings.Contains(resp.Result.Message, "checkout → shop/cart") {
		t.Errorf("deleting allow-web:\n%s", resp.Result.Message)
	}
}

func TestUpdateJudgesAgainstTheRequestsOldObject(t *testing.T) {
	old := policy("allow", allowFrom("web"), allowFrom("checkout"))
	narrowed := policy("allow", allowFrom("web"))
	// The informer has not seen the policy yet: the request's oldObject is the truth.
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Update, old, narrowed, false))
	if resp.Allowed || !strings.HasPrefix(resp.Result.Message, "would cut 1 active flow, e.g. shop/checkout → shop/cart") {
		t.Errorf("update narrowing the sources: %+v", resp.Result)
	}
}

func TestBypassAnnotationAdmitsAndRecordsWhoAndWhy(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	f.bypass.allowed = map[string]bool{"alice@example.com": true}
	p := policy("default-deny", selectAll, annotated(BypassAnnotation, "incident 4711: isolate cart"))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, p, false))
	if !resp.Allowed {
		t.Fatalf("bypass annotation did not admit: %v", resp.Result)
	}
	a := resp.AuditAnnotations
	if a["outcome"] != outcomeBypassed || a["bypass-reason"] != "incident 4711: isolate cart" || a["bypass-user"] != "alice@example.com" {
		t.Errorf("audit annotations %v", a)
	}
	if ev := f.events(); len(ev) != 1 || !strings.Contains(ev[0], "CutBypassed") || !strings.Contains(ev[0], "alice@example.com") || !strings.Contains(ev[0], "incident 4711") {
		t.Errorf("events %v", ev)
	}
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "admitted by netpol-guard.io/allow-cut") {
		t.Errorf("warnings %q", resp.Warnings)
	}
	if got := testutil.ToFloat64(f.metrics.Bypasses.WithLabelValues("allowed")); got != 1 {
		t.Errorf("bypasses allowed metric %v, want 1", got)
	}
}

func TestBypassNeedsTheBypassRight(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	p := policy("default-deny", selectAll, annotated(BypassAnnotation, "I can edit policies"))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, p, false))
	if resp.Allowed {
		t.Fatal("a user without the bypass right cut live flows with the bypass annotation")
	}
	msg := resp.Result.Message
	for _, want := range []string{"The policy carries netpol-guard.io/allow-cut, but alice@example.com may not bypass", `RBAC verb "bypass" on networkpolicies.netpol-guard.io in namespace shop`} {
		if !strings.Contains(msg, want) {
			t.Errorf("rejection does not say %q:\n%s", want, msg)
		}
	}
	if fmt.Sprint(f.bypass.asked) != "[alice@example.com shop]" {
		t.Errorf("bypass right asked %v, want once for alice in shop", f.bypass.asked)
	}
	if a := resp.AuditAnnotations; a["outcome"] != outcomeRejected || a["bypass"] != "denied: no bypass right" || a["bypass-user"] != "alice@example.com" {
		t.Errorf("audit annotations %v", a)
	}
	if ev := f.events(); len(ev) != 1 || !strings.Contains(ev[0], "CutRejected") || !strings.Contains(ev[0], "Bypass by alice@example.com refused") {
		t.Errorf("events %v", ev)
	}
	if got := testutil.ToFloat64(f.metrics.Bypasses.WithLabelValues("denied")); got != 1 {
		t.Errorf("bypasses denied metric %v, want 1", got)
	}
}

func TestBypassRightIsAskedOnlyForACutEnforceWouldReject(t *testing.T) {
	cutsNothing := policy("allow-all", allowFrom("web"), annotated(BypassAnnotation, "x"), func(p *networkingv1.NetworkPolicy) {
		p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
	})
	for name, tt := range map[string]struct {
		mode       Mode
		policy     *networkingv1.NetworkPolicy
		minHistory time.Duration
	}{
		"warn":                 {Warn, policy("default-deny", selectAll, annotated(BypassAnnotation, "x")), 0},
		"nothing cut":          {Enforce, cutsNothing, 0},
		"too little history":   {Enforce, policy("default-deny", selectAll, annotated(BypassAnnotation, "x")), 100 * time.Hour},
		"no bypass annotation": {Enforce, policy("default-deny", selectAll), 0},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixtureWith(t, Options{Mode: tt.mode, MinHistory: tt.minHistory, Cache: shopCache(now.Add(-48 * time.Hour))})
			f.guard.Handle(t.Context(), request(admissionv1.Create, nil, tt.policy, false))
			if len(f.bypass.asked) != 0 {
				t.Errorf("asked for the bypass right: %v", f.bypass.asked)
			}
		})
	}
}

func TestBypassWhoseRightCannotBeCheckedIsAdmittedAndRecorded(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	f.bypass.err = errors.New("connection refused")
	p := policy("default-deny", selectAll, annotated(BypassAnnotation, "incident 4711"))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, p, false))
	if !resp.Allowed || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "bypass right unchecked") {
		t.Fatalf("allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
	if a := resp.AuditAnnotations; a["outcome"] != outcomeBypassed || !strings.Contains(a["bypass"], "unverified: ") {
		t.Errorf("audit annotations %v", a)
	}
	if ev := f.events(); len(ev) != 1 || !strings.Contains(ev[0], "right unchecked") {
		t.Errorf("events %v", ev)
	}
}

func TestRejectionSuggestsTheBypassNotARelaxation(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	msg := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false)).Result.Message
	if strings.Contains(msg, ModeKey) {
		t.Errorf("rejection suggests changing the mode:\n%s", msg)
	}
	if !strings.Contains(msg, `annotate the policy netpol-guard.io/allow-cut="<reason>"`) || !strings.Contains(msg, "that needs the RBAC verb \"bypass\"") {
		t.Errorf("rejection does not explain the bypass and the right it needs:\n%s", msg)
	}
}

func TestModeOverrides(t *testing.T) {
	tests := []struct {
		name      string
		global    Mode
		relax     bool
		nsLabel   string
		policyAnn string
		allowed   bool
		warning   string // a warning that must be given; "" none at all
		relaxed   string // result of the relaxation metric, if one is counted
	}{
		{"namespace label makes the mode stricter", Warn, false, "enforce", "", false, "", ""},
		{"policy annotation makes the mode stricter", Audit, false, "warn", "enforce", false, "", ""},
		{"policy annotation cannot relax enforce", Enforce, false, "", "warn", false, "ignoring policy annotation netpol-guard.io/mode=warn: laxer than enforce", "ignored"},
		{"policy annotation cannot switch enforce off", Enforce, false, "", "off", false, "ignoring policy annotation netpol-guard.io/mode=off", "ignored"},
		{"namespace label cannot switch enforce off", Enforce, false, "off", "", false, "ignoring namespace label netpol-guard.io/mode=off", "ignored"},
		{"policy annotation cannot relax a namespace's enforce", Warn, false, "enforce", "audit", false, "ignoring policy annotation netpol-guard.io/mode=audit: laxer than enforce", "ignored"},
		{"with relaxation allowed the policy annotation relaxes", Enforce, true, "enforce", "warn", true, "would cut 3 active flows", "applied"},
		{"with relaxation allowed off skips evaluation", Enforce, true, "off", "", true, "mode off (namespace label): not evaluated", "applied"},
		{"global off skips evaluation silently", Off, false, "", "", true, "", ""},
		{"an invalid label falls back to the global mode and says so", Enforce, false, "strict", "", false, `ignoring namespace label netpol-guard.io/mode="strict"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixtureWith(t, Options{Mode: tt.global, AllowModeRelaxation: tt.relax, Cache: shopCache(now.Add(-48 * time.Hour))})
			if tt.nsLabel != "" {
				f.view.nsLabels["shop"] = map[string]string{ModeKey: tt.nsLabel}
			}
			p := policy("default-deny", selectAll)
			if tt.policyAnn != "" {
				p = policy("default-deny", selectAll, annotated(ModeKey, tt.policyAnn))
			}
			resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, p, false))
			if resp.Allowed != tt.allowed {
				t.Errorf("allowed %v, want %v: %v", resp.Allowed, tt.allowed, resp.Result)
			}
			if tt.warning == "" && len(resp.Warnings) > 0 || tt.warning != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), tt.warning) {
				t.Errorf("warnings %q, want one saying %q", resp.Warnings, tt.warning)
			}
			for _, result := range []string{"applied", "ignored"} {
				want := 0.0
				if result == tt.relaxed {
					want = 1
				}
				var got float64
				for _, source := range []modeSource{fromNamespace, fromPolicy} {
					got += testutil.ToFloat64(f.metrics.Relaxations.WithLabelValues(string(source), result))
				}
				if got != want {
					t.Errorf("relaxations %s: %v, want %v", result, got, want)
				}
			}
			if word := map[string]string{"applied": "applied ", "ignored": "ignoring "}[tt.relaxed]; !strings.HasPrefix(resp.AuditAnnotations["mode-relaxation"], word) {
				t.Errorf("audit annotations %v", resp.AuditAnnotations)
			}
			relaxedEvent := slices.ContainsFunc(f.events(), func(e string) bool { return strings.Contains(e, "ModeRelaxed") })
			if relaxedEvent != (tt.relaxed == "applied") {
				t.Errorf("ModeRelaxed event %v, want %v", relaxedEvent, tt.relaxed == "applied")
			}
		})
	}
}

func TestPolicyAnnotationCannotSwitchEnforceOff(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	p := policy("default-deny", selectAll, annotated(ModeKey, string(Off)))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, p, false))
	if resp.Allowed {
		t.Fatalf("%s=off on the policy switched enforce off: %v", ModeKey, resp.Result)
	}
	if !strings.Contains(resp.Result.Message, "mode enforce, from the global --mode") {
		t.Errorf("rejection:\n%s", resp.Result.Message)
	}
}

func TestRelaxationsAreNotRecordedOnDryRuns(t *testing.T) {
	f := newFixtureWith(t, Options{Mode: Enforce, AllowModeRelaxation: true, Cache: shopCache(now.Add(-48 * time.Hour))})
	p := policy("default-deny", selectAll, annotated(ModeKey, string(Off)))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, p, true))
	if !resp.Allowed {
		t.Fatalf("allowed relaxation to off rejected: %v", resp.Result)
	}
	if ev := f.events(); len(ev) != 0 {
		t.Errorf("dry run recorded events %v", ev)
	}
	if got := testutil.ToFloat64(f.metrics.Relaxations.WithLabelValues(string(fromPolicy), "applied")); got != 0 {
		t.Errorf("dry run counted a relaxation: %v", got)
	}
}

func TestPolicyThatCutsNothingIsAdmittedSilently(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	p := policy("allow-shop", allowFrom("web"), allowFrom("checkout"), func(p *networkingv1.NetworkPolicy) {
		p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}})
	})
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, p, false))
	if !resp.Allowed || len(resp.Warnings) != 0 || len(resp.AuditAnnotations) != 0 {
		t.Errorf("allowed %v, warnings %q, annotations %v", resp.Allowed, resp.Warnings, resp.AuditAnnotations)
	}
	if ev := f.events(); len(ev) != 0 {
		t.Errorf("events %v", ev)
	}
}

func TestTooLittleHistoryDegradesEnforceToAWarning(t *testing.T) {
	// History is what the cache holds, whenever the process started: flows of the last 12
	// minutes, pushed as a backlog or observed live, are 12 minutes of history.
	c := flows.New(flows.Options{})
	c.Add(flows.Observation{Src: wl("shop", "Deployment/web"), Dst: wl("shop", "Deployment/cart"), Port: 8080, Seen: now.Add(-12 * time.Minute)},
		flows.Observation{Src: wl("shop", "Deployment/cart"), Dst: wl("kube-system", "Deployment/coredns"), Port: 53, Protocol: corev1.ProtocolUDP, Seen: now.Add(-time.Minute)})
	f := newFixture(t, Enforce, c)
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
	if !resp.Allowed {
		t.Fatal("enforce rejected on 12m of history")
	}
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "enforce degraded to warn: 12m of history < 1h") {
		t.Errorf("warnings %q", resp.Warnings)
	}
}

func TestSelfProtectionIsNamed(t *testing.T) {
	c := shopCache(now.Add(-48 * time.Hour))
	c.Add(flows.Observation{Src: flows.PeerID{Kind: flows.PeerNode, Name: "node-b"}, Dst: wl("shop", "Deployment/checkout"), Port: 30080, Seen: now})
	f := newFixture(t, Enforce, c)
	f.view.webhooks[wl("shop", "Deployment/checkout")] = "validate.checkout.example.com"
	c.Add(flows.Observation{Src: flows.PeerID{Kind: flows.PeerExternal, IP: netip.MustParseAddr("10.96.0.1")}, Dst: wl("shop", "Deployment/checkout"), Port: 9443, Seen: now})
	p := policy("lockdown", selectAll, func(p *networkingv1.NetworkPolicy) {
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	})
	msg := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, p, false)).Result.Message
	for _, want := range []string{"DNS", "traffic from node node-b (load-balancer health checks, NodePort)", "the API server's path to admission webhook validate.checkout.example.com"} {
		if !strings.Contains(msg, "This change cuts") || !strings.Contains(msg, want) {
			t.Errorf("message does not name %q:\n%s", want, msg)
		}
	}
}

func TestEvaluationThatCannotFinishInTimeAdmitsWithAWarning(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	f.view.block = make(chan struct{})
	defer close(f.view.block)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	resp := f.guard.Handle(ctx, request(admissionv1.Create, nil, defaultDeny, false))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "did not finish within") {
		t.Errorf("allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
}

func TestEvaluationThatPanicsAdmitsWithAWarning(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	f.view.panics = "index out of range"
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "could not evaluate this change (evaluation failed: index out of range)") {
		t.Errorf("allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
	if got := testutil.ToFloat64(f.metrics.Requests.WithLabelValues("CREATE", "enforce", outcomeError)); got != 1 {
		t.Errorf("error outcomes %v, want 1", got)
	}
}

func TestEvaluationsPastTheCapAreAdmittedBusy(t *testing.T) {
	f := newFixtureWith(t, Options{Mode: Enforce, MaxInFlight: 1, Budget: 20 * time.Millisecond, Cache: shopCache(now.Add(-48 * time.Hour))})
	f.view.block = make(chan struct{})
	// The first evaluation blocks past its budget and keeps its token: the cap counts
	// evaluations, not requests.
	if resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false)); !strings.Contains(strings.Join(resp.Warnings, ""), "did not finish within") {
		t.Fatalf("first: warnings %q", resp.Warnings)
	}
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "netpol-guard: too busy (1 evaluations in flight); create shop/default-deny admitted unchecked") {
		t.Errorf("allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
	if got := testutil.ToFloat64(f.metrics.Requests.WithLabelValues("CREATE", "enforce", outcomeBusy)); got != 1 {
		t.Errorf("busy outcomes %v, want 1", got)
	}
	close(f.view.block)
	// Once the first evaluation ends its token is back and the next is judged.
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.guard.opts.Budget = 10 * time.Second
		resp = f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
		if !resp.Allowed || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp.Allowed {
		t.Errorf("after the blocked evaluation ended: allowed, warnings %q", resp.Warnings)
	}
}

func TestBadReviewsGetProperAnswers(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	garbage := request(admissionv1.Create, nil, defaultDeny, false)
	garbage.Object.Raw = []byte(`{"spec": {"podSelector": "everything"}}`)
	noOld := request(admissionv1.Delete, defaultDeny, nil, false)
	noOld.OldObject.Raw = nil
	connect := request(admissionv1.Create, nil, defaultDeny, false)
	connect.Operation = admissionv1.Connect
	configMap := request(admissionv1.Create, nil, defaultDeny, false)
	configMap.Kind = metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

	for name, tt := range map[string]struct {
		req     admission.Request
		allowed bool
		code    int32
		msg     string
	}{
		"object that is not a NetworkPolicy": {garbage, false, 400, "object: decoding NetworkPolicy"},
		"delete without oldObject":           {noOld, false, 400, "oldObject: missing in a DELETE request"},
		"operation it does not judge":        {connect, false, 400, `operation "CONNECT"`},
		"another kind":                       {configMap, true, 200, "only judges NetworkPolicies"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := f.guard.Handle(t.Context(), tt.req)
			if resp.Allowed != tt.allowed || resp.Result == nil || resp.Result.Code != tt.code || !strings.Contains(resp.Result.Message, tt.msg) {
				t.Errorf("response %+v", resp.AdmissionResponse)
			}
		})
	}
}

func TestAFixIsLeftToTheCLIWhenAChangeCutsTooMuch(t *testing.T) {
	// Working out a fix for thousands of cuts would spend the budget the decision needs:
	// the answer says where to get one instead, and the decision is still made.
	c := observingSince(flows.New(flows.Options{}), now.Add(-48*time.Hour))
	for i := range maxFixCuts + 44 {
		c.Add(flows.Observation{Src: wl("payments", fmt.Sprintf("Deployment/client-%d", i)), Dst: wl("shop", "Deployment/cart"), Port: 8080, Seen: now})
	}
	f := newFixture(t, Enforce, c)
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
	if resp.Allowed {
		t.Fatal("enforce admitted a change that cuts 300 flows")
	}
	if want := fmt.Sprintf("Fix: too many cut flows (%d) to work one out here; netpol-guard check --suggest writes it", maxFixCuts+44); !strings.Contains(resp.Result.Message, want) {
		t.Errorf("message lacks %q:\n%s", want, resp.Result.Message)
	}
}
