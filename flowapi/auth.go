package flowapi

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ErrUnauthenticated is wrapped by the errors an Authenticator returns for a token it
// rejects. Any other error means the token could not be checked (the API server was
// unreachable, the context ended): the push API answers 401 to the first, 503 to the rest.
var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticator turns a bearer token into the user it authenticates.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (user string, groups []string, err error)
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
	// MaxEntries bounds the cache; past it the least recently used entry goes. Default 1024.
	MaxEntries int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Defaults for AuthCacheOptions.
const (
	DefaultAuthCacheTTL        = time.Minute
	DefaultAuthCacheFailureTTL = 5 * time.Second
	DefaultAuthCacheMaxEntries = 1024
)

// CachingAuthenticator remembers another Authenticator's answers for a while, keyed by
// the SHA-256 of the token (tokens themselves are not kept). It is safe for concurrent use.
type CachingAuthenticator struct {
	next            Authenticator
	ttl, failureTTL time.Duration
	max             int
	now             func() time.Time

	mu      sync.Mutex
	entries map[[sha256.Size]byte]*list.Element
	lru     list.List // of *authEntry, most recently used first
}

var _ Authenticator = &CachingAuthenticator{}

type authEntry struct {
	key     [sha256.Size]byte
	user    string
	groups  []string
	err     error // nil, or wrapping ErrUnauthenticated
	expires time.Time
}

// NewCachingAuthenticator returns next behind a cache.
func NewCachingAuthenticator(next Authenticator, opts AuthCacheOptions) *CachingAuthenticator {
	if opts.TTL <= 0 {
		opts.TTL = DefaultAuthCacheTTL
	}
	if opts.FailureTTL == 0 {
		opts.FailureTTL = DefaultAuthCacheFailureTTL
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultAuthCacheMaxEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &CachingAuthenticator{
		next: next, ttl: opts.TTL, failureTTL: opts.FailureTTL, max: opts.MaxEntries, now: opts.Now,
		entries: map[[sha256.Size]byte]*list.Element{},
	}
}

// Authenticate answers from the cache, or asks the wrapped Authenticator and remembers
// its answer: acceptances for the TTL, rejections for the FailureTTL, other errors not at
// all.
func (c *CachingAuthenticator) Authenticate(ctx context.Context, token string) (string, []string, error) {
	if token == "" {
		return "", nil, fmt.Errorf("%w: empty token", ErrUnauthenticated)
	}
	key := sha256.Sum256([]byte(token))
	if e, ok := c.lookup(key); ok {
		return e.user, slices.Clone(e.groups), e.err
	}
	user, groups, err := c.next.Authenticate(ctx, token)
	switch {
	case err == nil:
		c.store(&authEntry{key: key, user: user, groups: slices.Clone(groups), expires: c.now().Add(c.ttl)})
	case errors.Is(err, ErrUnauthenticated) && c.failureTTL > 0:
		c.store(&authEntry{key: key, err: err, expires: c.now().Add(c.failureTTL)})
	}
	return user, groups, err
}

func (c *CachingAuthenticator) lookup(key [sha256.Size]byte) (*authEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*authEntry)
	if !c.now().Before(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, key)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e, true
}

func (c *CachingAuthenticator) store(e *authEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*authEntry).key)
	}
	c.entries[e.key] = c.lru.PushFront(e)
}

// Len is the number of answers held.
func (c *CachingAuthenticator) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
