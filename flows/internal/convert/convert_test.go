package convert

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/netpol-guard/netpol-guard/flows"
)

func TestTransportsAreTCPUDPAndSCTPByNameOrNumber(t *testing.T) {
	names := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"tcp", flows.ProtocolTCP, true},
		{"UDP", flows.ProtocolUDP, true},
		{"Sctp", flows.ProtocolSCTP, true},
		{"icmp", "", false},
		{"", "", false},
	}
	for _, tt := range names {
		if got, ok := ProtocolName(tt.in); got != tt.want || ok != tt.wantOK {
			t.Errorf("ProtocolName(%q) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
	numbers := []struct {
		in     uint32
		want   string
		wantOK bool
	}{
		{ProtoTCP, flows.ProtocolTCP, true},
		{ProtoUDP, flows.ProtocolUDP, true},
		{ProtoSCTP, flows.ProtocolSCTP, true},
		{1, "", false}, // ICMP
		{0, "", false},
	}
	for _, tt := range numbers {
		if got, ok := ProtocolNumber(tt.in); got != tt.want || ok != tt.wantOK {
			t.Errorf("ProtocolNumber(%d) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestPortIsOneTo65535(t *testing.T) {
	for _, p := range []int64{-1, 0, 65536, 1 << 40} {
		if _, ok := Port(p); ok {
			t.Errorf("Port(%d) accepted", p)
		}
	}
	for _, p := range []uint32{1, 8080, 65535} {
		if got, ok := Port(p); !ok || got != int32(p) {
			t.Errorf("Port(%d) = %d, %v", p, got, ok)
		}
	}
}

func TestLabelRejectsWhatKubernetesRejects(t *testing.T) {
	if !Label("app.kubernetes.io/name", "cart") || !Label("app", "") {
		t.Error("valid labels rejected")
	}
	if Label("not a key", "v") || Label("app", "not a value") {
		t.Error("invalid labels accepted")
	}
}

func TestTimeIsZeroWhenAbsentOrOutOfRange(t *testing.T) {
	at := time.Date(2026, 7, 1, 12, 0, 0, 5, time.UTC)
	if got := Time(timestamppb.New(at)); !got.Equal(at) || got.Location() != time.UTC {
		t.Errorf("Time = %v, want %v", got, at)
	}
	if got := Time(nil); !got.IsZero() {
		t.Errorf("Time(nil) = %v", got)
	}
	if got := Time(&timestamppb.Timestamp{Seconds: 253402300800}); !got.IsZero() {
		t.Errorf("Time(year 10000) = %v", got)
	}
}

type reason uint8

func TestSkipReasonsReadAndCount(t *testing.T) {
	names := []string{"notSkipped", "notL4"}
	if got := ReasonName(names, reason(1)); got != "notL4" {
		t.Errorf("ReasonName(1) = %q", got)
	}
	if got := ReasonName(names, reason(7)); got != "SkipReason(7)" {
		t.Errorf("ReasonName(7) = %q", got)
	}
	if got, want := Counts[reason]([]uint64{0, 3, 0, 1}), map[reason]uint64{1: 3, 3: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
}
