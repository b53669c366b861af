// Package docapi serves the documents API: hospital software (a DPI) posts
// a CDA document (and its PDF rendering) for some recipients; Relais builds
// the MSSanté mail (IHE XDM package, subject, X-MSS-* headers: package
// document), sends it through the normal submission pipeline (policy,
// signature, queue) and answers an id whose delivery status can be read
// back per recipient.
//
//	POST /api/v1/documents        JSON {"recipients", "cda", "pdf", "nil", "noReply"}
//	                              or multipart/form-data (recipients, cda, pdf, nil, noReply)
//	                              201 {"id", "messageId", "status"} and Location
//	GET  /api/v1/documents/{id}   {"id", "messageId", "created", "recipients": [{"recipient", "state", "detail", "updated"}]}
//	GET  /api/v1/openapi.json     the OpenAPI 3.1 description of the HTTP APIs (no authentication)
//
// Authentication (the API has its own, unlike the Basic-authenticated
// APIs): a bearer token (RFC 6750 2.1) issued with "relais admin token
// create", of which the store keeps only the SHA-256; or a TLS client
// certificate verified by the listener (an applicative mailbox certificate)
// whose rfc822Name names an account (RFC 5280 4.2.1.6). A bearer header
// wins over a certificate.
//
// Errors are {"error": {"code", "message", "reference"}}: 400 bad_request
// (malformed JSON, multipart or base64), 401 unauthorized (with
// WWW-Authenticate, RFC 6750 3), 404 not_found, 405 method_not_allowed,
// 413 too_large, 415 unsupported_media_type, 422 invalid_request (no
// recipient, a malformed address, no CDA), invalid_document (the CDA cannot
// be sent: package document says why) or refused (the pipeline's policy
// refused a recipient: outside the trust space, unknown local user), 500
// internal and 503 unavailable (only a reference, the correlation id of the
// server's log line). No reply carries a patient identifier the client did
// not send in this very request.
package docapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relais-mssante/relais/internal/jsonhttp"
	"github.com/relais-mssante/relais/storage"
)

const (
	// Prefix is where the documents endpoints live; OpenAPIPath where the
	// OpenAPI description is served. Mount Handler on both.
	Prefix      = "/api/v1/documents"
	OpenAPIPath = "/api/v1/openapi.json"
	// DefaultMaxBody bounds a request body (a CDA, its PDF and base64).
	DefaultMaxBody = 30 << 20
	// DefaultMaxRecipients bounds the recipients of one document.
	DefaultMaxRecipients = 100

	maxIDLen      = 64
	maxNIL        = 200
	maxFieldValue = 1024 // a multipart text field (recipients, nil, noReply)
	maxMessage    = 500  // an error message relayed from the pipeline
)

//go:embed openapi.json
var openAPI []byte

// Store is what the API reads and writes (storage.DocumentStore, the
// accounts and storage.QueueStore's delivery status).
type Store interface {
	APITokenByHash(ctx context.Context, hash string, now time.Time) (storage.APIToken, error)
	AccountByAddress(ctx context.Context, address string) (storage.Account, error)
	AddSentDocument(ctx context.Context, d storage.SentDocument) error
	SentDocument(ctx context.Context, acct storage.AccountID, id string) (storage.SentDocument, error)
	DeliveryStatuses(ctx context.Context, acct storage.AccountID, messageID string) ([]storage.DeliveryStatus, error)
}

// Sender submits a message as an account through the normal pipeline
// (policy, signature, queue, delivery status) and returns once it is
// committed. A refusal the client can act on is an error with a
// `Code() int` method giving the SMTP reply code (5xx: permanent), and
// optionally a `Message() string` method giving the text for the client
// (Error() otherwise).
type Sender interface {
	Send(ctx context.Context, from storage.Account, rcpts []string, msg []byte) error
}

// Config is the handler's collaborators.
type Config struct {
	Store  Store
	Sender Sender
	// Build makes the mail from the request (document.Build): the RFC 5322
	// message and its Message-ID (angle brackets optional).
	Build    func(req BuildRequest) ([]byte, string, error)
	Hostname string           // names this server in the built message
	Logger   *slog.Logger     // nil: slog.Default()
	Now      func() time.Time // nil: time.Now
	// MaxBody bounds a request body (DefaultMaxBody when 0); MaxRecipients
	// the recipients of one document (DefaultMaxRecipients when 0).
	MaxBody       int64
	MaxRecipients int
}

