package cluster

import (
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

func nodeEndpoint(node string, ip netip.Addr) *evaluator.Endpoint {
	return &evaluator.Endpoint{Kind: evaluator.Node, Name: node, NodeName: node, IP: ip}
}

// The name of a Job a CronJob creates: the CronJob's name, a dash, and the scheduled time in
// minutes since the epoch (8 digits since 1976).
var cronJobJobName = regexp.MustCompile(`^(.+)-([0-9]{8,})$`)

// WorkloadOf names the workload a pod belongs to, "Kind/name", by its controller owner
// reference: a ReplicaSet whose name is a Deployment's plus the pod's pod-template-hash is
// that Deployment; a Job named like a CronJob's ("<cronjob>-<8+ digits>") is that CronJob;
// any other controller (StatefulSet, DaemonSet, ReplicaSet, Job, ReplicationController, or a
// custom one) is itself. A pod with no controller, or a static pod (owned by its Node), is
// its own workload: "Pod/<name>".
func WorkloadOf(pod *corev1.Pod) string {
	if pod == nil {
		return ""
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller || ref.Name == "" {
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			if hash := pod.Labels["pod-template-hash"]; hash != "" {
				if deploy, ok := strings.CutSuffix(ref.Name, "-"+hash); ok && deploy != "" {
					return "Deployment/" + deploy
				}
			}
		case "Job":
			if m := cronJobJobName.FindStringSubmatch(ref.Name); m != nil {
				return "CronJob/" + m[1]
			}
		case "Node":
			return "Pod/" + pod.Name
		}
		return ref.Kind + "/" + ref.Name
	}
	return "Pod/" + pod.Name
}

// podAddrs are a pod's IPs, from status.podIPs and status.podIP.
func podAddrs(pod *corev1.Pod) []netip.Addr {
	var addrs []netip.Addr
	add := func(s string) {
		if a := parseAddr(s); a.IsValid() && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	add(pod.Status.PodIP)
	for _, ip := range pod.Status.PodIPs {
		add(ip.IP)
	}
	return addrs
}

func terminated(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// parseAddr parses an address, or returns the zero Addr.
func parseAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func copyLabels(l map[string]string) map[string]string {
	if l == nil {
		return nil
	}
	return maps.Clone(l)
}
