package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NetLab is a Kubernetes node and two pods played by network namespaces on this machine,
// wired as a CNI wires them (the node agent's kernel tests build the same): each pod has a
// veth pair to the node, an address of its node-local pod range and routes via the node,
// which forwards between them. The node's nftables ruleset has a stateful forward chain, so
// the kernel tracks the pods' connections in the node's conntrack table, and a DNAT rule
// stands in for kube-proxy's ClusterIP Service:
//
//	client 10.250.0.2 ──veth── node ──veth── server 10.250.1.2
//	                            │  10.96.0.10:80/TCP → 10.250.1.2:8080
//	                        uplink 10.251.0.2/30
//	                            │
//	        this machine's namespace 10.251.0.1/30
//
// The uplink joins the node to the namespace the test (and the API server and webhook)
// run in, as a node's network reaches the control plane: a node agent running in the node
// namespace pushes to a webhook here at HostIP. Nothing is routed further either way.
type NetLab struct {
	// Node, Client and Server are the network namespaces' names (ip netns).
	Node, Client, Server string
	// HostLink is the uplink's end in this namespace.
	HostLink string

	closers []func() error
	mu      sync.Mutex
}

// The lab's addresses.
const (
	LabClientIP    = "10.250.0.2"
	LabServerIP    = "10.250.1.2"
	LabPodCIDR     = "10.250.0.0/16"
	LabServiceIP   = "10.96.0.10"
	LabServicePort = 80
	LabServerPort  = 8080
	// LabNodeIP is the node's address on the uplink (its InternalIP); LabHostIP this
	// namespace's.
	LabNodeIP = "10.251.0.2"
	LabHostIP = "10.251.0.1"
)

const labRuleset = `
table ip npg_e2e {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 10.96.0.10 tcp dport 80 dnat to 10.250.1.2:8080
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		ct state new ip saddr 10.250.0.0/16 ip daddr 10.250.0.0/16 accept
	}
}
`

// NetLabUnavailable says why this machine cannot build a NetLab ("" when it can): it needs
// root and the ip and nft commands (apt-get install -y iproute2 nftables).
func NetLabUnavailable() string {
	if os.Geteuid() != 0 {
		return "needs root for network namespaces, veth pairs, nftables and conntrack"
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found: apt-get install -y iproute2 nftables"
		}
	}
	return ""
}

var labSeq atomic.Int32

// NewNetLab builds a lab. Close removes it: its namespaces, and with them the veth pairs
// (the uplink's end here too), the nftables ruleset and the conntrack table.
func NewNetLab() (l *NetLab, err error) {
	if why := NetLabUnavailable(); why != "" {
		return nil, errors.New(why)
	}
	sweepStaleLabs()
	sfx := strconv.FormatInt(int64(os.Getpid()), 36) + "-" + strconv.Itoa(int(labSeq.Add(1)))
	l = &NetLab{Node: "npg-e2e-node-" + sfx, Client: "npg-e2e-cli-" + sfx, Server: "npg-e2e-srv-" + sfx, HostLink: "npgup" + sfx}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()
	for _, ns := range []string{l.Node, l.Client, l.Server} {
		if err := run("", "ip", "netns", "add", ns); err != nil {
			return nil, err
		}
		l.onClose(func() error { return run("", "ip", "netns", "del", ns) })
		if err := run("", "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	for _, p := range []struct{ ns, veth, gw, addr string }{
		{l.Client, "veth-cli", "10.250.0.1", LabClientIP},
		{l.Server, "veth-srv", "10.250.1.1", LabServerIP},
	} {
		for _, args := range [][]string{
			{"ip", "-n", l.Node, "link", "add", p.veth, "type", "veth", "peer", "name", "eth0", "netns", p.ns},
			{"ip", "-n", l.Node, "addr", "add", p.gw + "/24", "dev", p.veth},
			{"ip", "-n", l.Node, "link", "set", p.veth, "up"},
			{"ip", "-n", p.ns, "addr", "add", p.addr + "/24", "dev", "eth0"},
			{"ip", "-n", p.ns, "link", "set", "eth0", "up"},
			// Only the pod range and the Service range are routed: nothing leaves the lab.
			{"ip", "-n", p.ns, "route", "add", "10.250.0.0/16", "via", p.gw},
			{"ip", "-n", p.ns, "route", "add", "10.96.0.0/12", "via", p.gw},
		} {
			if err := run("", args...); err != nil {
				return nil, err
			}
		}
	}
	// The uplink. Its end here goes with the node namespace; deleting it first as well
	// keeps a slow namespace teardown from holding the address.
	l.onClose(func() error {
		if err := exec.Command("ip", "link", "show", l.HostLink).Run(); err != nil {
			return nil
		}
		return run("", "ip", "link", "del", l.HostLink)
	})
	for _, args := range [][]string{
		{"ip", "link", "add", l.HostLink, "type", "veth", "peer", "name", "uplink", "netns", l.Node},
		{"ip", "addr", "add", LabHostIP + "/30", "dev", l.HostLink},
		{"ip", "link", "set", l.HostLink, "up"},
		{"ip", "-n", l.Node, "addr", "add", LabNodeIP + "/30", "dev", "uplink"},
		{"ip", "-n", l.Node, "link", "set", "uplink", "up"},
	} {
		if err := run("", args...); err != nil {
			return nil, err
		}
	}
	if err := run("", "ip", "netns", "exec", l.Node, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return nil, err
	}
	if err := run(labRuleset, "ip", "netns", "exec", l.Node, "nft", "-f", "-"); err != nil {
		return nil, err
	}
	return l, nil
}

// sweepStaleLabs removes the labs of test processes that died without closing them (a
// test binary killed at its timeout): their namespaces and uplinks would hold the lab's
// fixed addresses, and every later lab's traffic would go astray.
func sweepStaleLabs() {
	dead := func(sfx string) bool { // "<pid in base 36>-<seq>"
		pid, err := strconv.ParseInt(strings.SplitN(sfx, "-", 2)[0], 36, 64)
		if err != nil || pid == int64(os.Getpid()) {
			return false
		}
		return syscall.Kill(int(pid), 0) == syscall.ESRCH
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			for _, prefix := range []string{"npg-e2e-node-", "npg-e2e-cli-", "npg-e2e-srv-"} {
				if sfx, ok := strings.CutPrefix(name, prefix); ok && dead(sfx) {
					_ = exec.Command("ip", "netns", "del", name).Run()
				}
			}
		}
	}
	if out, err := exec.Command("ip", "-br", "link").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			name, _, _ = strings.Cut(name, "@")
			if sfx, ok := strings.CutPrefix(name, "npgup"); ok && dead(sfx) {
				_ = exec.Command("ip", "link", "del", name).Run()
			}
		}
	}
}

