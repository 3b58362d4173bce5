package cluster

import (
	"bufio"
	"bytes"
	gojson "encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	guardv1alpha1 "github.com/netpol-guard/netpol-guard/apis/v1alpha1"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// Objects are the state of a cluster as files describe it: what
// `kubectl get namespaces,pods,nodes,networkpolicies,cnp -A -o yaml` prints (and the
// workloads of `kubectl get deployments,statefulsets,daemonsets,replicasets,jobs,cronjobs`),
// or any set of manifests of those kinds. Cluster policies (ClusterNetworkPolicy v1beta1 or
// v1alpha2, AdminNetworkPolicy and BaselineAdminNetworkPolicy v1alpha1) are kept converted
// into the evaluator's form. Objects are kept as given, in input order; nothing is defaulted
// except the namespace of a namespaced object that names none, which is "default", as
// `kubectl apply` would make it.
type Objects struct {
	Namespaces []*corev1.Namespace
	Pods       []*corev1.Pod
	Nodes      []*corev1.Node
	Policies   []*networkingv1.NetworkPolicy
	// Workloads are the Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and
	// CronJobs, typed (*appsv1.Deployment …), in input order: their pod templates' labels.
	Workloads []client.Object
	// ClusterPolicies are the Admin and Baseline tier policies, in input order.
	ClusterPolicies []*evaluator.ClusterPolicy
	// Staged are the StagedNetworkPolicies (netpol-guard.io/v1alpha1), in input order:
	// changes to NetworkPolicies staged but not applied.
	Staged []*guardv1alpha1.StagedNetworkPolicy
	// Ignored counts the objects of other kinds the input held, by group and kind as
	// kubectl names them ("Service", "Deployment.apps"). Skipping them is not an error.
	Ignored map[string]int
}

// The kinds a snapshot keeps, at the only version it understands.
var (
	namespaceGVK     = corev1.SchemeGroupVersion.WithKind("Namespace")
	podGVK           = corev1.SchemeGroupVersion.WithKind("Pod")
	nodeGVK          = corev1.SchemeGroupVersion.WithKind("Node")
	networkPolicyGVK = networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy")
	cnpV1beta1GVK    = v1beta1.SchemeGroupVersion.WithKind("ClusterNetworkPolicy")
	cnpV1alpha2GVK   = v1alpha2.SchemeGroupVersion.WithKind("ClusterNetworkPolicy")
	anpGVK           = v1alpha1.SchemeGroupVersion.WithKind("AdminNetworkPolicy")
	banpGVK          = v1alpha1.SchemeGroupVersion.WithKind("BaselineAdminNetworkPolicy")
	stagedGVK        = guardv1alpha1.GroupVersion.WithKind("StagedNetworkPolicy")
)

// snapshotKinds are the kinds a snapshot keeps, with every version of each it reads.
var snapshotKinds = []schema.GroupVersionKind{namespaceGVK, podGVK, nodeGVK, networkPolicyGVK, cnpV1beta1GVK, cnpV1alpha2GVK, anpGVK, banpGVK, stagedGVK}

// clusterScoped are the kinds without a namespace.
func clusterScoped(gvk schema.GroupVersionKind) bool {
	return gvk != podGVK && gvk != networkPolicyGVK && gvk != stagedGVK
}

// Limits on what Load and Decode read, so that a hostile file (a pull request's `-f`)
// cannot take the machine down: the bytes of one snapshot, all files together, and how
// deep Lists may nest in Lists.
const (
	MaxSnapshotBytes = 512 << 20
	MaxListDepth     = 16
)

// maxSnapshotBytes is MaxSnapshotBytes, lowered by tests.
var maxSnapshotBytes int64 = MaxSnapshotBytes

// Load reads a snapshot from path: a file of YAML documents (separated by "---") or JSON
// objects, each an object or a List of them (kind List, or a typed list such as PodList,
// nested as deep as need be); a directory, whose *.yaml, *.yml and *.json files are read in
// name order (not recursively) into one snapshot; or "-" for standard input.
//
// The same object (kind, namespace, name) given twice, in one file or two, is an error that
// names both places.
//
// Only regular files are read (a symlink to one is fine): a device, a named pipe or a
// socket is an error, as are more than MaxSnapshotBytes in all and Lists nested more than
// MaxListDepth deep.
func Load(path string) (*Objects, error) {
	if path == "-" {
		return Decode(os.Stdin, "<stdin>")
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	l := newLoader()
	if !info.IsDir() {
		if err := l.loadFile(path, info); err != nil {
			return nil, err
		}
		return l.snap, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, err
	}
	files := 0
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		p := filepath.Join(path, e.Name())
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if info.IsDir() {
			continue
		}
		if err := l.loadFile(p, info); err != nil {
			return nil, err
		}
		files++
	}
	if files == 0 {
		return nil, fmt.Errorf("%s: no .yaml, .yml or .json files in the directory", path)
	}
	return l.snap, nil
}

// Decode reads a snapshot from r as Load reads one file. source names the input in errors
// ("cluster.yaml: object 3 (NetworkPolicy shop/deny-all): spec.podSelector: …").
func Decode(r io.Reader, source string) (*Objects, error) {
	l := newLoader()
	if err := l.decode(r, source); err != nil {
		return nil, err
	}
	return l.snap, nil
}

// Merge adds o's objects to s. An object of o with the kind, namespace and name of one
// already in s replaces it in place, as a later manifest overrides an earlier one; the others
// are appended. Load, unlike Merge, treats such a repeat as an error.
func (s *Objects) Merge(o *Objects) {
	if o == nil {
		return
	}
	s.Namespaces = mergeObjects(s.Namespaces, o.Namespaces)
	s.Pods = mergeObjects(s.Pods, o.Pods)
	s.Nodes = mergeObjects(s.Nodes, o.Nodes)
	s.Policies = mergeObjects(s.Policies, o.Policies)
	s.Workloads = mergeWorkloads(s.Workloads, o.Workloads)
	s.ClusterPolicies = mergeClusterPolicies(s.ClusterPolicies, o.ClusterPolicies)
	s.Staged = mergeObjects(s.Staged, o.Staged)
	for kind, n := range o.Ignored {
		if s.Ignored == nil {
			s.Ignored = map[string]int{}
		}
		s.Ignored[kind] += n
	}
}

// mergeObjects is merge for the objects of one kind, known by namespace and name.
func mergeObjects[T metav1.Object](dst, src []T) []T {
	return merge(dst, src, func(obj T) types.NamespacedName {
		return types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	})
}

// merge adds src to dst: an item of src with the key of one in dst replaces it in place, the
// others are appended.
func merge[T any, K comparable](dst, src []T, key func(T) K) []T {
	if len(src) == 0 {
		return dst
	}
	index := make(map[K]int, len(dst))
	for i, obj := range dst {
		index[key(obj)] = i
	}
	for _, obj := range src {
		k := key(obj)
		if i, ok := index[k]; ok {
			dst[i] = obj
			continue
		}
		index[k] = len(dst)
		dst = append(dst, obj)
	}
	return dst
}

func mergeClusterPolicies(dst, src []*evaluator.ClusterPolicy) []*evaluator.ClusterPolicy {
	for _, p := range src {
		if i := slices.IndexFunc(dst, func(q *evaluator.ClusterPolicy) bool { return q.Ref() == p.Ref() }); i >= 0 {
			dst[i] = p
			continue
		}
		dst = append(dst, p)
	}
	return dst
}

// loader decodes one or more sources into one snapshot, remembering where each object came
// from so that a repeat can name both places.
type loader struct {
	snap *Objects
	seen map[objectKey]place
	read int64 // bytes, of all sources
	// strictOnly decodes every object with strictUnmarshal, for tests that compare the
	// fast decoders with it.
	strictOnly bool
}

type objectKey struct {
	kind, namespace, name string
}

type place struct {
	source string
	object int
}

func newLoader() *loader {
	return &loader{snap: &Objects{}, seen: map[objectKey]place{}}
}

// loadFile reads the file path, which info (from os.Stat) describes.
func (l *loader) loadFile(path string, info os.FileInfo) error {
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	if info.Size() > maxSnapshotBytes-l.read {
		return l.tooLarge(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// The file may have changed since Stat: check what was opened.
	if info, err = f.Stat(); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	return l.decodeSized(f, path, info.Size())
}

func (l *loader) tooLarge(source string) error {
	return fmt.Errorf("%s: cluster objects larger than the limit of %d bytes", source, maxSnapshotBytes)
}

// decode decodes r, taking the size of a bytes.Reader or strings.Reader (anything with a
// Len) as known, so that the buffer is not grown piece by piece.
func (l *loader) decode(r io.Reader, source string) error {
	var size int64
	if lr, ok := r.(interface{ Len() int }); ok {
		size = int64(lr.Len())
	}
	return l.decodeSized(r, source, size)
}

// decodeSized decodes r, whose size may be known, up to what is left of the limit.
func (l *loader) decodeSized(r io.Reader, source string, size int64) error {
	left := maxSnapshotBytes - l.read
	var buf bytes.Buffer
	buf.Grow(int(min(size, left)) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(r, left+1)); err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if int64(buf.Len()) > left {
		return l.tooLarge(source)
	}
	l.read += int64(buf.Len())
	docs, err := splitDocuments(buf.Bytes())
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	// Objects are found first and decoded together; an error found on the way comes after
	// those of the objects before it.
	d := &sourceDecoder{loader: l, source: source}
	var walkErr error
	for i, doc := range docs {
		if isNull(doc) { // an empty or comments-only document
			continue
		}
		if _, walkErr = d.value(doc, fmt.Sprintf("document %d", i+1), "", "", 0); walkErr != nil {
			break
		}
	}
	if err := d.finish(); err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if walkErr != nil {
		return fmt.Errorf("%s: %w", source, walkErr)
	}
	return nil
}

// splitDocuments splits a stream into its documents, each as JSON. A stream that starts with
// "{" is read as a stream of JSON objects (falling back to YAML if the first one does not
// parse, as YAML flow style may start that way too); anything else as YAML documents
// separated by "---".
func splitDocuments(data []byte) ([][]byte, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	if utilyaml.IsJSONBuffer(data) {
		if docs, ok := splitJSONObjects(data); ok {
			return docs, nil
		}
		docs, err := splitJSON(data)
		if err == nil {
			return docs, nil
		}
		if len(docs) == 0 {
			if yamlDocs, yamlErr := splitYAML(data); yamlErr == nil {
				return yamlDocs, nil
			}
		}
		return nil, err
	}
	return splitYAML(data)
}

// splitJSON returns the documents it read before an error, so the caller can tell a stream
// that is not JSON at all from one that breaks later.
func splitJSON(data []byte) ([][]byte, error) {
	dec := gojson.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for {
		var raw gojson.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			var syntax *gojson.SyntaxError
			if errors.As(err, &syntax) {
				return docs, fmt.Errorf("document %d: json: offset %d: %w", len(docs)+1, syntax.Offset, err)
			}
			return docs, fmt.Errorf("document %d: json: %w", len(docs)+1, err)
		}
		docs = append(docs, raw)
	}
}

func splitYAML(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		// Strict: a key given twice in one mapping is an error, as kubectl apply has it.
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
			return nil, fmt.Errorf("document %d: %s", len(docs)+1, msg)
		}
		docs = append(docs, j)
	}
}

