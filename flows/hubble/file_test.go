package hubble

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netpol-guard/netpol-guard/flows"
)

// Lines as `hubble observe -o json` prints them (Hubble ≥ 0.8: the GetFlowsResponse
// wrapper; field names are the proto names).
const (
	lineForwarded = `{"flow":{"time":"2026-11-20T10:00:00.123456789Z","uuid":"5f0c6c3e-2b1a-4e8e-9d55-2a1f6f3d0a01","verdict":"FORWARDED","ethernet":{"source":"9a:3b:11:5c:20:01","destination":"6e:12:9f:aa:31:07"},"IP":{"source":"10.0.1.5","destination":"10.0.2.7","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":43210,"destination_port":8080,"flags":{"SYN":true}}},"source":{"ID":101,"identity":12345,"cluster_name":"default","namespace":"shop","labels":["k8s:app=web","k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop","k8s:io.cilium.k8s.policy.cluster=default","k8s:io.cilium.k8s.policy.serviceaccount=web","k8s:io.kubernetes.pod.namespace=shop"],"pod_name":"web-7d9f-x2","workloads":[{"name":"web","kind":"Deployment"}]},"destination":{"ID":202,"identity":23456,"cluster_name":"default","namespace":"shop","labels":["k8s:app=cart","k8s:tier=backend","k8s:io.cilium.k8s.policy.serviceaccount=cart","k8s:io.kubernetes.pod.namespace=shop"],"pod_name":"cart-5c-q1","workloads":[{"name":"cart","kind":"Deployment"}]},"Type":"L3_L4","node_name":"kind-worker","node_labels":["kubernetes.io/hostname=kind-worker"],"event_type":{"type":4},"traffic_direction":"INGRESS","trace_observation_point":"TO_ENDPOINT","trace_reason":"NEW","is_reply":false,"interface":{"index":12,"name":"lxc9a3b115c"},"Summary":"TCP Flags: SYN"},"node_name":"kind-worker","time":"2026-11-20T10:00:00.123456789Z"}`
	lineReply     = `{"flow":{"time":"2026-11-20T10:00:00.124Z","verdict":"FORWARDED","IP":{"source":"10.0.2.7","destination":"10.0.1.5","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":8080,"destination_port":43210,"flags":{"SYN":true,"ACK":true}}},"source":{"ID":202,"identity":23456,"namespace":"shop","labels":["k8s:app=cart"],"pod_name":"cart-5c-q1","workloads":[{"name":"cart","kind":"Deployment"}]},"destination":{"ID":101,"identity":12345,"namespace":"shop","labels":["k8s:app=web"],"pod_name":"web-7d9f-x2","workloads":[{"name":"web","kind":"Deployment"}]},"Type":"L3_L4","node_name":"kind-worker","event_type":{"type":4},"traffic_direction":"INGRESS","trace_observation_point":"TO_ENDPOINT","trace_reason":"REPLY","is_reply":true,"Summary":"TCP Flags: SYN, ACK"},"node_name":"kind-worker","time":"2026-11-20T10:00:00.124Z"}`
	lineDropped   = `{"flow":{"time":"2026-11-20T10:00:01Z","verdict":"DROPPED","drop_reason":133,"IP":{"source":"10.0.1.5","destination":"10.0.3.9","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":51000,"destination_port":5432,"flags":{"SYN":true}}},"source":{"ID":101,"identity":12345,"namespace":"shop","labels":["k8s:app=web"],"pod_name":"web-7d9f-x2"},"destination":{"ID":303,"identity":34567,"namespace":"db","labels":["k8s:app=postgres"],"pod_name":"postgres-0","workloads":[{"name":"postgres","kind":"StatefulSet"}]},"Type":"L3_L4","node_name":"kind-worker2","event_type":{"type":1,"sub_type":133},"traffic_direction":"INGRESS","drop_reason_desc":"POLICY_DENIED","Summary":"TCP Flags: SYN"},"node_name":"kind-worker2","time":"2026-11-20T10:00:01Z"}`
	lineICMP      = `{"flow":{"time":"2026-11-20T10:00:02Z","verdict":"FORWARDED","IP":{"source":"10.0.1.5","destination":"10.0.2.7","ipVersion":"IPv4"},"l4":{"ICMPv4":{"type":8}},"source":{"namespace":"shop","pod_name":"web-7d9f-x2"},"destination":{"namespace":"shop","pod_name":"cart-5c-q1"},"Type":"L3_L4","is_reply":false,"Summary":"ICMPv4 EchoRequest"},"node_name":"kind-worker","time":"2026-11-20T10:00:02Z"}`
	lineWorldUDP  = `{"flow":{"time":"2026-11-20T10:00:03Z","verdict":"FORWARDED","IP":{"source":"10.0.1.5","destination":"1.1.1.1","ipVersion":"IPv4"},"l4":{"UDP":{"source_port":40000,"destination_port":53}},"source":{"ID":101,"identity":12345,"namespace":"shop","labels":["k8s:app=web"],"pod_name":"web-7d9f-x2","workloads":[{"name":"web","kind":"Deployment"}]},"destination":{"identity":2,"labels":["reserved:world"]},"Type":"L3_L4","node_name":"kind-worker","traffic_direction":"EGRESS","trace_observation_point":"TO_STACK","is_reply":false},"node_name":"kind-worker","time":"2026-11-20T10:00:03Z"}`
	lineAuditSCTP = `{"flow":{"time":"2026-11-20T10:00:04Z","verdict":"AUDIT","IP":{"source":"172.18.0.3","destination":"10.0.4.2","ipVersion":"IPv4"},"l4":{"SCTP":{"source_port":36412,"destination_port":38412,"chunk_type":"INIT"}},"source":{"identity":6,"labels":["reserved:remote-node"]},"destination":{"ID":404,"identity":45678,"namespace":"core","labels":["k8s:app=amf"],"pod_name":"amf-6b7c-zz","workloads":[{"name":"amf","kind":"Deployment"}]},"Type":"L3_L4","node_name":"kind-worker3","event_type":{"type":5},"traffic_direction":"INGRESS","policy_match_type":0,"is_reply":false},"node_name":"kind-worker3","time":"2026-11-20T10:00:04Z"}`
	// Older hubble printed the flow object alone.
	lineBare = `{"time":"2026-11-20T10:00:05Z","verdict":"FORWARDED","IP":{"source":"10.0.1.5","destination":"10.0.2.7","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":43211,"destination_port":8080}},"source":{"namespace":"shop","labels":["k8s:app=web"],"pod_name":"web-7d9f-x2"},"destination":{"namespace":"shop","labels":["k8s:app=cart"],"pod_name":"cart-5c-q1"},"Type":"L3_L4","node_name":"kind-worker","is_reply":false}`
	// protojson's JSON names (lowerCamelCase) read as well.
	lineCamel      = `{"flow":{"time":"2026-11-20T10:00:06Z","verdict":"FORWARDED","IP":{"source":"10.0.1.5","destination":"10.0.2.7"},"l4":{"TCP":{"sourcePort":43212,"destinationPort":8080}},"source":{"namespace":"shop","podName":"web-7d9f-x2"},"destination":{"namespace":"shop","podName":"cart-5c-q1"},"Type":"L3_L4","isReply":false},"nodeName":"kind-worker","time":"2026-11-20T10:00:06Z"}`
	lineNodeStatus = `{"node_status":{"state_change":"NODE_CONNECTED","node_names":["kind-worker","kind-worker2"]},"time":"2026-11-20T10:00:00Z"}`
	lineLost       = `{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":42,"cpu":{"value":1}},"node_name":"kind-worker","time":"2026-11-20T10:00:00Z"}`
	lineAgentEvent = `{"agent_event":{"type":"ENDPOINT_REGENERATE_SUCCESS","endpoint_regenerate":{"id":101,"labels":["k8s:app=web"]}},"node_name":"kind-worker","time":"2026-11-20T10:00:00Z"}`
)

