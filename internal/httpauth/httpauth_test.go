package httpauth

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

var cheap = authn.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// counting passes every call to the real authenticator and counts them, to
// see what the cache saves.
type counting struct {
	*authn.Authenticator
	calls atomic.Int64
}

func (c *counting) Authenticate(ctx context.Context, u, p string, remote net.Addr) (storage.Account, error) {
	c.calls.Add(1)
	return c.Authenticator.Authenticate(ctx, u, p, remote)
}

type fixture struct {
	srv   *httptest.Server
	auth  *counting
	mw    *Middleware
	clock *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newFixture(t *testing.T, throttle *authn.Throttle, opts Options) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	_, err = st.AddDomain(ctx, "clinique-exemple.test")
	require.NoError(t, err)
	for _, u := range []string{"alice", "bob", "carol"} {
		h, err := authn.HashPassword("secret-"+u, cheap)
		require.NoError(t, err)
		_, err = st.CreateAccount(ctx, u+"@clinique-exemple.test", u, h)
		require.NoError(t, err)
	}
	f := &fixture{auth: &counting{Authenticator: authn.New(st, throttle)}, clock: &clock{t: time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)}}
	opts.Now = f.clock.Now
	f.mw = New(f.auth, opts)
	f.srv = httptest.NewTLSServer(f.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acct, ok := Account(r.Context())
		if !ok {
			http.Error(w, "no account in context", 500)
			return
		}
		assert.Empty(t, acct.PasswordHash, "the hash must not travel downstream")
		io.WriteString(w, acct.Address)
	})))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) get(t *testing.T, user, pass string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", f.srv.URL+"/x", nil)
	require.NoError(t, err)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestChallengeAndSuccess(t *testing.T) {
	f := newFixture(t, nil, Options{})
	resp, _ := f.get(t, "", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, `Basic realm="Relais", charset="UTF-8"`, resp.Header.Get("WWW-Authenticate"))
	assert.Equal(t, int64(0), f.auth.calls.Load(), "no credentials: no verification")

	resp, _ = f.get(t, "alice@clinique-exemple.test", "wrong")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))

	resp, _ = f.get(t, "nobody@clinique-exemple.test", "secret-alice")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp, body := f.get(t, "alice@clinique-exemple.test", "secret-alice")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "alice@clinique-exemple.test", body)

	resp, _ = f.get(t, "alice@clinique-exemple.test", "\xff\xfe")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "invalid UTF-8")
}

func TestCacheSavesVerificationsAndExpires(t *testing.T) {
	f := newFixture(t, nil, Options{TTL: time.Minute})
	for range 5 {
		resp, _ := f.get(t, "bob@clinique-exemple.test", "secret-bob")
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Equal(t, int64(1), f.auth.calls.Load(), "one argon2 verification for five requests")

	// A wrong password for a cached user is still verified (and refused).
	resp, _ := f.get(t, "bob@clinique-exemple.test", "secret-bob-not")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, int64(2), f.auth.calls.Load())

	f.clock.Add(time.Minute)
	resp, _ = f.get(t, "bob@clinique-exemple.test", "secret-bob")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(3), f.auth.calls.Load(), "expired entries are verified again")
}

func TestCacheIsBounded(t *testing.T) {
	f := newFixture(t, nil, Options{MaxEntries: 2})
	for _, u := range []string{"alice", "bob", "carol"} {
		resp, _ := f.get(t, u+"@clinique-exemple.test", "secret-"+u)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Equal(t, 2, f.mw.cached())
	// alice, the oldest, was evicted; carol is still cached.
	f.get(t, "carol@clinique-exemple.test", "secret-carol")
	assert.Equal(t, int64(3), f.auth.calls.Load())
	f.get(t, "alice@clinique-exemple.test", "secret-alice")
	assert.Equal(t, int64(4), f.auth.calls.Load())
	assert.Equal(t, 2, f.mw.cached())
}

func TestThrottledGets429(t *testing.T) {
	th := authn.NewThrottle()
	th.Free = 1
	th.Base = 30 * time.Second
	f := newFixture(t, th, Options{})
	for range 2 {
		f.get(t, "carol@clinique-exemple.test", "bad")
	}
	resp, _ := f.get(t, "carol@clinique-exemple.test", "secret-carol")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	assert.True(t, secs >= 1 && secs <= 30, "Retry-After %d", secs)
}

func TestCacheKeyBindsUserAndPassword(t *testing.T) {
	m := New(nil, Options{})
	assert.NotEqual(t, m.cacheKey("a", "b\x00c"), m.cacheKey("a\x00b", "c"))
	assert.NotEqual(t, m.cacheKey("a", "b"), m.cacheKey("a", "c"))
	assert.Equal(t, m.cacheKey("a", "b"), m.cacheKey("a", "b"))
	assert.NotEqual(t, New(nil, Options{}).cacheKey("a", "b"), m.cacheKey("a", "b"), "per-process key")
}
