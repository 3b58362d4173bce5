package hubble

import (
	"reflect"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/netpol-guard/netpol-guard/flows"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)

// makeFlow is a forwarded TCP flow from shop/web to shop/cart:8080 as Hubble reports it at
// the destination's endpoint, changed by the tweaks.
func makeFlow(tweaks ...func(*flowpb.Flow)) *flowpb.Flow {
	f := &flowpb.Flow{
		Time:    timestamppb.New(t0),
		Uuid:    "5f0c6c3e-2b1a-4e8e-9d55-2a1f6f3d0a01",
		Verdict: flowpb.Verdict_FORWARDED,
		IP:      &flowpb.IP{Source: "10.0.1.5", Destination: "10.0.2.7", IpVersion: flowpb.IPVersion_IPv4},
		L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{
			SourcePort: 43210, DestinationPort: 8080, Flags: &flowpb.TCPFlags{SYN: true},
		}}},
		Source: &flowpb.Endpoint{
			ID: 101, Identity: 12345, Namespace: "shop", PodName: "web-7d9f-x2",
			Labels: []string{
				"k8s:app=web",
				"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
				"k8s:io.cilium.k8s.policy.cluster=default",
				"k8s:io.cilium.k8s.policy.serviceaccount=web",
				"k8s:io.kubernetes.pod.namespace=shop",
			},
			Workloads: []*flowpb.Workload{{Name: "web", Kind: "Deployment"}},
		},
		Destination: &flowpb.Endpoint{
			ID: 202, Identity: 23456, Namespace: "shop", PodName: "cart-5c-q1",
			Labels: []string{
				"k8s:app=cart",
				"k8s:tier=backend",
				"k8s:io.cilium.k8s.policy.serviceaccount=cart",
				"k8s:io.kubernetes.pod.namespace=shop",
			},
			Workloads: []*flowpb.Workload{{Name: "cart", Kind: "Deployment"}},
		},
		Type:                  flowpb.FlowType_L3_L4,
		NodeName:              "kind-worker",
		IsReply:               wrapperspb.Bool(false),
		TrafficDirection:      flowpb.TrafficDirection_INGRESS,
		TraceObservationPoint: flowpb.TraceObservationPoint_TO_ENDPOINT,
		EventType:             &flowpb.CiliumEventType{Type: 4},
	}
	for _, tweak := range tweaks {
		tweak(f)
	}
	return f
}

// webToCart is the record makeFlow() converts to.
func webToCart() flows.Record {
	return flows.Record{
		Src: flows.Peer{Namespace: "shop", Pod: "web-7d9f-x2", Workload: "Deployment/web",
			Labels: map[string]string{"app": "web"}, IP: "10.0.1.5"},
		Dst: flows.Peer{Namespace: "shop", Pod: "cart-5c-q1", Workload: "Deployment/cart",
			Labels: map[string]string{"app": "cart", "tier": "backend"}, IP: "10.0.2.7"},
		Port: 8080, Protocol: "TCP", LastSeen: t0, Count: 1,
	}
}

func withVerdict(v flowpb.Verdict) func(*flowpb.Flow) {
	return func(f *flowpb.Flow) { f.Verdict = v }
}

func withUDP(port uint32) func(*flowpb.Flow) {
	return func(f *flowpb.Flow) {
		f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: 40000, DestinationPort: port}}}
	}
}

func withICMP(f *flowpb.Flow) {
	f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv4{ICMPv4: &flowpb.ICMPv4{Type: 8}}}
}

func asReply(f *flowpb.Flow) {
	f.IsReply = wrapperspb.Bool(true)
	f.IP.Source, f.IP.Destination = f.IP.Destination, f.IP.Source
	f.Source, f.Destination = f.Destination, f.Source
	f.L4.GetTCP().SourcePort, f.L4.GetTCP().DestinationPort = 8080, 43210
}

// toWorld sends the flow to an address outside the cluster, as Hubble reports the world.
func toWorld(f *flowpb.Flow) {
	f.IP.Destination = "93.184.216.34"
	f.Destination = &flowpb.Endpoint{Identity: 2, Labels: []string{"reserved:world"}}
	f.TrafficDirection = flowpb.TrafficDirection_EGRESS
	f.TraceObservationPoint = flowpb.TraceObservationPoint_TO_STACK
	f.L4.GetTCP().DestinationPort = 443
}

