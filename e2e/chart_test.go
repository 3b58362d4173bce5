package e2e

// Tests of the Helm chart (charts/netpol-guard): helm itself (built from Go module sources
// by e2e/helmtool/build.sh) lints and renders the chart for the default values and every
// ci/*-values.yaml; the rendered manifests are decoded strictly into the Kubernetes API
// types and checked against what the netpol-guard binary expects; then every rendered
// object is server-side applied to a real kube-apiserver, with cert-manager's and the
// Prometheus Operator's CRDs installed from their Go modules. TestChartPods
// (chartpods_test.go) runs the pods they render.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/netpol-guard/netpol-guard/webhook"
)

const (
	chartDir = "../charts/netpol-guard"

	// Where the CRDs the chart's custom resources need come from (Go modules, so that no
	// download site is needed). cert-manager's deploy/crds holds plain controller-gen
	// CRDs; the Prometheus Operator's example/prometheus-operator-crd likewise.
	certManagerModule  = "github.com/cert-manager/cert-manager@v1.21.2"
	certManagerCRDs    = "deploy/crds"
	promOperatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
	serviceMonitorCRD  = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"

	// What the binary serves (server.Options' defaults); the chart must agree. The
	// admission path is webhook.ValidatePath.
	webhookPort = 9443
	probePort   = 8081
)

// requireHelm returns the helm binary named by $HELM (scripts/test.sh sets it from
// e2e/helmtool/build.sh), or skips with a hint; in CI a missing helm fails.
func requireHelm(t *testing.T) string {
	t.Helper()
	helm := os.Getenv("HELM")
	if helm == "" && os.Getenv("CI") != "" {
		t.Fatal("HELM is not set in CI: scripts/test.sh builds helm (e2e/helmtool/build.sh) and sets it")
	}
	if helm == "" {
		t.Skip(`HELM is not set; run: export HELM="$(bash e2e/helmtool/build.sh)"`)
	}
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("HELM=%s: %v", helm, err)
	}
	return helm
}

// A values set the chart is rendered with: the defaults, or one ci/*-values.yaml, each
// as its own release in its own namespace (so cluster-scoped names do not collide).
type valuesSet struct {
	name      string // "default" or the file's base name without -values.yaml
	file      string // "" for the defaults
	release   string
	namespace string
}

func valuesSets(t *testing.T) []valuesSet {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 7 {
		t.Fatalf("want the chart's ci/*-values.yaml (cert-manager, self-signed, existing-secret, single-replica, agent-on/off, pvc-snapshot, flow-sources), found %v", files)
	}
	sets := []valuesSet{{name: "default", release: "netpol-guard", namespace: "netpol-guard"}}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), "-values.yaml")
		sets = append(sets, valuesSet{name: name, file: f, release: name, namespace: "ng-" + name})
	}
	return sets
}

// helmRun runs helm and returns its stdout, or its combined output as the error.
func helmRun(t *testing.T, helm string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), helm, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// No repositories, plugins or caches from the user's environment.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func templateArgs(vs valuesSet, extra ...string) []string {
	args := []string{"template", vs.release, chartDir, "--namespace", vs.namespace}
	if vs.file != "" {
		args = append(args, "--values", vs.file)
	}
	return append(args, extra...)
}

// manifest is one rendered chart: typed objects for the built-in kinds, unstructured ones
// for custom resources.
type manifest struct {
	valuesSet
	objects []runtime.Object
}

func render(t *testing.T, helm string, vs valuesSet, extra ...string) manifest {
	t.Helper()
	out, err := helmRun(t, helm, templateArgs(vs, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeStrict(out)
	if err != nil {
		t.Fatalf("values %s: %v", vs.name, err)
	}
	return manifest{valuesSet: vs, objects: objs}
}

// decodeStrict decodes a multi-document YAML stream. A kind the client-go scheme knows is
// decoded into its Go type, failing on any field the type does not have (and on duplicate
// keys); other kinds (cert-manager, Prometheus Operator) become Unstructured, checked
// against their CRD schemas by the API server in TestChartOnControlPlane.
func decodeStrict(stream string) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	var objs []runtime.Object
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading document %d: %w", n, err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if tm.Kind == "" {
			continue // only comments
		}
		gvk := tm.GroupVersionKind()
		obj, err := clientgoscheme.Scheme.New(gvk)
		if err != nil {
			obj = &unstructured.Unstructured{}
			var m map[string]any
			if err := yaml.UnmarshalStrict(doc, &m); err != nil {
				return nil, fmt.Errorf("document %d (%s): %w", n, gvk, err)
			}
			obj.(*unstructured.Unstructured).Object = m
		} else if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("document %d (%s) does not decode strictly: %w", n, gvk, err)
		}
		if obj.GetObjectKind().GroupVersionKind().Empty() {
			obj.GetObjectKind().SetGroupVersionKind(gvk)
		}
		objs = append(objs, obj)
	}
}

