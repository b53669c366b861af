// Package dirapi serves the directory as a JSON API over HTTPS, for the web
// app and for hospital software, under /api/v1/directory/.
//
// The handler does not authenticate: the caller wraps it with
// internal/httpauth (Basic, RFC 7617), for example
//
//	mux.Handle("/api/v1/directory/", auth.Wrap(dirapi.Handler(store, log)))
//
// Endpoints (GET or HEAD only; UTF-8 JSON, keys in lowerCamelCase, empty
// fields omitted):
//
//	GET /api/v1/directory/search?q=&name=&profession=&specialty=&postcode=&city=&identifier=&address=&kind=&limit=&cursor=
//	    {"results": [Entry...], "next": "<cursor>"}   next absent on the last page
//	GET /api/v1/directory/professionals/{id}          Entry (kind "professional")
//	GET /api/v1/directory/organisations/{id}          Entry (kind "organisation")
//	GET /api/v1/directory/addresses/{address}         {"address", "entries": [Mailbox...], "certificates": [Certificate...]}
//	GET /api/v1/directory/addresses/{address}/certificates.pem   the certificates, PEM (RFC 7468)
//	GET /api/v1/directory/trust/{domain}              {"domain", "entries": [Trust...]}; 404 outside the trust space
//
// q is free text parsed by directory.ParseQuery; the other search
// parameters set one field each and win over what q says. kind is a
// comma-separated list of professional, organisation, mailbox. limit is
// 1 to 100 (default 20). cursor is the "next" of the previous page,
// opaque, valid only with the same parameters.
//
// An Entry is
//
//	{"kind": "professional"|"organisation"|"mailbox",
//	 "professional": Professional, "organisation": Organisation, "mailbox": Mailbox,
//	 "activities": [Activity...], "sites": [Organisation...], "addresses": [Mailbox...]}
//
// with Professional {id, idType, identifier, civility{code,label},
// familyName, givenName, profession{code,label}, category{code,label},
// specialty{code,label}, source}; Organisation {id, finess, legalFiness,
// siret, siren, name, tradeName, address, phone, fax, email,
// sector{code,label}, source}; Activity {key, organisation, mode{code,label},
// section{code,label}, role, postalCode, city}; Mailbox {address, type,
// professional, organisation, service, description, civility, familyName,
// givenName, profession{code,label}, specialty{code,label},
// organisationName, structureAddress, digitization, local, source};
// Certificate {fingerprint, subject, notBefore, notAfter, source, added};
// Trust {domain, description, operatorDN, responsibleContact,
// supportContact, updated}; an address {recipient, location, number,
// repetition, streetType, street, distribution, cedex, postalCode,
// cityCode, city, department, country}. Times are RFC 3339.
//
// Errors are {"error": {"code", "message", "reference"}}: 400 bad_request
// (a bad parameter; the message says which), 404 not_found, 405
// method_not_allowed, 500 internal (reference is the correlation id in the
// server's log; the reply says nothing else).
package dirapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/internal/jsonhttp"
	"github.com/relais-mssante/relais/storage"
)

// Prefix is where the handler expects to be mounted.
const Prefix = "/api/v1/directory/"

// Directory is what the API reads (storage.DirectoryStore has it all).
type Directory interface {
	SearchDirectory(ctx context.Context, q storage.DirectoryQuery) (storage.DirectoryPage, error)
	Professional(ctx context.Context, id string) (storage.Professional, error)
	Activities(ctx context.Context, professionalID string) ([]storage.Activity, error)
	Organisation(ctx context.Context, id string) (storage.Organisation, error)
	MailboxEntries(ctx context.Context, address string) ([]storage.MailboxEntry, error)
	Certificates(ctx context.Context, address string) ([]storage.Certificate, error)
	TrustByDomain(ctx context.Context, domain string) ([]storage.TrustEntry, error)
}

// Limits of a search page.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

type api struct {
	dir Directory
	log *slog.Logger
}

