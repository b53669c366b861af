package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
)

// CookieName is the web session cookie.
const CookieName = "relais_session"

// Authenticator checks an address and password (internal/authn.Authenticator,
// the one IMAP, SMTP and the APIs use). Errors wrapping authn.ErrThrottled
// mean the client must wait; authn.ErrBadCredentials, a wrong pair.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string, remote net.Addr) (storage.Account, error)
}

// waiter is the optional part of an Authenticator that tells how long a
// throttled client must wait (authn.Authenticator has it).
type waiter interface {
	Wait(username string, remote net.Addr) time.Duration
}

// SessionConfig tunes Sessions; zero values take the defaults.
type SessionConfig struct {
	Auth Authenticator
	// Idle ends a session unused for this long: 2 h.
	Idle time.Duration
	// Lifetime ends any session this long after login: 12 h (a shift).
	Lifetime time.Duration
	// MaxSessions bounds the sessions kept in memory: 100,000; the oldest
	// go first. PerAccount bounds one account's: 20.
	MaxSessions, PerAccount int
	// Origins are extra origins ("https://relais.example:8443") allowed
	// besides the request's own (scheme://Host), e.g. behind a proxy.
	Origins []string
	Logger  *slog.Logger
	Now     func() time.Time // for tests
}

// Sessions keeps the web sessions in memory. A restart logs everybody out;
// several nodes behind one name will need the sessions in storage (the
// token hash as key, the same fields): that is the only change.
type Sessions struct {
	cfg     SessionConfig
	log     *slog.Logger
	origins map[string]bool

	mu        sync.Mutex
	byHash    map[[32]byte]*session
	byAccount map[storage.AccountID]map[[32]byte]*session
	lastSweep time.Time
}

type session struct {
	hash     [32]byte
	account  storage.Account // PasswordHash cleared
	created  time.Time
	lastSeen time.Time
}

// NewSessions returns an empty session store authenticating with cfg.Auth.
func NewSessions(cfg SessionConfig) *Sessions {
	if cfg.Idle <= 0 {
		cfg.Idle = 2 * time.Hour
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 12 * time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 100000
	}
	if cfg.PerAccount <= 0 {
		cfg.PerAccount = 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sessions{cfg: cfg, log: log, origins: map[string]bool{},
		byHash: map[[32]byte]*session{}, byAccount: map[storage.AccountID]map[[32]byte]*session{}}
	for _, o := range cfg.Origins {
		s.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return s
}

// Account returns the account of the request's session cookie, when the
// cookie names a live session AND the request comes from this origin (the
// Origin header, else the Fetch Metadata Sec-Fetch-Site header; a state-
// changing request without either is refused). The chat server calls it
// for its REST endpoints and the WebSocket upgrade, so that a page of the
// same site on another port (which SameSite=Strict does not stop) cannot
// act with the user's cookie.
func (s *Sessions) Account(r *http.Request) (storage.Account, bool) {
	if !s.SameOrigin(r) {
		return storage.Account{}, false
	}
	return s.lookup(r)
}

func (s *Sessions) lookup(r *http.Request) (storage.Account, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return storage.Account{}, false
	}
	h, ok := tokenHash(c.Value)
	if !ok {
		return storage.Account{}, false
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.byHash[h]
	if sess == nil {
		return storage.Account{}, false
	}
	if s.expired(sess, now) {
		s.remove(sess)
		return storage.Account{}, false
	}
	sess.lastSeen = now
	return sess.account, true
}

// SameOrigin reports whether r comes from a page of this origin, following
// the Fetch standard's request headers: Origin (RFC 6454 7, serialised per
// RFC 6454 6.1) must equal scheme://Host or a configured origin; without
// Origin, Sec-Fetch-Site (W3C Fetch Metadata 2.1) must be "same-origin" or
// "none" (typed by the user); a request carrying neither is accepted only
// for safe methods (RFC 9110 9.2.1), which browsers send without Origin on
// same-origin navigation and fetch.
func (s *Sessions) SameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return s.allowedOrigin(r, o)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default: // same-site, cross-site
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

func (s *Sessions) allowedOrigin(r *http.Request, origin string) bool {
	origin = strings.ToLower(origin)
	if s.origins[origin] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return false // includes the opaque origin "null"
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && u.Host == strings.ToLower(r.Host)
}

func (s *Sessions) expired(sess *session, now time.Time) bool {
	return now.Sub(sess.lastSeen) >= s.cfg.Idle || now.Sub(sess.created) >= s.cfg.Lifetime
}

// remove drops sess; s.mu held.
func (s *Sessions) remove(sess *session) {
	delete(s.byHash, sess.hash)
	if m := s.byAccount[sess.account.ID]; m != nil {
		delete(m, sess.hash)
		if len(m) == 0 {
			delete(s.byAccount, sess.account.ID)
		}
	}
}

// create stores a new session for acct and returns its token.
func (s *Sessions) create(acct storage.Account) string {
	var raw [32]byte
	rand.Read(raw[:]) // never fails (crypto/rand, Go 1.24+)
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	acct.PasswordHash = ""
	now := s.cfg.Now()
	sess := &session{hash: sha256.Sum256(raw[:]), account: acct, created: now, lastSeen: now}

	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) > time.Minute || len(s.byHash) >= s.cfg.MaxSessions {
		s.sweep(now)
	}
	for len(s.byHash) >= s.cfg.MaxSessions {
		s.remove(s.oldest(s.byHash))
	}
	mine := s.byAccount[acct.ID]
	for len(mine) >= s.cfg.PerAccount {
		s.remove(s.oldest(mine))
	}
	if mine == nil {
		mine = map[[32]byte]*session{}
		s.byAccount[acct.ID] = mine
	}
	s.byHash[sess.hash] = sess
	mine[sess.hash] = sess
	return token
}

// sweep removes expired sessions; s.mu held.
func (s *Sessions) sweep(now time.Time) {
	s.lastSweep = now
	for _, sess := range s.byHash {
		if s.expired(sess, now) {
			s.remove(sess)
		}
	}
}

func (s *Sessions) oldest(m map[[32]byte]*session) *session {
	var old *session
	for _, sess := range m {
		if old == nil || sess.created.Before(old.created) {
			old = sess
		}
	}
	return old
}

// Revoke ends every session of an account (password changed, account
// removed) and returns how many there were.
func (s *Sessions) Revoke(acct storage.AccountID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byAccount[acct]
	n := len(m)
	for _, sess := range m {
		s.remove(sess)
	}
	return n
}

// Len is the number of sessions kept (expired ones included until swept).
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byHash)
}