func all[T runtime.Object](m manifest) []T {
	var out []T
	for _, o := range m.objects {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func one[T runtime.Object](t *testing.T, m manifest) T {
	t.Helper()
	objs := all[T](m)
	if len(objs) != 1 {
		var zero T
		t.Fatalf("values %s: want exactly one %T, got %d", m.name, zero, len(objs))
	}
	return objs[0]
}

func unstructuredOf(m manifest, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range all[*unstructured.Unstructured](m) {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// checkFlowSourceFiles checks that each file a flow source's TLS flag names is in a mounted
// volume that provides it: a Secret's or ConfigMap's key, or a projected source's item path.
func checkFlowSourceFiles(t *testing.T, pod corev1.PodSpec, c corev1.Container, flags map[string][]string) {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for name, values := range flags {
		if !strings.HasSuffix(name, "-tls-ca") && !strings.HasSuffix(name, "-tls-cert") && !strings.HasSuffix(name, "-tls-key") {
			continue
		}
		for _, file := range values {
			dir, base := filepath.Split(file)
			var mount *corev1.VolumeMount
			for i, vm := range c.VolumeMounts {
				if filepath.Clean(vm.MountPath) == filepath.Clean(dir) && vm.SubPath == "" {
					mount = &c.VolumeMounts[i]
				}
			}
			if mount == nil {
				t.Errorf("--%s=%s: no volume is mounted at %s", name, file, dir)
				continue
			}
			if !slices.Contains(volumeFiles(volumes[mount.Name]), base) {
				t.Errorf("--%s=%s: volume %s (%+v) provides no %s", name, file, mount.Name, volumes[mount.Name].VolumeSource, base)
			}
		}
	}
}

// volumeFiles lists the files a Secret, ConfigMap or projected volume provides; nil when
// they depend on the object (no items listed).
func volumeFiles(v corev1.Volume) []string {
	var files []string
	items := func(its []corev1.KeyToPath) {
		for _, it := range its {
			files = append(files, it.Path)
		}
	}
	switch {
	case v.Secret != nil && len(v.Secret.Items) == 0:
		return []string{"ca.crt", "tls.crt", "tls.key"} // a kubernetes.io/tls Secret, by convention
	case v.Secret != nil:
		items(v.Secret.Items)
	case v.ConfigMap != nil:
		items(v.ConfigMap.Items)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			switch {
			case src.Secret != nil:
				items(src.Secret.Items)
			case src.ConfigMap != nil:
				items(src.ConfigMap.Items)
			}
		}
	}
	return files
}

// parseArgs splits a container's arguments into the subcommand and --flag[=value] pairs.
func parseArgs(t *testing.T, args []string) (sub string, flags map[string][]string) {
	t.Helper()
	flags = map[string][]string{}
	for i, a := range args {
		if i == 0 && !strings.HasPrefix(a, "-") {
			sub = a
			continue
		}
		if !strings.HasPrefix(a, "--") {
			t.Errorf("argument %q is not a --flag[=value]", a)
			continue
		}
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		flags[name] = append(flags[name], value)
	}
	return sub, flags
}

func flag1(flags map[string][]string, name string) string {
	if v := flags[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func webhookContainer(t *testing.T, m manifest) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	d := one[*appsv1.Deployment](t, m)
	for _, c := range d.Spec.Template.Spec.Containers {
		if len(c.Args) > 0 && c.Args[0] == "webhook" {
			return d, c
		}
	}
	t.Fatalf("values %s: no container runs `netpol-guard webhook`", m.name)
	return nil, corev1.Container{}
}

// TestChart lints and renders the chart and checks the rendered manifests.
func TestChart(t *testing.T) {
	helm := requireHelm(t)
	sets := valuesSets(t)

	t.Run("helm lint --strict", func(t *testing.T) {
		for _, vs := range sets {
			args := []string{"lint", "--strict", chartDir, "--namespace", vs.namespace}
			if vs.file != "" {
				args = append(args, "--values", vs.file)
			}
			if out, err := helmRun(t, helm, args...); err != nil {
				t.Errorf("values %s: %v", vs.name, err)
			} else if !strings.Contains(out, "0 chart(s) failed") {
				t.Errorf("values %s: helm lint:\n%s", vs.name, out)
			}
		}
	})

	var manifests []manifest
	for _, vs := range sets {
		manifests = append(manifests, render(t, helm, vs))
	}
	// The release namespace is whatever the user installs into.
	manifests = append(manifests, render(t, helm, valuesSet{name: "custom-namespace", release: "guard", namespace: "platform-guardrails"}))

	for _, m := range manifests {
		t.Run(m.name, func(t *testing.T) { checkManifest(t, m) })
	}

	t.Run("defaults fail open fast", func(t *testing.T) {
		vwc := one[*admissionregistrationv1.ValidatingWebhookConfiguration](t, manifests[0])
		w := vwc.Webhooks[0]
		if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Ignore {
			t.Errorf("default failurePolicy = %s, want Ignore", ptrStr(w.FailurePolicy))
		}
		if w.TimeoutSeconds == nil || *w.TimeoutSeconds != 5 {
			t.Errorf("default timeoutSeconds = %s, want 5", ptrStr(w.TimeoutSeconds))
		}
		d := one[*appsv1.Deployment](t, manifests[0])
		if *d.Spec.Replicas != 2 {
			t.Errorf("default replicas = %d, want 2", *d.Spec.Replicas)
		}
		if d.Spec.Template.Spec.PriorityClassName == "" {
			t.Error("default webhook pods have no priorityClassName")
		}
		if len(all[*appsv1.DaemonSet](manifests[0])) != 1 {
			t.Error("the node agent is not on by default")
		}
		if len(unstructuredOf(manifests[0], "Certificate")) == 0 {
			t.Error("default TLS is not cert-manager")
		}
		if len(unstructuredOf(manifests[0], "ServiceMonitor")) != 0 {
			t.Error("a ServiceMonitor is rendered by default")
		}
	})

	t.Run("user namespace selectors cannot remove the exclusions", func(t *testing.T) {
		m := render(t, helm, valuesSet{name: "override", release: "override", namespace: "guard"},
			"--set-json", `webhook.namespaceSelector={"matchLabels":{},"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"In","values":["guard","kube-system","shop"]}]}`,
			"--set-json", `webhook.excludeNamespaces=["istio-system"]`)
		checkExclusions(t, m, "istio-system")
	})

	t.Run("schema rejects a misspelt value", func(t *testing.T) {
		for _, c := range []struct {
			set  []string
			want []string
		}{
			{[]string{"replicaCount=2", "replicaCuont=3"}, []string{"additional properties", "replicaCuont"}},
			{[]string{"webhook.failurPolicy=Fail"}, []string{"additional properties", "failurPolicy"}},
			{[]string{"agent.serviceAccount.nmae=x"}, []string{"additional properties", "nmae"}},
			{[]string{"mode=enforcing"}, []string{"mode", "enforce"}},
			{[]string{"webhook.timeoutSeconds=60"}, []string{"timeoutSeconds", "30"}},
		} {
			var args []string
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			_, err := helmRun(t, helm, templateArgs(sets[0], args...)...)
			if err == nil {
				t.Errorf("--set %v: rendered, want a schema error", c.set)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("--set %v: error does not mention %q:\n%v", c.set, w, err)
				}
			}
		}
	})

	t.Run("template checks what the schema cannot", func(t *testing.T) {
		for _, c := range []struct {
			set  []string
			want string
		}{
			{[]string{"tls.mode=existingSecret", "tls.existingSecret.name=x"}, "caBundle is required"},
			{[]string{"tls.mode=existingSecret", "tls.existingSecret.caBundle=eA=="}, "tls.existingSecret.name is required"},
			{[]string{"terminationGracePeriodSeconds=10"}, "terminationGracePeriodSeconds must be at least"},
			{[]string{"metrics.enabled=false", "metrics.serviceMonitor.enabled=true"}, "needs metrics.enabled"},
		} {
			var args []string
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			if _, err := helmRun(t, helm, templateArgs(sets[0], args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("--set %v: want an error containing %q, got %v", c.set, c.want, err)
			}
		}
	})

	t.Run("schema is closed at every level", func(t *testing.T) { checkSchemaClosed(t) })

	binDir, bin := t.TempDir(), ""
	binary := func(t *testing.T) string {
		t.Helper()
		if bin == "" {
			bin = buildNetpolGuard(t, binDir)
		}
		return bin
	}
	t.Run("webhook flags are the binary's", func(t *testing.T) {
		known, err := knownFlags(t, binary(t), "webhook")
		if err != nil {
			t.Fatalf("netpol-guard webhook -h: %v", err)
		}
		for _, m := range manifests {
			_, c := webhookContainer(t, m)
			_, flags := parseArgs(t, c.Args)
			for name := range flags {
				if !known[name] {
					t.Errorf("values %s: webhook flag --%s is not one `netpol-guard webhook -h` lists", m.name, name)
				}
			}
		}
	})
	t.Run("webhook args pass the binary's flag checks", func(t *testing.T) {
		// With a kubeconfig that does not exist the webhook stops at the client
		// configuration (exit 1), after every flag was parsed and checked; a flag error
		// exits 2.
		kubeconfig := filepath.Join(t.TempDir(), "missing-kubeconfig")
		for _, m := range manifests {
			_, c := webhookContainer(t, m)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			cmd := exec.CommandContext(ctx, binary(t), append(slices.Clone(c.Args), "--kubeconfig="+kubeconfig)...)
			cmd.Env = append(os.Environ(), "POD_NAMESPACE="+m.namespace)
			out, err := cmd.CombinedOutput()
			cancel()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "kubernetes client config") {
				t.Errorf("values %s: netpol-guard %s: %v, want it to stop at the missing kubeconfig (exit 1):\n%s", m.name, strings.Join(c.Args, " "), err, out)
			}
		}
	})
	t.Run("agent flags are the binary's", func(t *testing.T) {
		known, err := knownFlags(t, binary(t), "agent")
		if err != nil {
			t.Fatalf("netpol-guard agent -h: %v", err)
		}
		for _, m := range manifests {
			for _, ds := range all[*appsv1.DaemonSet](m) {
				_, flags := parseArgs(t, ds.Spec.Template.Spec.Containers[0].Args)
				for name := range flags {
					if !known[name] {
						t.Errorf("values %s: agent flag --%s is not one `netpol-guard agent -h` lists", m.name, name)
					}
				}
			}
		}
	})
}

// checkManifest holds the checks every rendering must pass.
func checkManifest(t *testing.T, m manifest) {
	d, c := webhookContainer(t, m)
	_, flags := parseArgs(t, c.Args)
	pod := d.Spec.Template.Spec
	svc := findService(t, m, false)
	vwc := one[*admissionregistrationv1.ValidatingWebhookConfiguration](t, m)

	t.Run("flow source TLS files are mounted", func(t *testing.T) {
		checkFlowSourceFiles(t, pod, c, flags)
	})

	t.Run("webhook configuration calls the binary's path through the Service", func(t *testing.T) {
		// The NetworkPolicy webhook first; the cluster policies' one (clusterPolicyWebhook)
		// next, sharing its clientConfig; the relabel entries after them.
		if len(vwc.Webhooks) < 2 || vwc.Webhooks[0].Name != "networkpolicies.netpol-guard.io" || vwc.Webhooks[1].Name != clusterPolicyWebhook ||
			!reflect.DeepEqual(vwc.Webhooks[0].ClientConfig, vwc.Webhooks[1].ClientConfig) {
			t.Fatalf("want the NetworkPolicy webhook and %s with the same clientConfig first, got %+v", clusterPolicyWebhook, vwc.Webhooks)
		}
		w := vwc.Webhooks[0]
		ref := w.ClientConfig.Service
		if ref == nil || ref.Path == nil || *ref.Path != webhook.ValidatePath {
			t.Fatalf("clientConfig.service = %+v, want path %s", ref, webhook.ValidatePath)
		}
		if ref.Name != svc.Name || ref.Namespace != m.namespace {
			t.Errorf("clientConfig.service %s/%s, want the webhook Service %s/%s", ref.Namespace, ref.Name, m.namespace, svc.Name)
		}
		port := servicePort(t, svc, "https")
		if ref.Port == nil || *ref.Port != port.Port || port.Port != 443 {
			t.Errorf("clientConfig port %v, Service https port %d; want both 443", ref.Port, port.Port)
		}
		if cp := containerPort(t, c, port.TargetPort); cp != webhookPort || flag1(flags, "port") != strconv.Itoa(webhookPort) {
			t.Errorf("Service https → container port %d, --port=%s; want %d", cp, flag1(flags, "port"), webhookPort)
		}
		if w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun {
			t.Errorf("sideEffects = %s, want NoneOnDryRun", ptrStr(w.SideEffects))
		}
		if !slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) {
			t.Errorf("admissionReviewVersions = %v, want [v1]", w.AdmissionReviewVersions)
		}
		if w.MatchPolicy == nil || *w.MatchPolicy != admissionregistrationv1.Equivalent {
			t.Errorf("matchPolicy = %s, want Equivalent", ptrStr(w.MatchPolicy))
		}
		if len(w.Rules) != 1 {
			t.Fatalf("want one rule, got %+v", w.Rules)
		}
		r := w.Rules[0]
		ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete}
		if !slices.Equal(r.APIGroups, []string{"networking.k8s.io"}) || !slices.Equal(r.APIVersions, []string{"v1"}) ||
			!slices.Equal(r.Resources, []string{"networkpolicies"}) || !slices.Equal(r.Operations, ops) {
			t.Errorf("rule = %+v, want networking.k8s.io/v1 networkpolicies CREATE, UPDATE, DELETE", r)
		}
		if w.TimeoutSeconds == nil || *w.TimeoutSeconds < 1 || *w.TimeoutSeconds > 30 {
			t.Errorf("timeoutSeconds = %s, want 1-30", ptrStr(w.TimeoutSeconds))
		}
	})

	t.Run("relabel entries call the binary's paths, on label changes only", func(t *testing.T) {
		paths := map[string]string{
			"namespaces.relabel.netpol-guard.io": webhook.RelabelNamespacePath,
			"workloads.relabel.netpol-guard.io":  webhook.RelabelWorkloadPath,
			"pods.relabel.netpol-guard.io":       webhook.RelabelPodPath,
			"nodes.relabel.netpol-guard.io":      webhook.RelabelNodePath,
		}
		seen := map[string]bool{}
		for _, w := range vwc.Webhooks[1:] {
			if w.Name == clusterPolicyWebhook {
				continue // its own subtest
			}
			want, ok := paths[w.Name]
			if !ok {
				t.Errorf("unexpected webhook %s", w.Name)
				continue
			}
			seen[w.Name] = true
			if ref := w.ClientConfig.Service; ref == nil || ref.Path == nil || *ref.Path != want || ref.Name != svc.Name {
				t.Errorf("%s: clientConfig.service = %+v, want Service %s path %s", w.Name, ref, svc.Name, want)
			}
			if len(w.MatchConditions) != 1 || !strings.Contains(w.MatchConditions[0].Expression, "labels") {
				t.Errorf("%s: matchConditions %+v, want one comparing labels", w.Name, w.MatchConditions)
			}
			for _, r := range w.Rules {
				if !slices.Equal(r.Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Update}) {
					t.Errorf("%s: rule %+v, want UPDATE only", w.Name, r)
				}
			}
		}
		if m.name == "default" && (!seen["namespaces.relabel.netpol-guard.io"] || !seen["workloads.relabel.netpol-guard.io"] || seen["pods.relabel.netpol-guard.io"] || seen["nodes.relabel.netpol-guard.io"]) {
			t.Errorf("default relabel entries %v, want namespaces and workloads", seen)
		}
	})

	t.Run("release namespace and kube-system are always excluded", func(t *testing.T) { checkExclusions(t, m) })

	t.Run("every container runs with the full security context", func(t *testing.T) {
		type podOf struct {
			what string
			spec corev1.PodSpec
		}
		pods := []podOf{{"Deployment " + d.Name, pod}}
		for _, p := range all[*corev1.Pod](m) {
			pods = append(pods, podOf{"Pod " + p.Name, p.Spec})
		}
		for _, p := range pods {
			checkPodSecurity(t, p.what, p.spec, nil)
		}
		for _, ds := range all[*appsv1.DaemonSet](m) {
			checkPodSecurity(t, "DaemonSet "+ds.Name, ds.Spec.Template.Spec, []corev1.Capability{"NET_ADMIN"})
		}
	})

	t.Run("pod disruption budget exists iff replicas > 1", func(t *testing.T) {
		pdbs := all[*policyv1.PodDisruptionBudget](m)
		replicas := *d.Spec.Replicas
		switch {
		case replicas > 1 && len(pdbs) != 1:
			t.Errorf("replicas %d, %d PodDisruptionBudgets; want 1", replicas, len(pdbs))
		case replicas <= 1 && len(pdbs) != 0:
			t.Errorf("replicas %d, %d PodDisruptionBudgets; want none (it would block every drain)", replicas, len(pdbs))
		case len(pdbs) == 1:
			sel, _ := metav1.LabelSelectorAsSelector(pdbs[0].Spec.Selector)
			if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("PodDisruptionBudget selector %v does not select the webhook pods", pdbs[0].Spec.Selector)
			}
			if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil {
				t.Error("replicas > 1 without pod anti-affinity")
			}
		}
	})

	t.Run("probes hit the probe port", func(t *testing.T) {
		if flag1(flags, "health-probe-bind-address") != fmt.Sprintf(":%d", probePort) {
			t.Errorf("--health-probe-bind-address=%s, want :%d", flag1(flags, "health-probe-bind-address"), probePort)
		}
		for name, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || containerPort(t, c, p.HTTPGet.Port) != probePort {
				t.Errorf("probe for %s = %+v, want GET %s on %d", name, p, name, probePort)
			}
		}
	})

	t.Run("grace period covers the shutdown delay and the drain", func(t *testing.T) {
		delay, err1 := time.ParseDuration(flag1(flags, "shutdown-delay"))
		drain, err2 := time.ParseDuration(flag1(flags, "graceful-timeout"))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("--shutdown-delay/--graceful-timeout: %v", err)
		}
		if delay <= 0 {
			t.Errorf("--shutdown-delay=%s: a terminating pod would still be sent admissions", delay)
		}
		grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		if grace < delay+drain {
			t.Errorf("terminationGracePeriodSeconds %s < shutdown delay %s + graceful timeout %s", grace, delay, drain)
		}
	})

	t.Run("POD_NAMESPACE comes from the downward API", func(t *testing.T) {
		for _, e := range c.Env {
			if e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace" {
				return
			}
		}
		t.Error("no POD_NAMESPACE from metadata.namespace")
	})

	t.Run("Service and webhook pods agree", func(t *testing.T) {
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Service selector %v does not select the webhook pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
		}
		if ms := flag1(flags, "metrics-bind-address"); ms == ":8080" {
			if p := servicePort(t, svc, "metrics"); p.Port != 8080 || containerPort(t, c, p.TargetPort) != 8080 {
				t.Errorf("metrics Service port %+v, want 8080 → 8080", p)
			}
		}
		if sa := pod.ServiceAccountName; sa == "" || sa == "default" {
			t.Errorf("webhook pods run as ServiceAccount %q", sa)
		}
	})

	t.Run("TLS is wired for its mode", func(t *testing.T) { checkTLS(t, m, vwc, pod, c, flags, svc) })

	t.Run("RBAC is least privilege", func(t *testing.T) { checkRBAC(t, m, pod.ServiceAccountName, flags) })

	t.Run("the node agent pushes to every replica with a token the webhook accepts", func(t *testing.T) {
		dss := all[*appsv1.DaemonSet](m)
		if len(dss) == 0 {
			if w := flags["flow-writers"]; slices.ContainsFunc(w, func(s string) bool { return strings.HasSuffix(s, "-agent") }) {
				t.Errorf("agent disabled but --flow-writers=%v", w)
			}
			t.Skip("agent disabled")
		}
		checkAgent(t, m, dss[0], flags)
	})

	t.Run("own NetworkPolicy admits the API server and agents", func(t *testing.T) {
		nps := all[*networkingv1.NetworkPolicy](m)
		if len(nps) != 1 {
			t.Fatalf("want one NetworkPolicy, got %d", len(nps))
		}
		np := nps[0]
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Fatalf("NetworkPolicy podSelector %v does not select the webhook pods", np.Spec.PodSelector)
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			t.Errorf("policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
		}
		open := false
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port != nil && containerPort(t, c, *p.Port) == webhookPort && len(r.From) == 0 {
					open = true
				}
			}
		}
		if !open {
			t.Error("no ingress rule admits the HTTPS port from anywhere: the API server could not call the webhook")
		}
		for _, r := range np.Spec.Egress {
			if len(r.Ports) == 0 {
				t.Errorf("egress rule %+v allows every port", r)
			}
		}
	})

	t.Run("snapshot volume", func(t *testing.T) {
		path := flag1(flags, "snapshot-path")
		if path == "" {
			t.Skip("snapshots off")
		}
		var mount *corev1.VolumeMount
		for i, vm := range c.VolumeMounts {
			if strings.HasPrefix(path, vm.MountPath+"/") {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil || mount.ReadOnly {
			t.Fatalf("--snapshot-path=%s is on no writable volume (the root filesystem is read-only)", path)
		}
		v := volume(t, pod, mount.Name)
		pvcs := all[*corev1.PersistentVolumeClaim](m)
		switch {
		case v.PersistentVolumeClaim != nil:
			if len(pvcs) != 1 || pvcs[0].Name != v.PersistentVolumeClaim.ClaimName {
				t.Errorf("snapshot volume claims %q; rendered claims %v", v.PersistentVolumeClaim.ClaimName, pvcs)
			}
		case v.EmptyDir != nil:
			if len(pvcs) != 0 {
				t.Errorf("emptyDir snapshot with %d claims rendered", len(pvcs))
			}
		default:
			t.Errorf("snapshot volume %+v is neither emptyDir nor a claim", v.VolumeSource)
		}
	})
}

func checkExclusions(t *testing.T, m manifest, more ...string) {
	t.Helper()
	vwc := one[*admissionregistrationv1.ValidatingWebhookConfiguration](t, m)
	for _, w := range vwc.Webhooks {
		if w.Name == clusterPolicyWebhook {
			continue // cluster-scoped objects: no namespace to exclude
		}
		sel := w.NamespaceSelector
		if sel == nil {
			t.Fatalf("webhook %s has no namespaceSelector", w.Name)
		}
		var excluded, ignoreLabel bool
		for _, e := range sel.MatchExpressions {
			switch {
			case e.Key == corev1.LabelMetadataName && e.Operator == metav1.LabelSelectorOpNotIn:
				want := append([]string{m.namespace, "kube-system"}, more...)
				excluded = true
				for _, ns := range want {
					if !slices.Contains(e.Values, ns) {
						t.Errorf("namespace %s is not excluded: %v", ns, e.Values)
					}
				}
			case e.Key == "netpol-guard.io/ignore" && e.Operator == metav1.LabelSelectorOpNotIn && slices.Equal(e.Values, []string{"true"}):
				ignoreLabel = true
			}
		}
		if !excluded {
			t.Errorf("webhook %s: no kubernetes.io/metadata.name NotIn rule in %v", w.Name, sel)
		}
		if !ignoreLabel {
			t.Errorf("webhook %s: no netpol-guard.io/ignore NotIn [true] opt-out in %v", w.Name, sel)
		}
		// Whatever else the user selected, the selector must reject the release namespace
		// and kube-system as the API server would judge them (by their automatic label).
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatalf("namespaceSelector: %v", err)
		}
		for _, ns := range append([]string{m.namespace, "kube-system"}, more...) {
			maps := []map[string]string{{corev1.LabelMetadataName: ns}}
			for k, v := range sel.MatchLabels { // even with every label the user asks for
				l := map[string]string{corev1.LabelMetadataName: ns, k: v}
				maps = append(maps, l)
			}
			for _, l := range maps {
				if s.Matches(labels.Set(l)) {
					t.Errorf("namespace %s with labels %v is intercepted", ns, l)
				}
			}
		}
	}
}

