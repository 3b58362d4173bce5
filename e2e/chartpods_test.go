//go:build linux

package e2e

// The chart's pods, run as the chart runs them. TestChartOnControlPlane proves the rendered
// objects are valid; this runs what they say. For every values set the chart is rendered
// and applied to a real API server, and the webhook Deployment's and the agent DaemonSet's
// containers are started from the rendered command, args, env, volumes and securityContext
// (harness.StartChartPod: no container runtime, but the real binary, as the rendered user,
// with a read-only root and only the rendered mounts writable). The webhook talks to the
// API server with a token of the chart's ServiceAccount, so the chart's RBAC is all it
// may do; the API server calls it through the rendered webhook configuration and Service
// (the Service's ClusterIP on the loopback, its port forwarded to the targetPort as
// kube-proxy would); the agent runs in a lab node's network namespace, reads that node's
// conntrack, resolves the headless Service and pushes with its projected token; the
// rendered probes are asked as the kubelet asks them; and `helm test`'s Pod runs its
// command. The test plays cert-manager (and cainjector), and the user who provides the
// Secrets the chart names but does not create.

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol-guard/netpol-guard/e2e/harness"
)

const (
	// chartShop is where the test's kubectl applies go: the lab's client and server pods
	// live there, and it is labelled so that every values set's namespaceSelector picks it.
	chartShop = "shop"
	chartNode = "lab-node"
	// The webhook Services' ClusterIPs: 10.0.0.150 + the values set's index, inside
	// envtest's service range and away from serving_linux_test's.
	chartServiceIPBase = 150
	injectCAFrom       = "cert-manager.io/inject-ca-from"
	admissionsMetric   = "netpol_guard_admission_requests_total"
)

func TestChartPods(t *testing.T) {
	helm := requireHelm(t)
	assets := requireAssets(t)
	if why := harness.NetLabUnavailable(); why != "" {
		skipOrFailCI(t, why)
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		skipOrFailCI(t, "setpriv not found (util-linux): it runs a pod's process as its user in a network namespace")
	}
	ctx := t.Context()
	cp, built := startControlPlane(t, assets)

	lab, err := harness.NewNetLab()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	if err := lab.ServeTCPEcho(lab.Server, harness.LabServerIP+":"+strconv.Itoa(harness.LabServerPort)); err != nil {
		t.Fatal(err)
	}
	// The node reaches the Service range through its uplink, as nodes reach ClusterIPs.
	if out, err := exec.Command("ip", "-n", lab.Node, "route", "add", "10.0.0.0/24", "via", harness.LabHostIP).CombinedOutput(); err != nil {
		t.Fatalf("route to the Service range: %v\n%s", err, out)
	}
	snap := harness.LabObjects(chartShop, map[string]string{"team": "platform"}, chartNode)
	if err := cp.CreateCluster(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	for i, vs := range valuesSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			runChartPods(t, cp, lab, helm, vs, fmt.Sprintf("10.0.0.%d", chartServiceIPBase+i))
		})
	}
}