// SubmitRequest is the JSON body of POST /api/v1/documents. CDA and PDF are
// base64 (RFC 4648 4) in JSON.
type SubmitRequest struct {
	Recipients []string `json:"recipients"`
	CDA        []byte   `json:"cda"`
	PDF        []byte   `json:"pdf,omitempty"`
	NIL        string   `json:"nil,omitempty"`     // X-MSS-NIL: the sending software
	NoReply    bool     `json:"noReply,omitempty"` // X-MSS-MES: FIN, no answer expected
}

// Created is the answer to a successful POST.
type Created struct {
	ID        string `json:"id"`
	MessageID string `json:"messageId"`
	Status    string `json:"status"` // path of the status resource
}

// Recipient is one recipient's delivery status.
type Recipient struct {
	Recipient string    `json:"recipient"`
	State     string    `json:"state"` // queued, delayed, relayed, delivered, read, failed
	Detail    string    `json:"detail,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Status is the answer to GET /api/v1/documents/{id}.
type Status struct {
	ID         string      `json:"id"`
	MessageID  string      `json:"messageId"`
	Created    time.Time   `json:"created"`
	Recipients []Recipient `json:"recipients"`
}

type handler struct {
	cfg Config
	log *slog.Logger
}

// Handler serves the documents API and the OpenAPI description.
func Handler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	h := &handler{cfg: cfg, log: cfg.Logger.With(slog.String("api", "documents"))}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Prefix, h.submit)
	mux.HandleFunc("GET "+Prefix+"/{id}", h.status)
	mux.HandleFunc("GET "+OpenAPIPath, serveOpenAPI)
	// Anything else under these paths: a JSON 404 or 405, not the mux's
	// plain text.
	mux.HandleFunc(Prefix, methodNotAllowed("POST"))
	mux.HandleFunc(Prefix+"/{id}", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc(OpenAPIPath, methodNotAllowed("GET, HEAD"))
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.Error(w, http.StatusNotFound, "not_found", "no such resource", "")
	})
	return mux
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		jsonhttp.Error(w, http.StatusMethodNotAllowed, "method_not_allowed", "use "+allow, "")
	}
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPI)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(openAPI)
	}
}

// OpenAPI returns the embedded OpenAPI document.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

// challenge is the RFC 6750 3 WWW-Authenticate value; errCode is "" when
// the request carried no credentials (RFC 6750 3.1: no error code then).
func challenge(errCode, desc string) string {
	c := `Bearer realm="Relais"`
	if errCode != "" {
		c += `, error="` + errCode + `", error_description="` + desc + `"`
	}
	return c
}

// authenticate finds the account a request acts for, or answers 401 (or
// 500) and returns false.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request) (storage.Account, bool) {
	ctx := r.Context()
	unauthorized := func(errCode, desc string) (storage.Account, bool) {
		w.Header().Set("WWW-Authenticate", challenge(errCode, desc))
		msg := "authentication required: a bearer token or a client certificate"
		if errCode != "" {
			msg = desc
		}
		jsonhttp.Error(w, http.StatusUnauthorized, "unauthorized", msg, "")
		return storage.Account{}, false
	}
	if authz := r.Header.Get("Authorization"); authz != "" {
		// RFC 6750 2.1: credentials = "Bearer" 1*SP b64token; the scheme
		// is case-insensitive (RFC 9110 11.1).
		scheme, token, _ := strings.Cut(authz, " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > 512 {
			return unauthorized("invalid_request", "use the Bearer scheme")
		}
		sum := sha256.Sum256([]byte(token))
		tok, err := h.cfg.Store.APITokenByHash(ctx, hex.EncodeToString(sum[:]), h.cfg.Now())
		if errors.Is(err, storage.ErrNotFound) {
			h.log.Info("documents api: token refused", slog.String("remote", r.RemoteAddr))
			return unauthorized("invalid_token", "the token is unknown, revoked or expired")
		}
		if err != nil {
			h.internal(w, "reading a token", err)
			return storage.Account{}, false
		}
		acct, err := h.cfg.Store.AccountByAddress(ctx, tok.Address)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && acct.ID != tok.Account) {
			return unauthorized("invalid_token", "the token's account no longer exists")
		}
		if err != nil {
			h.internal(w, "reading a token's account", err)
			return storage.Account{}, false
		}
		return acct, true
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		// The listener verified the chain; the certificate names the
		// mailbox in its subjectAltName rfc822Name (RFC 5280 4.2.1.6).
		leaf := r.TLS.VerifiedChains[0][0]
		for _, addr := range leaf.EmailAddresses {
			acct, err := h.cfg.Store.AccountByAddress(ctx, addr)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				h.internal(w, "reading a certificate's account", err)
				return storage.Account{}, false
			}
			return acct, true
		}
		h.log.Info("documents api: certificate names no account", slog.String("remote", r.RemoteAddr))
		return unauthorized("invalid_token", "the client certificate names no account of this server")
	}
	return unauthorized("", "")
}

// apiError is a reply the client can act on.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *apiError {
	return &apiError{http.StatusUnprocessableEntity, "invalid_request", fmt.Sprintf(format, args...)}
}

// readRequest parses a JSON or multipart body within the size limit.
func (h *handler) readRequest(w http.ResponseWriter, r *http.Request) (SubmitRequest, *apiError) {
	var req SubmitRequest
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return req, &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json or multipart/form-data"}
	}
	tooLarge := func(err error) *apiError {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the request is over %d bytes", h.cfg.MaxBody)}
		}
		return nil
	}
	switch mt {
	case "application/json":
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return req, &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "JSON is UTF-8 (RFC 8259 8.1)"}
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			if e := tooLarge(err); e != nil {
				return req, e
			}
			return req, badRequest("malformed JSON: %s", jsonProblem(err))
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			if e := tooLarge(err); e != nil {
				return req, e
			}
			return req, badRequest("malformed JSON: data after the object")
		}
		return req, nil
	case "multipart/form-data":
		req, err := readMultipart(r)
		if err != nil {
			if e := tooLarge(err); e != nil {
				return req, e
			}
			var ae *apiError
			if errors.As(err, &ae) {
				return req, ae
			}
			return req, badRequest("malformed multipart/form-data")
		}
		return req, nil
	default:
		return req, &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json or multipart/form-data"}
	}
}

// jsonProblem says what is wrong with a JSON body without echoing it.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case strings.Contains(err.Error(), "base64"):
		return "cda and pdf are base64"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	}
	return "not a JSON object"
}

// readMultipart reads the form (RFC 7578) part by part: recipients
// (repeatable, or comma-separated), cda and pdf (files), nil, noReply.
func readMultipart(r *http.Request) (SubmitRequest, error) {
	var req SubmitRequest
	mr, err := r.MultipartReader()
	if err != nil {
		return req, err
	}
	seen := map[string]bool{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return req, nil
		}
		if err != nil {
			return req, err
		}
		name := p.FormName()
		if name != "recipients" && seen[name] {
			return req, badRequest("field %q given twice", name)
		}
		seen[name] = true
		switch name {
		case "cda", "pdf":
			b, err := io.ReadAll(p)
			if err != nil {
				return req, err
			}
			if name == "cda" {
				req.CDA = b
			} else {
				req.PDF = b
			}
		case "recipients", "nil", "noReply":
			b, err := io.ReadAll(io.LimitReader(p, maxFieldValue+1))
			if err != nil {
				return req, err
			}
			if len(b) > maxFieldValue {
				return req, badRequest("field %q is too long", name)
			}
			v := strings.TrimSpace(string(b))
			switch name {
			case "recipients":
				for _, a := range strings.Split(v, ",") {
					if a = strings.TrimSpace(a); a != "" {
						req.Recipients = append(req.Recipients, a)
					}
				}
			case "nil":
				req.NIL = v
			case "noReply":
				if req.NoReply, err = strconv.ParseBool(v); err != nil {
					return req, badRequest("noReply is true or false")
				}
			}
		default:
			return req, badRequest("unknown field %q", truncate(name, 64))
		}
		p.Close()
	}
}

// normRecipient checks an addr-spec (RFC 5321 4.1.2 Mailbox, without
// quoted local parts) and lower-cases its domain, as the store does.
func normRecipient(a string) (string, bool) {
	a = strings.TrimSpace(a)
	a = strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
	local, domain, ok := strings.Cut(a, "@")
	// RFC 5321 4.5.3.1.1-2: local part at most 64 octets, domain at most
	// 255; a path at most 256 (4.5.3.1.3).
	if !ok || local == "" || domain == "" || len(local) > 64 || len(domain) > 255 || len(a) > 254 ||
		strings.Contains(domain, "@") || !utf8.ValidString(a) {
		return "", false
	}
	for _, c := range a {
		if c <= ' ' || c == 0x7f || strings.ContainsRune(`<>()[]\,;:"`, c) {
			return "", false
		}
	}
	if strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", false
	}
	return local + "@" + strings.ToLower(domain), true
}