// checkPodSecurity: non-root 65532 (or, for the agent, exactly the capabilities in add),
// seccomp RuntimeDefault, no privilege escalation, drop ALL, read-only root filesystem.
func checkPodSecurity(t *testing.T, what string, spec corev1.PodSpec, add []corev1.Capability) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if spec.HostPID || spec.HostIPC {
		t.Errorf("%s: hostPID/hostIPC", what)
	}
	if spec.HostNetwork != (add != nil) {
		t.Errorf("%s: hostNetwork %v", what, spec.HostNetwork)
	}
	containers := append(slices.Clone(spec.InitContainers), spec.Containers...)
	if len(containers) == 0 {
		t.Fatalf("%s: no containers", what)
	}
	for _, c := range containers {
		where := what + " container " + c.Name
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", where)
			continue
		}
		if add == nil {
			nonRoot := sc.RunAsNonRoot
			if nonRoot == nil {
				nonRoot = psc.RunAsNonRoot
			}
			user := sc.RunAsUser
			if user == nil {
				user = psc.RunAsUser
			}
			if nonRoot == nil || !*nonRoot || user == nil || *user != 65532 {
				t.Errorf("%s: runAsNonRoot %v runAsUser %v, want true and 65532", where, ptrStr(nonRoot), ptrStr(user))
			}
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccompProfile %v, want RuntimeDefault", where, seccomp)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation %s, want false", where, ptrStr(sc.AllowPrivilegeEscalation))
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", where)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem %s, want true", where, ptrStr(sc.ReadOnlyRootFilesystem))
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: capabilities %+v, want drop [ALL]", where, sc.Capabilities)
		} else if !slices.Equal(sc.Capabilities.Add, add) {
			t.Errorf("%s: capabilities add %v, want %v", where, sc.Capabilities.Add, add)
		}
	}
}