// sourceDecoder decodes the documents of one source, numbering its objects.
type sourceDecoder struct {
	*loader
	source    string
	objects   int
	headerBuf []byte
	pending   []pendingObject
}

// header is what an object or list says about itself, read loosely before the strict
// decoding into its type.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// readHeader reads the header of the object raw starts with, and returns the value of its
// items (the last, if given twice; nil if none) and the object's length. Only the members
// the header has are decoded: a copy of raw without the others, and with metadata cut down
// to its name and namespace, gives the same header and the same type errors as raw would,
// at a fraction of the work. When those members are all plain strings, as they nearly
// always are, they are taken as they are, without the decoder.
func (d *sourceDecoder) readHeader(raw []byte, h *header) (items []byte, n int, err error) {
	b := append(d.headerBuf[:0], '{')
	plain := true
	var ph header
	member := func(key, value []byte, dst *string) {
		if b[len(b)-1] != '{' {
			b = append(b, ',')
		}
		b = append(append(append(b, key...), ':'), value...)
		if s, ok := plainString(value); ok && dst != nil {
			*dst = s
		} else {
			plain = false
		}
	}
	n = eachMember(raw, func(key, value []byte) {
		switch {
		case keyIs(key, "apiVersion"):
			member(key, value, &ph.APIVersion)
		case keyIs(key, "kind"):
			member(key, value, &ph.Kind)
		case keyIs(key, "items"):
			items = value
		case keyIs(key, "metadata") && value[0] == '{':
			if b[len(b)-1] != '{' {
				b = append(b, ',')
			}
			b = append(append(b, key...), ":{"...)
			eachMember(value, func(key, value []byte) {
				switch {
				case keyIs(key, "name"):
					member(key, value, &ph.Metadata.Name)
				case keyIs(key, "namespace"):
					member(key, value, &ph.Metadata.Namespace)
				}
			})
			b = append(b, '}')
		case keyIs(key, "metadata"):
			member(key, value, nil)
		}
	})
	b = append(b, '}')
	d.headerBuf = b
	if plain {
		*h = ph
		return items, n, nil
	}
	return items, n, sigsjson.UnmarshalCaseSensitivePreserveInts(b, h)
}

