package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Benchmarks for issue 6, "agent CPU and memory at 10 k conntrack events/s". Both run for a
// fixed time, whatever b.N, and report CPU (% of one core), memory and the event rate:
//
//	go test -run '^$' -bench . -benchtime 1x ./agent/            (as root for the kernel one)
//	NPG_BENCH_SECONDS=30 go test -run '^$' -bench Kernel -benchtime 1x ./agent/

func benchDuration() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("NPG_BENCH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 10 * time.Second
}

// BenchmarkEventPath10kPerSec drives the agent's event path (edge, self filter,
// aggregation), its flushes and its pushes to a TLS webhook, with synthetic conntrack events
// at 10 000/s: TCP connections through Services among 1 000 edges, each connection a new,
// two updates and a destroy, every event a freshly allocated Flow as the netlink decoder
// hands over. Netlink decoding itself is measured by BenchmarkKernelConntrack10kPerSec.
func BenchmarkEventPath10kPerSec(b *testing.B) {
	const rate, edges = 10_000, 1_000
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"accepted":0,"unresolved":0}`)
	}))
	defer srv.Close()
	w := &webhook{srv: srv}
	a := newTestAgent(b, func(o *Options) {
		o.WebhookURLs = []string{srv.URL}
		o.CAFile = w.caFile(b)
		o.Interval = time.Second
		o.MaxBufferedEdges = DefaultMaxBufferedEdges
		o.Log = discardLogger()
	})
	if err := a.push.reloadCA(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.push.start(ctx)
	a.cycle(ctx)

	templates := make([]conntrack.Flow, edges)
	for i := range templates {
		client := fmt.Sprintf("10.1.%d.%d", i/250, i%250+2)
		backend := fmt.Sprintf("10.2.%d.%d:8080", i%40, 10)
		templates[i] = *ctFlow(protoTCP, client+":40000", fmt.Sprintf("10.96.0.%d:80", i%40+1), backend, client+":40000")
	}
	kinds := []conntrack.Event{{Type: conntrack.EventNew}, {Type: conntrack.EventUpdate}, {Type: conntrack.EventUpdate}, {Type: conntrack.EventDestroy}}

	for b.Loop() {
		d := benchDuration()
		stopFlush := make(chan struct{})
		go func() {
			t := time.NewTicker(a.opts.Interval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					a.cycle(ctx)
				case <-stopFlush:
					return
				}
			}
		}()
		var peakHeap atomic.Uint64
		stopSample := sampleHeap(&peakHeap)
		runtime.GC()
		allocs0 := readMetric("/gc/heap/allocs:bytes")
		cpu0, wall0 := cpuTime(), time.Now()

		var sent int
		tick := time.NewTicker(time.Millisecond)
		for time.Since(wall0) < d {
			<-tick.C
			due := int(time.Since(wall0).Seconds() * rate)
			for ; sent < due; sent++ {
				conn := sent / len(kinds)
				ev := kinds[sent%len(kinds)]
				f := templates[conn%edges] // a copy, as the decoder allocates one per event
				f.TupleOrig.Proto.SourcePort = uint16(32768 + conn%28000)
				f.TupleReply.Proto.DestinationPort = f.TupleOrig.Proto.SourcePort
				ev.Flow = &f
				a.observeEvent(ev)
			}
		}
		tick.Stop()
		wall, cpu := time.Since(wall0), cpuTime()-cpu0
		allocs := readMetric("/gc/heap/allocs:bytes") - allocs0
		close(stopFlush)
		stopSample()

		b.ReportMetric(float64(sent)/wall.Seconds(), "events/s")
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu-%")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(sent), "cpu-ns/event")
		b.ReportMetric(float64(allocs)/float64(sent), "alloc-B/event")
		b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak-heap-MiB")
	}
	if v := value(b, a.metrics.edgesPushed); v == 0 {
		b.Error("nothing was pushed")
	}
}

// BenchmarkKernelConntrack10kPerSec runs the agent as its own process, reading a lab node's
// real conntrack table (see lab), while pod A opens short UDP "connections" to pod B (each
// a new socket: new, reply and destroy events) fast enough for about 10 000 events/s. It
// reports the agent process's CPU and resident memory, from /proc.
func BenchmarkKernelConntrack10kPerSec(b *testing.B) {
	l := newLab(b)
	// Short UDP timeouts keep the table small and bring the destroy events within the run.
	sh(b, "ip", "netns", "exec", l.node, "sh", "-c", "echo 2 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout")
	udpSink(b, l, l.podB, podB+":5353")

	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"accepted":0,"unresolved":0}`)
	}))
	defer srv.Close()
	dir := b.TempDir()
	token := filepath.Join(dir, "token")
	writeFile(b, token, "token-1")
	w := &webhook{srv: srv}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "NPG_NETNS=/run/netns/"+l.node, "NPG_URL="+srv.URL, "NPG_CA="+w.caFile(b), "NPG_TOKEN="+token)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("agent process: %v", err)
	}
	metricsURL := "http://" + strings.TrimSpace(strings.TrimPrefix(line, "metrics ")) + "/metrics"

	// Each connection gives a new and, once expired, a destroy event; the reply's update is
	// not always seen (measured: about 1.8 events a connection here).
	const rate = 5_600
	for b.Loop() {
		d := benchDuration()
		stop := make(chan struct{})
		genDone := make(chan error, 1)
		go func() {
			genDone <- l.in(l.podA, func() error { return udpConnections(podB+":5353", rate, stop) })
		}()
		time.Sleep(2 * time.Second) // steady state: entries are being created and destroyed
		ev0, cpu0, wall0 := scrapeEvents(b, metricsURL), procCPU(b, cmd.Process.Pid), time.Now()
		time.Sleep(d)
		ev1, cpu1, wall := scrapeEvents(b, metricsURL), procCPU(b, cmd.Process.Pid), time.Since(wall0)
		close(stop)
		if err := <-genDone; err != nil {
			b.Fatal(err)
		}
		rss, hwm := procMem(b, cmd.Process.Pid)
		b.ReportMetric((ev1.events-ev0.events)/wall.Seconds(), "events/s")
		b.ReportMetric(100*(cpu1-cpu0).Seconds()/wall.Seconds(), "cpu-%")
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
		b.ReportMetric(float64(hwm)/(1<<20), "peak-rss-MiB")
		b.ReportMetric(ev1.overruns, "overruns")
	}
}

