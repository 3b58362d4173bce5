package flowapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	clocktesting "k8s.io/utils/clock/testing"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The TokenReview itself is the API server's to answer: it is exercised against a real
// kube-apiserver by the e2e suite. Here: the cache in front of it, and how its answer is read.

// countingAuth is a test double for the wrapped Authenticator that counts the questions
// it is asked. Tokens "ok-*" authenticate as "user-*"; "down" fails as an unreachable
// API server would; anything else is rejected.
type countingAuth struct {
	mu    sync.Mutex
	calls map[string]int
}

func (a *countingAuth) Authenticate(_ context.Context, token string) (User, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.calls == nil {
		a.calls = map[string]int{}
	}
	a.calls[token]++
	switch {
	case strings.HasPrefix(token, "ok-"):
		return User{Name: "user-" + strings.TrimPrefix(token, "ok-"), Groups: []string{"system:serviceaccounts"}}, nil
	case token == "down":
		return User{}, errors.New("connection refused")
	}
	return User{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
}

func (a *countingAuth) count(token string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[token]
}

func TestCachingAuthenticator(t *testing.T) {
	type ask struct {
		after    time.Duration // clock step before asking
		token    string
		wantUser string
		wantErr  string // "" none, "unauthenticated", or "other"
		reviews  int    // times the wrapped authenticator was asked for token, so far
	}
	cases := []struct {
		name string
		opts AuthCacheOptions
		asks []ask
		size int // entries held at the end
	}{
		{
			name: "agent pushing every 10s is reviewed once a minute",
			asks: []ask{
				{0, "ok-agent", "user-agent", "", 1},
				{10 * time.Second, "ok-agent", "user-agent", "", 1},
				{40 * time.Second, "ok-agent", "user-agent", "", 1},
				{10 * time.Second, "ok-agent", "user-agent", "", 2}, // 60s: expired
				{10 * time.Second, "ok-agent", "user-agent", "", 2},
			},
			size: 1,
		},
		{
			name: "distinct tokens are reviewed each",
			asks: []ask{
				{0, "ok-a", "user-a", "", 1},
				{0, "ok-b", "user-b", "", 1},
				{0, "ok-a", "user-a", "", 1},
			},
			size: 2,
		},
		{
			name: "rejected token stays rejected only for the failure TTL",
			asks: []ask{
				{0, "forged", "", "unauthenticated", 1},
				{2 * time.Second, "forged", "", "unauthenticated", 1},
				{3 * time.Second, "forged", "", "unauthenticated", 2},
			},
			size: 1,
		},
		{
			name: "rejections are not cached with a negative failure TTL",
			opts: AuthCacheOptions{FailureTTL: -1},
			asks: []ask{
				{0, "forged", "", "unauthenticated", 1},
				{0, "forged", "", "unauthenticated", 2},
			},
			size: 0,
		},
		{
			name: "an API server that cannot be reached is asked again at once",
			asks: []ask{
				{0, "down", "", "other", 1},
				{0, "down", "", "other", 2},
			},
			size: 0,
		},
		{
			name: "empty token is rejected without asking",
			asks: []ask{{0, "", "", "unauthenticated", 0}},
			size: 0,
		},
		{
			name: "cache is bounded, least recently used leave first",
			opts: AuthCacheOptions{MaxEntries: 2},
			asks: []ask{
				{0, "ok-a", "user-a", "", 1},
				{0, "ok-b", "user-b", "", 1},
				{0, "ok-a", "user-a", "", 1}, // a is now the most recent
				{0, "ok-c", "user-c", "", 1}, // evicts b
				{0, "ok-a", "user-a", "", 1},
				{0, "ok-b", "user-b", "", 2},
			},
			size: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := &countingAuth{}
			clock := clocktesting.NewFakeClock(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
			tc.opts.Now = clock.Now
			a := NewCachingAuthenticator(next, tc.opts)
			for i, q := range tc.asks {
				clock.Step(q.after)
				u, err := a.Authenticate(t.Context(), q.token)
				user, groups := u.Name, u.Groups
				switch {
				case q.wantErr == "" && err != nil:
					t.Errorf("ask %d (%s): %v", i, q.token, err)
				case q.wantErr == "unauthenticated" && !errors.Is(err, ErrUnauthenticated):
					t.Errorf("ask %d (%s): error %v, want ErrUnauthenticated", i, q.token, err)
				case q.wantErr == "other" && (err == nil || errors.Is(err, ErrUnauthenticated)):
					t.Errorf("ask %d (%s): error %v, want one that is not ErrUnauthenticated", i, q.token, err)
				}
				if user != q.wantUser {
					t.Errorf("ask %d (%s): user %q, want %q", i, q.token, user, q.wantUser)
				}
				if q.wantUser != "" && !slices.Equal(groups, []string{"system:serviceaccounts"}) {
					t.Errorf("ask %d (%s): groups %q", i, q.token, groups)
				}
				if got := next.count(q.token); got != q.reviews {
					t.Errorf("ask %d (%s): reviewed %d times, want %d", i, q.token, got, q.reviews)
				}
			}
			if got := a.Len(); got != tc.size {
				t.Errorf("cache holds %d entries, want %d", got, tc.size)
			}
		})
	}
}

func TestCachingAuthenticatorKeepsHashesNotTokens(t *testing.T) {
	a := NewCachingAuthenticator(&countingAuth{}, AuthCacheOptions{})
	if _, err := a.Authenticate(t.Context(), "ok-secret"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.accepted.entries[sha256.Sum256([]byte("ok-secret"))]; !ok || len(a.accepted.entries) != 1 {
		t.Errorf("entries not keyed by the token's SHA-256: %v", a.accepted.entries)
	}
}

func TestCachingAuthenticatorCallerCannotChangeCachedGroups(t *testing.T) {
	a := NewCachingAuthenticator(&countingAuth{}, AuthCacheOptions{})
	u, _ := a.Authenticate(t.Context(), "ok-a")
	u.Groups[0] = "system:masters"
	u, _ = a.Authenticate(t.Context(), "ok-a")
	if u.Groups[0] != "system:serviceaccounts" {
		t.Errorf("cached groups changed through a returned slice: %q", u.Groups)
	}
}

func TestCachingAuthenticatorConcurrentUse(t *testing.T) {
	next := &countingAuth{}
	a := NewCachingAuthenticator(next, AuthCacheOptions{MaxEntries: 8, ReviewsPerSecond: 1e9, ReviewBurst: 1 << 30})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				token := fmt.Sprintf("ok-%d", (g+i)%12)
				if u, err := a.Authenticate(context.Background(), token); err != nil || u.Name == "" {
					t.Errorf("%s: %q, %v", token, u.Name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if a.Len() > 8 {
		t.Errorf("cache grew to %d entries past its bound of 8", a.Len())
	}
}

// jwtLike is a token shaped as a signed JWT, carrying name in its payload.
func jwtLike(name string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"sub":"`+name+`"}`)) + ".c2ln"
}

// slowAuth is a test double for a TokenReview that takes a while: it approves writer and
// rejects anything else, counting the reviews and the most it had in flight at once.
type slowAuth struct {
	writer                string
	delay                 time.Duration
	gate                  chan struct{} // when not nil, each review waits for it to close
	calls, inflight, peak atomic.Int64
}

func (a *slowAuth) Authenticate(_ context.Context, token string) (User, error) {
	a.calls.Add(1)
	n := a.inflight.Add(1)
	defer a.inflight.Add(-1)
	for p := a.peak.Load(); n > p && !a.peak.CompareAndSwap(p, n); p = a.peak.Load() {
	}
	if a.gate != nil {
		<-a.gate
	}
	time.Sleep(a.delay)
	if token == a.writer {
		return User{Name: agentUser}, nil
	}
	return User{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
}

func TestTokenFloodCostsBoundedReviewsAndKeepsTheWritersApproval(t *testing.T) {
	writer := jwtLike("writer")
	next := &slowAuth{writer: writer, delay: 2 * time.Millisecond}
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)) // stands still: the bucket never refills
	m := NewMetrics(nil)
	a := NewCachingAuthenticator(next, AuthCacheOptions{
		CheckToken: CheckJWT, MaxEntries: 4, MaxFailures: 4,
		MaxConcurrentReviews: 4, ReviewsPerSecond: 10, ReviewBurst: 20,
		Metrics: m, Now: clock.Now,
	})
	if u, err := a.Authenticate(t.Context(), writer); err != nil || u.Name != agentUser {
		t.Fatalf("writer: %+v, %v", u, err)
	}

	var limited429, limited503, rejected atomic.Int64
	var wg sync.WaitGroup
	for i := range 2000 {
		token := fmt.Sprintf("bogus-%d", i) // no JWT
		if i%2 == 0 {
			token = jwtLike(fmt.Sprintf("forged-%d", i))
		}
		wg.Go(func() {
			_, err := a.Authenticate(t.Context(), token)
			le, isLimited := errors.AsType[*LimitedError](err)
			switch {
			case errors.Is(err, ErrUnauthenticated):
				rejected.Add(1)
			case isLimited && le.Code == http.StatusTooManyRequests && le.RetryAfter > 0:
				limited429.Add(1)
			case isLimited && le.Code == http.StatusServiceUnavailable:
				limited503.Add(1)
			default:
				t.Errorf("%s: %v", token, err)
			}
		})
	}
	wg.Wait()

	reviews := next.calls.Load() - 1
	if reviews > 19 {
		t.Errorf("2000 bogus tokens cost %d reviews, want at most the bucket's 19 left", reviews)
	}
	if p := next.peak.Load(); p > 4 {
		t.Errorf("%d reviews in flight at once, want at most 4", p)
	}
	if got := testutil.ToFloat64(m.TokensRefused.WithLabelValues("malformed")); got != 1000 {
		t.Errorf("%v malformed tokens refused, want 1000", got)
	}
	if got := testutil.ToFloat64(m.TokenReviews.WithLabelValues("unauthenticated")); got != float64(reviews) {
		t.Errorf("%v unauthenticated reviews counted, want %d", got, reviews)
	}
	if got := testutil.ToFloat64(m.TokensRefused.WithLabelValues("rate")); got != float64(limited429.Load()) || got < 900 {
		t.Errorf("%v rate-limited counted, %d answered 429; want ≥ 900 and equal", got, limited429.Load())
	}
	t.Logf("reviews %d, peak in flight %d; rejected %d, 429 %d, 503 %d", reviews, next.peak.Load(), rejected.Load(), limited429.Load(), limited503.Load())

	calls := next.calls.Load()
	if u, err := a.Authenticate(t.Context(), writer); err != nil || u.Name != agentUser {
		t.Fatalf("writer after the flood: %+v, %v", u, err)
	}
	if next.calls.Load() != calls {
		t.Error("the flood pushed the writer's approval out of the cache")
	}
}

func TestOneReviewInFlightPerToken(t *testing.T) {
	writer := jwtLike("writer")
	next := &slowAuth{writer: writer, gate: make(chan struct{})}
	a := NewCachingAuthenticator(next, AuthCacheOptions{CheckToken: CheckJWT})
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if u, err := a.Authenticate(t.Context(), writer); err != nil || u.Name != agentUser {
				t.Errorf("%+v, %v", u, err)
			}
		})
	}
	for next.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others join the flight
	close(next.gate)
	wg.Wait()
	if n := next.calls.Load(); n != 1 {
		t.Errorf("100 callers of one token cost %d reviews, want 1", n)
	}
}

func TestCheckJWT(t *testing.T) {
	cases := []struct {
		token string
		ok    bool
	}{
		{jwtLike("a"), true},
		{"aaa.bbb.ccc", true},
		{"a-_9.B.c", true},
		{"aaa.bbb", false},
		{"aaa.bbb.ccc.ddd", false},
		{"aaa..ccc", false},
		{".bbb.ccc", false},
		{"aaa.bbb.", false},
		{"aaa.b=b.ccc", false},
		{"aaa.b+b.ccc", false},
		{"agent-token", false},
		{"a." + strings.Repeat("b", MaxTokenBytes) + ".c", false},
	}
	for _, tc := range cases {
		err := CheckJWT(tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("CheckJWT(%.40q) = %v, want ok %v", tc.token, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("CheckJWT(%.40q): %v is not ErrUnauthenticated", tc.token, err)
		}
	}
}

func FuzzCheckJWT(f *testing.F) {
	f.Add(jwtLike("a"))
	f.Add("a.b.c")
	f.Add("a..c")
	f.Fuzz(func(t *testing.T, token string) {
		if CheckJWT(token) != nil {
			return
		}
		parts := strings.Split(token, ".")
		if len(token) > MaxTokenBytes || len(parts) != 3 {
			t.Fatalf("accepted %q", token)
		}
		for _, p := range parts {
			if _, err := base64.RawURLEncoding.DecodeString(p); err != nil && len(p)%4 != 1 {
				t.Fatalf("accepted %q: segment %q: %v", token, p, err)
			}
		}
	})
}
