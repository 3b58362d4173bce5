package tokenreview

import (
	"errors"
	"strings"
	"testing"

	authv1 "k8s.io/api/authentication/v1"

	"github.com/netpol-guard/netpol-guard/flowapi"
)

// The TokenReview itself is the API server's to answer: it is exercised against a real
// kube-apiserver by the e2e suite. Here: how its answer is read.

const agentUser = "system:serviceaccount:netpol-guard:netpol-guard-agent"

func TestReviewedUser(t *testing.T) {
	authenticated := authv1.TokenReviewStatus{
		Authenticated: true,
		User:          authv1.UserInfo{Username: agentUser, Groups: []string{"system:serviceaccounts"}},
		Audiences:     []string{"netpol-guard"},
	}
	cases := []struct {
		name      string
		status    authv1.TokenReviewStatus
		audiences []string
		wantUser  string
		wantErr   string // in the flowapi.ErrUnauthenticated error
	}{
		{"authenticated token names its user", authenticated, nil, agentUser, ""},
		{"token valid for a wanted audience", authenticated, []string{"other", "netpol-guard"}, agentUser, ""},
		{"token for none of the wanted audiences is rejected", authenticated, []string{"other"}, "", "not valid for audiences"},
		{"wanted audience with no audience in the answer is rejected", func() authv1.TokenReviewStatus {
			s := authenticated
			s.Audiences = nil
			return s
		}(), []string{"netpol-guard"}, "", "not valid for audiences"},
		{"unauthenticated carries the API server's reason", authv1.TokenReviewStatus{Error: "token has expired"}, nil, "", "token has expired"},
		{"unauthenticated without a reason", authv1.TokenReviewStatus{}, nil, "", "not authenticated"},
		{"authenticated without a user name is rejected", authv1.TokenReviewStatus{Authenticated: true}, nil, "", "no user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := reviewedUser(tc.status, tc.audiences)
			if u.Name != tc.wantUser {
				t.Errorf("user %q, want %q", u.Name, tc.wantUser)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != "" && (!errors.Is(err, flowapi.ErrUnauthenticated) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want flowapi.ErrUnauthenticated with %q", err, tc.wantErr)
			}
		})
	}
}