func checkTLS(t *testing.T, m manifest, vwc *admissionregistrationv1.ValidatingWebhookConfiguration, pod corev1.PodSpec, c corev1.Container, flags map[string][]string, svc *corev1.Service) {
	t.Helper()
	caBundle := vwc.Webhooks[0].ClientConfig.CABundle
	inject := vwc.Annotations["cert-manager.io/inject-ca-from"]
	certs := unstructuredOf(m, "Certificate")
	_, selfSigned := flags["self-signed"]

	// The Secret mounted at --cert-dir, for the two modes that serve from files.
	mountedSecret := func() string {
		t.Helper()
		dir := flag1(flags, "cert-dir")
		for _, vm := range c.VolumeMounts {
			if vm.MountPath == dir {
				if vm.SubPath != "" {
					t.Errorf("--cert-dir mounted with subPath: rotation would never reach the pod")
				}
				if v := volume(t, pod, vm.Name); v.Secret != nil {
					return v.Secret.SecretName
				}
			}
		}
		t.Fatalf("--cert-dir=%s is not a mounted Secret", dir)
		return ""
	}

	switch {
	case selfSigned:
		if len(certs) != 0 || inject != "" || len(caBundle) != 0 {
			t.Errorf("self-signed mode with cert-manager objects or a static caBundle")
		}
		if flag1(flags, "webhook-config") != vwc.Name {
			t.Errorf("--webhook-config=%s, webhook configuration is %s", flag1(flags, "webhook-config"), vwc.Name)
		}
		if flag1(flags, "service-name") != svc.Name {
			t.Errorf("--service-name=%s, Service is %s", flag1(flags, "service-name"), svc.Name)
		}
		// The agents dial the replicas through the headless Service and verify its name
		// (their --server-name default): the self-signed certificate must carry it.
		headless := findService(t, m, true)
		base := fmt.Sprintf("%s.%s.svc", headless.Name, m.namespace)
		for _, want := range []string{base, base + ".cluster.local", "*." + base} {
			if !slices.Contains(flags["extra-dns-name"], want) {
				t.Errorf("--extra-dns-name=%v lacks %s (the name the node agents verify)", flags["extra-dns-name"], want)
			}
		}
		secret := flag1(flags, "secret-name")
		var found bool
		for _, s := range all[*corev1.Secret](m) {
			if s.Name == secret {
				found = true
				if len(s.Data)+len(s.StringData) != 0 {
					t.Errorf("pre-created Secret %s has data: helm upgrade would overwrite the certificates", s.Name)
				}
			}
		}
		if !found {
			t.Errorf("--secret-name=%s is not pre-created by the chart (the webhook may not create Secrets)", secret)
		}
	case inject != "":
		ns, name, _ := strings.Cut(inject, "/")
		if ns != m.namespace {
			t.Errorf("inject-ca-from %s: not the release namespace", inject)
		}
		var serving *unstructured.Unstructured
		for _, u := range certs {
			if u.GetName() == name {
				serving = u
			}
		}
		if serving == nil {
			t.Fatalf("inject-ca-from %s names no rendered Certificate", inject)
		}
		secretName, _, _ := unstructured.NestedString(serving.Object, "spec", "secretName")
		if got := mountedSecret(); got != secretName {
			t.Errorf("--cert-dir mounts Secret %s, the serving Certificate writes %s", got, secretName)
		}
		dns, _, _ := unstructured.NestedStringSlice(serving.Object, "spec", "dnsNames")
		if want := fmt.Sprintf("%s.%s.svc", svc.Name, m.namespace); !slices.Contains(dns, want) {
			t.Errorf("serving certificate dnsNames %v lack %s (the name the API server dials)", dns, want)
		}
		// The CA chain: selfSigned Issuer → CA Certificate → CA Issuer → serving Certificate.
		kinds := map[string]int{}
		for _, u := range all[*unstructured.Unstructured](m) {
			kinds[u.GetKind()]++
		}
		if kinds["Issuer"] != 2 || kinds["Certificate"] != 2 {
			t.Errorf("cert-manager objects %v, want 2 Issuers and 2 Certificates (the CA chain)", kinds)
		}
	default:
		if len(caBundle) == 0 {
			t.Fatal("existing-Secret mode without a caBundle: the API server could not verify the webhook")
		}
		if !bytes.Contains(caBundle, []byte("BEGIN CERTIFICATE")) {
			t.Errorf("caBundle is not a PEM certificate")
		}
		if mountedSecret() == "" {
			t.Error("no Secret mounted")
		}
	}
}

