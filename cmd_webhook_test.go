package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/netpol-guard/netpol-guard/cli"
	"github.com/netpol-guard/netpol-guard/server"
)

// Flow source flags that cannot work together are refused before the webhook starts.
func TestWebhookRejectsInconsistentFlowSourceFlags(t *testing.T) {
	stableEnv(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"goldmane cert without key", []string{"--goldmane-address=goldmane:7443", "--goldmane-tls-cert=c.crt"}, "--goldmane-tls-cert and --goldmane-tls-key go together"},
		{"goldmane without a client certificate", []string{"--goldmane-address=goldmane:7443", "--goldmane-tls-ca=ca.crt"}, "--goldmane-address needs --goldmane-tls-cert"},
		{"goldmane TLS without an address", []string{"--goldmane-tls-cert=c.crt", "--goldmane-tls-key=c.key"}, "--goldmane-tls-* given without --goldmane-address"},
		{"goldmane backfill not positive", []string{"--goldmane-backfill=0s"}, "--goldmane-backfill must be positive"},
		{"antrea key without cert", []string{"--antrea-flow-aggregator-address=fa:14740", "--antrea-flow-aggregator-tls-key=c.key"}, "--antrea-flow-aggregator-tls-cert and --antrea-flow-aggregator-tls-key go together"},
		{"antrea CA without an address", []string{"--antrea-flow-aggregator-tls-ca=ca.crt"}, "--antrea-flow-aggregator-tls-* given without --antrea-flow-aggregator-address"},
		{"hubble server name without an address", []string{"--hubble-tls-server-name=relay"}, "--hubble-tls-* given without --hubble-relay-address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run("netpol-guard", append([]string{"webhook"}, tc.args...), strings.NewReader(""), &stdout, &stderr)
			if code != cli.ExitBadInput || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), cli.ExitBadInput, tc.want)
			}
		})
	}
}

func TestWebhookAcceptsConsistentFlowSourceFlags(t *testing.T) {
	o := server.DefaultOptions()
	o.Goldmane = server.GoldmaneOptions{Address: "goldmane:7443", CAFile: "ca.crt", CertFile: "c.crt", KeyFile: "c.key", ServerName: "goldmane", Backfill: time.Minute}
	o.Antrea = server.AntreaOptions{Address: "fa:14740", CAFile: "ca.crt", ServerName: "flow-aggregator.flow-aggregator.svc"} // no client certificate
	o.Hubble = server.HubbleOptions{Address: "hubble-relay:80"}                                                               // plaintext
	if err := checkFlowSources(o); err != nil {
		t.Error(err)
	}
}
