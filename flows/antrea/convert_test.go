package antrea

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/antrea/antreapb"
	"github.com/netpol-guard/netpol-guard/flows/internal/convert"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// makeFlow is a connection from the pod shop/web-7d9f-x2 to the pod shop/cart-5c-q1 on TCP
// 8080, allowed by an ingress rule, ending at t0, with tweaks.
func makeFlow(tweaks ...func(*pb.Flow)) *pb.Flow {
	f := &pb.Flow{
		Id:      "c0ffee",
		StartTs: timestamppb.New(t0.Add(-time.Minute)),
		EndTs:   timestamppb.New(t0),
		Ip:      &pb.IP{Version: pb.IPVersion_IP_VERSION_4, Source: net.ParseIP("10.0.1.5").To4(), Destination: net.ParseIP("10.0.2.7").To4()},
		Transport: &pb.Transport{ProtocolNumber: convert.ProtoTCP, SourcePort: 43210, DestinationPort: 8080,
			Protocol: &pb.Transport_TCP{TCP: &pb.TCP{StateName: "ESTABLISHED"}}},
		K8S: &pb.Kubernetes{
			FlowType:                       pb.FlowType_FLOW_TYPE_INTER_NODE,
			SourcePodNamespace:             "shop",
			SourcePodName:                  "web-7d9f-x2",
			SourcePodLabels:                &pb.Labels{Labels: map[string]string{"app": "web", "bad key!": "x"}},
			DestinationPodNamespace:        "shop",
			DestinationPodName:             "cart-5c-q1",
			DestinationPodLabels:           &pb.Labels{Labels: map[string]string{"app": "cart"}},
			DestinationServicePortName:     "shop/cart:http",
			IngressNetworkPolicyType:       pb.NetworkPolicyType_NETWORK_POLICY_TYPE_K8S,
			IngressNetworkPolicyNamespace:  "shop",
			IngressNetworkPolicyName:       "allow-web",
			IngressNetworkPolicyRuleAction: pb.NetworkPolicyRuleAction_NETWORK_POLICY_RULE_ACTION_ALLOW,
			EgressNetworkPolicyRuleAction:  pb.NetworkPolicyRuleAction_NETWORK_POLICY_RULE_ACTION_NO_ACTION,
			DestinationServicePort:         80,
			DestinationServiceIp:           net.ParseIP("10.96.0.10").To4(),
			IngressNetworkPolicyRuleName:   "rule-0",
			EgressNetworkPolicyType:        pb.NetworkPolicyType_NETWORK_POLICY_TYPE_UNSPECIFIED,
			SourceNodeName:                 "kind-worker",
			DestinationNodeName:            "kind-worker2",
			IngressNetworkPolicyUid:        "uid-1",
		},
	}
	for _, tw := range tweaks {
		tw(f)
	}
	return f
}

func webToCart() flows.Record {
	return flows.Record{
		Src:  flows.Peer{Namespace: "shop", Pod: "web-7d9f-x2", Labels: map[string]string{"app": "web"}, IP: "10.0.1.5"},
		Dst:  flows.Peer{Namespace: "shop", Pod: "cart-5c-q1", Labels: map[string]string{"app": "cart"}, IP: "10.0.2.7"},
		Port: 8080, Protocol: flows.ProtocolTCP, LastSeen: t0, Count: 1,
	}
}

func TestConvert(t *testing.T) {
	tests := []struct {
		name    string
		flow    *pb.Flow
		want    flows.Record
		skip    SkipReason
		wantErr string
	}{
		{name: "pod to pod connection is a record", flow: makeFlow(), want: webToCart()},
		{
			name: "pod to an external address over UDP, IPv6, still open",
			flow: makeFlow(func(f *pb.Flow) {
				f.Ip = &pb.IP{Version: pb.IPVersion_IP_VERSION_6, Source: net.ParseIP("fd00::5"), Destination: net.ParseIP("2606:4700::1111")}
				f.Transport = &pb.Transport{ProtocolNumber: convert.ProtoUDP, DestinationPort: 53}
				f.K8S.DestinationPodName, f.K8S.DestinationPodNamespace, f.K8S.DestinationPodLabels = "", "", nil
				f.EndTs = nil
			}),
			want: flows.Record{
				Src:  flows.Peer{Namespace: "shop", Pod: "web-7d9f-x2", Labels: map[string]string{"app": "web"}, IP: "fd00::5"},
				Dst:  flows.Peer{IP: "2606:4700::1111"},
				Port: 53, Protocol: flows.ProtocolUDP, LastSeen: t0.Add(-time.Minute), Count: 1,
			},
		},
		{name: "dropped by an ingress rule", flow: makeFlow(func(f *pb.Flow) {
			f.K8S.IngressNetworkPolicyRuleAction = pb.NetworkPolicyRuleAction_NETWORK_POLICY_RULE_ACTION_DROP
		}), skip: SkipDenied},
		{name: "rejected by an egress rule", flow: makeFlow(func(f *pb.Flow) {
			f.K8S.EgressNetworkPolicyRuleAction = pb.NetworkPolicyRuleAction_NETWORK_POLICY_RULE_ACTION_REJECT
		}), skip: SkipDenied},
		{name: "ICMP", flow: makeFlow(func(f *pb.Flow) { f.Transport = &pb.Transport{ProtocolNumber: 1} }), skip: SkipNotL4},
		{name: "no destination port", flow: makeFlow(func(f *pb.Flow) { f.Transport.DestinationPort = 0 }), skip: SkipNotL4},
		{name: "port beyond 65535", flow: makeFlow(func(f *pb.Flow) { f.Transport.DestinationPort = 70000 }), skip: SkipNotL4},
		{name: "no pod and a malformed address", flow: makeFlow(func(f *pb.Flow) {
			f.K8S.SourcePodName = ""
			f.Ip.Source = []byte{10, 0, 1}
		}), skip: SkipNoPeer},
		{name: "empty flow", flow: &pb.Flow{}, skip: SkipNotL4},
		{name: "invalid pod name", flow: makeFlow(func(f *pb.Flow) { f.K8S.DestinationPodName = "Cart_1" }), skip: SkipInvalid, wantErr: "dst.pod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skip, err := Convert(tt.flow)
			if skip != tt.skip {
				t.Errorf("skip = %v, want %v", skip, tt.skip)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Convert:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
