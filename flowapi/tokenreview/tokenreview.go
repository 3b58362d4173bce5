// Package tokenreview authenticates the flow API's callers by their Kubernetes bearer
// tokens, asking the API server with a TokenReview. It is apart from package flowapi so that
// what only the webhook needs (client-go) is not linked into the node agent.
package tokenreview

import (
	"context"
	"fmt"
	"slices"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/netpol-guard/netpol-guard/flowapi"
)

// Authenticator authenticates tokens with a TokenReview, one API call per token, and
// returns the reviewed user with its extra (the node a projected token is bound to). Wrap
// it in a flowapi.CachingAuthenticator (CheckToken: flowapi.CheckJWT), so that agents pushing
// every few seconds do not cost a review each and callers with made-up tokens cannot drive
// reviews.
type Authenticator struct {
	Client kubernetes.Interface
	// Audiences, when set, are the audiences the token must be valid for; a token bound to
	// none of them is rejected.
	Audiences []string
}

var _ flowapi.Authenticator = &Authenticator{}

// Authenticate creates a TokenReview for token.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (flowapi.User, error) {
	if token == "" {
		return flowapi.User{}, fmt.Errorf("%w: empty token", flowapi.ErrUnauthenticated)
	}
	review := &authv1.TokenReview{Spec: authv1.TokenReviewSpec{Token: token, Audiences: a.Audiences}}
	res, err := a.Client.AuthenticationV1().TokenReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return flowapi.User{}, fmt.Errorf("creating TokenReview: %w", err)
	}
	return reviewedUser(res.Status, a.Audiences)
}

// reviewedUser reads a TokenReview's answer. With audiences asked for, the API server
// answers with those the token is valid for; at least one must be among them.
func reviewedUser(st authv1.TokenReviewStatus, audiences []string) (flowapi.User, error) {
	switch {
	case !st.Authenticated && st.Error != "":
		return flowapi.User{}, fmt.Errorf("%w: %s", flowapi.ErrUnauthenticated, st.Error)
	case !st.Authenticated:
		return flowapi.User{}, fmt.Errorf("%w: token not authenticated", flowapi.ErrUnauthenticated)
	case st.User.Username == "":
		return flowapi.User{}, fmt.Errorf("%w: token review named no user", flowapi.ErrUnauthenticated)
	}
	if len(audiences) > 0 && !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(audiences, a) }) {
		return flowapi.User{}, fmt.Errorf("%w: token not valid for audiences %q", flowapi.ErrUnauthenticated, audiences)
	}
	u := flowapi.User{Name: st.User.Username, Groups: st.User.Groups}
	if len(st.User.Extra) > 0 {
		u.Extra = make(map[string][]string, len(st.User.Extra))
		for k, v := range st.User.Extra {
			u.Extra[k] = []string(v)
		}
	}
	return u, nil
}
