package web

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

const (
	alice    = "alice.dupont@demo.mssante.test"
	alicePwd = "correct horse battery staple"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if store != nil {
		store.Close()
	}
	if storeDir != "" {
		os.RemoveAll(storeDir)
	}
	os.Exit(code)
}

var (
	storeOnce sync.Once
	store     *sqlite.Store
	storeErr  error
	storeDir  string
)

// realStore is one SQLite store with alice for the whole test binary (the
// argon2id hash is slow to make).
func realStore(t *testing.T) *sqlite.Store {
	t.Helper()
	storeOnce.Do(func() {
		storeDir, storeErr = os.MkdirTemp("", "relais-web-")
		if storeErr != nil {
			return
		}
		store, storeErr = sqlite.Open(filepath.Join(storeDir, "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
		if storeErr != nil {
			return
		}
		ctx := context.Background()
		if _, storeErr = store.AddDomain(ctx, "demo.mssante.test"); storeErr != nil {
			return
		}
		hash, err := authn.HashPassword(alicePwd, authn.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
		if err != nil {
			storeErr = err
			return
		}
		_, storeErr = store.CreateAccount(ctx, alice, "Alice DUPONT", hash)
	})
	require.NoError(t, storeErr)
	return store
}

// server is the web handler over the real authenticator, behind TLS as in
// relais serve, plus a probe endpoint that reports Sessions.Account.
func server(t *testing.T, cfg SessionConfig) (*httptest.Server, *Sessions) {
	t.Helper()
	if cfg.Auth == nil {
		cfg.Auth = authn.New(realStore(t), nil)
	}
	s := NewSessions(cfg)
	mux := http.NewServeMux()
	h := Handler(s)
	mux.Handle(AppPath, h)
	mux.Handle(LoginPath, h)
	mux.Handle(LogoutPath, h)
	mux.Handle(SessionPath, h)
	mux.HandleFunc("/probe", func(w http.ResponseWriter, r *http.Request) {
		acct, ok := s.Account(r)
		if !ok {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, acct.Address)
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv, s
}

func client(t *testing.T, srv *httptest.Server) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func post(t *testing.T, c *http.Client, u string, form url.Values, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func get(t *testing.T, c *http.Client, u string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(b)
}

func TestLoginSetsAStrictCookieAndSessionWorks(t *testing.T) {
	srv, _ := server(t, SessionConfig{})
	c := client(t, srv)
	origin := map[string]string{"Origin": srv.URL}

	res := post(t, c, srv.URL+LoginPath, url.Values{"address": {alice}, "password": {alicePwd}}, origin)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, AppPath, res.Header.Get("Location"))
	var cookie *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == CookieName {
			cookie = ck
		}
	}
	require.NotNil(t, cookie)
	assert.True(t, cookie.HttpOnly)
	assert.True(t, cookie.Secure)
	assert.Equal(t, http.SameSiteStrictMode, cookie.SameSite)
	assert.Equal(t, "/", cookie.Path)
	assert.Len(t, cookie.Value, 43, "32 random bytes, base64url")

	// Same-origin fetch (no Origin on GET) and WebSocket-style requests.
	r, body := get(t, c, srv.URL+SessionPath, nil)
	require.Equal(t, http.StatusOK, r.StatusCode, body)
	var who me
	require.NoError(t, json.Unmarshal([]byte(body), &who))
	assert.Equal(t, alice, who.Address)
	assert.Equal(t, "Alice DUPONT", who.Name)
	assert.NotZero(t, who.ID)
	r, body = get(t, c, srv.URL+"/probe", origin)
	assert.Equal(t, http.StatusOK, r.StatusCode)
	assert.Equal(t, alice, body)

	// Logout ends it, server side too: the old cookie replayed is dead.
	res = post(t, c, srv.URL+LogoutPath, nil, origin)
	assert.Equal(t, http.StatusSeeOther, res.StatusCode)
	r, _ = get(t, c, srv.URL+SessionPath, nil)
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode)
	bare := srv.Client()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/probe", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: cookie.Value})
	r2, err := bare.Do(req)
	require.NoError(t, err)
	r2.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, r2.StatusCode)
}

func TestLoginJSONAndBadPassword(t *testing.T) {
	srv, s := server(t, SessionConfig{})
	c := client(t, srv)
	hdr := map[string]string{"Origin": srv.URL, "Accept": "application/json"}

	res := post(t, c, srv.URL+LoginPath, url.Values{"address": {alice}, "password": {"wrong"}}, hdr)
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
	var e struct{ Error, Message string }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&e))
	assert.Equal(t, "bad_credentials", e.Error)
	assert.Empty(t, res.Cookies())
	assert.Zero(t, s.Len())

	// The form (no JSON) goes back to the app with the error code.
	res = post(t, c, srv.URL+LoginPath, url.Values{"address": {alice}, "password": {"wrong"}}, map[string]string{"Origin": srv.URL})
	assert.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, AppPath+"?error=bad_credentials", res.Header.Get("Location"))

	res = post(t, c, srv.URL+LoginPath, url.Values{"address": {alice}, "password": {alicePwd}}, hdr)
	require.Equal(t, http.StatusOK, res.StatusCode)
	var who me
	require.NoError(t, json.NewDecoder(res.Body).Decode(&who))
	assert.Equal(t, alice, who.Address)
	assert.Equal(t, 1, s.Len())
}