// validate checks the request and returns its recipients, normalised and
// without duplicates.
func (h *handler) validate(req *SubmitRequest) ([]string, *apiError) {
	if len(req.Recipients) == 0 {
		return nil, invalid("at least one recipient is required")
	}
	if len(req.Recipients) > h.cfg.MaxRecipients {
		return nil, invalid("at most %d recipients", h.cfg.MaxRecipients)
	}
	var rcpts []string
	seen := map[string]bool{}
	for i, a := range req.Recipients {
		n, ok := normRecipient(a)
		if !ok {
			return nil, invalid("recipient %d is not a mail address", i+1)
		}
		if key := strings.ToLower(n); !seen[key] {
			seen[key] = true
			rcpts = append(rcpts, n)
		}
	}
	if len(req.CDA) == 0 {
		return nil, invalid("cda is required")
	}
	if len(req.NIL) > maxNIL || strings.ContainsAny(req.NIL, "\r\n\x00") || !utf8.ValidString(req.NIL) {
		return nil, invalid("nil is one line of at most %d bytes", maxNIL)
	}
	return rcpts, nil
}

// build runs cfg.Build; a panic in it is a failed build, never a dead
// server (STYLE 7).
func (h *handler) build(req BuildRequest) (msg []byte, id string, err error) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("documents api: panic building a message", slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			msg, id, err = nil, "", errPanic
		}
	}()
	return h.cfg.Build(req)
}