func (l *NetLab) onClose(fn func() error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closers = append(l.closers, fn)
}

// Close closes the sockets the lab opened and deletes what it created, last first.
func (l *NetLab) Close() error {
	l.mu.Lock()
	closers := l.closers
	l.closers = nil
	l.mu.Unlock()
	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		errs = append(errs, closers[i]())
	}
	return errors.Join(errs...)
}

// In runs fn on an OS thread moved into network namespace ns, then moves the thread back:
// sockets fn opens belong to ns and may be used from any goroutine afterwards. (A thread
// left in ns would have to end with its goroutine, and a process started with a parent-death
// signal from that thread would be killed with it.)
func (l *NetLab) In(ns string, fn func() error) error { return InNetns(ns, fn) }

// InNetns runs fn on an OS thread moved into network namespace ns (ip netns), as NetLab.In.
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %s: %w", ns, err)
			return
		}
		err = fn()
		if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); rerr != nil {
			// Stay locked: the thread ends with this goroutine rather than run others in ns.
			errc <- errors.Join(err, fmt.Errorf("leaving network namespace %s: %w", ns, rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// DialIn connects from network namespace ns.
func (l *NetLab) DialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := l.In(ns, func() (err error) {
		c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClientIn is an HTTP client whose connections start in network namespace ns (to read
// the agent's metrics on the node's loopback, say).
func (l *NetLab) HTTPClientIn(ns string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return l.DialIn(ctx, ns, network, addr)
		},
		DisableKeepAlives: true,
	}}
}

// ServeTCPEcho serves TCP echo on addr in network namespace ns until Close.
func (l *NetLab) ServeTCPEcho(ns, addr string) error {
	var ln net.Listener
	if err := l.In(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		return fmt.Errorf("listening on %s in %s: %w", addr, ns, err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	l.onClose(func() error {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		return nil
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				_, _ = io.Copy(c, c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			})
		}
	})
	return nil
}

// TCPEcho connects from network namespace ns to an echo server at addr, checks one round
// trip and closes the connection: one real TCP connection, tracked by the node.
func (l *NetLab) TCPEcho(ctx context.Context, ns, addr string) error {
	c, err := l.DialIn(ctx, ns, "tcp", addr)
	if err != nil {
		return fmt.Errorf("TCP from %s to %s: %w", ns, addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return fmt.Errorf("TCP from %s to %s: %w", ns, addr, err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		return fmt.Errorf("TCP from %s to %s: echo %q, %v", ns, addr, buf, err)
	}
	return nil
}

// run runs a command with stdin, returning its output with the error.
func run(stdin string, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return nil
}
