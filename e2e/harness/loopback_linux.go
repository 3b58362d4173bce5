package harness

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
)

// AddLoopbackAddress adds addr/32 to this namespace's loopback, so that connections to addr
// (a Service's ClusterIP, say) reach listeners on this machine, and returns the function that
// removes it. It needs root.
func AddLoopbackAddress(addr string) (remove func() error, err error) {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is4() {
		return nil, errors.New("want an IPv4 address, got " + addr)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("adding " + addr + " to the loopback needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("ip not found: apt-get install -y iproute2")
	}
	prefix := addr + "/32"
	// replace, not add: a run killed before its cleanup left the address behind.
	if err := run("", "ip", "addr", "replace", prefix, "dev", "lo"); err != nil {
		return nil, err
	}
	return func() error { return run("", "ip", "addr", "del", prefix, "dev", "lo") }, nil
}
