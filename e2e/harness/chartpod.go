//go:build linux

package harness

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"k8s.io/apimachinery/pkg/types"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ChartPodOptions describe one pod of a rendered chart to run as a kubelet would, without a
// container runtime: the netpol-guard binary stands in for the image's entrypoint.
type ChartPodOptions struct {
	// Name tells pods apart (log file, root directory); Namespace is the pod's.
	Name, Namespace string
	// Spec is the rendered pod template's spec; Container names the container to run
	// (default: the first).
	Spec      corev1.PodSpec
	Container string
	// What the downward API reports: metadata.name, spec.nodeName, status.podIP,
	// status.hostIP.
	PodName, NodeName, PodIP, HostIP string
	// Netns, when set, is the network namespace (ip netns) the process runs in, with the
	// /etc/netns/<Netns> files (hosts: the cluster's DNS names) in place of /etc's.
	Netns string
	// WaitExit runs the container to completion (a Job or a helm test Pod) instead of
	// leaving it running.
	WaitExit time.Duration
}

// ChartPod is a running (or, with WaitExit, finished) container of a rendered pod: a real
// process with the rendered command, args and env, its volumes materialised under Root at
// their mount paths, the user and group of its securityContext, and as the only
// credentials what the kubelet would give the pod (its ServiceAccount's tokens).
type ChartPod struct {
	*Process
	Opts ChartPodOptions
	// podUID is the pod object's, once the API server knows the pod.
	podUID types.UID
	// Root stands in for the container's root filesystem: read-only unless the container
	// says otherwise, the volumes mounted under it.
	Root string
	// Container is the rendered container; Argv what was run (paths rewritten under Root).
	Container corev1.Container
	Argv      []string
	Env       []string
	// Writable are the directories the process may write to (emptyDirs, claims).
	Writable []string
	UID, GID int

	image   string
	started time.Time
}

