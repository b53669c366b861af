package main

import (
	"html/template"
	"log/slog"
	"net/http"

	"github.com/relais-mssante/relais/chat"
	"github.com/relais-mssante/relais/chat/web"
	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/directory/dirapi"
	"github.com/relais-mssante/relais/directory/fhir"
	"github.com/relais-mssante/relais/document"
	"github.com/relais-mssante/relais/internal/httpauth"
	"github.com/relais-mssante/relais/smtp/docapi"
	"github.com/relais-mssante/relais/smtp/statusapi"
)

// httpStore is what the HTTPS front ends read.
type httpStore interface {
	dirapi.Directory
	fhir.Directory
	statusapi.Statuses
	docapi.Store
}

// httpHandler serves the HTTPS front page (how to connect a mail client),
// the CA certificate to import, a health check, and, behind Basic
// authentication with the user's Relais credentials, the directory's JSON
// API (/api/v1/directory/), its FHIR R4 API (/fhir/) and the delivery
// status of sent messages (/api/v1/messages/); the documents API for
// hospital software (/api/v1/documents, /api/v1/openapi.json, its own
// authentication); the CRLs under /pki/. The
// web app mounts here too.
func httpHandler(cfg Config, ca *pki.Authority, st httpStore, auth httpauth.Authenticator, sender docapi.Sender, webApp, webDocs, chatAPI http.Handler, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	// The chat web app and its sessions (chat/web), the chat's WebSocket
	// and REST API (chat).
	for _, p := range []string{web.AppPath, web.LoginPath, web.LogoutPath, web.SessionPath} {
		mux.Handle(p, webApp)
	}
	mux.Handle(web.DocumentPath, webDocs)
	mux.Handle(chat.WebSocketPath, chatAPI)
	mux.Handle(chat.APIPrefix, chatAPI)
	mw := httpauth.New(auth, httpauth.Options{Logger: log})
	mux.Handle(dirapi.Prefix, mw.Wrap(dirapi.Handler(st, log.With("api", "directory"))))
	mux.Handle(fhir.Prefix+"/", mw.Wrap(fhir.Handler(st, log.With("api", "fhir"))))
	mux.Handle(statusapi.Prefix, mw.Wrap(statusapi.Handler(st, log.With("api", "status"))))
	// The documents API authenticates itself (API token or client
	// certificate: hospital software, not a person).
	docs := docapi.Handler(docapi.Config{Store: st, Sender: sender, Build: document.Build, Hostname: cfg.Hostname, Logger: log.With("api", "documents")})
	mux.Handle(docapi.Prefix, docs)
	mux.Handle(docapi.Prefix+"/", docs)
	mux.Handle(docapi.OpenAPIPath, docs)
	// CRLs and CA certificates are public (RFC 5280 4.2.1.13).
	mux.Handle("/pki/", ca.Handler())
	caPEM := ca.RootPEM()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /ca.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Disposition", `attachment; filename="relais-ca.pem"`)
		w.Write(caPEM)
	})
	// The web app is the home page; how to connect a mail client moves to
	// /connect.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, web.AppPath, http.StatusFound)
	})
	mux.HandleFunc("GET /connect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if err := frontPage.Execute(w, cfg); err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	})
	return securityHeaders(mux)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

var frontPage = template.Must(template.New("front").Parse(`<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Relais</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em;line-height:1.5}code{background:#f3f3f3;padding:0 .2em}</style>
</head><body>
<h1>Relais</h1>
<p>Messagerie sécurisée de santé — secure health messaging.</p>
<h2>Connecter un client de messagerie / Connect a mail client</h2>
<ul>
<li>IMAP: <code>{{.Hostname}}</code>, {{.Listen.IMAPS}} (SSL/TLS) or {{.Listen.IMAP}} (STARTTLS)</li>
<li>SMTP: <code>{{.Hostname}}</code>, {{.Listen.Submissions}} (SSL/TLS) or {{.Listen.Submission}} (STARTTLS)</li>
<li>Identifiant / user name: your full address; mot de passe / password: normal password</li>
<li>Certificate authority to trust: <a href="/ca.pem">ca.pem</a></li>
</ul>
<h2>Annuaire / Address book</h2>
<ul>
<li>LDAP: <code>{{.Hostname}}</code>, {{.Listen.LDAPS}} (SSL/TLS) or {{.Listen.LDAP}} (StartTLS), base DN <code>{{.Directory.LDAPBase}}</code>, bind with your address and password</li>
<li>API: <code>/api/v1/directory/search?q=…</code>, FHIR R4: <code>/fhir/Practitioner?name=…</code> (HTTP Basic, your address and password)</li>
</ul>
</body></html>
`))
