package cluster

import (
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LiveFromObjects returns a live view holding the objects of a cluster file, cluster
// policies included, handed to it as the informers would hand them to the webhook's: the
// offline commands resolve and judge flows through the same view, by the same rules, as the
// webhook does.
//
// A file is one moment: every pod it lists holds its addresses for the whole time the flows
// cover, whatever its start time. What a `kubectl get pods` dump leaves out is filled in as
// the API server would have it: a namespace that pods or policies are in but the file does
// not list exists with only its name label, and a node that pods run on but the file does
// not list has the pods' host IPs as its addresses. now is the view's clock from then on
// (records without lastSeen are taken as seen then); zero means time.Now.
func LiveFromObjects(s *Objects, opts LiveOptions) *Live {
	if s == nil {
		s = &Objects{}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	// While loading, the clock stands before every flow, so each pod claims its addresses
	// from the beginning.
	loading := true
	opts.Now = func() time.Time {
		if loading {
			return time.Time{}
		}
		return now()
	}
	l := newLive(opts)

	namespaces := map[string]bool{}
	for _, ns := range s.Namespaces {
		namespaces[ns.Name] = true
		l.upsertNamespace(ns)
	}
	addNamespace := func(name string) {
		if name != "" && !namespaces[name] {
			namespaces[name] = true
			l.upsertNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		}
	}

	nodes := map[string]*corev1.Node{}
	for _, n := range s.Nodes {
		nodes[n.Name] = n
	}
	implied := map[string]*corev1.Node{}
	for _, pod := range s.Pods {
		addNamespace(pod.Namespace)
		name := pod.Spec.NodeName
		if name == "" || nodes[name] != nil {
			continue
		}
		n := implied[name]
		if n == nil {
			n = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
			implied[name] = n
		}
		ips := []string{pod.Status.HostIP}
		for _, ip := range pod.Status.HostIPs {
			ips = append(ips, ip.IP)
		}
		for _, ip := range ips {
			if ip != "" && !slices.ContainsFunc(n.Status.Addresses, func(a corev1.NodeAddress) bool { return a.Address == ip }) {
				n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
			}
		}
	}
	for _, p := range s.Policies {
		addNamespace(p.Namespace)
		l.upsertPolicy(p)
	}
	for _, p := range s.ClusterPolicies {
		l.upsertClusterPolicy(p, "")
	}
	for _, n := range s.Nodes {
		l.upsertNode(n)
	}
	for _, n := range implied {
		l.upsertNode(n)
	}
	for _, pod := range s.Pods {
		l.upsertPod(pod)
	}
	loading = false
	return l
}
