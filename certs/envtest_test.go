package certs

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// One control plane for the package's tests, started by the first test that needs it and
// stopped by TestMain.
var (
	envOnce   sync.Once
	env       *envtest.Environment
	envConfig *rest.Config
	envClient kubernetes.Interface
	envErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}
	os.Exit(code)
}

// apiServer returns a client of the real kube-apiserver and etcd that e2e/tools/build.sh
// builds. Without KUBEBUILDER_ASSETS the test is skipped, except in CI where it fails.
func apiServer(t *testing.T) kubernetes.Interface {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KUBEBUILDER_ASSETS is not set in CI: scripts/test.sh builds the control plane and sets it")
		}
		t.Skip(`needs a kube-apiserver and etcd; run: export KUBEBUILDER_ASSETS="$(e2e/tools/build.sh)"`)
	}
	envOnce.Do(func() {
		env = &envtest.Environment{BinaryAssetsDirectory: dir}
		cfg, err := env.Start()
		if err != nil {
			envErr = fmt.Errorf("starting envtest with assets in %s: %w", dir, err)
			env = nil
			return
		}
		envConfig = cfg
		envClient, envErr = kubernetes.NewForConfig(cfg)
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	return envClient
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "certs-" + rand.String(6)}}
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// newWebhookConfig registers a ValidatingWebhookConfiguration with two webhooks, both with an
// empty caBundle, that the API server never calls: their namespaceSelector matches nothing
// and failures are ignored.
func newWebhookConfig(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	hook := func(name string) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:                    name,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:9/x")},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
				"netpol-guard.io/certs-test-never": "true",
			}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{networkingv1.GroupName},
					APIVersions: []string{"v1"},
					Resources:   []string{"networkpolicies"},
				},
			}},
		}
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "netpol-guard-" + rand.String(6)},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{hook("a.netpol-guard.io"), hook("b.netpol-guard.io")},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(t.Context(), vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is already done when cleanups run.
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), vwc.Name, metav1.DeleteOptions{})
	})
	return vwc.Name
}

// chartRBAC is what the chart grants the webhook's ServiceAccount for --self-signed: the
// Secret by name (create cannot be limited by name), and the webhook configuration by name.
func chartRBAC(secret, webhookConfig string) (namespaced, cluster []rbacv1.PolicyRule) {
	namespaced = []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{secret}, Verbs: []string{"get", "update"}},
	}
	cluster = []rbacv1.PolicyRule{{
		APIGroups:     []string{admissionregistrationv1.GroupName},
		Resources:     []string{"validatingwebhookconfigurations"},
		ResourceNames: []string{webhookConfig},
		Verbs:         []string{"get", "patch", "watch"},
	}}
	return namespaced, cluster
}

// clientWithChartRBAC returns a client of a user that holds only chartRBAC.
func clientWithChartRBAC(t *testing.T, cs kubernetes.Interface, ns, secret, webhookConfig string) kubernetes.Interface {
	t.Helper()
	name := "netpol-guard-" + ns
	user, err := env.AddUser(envtest.User{Name: name}, envConfig)
	if err != nil {
		t.Fatal(err)
	}
	namespaced, cluster := chartRBAC(secret, webhookConfig)
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}
	ctx := t.Context()
	rbac := cs.RbacV1()
	if _, err := rbac.Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: namespaced}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: cluster}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rbac.ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	restricted, err := kubernetes.NewForConfig(user.Config())
	if err != nil {
		t.Fatal(err)
	}
	return restricted
}