func checkRBAC(t *testing.T, m manifest, sa string, flags map[string][]string) {
	t.Helper()
	bound := map[string]bool{} // roles bound to the webhook's ServiceAccount
	for _, b := range all[*rbacv1.ClusterRoleBinding](m) {
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == m.namespace {
				bound["ClusterRole/"+b.RoleRef.Name] = true
			}
		}
	}
	for _, b := range all[*rbacv1.RoleBinding](m) {
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa {
				bound[b.RoleRef.Kind+"/"+b.RoleRef.Name] = true
			}
		}
	}
	var rules []rbacv1.PolicyRule
	for _, r := range all[*rbacv1.ClusterRole](m) {
		if bound["ClusterRole/"+r.Name] {
			rules = append(rules, r.Rules...)
		}
	}
	for _, r := range all[*rbacv1.Role](m) {
		if r.Namespace != m.namespace {
			t.Errorf("Role %s/%s outside the release namespace", r.Namespace, r.Name)
		}
		if bound["Role/"+r.Name] {
			rules = append(rules, r.Rules...)
		}
	}
	if len(rules) == 0 {
		t.Fatalf("no rules bound to ServiceAccount %s", sa)
	}
	read := []string{"get", "list", "watch"}
	need := map[string][]string{
		"/pods": read, "/namespaces": read, "/nodes": read, "networking.k8s.io/networkpolicies": read,
		"policy.networking.k8s.io/clusternetworkpolicies": read, "policy.networking.k8s.io/adminnetworkpolicies": read,
		"policy.networking.k8s.io/baselineadminnetworkpolicies": read,
		"apps/replicasets": read, "batch/jobs": read, "/services": read,
		"admissionregistration.k8s.io/validatingwebhookconfigurations": read,
		"admissionregistration.k8s.io/mutatingwebhookconfigurations":   read,
		"events.k8s.io/events": {"create"}, "/events": {"create"},
		"authentication.k8s.io/tokenreviews": {"create"},
		// The bypass right of the user behind netpol-guard.io/allow-cut.
		"authorization.k8s.io/subjectaccessreviews": {"create"},
		// Staged policies: every replica reads them, the elected one writes their status.
		"netpol-guard.io/stagednetworkpolicies": read, "netpol-guard.io/stagednetworkpolicies/status": {"update"},
		// Their OpenReports Reports.
		"openreports.io/reports": {"get", "create", "update"},
	}
	if _, ok := flags["leader-elect"]; ok {
		need["coordination.k8s.io/leases"] = []string{"get", "create", "update"}
	}
	granted := map[string][]string{} // group/resource → verbs, for rules without resourceNames
	_, selfSigned := flags["self-signed"]
	for _, r := range rules {
		for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames} {
			if slices.Contains(list, "*") {
				t.Errorf("wildcard in rule %+v", r)
			}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				key := g + "/" + res
				if len(r.ResourceNames) > 0 {
					// Only the self-signed mode writes, and only its own objects.
					ok := selfSigned && ((key == "/secrets" && slices.Equal(r.ResourceNames, []string{flag1(flags, "secret-name")})) ||
						(key == "admissionregistration.k8s.io/validatingwebhookconfigurations" && slices.Equal(r.ResourceNames, []string{flag1(flags, "webhook-config")})))
					if !ok || slices.Contains(r.Verbs, "create") || slices.Contains(r.Verbs, "delete") {
						t.Errorf("named rule %+v", r)
					}
					continue
				}
				if key == "/secrets" || key == "/configmaps" {
					t.Errorf("unnamed access to %s: %+v", key, r)
				}
				granted[key] = append(granted[key], r.Verbs...)
			}
		}
	}
	// The only writes: Events, reviews, staged policies' status, and the leader's Lease.
	mayWrite := map[string][]string{
		"events.k8s.io/events": {"create", "patch"}, "/events": {"create", "patch"},
		"authentication.k8s.io/tokenreviews": {"create"}, "authorization.k8s.io/subjectaccessreviews": {"create"},
		"netpol-guard.io/stagednetworkpolicies/status": {"update"},
		"coordination.k8s.io/leases":                   {"create", "update"},
		"openreports.io/reports":                       {"create", "update"},
	}
	for key, verbs := range granted {
		want, ok := need[key]
		if !ok {
			t.Errorf("%s granted (%v) but not needed", key, verbs)
			continue
		}
		for _, v := range verbs {
			writes := !slices.Contains(read, v)
			if writes && !slices.Contains(mayWrite[key], v) {
				t.Errorf("%s: verb %s", key, v)
			}
		}
		for _, v := range want {
			if !slices.Contains(verbs, v) {
				t.Errorf("%s lacks %s", key, v)
			}
		}
	}
	for key := range need {
		if _, ok := granted[key]; !ok {
			t.Errorf("%s not granted", key)
		}
	}
}