func TestConvert(t *testing.T) {
	tests := []struct {
		name string
		flow *flowpb.Flow
		want func(*flows.Record) // tweaks webToCart(); nil when skipped
		skip SkipReason
		err  string
	}{
		{name: "forwarded pod to pod names both ends by identity and IP", flow: makeFlow(), want: func(*flows.Record) {}},
		{name: "audited flow is taken", flow: makeFlow(withVerdict(flowpb.Verdict_AUDIT)), want: func(*flows.Record) {}},
		{name: "dropped flow is skipped", flow: makeFlow(withVerdict(flowpb.Verdict_DROPPED), func(f *flowpb.Flow) {
			f.DropReasonDesc = flowpb.DropReason_POLICY_DENIED
			f.IsReply = nil
		}), skip: SkipVerdict},
		{name: "error verdict is skipped", flow: makeFlow(withVerdict(flowpb.Verdict_ERROR)), skip: SkipVerdict},
		{name: "redirected to proxy is skipped", flow: makeFlow(withVerdict(flowpb.Verdict_REDIRECTED)), skip: SkipVerdict},
		{name: "traced is skipped", flow: makeFlow(withVerdict(flowpb.Verdict_TRACED)), skip: SkipVerdict},
		{name: "unknown verdict is skipped", flow: makeFlow(withVerdict(flowpb.Verdict_VERDICT_UNKNOWN)), skip: SkipVerdict},
		{name: "L7 event is skipped", flow: makeFlow(func(f *flowpb.Flow) { f.Type = flowpb.FlowType_L7 }), skip: SkipType},
		{name: "socket translation event is skipped", flow: makeFlow(func(f *flowpb.Flow) { f.Type = flowpb.FlowType_SOCK }), skip: SkipType},
		{name: "flow without type is taken", flow: makeFlow(func(f *flowpb.Flow) { f.Type = flowpb.FlowType_UNKNOWN_TYPE }), want: func(*flows.Record) {}},
		{name: "reply is skipped", flow: makeFlow(asReply), skip: SkipReply},
		{name: "unknown reply direction is skipped", flow: makeFlow(func(f *flowpb.Flow) { f.IsReply = nil }), skip: SkipReplyUnknown},
		{name: "deprecated reply flag counts when is_reply is absent", flow: makeFlow(func(f *flowpb.Flow) {
			f.IsReply = nil
			f.Reply = true
		}), skip: SkipReply},
		{name: "ICMP is skipped", flow: makeFlow(withICMP), skip: SkipNotL4},
		{name: "flow without L4 is skipped", flow: makeFlow(func(f *flowpb.Flow) { f.L4 = nil }), skip: SkipNotL4},
		{name: "destination port 0 is skipped", flow: makeFlow(withUDP(0)), skip: SkipNotL4},
		{name: "UDP keeps its protocol", flow: makeFlow(withUDP(53)), want: func(r *flows.Record) {
			r.Port, r.Protocol = 53, "UDP"
		}},
		{name: "SCTP keeps its protocol", flow: makeFlow(func(f *flowpb.Flow) {
			f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_SCTP{SCTP: &flowpb.SCTP{SourcePort: 5000, DestinationPort: 3868}}}
		}), want: func(r *flows.Record) { r.Port, r.Protocol = 3868, "SCTP" }},
		{name: "world destination is named by IP only", flow: makeFlow(toWorld), want: func(r *flows.Record) {
			r.Dst, r.Port = flows.Peer{IP: "93.184.216.34"}, 443
		}},
		{name: "CIDR identity is named by IP only", flow: makeFlow(toWorld, func(f *flowpb.Flow) {
			f.Destination = &flowpb.Endpoint{Identity: 16777217, Labels: []string{"cidr:93.184.216.0/24", "reserved:world"}}
		}), want: func(r *flows.Record) { r.Dst, r.Port = flows.Peer{IP: "93.184.216.34"}, 443 }},
		{name: "host source is named by IP only", flow: makeFlow(func(f *flowpb.Flow) {
			f.IP.Source = "172.18.0.3"
			f.Source = &flowpb.Endpoint{Identity: 1, Labels: []string{"reserved:host"}}
		}), want: func(r *flows.Record) { r.Src = flows.Peer{IP: "172.18.0.3"} }},
		{name: "remote node source is named by IP only", flow: makeFlow(func(f *flowpb.Flow) {
			f.IP.Source = "172.18.0.4"
			f.Source = &flowpb.Endpoint{Identity: 6, Labels: []string{"reserved:remote-node"}}
		}), want: func(r *flows.Record) { r.Src = flows.Peer{IP: "172.18.0.4"} }},
		{name: "pod still in init is named by IP only", flow: makeFlow(func(f *flowpb.Flow) {
			f.Source.Labels = []string{"reserved:init"}
		}), want: func(r *flows.Record) { r.Src = flows.Peer{IP: "10.0.1.5"} }},
		{name: "end without identity or IP is skipped", flow: makeFlow(toWorld, func(f *flowpb.Flow) {
			f.IP.Destination = ""
		}), skip: SkipNoPeer},
		{name: "flow without IP layer keeps identities", flow: makeFlow(func(f *flowpb.Flow) { f.IP = nil }), want: func(r *flows.Record) {
			r.Src.IP, r.Dst.IP = "", ""
		}},
		{name: "namespace alone does not name a peer", flow: makeFlow(func(f *flowpb.Flow) {
			f.IP.Source = ""
			f.Source = &flowpb.Endpoint{Namespace: "shop", Labels: []string{"k8s:io.kubernetes.pod.namespace=shop"}}
		}), skip: SkipNoPeer},
		{name: "labels of other sources and invalid labels are dropped", flow: makeFlow(func(f *flowpb.Flow) {
			f.Destination.Labels = []string{"k8s:app=cart", "container:io.kubernetes.container.name=cart",
				"any:team=a", "k8s:bad key=x", "k8s:long=" + strings.Repeat("v", 64), "k8s:flag", "unlabeled"}
		}), want: func(r *flows.Record) { r.Dst.Labels = map[string]string{"app": "cart", "flag": ""} }},
		{name: "bare pod has no workload", flow: makeFlow(func(f *flowpb.Flow) { f.Destination.Workloads = nil }), want: func(r *flows.Record) {
			r.Dst.Workload = ""
		}},
		{name: "first workload with a kind is taken", flow: makeFlow(func(f *flowpb.Flow) {
			f.Destination.Workloads = []*flowpb.Workload{{Name: "cart"}, {Name: "nightly", Kind: "CronJob"}, {Name: "x", Kind: "Job"}}
		}), want: func(r *flows.Record) { r.Dst.Workload = "CronJob/nightly" }},
		{name: "flow without time has no lastSeen", flow: makeFlow(func(f *flowpb.Flow) { f.Time = nil }), want: func(r *flows.Record) {
			r.LastSeen = time.Time{}
		}},
		{name: "IPv6 addresses are stored canonical", flow: makeFlow(func(f *flowpb.Flow) {
			f.IP = &flowpb.IP{Source: "fd00:10:244::0005", Destination: "FD00:10:244:1::7", IpVersion: flowpb.IPVersion_IPv6}
		}), want: func(r *flows.Record) { r.Src.IP, r.Dst.IP = "fd00:10:244::5", "fd00:10:244:1::7" }},
		{name: "invalid namespace makes the flow invalid", flow: makeFlow(func(f *flowpb.Flow) { f.Destination.Namespace = "Shop_1" }),
			skip: SkipInvalid, err: `dst.namespace: invalid namespace "Shop_1"`},
		{name: "invalid IP makes the flow invalid", flow: makeFlow(func(f *flowpb.Flow) { f.IP.Source = "10.0.0.300" }),
			skip: SkipInvalid, err: `src.ip: invalid IP address "10.0.0.300"`},
		{name: "nil flow is skipped", flow: nil, skip: SkipVerdict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := proto.Clone(tt.flow)
			rec, skip, err := Convert(tt.flow)
			if skip != tt.skip {
				t.Fatalf("skip = %v, want %v (err %v)", skip, tt.skip, err)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error = %v, want it to contain %q", err, tt.err)
			}
			if tt.flow != nil && !proto.Equal(before, tt.flow) {
				t.Error("Convert modified the flow")
			}
			if tt.want == nil {
				if !reflect.DeepEqual(rec, flows.Record{}) {
					t.Errorf("skipped flow converted to %+v", rec)
				}
				return
			}
			want := webToCart()
			tt.want(&want)
			if !reflect.DeepEqual(rec, want) {
				t.Errorf("record:\n got %+v\nwant %+v", rec, want)
			}
			again := rec
			if err := again.Normalize(); err != nil || !reflect.DeepEqual(again, rec) {
				t.Errorf("record is not normalised: %v", err)
			}
		})
	}
}

func TestSkipReasonString(t *testing.T) {
	for r := NotSkipped; r < numSkipReasons; r++ {
		if s := r.String(); s == "" || strings.Contains(s, "(") {
			t.Errorf("SkipReason(%d) has no name", r)
		}
	}
	if got := SkipReason(200).String(); got != "SkipReason(200)" {
		t.Errorf("unknown reason = %q", got)
	}
}