func runChartPods(t *testing.T, cp *harness.ControlPlane, lab *harness.NetLab, helm string, vs valuesSet, clusterIP string) {
	ctx := t.Context()
	// The user's CA: what they sign the Secrets they provide with. An existing-Secret
	// install's caBundle is theirs; the values file's is a CA whose key nobody has.
	userCA, err := harness.NewCA("chart user CA")
	if err != nil {
		t.Fatal(err)
	}
	m := render(t, helm, vs, "--set", "tls.existingSecret.caBundle="+base64.StdEncoding.EncodeToString(userCA.CertPEM))
	d, _ := webhookContainer(t, m)
	svc := findService(t, m, false)
	flowsSvc := findService(t, m, true)

	if err := cp.EnsureNamespace(ctx, vs.namespace, nil); err != nil {
		t.Fatal(err)
	}
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	var testPod *corev1.Pod
	for _, obj := range m.objects {
		switch o := obj.(type) {
		case *unstructured.Unstructured:
			continue // cert-manager's and the Prometheus Operator's: played below, or not run here
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			vwc = o.DeepCopy()
			continue
		case *corev1.Pod:
			if o.Annotations["helm.sh/hook"] == "test" {
				testPod = o
				continue
			}
		case *corev1.Service:
			if o.Name == svc.Name {
				// The test is the ClusterIP allocator: it puts the address on the loopback.
				o = o.DeepCopy()
				o.Spec.ClusterIP = clusterIP
				obj = o
			}
		}
		apply(ctx, t, cp.Client, vs.name, toUnstructured(t, obj))
	}
	if t.Failed() {
		t.FailNow()
	}
	secrets := playCertManager(t, cp, m)
	provideUserSecrets(t, cp, m, userCA, secrets)
	if vwc == nil {
		t.Fatal("no ValidatingWebhookConfiguration rendered")
	}
	injectCABundle(t, cp, m, vwc)
	apply(ctx, t, cp.Client, "webhook configuration", toUnstructured(t, vwc))
	t.Cleanup(func() {
		// Not the test's context: it has ended when cleanups run.
		if err := cp.Client.Delete(context.Background(), vwc); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting %s: %v", vwc.Name, err)
		}
	})
	removeAddr, err := harness.AddLoopbackAddress(clusterIP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeAddr(); err != nil {
			t.Errorf("removing %s from the loopback: %v", clusterIP, err)
		}
	})

	// The webhook pod, in this machine's network namespace (its pod IP is the lab uplink's
	// address here, which the node reaches), on the rendered ports.
	spec := d.Spec.Template.Spec
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if l, err := net.Listen("tcp", ":"+strconv.Itoa(int(p.ContainerPort))); err != nil {
				t.Fatalf("the webhook pod's port %s (%d) is taken on this machine: %v", p.Name, p.ContainerPort, err)
			} else {
				l.Close()
			}
		}
	}
	wh, err := harness.StartChartPod(ctx, cp, harness.ChartPodOptions{
		Name: vs.name + "-webhook", Namespace: vs.namespace, Spec: spec,
		PodName: d.Name + "-6f7b9c5d8-k2x9q", NodeName: chartNode, PodIP: harness.LabHostIP, HostIP: harness.LabNodeIP,
	})
	if err != nil {
		t.Fatal(err)
	}
	allowed := allowedLogLines(m)
	whc := wh.Container
	_, flags := parseArgs(t, wh.Argv[1:])
	t.Cleanup(func() {
		stopChartPod(t, wh, allowed)
		// The last snapshot, written on shutdown where the mount is.
		if path := flag1(flags, "snapshot-path"); path != "" {
			if _, err := os.Stat(path); err != nil {
				t.Errorf("no flow cache snapshot after shutdown: %v", err)
			}
		}
	})
	if err := wh.WaitProbe(ctx, whc.ReadinessProbe, 3*time.Minute); err != nil {
		t.Fatalf("readiness: %v\n--- log ---\n%s", err, wh.Logs())
	}
	if err := wh.Probe(ctx, whc.LivenessProbe); err != nil {
		t.Errorf("liveness: %v", err)
	}

	// The Service, as kube-proxy makes it: each port at the ClusterIP reaches the pod's
	// targetPort.
	servicePorts := map[string]int{}
	for _, p := range svc.Spec.Ports {
		target, err := wh.ContainerPort(p.TargetPort)
		if err != nil {
			t.Fatalf("Service %s port %s: %v", svc.Name, p.Name, err)
		}
		servicePorts[p.Name] = int(p.Port)
		if int(p.Port) == target {
			// The pod listens on every address of this network namespace, the ClusterIP's
			// too: the Service's port reaches it without forwarding.
			continue
		}
		listen := net.JoinHostPort(clusterIP, strconv.Itoa(int(p.Port)))
		if _, err := harness.StartServiceProxy(cp, listen, "127.0.0.1:"+strconv.Itoa(target)); err != nil {
			t.Fatal(err)
		}
	}
	metrics := func() string {
		t.Helper()
		port, ok := servicePorts["metrics"]
		if !ok {
			t.Fatalf("Service %s has no metrics port", svc.Name)
		}
		body, err := httpGet(ctx, "http://"+net.JoinHostPort(clusterIP, strconv.Itoa(port))+"/metrics")
		if err != nil {
			t.Fatalf("metrics through Service %s: %v", svc.Name, err)
		}
		return body
	}

	// The API server calls the webhook through the rendered configuration: its Service,
	// path and caBundle.
	waitAdmissionCall(t, cp, metrics)

	mode := flag1(flags, "mode")
	ds := all[*appsv1.DaemonSet](m)
	// A default-deny in the shop, named for the values set (Events there outlive it).
	policy := "default-deny-" + vs.name
	var agent *harness.ChartPod
	if len(ds) == 1 {
		agent = runChartAgent(t, cp, lab, m, ds[0], svc, flowsSvc, clusterIP, allowed)
		res := kubectlApply(t, cp, denyIngress(chartShop, policy, nil))
		t.Logf("$ %s\n%s", res.CommandLine(), res.Output)
		switch mode {
		case "warn", "enforce": // enforce with less than --min-history of flows warns
			wantWarnings(t, res, "cut shop/client → shop/server TCP/8080")
		default:
			wantAdmitted(t, res)
		}
		// The records the webhook writes with the chart's RBAC.
		switch mode {
		case "warn":
			waitEvent(t, cp, chartShop, policy, "WouldCutFlows")
		case "audit":
			waitEvent(t, cp, chartShop, policy, "CutAudited")
		}
	} else {
		wantAdmitted(t, kubectlApply(t, cp, denyIngress(chartShop, policy, nil)))
	}
	if res := kubectl(t, cp, "delete", "networkpolicy", "-n", chartShop, policy); res.ExitCode != 0 {
		t.Errorf("cleaning up: %s", res)
	}

	if testPod != nil {
		runHelmTest(t, cp, lab, testPod, svc, clusterIP)
	}

	// With the webhook gone, the rendered failurePolicy decides: Fail rejects.
	if fp := vwc.Webhooks[0].FailurePolicy; fp != nil && *fp == admissionregistrationv1.Fail {
		// The agent first: it has no other replica to push to.
		if agent != nil {
			if err := agent.Stop(); err != nil {
				t.Error(err)
			}
		}
		if err := wh.Stop(); err != nil {
			t.Error(err)
		}
		res := kubectlApply(t, cp, denyIngress(chartShop, policy, nil), "--dry-run=server")
		if res.ExitCode == 0 || !strings.Contains(res.Stderr, "failed calling webhook") {
			t.Errorf("with the webhook stopped and failurePolicy Fail, want a rejection:\n%s", res)
		}
	}
}