func checkAgent(t *testing.T, m manifest, ds *appsv1.DaemonSet, webhookFlags map[string][]string) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	sub, flags := parseArgs(t, c.Args)
	if sub != "agent" {
		t.Fatalf("DaemonSet runs %q, want agent", sub)
	}
	writer := fmt.Sprintf("system:serviceaccount:%s:%s", m.namespace, spec.ServiceAccountName)
	if !slices.Contains(webhookFlags["flow-writers"], writer) {
		t.Errorf("--flow-writers=%v lacks the agent %s", webhookFlags["flow-writers"], writer)
	}
	sas := map[string]bool{}
	for _, sa := range all[*corev1.ServiceAccount](m) {
		sas[sa.Name] = true
	}
	if !sas[spec.ServiceAccountName] || spec.ServiceAccountName == one[*appsv1.Deployment](t, m).Spec.Template.Spec.ServiceAccountName {
		t.Errorf("agent ServiceAccount %q: not its own, or not rendered", spec.ServiceAccountName)
	}
	if flag1(flags, "node-name") != "$(NODE_NAME)" {
		t.Errorf("--node-name=%s", flag1(flags, "node-name"))
	}
	var nodeName bool
	for _, e := range c.Env {
		nodeName = nodeName || (e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName")
	}
	if !nodeName {
		t.Error("NODE_NAME is not spec.nodeName from the downward API")
	}
	if flag1(flags, "namespace") != m.namespace || flag1(flags, "interval") == "" ||
		flag1(flags, "metrics-bind-address") != "127.0.0.1:9090" || flag1(flags, "health-probe-bind-address") != ":9091" {
		t.Errorf("agent flags %v", flags)
	}
	headless := findService(t, m, true)
	if flag1(flags, "webhook-service") != headless.Name {
		t.Errorf("--webhook-service=%s, the headless Service is %s", flag1(flags, "webhook-service"), headless.Name)
	}
	if p := servicePort(t, headless, "https"); p.Port != webhookPort {
		t.Errorf("headless Service https port %d, want %d", p.Port, webhookPort)
	}
	// The projected token the agent presents: audience the webhook demands, at --token-file.
	tokenFile := flag1(flags, "token-file")
	var audience string
	for _, vm := range c.VolumeMounts {
		if !strings.HasPrefix(tokenFile, vm.MountPath+"/") {
			continue
		}
		v := volume(t, spec, vm.Name)
		if v.Projected == nil {
			t.Fatalf("--token-file=%s is not on a projected volume", tokenFile)
		}
		for _, src := range v.Projected.Sources {
			if tok := src.ServiceAccountToken; tok != nil && vm.MountPath+"/"+tok.Path == tokenFile {
				audience = tok.Audience
			}
		}
	}
	if audience == "" || !slices.Contains(webhookFlags["token-audience"], audience) {
		t.Errorf("agent token audience %q, webhook --token-audience=%v", audience, webhookFlags["token-audience"])
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("agent automounts an API token it does not need")
	}
	t.Run("agent verifies the webhook's certificate against its CA", func(t *testing.T) {
		checkAgentCA(t, m, spec, c, flags, webhookFlags)
	})
}

