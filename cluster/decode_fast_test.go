package cluster

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// decodeBoth decodes data with the fast decoders and with strictUnmarshal alone, and fails
// unless both give the same objects or the same error.
func decodeBoth(t testing.TB, data []byte) {
	t.Helper()
	fast := newLoader()
	fastErr := fast.decode(bytes.NewReader(data), "in")
	strict := newLoader()
	strict.strictOnly = true
	strictErr := strict.decode(bytes.NewReader(data), "in")
	switch {
	case (fastErr == nil) != (strictErr == nil):
		t.Fatalf("fast decoding: %v; strict decoding: %v", fastErr, strictErr)
	case fastErr != nil && fastErr.Error() != strictErr.Error():
		t.Fatalf("errors differ:\n fast:   %v\n strict: %v", fastErr, strictErr)
	case fastErr == nil && !reflect.DeepEqual(fast.snap, strict.snap):
		f, _ := json.Marshal(fast.snap)
		s, _ := json.Marshal(strict.snap)
		t.Fatalf("objects differ:\n fast:   %s\n strict: %s", f, s)
	}
}

// podJSON is a pod as kubectl prints it, with every field the fast decoder reads.
const podJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","generateName":"web-","namespace":"shop","uid":"u-1","resourceVersion":"7","generation":2,
"creationTimestamp":"2026-11-20T09:00:00+02:00","labels":{"app":"web","tier":"ü"},"annotations":{"a":"b"},"finalizers":["x"],
"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"u-2","controller":true,"blockOwnerDeletion":false}],
"managedFields":[{"manager":"m","operation":"Update","apiVersion":"v1","time":"2026-11-20T09:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"k:{\"uid\":\"x\"}":{}}},"subresource":"status"}]},
"spec":{"containers":[{"name":"web","image":"nginx","command":["a"],"args":[],"workingDir":"/","ports":[{"name":"http","containerPort":8080,"hostPort":0,"protocol":"TCP","hostIP":"0.0.0.0"}],
"env":[{"name":"A","value":"1"}],"volumeMounts":[{"name":"kube-api-access-x","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true},{"name":"conf","mountPath":"/etc/c","subPath":"c.yaml"}],"resources":{"requests":{"cpu":"100m","memory":64},"limits":{"cpu":"1"}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"Always"}],
"initContainers":[{"name":"init"}],"nodeName":"w1","hostNetwork":false,"restartPolicy":"Always","dnsPolicy":"ClusterFirst","serviceAccountName":"default","serviceAccount":"default",
"schedulerName":"default-scheduler","priorityClassName":"p","priority":-5,"terminationGracePeriodSeconds":30,"enableServiceLinks":true,"preemptionPolicy":"Never","nodeSelector":{"k":"v"},
"tolerations":[{"key":"k","operator":"Exists","value":"","effect":"NoExecute","tolerationSeconds":300}],"securityContext":{},
"volumes":[{"name":"kube-api-access-x","projected":{"defaultMode":420,"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"items":[{"key":"ca.crt","path":"ca.crt"}],"name":"kube-root-ca.crt"}},{"downwardAPI":{"items":[{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"},"path":"namespace"}]}}]}},
{"name":"conf","configMap":{"name":"c","defaultMode":420,"optional":false}},{"name":"s","secret":{"secretName":"s","items":[{"key":"k","path":"p","mode":256}]}},{"name":"tmp","emptyDir":{}}]},
"status":{"phase":"Running","message":"","reason":"","hostIP":"192.168.0.1","hostIPs":[{"ip":"192.168.0.1"}],"podIP":"10.0.0.1","podIPs":[{"ip":"10.0.0.1"},{"ip":"fd00::1"}],
"startTime":"2026-11-20T09:00:00Z","qosClass":"Burstable","observedGeneration":2,
"conditions":[{"type":"Ready","status":"True","observedGeneration":1,"lastProbeTime":null,"lastTransitionTime":"2026-11-20T09:00:00Z","reason":"r","message":"m"}]}}`

func TestFastDecodeMatchesStrict(t *testing.T) {
	tweaks := map[string][2]string{
		"nulls everywhere":                 {`"labels":{"app":"web","tier":"ü"}`, `"labels":null,"deletionGracePeriodSeconds":null`},
		"null values in maps and lists":    {`"labels":{"app":"web","tier":"ü"}`, `"labels":{"app":null}`},
		"null list element":                {`"finalizers":["x"]`, `"finalizers":[null]`},
		"null object in a list":            {`"podIPs":[`, `"podIPs":[null,`},
		"unknown field":                    {`"nodeName":"w1"`, `"nodeName":"w1","nodeNmae":"w2"`},
		"unknown nested field":             {`"ip":"192.168.0.1"`, `"ip":"192.168.0.1","family":4`},
		"field known to the strict only":   {`"nodeName":"w1"`, `"nodeName":"w1","volumes":[{"name":"v","emptyDir":{}}]`},
		"field given twice":                {`"nodeName":"w1"`, `"nodeName":"w1","nodeName":"w2"`},
		"label given twice":                {`"app":"web"`, `"app":"web","app":"api"`},
		"key in another case":              {`"nodeName":"w1"`, `"NodeName":"w1"`},
		"escaped string":                   {`"nodeName":"w1"`, `"nodeName":"w\u0031"`},
		"escaped key":                      {`"nodeName":"w1"`, `"node\u004eame":"w1"`},
		"invalid UTF-8":                    {`"nodeName":"w1"`, "\"nodeName\":\"w\xff\""},
		"port of the wrong type":           {`"containerPort":8080`, `"containerPort":"8080"`},
		"port out of range":                {`"containerPort":8080`, `"containerPort":8589934592`},
		"port with a fraction":             {`"containerPort":8080`, `"containerPort":8080.0`},
		"port with an exponent":            {`"containerPort":8080`, `"containerPort":8e3`},
		"negative zero":                    {`"containerPort":8080`, `"containerPort":-0`},
		"boolean of the wrong type":        {`"hostNetwork":false`, `"hostNetwork":"false"`},
		"invalid quantity":                 {`"cpu":"100m"`, `"cpu":"lots"`},
		"quantity as an object":            {`"cpu":"100m"`, `"cpu":{}`},
		"invalid time":                     {`"startTime":"2026-11-20T09:00:00Z"`, `"startTime":"yesterday"`},
		"time as a number":                 {`"startTime":"2026-11-20T09:00:00Z"`, `"startTime":1`},
		"empty lists and maps":             {`"finalizers":["x"]`, `"finalizers":[],"annotations":{}`},
		"status of the wrong type":         {`"status":{`, `"status":[],"x":{`},
		"list where an object goes":        {`"resources":{`, `"resources":[],"x":{`},
		"env from a field":                 {`"value":"1"`, `"valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}`},
		"spaces between tokens":            {`"podIP":"10.0.0.1"`, "\"podIP\" :\n \"10.0.0.1\" "},
		"name missing in the object":       {`"name":"web-1",`, ``},
		"no namespace: it becomes default": {`"namespace":"shop",`, ``},
		"security context not empty":       {`"securityContext":{}`, `"securityContext":{"runAsUser":1000}`},
		"security context null":            {`"securityContext":{}`, `"securityContext":null`},
		"volume of another type":           {`"emptyDir":{}`, `"hostPath":{"path":"/"}`},
		"emptyDir with a size":             {`"emptyDir":{}`, `"emptyDir":{"sizeLimit":"1Gi"}`},
		"null projection":                  {`"sources":[`, `"sources":[null,`},
		"null in a projection":             {`{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}}`, `{"serviceAccountToken":null,"configMap":{"name":"x"}}`},
		"two sources in one projection":    {`{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}}`, `{"serviceAccountToken":{"path":"token"},"configMap":{"name":"x"}}`},
		"unknown projection, null":         {`{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}}`, `{"bogus":null}`},
		"unknown field, null":              {`"nodeName":"w1"`, `"nodeName":"w1","bogus":null`},
		"mount without a path":             {`,"subPath":"c.yaml"`, ``},
		"probe with a named port":          {`"imagePullPolicy":"Always"`, `"imagePullPolicy":"Always","readinessProbe":{"httpGet":{"path":"/","port":"http"},"periodSeconds":5}`},
		"probe with a port out of range":   {`"imagePullPolicy":"Always"`, `"imagePullPolicy":"Always","livenessProbe":{"tcpSocket":{"port":2147483648}}`},
		"affinity":                         {`"nodeName":"w1"`, `"nodeName":"w1","affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"k","operator":"In","values":["a"]}]}]}}}`},
		"overhead and DNS options":         {`"nodeName":"w1"`, `"nodeName":"w1","overhead":{"cpu":"250m"},"dnsConfig":{"options":[{"name":"ndots","value":"2"}]}`},
		"resource given twice":             {`"cpu":"100m"`, `"cpu":"100m","cpu":"200m"`},
		"a float where a quantity is not":  {`"terminationGracePeriodSeconds":30`, `"terminationGracePeriodSeconds":30.5`},
		"bytes of a field it gives up on":  {`"nodeName":"w1"`, `"nodeName":"w1","hostAliases":[{"ip":"1.2.3.4","hostnames":["a"]}]`},
	}
	decodeBoth(t, []byte(podJSON))
	for name, tw := range tweaks {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(podJSON, tw[0]) {
				t.Fatalf("%q is not in the pod", tw[0])
			}
			in := strings.Replace(podJSON, tw[0], tw[1], 1)
			decodeBoth(t, []byte(in))
			decodeBoth(t, []byte(`{"apiVersion":"v1","kind":"PodList","items":[`+in+`]}`))
		})
	}
	for name, tw := range policyTweaks {
		t.Run("policy: "+name, func(t *testing.T) {
			if !strings.Contains(policyJSON, tw[0]) {
				t.Fatalf("%q is not in the policy", tw[0])
			}
			in := strings.Replace(policyJSON, tw[0], tw[1], 1)
			decodeBoth(t, []byte(in))
			decodeBoth(t, []byte(`{"apiVersion":"v1","kind":"List","items":[`+namespaceJSON+`,`+in+`]}`))
		})
	}
	t.Run("YAML", func(t *testing.T) {
		decodeBoth(t, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {x: '1'}}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\nstatus: {podIP: 10.0.0.1}\n"))
	})
	t.Run("test corpus", func(t *testing.T) {
		decodeBoth(t, []byte(kubectlList))
	})
}

func TestFastDecodeTakesKubectlObjects(t *testing.T) {
	data := benchClusterJSON(50, 10)
	decodeBoth(t, data)
	var list struct{ Items []json.RawMessage }
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	pods := 0
	for _, raw := range list.Items {
		var obj kubeObject
		switch {
		case bytes.Contains(raw, []byte(`"kind": "Pod"`)):
			obj = &corev1.Pod{}
			pods++
		case bytes.Contains(raw, []byte(`"kind": "NetworkPolicy"`)):
			obj = &networkingv1.NetworkPolicy{}
		case bytes.Contains(raw, []byte(`"kind": "Namespace"`)):
			obj = &corev1.Namespace{}
		}
		if ok, _ := decodeFast(raw, obj, nil); !ok {
			t.Fatalf("the fast decoder gave up on %s", raw)
		}
	}
	if pods != 50 {
		t.Fatalf("%d pods, want 50", pods)
	}
	for raw, obj := range map[string]kubeObject{podJSON: &corev1.Pod{}, policyJSON: &networkingv1.NetworkPolicy{}, namespaceJSON: &corev1.Namespace{}} {
		if ok, _ := decodeFast([]byte(raw), obj, nil); !ok {
			t.Fatalf("the fast decoder gave up on %s", raw)
		}
	}
}

// policyJSON is a NetworkPolicy with every field the fast decoder reads.
const policyJSON = `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"p","namespace":"shop","generation":1},
"spec":{"podSelector":{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["a","b"]}]},"policyTypes":["Ingress","Egress"],
"ingress":[{"from":[{"podSelector":{}},{"namespaceSelector":{"matchLabels":{"team":"x"}},"podSelector":{"matchLabels":{"app":"api"}}},{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}}],
"ports":[{"protocol":"TCP","port":8080},{"port":"http"},{"protocol":"UDP","port":53,"endPort":60}]}],
"egress":[{"to":[{"ipBlock":{"cidr":"0.0.0.0/0"}}],"ports":[{"port":443}]},{}]}}`

// namespaceJSON is a Namespace as kubectl prints it.
const namespaceJSON = `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","labels":{"kubernetes.io/metadata.name":"shop"}},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}`

var policyTweaks = map[string][2]string{
	"as it is":                   {`"generation":1`, `"generation":1`},
	"null selector":              {`"podSelector":{}`, `"podSelector":null`},
	"null pod selector of spec":  {`"podSelector":{"matchLabels":{"app":"web"}`, `"podSelector":null,"x":{"matchLabels":{"app":"web"}`},
	"port as a float":            {`"port":8080`, `"port":8080.5`},
	"port out of range":          {`"port":8080`, `"port":2147483648`},
	"port as an escaped string":  {`"port":"http"`, `"port":"ht\u0074p"`},
	"port as an object":          {`"port":"http"`, `"port":{}`},
	"null port and protocol":     {`"protocol":"TCP","port":8080`, `"protocol":null,"port":null`},
	"endPort of the wrong type":  {`"endPort":60`, `"endPort":"60"`},
	"unknown field in a peer":    {`"ipBlock":{"cidr":"0.0.0.0/0"}`, `"ipBlock":{"cidr":"0.0.0.0/0"},"serviceSelector":{}`},
	"rule given twice":           {`"policyTypes":["Ingress","Egress"]`, `"policyTypes":["Ingress"],"policyTypes":["Egress"]`},
	"status, which it has not":   {`"spec":{`, `"status":{},"spec":{`},
	"operator of the wrong type": {`"operator":"In"`, `"operator":1`},
	"null values":                {`"values":["a","b"]`, `"values":null`},
	"except with null":           {`"except":["10.1.0.0/16"]`, `"except":[null]`},
}
