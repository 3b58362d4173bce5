package flowapi

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/netpol-guard/netpol-guard/internal/option"
)

// ErrUnauthenticated is wrapped by the errors an Authenticator returns for a token it
// rejects. Any other error means the token could not be checked (the API server was
// unreachable, the context ended, too many reviews at once): the push API answers 401 to
// the first, 429 or 503 to the rest.
var ErrUnauthenticated = errors.New("unauthenticated")

// User is who a token authenticates as: the TokenReview's user.
type User struct {
	Name   string
	Groups []string
	// Extra is the authenticator's extra information, e.g. NodeNameExtra.
	Extra map[string][]string
}

// NodeNameExtra is the extra key under which the API server names the node of the pod a
// projected ServiceAccount token is bound to.
const NodeNameExtra = "authentication.kubernetes.io/node-name"

// Node is the node the token is bound to (NodeNameExtra), or "" when it names none or more
// than one.
func (u User) Node() string {
	if v := u.Extra[NodeNameExtra]; len(v) == 1 {
		return v[0]
	}
	return ""
}

func (u User) clone() User {
	u.Groups = slices.Clone(u.Groups)
	if u.Extra != nil {
		extra := make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			extra[k] = slices.Clone(v)
		}
		u.Extra = extra
	}
	return u
}

// Authenticator turns a bearer token into the user it authenticates.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (User, error)
}

// LimitedError is what a CachingAuthenticator returns when it will not ask for a review
// now: too many in flight (503) or too many a second (429). Retry after RetryAfter.
type LimitedError struct {
	Code       int // http.StatusTooManyRequests or http.StatusServiceUnavailable
	RetryAfter time.Duration
	Reason     string
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("token review refused: %s; retry in %v", e.Reason, e.RetryAfter)
}

// ServiceAccountUser is the user name Kubernetes gives a ServiceAccount's tokens,
// e.g. "system:serviceaccount:netpol-guard:netpol-guard-agent".
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// AuthCacheOptions configures a CachingAuthenticator.
type AuthCacheOptions struct {
	// TTL is how long an accepted token is trusted without asking again. Default 1m: a
	// revoked token or deleted ServiceAccount is honoured for at most that long.
	TTL time.Duration
	// FailureTTL is how long a rejected token stays rejected without asking again.
	// Default 5s; negative: rejections are not cached. Errors other than ErrUnauthenticated
	// are never cached.
	FailureTTL time.Duration
	// MaxEntries bounds the accepted tokens held; past it the least recently used goes.
	// Default 1024.
	MaxEntries int
	// MaxFailures bounds the rejected tokens held, apart from the accepted ones so that a
	// flood of bad tokens cannot push a writer's approval out. Default 1024.
	MaxFailures int
	// CheckToken, when set, rejects a token by its shape alone, before the cache and
	// before any review (CheckJWT for Kubernetes ServiceAccount tokens). Its rejections
	// are neither reviewed nor cached.
	CheckToken func(token string) error
	// MaxConcurrentReviews bounds the reviews in flight; a review that finds no slot for
	// two seconds is refused with a 503 LimitedError. Default 4.
	MaxConcurrentReviews int
	// ReviewsPerSecond and ReviewBurst are a token bucket on reviews; past it a token is
	// refused with a 429 LimitedError. Default 20/s, burst 40.
	ReviewsPerSecond float64
	ReviewBurst      int
	// Metrics, when not nil, counts reviews and refusals.
	Metrics *Metrics
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Defaults for AuthCacheOptions.
const (
	DefaultAuthCacheTTL         = time.Minute
	DefaultAuthCacheFailureTTL  = 5 * time.Second
	DefaultAuthCacheMaxEntries  = 1024
	DefaultAuthCacheMaxFailures = 1024
	DefaultMaxConcurrentReviews = 4
	DefaultReviewsPerSecond     = 20
	DefaultReviewBurst          = 40
)

// reviewSlotWait is how long a review waits for one of the MaxConcurrentReviews slots.
const reviewSlotWait = 2 * time.Second

// MaxTokenBytes bounds the tokens CheckJWT accepts. ServiceAccount tokens are around 1 KiB.
const MaxTokenBytes = 8 << 10

// CheckJWT accepts a token shaped like a signed JWT, as every ServiceAccount token is:
// three non-empty base64url segments joined by dots, at most MaxTokenBytes in all.
func CheckJWT(token string) error {
	if len(token) > MaxTokenBytes {
		return fmt.Errorf("%w: token longer than %d bytes", ErrUnauthenticated, MaxTokenBytes)
	}
	dots, seg := 0, 0
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case c == '.':
			if seg == 0 {
				return fmt.Errorf("%w: token is not a JWT", ErrUnauthenticated)
			}
			dots++
			seg = 0
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			seg++
		default:
			return fmt.Errorf("%w: token is not a JWT", ErrUnauthenticated)
		}
	}
	if dots != 2 || seg == 0 {
		return fmt.Errorf("%w: token is not a JWT", ErrUnauthenticated)
	}
	return nil
}