// plainString returns the JSON string value when it has no escapes and is valid UTF-8, as
// a decoder would give it.
func plainString(value []byte) (string, bool) {
	if len(value) < 2 || value[0] != '"' || bytes.IndexByte(value, '\\') >= 0 || !utf8.Valid(value) {
		return "", false
	}
	return string(value[1 : len(value)-1]), true
}

// value decodes the JSON value raw starts with, found at loc ("document 2", "document 1
// items[3]"): an object, or a list of them. Items of a typed list (PodList) that name no
// kind are of the list's item kind. It returns the value's length.
func (d *sourceDecoder) value(raw []byte, loc, listAPIVersion, itemKind string, depth int) (int, error) {
	if t := flows.JSONKind(raw); t != "object" {
		return 0, fmt.Errorf("%s: not an object (got %s)", loc, t)
	}
	var h header
	listItems, n, headerErr := d.readHeader(raw, &h)
	raw = raw[:n]
	if h.Kind == "" && itemKind != "" {
		h.Kind = itemKind
		if h.APIVersion == "" {
			h.APIVersion = listAPIVersion
		}
	}

	if h.Kind == "List" || (strings.HasSuffix(h.Kind, "List") && len(listItems) > 0) {
		if headerErr != nil {
			return n, fmt.Errorf("%s (%s): %w", loc, h.Kind, describeDecodeError(headerErr))
		}
		if isNull(listItems) {
			return n, nil
		}
		if t := flows.JSONKind(listItems); t != "array" {
			return n, fmt.Errorf("%s (%s): items: expected array, got %s", loc, h.Kind, t)
		}
		if depth >= MaxListDepth {
			return n, fmt.Errorf("%s (%s): Lists nested deeper than %d", loc, h.Kind, MaxListDepth)
		}
		itemKind := ""
		if h.Kind != "List" {
			itemKind = strings.TrimSuffix(h.Kind, "List")
		}
		apiVersion := h.APIVersion
		return n, eachElement(listItems, func(i int, item []byte) (int, error) {
			return d.value(item, fmt.Sprintf("%s items[%d]", loc, i), apiVersion, itemKind, depth+1)
		})
	}

	d.objects++
	num := d.objects
	label := fmt.Sprintf("object %d", num)
	if headerErr != nil {
		return n, fmt.Errorf("%s: %w", label, describeDecodeError(headerErr))
	}
	if h.Kind == "" {
		return n, fmt.Errorf("%s: %w", label, field.Required(field.NewPath("kind"), ""))
	}
	if h.APIVersion == "" {
		return n, fmt.Errorf("%s (%s): %w", label, h.Kind, field.Required(field.NewPath("apiVersion"), ""))
	}
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	if err != nil {
		return n, fmt.Errorf("%s (%s): %w", label, h.Kind, field.Invalid(field.NewPath("apiVersion"), h.APIVersion, err.Error()))
	}
	gvk := gv.WithKind(h.Kind)

	var want schema.GroupVersionKind
	var versions []string
	for _, known := range append(slices.Clone(snapshotKinds), WorkloadKinds...) {
		if known.GroupKind() == gvk.GroupKind() {
			versions = append(versions, known.GroupVersion().String())
			if want.Empty() || known == gvk {
				want = known
			}
		}
	}
	if want.Empty() {
		// Another kind, or another group's kind of the same name (Calico's NetworkPolicy).
		if d.snap.Ignored == nil {
			d.snap.Ignored = map[string]int{}
		}
		d.snap.Ignored[gvk.GroupKind().String()]++
		return n, nil
	}

	namespaced := !clusterScoped(want)
	id := h.Metadata.Name
	if namespaced {
		ns := h.Metadata.Namespace
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		id = ns + "/" + id
	}
	label = fmt.Sprintf("%s (%s %s)", label, h.Kind, id)
	if gvk != want {
		return n, fmt.Errorf("%s: %w", label, field.NotSupported(field.NewPath("apiVersion"), h.APIVersion, versions))
	}
	if h.Metadata.Name == "" {
		return n, fmt.Errorf("%s: %w", label, field.Required(field.NewPath("metadata", "name"), ""))
	}

	var obj kubeObject
	switch want {
	case namespaceGVK:
		obj = &corev1.Namespace{}
	case podGVK:
		obj = &corev1.Pod{}
	case nodeGVK:
		obj = &corev1.Node{}
	case networkPolicyGVK:
		obj = &networkingv1.NetworkPolicy{}
	case cnpV1beta1GVK:
		obj = &v1beta1.ClusterNetworkPolicy{}
	case cnpV1alpha2GVK:
		obj = &v1alpha2.ClusterNetworkPolicy{}
	case anpGVK:
		obj = &v1alpha1.AdminNetworkPolicy{}
	case banpGVK:
		obj = &v1alpha1.BaselineAdminNetworkPolicy{}
	case stagedGVK:
		obj = &guardv1alpha1.StagedNetworkPolicy{}
	default:
		w, err := NewWorkload(want.Kind)
		if err != nil {
			return n, fmt.Errorf("%s: %w", label, err)
		}
		obj = w.(kubeObject)
	}
	d.pending = append(d.pending, pendingObject{raw: raw, obj: obj, gvk: want, namespaced: namespaced, label: label, n: num})
	return n, nil
}

