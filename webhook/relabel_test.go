package webhook

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// relabelRequest is an UPDATE of obj from old, as the API server sends it.
func relabelRequest(group, kind string, old, new client.Object) admission.Request {
	raw := func(o client.Object) runtime.RawExtension {
		b, _ := json.Marshal(o)
		return runtime.RawExtension{Raw: b}
	}
	dryRun := false
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid-2",
		Kind:      metav1.GroupVersionKind{Group: group, Version: "v1", Kind: kind},
		Name:      new.GetName(),
		Namespace: new.GetNamespace(),
		Operation: admissionv1.Update,
		UserInfo:  authenticationv1.UserInfo{Username: "bob@example.com"},
		Object:    raw(new),
		OldObject: raw(old),
		DryRun:    &dryRun,
	}}
}

func deployment(name string, labels map[string]string, annotations map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Annotations: annotations},
		Spec:       appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}}},
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func pod(name string, labels map[string]string, owners ...metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: labels, OwnerReferences: owners}}
}

func cronJob(name string, labels map[string]string) *batchv1.CronJob {
	c := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}}
	c.Spec.JobTemplate.Spec.Template.Labels = labels
	return c
}

func allowFromNamespace(key, value string) func(*networkingv1.NetworkPolicy) {
	return func(p *networkingv1.NetworkPolicy) {
		p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{key: value}}}},
		})
	}
}