// Handler returns the API handler; it serves paths under Prefix and
// answers 404 elsewhere.
func Handler(dir Directory, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &api{dir: dir, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"search", a.search)
	mux.HandleFunc("GET "+Prefix+"professionals/{id}", a.professional)
	mux.HandleFunc("GET "+Prefix+"organisations/{id}", a.organisation)
	mux.HandleFunc("GET "+Prefix+"addresses/{address}", a.address)
	mux.HandleFunc("GET "+Prefix+"addresses/{address}/certificates.pem", a.certificatesPEM)
	mux.HandleFunc("GET "+Prefix+"trust/{domain}", a.trust)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			jsonhttp.Error(w, http.StatusMethodNotAllowed, "method_not_allowed", "only GET and HEAD are supported", "")
			return
		}
		jsonhttp.Error(w, http.StatusNotFound, "not_found", "no such endpoint", "")
	})
	return mux
}

// ---- search

var searchParams = map[string]bool{
	"q": true, "name": true, "profession": true, "specialty": true, "postcode": true, "city": true,
	"identifier": true, "address": true, "kind": true, "limit": true, "cursor": true,
}

// maxParamLen bounds every parameter: a directory query is short.
const maxParamLen = 256

// maxOffset is how deep a search pages (the store refuses deeper).
const maxOffset = 10000

func (a *api) search(w http.ResponseWriter, r *http.Request) {
	vals := r.URL.Query()
	q, limit, err := parseSearch(vals)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	fp := fingerprint(q)
	if c := vals.Get("cursor"); c != "" {
		off, ok := decodeCursor(c, fp)
		if !ok {
			badRequest(w, "cursor is not valid for these parameters: start again without it")
			return
		}
		q.Offset = off
	}
	q.Limit = limit
	page, err := a.dir.SearchDirectory(r.Context(), q)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	res := searchResponse{Results: make([]Entry, 0, len(page.Hits))}
	for _, h := range page.Hits {
		res.Results = append(res.Results, entryOf(h))
	}
	if page.More {
		res.Next = encodeCursor(q.Offset+len(page.Hits), fp)
	}
	jsonhttp.Write(w, http.StatusOK, res)
}

type searchResponse struct {
	Results []Entry `json:"results"`
	Next    string  `json:"next,omitempty"`
}

func parseSearch(vals url.Values) (storage.DirectoryQuery, int, error) {
	for k, v := range vals {
		if !searchParams[k] {
			return storage.DirectoryQuery{}, 0, fmt.Errorf("unknown parameter %q", k)
		}
		if len(v) > 1 {
			return storage.DirectoryQuery{}, 0, fmt.Errorf("parameter %q given %d times", k, len(v))
		}
		if len(v[0]) > maxParamLen || !utf8.ValidString(v[0]) {
			return storage.DirectoryQuery{}, 0, fmt.Errorf("parameter %q is too long or not UTF-8", k)
		}
	}
	q := directory.ParseQuery(vals.Get("q"))
	if v := strings.TrimSpace(vals.Get("name")); v != "" {
		q.Name = strings.TrimSpace(q.Name + " " + v)
	}
	set := func(dst *string, key string) {
		if v := strings.TrimSpace(vals.Get(key)); v != "" {
			*dst = v
		}
	}
	set(&q.ProfessionCode, "profession")
	set(&q.SpecialtyCode, "specialty")
	set(&q.PostalCode, "postcode")
	set(&q.City, "city")
	set(&q.Identifier, "identifier")
	set(&q.Address, "address")
	if v := vals.Get("kind"); v != "" {
		q.Kinds = nil
		for _, s := range strings.Split(v, ",") {
			k, ok := directory.ParseKind(strings.TrimSpace(s))
			if !ok {
				return q, 0, fmt.Errorf("kind %q: want professional, organisation or mailbox", s)
			}
			q.Kinds = append(q.Kinds, k)
		}
	}
	limit := DefaultLimit
	if v := vals.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return q, 0, fmt.Errorf("limit must be an integer from 1 to %d", MaxLimit)
		}
		limit = n
	}
	if q.Name == "" && q.ProfessionCode == "" && q.SpecialtyCode == "" && q.PostalCode == "" &&
		q.City == "" && q.Identifier == "" && q.Address == "" {
		return q, 0, errors.New("give at least one criterion: q, name, profession, specialty, postcode, city, identifier or address")
	}
	return q, limit, nil
}