// inClusterDir is where the kubelet mounts the ServiceAccount token, CA and namespace.
const inClusterDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// StartChartPod materialises the pod's volumes from the API objects (Secrets, ConfigMaps,
// TokenRequests for projected ServiceAccount tokens, local directories for emptyDirs and
// claims), fills the downward API, expands $(VAR) references and starts the container's
// process. Paths into mounts, in args and env values, are rewritten under Root. A pod that
// automounts its ServiceAccount token reaches the API server through a kubeconfig
// ($KUBECONFIG) built from that token and CA, the in-cluster way: the ServiceAccount's
// RBAC is all it may do.
func StartChartPod(ctx context.Context, cp *ControlPlane, opts ChartPodOptions) (*ChartPod, error) {
	bin, err := cp.Binary(ctx)
	if err != nil {
		return nil, err
	}
	c, err := podContainer(opts.Spec, opts.Container)
	if err != nil {
		return nil, err
	}
	p := &ChartPod{Opts: opts, Container: c}
	p.UID, p.GID = runAs(opts.Spec, c)
	// A fresh directory readable by every user (the process may not be root), writable only
	// by root: the root filesystem. Its parent must be traversable too, so not t.TempDir.
	if p.Root, err = os.MkdirTemp("", "netpol-guard-pod-"+opts.Name+"-"); err != nil {
		return nil, err
	}
	cp.OnStop(func() error { return os.RemoveAll(p.Root) })
	if err := os.Chmod(p.Root, 0o755); err != nil {
		return nil, err
	}
	// The image: the binary at /netpol-guard, its entrypoint.
	image := filepath.Join(p.Root, "netpol-guard")
	p.image = image
	if err := linkOrCopy(bin, image); err != nil {
		return nil, err
	}
	// The pod as the API server knows it, so that its projected tokens are bound to it as the
	// kubelet binds them (and name its node, which node-bound flow writers need).
	if opts.PodName != "" && opts.NodeName != "" {
		if err := p.createPodObject(ctx, cp); err != nil {
			return nil, err
		}
	}
	fsGroup := -1
	if sc := opts.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		fsGroup = int(*sc.FSGroup)
	}
	mounts := map[string]string{} // mount path → local directory
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			return nil, fmt.Errorf("volume mount %s: subPath is not supported", m.Name)
		}
		v, ok := volumeNamed(opts.Spec, m.Name)
		if !ok {
			return nil, fmt.Errorf("volume mount %s: no such volume", m.Name)
		}
		dir := filepath.Join(p.Root, m.MountPath)
		writable, err := p.materialise(ctx, cp, v, dir, fsGroup)
		if err != nil {
			return nil, fmt.Errorf("volume %s at %s: %w", v.Name, m.MountPath, err)
		}
		if writable && !m.ReadOnly {
			p.Writable = append(p.Writable, dir)
		}
		mounts[m.MountPath] = dir
	}
	env := []string{"HOSTNAME=" + opts.PodName}
	if automount(opts.Spec) {
		dir := filepath.Join(p.Root, inClusterDir)
		if err := p.mountServiceAccount(ctx, cp, dir); err != nil {
			return nil, err
		}
		mounts[inClusterDir] = dir
		env = append(env, "KUBECONFIG="+filepath.Join(dir, "..kubeconfig"))
	}
	vars := map[string]string{}
	for _, e := range c.Env {
		v, err := p.envValue(ctx, cp, c, e, vars)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		vars[e.Name] = rewritePaths(v, mounts)
		env = append(env, e.Name+"="+vars[e.Name])
	}
	if len(c.EnvFrom) > 0 {
		return nil, errors.New("envFrom is not supported")
	}
	// HOME and the temporary directory: the root filesystem's, as in a container whose
	// user has no home; a /tmp mount is the temporary directory.
	tmp := p.Root
	if d, ok := mounts["/tmp"]; ok {
		tmp = d
	}
	env = append(env, "HOME="+p.Root, "TMPDIR="+tmp, "PATH="+os.Getenv("PATH"))
	p.Env = env

	var argv []string
	for _, a := range slices.Concat(c.Command, c.Args) {
		argv = append(argv, rewritePaths(expandVars(a, vars), mounts))
	}
	if len(c.Command) == 0 {
		argv = append([]string{image}, argv...)
	}
	p.Argv = argv

	cmdArgv := argv
	if opts.Netns != "" {
		pre := []string{"ip", "netns", "exec", opts.Netns}
		if p.UID != 0 {
			// ip netns exec needs root; the container's user is taken after it.
			groups := "--clear-groups"
			if fsGroup >= 0 {
				groups = "--groups=" + strconv.Itoa(fsGroup)
			}
			pre = append(pre, "setpriv", "--reuid", strconv.Itoa(p.UID), "--regid", strconv.Itoa(p.GID), groups, "--")
		}
		cmdArgv = append(pre, argv...)
	}
	logDir := filepath.Join(cp.Dir, "pods")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, err
	}
	p.started = time.Now()
	proc, err := startProcessWith(cp, "pod "+opts.Name, cmdArgv, filepath.Join(logDir, opts.Name+".log"), func(cmd *exec.Cmd) {
		cmd.Dir = p.Root
		cmd.Env = env
		if opts.Netns == "" && p.UID != 0 {
			cred := &syscall.Credential{Uid: uint32(p.UID), Gid: uint32(p.GID)}
			if fsGroup >= 0 {
				cred.Groups = []uint32{uint32(fsGroup)}
			}
			cmd.SysProcAttr.Credential = cred
		}
	})
	if err != nil {
		return nil, err
	}
	p.Process = proc
	if opts.WaitExit > 0 {
		select {
		case <-proc.exited:
		case <-time.After(opts.WaitExit):
			_ = proc.Stop()
			return p, fmt.Errorf("pod %s did not finish within %s", opts.Name, opts.WaitExit)
		}
		if proc.exitErr != nil {
			return p, fmt.Errorf("pod %s: %w", opts.Name, proc.exitErr)
		}
		return p, nil
	}
	cp.logf("Pod %s (pid %d) running as %d:%d: %s", opts.Name, proc.PID(), p.UID, p.GID, strings.Join(argv, " "))
	return p, nil
}