func TestRelabels(t *testing.T) {
	controller := true
	app := func(v string, more ...string) map[string]string {
		l := map[string]string{"app": v}
		for i := 0; i+1 < len(more); i += 2 {
			l[more[i]] = more[i+1]
		}
		return l
	}
	allowWeb := policy("allow-web", allowFrom("web"))
	denyPaid := policy("deny-paid", func(p *networkingv1.NetworkPolicy) {
		p.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"tier": "paid"}}
	})
	for _, tc := range []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		req      admission.Request
		// wantLead is the rejection's first line; empty: admitted silently.
		wantLead string
		wantMsg  []string
	}{{
		name:     "template relabel that keeps the allowing label cuts nothing",
		policies: []*networkingv1.NetworkPolicy{allowWeb},
		req:      relabelRequest("apps", "Deployment", deployment("web", app("web"), nil), deployment("web", app("web", "version", "v2"), nil)),
	}, {
		name:     "template relabel escapes an allow and meets a default-deny",
		policies: []*networkingv1.NetworkPolicy{allowWeb},
		req:      relabelRequest("apps", "Deployment", deployment("web", app("web"), nil), deployment("web", app("web-v2"), nil)),
		wantLead: "relabel Deployment shop/web would cut 1 active flow, e.g. shop/web → shop/cart TCP/8080 (last seen 2m ago)",
		wantMsg: []string{
			"Cut by relabel Deployment shop/web (mode enforce, from the global --mode)",
			"was allowed by shop/allow-web ingress[0]; now ingress isolated by shop/allow-web and no rule allows it",
			"annotate the Deployment netpol-guard.io/allow-cut=",
		},
	}, {
		name:     "template relabel into a policy's selection isolates and cuts",
		policies: []*networkingv1.NetworkPolicy{denyPaid},
		req:      relabelRequest("apps", "Deployment", deployment("cart", app("cart"), nil), deployment("cart", app("cart", "tier", "paid"), nil)),
		// web, checkout, debug, report and payments/api → cart; the probe from cart's own
		// node is not cut, nor cart's egress to DNS.
		wantLead: "relabel Deployment shop/cart would cut 5 active flows, e.g. shop/debug → shop/cart TCP/8080 (last seen 1m ago)",
		wantMsg:  []string{"now ingress isolated by shop/deny-paid and no rule allows it"},
	}, {
		name:     "namespace relabel breaks a cross-namespace allow",
		policies: []*networkingv1.NetworkPolicy{policy("allow-payments", allowFromNamespace("team", "payments"))},
		req:      relabelRequest("", "Namespace", namespace("payments", map[string]string{"team": "payments"}), namespace("payments", map[string]string{"team": "billing"})),
		wantLead: "relabel Namespace payments would cut 1 active flow, e.g. payments/api → shop/cart TCP/8080 (last seen 1h ago)",
		wantMsg:  []string{"Coverage: 48h of flow history, 1 edge considered"},
	}, {
		name:     "namespace relabel no selector reads cuts nothing",
		policies: []*networkingv1.NetworkPolicy{policy("allow-payments", allowFromNamespace("team", "payments"))},
		req:      relabelRequest("", "Namespace", namespace("payments", map[string]string{"team": "payments"}), namespace("payments", map[string]string{"team": "payments", "cost": "42"})),
	}, {
		name:     "pod relabel of a bare pod, its own workload, is cut",
		policies: []*networkingv1.NetworkPolicy{allowWeb},
		req:      relabelRequest("", "Pod", pod("debug", app("web")), pod("debug", app("debug"))),
		wantLead: "relabel Pod shop/debug would cut 1 active flow, e.g. shop/debug → shop/cart TCP/8080 (last seen 1m ago)",
	}, {
		name:     "pod relabel of a Deployment's pod judges the Deployment's flows as that pod",
		policies: []*networkingv1.NetworkPolicy{allowWeb},
		req: relabelRequest("", "Pod",
			pod("web-5c8d-x1", app("web", "pod-template-hash", "5c8d"), metav1.OwnerReference{Kind: "ReplicaSet", Name: "web-5c8d", Controller: &controller}),
			pod("web-5c8d-x1", app("canary", "pod-template-hash", "5c8d"), metav1.OwnerReference{Kind: "ReplicaSet", Name: "web-5c8d", Controller: &controller})),
		wantLead: "relabel Pod shop/web-5c8d-x1 would cut 1 active flow, e.g. shop/web → shop/cart TCP/8080 (last seen 2m ago)",
	}, {
		name:     "CronJob job template relabel judges the CronJob's flows",
		policies: []*networkingv1.NetworkPolicy{policy("allow-report", allowFrom("report"))},
		req:      relabelRequest("batch", "CronJob", cronJob("report", app("report")), cronJob("report", app("reporting"))),
		wantLead: "relabel CronJob shop/report would cut 1 active flow, e.g. shop/report → shop/cart TCP/8080 (last seen 20m ago)",
	}, {
		name:     "bypass annotation on the relabelled object admits the cut",
		policies: []*networkingv1.NetworkPolicy{allowWeb},
		req: relabelRequest("apps", "Deployment", deployment("web", app("web"), nil),
			deployment("web", app("web-v2"), map[string]string{BypassAnnotation: "INC-7: web is retired"})),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := shopCache(now.Add(-48 * time.Hour))
			c.Add(flows.Observation{Src: wl("shop", "Pod/debug"), Dst: wl("shop", "Deployment/cart"), Port: 8080, Protocol: corev1.ProtocolTCP, Seen: now.Add(-time.Minute)},
				flows.Observation{Src: wl("shop", "CronJob/report"), Dst: wl("shop", "Deployment/cart"), Port: 8080, Protocol: corev1.ProtocolTCP, Seen: now.Add(-20 * time.Minute)})
			f := newFixture(t, Enforce, c, tc.policies...)
			f.view.pods[wl("shop", "Pod/debug")] = &evaluator.Endpoint{Kind: evaluator.Pod, Namespace: "shop", Name: "Pod/debug", Labels: map[string]string{"app": "web"}, NodeName: "node-a"}
			f.view.nsLabels["payments"] = map[string]string{"team": "payments"}
			if strings.Contains(tc.name, "bypass") {
				f.bypass.allowed = map[string]bool{tc.req.UserInfo.Username: true} // the editor holds the bypass right
			}
			resp := f.guard.Relabels().Handle(t.Context(), tc.req)
			if tc.wantLead == "" {
				if !resp.Allowed {
					t.Fatalf("rejected: %s", resp.Result.Message)
				}
				bypassed := strings.Contains(tc.name, "bypass")
				if bypassed != (resp.AuditAnnotations["outcome"] == outcomeBypassed) || (!bypassed && len(resp.Warnings) > 0) {
					t.Errorf("outcome %q, warnings %q", resp.AuditAnnotations["outcome"], resp.Warnings)
				}
				if want := []string{tc.req.UserInfo.Username + " shop"}; bypassed && !slices.Equal(f.bypass.asked, want) {
					t.Errorf("bypass right asked as %q, want %q: the right is checked in the relabelled object's namespace", f.bypass.asked, want)
				}
				return
			}
			if resp.Allowed {
				t.Fatalf("admitted a relabel that cuts; warnings %q", resp.Warnings)
			}
			msg := resp.Result.Message
			if lead := strings.SplitN(msg, "\n", 2)[0]; lead != tc.wantLead {
				t.Errorf("lead line %q, want %q", lead, tc.wantLead)
			}
			for _, w := range tc.wantMsg {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestNodeRelabels(t *testing.T) {
	node := func(labels map[string]string, annotations map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-2", Labels: labels, Annotations: annotations}}
	}
	worker, infra := map[string]string{"role": "worker"}, map[string]string{"role": "infra"}
	toNodes := func(action v1beta1.ClusterNetworkPolicyRuleAction, sel map[string]string) func(*v1beta1.ClusterNetworkPolicy) {
		return func(p *v1beta1.ClusterNetworkPolicy) {
			p.Spec.Egress = append(p.Spec.Egress, v1beta1.ClusterNetworkPolicyEgressRule{Action: action,
				To: []v1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: &metav1.LabelSelector{MatchLabels: sel}}}})
		}
	}
	baseline := func(p *v1beta1.ClusterNetworkPolicy) { p.Spec.Tier = v1beta1.BaselineTier }
	// shop's pods may reach the workers' kubelets, and no other node.
	workersOnly := []*v1beta1.ClusterNetworkPolicy{
		cnp("to-workers", toNodes(v1beta1.ClusterNetworkPolicyRuleActionAccept, map[string]string{"role": "worker"})),
		cnp("no-nodes", baseline, toNodes(v1beta1.ClusterNetworkPolicyRuleActionDeny, nil)),
	}
	for _, tc := range []struct {
		name string
		cnps []*v1beta1.ClusterNetworkPolicy
		req  admission.Request
		// wantLead is the rejection's first line; empty: admitted.
		wantLead string
		// wantSkip: admitted without evaluating.
		wantSkip bool
	}{{
		name:     "node relabelled out of an Admin accept above a Baseline deny is cut",
		cnps:     workersOnly,
		req:      relabelRequest("", "Node", node(worker, nil), node(infra, nil)),
		wantLead: "relabel Node worker-2 would cut 1 active flow, e.g. shop/web → node/worker-2 TCP/10250 (last seen 3m ago)",
	}, {
		name: "node relabel the nodes peer does not read cuts nothing",
		cnps: workersOnly,
		req:  relabelRequest("", "Node", node(worker, nil), node(map[string]string{"role": "worker", "zone": "b"}, nil)),
	}, {
		name: "bypass annotation on the node admits the cut",
		cnps: workersOnly,
		req:  relabelRequest("", "Node", node(worker, nil), node(infra, map[string]string{BypassAnnotation: "INC-9: worker-2 drained"})),
	}, {
		name:     "without nodes peers a node relabel is not evaluated",
		cnps:     []*v1beta1.ClusterNetworkPolicy{cnp("lockdown", cnpIngress(v1beta1.ClusterNetworkPolicyRuleActionDeny, ""))},
		req:      relabelRequest("", "Node", node(worker, nil), node(infra, nil)),
		wantSkip: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := shopCache(now.Add(-48 * time.Hour))
			c.Add(flows.Observation{Src: wl("shop", "Deployment/web"), Dst: flows.PeerID{Kind: flows.PeerNode, Name: "worker-2"}, Port: 10250, Protocol: corev1.ProtocolTCP, Seen: now.Add(-3 * time.Minute)})
			f := newClusterFixture(t, Enforce, c, tc.cnps)
			f.view.nodeLabels = map[string]map[string]string{"node-a": worker, "worker-2": worker}
			if strings.Contains(tc.name, "bypass") {
				f.guard.opts.Bypass = &fakeBypass{allowed: map[string]bool{tc.req.UserInfo.Username: true}}
			}
			resp := f.guard.Relabels().Handle(t.Context(), tc.req)
			if tc.wantLead == "" {
				if !resp.Allowed {
					t.Fatalf("rejected: %s", resp.Result.Message)
				}
				skipped := strings.Contains(resp.Result.Message, "not evaluated")
				if skipped != tc.wantSkip {
					t.Errorf("admitted as %q; want evaluated %v", resp.Result.Message, !tc.wantSkip)
				}
				if bypassed := strings.Contains(tc.name, "bypass"); bypassed != (resp.AuditAnnotations["outcome"] == outcomeBypassed) {
					t.Errorf("outcome %q, want bypassed %v", resp.AuditAnnotations["outcome"], bypassed)
				}
				return
			}
			if resp.Allowed {
				t.Fatalf("admitted a node relabel that cuts; warnings %q", resp.Warnings)
			}
			if lead := strings.SplitN(resp.Result.Message, "\n", 2)[0]; lead != tc.wantLead {
				t.Errorf("lead line %q, want %q", lead, tc.wantLead)
			}
			if !strings.Contains(resp.Result.Message, "annotate the Node netpol-guard.io/allow-cut=") {
				t.Errorf("message lacks the Node's bypass hint:\n%s", resp.Result.Message)
			}
		})
	}
}

func TestRelabelWithoutLabelChangeOrOfAnotherKindIsNotJudged(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)), defaultDeny)
	same := deployment("web", map[string]string{"app": "web"}, nil)
	if resp := f.guard.Relabels().Handle(t.Context(), relabelRequest("apps", "Deployment", same, same)); !resp.Allowed {
		t.Errorf("an update that changes no labels was rejected: %s", resp.Result.Message)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	if resp := f.guard.Relabels().Handle(t.Context(), relabelRequest("", "Service", svc, svc)); resp.Allowed || resp.Result.Code != 400 {
		t.Errorf("a Service: allowed %v, code %d; want a 400", resp.Allowed, resp.Result.Code)
	}
}
