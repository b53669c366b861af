// Package web serves the chat's web app and the web sessions it logs in
// with.
//
// The app is plain HTML, CSS and JavaScript modules (no build step),
// embedded in the binary and served under AppPath with a strict Content
// Security Policy (CSP Level 3: no inline script or style, connections to
// this origin only). Labels are French and English (the browser's language
// picks, French by default).
//
// Sessions: POST /login checks the address and password with the same
// authenticator as IMAP and SMTP and sets the relais_session cookie (32
// random bytes, HttpOnly, Secure, SameSite=Strict, Path=/; RFC 6265bis
// 4.1.2); POST /logout ends it; GET /api/v1/session says who is logged in.
// Sessions live in memory (see Sessions). Every use of the cookie also
// checks the request's Origin (RFC 6454) or Sec-Fetch-Site (W3C Fetch
// Metadata): SameSite=Strict alone lets a page of the same site on another
// port through.
//
// The realtime part (WebSocket /chat/ws and /api/v1/chat/...) is package
// chat's, which asks (*Sessions).Account who a request is.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// AppPath is where the app is served; LoginPath and LogoutPath take the
// session forms; SessionPath answers who is logged in.
const (
	AppPath     = "/chat/"
	LoginPath   = "/login"
	LogoutPath  = "/logout"
	SessionPath = "/api/v1/session"
)

// CSP is the Content-Security-Policy of the app's pages (CSP Level 3):
// scripts and styles from this origin only, never inline; fetch and the
// WebSocket to this origin only ('self' covers wss: on the same host and
// port, CSP3 6.7.2.8); no frames, no plugins; forms post here only.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

//go:embed static
var static embed.FS

type asset struct {
	body  []byte
	ctype string
	etag  string
}

// assets are the embedded files with their ETag, computed once.
var assets = func() map[string]asset {
	m := map[string]asset{}
	fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js", ".mjs":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		m[strings.TrimPrefix(p, "static/")] = asset{body: b, ctype: ct, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return m
}()

// Handler serves the app under AppPath and the session endpoints. Mount it
// for AppPath, LoginPath, LogoutPath and SessionPath.
func Handler(s *Sessions) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+AppPath, serveAsset)
	mux.HandleFunc("POST "+LoginPath, s.handleLogin)
	mux.HandleFunc("POST "+LogoutPath, s.handleLogout)
	mux.HandleFunc("GET "+SessionPath, s.handleMe)
	return mux
}

// serveAsset serves an embedded file; the app's index for AppPath itself
// and for any path without an extension (the app routes with the hash, but
// a reload on a deep link still gets the app).
func serveAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, AppPath)
	if name == "" || path.Ext(name) == "" {
		name = "index.html"
	}
	a, ok := assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	// Revalidate every time (a new binary brings new files); the ETag
	// makes that a 304.
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", CSP)
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified) // RFC 9110 13.1.2
		return
	}
	w.Write(a.body)
}