// Exited reports whether the process has exited, and how.
func (p *ChartPod) Exited() (bool, error) {
	select {
	case <-p.exited:
		return true, p.exitErr
	default:
		return false, nil
	}
}

func podContainer(spec corev1.PodSpec, name string) (corev1.Container, error) {
	for _, c := range spec.Containers {
		if name == "" || c.Name == name {
			return c, nil
		}
	}
	return corev1.Container{}, fmt.Errorf("no container %q", name)
}

func volumeNamed(spec corev1.PodSpec, name string) (corev1.Volume, bool) {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

// runAs is the user and group of the container's securityContext, else the pod's, else root.
func runAs(spec corev1.PodSpec, c corev1.Container) (uid, gid int) {
	if sc := spec.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = int(*sc.RunAsUser)
		}
		if sc.RunAsGroup != nil {
			gid = int(*sc.RunAsGroup)
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = int(*sc.RunAsUser)
		}
		if sc.RunAsGroup != nil {
			gid = int(*sc.RunAsGroup)
		}
	}
	return uid, gid
}

func automount(spec corev1.PodSpec) bool {
	return spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken
}

func serviceAccount(spec corev1.PodSpec) string {
	if spec.ServiceAccountName != "" {
		return spec.ServiceAccountName
	}
	return "default"
}

// materialise lays out volume v at dir as the kubelet would, and says whether the process
// may write to it.
func (p *ChartPod) materialise(ctx context.Context, cp *ControlPlane, v corev1.Volume, dir string, fsGroup int) (writable bool, err error) {
	switch {
	case v.EmptyDir != nil:
		// The kubelet makes emptyDirs world-writable.
		return true, mkdirMode(dir, 0o777, -1)
	case v.PersistentVolumeClaim != nil:
		// The test provisions the claim: a local directory, which fsGroup makes the pod's.
		var claim corev1.PersistentVolumeClaim
		if err := cp.Client.Get(ctx, clientKey(p.Opts.Namespace, v.PersistentVolumeClaim.ClaimName), &claim); err != nil {
			return false, fmt.Errorf("claim %s: %w", v.PersistentVolumeClaim.ClaimName, err)
		}
		return !v.PersistentVolumeClaim.ReadOnly, mkdirMode(dir, 0o2775, fsGroup)
	case v.Secret != nil:
		files, err := p.secretFiles(ctx, cp, v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional)
		if err != nil {
			return false, err
		}
		return false, writeVolume(dir, files, fsGroup)
	case v.ConfigMap != nil:
		files, err := p.configMapFiles(ctx, cp, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional)
		if err != nil {
			return false, err
		}
		return false, writeVolume(dir, files, fsGroup)
	case v.Projected != nil:
		files := map[string]volumeFile{}
		for _, src := range v.Projected.Sources {
			var projected map[string]volumeFile
			switch {
			case src.ServiceAccountToken != nil:
				tok, err := p.token(ctx, cp, src.ServiceAccountToken.Audience, src.ServiceAccountToken.ExpirationSeconds)
				if err != nil {
					return false, err
				}
				projected = map[string]volumeFile{src.ServiceAccountToken.Path: {data: []byte(tok), mode: fileMode(nil, v.Projected.DefaultMode)}}
			case src.Secret != nil:
				var err error
				if projected, err = p.secretFiles(ctx, cp, src.Secret.Name, src.Secret.Items, v.Projected.DefaultMode, src.Secret.Optional); err != nil {
					return false, err
				}
			case src.ConfigMap != nil:
				var err error
				if projected, err = p.configMapFiles(ctx, cp, src.ConfigMap.Name, src.ConfigMap.Items, v.Projected.DefaultMode, src.ConfigMap.Optional); err != nil {
					return false, err
				}
			default:
				return false, errors.New("projections other than serviceAccountToken, secret and configMap are not supported")
			}
			for path, f := range projected {
				files[path] = f
			}
		}
		return false, writeVolume(dir, files, fsGroup)
	}
	return false, errors.New("unsupported volume source")
}

