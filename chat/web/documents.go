package web

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// DocumentPath is where a received structured document opens: the link of
// the chat's document notifications (/documents/{id}).
const DocumentPath = "/documents/"

// DocumentStore reads a received document and the message that carries it,
// for its recipient only.
type DocumentStore interface {
	Document(ctx context.Context, acct storage.AccountID, id storage.DocumentID) (storage.DocumentRecord, error)
	RawMessage(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uid uint32) ([]byte, error)
}

// DocumentsHandler serves, to the logged-in recipient of a document, a
// page with what Relais read in it (patient, type, author, validity) and
// the message that carries it (message/rfc822, which a mail client or the
// hospital software opens, IHE_XDM.ZIP and PDF included). Anyone else gets
// the same 404 as for a missing document.
func DocumentsHandler(s *Sessions, st DocumentStore, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	get := func(w http.ResponseWriter, r *http.Request) (storage.DocumentRecord, storage.Account, bool) {
		acct, ok := s.Account(r)
		if !ok {
			http.Redirect(w, r, AppPath, http.StatusSeeOther)
			return storage.DocumentRecord{}, acct, false
		}
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			http.NotFound(w, r)
			return storage.DocumentRecord{}, acct, false
		}
		doc, err := st.Document(r.Context(), acct.ID, storage.DocumentID(id))
		if errors.Is(err, storage.ErrNotFound) {
			http.NotFound(w, r)
			return doc, acct, false
		}
		if err != nil {
			log.Error("reading a document", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return doc, acct, false
		}
		return doc, acct, true
	}
	mux.HandleFunc("GET "+DocumentPath+"{id}", func(w http.ResponseWriter, r *http.Request) {
		doc, _, ok := get(w, r)
		if !ok {
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", CSP)
		h.Set("Cache-Control", "no-store")
		if err := documentPage.Execute(w, struct {
			D        storage.DocumentRecord
			Received string
		}{doc, doc.Received.Local().Format(time.DateTime)}); err != nil {
			log.Warn("document page", "err", err)
		}
	})
	mux.HandleFunc("GET "+DocumentPath+"{id}/message.eml", func(w http.ResponseWriter, r *http.Request) {
		doc, acct, ok := get(w, r)
		if !ok {
			return
		}
		raw, err := st.RawMessage(r.Context(), acct.ID, doc.Mailbox, doc.UID)
		if errors.Is(err, storage.ErrNotFound) {
			http.Error(w, "the message carrying this document was deleted", http.StatusGone)
			return
		}
		if err != nil {
			log.Error("reading a document's message", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "message/rfc822")
		h.Set("Content-Disposition", `attachment; filename="document-`+r.PathValue("id")+`.eml"`)
		h.Set("Cache-Control", "no-store")
		w.Write(raw)
	})
	return mux
}

var documentPage = template.Must(template.New("doc").Parse(`<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>{{.D.Title}} — Relais</title>
<link rel="stylesheet" href="/chat/style.css"></head>
<body class="document-page"><main class="document">
<h1>{{.D.Title}}</h1>
<p>{{if .D.Valid}}Document valide / valid document{{else}}Document non intégrable / cannot be integrated: {{.D.Problems}}{{end}}</p>
<dl>
<dt>Patient</dt><dd>{{.D.PatientName}}{{if .D.PatientINS}} — INS {{.D.PatientINS}} ({{.D.INSKind}}){{end}}</dd>
<dt>Type</dt><dd>{{.D.TypeDisplay}} ({{.D.TypeCode}})</dd>
<dt>Auteur / author</dt><dd>{{.D.AuthorName}}{{if .D.AuthorID}} — {{.D.AuthorID}}{{end}}</dd>
<dt>Établissement / custodian</dt><dd>{{.D.Custodian}}</dd>
<dt>Reçu / received</dt><dd>{{.Received}} — {{.D.Recipient}}</dd>
<dt>Message</dt><dd>{{.D.MessageID}}</dd>
</dl>
<p><a href="{{.D.ID}}/message.eml">Ouvrir le message (IHE_XDM.ZIP, PDF) / open the message</a> · <a href="/chat/">Relais</a></p>
</main></body></html>
`))
