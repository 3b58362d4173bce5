package flowapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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

func (a *countingAuth) Authenticate(_ context.Context, token string) (string, []string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.calls == nil {
		a.calls = map[string]int{}
	}
	a.calls[token]++
	switch {
	case strings.HasPrefix(token, "ok-"):
		return "user-" + strings.TrimPrefix(token, "ok-"), []string{"system:serviceaccounts"}, nil
	case token == "down":
		return "", nil, errors.New("connection refused")
	}
	return "", nil, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
}

func (a *countingAuth) count(token string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[token]
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
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
			clock := &fakeClock{t: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
			tc.opts.Now = clock.Now
			a := NewCachingAuthenticator(next, tc.opts)
			for i, q := range tc.asks {
				clock.Step(q.after)
				user, groups, err := a.Authenticate(t.Context(), q.token)
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
	if _, _, err := a.Authenticate(t.Context(), "ok-secret"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.entries[sha256.Sum256([]byte("ok-secret"))]; !ok || len(a.entries) != 1 {
		t.Errorf("entries not keyed by the token's SHA-256: %v", a.entries)
	}
}

func TestCachingAuthenticatorCallerCannotChangeCachedGroups(t *testing.T) {
	a := NewCachingAuthenticator(&countingAuth{}, AuthCacheOptions{})
	_, groups, _ := a.Authenticate(t.Context(), "ok-a")
	groups[0] = "system:masters"
	_, groups, _ = a.Authenticate(t.Context(), "ok-a")
	if groups[0] != "system:serviceaccounts" {
		t.Errorf("cached groups changed through a returned slice: %q", groups)
	}
}

func TestCachingAuthenticatorConcurrentUse(t *testing.T) {
	next := &countingAuth{}
	a := NewCachingAuthenticator(next, AuthCacheOptions{MaxEntries: 8})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				token := fmt.Sprintf("ok-%d", (g+i)%12)
				if user, _, err := a.Authenticate(context.Background(), token); err != nil || user == "" {
					t.Errorf("%s: %q, %v", token, user, err)
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
