package webhook

// ValidatePath is the path the webhook server serves admission reviews on. The chart's
// ValidatingWebhookConfiguration carries it as the value webhook.path, and the chart test
// checks the two agree.
const ValidatePath = "/validate-networkpolicy"

// The paths relabels are judged on, one per webhook entry of the chart (values
// relabel.namespaces.path, relabel.pods.path, relabel.workloads.path, relabel.nodes.path),
// each gated by matchConditions so that only updates that change labels reach them.
const (
	// RelabelNamespacePath judges Namespace label changes.
	RelabelNamespacePath = "/validate-relabel-namespace"
	// RelabelPodPath judges label changes of running pods.
	RelabelPodPath = "/validate-relabel-pod"
	// RelabelWorkloadPath judges pod template label changes of Deployments, StatefulSets,
	// DaemonSets, ReplicaSets, Jobs and CronJobs.
	RelabelWorkloadPath = "/validate-relabel-workload"
	// RelabelNodePath judges Node label changes, which the nodes peers of
	// ClusterNetworkPolicies read.
	RelabelNodePath = "/validate-relabel-node"
)