// tokenHash decodes a cookie value; only the SHA-256 of the token is kept,
// so that the map holds nothing a memory dump could replay.
func tokenHash(v string) ([32]byte, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) != 32 {
		return [32]byte{}, false
	}
	return sha256.Sum256(raw), true
}

// maxLoginBody bounds the login form.
const maxLoginBody = 4 << 10

// handleLogin serves POST /login: an HTML form post (303 to the app, or
// back to the login page with ?error=) or, with Accept: application/json,
// a JSON answer for the app's script ({"id","address","name"} or
// {"error": code, "message"}).
func (s *Sessions) handleLogin(w http.ResponseWriter, r *http.Request) {
	wantJSON := strings.Contains(r.Header.Get("Accept"), "application/json")
	fail := func(status int, code, msg string) {
		if wantJSON {
			writeError(w, status, code, msg)
			return
		}
		http.Redirect(w, r, AppPath+"?error="+url.QueryEscape(code), http.StatusSeeOther)
	}
	// Login CSRF: a form posted from another site could log the victim in
	// as the attacker.
	if !s.SameOrigin(r) {
		s.log.Info("web login refused: foreign origin", "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "forbidden", "cross-origin request refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "bad_request", "invalid form")
		return
	}
	user, pass := strings.TrimSpace(r.PostForm.Get("address")), r.PostForm.Get("password")
	if user == "" || pass == "" || !utf8.ValidString(user) || !utf8.ValidString(pass) || len(user) > 320 || len(pass) > 1024 {
		fail(http.StatusBadRequest, "bad_credentials", "address and password required")
		return
	}
	remote := remoteAddr(r)
	acct, err := s.cfg.Auth.Authenticate(r.Context(), user, pass, remote)
	switch {
	case err == nil:
	case errors.Is(err, authn.ErrThrottled):
		wait := time.Minute
		if wt, ok := s.cfg.Auth.(waiter); ok {
			if d := wt.Wait(user, remote); d > 0 {
				wait = d
			}
		}
		s.log.Info("web login throttled", "remote", r.RemoteAddr)
		// RFC 6585 4 and RFC 9110 10.2.3.
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		fail(http.StatusTooManyRequests, "throttled", "too many failed logins, retry later")
		return
	case errors.Is(err, authn.ErrBadCredentials):
		s.log.Info("web login failed", "remote", r.RemoteAddr)
		fail(http.StatusUnauthorized, "bad_credentials", "wrong address or password")
		return
	default:
		ref := correlationID()
		s.log.Error("web login error", "err", err, "remote", r.RemoteAddr, "correlation_id", ref)
		fail(http.StatusInternalServerError, "internal", "internal error, reference "+ref)
		return
	}
	token := s.create(acct)
	// RFC 6265bis 4.1.2: Secure, HttpOnly, SameSite=Strict; a session
	// cookie (no Max-Age): the server side expires it.
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	s.log.Info("web login", "account", acct.ID, "remote", r.RemoteAddr)
	if wantJSON {
		writeJSON(w, http.StatusOK, me{ID: acct.ID, Address: acct.Address, Name: acct.Name})
		return
	}
	http.Redirect(w, r, AppPath, http.StatusSeeOther)
}

// handleLogout serves POST /logout: the session ends, the cookie is
// cleared; 204 for the script, 303 to the login page for a form.
func (s *Sessions) handleLogout(w http.ResponseWriter, r *http.Request) {
	if !s.SameOrigin(r) {
		writeError(w, http.StatusForbidden, "forbidden", "cross-origin request refused")
		return
	}
	if c, err := r.Cookie(CookieName); err == nil {
		if h, ok := tokenHash(c.Value); ok {
			s.mu.Lock()
			if sess := s.byHash[h]; sess != nil {
				s.remove(sess)
			}
			s.mu.Unlock()
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, AppPath, http.StatusSeeOther)
}

// me is GET /api/v1/session's answer.
type me struct {
	ID      storage.AccountID `json:"id,omitempty"`
	Address string            `json:"address"`
	Name    string            `json:"name,omitempty"`
}

// handleMe serves GET /api/v1/session: who is logged in, 401 otherwise.
func (s *Sessions) handleMe(w http.ResponseWriter, r *http.Request) {
	acct, ok := s.Account(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "unauthenticated", "no session")
		return
	}
	writeJSON(w, http.StatusOK, me{ID: acct.ID, Address: acct.Address, Name: acct.Name})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	// The chat API's error shape (chat/PROTOCOL.md 4).
	writeJSON(w, status, struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, msg})
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