func TestReadJSON(t *testing.T) {
	web := flows.Peer{Namespace: "shop", Pod: "web-7d9f-x2", Workload: "Deployment/web", Labels: map[string]string{"app": "web"}, IP: "10.0.1.5"}
	cart := flows.Peer{Namespace: "shop", Pod: "cart-5c-q1", Workload: "Deployment/cart", Labels: map[string]string{"app": "cart", "tier": "backend"}, IP: "10.0.2.7"}
	at := func(s string) time.Time {
		t.Helper()
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	type line struct {
		n   int
		rec flows.Record
	}
	tests := []struct {
		name    string
		input   string
		want    []line
		stats   FileStats
		wantErr string
	}{
		{
			name:  "observe output with every kind of event keeps forwarded and audited requests",
			input: strings.Join([]string{lineNodeStatus, lineForwarded, lineReply, lineDropped, lineICMP, lineWorldUDP, lineAuditSCTP, lineLost, lineAgentEvent}, "\n") + "\n",
			want: []line{
				{2, flows.Record{Src: web, Dst: cart, Port: 8080, Protocol: "TCP", LastSeen: at("2026-11-20T10:00:00.123456789Z"), Count: 1}},
				{6, flows.Record{Src: web, Dst: flows.Peer{IP: "1.1.1.1"}, Port: 53, Protocol: "UDP", LastSeen: at("2026-11-20T10:00:03Z"), Count: 1}},
				{7, flows.Record{Src: flows.Peer{IP: "172.18.0.3"}, Dst: flows.Peer{Namespace: "core", Pod: "amf-6b7c-zz", Workload: "Deployment/amf", Labels: map[string]string{"app": "amf"}, IP: "10.0.4.2"},
					Port: 38412, Protocol: "SCTP", LastSeen: at("2026-11-20T10:00:04Z"), Count: 1}},
			},
			stats: FileStats{Lines: 9, Flows: 6, Records: 3, NonFlow: 3, Skipped: map[SkipReason]int{SkipReply: 1, SkipVerdict: 1, SkipNotL4: 1}},
		},
		{
			name:  "bare flow objects of older hubble read",
			input: lineBare,
			want: []line{{1, flows.Record{
				Src:  flows.Peer{Namespace: "shop", Pod: "web-7d9f-x2", Labels: map[string]string{"app": "web"}, IP: "10.0.1.5"},
				Dst:  flows.Peer{Namespace: "shop", Pod: "cart-5c-q1", Labels: map[string]string{"app": "cart"}, IP: "10.0.2.7"},
				Port: 8080, Protocol: "TCP", LastSeen: at("2026-11-20T10:00:05Z"), Count: 1}}},
			stats: FileStats{Lines: 1, Flows: 1, Records: 1, Skipped: map[SkipReason]int{}},
		},
		{
			name:  "JSON field names read",
			input: lineCamel,
			want: []line{{1, flows.Record{
				Src:  flows.Peer{Namespace: "shop", Pod: "web-7d9f-x2", IP: "10.0.1.5"},
				Dst:  flows.Peer{Namespace: "shop", Pod: "cart-5c-q1", IP: "10.0.2.7"},
				Port: 8080, Protocol: "TCP", LastSeen: at("2026-11-20T10:00:06Z"), Count: 1}}},
			stats: FileStats{Lines: 1, Flows: 1, Records: 1, Skipped: map[SkipReason]int{}},
		},
		{
			name:  "flow without a time takes its wrapper's",
			input: `{"flow":{"verdict":"FORWARDED","IP":{"source":"10.0.1.5","destination":"10.0.2.7"},"l4":{"TCP":{"destination_port":8080}},"Type":"L3_L4","is_reply":false},"time":"2026-11-20T11:00:00Z"}`,
			want: []line{{1, flows.Record{Src: flows.Peer{IP: "10.0.1.5"}, Dst: flows.Peer{IP: "10.0.2.7"}, Port: 8080, Protocol: "TCP",
				LastSeen: at("2026-11-20T11:00:00Z"), Count: 1}}},
			stats: FileStats{Lines: 1, Flows: 1, Records: 1, Skipped: map[SkipReason]int{}},
		},
		{
			name: "unknown fields and values of newer Hubble versions are ignored",
			input: `{"flow":{"time":"2026-11-20T10:00:00Z","verdict":"FORWARDED","IP":{"source":"10.0.1.5","destination":"10.0.2.7"},"l4":{"TCP":{"destination_port":8080}},` +
				`"Type":"L3_L4","is_reply":false,"future_field":{"a":[1,2]},"trace_observation_point":"TO_SOMEWHERE_NEW"},"future_event_field":1,"time":"2026-11-20T10:00:00Z"}`,
			want: []line{{1, flows.Record{Src: flows.Peer{IP: "10.0.1.5"}, Dst: flows.Peer{IP: "10.0.2.7"}, Port: 8080, Protocol: "TCP",
				LastSeen: at("2026-11-20T10:00:00Z"), Count: 1}}},
			stats: FileStats{Lines: 1, Flows: 1, Records: 1, Skipped: map[SkipReason]int{}},
		},
		{
			name:  "blank lines, comments, a byte order mark and CRLF are fine",
			input: "\uFEFF# exported from kind\r\n\r\n" + lineNodeStatus + "\r\n   \n",
			stats: FileStats{Lines: 4, NonFlow: 1, Skipped: map[SkipReason]int{}},
		},
		{
			name:  "objects that are no Hubble event are counted, not taken",
			input: `{"hello":"world"}` + "\n" + `{"flow":null,"time":"2026-11-20T10:00:00Z"}`,
			stats: FileStats{Lines: 2, NonFlow: 2, Skipped: map[SkipReason]int{}},
		},
		{
			name:    "malformed line names the line",
			input:   lineNodeStatus + "\n" + lineForwarded + "\n" + `{"flow":{"verdict":"FORWARDED",}` + "\n" + lineForwarded,
			want:    []line{{2, flows.Record{Src: web, Dst: cart, Port: 8080, Protocol: "TCP", LastSeen: at("2026-11-20T10:00:00.123456789Z"), Count: 1}}},
			stats:   FileStats{Lines: 3, Flows: 1, Records: 1, NonFlow: 1, Skipped: map[SkipReason]int{}},
			wantErr: "hubble.json:3: invalid JSON at byte 32",
		},
		{
			name:    "line that is not an object names the line",
			input:   `[{"flow":{}}]`,
			stats:   FileStats{Lines: 1, Skipped: map[SkipReason]int{}},
			wantErr: "hubble.json:1: must be a JSON object, not array",
		},
		{
			name:    "null line is an error",
			input:   "null",
			stats:   FileStats{Lines: 1, Skipped: map[SkipReason]int{}},
			wantErr: "hubble.json:1: must be a JSON object, not null",
		},
		{
			name:    "field of the wrong type names the line",
			input:   `{"flow":{"verdict":"FORWARDED","l4":{"TCP":{"destination_port":"http"}}}}`,
			stats:   FileStats{Lines: 1, Skipped: map[SkipReason]int{}},
			wantErr: "hubble.json:1: decoding Hubble event: proto:",
		},
		{
			name:    "bare flow of the wrong shape names the line",
			input:   `{"verdict":"FORWARDED","IP":"10.0.0.1"}`,
			stats:   FileStats{Lines: 1, Skipped: map[SkipReason]int{}},
			wantErr: "hubble.json:1: decoding Hubble flow: proto:",
		},
		{
			name:    "two events in one wrapper is an error",
			input:   `{"flow":{"verdict":"FORWARDED"},"lost_events":{"num_events_lost":1}}`,
			stats:   FileStats{Lines: 1, Skipped: map[SkipReason]int{}},
			wantErr: "hubble.json:1: decoding Hubble event:",
		},
		{
			name:    "flow that converts to an invalid record names the line and field",
			input:   strings.Replace(lineForwarded, `"namespace":"shop","labels":["k8s:app=cart"`, `"namespace":"Shop!","labels":["k8s:app=cart"`, 1),
			stats:   FileStats{Lines: 1, Flows: 1, Skipped: map[SkipReason]int{}},
			wantErr: `hubble.json:1: converting Hubble flow: dst.namespace: invalid namespace "Shop!"`,
		},
		{
			name:    "line longer than the limit is an error",
			input:   lineForwarded + "\n" + `{"x":"` + strings.Repeat("a", flows.MaxLineBytes) + `"}` + "\n",
			want:    []line{{1, flows.Record{Src: web, Dst: cart, Port: 8080, Protocol: "TCP", LastSeen: at("2026-11-20T10:00:00.123456789Z"), Count: 1}}},
			stats:   FileStats{Lines: 1, Flows: 1, Records: 1, Skipped: map[SkipReason]int{}},
			wantErr: "hubble.json:2: line too long",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []line
			stats, err := ReadJSONStats(strings.NewReader(tt.input), "hubble.json", func(n int, rec flows.Record) error {
				got = append(got, line{n, rec})
				return nil
			})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want it to start with %q", err, tt.wantErr)
			}
			if err != nil {
				if _, ok := errors.AsType[*flows.LineError](err); !ok {
					t.Errorf("error is a %T, not a *flows.LineError", err)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("records:\n got %+v\nwant %+v", got, tt.want)
			}
			if !reflect.DeepEqual(stats, tt.stats) {
				t.Errorf("stats = %+v, want %+v", stats, tt.stats)
			}
		})
	}
}

func TestReadJSONStopsAtCallbackError(t *testing.T) {
	input := lineForwarded + "\n" + lineWorldUDP + "\n" + lineForwarded + "\n"
	stop := errors.New("cache full")
	calls := 0
	err := ReadJSON(strings.NewReader(input), "flows.json", func(n int, rec flows.Record) error {
		calls++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || err.Error() != "flows.json:2: cache full" {
		t.Fatalf("error = %v, want flows.json:2: cache full", err)
	}
	if calls != 2 {
		t.Errorf("fn called %d times, want 2", calls)
	}
}
