package agent

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// A lab is a node and two pods played by network namespaces, as a CNI wires them: each pod
// has a veth pair to the node, an address of its node-local pod range and routes via the
// node, which forwards between them. The node's nftables ruleset has a stateful forward
// chain, which makes the kernel track the pods' connections in the node's conntrack table,
// and a DNAT rule standing in for kube-proxy's ClusterIP Service:
//
//	10.96.0.10:80/TCP → 10.250.1.2:8080      10.96.0.10:53/UDP → 10.250.1.2:5353
//
// The node is a namespace of its own rather than the test machine's root namespace: its
// conntrack table holds only the test's connections, and nothing of the host is changed.
type lab struct {
	node, podA, podB string // namespace names
	nodeNS           *os.File
}

const (
	podA       = "10.250.0.2"
	podB       = "10.250.1.2"
	serviceVIP = "10.96.0.10"
)

const labRuleset = `
table ip npg {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 10.96.0.10 tcp dport 80 dnat to 10.250.1.2:8080
		ip daddr 10.96.0.10 udp dport 53 dnat to 10.250.1.2:5353
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		ct state new ip saddr 10.250.0.0/16 ip daddr 10.250.0.0/16 accept
	}
}
`

// skipOrFail skips the test, or fails it in CI, where the kernel tests must run.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" (CI is set: kernel tests must run there)", args...)
	}
	t.Skipf(format, args...)
}

// requireLabTools skips (fails in CI) unless the test can build a lab.
func requireLabTools(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root for network namespaces, veth pairs, nftables and conntrack over netlink")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "%s not found: install iproute2 and nftables (apt-get install -y nftables iproute2; scripts/test.sh does)", tool)
		}
	}
}

var labSeq atomic.Int32

// newLab builds a lab; t.Cleanup deletes the namespaces, and with them the veth pairs, the
// nftables ruleset and the conntrack table, whatever happens.
func newLab(t testing.TB) *lab {
	t.Helper()
	requireLabTools(t)
	sfx := strconv.FormatInt(int64(os.Getpid()), 36) + "-" + strconv.Itoa(int(labSeq.Add(1)))
	l := &lab{node: "npg-node-" + sfx, podA: "npg-a-" + sfx, podB: "npg-b-" + sfx}
	for _, ns := range []string{l.node, l.podA, l.podB} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	for _, p := range []struct{ ns, veth, gw, addr string }{
		{l.podA, "veth-a", "10.250.0.1", podA},
		{l.podB, "veth-b", "10.250.1.1", podB},
	} {
		sh(t, "ip", "-n", l.node, "link", "add", p.veth, "type", "veth", "peer", "name", "eth0", "netns", p.ns)
		sh(t, "ip", "-n", l.node, "addr", "add", p.gw+"/24", "dev", p.veth)
		sh(t, "ip", "-n", l.node, "link", "set", p.veth, "up")
		sh(t, "ip", "-n", p.ns, "addr", "add", p.addr+"/24", "dev", "eth0")
		sh(t, "ip", "-n", p.ns, "link", "set", "eth0", "up")
		// Only the pod range and the Service range are routed: nothing leaves the lab.
		sh(t, "ip", "-n", p.ns, "route", "add", "10.250.0.0/16", "via", p.gw)
		sh(t, "ip", "-n", p.ns, "route", "add", "10.96.0.0/12", "via", p.gw)
	}
	sh(t, "ip", "netns", "exec", l.node, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	shIn(t, labRuleset, "ip", "netns", "exec", l.node, "nft", "-f", "-")

	f, err := os.Open("/run/netns/" + l.node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	l.nodeNS = f

	c, err := conntrack.Dial(l.netlink())
	if err != nil {
		skipOrFail(t, "conntrack over netlink is not available: %v", err)
	}
	defer c.Close()
	if _, err := c.Dump(nil); err != nil {
		skipOrFail(t, "cannot dump the conntrack table: %v", err)
	}
	return l
}

// netlink is the netlink configuration that reads the node's conntrack table.
func (l *lab) netlink() *netlink.Config { return &netlink.Config{NetNS: int(l.nodeNS.Fd())} }

// in runs fn on an OS thread moved into namespace ns; sockets fn opens belong to ns and may
// be used from any goroutine afterwards. The thread is never returned to the runtime.
func (l *lab) in(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread ends with the goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering network namespace %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func sh(t testing.TB, args ...string) { t.Helper(); shIn(t, "", args...) }

func shIn(t testing.TB, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}
