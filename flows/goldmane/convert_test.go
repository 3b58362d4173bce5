package goldmane

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netpol-guard/netpol-guard/flows"
	pb "github.com/netpol-guard/netpol-guard/flows/goldmane/goldmanepb"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// makeFlow is a flow from web pods (aggregated by generateName) to the pod cart-0 on TCP
// 8080, reported and allowed by the destination, during the 15 s from t0, with tweaks.
func makeFlow(tweaks ...func(*pb.Flow)) *pb.Flow {
	f := &pb.Flow{
		Key: &pb.FlowKey{
			SourceName: "web-7d9f4c-*", SourceNamespace: "shop", SourceType: pb.EndpointType_WorkloadEndpoint,
			DestName: "cart-0", DestNamespace: "shop", DestType: pb.EndpointType_WorkloadEndpoint,
			DestPort: 8080, Proto: "tcp", Reporter: pb.Reporter_Dst, Action: pb.Action_Allow,
			DestServiceName: "cart", DestServiceNamespace: "shop", DestServicePort: 80,
			Policies: &pb.PolicyTrace{EnforcedPolicies: []*pb.PolicyHit{{
				Kind: pb.PolicyKind_NetworkPolicy, Namespace: "shop", Name: "allow-web", Tier: "default",
				Action: pb.Action_Allow, PolicyIndex: 0, RuleIndex: 0,
			}}},
		},
		StartTime:             t0.Unix(),
		EndTime:               t0.Add(15 * time.Second).Unix(),
		SourceLabels:          []string{"app=web", "projectcalico.org/namespace=shop", "projectcalico.org/orchestrator=k8s"},
		DestLabels:            []string{"app=cart", "tier=backend"},
		NumConnectionsStarted: 3,
	}
	for _, tw := range tweaks {
		tw(f)
	}
	return f
}

func webToCart() flows.Record {
	return flows.Record{
		Src:  flows.Peer{Namespace: "shop", Labels: map[string]string{"app": "web"}},
		Dst:  flows.Peer{Namespace: "shop", Pod: "cart-0", Labels: map[string]string{"app": "cart", "tier": "backend"}},
		Port: 8080, Protocol: flows.ProtocolTCP, LastSeen: t0.Add(15 * time.Second), Count: 3,
	}
}

var allowWeb = PolicyHit{Kind: "NetworkPolicy", Namespace: "shop", Name: "allow-web", Tier: "default", Action: ActionAllow}

