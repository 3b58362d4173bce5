package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/utils/clock"
)

// The right to bypass: RBAC verb BypassVerb on BypassResource in BypassGroup, in the
// policy's namespace. No built-in role grants it (editing a policy does not); the chart
// ships a ClusterRole granting it, bound to nobody.
const (
	BypassVerb     = "bypass"
	BypassResource = "networkpolicies"
	BypassGroup    = "netpol-guard.io"
)

// BypassAuthorizer decides whether a user may bypass the guardrail in a namespace.
type BypassAuthorizer interface {
	MayBypass(ctx context.Context, user authenticationv1.UserInfo, namespace string) (bool, error)
}

// bypassRight says, for messages, what a bypass needs.
func bypassRight(namespace string) string {
	return fmt.Sprintf("RBAC verb %q on %s.%s in namespace %s", BypassVerb, BypassResource, BypassGroup, namespace)
}

// SubjectAccessReviews asks the API server, with a SubjectAccessReview, whether the user
// may bypass, and remembers the answer for TTL so that a burst of applies by one user costs
// one call.
type SubjectAccessReviews struct {
	client authorizationclient.SubjectAccessReviewInterface
	ttl    time.Duration
	cache  *cache.LRUExpireCache
}

var _ BypassAuthorizer = (*SubjectAccessReviews)(nil)

// NewSubjectAccessReviews returns an authorizer that caches answers for ttl (default 10s)
// on clk (default the real clock).
func NewSubjectAccessReviews(client authorizationclient.SubjectAccessReviewInterface, ttl time.Duration, clk clock.PassiveClock) *SubjectAccessReviews {
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &SubjectAccessReviews{client: client, ttl: ttl, cache: cache.NewLRUExpireCacheWithClock(4096, clk)}
}

// MayBypass implements BypassAuthorizer. Errors are not cached.
func (s *SubjectAccessReviews) MayBypass(ctx context.Context, user authenticationv1.UserInfo, namespace string) (bool, error) {
	key := sarKey(user, namespace)
	if v, ok := s.cache.Get(key); ok {
		return v.(bool), nil
	}
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, Groups: user.Groups, Extra: extra, UID: user.UID,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Verb: BypassVerb, Group: BypassGroup, Resource: BypassResource,
		},
	}}
	res, err := s.client.Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subjectaccessreview: %w", err)
	}
	s.cache.Add(key, res.Status.Allowed, s.ttl)
	return res.Status.Allowed, nil
}

// sarKey identifies a user and namespace unambiguously: every part is quoted.
func sarKey(u authenticationv1.UserInfo, namespace string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q %q %q %q", namespace, u.Username, u.UID, u.Groups)
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %q=%q", k, []string(u.Extra[k]))
	}
	return b.String()
}