// throttled always refuses, as authn does after too many failures.
type throttled struct{}

func (throttled) Authenticate(context.Context, string, string, net.Addr) (storage.Account, error) {
	return storage.Account{}, authn.ErrThrottled
}
func (throttled) Wait(string, net.Addr) time.Duration { return 90 * time.Second }

func TestLoginThrottled(t *testing.T) {
	srv, _ := server(t, SessionConfig{Auth: throttled{}})
	res := post(t, client(t, srv), srv.URL+LoginPath, url.Values{"address": {alice}, "password": {"x"}},
		map[string]string{"Origin": srv.URL, "Accept": "application/json"})
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	assert.Equal(t, "90", res.Header.Get("Retry-After"))
}

// TestForeignOriginsRefused: another port of the same host (same site,
// so SameSite=Strict sends the cookie), another site, a null origin, and a
// cross-site POST without Origin but with Fetch Metadata.
func TestForeignOriginsRefused(t *testing.T) {
	srv, _ := server(t, SessionConfig{})
	c := client(t, srv)
	res := post(t, c, srv.URL+LoginPath, url.Values{"address": {alice}, "password": {alicePwd}}, map[string]string{"Origin": srv.URL})
	require.Equal(t, http.StatusSeeOther, res.StatusCode)

	u, _ := url.Parse(srv.URL)
	host, port, _ := net.SplitHostPort(u.Host)
	otherPort := "https://" + net.JoinHostPort(host, "1"+port)
	for _, hdr := range []map[string]string{
		{"Origin": otherPort},
		{"Origin": "https://evil.example"},
		{"Origin": "null"},
		{"Origin": "http://" + u.Host}, // downgraded scheme
		{"Sec-Fetch-Site": "same-site"},
		{"Sec-Fetch-Site": "cross-site"},
	} {
		r, _ := get(t, c, srv.URL+"/probe", hdr)
		assert.Equal(t, http.StatusUnauthorized, r.StatusCode, "%v", hdr)
		res := post(t, c, srv.URL+LoginPath, url.Values{"address": {alice}, "password": {alicePwd}}, hdr)
		assert.Equal(t, http.StatusForbidden, res.StatusCode, "login CSRF %v", hdr)
		res = post(t, c, srv.URL+LogoutPath, nil, hdr)
		assert.Equal(t, http.StatusForbidden, res.StatusCode, "logout CSRF %v", hdr)
	}
	// A state-changing request with neither header: refused.
	res = post(t, c, srv.URL+LogoutPath, nil, nil)
	assert.Equal(t, http.StatusForbidden, res.StatusCode)
	// Still logged in after all that.
	r, body := get(t, c, srv.URL+"/probe", map[string]string{"Sec-Fetch-Site": "same-origin"})
	assert.Equal(t, http.StatusOK, r.StatusCode)
	assert.Equal(t, alice, body)
}

func TestConfiguredOrigin(t *testing.T) {
	srv, s := server(t, SessionConfig{Origins: []string{"https://relais.example:8443/"}})
	req := httptest.NewRequest(http.MethodPost, srv.URL+"/probe", nil)
	req.Header.Set("Origin", "https://relais.example:8443")
	assert.True(t, s.SameOrigin(req))
	req.Header.Set("Origin", "https://relais.example:9443")
	assert.False(t, s.SameOrigin(req))
}