// pendingObject is an object found in a source and not yet decoded.
type pendingObject struct {
	raw        []byte
	obj        kubeObject
	gvk        schema.GroupVersionKind
	namespaced bool
	label      string // "object 3 (Pod shop/web)"
	n          int
	err        error // of decoding
}

type kubeObject interface {
	metav1.Object
	SetGroupVersionKind(schema.GroupVersionKind)
}

// finish decodes the objects found so far, on as many cores as there are, and adds them to
// the snapshot in input order. Its error is that of the first object in that order that
// fails, to decode or for being a duplicate.
func (d *sourceDecoder) finish() error {
	pending := d.pending
	d.pending = nil
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(pending)) {
		wg.Go(func() {
			var keys [][]byte // the fast decoder's scratch
			// Objects are taken in order, so once one fails, every object before it has
			// been taken and the first error is known when all have returned.
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(pending) {
					return
				}
				if !d.strictOnly {
					var fast bool
					if fast, keys = decodeFast(pending[i].raw, pending[i].obj, keys); fast {
						continue
					}
					switch o := pending[i].obj.(type) {
					case *corev1.Pod:
						*o = corev1.Pod{}
					case *networkingv1.NetworkPolicy:
						*o = networkingv1.NetworkPolicy{}
					case *corev1.Namespace:
						*o = corev1.Namespace{}
					}
				}
				if pending[i].err = strictUnmarshal(pending[i].raw, pending[i].obj); pending[i].err != nil {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	for _, p := range pending {
		if err := d.add(p); err != nil {
			return err
		}
	}
	return nil
}

func (d *sourceDecoder) add(p pendingObject) error {
	if p.err != nil {
		return fmt.Errorf("%s: %w", p.label, p.err)
	}
	obj := p.obj
	// Items of a typed list carry no kind of their own; give them theirs.
	obj.SetGroupVersionKind(p.gvk)
	key := objectKey{kind: p.gvk.Kind, name: obj.GetName()}
	if p.namespaced {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(metav1.NamespaceDefault)
		}
		key.namespace = obj.GetNamespace()
	}
	if first, ok := d.seen[key]; ok {
		where := fmt.Sprintf("object %d", first.object)
		if first.source != d.source {
			where += " in " + first.source
		}
		return fmt.Errorf("%s: duplicate of %s", p.label, where)
	}
	d.seen[key] = place{source: d.source, object: p.n}

	switch o := obj.(type) {
	case *corev1.Namespace:
		d.snap.Namespaces = append(d.snap.Namespaces, o)
	case *corev1.Pod:
		d.snap.Pods = append(d.snap.Pods, o)
	case *corev1.Node:
		d.snap.Nodes = append(d.snap.Nodes, o)
	case *networkingv1.NetworkPolicy:
		d.snap.Policies = append(d.snap.Policies, o)
	case *guardv1alpha1.StagedNetworkPolicy:
		d.snap.Staged = append(d.snap.Staged, o)
	default:
		switch obj.(type) {
		case *v1beta1.ClusterNetworkPolicy, *v1alpha2.ClusterNetworkPolicy, *v1alpha1.AdminNetworkPolicy, *v1alpha1.BaselineAdminNetworkPolicy:
			cp, err := evaluator.ClusterPolicyOf(obj)
			if err != nil {
				return fmt.Errorf("%s: %w", p.label, err)
			}
			d.snap.ClusterPolicies = append(d.snap.ClusterPolicies, cp)
		default:
			d.snap.Workloads = append(d.snap.Workloads, obj.(client.Object))
		}
	}
	return nil
}

// strictUnmarshal decodes JSON into a typed object as the API server does: field names are
// case-sensitive, and unknown or repeated fields are errors that name the field.
func strictUnmarshal(raw []byte, into any) error {
	strictErrs, err := sigsjson.UnmarshalStrict(raw, into)
	if err != nil {
		return describeDecodeError(err)
	}
	if len(strictErrs) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(strictErrs))
	for _, e := range strictErrs {
		var fe sigsjson.FieldError
		if errors.As(e, &fe) {
			// "unknown field \"spec.podSelectr\"" reads better as "spec.podSelectr: unknown field".
			what := strings.TrimSuffix(fe.Error(), " "+strconv.Quote(fe.FieldPath()))
			msgs = append(msgs, fe.FieldPath()+": "+what)
			continue
		}
		msgs = append(msgs, e.Error())
	}
	return errors.New(strings.Join(msgs, ", "))
}

// describeDecodeError turns a JSON type error into a kubectl-style message naming the field:
// "spec.podSelector: expected object, got string".
func describeDecodeError(err error) error {
	var te *gojson.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("%s: expected %s, got %s", te.Field, jsonTypeOf(te.Type), te.Value)
	}
	return err
}

func jsonTypeOf(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string" // base64
		}
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	default:
		return t.String()
	}
}

func isNull(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}