// runChartAgent runs the agent DaemonSet's pod in the lab node's network namespace, makes
// traffic there until the agent has pushed it, and checks its probes.
func runChartAgent(t *testing.T, cp *harness.ControlPlane, lab *harness.NetLab, m manifest, ds *appsv1.DaemonSet, svc, flowsSvc *corev1.Service, clusterIP string, allowed []*regexp.Regexp) *harness.ChartPod {
	ctx := t.Context()
	// The cluster's DNS, for the node: the headless Service's one ready endpoint is the
	// webhook pod, the webhook Service is its ClusterIP.
	remove, err := harness.SetNetnsHosts(lab.Node, map[string]string{
		flowsSvc.Name + "." + m.namespace + ".svc": harness.LabHostIP,
		svc.Name + "." + m.namespace + ".svc":      clusterIP,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = remove() })
	agent, err := harness.StartChartPod(ctx, cp, harness.ChartPodOptions{
		Name: m.name + "-agent", Namespace: m.namespace, Spec: ds.Spec.Template.Spec,
		PodName: ds.Name + "-x7k2p", NodeName: chartNode, PodIP: harness.LabNodeIP, HostIP: harness.LabNodeIP,
		Netns: lab.Node,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopChartPod(t, agent, allowed) })
	var metricsPort int
	for _, p := range agent.Container.Ports {
		if p.Name == "metrics" {
			metricsPort = int(p.ContainerPort)
		}
	}
	if metricsPort == 0 {
		// Metrics on the node's loopback only (agent.metricsHost): no container port names
		// them, the rendered flag does.
		for _, a := range agent.Container.Args {
			if addr, ok := strings.CutPrefix(a, "--metrics-bind-address="); ok {
				_, port, _ := net.SplitHostPort(addr)
				metricsPort, _ = strconv.Atoi(port)
			}
		}
	}
	serviceAddr := harness.LabServiceIP + ":" + strconv.Itoa(harness.LabServicePort)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := lab.TCPEcho(ctx, lab.Client, serviceAddr); err != nil {
			t.Fatal(err)
		}
		body, err := agent.Get(ctx, metricsPort, "/metrics")
		if err == nil && harness.MetricSum(body, "netpol_guard_agent_edges_pushed_total") >= 1 {
			if n := harness.MetricSum(body, "netpol_guard_agent_push_errors_total"); n != 0 {
				t.Errorf("agent push errors: %v", n)
			}
			break
		}
		if exited, exitErr := agent.Exited(); exited {
			t.Fatalf("the agent exited: %v\n--- log ---\n%s", exitErr, agent.Logs())
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent pushed nothing within 90s of traffic (metrics: %v)\n--- log ---\n%s", err, agent.Logs())
		}
		time.Sleep(time.Second)
	}
	if err := agent.WaitProbe(ctx, agent.Container.ReadinessProbe, 30*time.Second); err != nil {
		t.Errorf("agent readiness: %v", err)
	}
	if err := agent.Probe(ctx, agent.Container.LivenessProbe); err != nil {
		t.Errorf("agent liveness: %v", err)
	}
	return agent
}