// fingerprint binds a cursor to the query it pages through.
func fingerprint(q storage.DirectoryQuery) string {
	kinds := make([]string, len(q.Kinds))
	for i, k := range q.Kinds {
		kinds[i] = string(k)
	}
	sort.Strings(kinds)
	h := sha256.Sum256([]byte(strings.Join([]string{q.Name, q.Identifier, q.Address, q.ProfessionCode,
		q.SpecialtyCode, q.PostalCode, q.City, strings.Join(kinds, ",")}, "\x00")))
	return hex.EncodeToString(h[:6])
}

func encodeCursor(offset int, fp string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset) + "." + fp))
}

func decodeCursor(c, fp string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	off, got, ok := strings.Cut(string(b), ".")
	if !ok || got != fp {
		return 0, false
	}
	n, err := strconv.Atoi(off)
	if err != nil || n < 0 || n > maxOffset {
		return 0, false
	}
	return n, true
}

// ---- entries

func (a *api) professional(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		badRequest(w, "invalid professional identifier")
		return
	}
	hit, err := professionalEntry(r.Context(), a.dir, id)
	if errors.Is(err, storage.ErrNotFound) {
		jsonhttp.Error(w, http.StatusNotFound, "not_found", "no professional with this identifier", "")
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, entryOf(hit))
}

// professionalEntry gathers a professional with their activities, sites
// and addresses: the search hit when the store's search finds it by
// identifier, else the professional read alone with its activities and
// sites. id is the national identifier, the RPPS or the ADELI number.
func professionalEntry(ctx context.Context, dir Directory, id string) (storage.DirectoryHit, error) {
	p, err := dir.Professional(ctx, id)
	if err != nil {
		return storage.DirectoryHit{}, err
	}
	page, err := dir.SearchDirectory(ctx, storage.DirectoryQuery{Identifier: p.ID, Kinds: []storage.EntryKind{storage.KindProfessional}, Limit: 5})
	if err != nil {
		return storage.DirectoryHit{}, err
	}
	for _, h := range page.Hits {
		if h.Professional != nil && h.Professional.ID == p.ID {
			return h, nil
		}
	}
	hit := storage.DirectoryHit{Kind: storage.KindProfessional, Professional: &p}
	if hit.Activities, err = dir.Activities(ctx, p.ID); err != nil {
		return hit, err
	}
	seen := map[string]bool{}
	for _, act := range hit.Activities {
		if act.Organisation == "" || seen[act.Organisation] {
			continue
		}
		seen[act.Organisation] = true
		o, err := dir.Organisation(ctx, act.Organisation)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return hit, err
		}
		hit.Sites = append(hit.Sites, o)
	}
	return hit, nil
}

// organisationEntry gathers an organisation with its addresses. id is the
// structure's identifier, its FINESS or its SIRET.
func organisationEntry(ctx context.Context, dir Directory, id string) (storage.DirectoryHit, error) {
	o, err := dir.Organisation(ctx, id)
	if err != nil {
		return storage.DirectoryHit{}, err
	}
	page, err := dir.SearchDirectory(ctx, storage.DirectoryQuery{Identifier: o.ID, Kinds: []storage.EntryKind{storage.KindOrganisation}, Limit: 5})
	if err != nil {
		return storage.DirectoryHit{}, err
	}
	for _, h := range page.Hits {
		if h.Organisation != nil && h.Organisation.ID == o.ID {
			return h, nil
		}
	}
	return storage.DirectoryHit{Kind: storage.KindOrganisation, Organisation: &o}, nil
}

func (a *api) organisation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		badRequest(w, "invalid organisation identifier")
		return
	}
	hit, err := organisationEntry(r.Context(), a.dir, id)
	if errors.Is(err, storage.ErrNotFound) {
		jsonhttp.Error(w, http.StatusNotFound, "not_found", "no organisation with this identifier", "")
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, entryOf(hit))
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c == 0x7f || c == '/' {
			return false
		}
	}
	return utf8.ValidString(id)
}