// createPodObject creates the pod in the API server with its node, ServiceAccount and host
// network as rendered, and the status a kubelet would give it; the rest of its spec is the
// process's.
func (p *ChartPod) createPodObject(ctx context.Context, cp *ControlPlane) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Opts.Namespace, Name: p.Opts.PodName},
		Spec: corev1.PodSpec{
			NodeName: p.Opts.NodeName, ServiceAccountName: serviceAccount(p.Opts.Spec), HostNetwork: p.Opts.Spec.HostNetwork,
			AutomountServiceAccountToken: new(false),
			Containers:                   []corev1.Container{{Name: p.Container.Name, Image: p.Container.Image}},
		},
		Status: corev1.PodStatus{PodIP: p.Opts.PodIP},
	}
	if err := cp.CreatePod(ctx, pod, p.Opts.HostIP); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("pod object %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	created, err := cp.Clientset.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	p.podUID = created.UID
	return nil
}

// secretFiles are the files a Secret (or a projection of one) gives a volume: its keys, or
// the items named; none for an optional Secret that does not exist.
func (p *ChartPod) secretFiles(ctx context.Context, cp *ControlPlane, name string, items []corev1.KeyToPath, mode *int32, optional *bool) (map[string]volumeFile, error) {
	return sourceFiles("Secret "+name, items, mode, optional, func() (map[string][]byte, error) {
		s, err := cp.Clientset.CoreV1().Secrets(p.Opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return s.Data, nil
	})
}

// configMapFiles are secretFiles for a ConfigMap: its data and binary data.
func (p *ChartPod) configMapFiles(ctx context.Context, cp *ControlPlane, name string, items []corev1.KeyToPath, mode *int32, optional *bool) (map[string]volumeFile, error) {
	return sourceFiles("ConfigMap "+name, items, mode, optional, func() (map[string][]byte, error) {
		cm, err := cp.Clientset.CoreV1().ConfigMaps(p.Opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		data := map[string][]byte{}
		for k, s := range cm.Data {
			data[k] = []byte(s)
		}
		for k, b := range cm.BinaryData {
			data[k] = b
		}
		return data, nil
	})
}

// sourceFiles are the files of the data get reads from a volume's source (what names it in
// errors): its keys, or the items named; none for an optional source that does not exist.
func sourceFiles(what string, items []corev1.KeyToPath, mode *int32, optional *bool, get func() (map[string][]byte, error)) (map[string]volumeFile, error) {
	opt := optional != nil && *optional
	data, err := get()
	if apierrors.IsNotFound(err) && opt {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	files, err := keyFiles(data, items, mode, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return files, nil
}

// token asks the TokenRequest API for a token of the pod's ServiceAccount, as the kubelet
// does for a projected token (audience "" is the API server's): bound to the pod when the
// API server knows it.
func (p *ChartPod) token(ctx context.Context, cp *ControlPlane, audience string, expiration *int64) (string, error) {
	sa := serviceAccount(p.Opts.Spec)
	spec := authenticationv1.TokenRequestSpec{ExpirationSeconds: expiration}
	if p.podUID != "" {
		spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Opts.PodName, UID: p.podUID}
	}
	if audience != "" {
		spec.Audiences = []string{audience}
	}
	tr, err := cp.Clientset.CoreV1().ServiceAccounts(p.Opts.Namespace).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s/%s (audience %q): %w", p.Opts.Namespace, sa, audience, err)
	}
	return tr.Status.Token, nil
}

// mountServiceAccount writes what the kubelet mounts at inClusterDir (token, ca.crt,
// namespace) and a kubeconfig that uses them as rest.InClusterConfig would.
func (p *ChartPod) mountServiceAccount(ctx context.Context, cp *ControlPlane, dir string) error {
	tok, err := p.token(ctx, cp, "", new(int64(3607)))
	if err != nil {
		return err
	}
	mode := fileMode(nil, new(int32(0o644)))
	if err := writeVolume(dir, map[string]volumeFile{
		"token":     {data: []byte(tok), mode: mode},
		"ca.crt":    {data: cp.Config.CAData, mode: mode},
		"namespace": {data: []byte(p.Opts.Namespace), mode: mode},
	}, -1); err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["in-cluster"] = &clientcmdapi.Cluster{Server: cp.Config.Host, CertificateAuthority: filepath.Join(dir, "ca.crt")}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{TokenFile: filepath.Join(dir, "token")}
	kc.Contexts["in-cluster"] = &clientcmdapi.Context{Cluster: "in-cluster", AuthInfo: "sa", Namespace: p.Opts.Namespace}
	kc.CurrentContext = "in-cluster"
	path := filepath.Join(dir, "..kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return err
	}
	return os.Chmod(path, 0o644)
}

// envValue is an env var's value as the kubelet computes it.
func (p *ChartPod) envValue(_ context.Context, _ *ControlPlane, c corev1.Container, e corev1.EnvVar, vars map[string]string) (string, error) {
	if e.ValueFrom == nil {
		return expandVars(e.Value, vars), nil
	}
	switch {
	case e.ValueFrom.FieldRef != nil:
		switch path := e.ValueFrom.FieldRef.FieldPath; path {
		case "metadata.namespace":
			return p.Opts.Namespace, nil
		case "metadata.name":
			return p.Opts.PodName, nil
		case "spec.nodeName":
			return p.Opts.NodeName, nil
		case "spec.serviceAccountName":
			return serviceAccount(p.Opts.Spec), nil
		case "status.podIP", "status.podIPs":
			return p.Opts.PodIP, nil
		case "status.hostIP", "status.hostIPs":
			return p.Opts.HostIP, nil
		default:
			return "", fmt.Errorf("fieldRef %s is not supported", path)
		}
	case e.ValueFrom.ResourceFieldRef != nil:
		ref := e.ValueFrom.ResourceFieldRef
		if ref.ContainerName != "" && ref.ContainerName != c.Name {
			return "", fmt.Errorf("resourceFieldRef of container %s is not supported", ref.ContainerName)
		}
		return resourceValue(c, ref)
	}
	return "", errors.New("only fieldRef and resourceFieldRef are supported")
}

// resourceValue is what the downward API reports for a container resource: the limit (or,
// without one, the node's allocatable, which this machine's memory stands in for), divided
// by the divisor and rounded up.
func resourceValue(c corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("resource %q", ref.Resource)
	}
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		return "", fmt.Errorf("%s is not set: the node's allocatable would be used", ref.Resource)
	}
	div := ref.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	if name == "cpu" {
		return strconv.FormatInt((q.MilliValue()+div.MilliValue()-1)/div.MilliValue(), 10), nil
	}
	return strconv.FormatInt((q.Value()+div.Value()-1)/div.Value(), 10), nil
}