func TestConvert(t *testing.T) {
	denyAll := &pb.PolicyHit{Kind: pb.PolicyKind_StagedKubernetesNetworkPolicy, Namespace: "shop", Name: "default-deny", Tier: "default", Action: pb.Action_Deny, RuleIndex: -1}
	tests := []struct {
		name    string
		flow    *pb.Flow
		want    Result
		skip    SkipReason
		wantErr string
	}{
		{
			name: "allowed flow reported by the destination is a record with a final verdict",
			flow: makeFlow(),
			want: Result{Record: webToCart(), Verdict: Verdict{Reporter: ReporterDestination, Allowed: true, Final: true, Enforced: []PolicyHit{allowWeb}}},
		},
		{
			name: "staged policies' verdict is the last allow or deny of the pending trace",
			flow: makeFlow(func(f *pb.Flow) {
				f.Key.Policies.PendingPolicies = []*pb.PolicyHit{
					{Kind: pb.PolicyKind_GlobalNetworkPolicy, Name: "platform", Tier: "security", Action: pb.Action_Pass, RuleIndex: 2},
					denyAll,
				}
			}),
			want: Result{Record: webToCart(), Verdict: Verdict{
				Reporter: ReporterDestination, Allowed: true, Final: true, Enforced: []PolicyHit{allowWeb},
				Pending: []PolicyHit{
					{Kind: "GlobalNetworkPolicy", Name: "platform", Tier: "security", Action: ActionPass, RuleIndex: 2},
					{Kind: "StagedKubernetesNetworkPolicy", Namespace: "shop", Name: "default-deny", Tier: "default", Action: ActionDeny, RuleIndex: -1},
				},
				PendingAction: ActionDeny,
			}},
		},
		{
			name: "denied flow keeps its record and verdict but is not traffic",
			flow: makeFlow(func(f *pb.Flow) {
				f.Key.Action = pb.Action_Deny
				f.Key.Reporter = pb.Reporter_Src
				f.Key.Policies = nil
			}),
			want: Result{Record: webToCart(), Verdict: Verdict{Reporter: ReporterSource, Final: true}},
			skip: SkipDenied,
		},
		{
			name: "allowed flow reported by the source waits for the destination's report",
			flow: makeFlow(func(f *pb.Flow) { f.Key.Reporter = pb.Reporter_Src }),
			want: Result{Record: webToCart(), Verdict: Verdict{Reporter: ReporterSource, Allowed: true, Enforced: []PolicyHit{allowWeb}}},
			skip: SkipSourceReport,
		},
		{
			name: "a pod's own name, UDP, no connections started and no end time",
			flow: makeFlow(func(f *pb.Flow) {
				f.Key.SourceName = "web-0"
				f.SourceLabels = nil
				f.Key.Proto = "UDP"
				f.Key.DestPort = 53
				f.NumConnectionsStarted = 0
				f.EndTime = 0
			}),
			want: Result{
				Record: flows.Record{
					Src:  flows.Peer{Namespace: "shop", Pod: "web-0"},
					Dst:  flows.Peer{Namespace: "shop", Pod: "cart-0", Labels: map[string]string{"app": "cart", "tier": "backend"}},
					Port: 53, Protocol: flows.ProtocolUDP, LastSeen: t0, Count: 1,
				},
				Verdict: Verdict{Reporter: ReporterDestination, Allowed: true, Final: true, Enforced: []PolicyHit{allowWeb}},
			},
		},
		{name: "unspecified action", flow: makeFlow(func(f *pb.Flow) { f.Key.Action = pb.Action_ActionUnspecified }), skip: SkipAction},
		{name: "pass is no final action", flow: makeFlow(func(f *pb.Flow) { f.Key.Action = pb.Action_Pass }), skip: SkipAction},
		{name: "ICMP", flow: makeFlow(func(f *pb.Flow) { f.Key.Proto = "icmp"; f.Key.DestPort = 0 }), skip: SkipNotL4},
		{name: "port beyond 65535", flow: makeFlow(func(f *pb.Flow) { f.Key.DestPort = 70000 }), skip: SkipNotL4},
		{name: "public network destination has no address", flow: makeFlow(func(f *pb.Flow) {
			f.Key.DestType, f.Key.DestName, f.Key.DestNamespace, f.DestLabels = pb.EndpointType_Network, "pub", "-", nil
		}), skip: SkipNotWorkload},
		{name: "network set source", flow: makeFlow(func(f *pb.Flow) { f.Key.SourceType = pb.EndpointType_NetworkSet }), skip: SkipNotWorkload},
		{name: "host endpoint destination", flow: makeFlow(func(f *pb.Flow) { f.Key.DestType = pb.EndpointType_HostEndpoint }), skip: SkipNotWorkload},
		{name: "workload without namespace", flow: makeFlow(func(f *pb.Flow) { f.Key.SourceNamespace = "" }), skip: SkipNoPeer},
		{name: "aggregated pods with only Calico's labels", flow: makeFlow(func(f *pb.Flow) {
			f.SourceLabels = []string{"projectcalico.org/namespace=shop", "not a label"}
		}), skip: SkipNoPeer},
		{name: "invalid namespace", flow: makeFlow(func(f *pb.Flow) { f.Key.DestNamespace = "Shop!" }), skip: SkipInvalid, wantErr: "dst.namespace"},
		{name: "no key at all", flow: &pb.Flow{}, skip: SkipAction},
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

func TestPolicyHitAndSkipReasonRead(t *testing.T) {
	if got, want := allowWeb.String(), "NetworkPolicy shop/allow-web rule 0: Allow"; got != want {
		t.Errorf("PolicyHit.String() = %q, want %q", got, want)
	}
	if got := SkipNotWorkload.String(); got != "notWorkload" {
		t.Errorf("SkipNotWorkload = %q", got)
	}
	if got := SkipReason(200).String(); got != "SkipReason(200)" {
		t.Errorf("unknown reason = %q", got)
	}
}