// runHelmTest runs `helm test`'s Pod: its command, with its env and mounts, from the lab
// node (where the cluster's DNS names resolve), as its user.
func runHelmTest(t *testing.T, cp *harness.ControlPlane, lab *harness.NetLab, pod *corev1.Pod, svc *corev1.Service, clusterIP string) {
	remove, err := harness.SetNetnsHosts(lab.Node, map[string]string{svc.Name + "." + pod.Namespace + ".svc": clusterIP})
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	p, err := harness.StartChartPod(t.Context(), cp, harness.ChartPodOptions{
		Name: pod.Name, Namespace: pod.Namespace, Spec: pod.Spec, PodName: pod.Name, NodeName: chartNode,
		PodIP: harness.LabNodeIP, HostIP: harness.LabNodeIP, Netns: lab.Node, WaitExit: 2 * time.Minute,
	})
	if p != nil {
		t.Logf("helm test %s:\n%s", pod.Name, p.Logs())
	}
	if err != nil {
		t.Fatalf("helm test: %v", err)
	}
	if stray, err := p.StrayWrites(); err != nil || len(stray) > 0 {
		t.Errorf("helm test wrote outside its writable mounts: %v %v", stray, err)
	}
}

// stopChartPod stops a pod's process and fails the test on an unclean exit, on error and
// "forbidden" log lines, and on files written outside its writable mounts.
func stopChartPod(t *testing.T, p *harness.ChartPod, allowed []*regexp.Regexp) {
	t.Helper()
	if err := p.Stop(); err != nil {
		t.Errorf("%v", err)
	}
	if problems := p.LogProblems(allowed...); len(problems) > 0 {
		t.Errorf("pod %s logged errors:\n%s", p.Opts.Name, strings.Join(problems, "\n"))
	}
	stray, err := p.StrayWrites()
	if err != nil {
		t.Errorf("pod %s: %v", p.Opts.Name, err)
	}
	if len(stray) > 0 {
		t.Errorf("pod %s wrote outside its writable mounts (readOnlyRootFilesystem): %v", p.Opts.Name, stray)
	}
	if t.Failed() {
		t.Logf("--- log of pod %s ---\n%s", p.Opts.Name, p.Logs())
	}
}

// allowedLogLines are the errors a values set must log here: with a flow source configured
// (Hubble Relay, Goldmane, the Flow Aggregator: there is none on this machine), the stream's
// failure to connect; with leader election, the shutdown's own end of it, which the
// libraries report as errors when their timing falls so: client-go's read of the Lease
// cancelled in flight ("context canceled"), and controller-runtime's "leader election lost"
// when its leader elector stops after the manager's stop sequence began.
func allowedLogLines(m manifest) []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, d := range all[*appsv1.Deployment](m) {
		for _, c := range d.Spec.Template.Spec.Containers {
			if slices.Contains(c.Args, "--leader-elect") {
				out = append(out, regexp.MustCompile(`"msg":"Error retrieving lease lock".*"error":"context canceled"`),
					regexp.MustCompile(`"msg":"error received after stop sequence was engaged","error":"leader election lost"`))
			}
			// Hubble Relay, Goldmane or the Flow Aggregator: none runs on this machine.
			if slices.ContainsFunc(c.Args, func(a string) bool {
				return strings.HasPrefix(a, "--hubble-relay-address=") || strings.HasPrefix(a, "--goldmane-address=") ||
					strings.HasPrefix(a, "--antrea-flow-aggregator-address=")
			}) {
				out = append(out, regexp.MustCompile(`Flow stream ended; reconnecting`))
			}
		}
	}
	return out
}

