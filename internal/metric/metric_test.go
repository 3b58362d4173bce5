package metric

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsAreNamedBySubsystemAndRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := Factory{Subsystem: "agent", Registerer: reg}
	f.Counter("pushed_total", "Pushed.").Inc()
	f.CounterVec("errors_total", "Errors, by code.", "code").WithLabelValues("500").Inc()
	f.Gauge("buffered", "Buffered.").Set(3)

	want := `
# HELP netpol_guard_agent_buffered Buffered.
# TYPE netpol_guard_agent_buffered gauge
netpol_guard_agent_buffered 3
# HELP netpol_guard_agent_errors_total Errors, by code.
# TYPE netpol_guard_agent_errors_total counter
netpol_guard_agent_errors_total{code="500"} 1
# HELP netpol_guard_agent_pushed_total Pushed.
# TYPE netpol_guard_agent_pushed_total counter
netpol_guard_agent_pushed_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestNilRegistererCountsUnexposed(t *testing.T) {
	c := Factory{Subsystem: "flows"}.Counter("accepted_total", "Accepted.")
	c.Inc()
	if got := testutil.ToFloat64(c); got != 1 {
		t.Errorf("counter = %v, want 1", got)
	}
}