// klogError is the head of a klog error line (client-go's own reports): E1205 14:15:37.123456.
var klogError = regexp.MustCompile(`^E\d{4} \d`)

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// expandVars expands $(VAR) as the kubelet does: a defined variable is replaced, an
// undefined reference is kept, $$ escapes a $.
func expandVars(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// rewritePaths moves every absolute path that lies in a mount under that mount's local
// directory: "--cert-dir=/etc/x/tls" → "--cert-dir=<root>/etc/x/tls".
func rewritePaths(s string, mounts map[string]string) string {
	paths := make([]string, 0, len(mounts))
	for m := range mounts {
		paths = append(paths, m)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := false
		if i == 0 || strings.ContainsRune("= \t\n'\":,", rune(s[i-1])) {
			for _, m := range paths {
				rest := s[i:]
				if strings.HasPrefix(rest, m) && (len(rest) == len(m) || strings.ContainsRune("/ \t\n'\":,", rune(rest[len(m)]))) {
					b.WriteString(mounts[m])
					i += len(m)
					matched = true
					break
				}
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

type volumeFile struct {
	data []byte
	mode os.FileMode
}

func fileMode(item *int32, def *int32) os.FileMode {
	switch {
	case item != nil:
		return os.FileMode(*item)
	case def != nil:
		return os.FileMode(*def)
	}
	return 0o644 // the API's default defaultMode
}

// keyFiles picks a Secret's or ConfigMap's keys as the volume's items say (all keys when
// none are given).
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, optional bool) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = volumeFile{data: v, mode: fileMode(nil, defaultMode)}
		}
		return files, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("no key %s (the kubelet would not start the pod)", it.Key)
		}
		files[it.Path] = volumeFile{data: v, mode: fileMode(it.Mode, defaultMode)}
	}
	return files, nil
}

