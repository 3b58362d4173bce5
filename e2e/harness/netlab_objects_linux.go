package harness

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol-guard/netpol-guard/cluster"
)

// LabObjects is the lab as the API server knows it: namespace ns (labelled nsLabels), the
// node (its InternalIP the lab node's address) and the Deployments client and server, one
// pod each on that node at the lab's addresses, the server declaring its port as "http".
func LabObjects(ns string, nsLabels map[string]string, node string) *cluster.Objects {
	return &cluster.Objects{
		Namespaces: []*corev1.Namespace{Namespace(ns, nsLabels)},
		Nodes: []*corev1.Node{{
			ObjectMeta: metav1.ObjectMeta{Name: node},
			Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: LabNodeIP}}},
		}},
		Pods: []*corev1.Pod{
			DeploymentPod(ns, "client", "7c9d8f6b5", "q4w8z", map[string]string{"app": "client"}, node, LabClientIP),
			DeploymentPod(ns, "server", "5b6c7d8f9", "m2n3p", map[string]string{"app": "server"}, node, LabServerIP,
				corev1.ContainerPort{Name: "http", ContainerPort: LabServerPort, Protocol: corev1.ProtocolTCP}),
		},
	}
}