var errPanic = errors.New("docapi: internal error while building the message")

func (h *handler) submit(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	req, aerr := h.readRequest(w, r)
	if aerr != nil {
		jsonhttp.Error(w, aerr.status, aerr.code, aerr.message, "")
		return
	}
	rcpts, aerr := h.validate(&req)
	if aerr != nil {
		jsonhttp.Error(w, aerr.status, aerr.code, aerr.message, "")
		return
	}
	now := h.cfg.Now()
	msg, msgID, err := h.build(BuildRequest{From: acct.Address, FromName: acct.Name, To: rcpts, CDA: req.CDA, PDF: req.PDF,
		NIL: req.NIL, NoReply: req.NoReply, Now: now, Hostname: h.cfg.Hostname})
	if errors.Is(err, errPanic) {
		h.internal(w, "building the message", err)
		return
	}
	if err != nil {
		// The client's own document: what is wrong with it, bounded. The
		// log line leaves the text out: it may name the patient.
		h.log.Info("documents api: document refused", slog.Int64("account", int64(acct.ID)))
		msg := strings.TrimPrefix(err.Error(), "document: build: ")
		jsonhttp.Error(w, http.StatusUnprocessableEntity, "invalid_document", truncate(msg, maxMessage), "")
		return
	}
	// RFC 5322 3.6.4: msg-id is "<" id-left "@" id-right ">"; the store
	// and the status API key on what is inside.
	msgID = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(msgID), "<"), ">")
	if err := h.cfg.Sender.Send(r.Context(), acct, rcpts, msg); err != nil {
		var coded interface {
			error
			Code() int
		}
		if errors.As(err, &coded) && coded.Code() >= 500 {
			h.log.Info("documents api: refused by the pipeline", slog.Int64("account", int64(acct.ID)),
				slog.String("message_id", msgID), slog.Int("code", coded.Code()), slog.String("err", err.Error()))
			text := coded.Error()
			if m, ok := coded.(interface{ Message() string }); ok && m.Message() != "" {
				text = m.Message() // the reply alone, without the internal cause
			}
			jsonhttp.Error(w, http.StatusUnprocessableEntity, "refused", truncate(text, maxMessage), "")
			return
		}
		ref := jsonhttp.Ref()
		h.log.Error("documents api: sending failed", slog.Int64("account", int64(acct.ID)), slog.String("message_id", msgID),
			slog.String("err", err.Error()), slog.String("correlation_id", ref))
		w.Header().Set("Retry-After", "60")
		jsonhttp.Error(w, http.StatusServiceUnavailable, "unavailable", "the document could not be sent now; try again later", ref)
		return
	}
	// The message is committed: record its public id. A clash of 120
	// random bits is not expected; retry anyway.
	var id string
	for range 3 {
		id = newID()
		err = h.cfg.Store.AddSentDocument(r.Context(), storage.SentDocument{ID: id, Account: acct.ID, MessageID: msgID,
			Recipients: rcpts, Created: now})
		if !errors.Is(err, storage.ErrExists) {
			break
		}
	}
	if err != nil {
		// Sent but not recorded: the status is still readable by
		// Message-ID through /api/v1/messages/{id}/status.
		ref := jsonhttp.Ref()
		h.log.Error("documents api: recording a sent document", slog.Int64("account", int64(acct.ID)),
			slog.String("message_id", msgID), slog.String("err", err.Error()), slog.String("correlation_id", ref))
		jsonhttp.Error(w, http.StatusInternalServerError, "internal", "the document was sent (Message-ID "+msgID+") but not recorded", ref)
		return
	}
	h.log.Info("documents api: document sent", slog.Int64("account", int64(acct.ID)), slog.String("id", id),
		slog.String("message_id", msgID), slog.Int("recipients", len(rcpts)), slog.Int("size", len(msg)))
	loc := Prefix + "/" + id
	w.Header().Set("Location", loc)
	jsonhttp.Write(w, http.StatusCreated, Created{ID: id, MessageID: msgID, Status: loc})
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	acct, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	notFound := func() {
		jsonhttp.Error(w, http.StatusNotFound, "not_found", "no document with this id was sent by you", "")
	}
	if !validID(id) {
		notFound()
		return
	}
	d, err := h.cfg.Store.SentDocument(r.Context(), acct.ID, id)
	if errors.Is(err, storage.ErrNotFound) {
		notFound()
		return
	}
	if err != nil {
		h.internal(w, "reading a sent document", err)
		return
	}
	sts, err := h.cfg.Store.DeliveryStatuses(r.Context(), acct.ID, d.MessageID)
	if err != nil {
		h.internal(w, "reading delivery status", err)
		return
	}
	byRcpt := make(map[string]storage.DeliveryStatus, len(sts))
	for _, s := range sts {
		byRcpt[strings.ToLower(s.Recipient)] = s
	}
	ans := Status{ID: d.ID, MessageID: d.MessageID, Created: d.Created.UTC(), Recipients: make([]Recipient, 0, len(d.Recipients))}
	for _, a := range d.Recipients {
		rc := Recipient{Recipient: a, State: string(storage.StatusQueued), Updated: d.Created.UTC()}
		if s, ok := byRcpt[strings.ToLower(a)]; ok {
			rc.State, rc.Detail, rc.Updated = string(s.State), s.Detail, s.Updated.UTC()
		}
		ans.Recipients = append(ans.Recipients, rc)
	}
	jsonhttp.Write(w, http.StatusOK, ans)
}

// newID is a public document id: "doc_" and 120 random bits, base64url.
func newID() string {
	var b [15]byte
	rand.Read(b[:])
	return "doc_" + base64.RawURLEncoding.EncodeToString(b[:])
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (h *handler) internal(w http.ResponseWriter, what string, err error) {
	ref := jsonhttp.Ref()
	h.log.Error("documents api: "+what, slog.String("err", err.Error()), slog.String("correlation_id", ref))
	jsonhttp.Error(w, http.StatusInternalServerError, "internal", "internal error", ref)
}

// truncate bounds s to n bytes on a rune boundary, one line.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(strings.Join(strings.Fields(s), " "), "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