// waitAdmissionCall dry-runs a policy that selects nothing in the shop until the
// webhook's admission counter moves: the API server has picked up the configuration and
// reaches the webhook through it.
func waitAdmissionCall(t *testing.T, cp *harness.ControlPlane, metrics func() string) {
	t.Helper()
	probe := quietPolicy(chartShop, "chart-pods-probe")
	base := harness.MetricSum(metrics(), admissionsMetric)
	deadline := time.Now().Add(time.Minute)
	var lastErr error
	for {
		if err := cp.Client.Create(t.Context(), probe.DeepCopy(), client.DryRunAll); err != nil {
			lastErr = err
		}
		if harness.MetricSum(metrics(), admissionsMetric) > base {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server did not call the webhook within a minute (last error: %v)", lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// playCertManager issues what the rendered Certificates ask for, as cert-manager would:
// a self-signed Issuer's Certificate becomes a CA, a CA Issuer's is signed by the CA in
// the Issuer's Secret, for the Certificate's DNS names. It returns the Secrets it wrote.
func playCertManager(t *testing.T, cp *harness.ControlPlane, m manifest) map[string]bool {
	t.Helper()
	issuers := map[string]*unstructured.Unstructured{}
	for _, u := range unstructuredOf(m, "Issuer") {
		issuers[u.GetName()] = u
	}
	certs := unstructuredOf(m, "Certificate")
	// CAs first.
	slices.SortStableFunc(certs, func(a, b *unstructured.Unstructured) int {
		ca, _, _ := unstructured.NestedBool(a.Object, "spec", "isCA")
		cb, _, _ := unstructured.NestedBool(b.Object, "spec", "isCA")
		switch {
		case ca && !cb:
			return -1
		case cb && !ca:
			return 1
		}
		return 0
	})
	cas := map[string]*harness.CA{} // by Secret name
	written := map[string]bool{}
	for _, c := range certs {
		secretName, _, _ := unstructured.NestedString(c.Object, "spec", "secretName")
		issuerName, _, _ := unstructured.NestedString(c.Object, "spec", "issuerRef", "name")
		issuer, ok := issuers[issuerName]
		if !ok {
			t.Fatalf("Certificate %s: issuer %s is not rendered", c.GetName(), issuerName)
		}
		isCA, _, _ := unstructured.NestedBool(c.Object, "spec", "isCA")
		var data map[string][]byte
		if _, selfSigned, _ := unstructured.NestedMap(issuer.Object, "spec", "selfSigned"); selfSigned && isCA {
			cn, _, _ := unstructured.NestedString(c.Object, "spec", "commonName")
			ca, err := harness.NewCA(cn)
			if err != nil {
				t.Fatal(err)
			}
			key, err := ca.KeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			cas[secretName] = ca
			data = map[string][]byte{"tls.crt": ca.CertPEM, "tls.key": key, "ca.crt": ca.CertPEM}
		} else if caSecret, ok, _ := unstructured.NestedString(issuer.Object, "spec", "ca", "secretName"); ok {
			ca := cas[caSecret]
			if ca == nil {
				t.Fatalf("Certificate %s: CA Issuer %s's Secret %s was not issued", c.GetName(), issuerName, caSecret)
			}
			dnsNames, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "dnsNames")
			durationStr, _, _ := unstructured.NestedString(c.Object, "spec", "duration")
			validity, err := time.ParseDuration(durationStr)
			if err != nil {
				validity = 90 * 24 * time.Hour
			}
			leaf, err := ca.Issue(validity, dnsNames)
			if err != nil {
				t.Fatal(err)
			}
			data = map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM, "ca.crt": ca.CertPEM}
		} else {
			t.Fatalf("Certificate %s: issuer %s is neither self-signed (for a CA) nor a CA issuer", c.GetName(), issuerName)
		}
		labels, _, _ := unstructured.NestedStringMap(c.Object, "spec", "secretTemplate", "labels")
		createSecret(t, cp, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: m.namespace, Name: secretName, Labels: labels,
				Annotations: map[string]string{"cert-manager.io/certificate-name": c.GetName()}},
			Type: corev1.SecretTypeTLS, Data: data,
		})
		written[secretName] = true
	}
	return written
}