// validAddress accepts what can be an MSSanté address: local@domain,
// bounded as RFC 5321 4.5.3.1 bounds a path (256 octets).
func validAddress(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && len(s) <= 256 && !strings.ContainsAny(s, " \t\r\n/<>") && utf8.ValidString(s)
}

type addressResponse struct {
	Address      string        `json:"address"`
	Entries      []Mailbox     `json:"entries"`
	Certificates []Certificate `json:"certificates"`
}

func (a *api) address(w http.ResponseWriter, r *http.Request) {
	addr := r.PathValue("address")
	if !validAddress(addr) {
		badRequest(w, "not an e-mail address")
		return
	}
	entries, err := a.dir.MailboxEntries(r.Context(), addr)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		a.internal(w, r, err)
		return
	}
	certs, err := a.dir.Certificates(r.Context(), addr)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		a.internal(w, r, err)
		return
	}
	if len(entries) == 0 && len(certs) == 0 {
		jsonhttp.Error(w, http.StatusNotFound, "not_found", "address not in the directory", "")
		return
	}
	res := addressResponse{Address: addr, Entries: make([]Mailbox, 0, len(entries)), Certificates: make([]Certificate, 0, len(certs))}
	for _, e := range entries {
		res.Entries = append(res.Entries, mailboxOf(e))
	}
	for _, c := range certs {
		res.Certificates = append(res.Certificates, certificateOf(c))
	}
	jsonhttp.Write(w, http.StatusOK, res)
}

func (a *api) certificatesPEM(w http.ResponseWriter, r *http.Request) {
	addr := r.PathValue("address")
	if !validAddress(addr) {
		badRequest(w, "not an e-mail address")
		return
	}
	certs, err := a.dir.Certificates(r.Context(), addr)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		a.internal(w, r, err)
		return
	}
	if len(certs) == 0 {
		jsonhttp.Error(w, http.StatusNotFound, "not_found", "no certificate for this address", "")
		return
	}
	var buf []byte
	for _, c := range certs {
		buf = append(buf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})...) // RFC 7468 5.1
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain") // RFC 8555 9.1
	w.Header().Set("Content-Disposition", `attachment; filename="certificates.pem"`)
	w.Write(buf)
}

type trustResponse struct {
	Domain  string  `json:"domain"`
	Entries []Trust `json:"entries"`
}

func (a *api) trust(w http.ResponseWriter, r *http.Request) {
	domain := strings.TrimSuffix(strings.ToLower(r.PathValue("domain")), ".")
	if !validDomain(domain) {
		badRequest(w, "not a domain name")
		return
	}
	entries, err := a.dir.TrustByDomain(r.Context(), domain)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		a.internal(w, r, err)
		return
	}
	if len(entries) == 0 {
		jsonhttp.Error(w, http.StatusNotFound, "not_found", "domain outside the MSSanté trust space", "")
		return
	}
	res := trustResponse{Domain: domain, Entries: make([]Trust, 0, len(entries))}
	for _, e := range entries {
		res.Entries = append(res.Entries, trustOf(e))
	}
	jsonhttp.Write(w, http.StatusOK, res)
}

// validDomain accepts an A-label domain (RFC 1035 2.3.1 with digits
// anywhere, RFC 1123 2.1).
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// ---- replies

func badRequest(w http.ResponseWriter, msg string) {
	jsonhttp.Error(w, http.StatusBadRequest, "bad_request", msg, "")
}

// internal logs err with a correlation id and answers 500 with that id
// only; a query the store refuses as invalid is a 400.
func (a *api) internal(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, storage.ErrInvalid) {
		badRequest(w, "the store refused this query as invalid")
		return
	}
	id := jsonhttp.Ref()
	a.log.Error("directory api: store error", "err", err, "path", r.URL.Path, "correlation_id", id)
	jsonhttp.Error(w, http.StatusInternalServerError, "internal", "internal error", id)
}