func TestSessionExpiry(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := NewSessions(SessionConfig{Idle: time.Hour, Lifetime: 3 * time.Hour, PerAccount: 2, Now: clock})
	acct := storage.Account{ID: 7, Address: alice, PasswordHash: "secret"}
	req := func(token string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "https://relais.test/x", nil)
		r.AddCookie(&http.Cookie{Name: CookieName, Value: token})
		return r
	}
	tok := s.create(acct)
	got, ok := s.Account(req(tok))
	require.True(t, ok)
	assert.Empty(t, got.PasswordHash, "no hash kept in sessions")

	// Used every 50 minutes: alive until the 3 h lifetime.
	for range 3 {
		advance(50 * time.Minute)
		_, ok = s.Account(req(tok))
		assert.True(t, ok)
	}
	advance(31 * time.Minute)
	_, ok = s.Account(req(tok))
	assert.False(t, ok, "lifetime over")

	// Idle for an hour: gone.
	tok = s.create(acct)
	advance(time.Hour)
	_, ok = s.Account(req(tok))
	assert.False(t, ok, "idle")

	// Per-account bound: the oldest goes.
	t1 := s.create(acct)
	advance(time.Second)
	t2 := s.create(acct)
	advance(time.Second)
	t3 := s.create(acct)
	_, ok = s.Account(req(t1))
	assert.False(t, ok)
	_, ok = s.Account(req(t2))
	assert.True(t, ok)
	_, ok = s.Account(req(t3))
	assert.True(t, ok)

	assert.Equal(t, 2, s.Revoke(acct.ID))
	_, ok = s.Account(req(t3))
	assert.False(t, ok)

	// Garbage cookies.
	for _, v := range []string{"", "x", strings.Repeat("A", 43), strings.Repeat("é", 20)} {
		_, ok = s.Account(req(v))
		assert.False(t, ok, v)
	}
}

func TestAppServedWithCSP(t *testing.T) {
	srv, _ := server(t, SessionConfig{})
	c := client(t, srv)
	for path, ctype := range map[string]string{
		AppPath:                   "text/html",
		AppPath + "app.js":        "text/javascript",
		AppPath + "i18n.js":       "text/javascript",
		AppPath + "style.css":     "text/css",
		AppPath + "room/12":       "text/html", // deep link: the app
		AppPath + "connection.js": "text/javascript",
	} {
		r, body := get(t, c, srv.URL+path, nil)
		require.Equal(t, http.StatusOK, r.StatusCode, path)
		assert.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), ctype), path)
		assert.Equal(t, CSP, r.Header.Get("Content-Security-Policy"))
		assert.NotEmpty(t, body)
		etag := r.Header.Get("ETag")
		require.NotEmpty(t, etag)
		r, _ = get(t, c, srv.URL+path, map[string]string{"If-None-Match": etag})
		assert.Equal(t, http.StatusNotModified, r.StatusCode, path)
	}
	r, _ := get(t, c, srv.URL+AppPath+"nope.js", nil)
	assert.Equal(t, http.StatusNotFound, r.StatusCode)

	// CSP-friendly: no inline script, no inline style, no event handler
	// attributes anywhere in the page.
	_, page := get(t, c, srv.URL+AppPath, nil)
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		assert.Contains(t, tag, ` src="`, "inline script %s", tag)
	}
	assert.NotContains(t, page, "<style")
	assert.NotRegexp(t, `\son[a-z]+=`, page)
	assert.NotRegexp(t, `\sstyle=`, page)
}

func TestTLSOnlyCookieIsSecure(t *testing.T) {
	// Behind TLS the origin's scheme is https.
	srv, s := server(t, SessionConfig{})
	req := httptest.NewRequest(http.MethodPost, srv.URL+"/x", nil)
	req.TLS = &tls.ConnectionState{}
	u, _ := url.Parse(srv.URL)
	req.Host = u.Host
	req.Header.Set("Origin", srv.URL)
	assert.True(t, s.SameOrigin(req))
	req.TLS = nil
	assert.False(t, s.SameOrigin(req), "https origin on a plain request")
}

// TestDocumentPageCSP: the document page carries the app's CSP and no
// inline script or style.
func TestDocumentPageTemplateIsCSPClean(t *testing.T) {
	var b strings.Builder
	if err := documentPage.Execute(&b, struct {
		D        storage.DocumentRecord
		Received string
	}{storage.DocumentRecord{ID: 7, Title: "Lettre <b>x</b>"}, "now"}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, bad := range []string{"<script", "style=", "onclick", "<b>x</b>"} {
		if strings.Contains(out, bad) {
			t.Errorf("document page contains %q", bad)
		}
	}
}
