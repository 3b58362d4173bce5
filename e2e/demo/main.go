// Command demo shows netpol-guard guarding a real API server on this machine: it starts
// kube-apiserver and etcd (built from Go module sources by e2e/tools/build.sh; the path in
// $KUBEBUILDER_ASSETS), loads the example shop, runs the netpol-guard webhook in front of
// them, pushes the example flows through the authenticated flow API, and then runs the real
// kubectl to apply the example default-deny (rejected: it would cut live traffic) and the
// same lock-down done right (admitted). Everything stops when it is done.
//
// Run it from the repository root: scripts/demo.sh.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/e2e/harness"
	"github.com/netpol-guard/netpol-guard/flowapi"
	"github.com/netpol-guard/netpol-guard/webhook"
)

const (
	clusterFile = "examples/cluster.yaml"
	flowsFile   = "examples/flows.jsonl"
	denyFile    = "examples/proposed/shop-default-deny.yaml"
	rightFile   = "examples/proposed/shop-default-deny-with-egress.yaml"
	// minHistory: the demo's flow cache starts empty when the webhook starts, so enforce
	// may not wait for the hour of history it wants by default.
	minHistory = time.Second
)

func main() { os.Exit(run()) }

func run() int {
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		return 1
	}
	return 0
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func demo(ctx context.Context) (err error) {
	for _, f := range []string{clusterFile, flowsFile, denyFile, rightFile} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w: run from the repository root (scripts/demo.sh does)", err)
		}
	}
	snap, err := cluster.Load(clusterFile)
	if err != nil {
		return err
	}
	recs, err := harness.ReadFlows(flowsFile)
	if err != nil {
		return err
	}

	cp, err := harness.StartControlPlane(harness.ControlPlaneOptions{})
	if err != nil {
		return err
	}
	defer func() {
		if serr := cp.Stop(); serr != nil && err == nil {
			err = serr
		}
		if err == nil {
			step("Stopped the webhook, kube-apiserver and etcd")
		}
	}()
	step("Control plane up: kube-apiserver %s and etcd, built from Go module sources", cp.Version)

	// The shop is guarded in enforce mode by its namespace label; the rest of the cluster
	// gets the global --mode warn.
	for _, ns := range snap.Namespaces {
		if ns.Name == "shop" {
			if ns.Labels == nil {
				ns.Labels = map[string]string{}
			}
			ns.Labels["netpol-guard.io/mode"] = "enforce"
		}
	}
	if err := cp.CreateCluster(ctx, snap); err != nil {
		return fmt.Errorf("loading %s: %w", clusterFile, err)
	}
	step("Loaded %s: %d namespaces, %d nodes, %d pods (addresses set through the status subresource), %d NetworkPolicies",
		clusterFile, len(snap.Namespaces), len(snap.Nodes), len(snap.Pods), len(snap.Policies))
	step("Labelled namespace shop netpol-guard.io/mode=enforce")

	wh, err := harness.StartWebhook(ctx, cp, harness.WebhookOptions{Mode: "warn", MinHistory: minHistory})
	if err != nil {
		return err
	}
	step("netpol-guard webhook --mode warn --min-history %s: serving %s (this checkout, go build)", minHistory, wh.URL+webhook.ValidatePath)
	if err := wh.Register(ctx, cp, harness.RegisterOptions{}); err != nil {
		return withLogs(err, wh)
	}
	step("Registered ValidatingWebhookConfiguration %s: NetworkPolicy CREATE/UPDATE/DELETE, failurePolicy Fail", wh.Name)

	token, err := cp.ServiceAccountToken(ctx, harness.GuardNamespace, harness.AgentAccount)
	if err != nil {
		return err
	}
	body, err := harness.EncodeFlows(harness.ShiftFlows(recs, time.Now()))
	if err != nil {
		return err
	}
	res, err := wh.PushFlows(ctx, token, body)
	if err != nil {
		return withLogs(err, wh)
	}
	if res.Status != 200 {
		return withLogs(fmt.Errorf("POST %s answered %d: %s", flowapi.FlowsPath, res.Status, strings.TrimSpace(res.Body)), wh)
	}
	step("Pushed %s to POST %s with %s's token: %d flows accepted, %d unresolved (timestamps moved so the newest is now)",
		flowsFile, flowapi.FlowsPath, harness.AgentUser, res.Accepted, res.Unresolved)
	time.Sleep(minHistory) // the history enforce asks for

	fmt.Println()
	fmt.Println("The lock-down that forgets egress:")
	if err := kubectl(ctx, cp, "apply", "-f", denyFile); err != nil {
		return withLogs(err, wh)
	}
	fmt.Println()
	fmt.Println("The same lock-down done right:")
	if err := kubectl(ctx, cp, "apply", "-f", rightFile); err != nil {
		return withLogs(err, wh)
	}
	fmt.Println()
	return nil
}

// kubectl runs the real kubectl and shows the command and what it printed, as a terminal
// would.
func kubectl(ctx context.Context, cp *harness.ControlPlane, args ...string) error {
	res, err := cp.Kubectl(ctx, args...)
	if err != nil {
		return err
	}
	fmt.Printf("\n$ %s\n%s", res.CommandLine(), res.Output)
	if !strings.HasSuffix(res.Output, "\n") && res.Output != "" {
		fmt.Println()
	}
	fmt.Printf("[kubectl exit status %d]\n", res.ExitCode)
	return nil
}

func withLogs(err error, wh *harness.Webhook) error {
	return errors.Join(err, fmt.Errorf("webhook log:\n%s", wh.Logs()))
}
