package webhook

import (
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestSubjectAccessReviewsAskForTheBypassVerbAsTheUserAndCacheTheAnswer(t *testing.T) {
	client := fake.NewClientset()
	var asked []authorizationv1.SubjectAccessReviewSpec
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		asked = append(asked, sar.Spec)
		sar.Status.Allowed = sar.Spec.User == "oncall"
		return true, sar, nil
	})
	clk := clocktesting.NewFakePassiveClock(now)
	sars := NewSubjectAccessReviews(client.AuthorizationV1().SubjectAccessReviews(), 10*time.Second, clk)
	oncall := authenticationv1.UserInfo{Username: "oncall", UID: "u-1", Groups: []string{"sre"}, Extra: map[string]authenticationv1.ExtraValue{"scopes": {"a"}}}
	dev := authenticationv1.UserInfo{Username: "dev", Groups: []string{"shop-editors"}}

	for i, tt := range []struct {
		user      authenticationv1.UserInfo
		namespace string
		advance   time.Duration
		want      bool
		calls     int
	}{
		{oncall, "shop", 0, true, 1},
		{oncall, "shop", time.Second, true, 1},      // cached
		{dev, "shop", 0, false, 2},                  // another user
		{dev, "shop", 0, false, 2},                  // a no is cached too
		{oncall, "payments", 0, true, 3},            // another namespace
		{oncall, "shop", 10 * time.Second, true, 4}, // expired
		{authenticationv1.UserInfo{Username: "oncall", Groups: []string{"sre", "x"}}, "shop", 0, true, 5}, // other groups
	} {
		clk.SetTime(clk.Now().Add(tt.advance))
		got, err := sars.MayBypass(t.Context(), tt.user, tt.namespace)
		if err != nil || got != tt.want || len(asked) != tt.calls {
			t.Errorf("%d: MayBypass(%s, %s) = %v, %v after %d SARs; want %v after %d", i, tt.user.Username, tt.namespace, got, err, len(asked), tt.want, tt.calls)
		}
	}
	spec := asked[0]
	ra := spec.ResourceAttributes
	if spec.User != "oncall" || spec.UID != "u-1" || len(spec.Groups) != 1 || spec.Extra["scopes"][0] != "a" ||
		ra == nil || ra.Verb != BypassVerb || ra.Group != BypassGroup || ra.Resource != BypassResource || ra.Namespace != "shop" {
		t.Errorf("SubjectAccessReview spec %+v, attributes %+v", spec, ra)
	}
}
