package agent

import (
	"context"
	"errors"
	"github.com/netpol-guard/netpol-guard/internal/testutil"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestConntrackReportsPodToPodEdgesAfterDNAT runs the agent against the kernel's real
// conntrack table of a lab node, with real connections between pods played by network
// namespaces, and checks what it pushes to a (fake) webhook over TLS.
func TestConntrackReportsPodToPodEdgesAfterDNAT(t *testing.T) {
	l := newLab(t)

	// Pod B serves TCP 8080 and UDP 5353 (behind the Service); pod A serves TCP 7070.
	tcpEcho(t, l, l.podB, podB+":8080")
	udpEcho(t, l, l.podB, podB+":5353")
	tcpEcho(t, l, l.podA, podA+":7070")

	// A long-lived connection through the Service, opened before the agent starts and idle
	// after: only the initial dump can see it.
	idle := dialEcho(t, l, l.podA, "tcp", serviceVIP+":80")
	t.Cleanup(func() { idle.Close() })

	w := newWebhook(t, nil)
	a := newTestAgent(t, func(o *Options) {
		o.WebhookURLs = []string{w.srv.URL}
		o.CAFile = w.caFile(t)
		o.Interval = 200 * time.Millisecond
		o.Netlink = l.netlink()
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testutil.Eventually(t, 10*time.Second, "the agent following conntrack", a.alive.Load)

	// New connections, seen through events: UDP through the Service, and TCP the other
	// way, pod B to pod A directly.
	dialEcho(t, l, l.podA, "udp", serviceVIP+":53").Close()
	dialEcho(t, l, l.podB, "tcp", podA+":7070").Close()

	want := []string{
		"10.250.0.2 -> 10.250.1.2:5353/UDP", // A → 10.96.0.10:53, after DNAT
		"10.250.0.2 -> 10.250.1.2:8080/TCP", // A → 10.96.0.10:80, after DNAT; from the dump
		"10.250.1.2 -> 10.250.0.2:7070/TCP", // B → A
	}
	labEdges := func() []string {
		var out []string
		for _, e := range w.edges() {
			if strings.HasPrefix(e, "10.250.") || strings.Contains(e, serviceVIP) {
				out = append(out, e)
			}
		}
		return out
	}
	testutil.Eventually(t, 10*time.Second, "the lab's edges pushed", func() bool { return len(labEdges()) >= len(want) })
	time.Sleep(3 * a.opts.Interval) // later pushes must add nothing either
	if got := labEdges(); !slices.Equal(got, want) {
		t.Errorf("pushed edges:\n  %s\nwant exactly:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if all := w.edges(); len(all) != len(want) {
		t.Errorf("the lab node's table gave edges beyond the test's: %v", all)
	}
	for _, r := range w.records() {
		if r.LastSeen.IsZero() || time.Since(r.LastSeen) > time.Minute {
			t.Errorf("record %v has lastSeen %v", r, r.LastSeen)
		}
	}
	if v := value(t, a.metrics.events[kindDump]); v < 1 {
		t.Errorf("dumped entries = %v, want the idle connection at least", v)
	}
	if v := value(t, a.metrics.events[kindNew]); v < 2 {
		t.Errorf("new events = %v, want the UDP and the TCP connection at least", v)
	}
	if err := a.Healthz(nil); err != nil {
		t.Errorf("Healthz: %v", err)
	}
	// Ready once the agent has read a webhook answer, which may trail the webhook's record.
	testutil.Eventually(t, 5*time.Second, "ready after a push", func() bool { return a.Readyz(nil) == nil })
}

// tcpEcho serves TCP echo on addr in namespace ns until the test ends.
func tcpEcho(t *testing.T, l *lab, ns, addr string) {
	t.Helper()
	var ln net.Listener
	if err := l.in(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

// udpEcho serves UDP echo on addr in namespace ns until the test ends.
func udpEcho(t *testing.T, l *lab, ns, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := l.in(ns, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

// dialEcho connects from namespace ns to an echo server and checks one round trip.
func dialEcho(t *testing.T, l *lab, ns, network, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	err := l.in(ns, func() (err error) {
		c, err = net.DialTimeout(network, addr, 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("%s from %s to %s: %v", network, ns, addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("%s from %s to %s: %v", network, ns, addr, err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("%s from %s to %s: echo %q, %v", network, ns, addr, buf, errors.Join(err))
	}
	_ = c.SetDeadline(time.Time{})
	return c
}
