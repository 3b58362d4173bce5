package cluster

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubectlList is trimmed from what `kubectl get namespaces,pods,networkpolicies -A -o yaml`
// prints, system fields (managedFields, status, uid) included.
const kubectlList = `apiVersion: v1
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    creationTimestamp: "2026-11-20T09:00:00Z"
    labels:
      kubernetes.io/metadata.name: shop
      team: payments
    name: shop
    resourceVersion: "201"
    uid: 3f1c7c55-2b7e-4a64-9d3e-7f1f2b1a0c11
  spec:
    finalizers:
    - kubernetes
  status:
    phase: Active
- apiVersion: v1
  kind: Pod
  metadata:
    creationTimestamp: "2026-11-20T09:01:00Z"
    generateName: web-7d9f8b6c5d-
    labels:
      app: web
      pod-template-hash: 7d9f8b6c5d
    managedFields:
    - apiVersion: v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:labels:
            .: {}
            f:app: {}
      manager: kube-controller-manager
      operation: Update
      time: "2026-11-20T09:01:00Z"
    name: web-7d9f8b6c5d-x2k4p
    namespace: shop
    ownerReferences:
    - apiVersion: apps/v1
      blockOwnerDeletion: true
      controller: true
      kind: ReplicaSet
      name: web-7d9f8b6c5d
      uid: 0b5e6f0c-1111-4b1e-8a55-2d2f1e0f9a01
  spec:
    containers:
    - image: nginx:1.27
      name: web
      ports:
      - containerPort: 8080
        name: http
        protocol: TCP
      resources:
        requests:
          cpu: 100m
          memory: 64Mi
    nodeName: worker-1
    restartPolicy: Always
  status:
    conditions:
    - lastProbeTime: null
      lastTransitionTime: "2026-11-20T09:01:05Z"
      status: "True"
      type: Ready
    hostIP: 192.168.0.11
    hostIPs:
    - ip: 192.168.0.11
    phase: Running
    podIP: 10.244.1.5
    podIPs:
    - ip: 10.244.1.5
    qosClass: Burstable
    startTime: "2026-11-20T09:01:00Z"
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny-all","namespace":"shop"},"spec":{"podSelector":{}}}
    creationTimestamp: "2026-11-20T09:02:00Z"
    generation: 1
    name: deny-all
    namespace: shop
  spec:
    podSelector: {}
    policyTypes:
    - Ingress
    ingress:
    - from:
      - namespaceSelector:
          matchLabels:
            team: payments
      ports:
      - port: http
      - port: 9090
        protocol: TCP
kind: List
metadata:
  resourceVersion: ""
`

// want summarises a decoded snapshot: the objects of each kind as ns/name, and the ignored kinds.
type want struct {
	namespaces, pods, nodes, policies, workloads []string
	ignored                                      map[string]int
}

func summarise(s *Objects) want {
	var w want
	for _, o := range s.Namespaces {
		w.namespaces = append(w.namespaces, o.Name)
	}
	for _, o := range s.Pods {
		w.pods = append(w.pods, o.Namespace+"/"+o.Name)
	}
	for _, o := range s.Nodes {
		w.nodes = append(w.nodes, o.Name)
	}
	for _, o := range s.Policies {
		w.policies = append(w.policies, o.Namespace+"/"+o.Name)
	}
	for _, o := range s.Workloads {
		w.workloads = append(w.workloads, KindOf(o)+" "+o.GetNamespace()+"/"+o.GetName())
	}
	w.ignored = s.Ignored
	return w
}