// provideUserSecrets creates, as the user would, the Secrets the pods mount that the chart
// neither renders nor has issued (an existing serving Secret, Hubble's client
// certificates): tls.crt and tls.key for the webhook Service's names, and ca.crt, from the
// user's CA.
func provideUserSecrets(t *testing.T, cp *harness.ControlPlane, m manifest, ca *harness.CA, issued map[string]bool) {
	t.Helper()
	var specs []corev1.PodSpec
	for _, d := range all[*appsv1.Deployment](m) {
		specs = append(specs, d.Spec.Template.Spec)
	}
	for _, d := range all[*appsv1.DaemonSet](m) {
		specs = append(specs, d.Spec.Template.Spec)
	}
	rendered := map[string]bool{}
	for _, s := range all[*corev1.Secret](m) {
		rendered[s.Name] = true
	}
	svc := findService(t, m, false)
	names := []string{svc.Name, svc.Name + "." + m.namespace, svc.Name + "." + m.namespace + ".svc", svc.Name + "." + m.namespace + ".svc.cluster.local"}
	for _, spec := range specs {
		for _, v := range spec.Volumes {
			if v.Projected != nil {
				provideProjected(t, cp, m.namespace, v.Projected, ca, rendered, issued)
				continue
			}
			if v.Secret == nil || rendered[v.Secret.SecretName] || issued[v.Secret.SecretName] || (v.Secret.Optional != nil && *v.Secret.Optional) {
				continue
			}
			leaf, err := ca.Issue(24*time.Hour, names)
			if err != nil {
				t.Fatal(err)
			}
			createSecret(t, cp, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: m.namespace, Name: v.Secret.SecretName},
				Type:       corev1.SecretTypeTLS,
				Data:       map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM, "ca.crt": ca.CertPEM},
			})
			issued[v.Secret.SecretName] = true
		}
	}
}

// provideProjected creates the Secrets and ConfigMaps a projected volume takes its files
// from (a flow source's client certificate and CA bundle): each key it names, a
// certificate, key or CA of the user's CA.
func provideProjected(t *testing.T, cp *harness.ControlPlane, ns string, v *corev1.ProjectedVolumeSource, ca *harness.CA, rendered, issued map[string]bool) {
	t.Helper()
	for _, src := range v.Sources {
		switch {
		case src.Secret != nil && !rendered[src.Secret.Name] && !issued[src.Secret.Name]:
			leaf, err := ca.Issue(24*time.Hour, []string{"netpol-guard"})
			if err != nil {
				t.Fatal(err)
			}
			createSecret(t, cp, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: src.Secret.Name},
				Type:       corev1.SecretTypeTLS,
				Data:       map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM, "ca.crt": ca.CertPEM},
			})
			issued[src.Secret.Name] = true
		case src.ConfigMap != nil && !issued["configmap/"+src.ConfigMap.Name]:
			data := map[string]string{}
			for _, item := range src.ConfigMap.Items {
				data[item.Key] = string(ca.CertPEM)
			}
			if len(data) == 0 {
				data["ca.crt"] = string(ca.CertPEM)
			}
			if err := cp.Client.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: src.ConfigMap.Name}, Data: data}); err != nil {
				t.Fatalf("ConfigMap %s/%s: %v", ns, src.ConfigMap.Name, err)
			}
			issued["configmap/"+src.ConfigMap.Name] = true
		}
	}
}

func createSecret(t *testing.T, cp *harness.ControlPlane, s *corev1.Secret) {
	t.Helper()
	if err := cp.Client.Create(t.Context(), s); err != nil {
		t.Fatalf("Secret %s/%s: %v", s.Namespace, s.Name, err)
	}
}

// injectCABundle does cainjector's part: a configuration annotated inject-ca-from
// <namespace>/<Certificate> gets the ca.crt of that Certificate's Secret as every
// webhook's caBundle.
func injectCABundle(t *testing.T, cp *harness.ControlPlane, m manifest, vwc *admissionregistrationv1.ValidatingWebhookConfiguration) {
	t.Helper()
	from, ok := vwc.Annotations[injectCAFrom]
	if !ok {
		return
	}
	ns, name, _ := strings.Cut(from, "/")
	var secretName string
	for _, c := range unstructuredOf(m, "Certificate") {
		if c.GetName() == name && c.GetNamespace() == ns {
			secretName, _, _ = unstructured.NestedString(c.Object, "spec", "secretName")
		}
	}
	if secretName == "" {
		t.Fatalf("%s: %s names no rendered Certificate", injectCAFrom, from)
	}
	var s corev1.Secret
	if err := cp.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: secretName}, &s); err != nil {
		t.Fatalf("%s: %v", injectCAFrom, err)
	}
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig.CABundle = s.Data["ca.crt"]
	}
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b), err
}