// CachingAuthenticator stands in front of another Authenticator (the TokenReview): it
// remembers its answers for a while, keyed by the SHA-256 of the token (tokens themselves are
// not kept), accepted and rejected tokens apart; it asks once for all the callers of one
// token at a time; and it bounds the reviews in flight and per second, so that callers with
// made-up tokens cannot drive the API server. It is safe for concurrent use.
type CachingAuthenticator struct {
	next            Authenticator
	ttl, failureTTL time.Duration
	check           func(string) error
	now             func() time.Time
	metrics         *Metrics

	flights singleflight.Group
	slots   chan struct{}
	limiter *rate.Limiter

	mu                 sync.Mutex
	accepted, rejected lru
}

var _ Authenticator = &CachingAuthenticator{}

type authEntry struct {
	key     [sha256.Size]byte
	user    User
	err     error // nil, or wrapping ErrUnauthenticated
	expires time.Time
}

// acquire takes one of slots (a channel with a buffer for each), waiting for one at most
// wait: false when the wait ran out, ctx's error when ctx ended first. The caller gives
// the slot back by receiving from slots.
func acquire(ctx context.Context, slots chan struct{}, wait time.Duration) (bool, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case slots <- struct{}{}:
		return true, nil
	case <-timer.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// lru is a bounded map of answers, least recently used out first.
type lru struct {
	max     int
	entries map[[sha256.Size]byte]*list.Element
	order   list.List // of *authEntry, most recently used first
}

// NewCachingAuthenticator returns next behind a cache and limits.
func NewCachingAuthenticator(next Authenticator, opts AuthCacheOptions) *CachingAuthenticator {
	option.Default(&opts.TTL, DefaultAuthCacheTTL)
	if opts.FailureTTL == 0 {
		opts.FailureTTL = DefaultAuthCacheFailureTTL
	}
	option.Default(&opts.MaxEntries, DefaultAuthCacheMaxEntries)
	option.Default(&opts.MaxFailures, DefaultAuthCacheMaxFailures)
	option.Default(&opts.MaxConcurrentReviews, DefaultMaxConcurrentReviews)
	option.Default(&opts.ReviewsPerSecond, DefaultReviewsPerSecond)
	option.Default(&opts.ReviewBurst, DefaultReviewBurst)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &CachingAuthenticator{
		next: next, ttl: opts.TTL, failureTTL: opts.FailureTTL, check: opts.CheckToken, now: opts.Now, metrics: opts.Metrics,
		slots:    make(chan struct{}, opts.MaxConcurrentReviews),
		limiter:  rate.NewLimiter(rate.Limit(opts.ReviewsPerSecond), opts.ReviewBurst),
		accepted: lru{max: opts.MaxEntries, entries: map[[sha256.Size]byte]*list.Element{}},
		rejected: lru{max: opts.MaxFailures, entries: map[[sha256.Size]byte]*list.Element{}},
	}
}

// Authenticate answers from the cache, or asks the wrapped Authenticator — once for all
// callers of the same token, within the limits — and remembers its answer: acceptances for
// the TTL, rejections for the FailureTTL, other errors not at all. Past the limits it
// returns a *LimitedError without asking.
func (c *CachingAuthenticator) Authenticate(ctx context.Context, token string) (User, error) {
	if token == "" {
		return User{}, fmt.Errorf("%w: empty token", ErrUnauthenticated)
	}
	if c.check != nil {
		if err := c.check(token); err != nil {
			c.refused("malformed")
			return User{}, err
		}
	}
	key := sha256.Sum256([]byte(token))
	if e, ok := c.lookup(key); ok {
		return e.user.clone(), e.err
	}
	v, err, _ := c.flights.Do(string(key[:]), func() (any, error) {
		// A caller that waited for another flight may find its answer stored.
		if e, ok := c.lookup(key); ok {
			return e.user, e.err
		}
		return c.review(ctx, key, token)
	})
	user, _ := v.(User)
	return user.clone(), err
}

// review asks the wrapped Authenticator within the limits and stores its answer. The
// token bucket comes first, so the callers waiting for a slot are bounded by it.
func (c *CachingAuthenticator) review(ctx context.Context, key [sha256.Size]byte, token string) (User, error) {
	now := c.now()
	if r := c.limiter.ReserveN(now, 1); !r.OK() || r.DelayFrom(now) > 0 {
		wait := time.Second
		if r.OK() {
			wait = r.DelayFrom(now)
			r.CancelAt(now)
		}
		c.refused("rate")
		return User{}, &LimitedError{Code: http.StatusTooManyRequests, RetryAfter: wait, Reason: "too many token reviews a second"}
	}
	switch ok, err := acquire(ctx, c.slots, reviewSlotWait); {
	case err != nil:
		return User{}, fmt.Errorf("waiting for a token review: %w", err)
	case !ok:
		c.refused("concurrency")
		return User{}, &LimitedError{Code: http.StatusServiceUnavailable, RetryAfter: time.Second, Reason: "too many token reviews in flight"}
	}
	defer func() { <-c.slots }()
	user, err := c.next.Authenticate(ctx, token)
	switch {
	case err == nil:
		c.reviewed("authenticated")
		c.store(&c.accepted, &authEntry{key: key, user: user.clone(), expires: c.now().Add(c.ttl)})
	case errors.Is(err, ErrUnauthenticated):
		c.reviewed("unauthenticated")
		if c.failureTTL > 0 {
			c.store(&c.rejected, &authEntry{key: key, err: err, expires: c.now().Add(c.failureTTL)})
		}
	default:
		c.reviewed("error")
	}
	return user, err
}

func (c *CachingAuthenticator) reviewed(result string) {
	if c.metrics != nil {
		c.metrics.TokenReviews.WithLabelValues(result).Inc()
	}
}

func (c *CachingAuthenticator) refused(reason string) {
	if c.metrics != nil {
		c.metrics.TokensRefused.WithLabelValues(reason).Inc()
	}
}

func (c *CachingAuthenticator) lookup(key [sha256.Size]byte) (*authEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, l := range []*lru{&c.accepted, &c.rejected} {
		if e, ok := l.get(key, now); ok {
			return e, true
		}
	}
	return nil, false
}

func (c *CachingAuthenticator) store(l *lru, e *authEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A token is in one list at a time: an answer replaces the other list's.
	for _, o := range []*lru{&c.accepted, &c.rejected} {
		if o != l {
			o.remove(e.key)
		}
	}
	l.put(e)
}

func (l *lru) get(key [sha256.Size]byte, now time.Time) (*authEntry, bool) {
	el, ok := l.entries[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*authEntry)
	if !now.Before(e.expires) {
		l.order.Remove(el)
		delete(l.entries, key)
		return nil, false
	}
	l.order.MoveToFront(el)
	return e, true
}

func (l *lru) put(e *authEntry) {
	if el, ok := l.entries[e.key]; ok {
		el.Value = e
		l.order.MoveToFront(el)
		return
	}
	for l.order.Len() >= l.max {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.entries, oldest.Value.(*authEntry).key)
	}
	l.entries[e.key] = l.order.PushFront(e)
}

func (l *lru) remove(key [sha256.Size]byte) {
	if el, ok := l.entries[key]; ok {
		l.order.Remove(el)
		delete(l.entries, key)
	}
}

// Len is the number of answers held, accepted and rejected.
func (c *CachingAuthenticator) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accepted.order.Len() + c.rejected.order.Len()
}

// retryAfterSeconds rounds a wait up to whole seconds for a Retry-After header.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