// checkAgentCA: --ca-file is the ca.crt (and only that) of the CA for the TLS mode — the
// cert-manager serving Secret, the self-signed Secret (optional: the webhook fills it after
// the agents start), or a ConfigMap holding tls.existingSecret.caBundle — and the name the
// agent verifies is one the serving certificate carries.
func checkAgentCA(t *testing.T, m manifest, spec corev1.PodSpec, c corev1.Container, flags, webhookFlags map[string][]string) {
	t.Helper()
	caFile := flag1(flags, "ca-file")
	if caFile == "" {
		t.Fatal("agent has no --ca-file: it would verify the webhook against the system roots")
	}
	var mount *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if strings.HasPrefix(caFile, vm.MountPath+"/") {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		t.Fatalf("--ca-file=%s is on no mounted volume", caFile)
	}
	if mount.SubPath != "" || !mount.ReadOnly {
		t.Errorf("CA volume mounted with subPath %q, readOnly %v: want no subPath (rotations must reach the agent) and read-only", mount.SubPath, mount.ReadOnly)
	}
	v := volume(t, spec, mount.Name)
	var items []corev1.KeyToPath
	var optional *bool
	switch {
	case v.Secret != nil:
		items, optional = v.Secret.Items, v.Secret.Optional
	case v.ConfigMap != nil:
		items, optional = v.ConfigMap.Items, v.ConfigMap.Optional
	default:
		t.Fatalf("CA volume %s is neither a Secret nor a ConfigMap: %+v", v.Name, v.VolumeSource)
	}
	if len(items) != 1 || items[0].Key != "ca.crt" || mount.MountPath+"/"+items[0].Path != caFile {
		t.Errorf("CA volume items %+v, mounted at %s: want only key ca.crt at --ca-file=%s (never the serving key)", items, mount.MountPath, caFile)
	}
	isOptional := optional != nil && *optional

	serverName := flag1(flags, "server-name")
	if serverName == "" {
		serverName = fmt.Sprintf("%s.%s.svc", flag1(flags, "webhook-service"), m.namespace)
	}
	_, selfSigned := webhookFlags["self-signed"]
	certs := unstructuredOf(m, "Certificate")
	switch {
	case selfSigned:
		if v.Secret == nil || v.Secret.SecretName != flag1(webhookFlags, "secret-name") {
			t.Errorf("CA volume %+v, want the self-signed Secret %s", v.VolumeSource, flag1(webhookFlags, "secret-name"))
		}
		if !isOptional {
			t.Error("self-signed CA volume is not optional: the chart creates the Secret empty, so the agent pods could not start until the webhook fills it")
		}
		if !slices.Contains(webhookFlags["extra-dns-name"], serverName) {
			t.Errorf("agent verifies %s, the self-signed certificate has only the Service's names and %v", serverName, webhookFlags["extra-dns-name"])
		}
	case len(certs) > 0:
		var serving *unstructured.Unstructured
		for _, u := range certs {
			if name, _, _ := unstructured.NestedString(u.Object, "spec", "secretName"); v.Secret != nil && name == v.Secret.SecretName {
				serving = u
			}
		}
		if serving == nil {
			t.Fatalf("CA volume %+v is not the Secret of a rendered Certificate", v.VolumeSource)
		}
		if isCA, _, _ := unstructured.NestedBool(serving.Object, "spec", "isCA"); isCA {
			t.Errorf("CA volume is the CA Certificate's Secret %s (with the CA key), want the serving one's ca.crt", v.Secret.SecretName)
		}
		if isOptional {
			t.Error("cert-manager CA volume is optional: the agent would start without it and exit")
		}
		if dns, _, _ := unstructured.NestedStringSlice(serving.Object, "spec", "dnsNames"); !slices.Contains(dns, serverName) {
			t.Errorf("agent verifies %s, serving certificate dnsNames %v", serverName, dns)
		}
	default:
		if v.ConfigMap == nil {
			t.Fatalf("existing-Secret mode: CA volume %+v, want the chart's ConfigMap of tls.existingSecret.caBundle", v.VolumeSource)
		}
		var cm *corev1.ConfigMap
		for _, x := range all[*corev1.ConfigMap](m) {
			if x.Name == v.ConfigMap.Name {
				cm = x
			}
		}
		if cm == nil {
			t.Fatalf("CA ConfigMap %s is not rendered", v.ConfigMap.Name)
		}
		caBundle := one[*admissionregistrationv1.ValidatingWebhookConfiguration](t, m).Webhooks[0].ClientConfig.CABundle
		if got := strings.TrimSpace(cm.Data["ca.crt"]); got == "" || got != strings.TrimSpace(string(caBundle)) {
			t.Errorf("ConfigMap %s ca.crt is not the webhook configuration's caBundle:\n%s", cm.Name, got)
		}
		if isOptional {
			t.Error("existing-Secret CA volume is optional")
		}
		// The user's certificate is required to cover the webhook Service's name, not the
		// headless one's.
		if want := fmt.Sprintf("%s.%s.svc", findService(t, m, false).Name, m.namespace); serverName != want {
			t.Errorf("agent verifies %s, want %s (the name the user's certificate must carry)", serverName, want)
		}
	}
}

// checkSchemaClosed walks values.schema.json: every object schema says what else it
// admits. One with properties admits nothing else (additionalProperties: false); a map
// (labels, annotations, resource quantities) types its values; only `global`, which a
// parent chart fills, is open.
func checkSchemaClosed(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	open := map[string]bool{"/properties/global": true}
	var walk func(path string, node any)
	walk = func(path string, node any) {
		switch n := node.(type) {
		case map[string]any:
			isObject := n["type"] == "object"
			if tl, ok := n["type"].([]any); ok {
				isObject = slices.Contains(tl, any("object"))
			}
			if isObject {
				ap, has := n["additionalProperties"]
				_, hasProps := n["properties"]
				switch {
				case !has:
					t.Errorf("%s: object without additionalProperties", path)
				case ap == true && !open[path]:
					t.Errorf("%s: open object", path)
				case hasProps && ap != false:
					t.Errorf("%s: object with properties admits others", path)
				}
			}
			keys := make([]string, 0, len(n))
			for k := range n {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(path+"/"+k, n[k])
			}
		case []any:
			for i, v := range n {
				walk(fmt.Sprintf("%s/%d", path, i), v)
			}
		}
	}
	walk("", schema)
}

// buildNetpolGuard builds the repository's binary into a temporary directory (the test
// runs in e2e/, the main package is the repository root).
func buildNetpolGuard(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "netpol-guard")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var flagLine = regexp.MustCompile(`(?m)^\s+-{1,2}([A-Za-z0-9][A-Za-z0-9_.-]*)`)

// knownFlags parses `netpol-guard <sub> -h` (Go's flag package usage).
func knownFlags(t *testing.T, bin, sub string) (map[string]bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, sub, "-h").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, firstLine(out))
	}
	flags := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("no flags in:\n%s", out)
	}
	return flags, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// TestChartOnControlPlane server-side applies every rendered object of every values set to
