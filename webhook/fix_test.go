package webhook

import (
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

func TestRejectionEndsWithTheFixThatKeepsTheCutFlows(t *testing.T) {
	f := newFixture(t, Enforce, shopCache(now.Add(-48*time.Hour)))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
	if resp.Allowed {
		t.Fatal("enforce admitted a default-deny that cuts live flows")
	}
	msg := resp.Result.Message
	if !strings.Contains(msg, "\nFix: add ingress from shop/web") || !strings.Contains(msg, "on TCP/8080") {
		t.Errorf("message does not end with the fix:\n%s", msg)
	}
	if ev := f.events(); len(ev) != 1 || !strings.Contains(ev[0], "Fix: add ingress from") {
		t.Errorf("event note lacks the fix: %v", ev)
	}
}

func TestWarningsCarryTheFixInOneLine(t *testing.T) {
	f := newFixture(t, Warn, shopCache(now.Add(-48*time.Hour)))
	resp := f.guard.Handle(t.Context(), request(admissionv1.Create, nil, defaultDeny, false))
	var fix []string
	for _, w := range resp.Warnings {
		if strings.HasPrefix(w, "fix: add ") {
			fix = append(fix, w)
		}
	}
	if len(fix) != 1 || len([]rune(fix[0])) > maxWarning {
		t.Errorf("want one fix warning within %d characters: %q", maxWarning, resp.Warnings)
	}
}