// childEnv makes the test binary run as the agent process of BenchmarkKernelConntrack10kPerSec.
const childEnv = "NPG_AGENT_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runAgentChild())
	}
	os.Exit(m.Run())
}

// runAgentChild runs an agent with the production defaults (10 s interval), reading the
// conntrack table of the namespace NPG_NETNS, until SIGTERM. It prints its metrics address.
func runAgentChild() int {
	ns, err := os.Open(os.Getenv("NPG_NETNS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	a, err := New(Options{
		WebhookURLs: []string{os.Getenv("NPG_URL")}, CAFile: os.Getenv("NPG_CA"), TokenFile: os.Getenv("NPG_TOKEN"),
		Netlink: &netlink.Config{NetNS: int(ns.Fd())}, NodeName: "bench",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { _ = http.Serve(ln, a.MetricsHandler()) }()
	fmt.Printf("metrics %s\n", ln.Addr())
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// udpConnections opens rate short UDP connections a second to addr, each from a new socket
// (so a new source port, so a new conntrack entry), until stop is closed.
func udpConnections(addr string, rate int, stop <-chan struct{}) error {
	dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr))
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		for due := int(time.Since(start).Seconds() * float64(rate)); sent < due; sent++ {
			c, err := net.DialUDP("udp", nil, dst)
			if err != nil {
				return err
			}
			_, _ = c.Write([]byte("x"))
			c.Close()
		}
	}
}

// udpSink answers every datagram on addr in namespace ns, so each connection sees a reply.
func udpSink(b *testing.B, l *lab, ns, addr string) {
	var pc net.PacketConn
	if err := l.in(ns, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

type agentCounters struct{ events, overruns float64 }

// scrapeEvents reads the agent's event and overrun counters from its metrics endpoint.
func scrapeEvents(b *testing.B, url string) agentCounters {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var c agentCounters
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		v, err := strconv.ParseFloat(val, 64)
		if !ok || err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, "netpol_guard_agent_conntrack_events_total{"):
			c.events += v
		case name == "netpol_guard_agent_conntrack_overruns_total":
			c.overruns = v
		}
	}
	return c
}

// procCPU is a process's user and system CPU time, from /proc/PID/stat.
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64) // field 14 of the whole line
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// procMem is a process's resident set and its peak, from /proc/PID/status.
func procMem(b *testing.B, pid int) (rss, hwm int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func readMetric(name string) uint64 {
	s := []rtmetrics.Sample{{Name: name}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// sampleHeap records the peak of live heap objects every 50 ms until the returned func is
// called.
func sampleHeap(peak *atomic.Uint64) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v := readMetric("/memory/classes/heap/objects:bytes"); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()
	return func() { close(stop); <-done }
}