// writeVolume lays out files as the kubelet's AtomicWriter does (SecretVolume), read-only
// for everyone but root; with an fsGroup the files belong to that group and the group may
// read them, as the kubelet's volume ownership does.
func writeVolume(dir string, files map[string]volumeFile, fsGroup int) error {
	data := map[string][]byte{}
	for name, f := range files {
		data[name] = f.data
	}
	if _, err := NewSecretVolume(dir, data); err != nil {
		return err
	}
	for name, f := range files {
		path := filepath.Join(dir, name)
		mode := f.mode
		if fsGroup >= 0 {
			mode |= 0o440
			if err := os.Chown(path, 0, fsGroup); err != nil {
				return err
			}
		}
		if err := os.Chmod(path, mode); err != nil {
			return err
		}
	}
	return nil
}

func mkdirMode(dir string, mode os.FileMode, group int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if group >= 0 {
		if err := os.Chown(dir, 0, group); err != nil {
			return err
		}
	}
	return os.Chmod(dir, mode)
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return os.Chmod(dst, 0o755)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ContainerPort resolves a probe's or Service's port (a number, or a container port's
// name) to the container's port number.
func (p *ChartPod) ContainerPort(port intstr.IntOrString) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, cp := range p.Container.Ports {
		if cp.Name == port.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", p.Container.Name, port.StrVal)
}

// httpClient dials from the pod's network namespace.
func (p *ChartPod) httpClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true}
	if p.Opts.Netns != "" {
		ns := p.Opts.Netns
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := InNetns(ns, func() (err error) {
				c, err = (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}
	}
	return &http.Client{Timeout: timeout, Transport: tr}
}

// Probe asks an HTTP probe as the kubelet does: GET <scheme>://127.0.0.1:<port><path>
// from the pod's network namespace (the kubelet uses the pod IP; the pods here listen on
// every address), without verifying a certificate, success on 200-399.
func (p *ChartPod) Probe(ctx context.Context, probe *corev1.Probe) error {
	if probe == nil || probe.HTTPGet == nil {
		return errors.New("not an HTTP probe")
	}
	g := probe.HTTPGet
	port, err := p.ContainerPort(g.Port)
	if err != nil {
		return err
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := g.Host
	if host == "" {
		host = "127.0.0.1"
	}
	timeout := time.Duration(max(probe.TimeoutSeconds, 1)) * time.Second
	url := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + g.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	c := p.httpClient(timeout)
	if scheme == "https" {
		c.Transport.(*http.Transport).TLSClientConfig = insecureTLS()
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// WaitProbe probes until the probe succeeds, the process exits or timeout passes.
func (p *ChartPod) WaitProbe(ctx context.Context, probe *corev1.Probe, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := p.Probe(ctx, probe)
		if err == nil {
			return nil
		}
		if exited, exitErr := p.Exited(); exited {
			return fmt.Errorf("pod %s exited (%v) before its probe passed: %w", p.Opts.Name, exitErr, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod %s: probe not passed after %s: %w", p.Opts.Name, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Get fetches http://127.0.0.1:<port><path> from the pod's network namespace.
func (p *ChartPod) Get(ctx context.Context, port int, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := p.httpClient(10 * time.Second).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %d", req.URL, resp.StatusCode)
	}
	return string(b), err
}

// LogProblems returns the log lines at error level, and those that carry the API server's
// "forbidden" (a permission the ServiceAccount lacks), except those allowed matches.
func (p *ChartPod) LogProblems(allowed ...*regexp.Regexp) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(p.Logs()))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `"level":"error"`) && !strings.Contains(line, "\tERROR\t") &&
			!strings.Contains(strings.ToLower(line), "forbidden") && !klogError.MatchString(line) {
			continue
		}
		if slices.ContainsFunc(allowed, func(re *regexp.Regexp) bool { return re.MatchString(line) }) {
			continue
		}
		out = append(out, line)
	}
	return out
}

// StrayWrites returns the files and directories the process created or changed outside
// its writable mounts since it started: under Root (a read-only root filesystem), and,
// for a process that is not root, anywhere in the machine's temporary directories (which
// a container would not see).
func (p *ChartPod) StrayWrites() ([]string, error) {
	var out []string
	err := filepath.WalkDir(p.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if slices.Contains(p.Writable, path) {
			return filepath.SkipDir
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		changed := changedSince(info, p.started)
		if path == p.image {
			// A hard link of the binary: other pods' links change its ctime.
			changed = info.ModTime().After(p.started)
		}
		if path != p.Root && changed {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	if p.UID == 0 {
		return out, nil
	}
	for _, dir := range []string{os.TempDir(), "/tmp", "/var/tmp", "/dev/shm"} {
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), "netpol-guard-pod-") {
				return filepath.SkipDir // pod roots: each pod's own is checked above
			}
			info, err := os.Lstat(path)
			if err != nil {
				return nil
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == p.UID && changedSince(info, p.started) && !slices.Contains(out, path) {
				out = append(out, path)
			}
			return nil
		})
	}
	return out, nil
}

func changedSince(info os.FileInfo, t time.Time) bool {
	if info.ModTime().After(t) {
		return true
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec).After(t)
	}
	return false
}

func clientKey(namespace, name string) client.ObjectKey {
	return client.ObjectKey{Namespace: namespace, Name: name}
}

// insecureTLS is what the kubelet's HTTPS probes use: no verification.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // as the kubelet probes

// ServiceProxy forwards a Service's port at its ClusterIP (which must be on this machine,
// AddLoopbackAddress) to a target address, as kube-proxy does: the API server calls a
// webhook at <clusterIP>:<port>, the pod listens on its targetPort.
type ServiceProxy struct {
	ln     net.Listener
	target string
	done   chan struct{}
}

// StartServiceProxy listens on listen and forwards every connection to target.
func StartServiceProxy(cp *ControlPlane, listen, target string) (*ServiceProxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("Service proxy on %s: %w", listen, err)
	}
	sp := &ServiceProxy{ln: ln, target: target, done: make(chan struct{})}
	go sp.serve()
	cp.OnStop(sp.Close)
	return sp, nil
}

func (sp *ServiceProxy) serve() {
	defer close(sp.done)
	for {
		c, err := sp.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.DialTimeout("tcp", sp.target, 5*time.Second)
			if err != nil {
				return
			}
			defer u.Close()
			go func() { _, _ = io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
			_, _ = io.Copy(c, u)
		}()
	}
}

// Close stops listening (connections in flight finish on their own).
func (sp *ServiceProxy) Close() error {
	err := sp.ln.Close()
	<-sp.done
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// SetNetnsHosts writes /etc/netns/<ns>/hosts, which `ip netns exec <ns>` puts in place of
// /etc/hosts: the cluster DNS names (a Service's <name>.<namespace>.svc) a process in ns
// resolves. It returns the function that removes the file.
func SetNetnsHosts(ns string, hosts map[string]string) (remove func() error, err error) {
	dir := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	names := make([]string, 0, len(hosts))
	for n := range hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", hosts[n], n)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return func() error { return os.RemoveAll(dir) }, nil
}