// a real kube-apiserver, with the CRDs of cert-manager (Issuer, Certificate) and the
// Prometheus Operator (ServiceMonitor) installed from their Go modules: the API server's
// validation and the CRDs' schemas must accept all of it.
func TestChartOnControlPlane(t *testing.T) {
	helm := requireHelm(t)
	assets := requireAssets(t)

	var crds []*apiextensionsv1.CustomResourceDefinition
	cm := moduleDir(t, certManagerModule)
	files, _ := filepath.Glob(filepath.Join(cm, certManagerCRDs, "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("%s: no CRDs in %s", certManagerModule, certManagerCRDs)
	}
	for _, f := range files {
		crds = append(crds, readCRDs(t, f)...)
	}
	crds = append(crds, readCRDs(t, filepath.Join(moduleDir(t, promOperatorModule), serviceMonitorCRD))...)

	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{CRDs: crds},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("envtest start: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("envtest stop: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	var webhookConfigs []*unstructured.Unstructured
	applied := map[string]int{}
	for _, vs := range valuesSets(t) {
		m := render(t, helm, vs)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: vs.namespace}}
		if err := c.Create(ctx, ns); err != nil {
			t.Fatalf("create namespace %s: %v", vs.namespace, err)
		}
		for _, obj := range m.objects {
			u := toUnstructured(t, obj)
			if u.GetKind() == "ValidatingWebhookConfiguration" {
				// Registered last (and neutralized), so that no later apply is sent to a
				// webhook that is not running.
				webhookConfigs = append(webhookConfigs, u)
				continue
			}
			apply(ctx, t, c, vs.name, u)
			applied[u.GetKind()]++
		}
	}
	for _, u := range webhookConfigs {
		neutralize(t, u)
		apply(ctx, t, c, "webhook configurations", u)
		applied[u.GetKind()]++
	}
	t.Logf("applied %v", applied)
	for _, kind := range []string{"Deployment", "DaemonSet", "Service", "ValidatingWebhookConfiguration", "Certificate", "Issuer", "ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget", "PersistentVolumeClaim", "Role", "Secret", "ConfigMap", "Pod"} {
		if applied[kind] == 0 {
			t.Errorf("no %s was applied: a values set that renders it is missing", kind)
		}
	}

	// Helm's own install and upgrade against the real API server. In self-signed mode the
	// chart pre-creates the webhook's Secret without data (so the webhook needs no create
	// permission); what the webhook writes into it must survive `helm upgrade`.
	t.Run("helm install and upgrade keep the self-signed Secret's data", func(t *testing.T) {
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
			t.Fatal(err)
		}
		const release, ns = "helm-install", "helm-install"
		base := []string{chartDir, "--namespace", ns, "--kubeconfig", kubeconfig, "--values", filepath.Join(chartDir, "ci", "self-signed-values.yaml"),
			// As neutralize does: this webhook configuration must never be called.
			"--set-json", fmt.Sprintf(`webhook.namespaceSelector={"matchExpressions":[{"key":%q,"operator":"Exists"}]}`, neverLabel)}
		out, err := helmRun(t, helm, append([]string{"install", release, "--create-namespace"}, base...)...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "kubectl apply --dry-run=server -f - <<'YAML'") || !strings.Contains(out, "kubectl -n "+ns+" rollout status") {
			t.Errorf("NOTES do not show how to see it work:\n%s", out)
		}
		var secret corev1.Secret
		key := client.ObjectKey{Namespace: ns, Name: release + "-netpol-guard-tls"}
		if err := c.Get(ctx, key, &secret); err != nil {
			t.Fatalf("the self-signed Secret was not pre-created: %v", err)
		}
		// What the webhook does on first start: fill the Secret (an update, no create).
		secret.Data = map[string][]byte{"ca.crt": []byte("ca"), "tls.crt": []byte("crt"), "tls.key": []byte("key")}
		if err := c.Update(ctx, &secret); err != nil {
			t.Fatal(err)
		}
		if _, err := helmRun(t, helm, append([]string{"upgrade", release, "--set", "mode=enforce"}, base...)...); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, key, &secret); err != nil {
			t.Fatal(err)
		}
		if string(secret.Data["tls.crt"]) != "crt" || string(secret.Data["ca.crt"]) != "ca" {
			t.Errorf("helm upgrade changed the webhook's certificates: %v", secret.Data)
		}
		if _, err := helmRun(t, helm, "uninstall", release, "--namespace", ns, "--kubeconfig", kubeconfig); err != nil {
			t.Fatal(err)
		}
	})

	// Read one back: the API server kept the exclusions as rendered.
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "netpol-guard"}, &vwc); err != nil {
		t.Fatalf("get webhook configuration: %v", err)
	}
	if got := vwc.Webhooks[0].NamespaceSelector.MatchExpressions[0].Values; !slices.Contains(got, "netpol-guard") || !slices.Contains(got, "kube-system") {
		t.Errorf("stored namespaceSelector excludes %v", got)
	}
}

// neutralize keeps a webhook configuration from ever being called: no webhook server runs
// here, and the API server would otherwise resolve and dial the Service's DNS name
// (<svc>.<ns>.svc, which only a cluster's DNS should answer) for every NetworkPolicy
// outside the excluded namespaces.
// The rendered rules and selector are kept and validated; one requirement no namespace
// meets is added, and failures are ignored.
func neutralize(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	hooks, _, err := unstructured.NestedSlice(u.Object, "webhooks")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		w := h.(map[string]any)
		w["failurePolicy"] = "Ignore"
		key := "namespaceSelector"
		if w["name"] == clusterPolicyWebhook {
			key = "objectSelector" // cluster-scoped: namespaceSelector does not apply
		}
		sel, _ := w[key].(map[string]any)
		if sel == nil {
			sel = map[string]any{}
			w[key] = sel
		}
		exprs, _ := sel["matchExpressions"].([]any)
		sel["matchExpressions"] = append(exprs, map[string]any{"key": neverLabel, "operator": "Exists"})
	}
	if err := unstructured.SetNestedSlice(u.Object, hooks, "webhooks"); err != nil {
		t.Fatal(err)
	}
}

// clusterPolicyWebhook is the chart's webhook for cluster policies.
const clusterPolicyWebhook = "clusterpolicies.netpol-guard.io"

// neverLabel is on no namespace.
const neverLabel = "netpol-guard.io/chart-test-never"

// apply server-side applies u, forcing ownership. Server-side apply rejects any field the
// type's schema (built-in or CRD) does not declare.
func apply(ctx context.Context, t *testing.T, c client.Client, what string, u *unstructured.Unstructured) {
	t.Helper()
	err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("netpol-guard-chart-test"), client.ForceOwnership)
	if err != nil {
		t.Errorf("%s: apply %s %s/%s: %v", what, u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
}

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u.DeepCopy()
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(obj.GetObjectKind().GroupVersionKind())
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return u
}

// moduleDir downloads a module version through the Go module proxy (or finds it in the
// module cache) and returns its directory. It runs outside the main module, so go.mod and
// go.sum are not touched.
func moduleDir(t *testing.T, modVersion string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", modVersion)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || info.Dir == "" {
		t.Fatalf("go mod download %s: %v %v %s", modVersion, err, jerr, info.Error)
	}
	return info.Dir
}

// readCRDs decodes a file of CRDs strictly. A Helm-templated file (as cert-manager shipped
// before its CRDs moved to plain controller-gen output) is reported, not guessed at.
func readCRDs(t *testing.T, path string) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("{{")) {
		t.Fatalf("%s is a Helm template, not a plain CRD: render it (helm template) before installing", path)
	}
	objs, err := decodeStrict(string(raw))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, o := range objs {
		// envtest registers the apiextensions types in client-go's scheme, so decodeStrict
		// has already decoded these into the Go type, strictly.
		crd, ok := o.(*apiextensionsv1.CustomResourceDefinition)
		if !ok {
			t.Fatalf("%s: %s is not a CustomResourceDefinition", path, o.GetObjectKind().GroupVersionKind())
		}
		crds = append(crds, crd)
	}
	return crds
}

func findService(t *testing.T, m manifest, headless bool) *corev1.Service {
	t.Helper()
	var found []*corev1.Service
	for _, s := range all[*corev1.Service](m) {
		if (s.Spec.ClusterIP == corev1.ClusterIPNone) == headless {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("values %s: want one %s Service, got %d", m.name, map[bool]string{true: "headless", false: "webhook"}[headless], len(found))
	}
	return found[0]
}

func servicePort(t *testing.T, s *corev1.Service, name string) corev1.ServicePort {
	t.Helper()
	for _, p := range s.Spec.Ports {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("Service %s has no port %q", s.Name, name)
	return corev1.ServicePort{}
}

// containerPort resolves a named or numbered port to its number in c.
func containerPort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Errorf("container %s has no port %q", c.Name, p.StrVal)
	return 0
}

func volume(t *testing.T, spec corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

func ptrStr[T any](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}
