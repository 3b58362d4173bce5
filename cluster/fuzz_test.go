package cluster

import (
	"bytes"
	"testing"

	"github.com/netpol-guard/netpol-guard/flows"
)

// FuzzDecode feeds arbitrary input to Decode, loads it into a view and resolves every pod
// and IP it yields: neither may panic, whatever the input. Decode must also give the same
// objects or the same error as the strict decoder alone, without the fast ones.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(kubectlList))
	f.Add([]byte("apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a, namespace: shop}\n  status: {podIP: 10.0.0.1, hostIP: 192.168.0.1}\n  spec: {nodeName: w, hostNetwork: true}\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","ownerReferences":[{"kind":"Job","name":"x-12345678","controller":true}]},"status":{"podIPs":[{"ip":"::ffff:10.0.0.1"}]}}{"apiVersion":"v1","kind":"Node","metadata":{"name":"w"},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"}]}}`))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: [null, 1, {kind: NamespaceList, items: [{metadata: {name: x}}]}]\n"))
	f.Add([]byte("---\n# c\n---\n- a\n"))
	f.Add([]byte("{kind: Pod"))
	f.Add([]byte(podJSON))
	f.Add([]byte(policyJSON + namespaceJSON))
	f.Add([]byte(`{"kind":"PodList","apiVersion":"v1","items":[{"metadata":{"name":"a","labels":{"a":null}},"spec":{"containers":[{"ports":[{"containerPort":-0}]}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeBoth(t, data)
		s, err := Decode(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		l := LiveFromObjects(s, LiveOptions{})
		_ = l.World()
		for _, pod := range s.Pods {
			peers := []flows.Peer{
				{Namespace: pod.Namespace, Pod: pod.Name},
				{Namespace: pod.Namespace, Workload: WorkloadOf(pod), IP: pod.Status.PodIP},
				{IP: pod.Status.PodIP},
				{IP: pod.Status.HostIP},
			}
			for _, p := range peers {
				if o, err := l.Identify(flows.Record{Src: p, Dst: p, Port: 80}); err == nil {
					_ = l.Endpoint(o.Src, o.SrcInfo).String()
				}
			}
		}
	})
}