func (w want) equal(o want) bool {
	if len(w.ignored) != len(o.ignored) {
		return false
	}
	for k, v := range w.ignored {
		if o.ignored[k] != v {
			return false
		}
	}
	return slices.Equal(w.namespaces, o.namespaces) && slices.Equal(w.pods, o.pods) &&
		slices.Equal(w.nodes, o.nodes) && slices.Equal(w.policies, o.policies) && slices.Equal(w.workloads, o.workloads)
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  want
	}{
		{
			name:  "kubectl List output is parsed",
			input: kubectlList,
			want: want{
				namespaces: []string{"shop"},
				pods:       []string{"shop/web-7d9f8b6c5d-x2k4p"},
				policies:   []string{"shop/deny-all"},
			},
		},
		{
			name: "multi-document YAML keeps known kinds, workloads included, and counts the others",
			input: `---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80}], selector: {app: web}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
---
apiVersion: crd.projectcalico.org/v1
kind: NetworkPolicy
metadata: {name: calico, namespace: shop}
spec: {selector: all(), tier: default}
---
apiVersion: v1
kind: Node
metadata: {name: worker-1}
status:
  addresses:
  - {type: InternalIP, address: 192.168.0.11}
  - {type: Hostname, address: worker-1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
`,
			want: want{
				nodes:     []string{"worker-1"},
				policies:  []string{"shop/allow-web"},
				workloads: []string{"Deployment shop/web"},
				ignored:   map[string]int{"Service": 2, "NetworkPolicy.crd.projectcalico.org": 1},
			},
		},
		{
			name: "stream of JSON objects",
			input: `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}}
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"shop"},"spec":{"containers":[{"name":"web","image":"nginx"}]}}
{
  "apiVersion": "networking.k8s.io/v1",
  "kind": "NetworkPolicy",
  "metadata": {"name": "deny-all", "namespace": "shop"},
  "spec": {"podSelector": {}}
}`,
			want: want{namespaces: []string{"shop"}, pods: []string{"shop/web"}, policies: []string{"shop/deny-all"}},
		},
		{
			name:  "single JSON object",
			input: `  {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"}}`,
			want:  want{nodes: []string{"worker-1"}},
		},
		{
			name:  "single YAML object",
			input: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
			want:  want{namespaces: []string{"shop"}},
		},
		{
			name:  "YAML flow mapping that looks like JSON is read as YAML",
			input: "{apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n",
			want:  want{namespaces: []string{"shop"}},
		},
		{
			name: "typed list items without kind take the list's",
			input: `apiVersion: v1
kind: PodList
items:
- metadata: {name: a, namespace: shop}
- metadata: {name: b, namespace: shop}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicyList
items:
- metadata: {name: deny-all, namespace: shop}
  spec: {podSelector: {}}
`,
			want: want{pods: []string{"shop/a", "shop/b"}, policies: []string{"shop/deny-all"}},
		},
		{
			name: "lists nest",
			input: `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: NamespaceList
  items:
  - metadata: {name: shop}
  - metadata: {name: bank}
- apiVersion: v1
  kind: List
  items:
  - {apiVersion: v1, kind: Pod, metadata: {name: web, namespace: shop}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: cfg, namespace: shop}}
`,
			want: want{namespaces: []string{"shop", "bank"}, pods: []string{"shop/web"}, ignored: map[string]int{"ConfigMap": 1}},
		},
		{
			name:  "empty and comment-only documents are skipped",
			input: "---\n# nothing here\n---\n\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n---\n",
			want:  want{namespaces: []string{"shop"}},
		},
		{
			name:  "empty input is an empty snapshot",
			input: "",
			want:  want{},
		},
		{
			name:  "empty list is an empty snapshot",
			input: "apiVersion: v1\nkind: List\nitems: []\n",
			want:  want{},
		},
		{
			name:  "pod without a namespace is in default",
			input: "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n",
			want:  want{pods: []string{"default/web"}},
		},
		{
			name:  "same name in two namespaces is not a duplicate",
			input: "{apiVersion: v1, kind: Pod, metadata: {name: web, namespace: a}}\n---\n{apiVersion: v1, kind: Pod, metadata: {name: web, namespace: b}}\n",
			want:  want{pods: []string{"a/web", "b/web"}},
		},
		{
			name:  "byte order mark is skipped",
			input: "\xef\xbb\xbf{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\"}}",
			want:  want{namespaces: []string{"shop"}},
		},
		{
			name:  "CRLF line endings",
			input: "apiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: shop\r\n---\r\napiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: bank\r\n",
			want:  want{namespaces: []string{"shop", "bank"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Decode(strings.NewReader(tc.input), "cluster.yaml")
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := summarise(s); !got.equal(tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeKeepsObjectsAsGiven(t *testing.T) {
	s, err := Decode(strings.NewReader(kubectlList), "cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pod := s.Pods[0]
	if pod.Status.PodIP != "10.244.1.5" || pod.Spec.NodeName != "worker-1" || len(pod.ManagedFields) != 1 {
		t.Errorf("pod fields lost: podIP %q node %q managedFields %d", pod.Status.PodIP, pod.Spec.NodeName, len(pod.ManagedFields))
	}
	if got := pod.Spec.Containers[0].Resources.Requests.Cpu().String(); got != "100m" {
		t.Errorf("cpu request = %s, want 100m", got)
	}
	pol := s.Policies[0]
	if pol.Kind != "NetworkPolicy" || pol.APIVersion != "networking.k8s.io/v1" {
		t.Errorf("type meta = %v", pol.TypeMeta)
	}
	if len(pol.Spec.PolicyTypes) != 1 || len(pol.Spec.Egress) != 0 {
		t.Errorf("policy was defaulted: %+v", pol.Spec)
	}
	if got := pol.Spec.Ingress[0].Ports[0].Port.String(); got != "http" {
		t.Errorf("named port = %s", got)
	}
	if pol.Spec.Ingress[0].Ports[1].Protocol == nil || pol.Spec.Ingress[0].Ports[0].Protocol != nil {
		t.Errorf("port protocols were defaulted or lost")
	}

	typed, err := Decode(strings.NewReader("apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a, namespace: shop}\n"), "pods.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if tm := typed.Pods[0].TypeMeta; tm.Kind != "Pod" || tm.APIVersion != "v1" {
		t.Errorf("typed list item type meta = %+v, want v1 Pod", tm)
	}
}

func TestDecodeErrors(t *testing.T) {
	const ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
	tests := []struct {
		name  string
		input string
		want  string // the whole message
	}{
		{
			name:  "bad YAML names the file and document",
			input: ns + "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n   namespace: shop\n",
			want:  "cluster.yaml: document 2: yaml: line 5: mapping values are not allowed in this context",
		},
		{
			name: "wrong-typed field names the object and field",
			input: ns + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\n---\n" +
				"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all, namespace: shop}\nspec:\n  podSelector: all\n",
			want: "cluster.yaml: object 3 (NetworkPolicy shop/deny-all): spec.podSelector: expected object, got string",
		},
		{
			name:  "wrong-typed field in a list item counts objects across the list",
			input: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n- {apiVersion: v1, kind: Pod, metadata: {name: web, namespace: shop}, spec: {containers: [{name: web, ports: [{containerPort: http}]}]}}\n",
			want:  "cluster.yaml: object 2 (Pod shop/web): spec.containers.ports.containerPort: expected integer, got string",
		},
		{
			name:  "unknown field is named",
			input: "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec:\n  contaners: []\n  nodeName: w\n  hostNetwrk: true\n",
			want:  "cluster.yaml: object 1 (Pod shop/web): spec.contaners: unknown field, spec.hostNetwrk: unknown field",
		},
		{
			name:  "field names are case-sensitive",
			input: `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"p","namespace":"shop"},"spec":{"PodSelector":{}}}`,
			want:  "cluster.yaml: object 1 (NetworkPolicy shop/p): spec.PodSelector: unknown field",
		},
		{
			name:  "field given twice in JSON",
			input: `{"apiVersion":"v1","kind":"Node","metadata":{"name":"w","labels":{"a":"1","a":"2"}}}`,
			want:  `cluster.yaml: object 1 (Node w): metadata.labels.a: duplicate field`,
		},
		{
			name:  "key given twice in YAML",
			input: "apiVersion: v1\nkind: Node\nmetadata:\n  name: w\n  name: v\n",
			want:  `cluster.yaml: document 1: yaml: unmarshal errors:` + "\n" + `  line 5: key "name" already set in map`,
		},
		{
			name:  "document that is not an object",
			input: ns + "---\n- a\n- b\n",
			want:  "cluster.yaml: document 2: not an object (got array)",
		},
		{
			name:  "list item that is not an object",
			input: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n- just a string\n",
			want:  "cluster.yaml: document 1 items[1]: not an object (got string)",
		},
		{
			name:  "list items that are not an array",
			input: "apiVersion: v1\nkind: List\nitems: {a: b}\n",
			want:  "cluster.yaml: document 1 (List): items: expected array, got object",
		},
		{
			name:  "object without kind",
			input: "apiVersion: v1\nmetadata: {name: web}\n",
			want:  "cluster.yaml: object 1: kind: Required value",
		},
		{
			name:  "object without apiVersion",
			input: ns + "---\nkind: Pod\nmetadata: {name: web}\n",
			want:  "cluster.yaml: object 2 (Pod): apiVersion: Required value",
		},
		{
			name:  "kind that is not a string",
			input: "apiVersion: v1\nkind: [Pod]\n",
			want:  "cluster.yaml: object 1: kind: expected string, got array",
		},
		{
			name:  "NetworkPolicy at a version the snapshot does not read",
			input: "apiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: shop}\n",
			want:  `cluster.yaml: object 1 (NetworkPolicy shop/p): apiVersion: Unsupported value: "networking.k8s.io/v1beta1": supported values: "networking.k8s.io/v1"`,
		},
		{
			name:  "object without a name",
			input: "apiVersion: v1\nkind: Pod\nmetadata: {namespace: shop}\n",
			want:  "cluster.yaml: object 1 (Pod shop/): metadata.name: Required value",
		},
		{
			name:  "duplicate object names both places",
			input: ns + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: web, namespace: shop}}\n",
			want:  "cluster.yaml: object 3 (Pod shop/web): duplicate of object 2",
		},
		{
			name:  "default namespace given and implied are the same object",
			input: "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default}\n",
			want:  "cluster.yaml: object 2 (Pod default/web): duplicate of object 1",
		},
		{
			name:  "broken JSON stream names the document",
			input: `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}} {"apiVersion":"v1",]`,
			want:  "cluster.yaml: document 2: json: offset 86: invalid character ']' looking for beginning of object key string",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Decode(strings.NewReader(tc.input), "cluster.yaml")
			if err == nil {
				t.Fatalf("Decode succeeded with %+v, want error %q", summarise(s), tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoad(t *testing.T) {
	pod := func(ns, name string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: " + ns + "}\n"
	}
	tests := []struct {
		name    string
		files   map[string]string
		path    string // relative to the directory; "" is the directory itself
		want    want
		wantErr string // with the directory as "DIR"
	}{
		{
			name:  "file",
			files: map[string]string{"cluster.yaml": kubectlList},
			path:  "cluster.yaml",
			want: want{
				namespaces: []string{"shop"},
				pods:       []string{"shop/web-7d9f8b6c5d-x2k4p"},
				policies:   []string{"shop/deny-all"},
			},
		},
		{
			name: "directory reads manifests in name order and nothing else",
			files: map[string]string{
				"b.json":       `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b","namespace":"shop"}}`,
				"a.yaml":       pod("shop", "a"),
				"c.YML":        pod("shop", "c"),
				"README.md":    "not a manifest",
				"sub/d.yaml":   pod("shop", "d"),
				"notes.yaml~":  pod("shop", "e"),
				"policies.yml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: shop}\n",
			},
			want: want{pods: []string{"shop/a", "shop/b", "shop/c"}, policies: []string{"shop/p"}},
		},
		{
			name:    "duplicate across files names both files",
			files:   map[string]string{"a.yaml": pod("shop", "web"), "b.yaml": pod("bank", "x") + "---\n" + pod("shop", "web")},
			wantErr: "DIR/b.yaml: object 2 (Pod shop/web): duplicate of object 1 in DIR/a.yaml",
		},
		{
			name:    "error in a file names the file",
			files:   map[string]string{"a.yaml": pod("shop", "a"), "b.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: shop}\nspec: {nodeName: [w]}\n"},
			wantErr: "DIR/b.yaml: object 1 (Pod shop/b): spec.nodeName: expected string, got array",
		},
		{
			name:    "directory without manifests",
			files:   map[string]string{"README.md": "hi"},
			wantErr: "DIR: no .yaml, .yml or .json files in the directory",
		},
		{
			name:    "missing file",
			path:    "nope.yaml",
			wantErr: "stat DIR/nope.yaml: no such file or directory",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, tc.files)
			s, err := Load(filepath.Join(dir, tc.path))
			if tc.wantErr != "" {
				want := strings.ReplaceAll(tc.wantErr, "DIR", dir)
				if err == nil || err.Error() != want {
					t.Fatalf("error\n got: %v\nwant: %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := summarise(s); !got.equal(tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestLoadStdin(t *testing.T) {
	dir := writeFiles(t, map[string]string{"in.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n- not an object\n"})
	f, err := os.Open(filepath.Join(dir, "in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stdin := os.Stdin
	os.Stdin = f
	t.Cleanup(func() { os.Stdin = stdin })

	_, err = Load("-")
	if want := "<stdin>: document 2: not an object (got array)"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestMerge(t *testing.T) {
	pod := func(ns, name, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.PodSpec{NodeName: node}}
	}
	s := &Objects{
		Pods:     []*corev1.Pod{pod("shop", "a", "w1"), pod("shop", "b", "w1")},
		Policies: []*networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p"}}},
		Ignored:  map[string]int{"Service": 1},
	}
	s.Merge(&Objects{
		Namespaces: []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}},
		Pods:       []*corev1.Pod{pod("shop", "b", "w2"), pod("bank", "b", "w2")},
		Ignored:    map[string]int{"Service": 2, "Secret": 1},
	})
	s.Merge(nil)

	got := summarise(s)
	wantSummary := want{
		namespaces: []string{"shop"},
		pods:       []string{"shop/a", "shop/b", "bank/b"},
		policies:   []string{"shop/p"},
		ignored:    map[string]int{"Service": 3, "Secret": 1},
	}
	if !got.equal(wantSummary) {
		t.Errorf("got %+v\nwant %+v", got, wantSummary)
	}
	if s.Pods[1].Spec.NodeName != "w2" {
		t.Errorf("the later shop/b did not replace the earlier")
	}
}

// nestedLists returns a JSON List with a Pod at the bottom of depth Lists.
func nestedLists(depth int) string {
	return strings.Repeat(`{"apiVersion":"v1","kind":"List","items":[`, depth) +
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"shop"}}` + strings.Repeat("]}", depth)
}

func TestDecodeOfListsNestedWithinTheLimitReadsThem(t *testing.T) {
	s, err := Decode(strings.NewReader(nestedLists(MaxListDepth)), "nested.json")
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got := summarise(s); !got.equal(want{pods: []string{"shop/web"}}) {
		t.Errorf("got %+v", got)
	}
}

func TestDecodeOfListsNestedTooDeepIsAnErrorNamingFileAndLimit(t *testing.T) {
	// 4 500 Lists in 190 KB, within encoding/json's nesting limit: parsed again at every
	// level, they took gigabytes.
	_, err := Decode(strings.NewReader(nestedLists(4500)), "nested.json")
	want := fmt.Sprintf("nested.json: document 1%s (List): Lists nested deeper than %d", strings.Repeat(" items[0]", MaxListDepth), MaxListDepth)
	if err == nil || err.Error() != want {
		t.Errorf("error\n got: %v\nwant: %s", err, want)
	}
}

func TestDecodeOfMoreThanTheSizeLimitIsAnErrorNamingTheLimit(t *testing.T) {
	defer func(n int64) { maxSnapshotBytes = n }(maxSnapshotBytes)
	maxSnapshotBytes = 1000
	_, err := Decode(io.LimitReader(zeros{}, 1<<30), "<stdin>")
	if want := "<stdin>: cluster objects larger than the limit of 1000 bytes"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}

	dir := writeFiles(t, map[string]string{"a.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n" + strings.Repeat("# padding\n", 60),
		"b.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n" + strings.Repeat("# padding\n", 60)})
	_, err = Load(dir)
	if want := filepath.Join(dir, "b.yaml") + ": cluster objects larger than the limit of 1000 bytes"; err == nil || err.Error() != want {
		t.Errorf("Load of two files over the limit together: error = %v, want %s", err, want)
	}
}

// zeros reads as an endless run of zero bytes, as /dev/zero does.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestLoadReadsRegularFilesOnly(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	dir := writeFiles(t, map[string]string{"real.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"})
	other := t.TempDir()
	for link, target := range map[string]string{filepath.Join(dir, "zero.yaml"): "/dev/zero", filepath.Join(other, "link.yaml"): filepath.Join(dir, "real.yaml")} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}

	s, err := Load(filepath.Join(other, "link.yaml"))
	if err != nil || len(s.Namespaces) != 1 {
		t.Errorf("Load of a symlink to a regular file: %v", err)
	}
	_, err = Load(filepath.Join(dir, "zero.yaml"))
	if want := filepath.Join(dir, "zero.yaml") + ": not a regular file"; err == nil || err.Error() != want {
		t.Errorf("Load of a symlink to /dev/zero: error = %v, want %s", err, want)
	}
	_, err = Load(dir)
	if want := filepath.Join(dir, "zero.yaml") + ": not a regular file"; err == nil || err.Error() != want {
		t.Errorf("Load of a directory holding a symlink to /dev/zero: error = %v, want %s", err, want)
	}
}
