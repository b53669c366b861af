// Package httpauth authenticates HTTP requests with the Basic scheme
// (RFC 7617) against Relais accounts, for the JSON and FHIR APIs.
//
// Verifying an argon2id hash costs tens of MiB and about 100 ms, too much
// for every request of an API client, so successful verifications are
// cached for a few minutes. The cache key is an HMAC-SHA256, under a key
// drawn at start-up, of the user name's length, the user name, NUL and the password: the password itself is
// never kept, and the key dies with the process. A changed or removed
// account keeps working through the cache for at most TTL.
package httpauth

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
)

// Authenticator checks a user name and password (internal/authn.Authenticator).
// It returns an error wrapping authn.ErrThrottled when the client must wait.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string, remote net.Addr) (storage.Account, error)
}

// waiter is the optional part of an Authenticator that tells how long a
// throttled client must wait (authn.Authenticator has it).
type waiter interface {
	Wait(username string, remote net.Addr) time.Duration
}

// Options tune the middleware; zero values take the defaults.
type Options struct {
	Realm      string        // "Relais"
	TTL        time.Duration // how long a verified password is trusted: 5 min
	MaxEntries int           // cache bound: 10,000
	Logger     *slog.Logger
	Now        func() time.Time // for tests
}

// Middleware requires HTTP Basic authentication.
type Middleware struct {
	auth  Authenticator
	opts  Options
	log   *slog.Logger
	key   [32]byte
	mu    sync.Mutex
	cache map[[32]byte]*list.Element
	order *list.List // of *entry, oldest first
}

type entry struct {
	key     [32]byte
	account storage.Account
	expires time.Time
}

// New returns a middleware over auth.
func New(auth Authenticator, opts Options) *Middleware {
	if opts.Realm == "" {
		opts.Realm = "Relais"
	}
	if opts.TTL <= 0 {
		opts.TTL = 5 * time.Minute
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Middleware{auth: auth, opts: opts, log: log, cache: make(map[[32]byte]*list.Element), order: list.New()}
	rand.Read(m.key[:]) // never fails (crypto/rand, Go 1.24+)
	return m
}

type ctxKey struct{}

// Account returns the account a request was authenticated as.
func Account(ctx context.Context) (storage.Account, bool) {
	a, ok := ctx.Value(ctxKey{}).(storage.Account)
	return a, ok
}

// WithAccount returns ctx carrying acct, as the middleware does; for
// callers that authenticate by other means (client certificates).
func WithAccount(ctx context.Context, acct storage.Account) context.Context {
	return context.WithValue(ctx, ctxKey{}, acct)
}

// Wrap returns h behind Basic authentication: 401 with a challenge when
// credentials are missing or wrong, 429 with Retry-After when the
// authenticator throttles the client, 500 when it fails otherwise.
func (m *Middleware) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		// RFC 7617 2.1: with charset="UTF-8" both parts are UTF-8; a
		// colon cannot be in the user-id (BasicAuth splits at the first).
		if !ok || user == "" || !utf8.ValidString(user) || !utf8.ValidString(pass) {
			m.challenge(w)
			return
		}
		acct, err := m.authenticate(r.Context(), user, pass, remoteAddr(r))
		switch {
		case err == nil:
			h.ServeHTTP(w, r.WithContext(WithAccount(r.Context(), acct)))
		case errors.Is(err, authn.ErrThrottled):
			wait := time.Minute
			if wt, ok := m.auth.(waiter); ok {
				if d := wt.Wait(user, remoteAddr(r)); d > 0 {
					wait = d
				}
			}
			secs := int((wait + time.Second - 1) / time.Second)
			m.log.Info("http auth throttled", "remote", r.RemoteAddr, "retry_after_s", secs)
			// RFC 6585 4: 429 Too Many Requests, with Retry-After (RFC 9110 10.2.3).
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			plain(w, http.StatusTooManyRequests, "too many failed logins, retry later\n")
		case errors.Is(err, authn.ErrBadCredentials):
			m.log.Info("http auth failed", "remote", r.RemoteAddr)
			m.challenge(w)
		default:
			id := correlationID()
			m.log.Error("http auth error", "err", err, "remote", r.RemoteAddr, "correlation_id", id)
			plain(w, http.StatusInternalServerError, "internal error, reference "+id+"\n")
		}
	})
}

// challenge answers 401 with the RFC 7617 2 challenge and its charset
// parameter (RFC 7617 2.1).
func (m *Middleware) challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+m.opts.Realm+`", charset="UTF-8"`)
	plain(w, http.StatusUnauthorized, "authentication required\n")
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(msg))
}

func (m *Middleware) authenticate(ctx context.Context, user, pass string, remote net.Addr) (storage.Account, error) {
	k := m.cacheKey(user, pass)
	now := m.opts.Now()
	if acct, ok := m.lookup(k, now); ok {
		return acct, nil
	}
	acct, err := m.auth.Authenticate(ctx, user, pass, remote)
	if err != nil {
		return storage.Account{}, err
	}
	acct.PasswordHash = "" // not needed downstream; keep no copy in memory
	m.store(k, acct, now.Add(m.opts.TTL))
	return acct, nil
}

func (m *Middleware) cacheKey(user, pass string) [32]byte {
	mac := hmac.New(sha256.New, m.key[:])
	// The user name's length first, so that a NUL inside it cannot make
	// two different pairs collide.
	mac.Write(binary.BigEndian.AppendUint64(nil, uint64(len(user))))
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(pass))
	var k [32]byte
	mac.Sum(k[:0])
	return k
}

func (m *Middleware) lookup(k [32]byte, now time.Time) (storage.Account, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.cache[k]
	if !ok {
		return storage.Account{}, false
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		m.order.Remove(el)
		delete(m.cache, k)
		return storage.Account{}, false
	}
	return e.account, true
}

func (m *Middleware) store(k [32]byte, acct storage.Account, expires time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.cache[k]; ok {
		m.order.Remove(el)
		delete(m.cache, k)
	}
	// Evict the oldest entries (insertion order: the first to expire).
	for m.order.Len() >= m.opts.MaxEntries {
		old := m.order.Front()
		m.order.Remove(old)
		delete(m.cache, old.Value.(*entry).key)
	}
	m.cache[k] = m.order.PushBack(&entry{key: k, account: acct, expires: expires})
}

// cached reports the number of cached verifications (tests).
func (m *Middleware) cached() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.cache)
}

// remoteAddr turns http.Request.RemoteAddr into a net.Addr for throttling.
func remoteAddr(r *http.Request) net.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return &net.TCPAddr{}
}

func correlationID() string {
	var b [6]byte
	rand.Read(b[:])
	const hex = "0123456789abcdef"
	out := make([]byte, 12)
	for i, c := range b {
		out[2*i], out[2*i+1] = hex[c>>4], hex[c&15]
	}
	return string(out)
}
