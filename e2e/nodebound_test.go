package e2e

import (
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/flows"
)

// testNodeBoundPush: the API server binds a ServiceAccount token requested for a pod to
// the pod's node (the authentication.kubernetes.io/node-name extra of its TokenReview), and
// a webhook listing the agent in --flow-writers takes from it only flows with one end on
// that node.
func testNodeBoundPush(t *testing.T, cp *harness.ControlPlane) {
	ctx := t.Context()
	const ns = "e2e-nodebound"
	nodeA, nodeB := "e2e-nodebound-a", "e2e-nodebound-b"
	for i, name := range []string{nodeA, nodeB} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: []string{"172.30.0.1", "172.30.0.2"}[i]}},
		}}
		if err := cp.CreateNode(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	if err := cp.EnsureNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	web := harness.DeploymentPod(ns, "web", "5f6d7c8b9", "a1b2c", map[string]string{"app": "web"}, nodeA, "10.244.40.10")
	db := harness.DeploymentPod(ns, "db", "6c7d8e9f5", "d3e4f", map[string]string{"app": "db"}, nodeB, "10.244.40.11")
	for _, p := range []*corev1.Pod{web, db} {
		if err := cp.CreatePod(ctx, p, ""); err != nil {
			t.Fatal(err)
		}
	}

	// The agent's pod on node A, and a token bound to it.
	if _, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, harness.AgentAccount); err != nil {
		t.Fatal(err) // creates the ServiceAccount
	}
	agent := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: harness.GuardNamespace, Name: "agent-" + nodeA},
		Spec: corev1.PodSpec{
			NodeName: nodeA, ServiceAccountName: harness.AgentAccount, AutomountServiceAccountToken: new(false),
			HostNetwork: true, Containers: []corev1.Container{{Name: "agent", Image: "registry.example.com/agent:1"}},
		},
	}
	if err := cp.CreatePod(ctx, agent, "172.30.0.1"); err != nil {
		t.Fatal(err)
	}
	created, err := cp.Clientset.CoreV1().Pods(harness.GuardNamespace).Get(ctx, agent.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hour := int64(3600)
	tr, err := cp.Clientset.CoreV1().ServiceAccounts(harness.GuardNamespace).CreateToken(ctx, harness.AgentAccount, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &hour,
		Audiences:         []string{harness.TokenAudience},
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: created.Name, UID: created.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := tr.Status.Token
	review, err := cp.Clientset.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{harness.TokenAudience}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := review.Status.User.Extra[flowapi.NodeNameExtra]; len(got) != 1 || got[0] != nodeA {
		t.Fatalf("TokenReview of a token bound to a pod on %s: extra %v, want %s=[%s]", nodeA, review.Status.User.Extra, flowapi.NodeNameExtra, nodeA)
	}

	wh, err := harness.StartWebhook(ctx, cp, harness.WebhookOptions{Name: "netpol-guard-nodebound", FlowWriters: []string{harness.AgentUser}, AnyNodeWriters: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of webhook %s ---\n%s", wh.Name, wh.Logs())
		}
	})
	recs := []flows.Record{
		{Src: flows.Peer{IP: "10.244.40.10"}, Dst: flows.Peer{IP: "10.244.40.11"}, Port: 5432},                          // web on A → db on B: taken
		{Src: flows.Peer{IP: "172.30.0.1"}, Dst: flows.Peer{IP: "10.244.40.10"}, Port: 8080},                            // node A → web: taken
		{Src: flows.Peer{IP: "172.30.0.2"}, Dst: flows.Peer{IP: "10.244.40.11"}, Port: 5432},                            // node B → db on B: rejected
		{Src: flows.Peer{Namespace: ns, Workload: "Deployment/made-up"}, Dst: flows.Peer{IP: "10.244.40.11"}, Port: 22}, // rejected
	}
	body, err := harness.EncodeFlows(recs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := wh.PushFlows(ctx, token, body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.Accepted != 2 || res.Rejected != 2 || res.Unresolved != 0 {
		t.Errorf("push with a token bound to %s: %d %s; want 200 with 2 accepted, 2 rejected", nodeA, res.Status, res.Body)
	}

	// The same ServiceAccount's token bound to no node is refused by this webhook.
	unbound, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, harness.AgentAccount)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := wh.PushFlows(ctx, unbound, body); err != nil || res.Status != 403 {
		t.Errorf("push with an unbound token: %d %s, %v; want 403", res.Status, res.Body, err)
	}
}
