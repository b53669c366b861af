// Package fhir serves the directory as a FHIR R4 (4.0.1) API, read and
// search of Practitioner, PractitionerRole and Organization, in the shape
// of the national Annuaire Santé FHIR API: its implementation guide is
// ansforge/IG-fhir-annuaire (profiles as-practitioner, as-practitionerrole,
// as-organization; MSSanté mailboxes as telecom with the
// as-ext-mailbox-mss-metadata extension; search parameter mailbox-mss).
//
// Mounted at /fhir/ behind internal/httpauth:
//
//	mux.Handle("/fhir/", auth.Wrap(fhir.Handler(store, log)))
//
// Interactions (FHIR R4 http.html): read (GET [type]/[id]), search-type
// (GET [type]?params), capabilities (GET metadata). Responses are
// application/fhir+json; errors are OperationOutcome resources with 400
// (bad parameter value), 404 (unknown resource or endpoint), 405, 500.
//
// Search follows FHIR R4 search.html: string parameters match the start of
// the value, case- and accent-insensitively; :exact is supported for
// mailbox-mss. Unknown or unsupported parameters are ignored and left out
// of the self link, unless the client sends "Prefer: handling=strict", in
// which case they are a 400 (search.html#errors). Paging uses _count
// (default 20, at most 100) and _offset; PractitionerRole pages with an
// opaque _cursor carried by its next link (the links are opaque to the
// client, http.html#paging). Bundle.total is given when the whole result
// fits in the first page, omitted otherwise.
package fhir

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/relais-mssante/relais/internal/jsonhttp"
	"github.com/relais-mssante/relais/storage"
)

// Prefix is where the handler expects to be mounted (the service base URL
// is the request's scheme and host followed by Prefix).
const Prefix = "/fhir"

// Directory is what the FHIR API reads (storage.DirectoryStore has it all).
type Directory interface {
	SearchDirectory(ctx context.Context, q storage.DirectoryQuery) (storage.DirectoryPage, error)
	Professional(ctx context.Context, id string) (storage.Professional, error)
	Activities(ctx context.Context, professionalID string) ([]storage.Activity, error)
	Organisation(ctx context.Context, id string) (storage.Organisation, error)
}

// Page sizes (_count).
const (
	DefaultCount = 20
	MaxCount     = 100
	maxOffset    = 10000 // the store pages no deeper
	// storeBatch is how many professionals a PractitionerRole search reads
	// from the store at once, and maxScan how many it reads at most for one
	// page before it returns a shorter page with a next link.
	storeBatch = 100
	maxScan    = 2000
)

const contentType = "application/fhir+json; charset=utf-8" // FHIR R4 http.html#mime

type server struct {
	dir Directory
	log *slog.Logger
}

// Handler returns the FHIR API handler.
func Handler(dir Directory, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{dir: dir, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"/metadata", s.metadata)
	mux.HandleFunc("GET "+Prefix+"/Practitioner/{id}", s.readPractitioner)
	mux.HandleFunc("GET "+Prefix+"/PractitionerRole/{id}", s.readRole)
	mux.HandleFunc("GET "+Prefix+"/Organization/{id}", s.readOrganization)
	mux.HandleFunc("GET "+Prefix+"/Practitioner", s.searchPractitioner)
	mux.HandleFunc("GET "+Prefix+"/PractitionerRole", s.searchRole)
	mux.HandleFunc("GET "+Prefix+"/Organization", s.searchOrganization)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeOutcome(w, http.StatusMethodNotAllowed, "not-supported", "only read and search (GET) are supported")
			return
		}
		writeOutcome(w, http.StatusNotFound, "not-found", "unknown resource type or endpoint")
	})
	return mux
}

// ---- reads

func (s *server) readPractitioner(w http.ResponseWriter, r *http.Request) {
	raw, ok := directoryID(r.PathValue("id"))
	if !ok {
		writeOutcome(w, http.StatusNotFound, "not-found", "Practitioner not found")
		return
	}
	hit, err := professionalHit(r.Context(), s.dir, raw)
	if errors.Is(err, storage.ErrNotFound) || err == nil && hit.Professional.ID != raw {
		writeOutcome(w, http.StatusNotFound, "not-found", "Practitioner not found")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeResource(w, practitionerOf(*hit.Professional, hit.Mailboxes))
}

func (s *server) readOrganization(w http.ResponseWriter, r *http.Request) {
	raw, ok := directoryID(r.PathValue("id"))
	if !ok {
		writeOutcome(w, http.StatusNotFound, "not-found", "Organization not found")
		return
	}
	hit, err := organisationHit(r.Context(), s.dir, raw)
	if errors.Is(err, storage.ErrNotFound) || err == nil && hit.Organisation.ID != raw {
		writeOutcome(w, http.StatusNotFound, "not-found", "Organization not found")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeResource(w, organizationOf(*hit.Organisation, hit.Mailboxes))
}

func (s *server) readRole(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		writeOutcome(w, http.StatusNotFound, "not-found", "PractitionerRole not found")
		return
	}
	// The practitioner part ends at one of the first dashes.
	for i, tries := 0, 0; i < len(id) && tries < 4; i++ {
		if id[i] != '-' {
			continue
		}
		tries++
		pid, ok := directoryID(id[:i])
		if !ok {
			continue
		}
		hit, err := professionalHit(r.Context(), s.dir, pid)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			s.internal(w, r, err)
			return
		}
		if hit.Professional.ID != pid {
			continue
		}
		for _, role := range rolesOf(hit) {
			if role.ID == id {
				writeResource(w, role)
				return
			}
		}
	}
	writeOutcome(w, http.StatusNotFound, "not-found", "PractitionerRole not found")
}

// professionalHit gathers a professional with their activities, sites and
// addresses: the store's search hit for their identifier, else the
// professional and activities read one by one.
func professionalHit(ctx context.Context, dir Directory, id string) (storage.DirectoryHit, error) {
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
	hit.Activities, err = dir.Activities(ctx, p.ID)
	return hit, err
}

func organisationHit(ctx context.Context, dir Directory, id string) (storage.DirectoryHit, error) {
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

// rolesOf expands a professional's hit into one PractitionerRole per activity.
func rolesOf(h storage.DirectoryHit) []PractitionerRole {
	if h.Professional == nil {
		return nil
	}
	sites := make(map[string]*storage.Organisation, len(h.Sites))
	for i := range h.Sites {
		sites[h.Sites[i].ID] = &h.Sites[i]
	}
	out := make([]PractitionerRole, 0, len(h.Activities))
	for _, a := range h.Activities {
		out = append(out, roleOf(*h.Professional, a, sites[a.Organisation], h.Mailboxes))
	}
	return out
}

// ---- search parameters

type paramKind int

const (
	pString paramKind = iota
	pToken
	pReference
)

type paramSpec struct {
	kind      paramKind
	modifiers []string // supported modifiers besides none
}

// token is a token parameter's value: system|code, |code (no system) or code.
type token struct {
	system    string
	hasSystem bool
	code      string
}

func parseToken(v string) token {
	if sys, code, ok := strings.Cut(v, "|"); ok {
		return token{system: sys, hasSystem: true, code: code}
	}
	return token{code: v}
}

type params struct {
	values  map[string]string // name -> value
	mods    map[string]string // name -> modifier
	applied url.Values        // what the self link shows
	count   int
	offset  int
	cursor  string
}

// badParam is a client error in a search: 400 with an OperationOutcome.
type badParam struct{ code, msg string }

func (e *badParam) Error() string { return e.msg }

// parseParams reads the query string against specs (search.html#errors:
// lenient by default, strict on "Prefer: handling=strict").
func parseParams(r *http.Request, specs map[string]paramSpec, withCursor bool) (*params, error) {
	strict := false
	for _, pref := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(pref, ",") {
			if strings.EqualFold(strings.TrimSpace(part), "handling=strict") {
				strict = true
			}
		}
	}
	p := &params{values: map[string]string{}, mods: map[string]string{}, applied: url.Values{}, count: DefaultCount}
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	unsupported := func(k string) error {
		if strict {
			return &badParam{"not-supported", "unsupported search parameter " + strconv.Quote(k)}
		}
		return nil
	}
	for _, k := range keys {
		vs := q[k]
		v := vs[0]
		if len(vs) > 1 {
			return nil, &badParam{"not-supported", "repeated parameter " + strconv.Quote(k) + " is not supported"}
		}
		if len(v) > 256 || !utf8.ValidString(v) {
			return nil, &badParam{"invalid", "parameter " + strconv.Quote(k) + " is too long or not UTF-8"}
		}
		switch k {
		case "_format", "_pretty":
			continue // json only; pretty printing is not offered
		case "_count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, &badParam{"invalid", "_count must be a positive integer"}
			}
			p.count = min(n, MaxCount) // the server may return fewer than asked (search.html#count)
			continue
		case "_offset":
			if withCursor {
				if err := unsupported(k); err != nil {
					return nil, err
				}
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxOffset {
				return nil, &badParam{"invalid", "_offset must be an integer from 0 to " + strconv.Itoa(maxOffset)}
			}
			p.offset = n
			continue
		case "_cursor":
			if !withCursor {
				if err := unsupported(k); err != nil {
					return nil, err
				}
				continue
			}
			p.cursor = v
			continue
		}
		name, mod, _ := strings.Cut(k, ":")
		spec, ok := specs[name]
		if ok && mod != "" {
			ok = false
			for _, m := range spec.modifiers {
				ok = ok || m == mod
			}
		}
		if !ok {
			if err := unsupported(k); err != nil {
				return nil, err
			}
			continue
		}
		if v == "" {
			continue // an empty parameter is ignored
		}
		if spec.kind != pString && strings.Contains(v, ",") {
			return nil, &badParam{"not-supported", "several values (OR) for " + strconv.Quote(k) + " are not supported"}
		}
		if _, dup := p.values[name]; dup {
			return nil, &badParam{"not-supported", "parameter " + strconv.Quote(name) + " given with several modifiers"}
		}
		p.values[name] = v
		p.mods[name] = mod
		p.applied.Set(k, v)
	}
	return p, nil
}

// refID reads a reference parameter: "Type/id", or a bare id.
func refID(v, typ string) (string, bool) {
	if rest, ok := strings.CutPrefix(v, typ+"/"); ok {
		v = rest
	} else if strings.Contains(v, "/") {
		return "", false
	}
	return directoryID(v)
}

// ---- searches

var practitionerParams = map[string]paramSpec{
	"family":      {kind: pString},
	"given":       {kind: pString},
	"name":        {kind: pString},
	"identifier":  {kind: pToken},
	"mailbox-mss": {kind: pString, modifiers: []string{"exact"}},
}

func (s *server) searchPractitioner(w http.ResponseWriter, r *http.Request) {
	p, err := parseParams(r, practitionerParams, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := storage.DirectoryQuery{Kinds: []storage.EntryKind{storage.KindProfessional}}
	q.Name = strings.Join(nonEmpty(p.values["family"], p.values["given"], p.values["name"]), " ")
	var idTok token
	if v, ok := p.values["identifier"]; ok {
		idTok = parseToken(v)
		q.Identifier = idTok.code
	}
	q.Address = p.values["mailbox-mss"]
	exactMail := p.mods["mailbox-mss"] == "exact"
	s.searchHits(w, r, "Practitioner", p, q, func(h storage.DirectoryHit) (any, string, bool, error) {
		if h.Professional == nil {
			return nil, "", false, nil
		}
		res := practitionerOf(*h.Professional, h.Mailboxes)
		if res.ID == "" ||
			q.Identifier != "" && !hasIdentifier(res.Identifier, idTok) ||
			q.Address != "" && !hasMailboxPrefix(res.Telecom, q.Address, exactMail) {
			return nil, "", false, nil
		}
		return res, res.ID, true, nil
	})
}

var organizationParams = map[string]paramSpec{
	"name":               {kind: pString},
	"identifier":         {kind: pToken},
	"address-postalcode": {kind: pString},
	"address-city":       {kind: pString},
	"mailbox-mss":        {kind: pString, modifiers: []string{"exact"}},
}

func (s *server) searchOrganization(w http.ResponseWriter, r *http.Request) {
	p, err := parseParams(r, organizationParams, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := storage.DirectoryQuery{Kinds: []storage.EntryKind{storage.KindOrganisation}}
	q.Name = p.values["name"]
	var idTok token
	if v, ok := p.values["identifier"]; ok {
		idTok = parseToken(v)
		q.Identifier = idTok.code
		if idTok.system == sysIDNatSt && len(idTok.code) > 1 {
			// idNat_Struct is a type digit and the FINESS, SIREN or SIRET:
			// the store knows the latter.
			switch idTok.code[0] {
			case '1', '2', '3':
				q.Identifier = idTok.code[1:]
			}
		}
	}
	q.PostalCode = p.values["address-postalcode"]
	q.City = p.values["address-city"]
	q.Address = p.values["mailbox-mss"]
	exactMail := p.mods["mailbox-mss"] == "exact"
	if q.Address != "" {
		// The store finds addresses as mailbox hits: an organisational
		// mailbox names its structure, which is read in full.
		q.Kinds = []storage.EntryKind{storage.KindMailbox}
	}
	seen := map[string]bool{}
	s.searchHits(w, r, "Organization", p, q, func(h storage.DirectoryHit) (any, string, bool, error) {
		if h.Kind == storage.KindMailbox && h.Mailbox != nil && h.Mailbox.Organisation != "" && !seen[h.Mailbox.Organisation] {
			seen[h.Mailbox.Organisation] = true
			oh, err := organisationHit(r.Context(), s.dir, h.Mailbox.Organisation)
			if errors.Is(err, storage.ErrNotFound) {
				return nil, "", false, nil
			}
			if err != nil {
				return nil, "", false, err
			}
			h = oh
		}
		if h.Organisation == nil {
			return nil, "", false, nil
		}
		res := organizationOf(*h.Organisation, h.Mailboxes)
		if res.ID == "" ||
			q.Identifier != "" && !hasIdentifier(res.Identifier, idTok) ||
			q.Address != "" && !hasMailboxPrefix(res.Telecom, q.Address, exactMail) {
			return nil, "", false, nil
		}
		return res, res.ID, true, nil
	})
}

// searchHits runs a store search paged by _offset and _count, one resource
// per hit (conv may drop a hit that a post-filter rejects).
func (s *server) searchHits(w http.ResponseWriter, r *http.Request, typ string, p *params, q storage.DirectoryQuery,
	conv func(storage.DirectoryHit) (any, string, bool, error)) {
	if !hasCriterion(q) {
		s.fail(w, r, &badParam{"too-costly", "give at least one supported search criterion"})
		return
	}
	q.Offset, q.Limit = p.offset, p.count
	page, err := s.dir.SearchDirectory(r.Context(), q)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	base := baseURL(r)
	b := newBundle(base, typ, p)
	for _, h := range page.Hits {
		res, id, ok, err := conv(h)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		if ok {
			b.add(base+"/"+typ+"/"+id, res)
		}
	}
	if page.More {
		b.link("next", pageURL(base, typ, p.applied, p.count, "_offset", strconv.Itoa(p.offset+len(page.Hits))))
	} else if p.offset == 0 {
		n := len(b.Entry)
		b.Total = &n
	}
	if p.offset > 0 {
		b.link("previous", pageURL(base, typ, p.applied, p.count, "_offset", strconv.Itoa(max(0, p.offset-p.count))))
	}
	writeResource(w, b)
}

var roleParams = map[string]paramSpec{
	"practitioner":       {kind: pReference},
	"organization":       {kind: pReference},
	"role":               {kind: pToken},
	"specialty":          {kind: pToken},
	"mailbox-mss":        {kind: pString, modifiers: []string{"exact"}},
	"address-postalcode": {kind: pString},
	"address-city":       {kind: pString},
}

// roleFilter holds the conditions that apply to each activity.
type roleFilter struct {
	organisation string
	mode         string
	profession   string
	specialty    string
	postalCode   string
	city         string // folded
	mailbox      string // folded
	exactMail    bool
	none         bool // a condition nothing can meet
}

func (f *roleFilter) match(p storage.Professional, a storage.Activity, site *storage.Organisation, role PractitionerRole) bool {
	if f.organisation != "" && a.Organisation != f.organisation ||
		f.mode != "" && a.ModeCode != f.mode ||
		f.profession != "" && p.ProfessionCode != f.profession ||
		f.specialty != "" && p.SpecialtyCode != f.specialty {
		return false
	}
	if f.postalCode != "" {
		pc := a.PostalCode
		if pc == "" && site != nil {
			pc = site.Address.PostalCode
		}
		if !strings.HasPrefix(pc, f.postalCode) {
			return false
		}
	}
	if f.city != "" {
		city := a.City
		if city == "" && site != nil {
			city = site.Address.City
		}
		if !strings.HasPrefix(fold(city), f.city) {
			return false
		}
	}
	if f.mailbox != "" {
		found := false
		for _, t := range role.Telecom {
			v := fold(t.Value)
			found = found || (f.exactMail && v == f.mailbox) || (!f.exactMail && strings.HasPrefix(v, f.mailbox))
		}
		if !found {
			return false
		}
	}
	return true
}

// roleCursor is where a PractitionerRole page starts: the offset of a
// professional in the store's result and the index of a role among that
// professional's matching roles.
type roleCursor struct{ offset, skip int }

func parseRoleCursor(s string) (roleCursor, bool) {
	if s == "" {
		return roleCursor{}, true
	}
	a, b, ok := strings.Cut(s, ".")
	if !ok {
		return roleCursor{}, false
	}
	off, err1 := strconv.Atoi(a)
	skip, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || off < 0 || off > maxOffset || skip < 0 || skip > 10000 {
		return roleCursor{}, false
	}
	return roleCursor{off, skip}, true
}

func (c roleCursor) String() string { return strconv.Itoa(c.offset) + "." + strconv.Itoa(c.skip) }

func (s *server) searchRole(w http.ResponseWriter, r *http.Request) {
	p, err := parseParams(r, roleParams, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	start, ok := parseRoleCursor(p.cursor)
	if !ok {
		s.fail(w, r, &badParam{"invalid", "_cursor is not valid: follow the next link of a previous page"})
		return
	}
	q := storage.DirectoryQuery{Kinds: []storage.EntryKind{storage.KindProfessional}}
	var f roleFilter
	if v, ok := p.values["organization"]; ok {
		if f.organisation, ok = refID(v, "Organization"); !ok {
			s.fail(w, r, &badParam{"invalid", "organization must be Organization/[id] or [id]"})
			return
		}
	}
	if v, ok := p.values["role"]; ok {
		// role: a profession (TRE_G15) or a mode d'exercice (TRE_R23);
		// without a system, digits are a profession and letters a mode.
		t := parseToken(v)
		switch {
		case t.system == csProfession || !t.hasSystem && isDigits(t.code):
			f.profession, q.ProfessionCode = t.code, t.code
		case t.system == csMode || !t.hasSystem:
			f.mode = t.code
		default:
			f.none = true // a code system we do not know: nothing matches
		}
	}
	if v, ok := p.values["specialty"]; ok {
		t := parseToken(v)
		if t.hasSystem && t.system != "" && t.system != csSpecialty {
			f.none = true
		} else {
			f.specialty, q.SpecialtyCode = t.code, t.code
		}
	}
	f.postalCode = p.values["address-postalcode"]
	q.PostalCode = f.postalCode
	if v := p.values["address-city"]; v != "" {
		f.city, q.City = fold(v), v
	}
	if v := p.values["mailbox-mss"]; v != "" {
		f.mailbox, q.Address, f.exactMail = fold(v), v, p.mods["mailbox-mss"] == "exact"
	}

	var roles []PractitionerRole
	var next *roleCursor
	if f.none {
		// Nothing to search: an empty result.
	} else if v, ok := p.values["practitioner"]; ok {
		pid, ok := refID(v, "Practitioner")
		if !ok {
			s.fail(w, r, &badParam{"invalid", "practitioner must be Practitioner/[id] or [id]"})
			return
		}
		hit, err := professionalHit(r.Context(), s.dir, pid)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			s.internal(w, r, err)
			return
		case hit.Professional.ID == pid:
			matched := filterRoles(hit, &f)
			if start.skip < len(matched) {
				end := min(len(matched), start.skip+p.count)
				roles = matched[start.skip:end]
				if end < len(matched) {
					next = &roleCursor{0, end}
				}
			}
		}
	} else if !hasCriterion(q) {
		s.fail(w, r, &badParam{"too-costly", "give practitioner, role, specialty, mailbox-mss, address-postalcode or address-city (organization alone is not enough)"})
		return
	} else {
		roles, next, err = s.scanRoles(r.Context(), q, &f, start, p.count)
		if err != nil {
			s.internal(w, r, err)
			return
		}
	}
	base := baseURL(r)
	b := newBundle(base, "PractitionerRole", p)
	for _, role := range roles {
		b.add(base+"/PractitionerRole/"+role.ID, role)
	}
	if next != nil {
		b.link("next", pageURL(base, "PractitionerRole", p.applied, p.count, "_cursor", next.String()))
	} else if start == (roleCursor{}) {
		n := len(roles)
		b.Total = &n
	}
	writeResource(w, b)
}

func filterRoles(h storage.DirectoryHit, f *roleFilter) []PractitionerRole {
	sites := make(map[string]*storage.Organisation, len(h.Sites))
	for i := range h.Sites {
		sites[h.Sites[i].ID] = &h.Sites[i]
	}
	var out []PractitionerRole
	for _, a := range h.Activities {
		site := sites[a.Organisation]
		role := roleOf(*h.Professional, a, site, h.Mailboxes)
		if f.match(*h.Professional, a, site, role) {
			out = append(out, role)
		}
	}
	return out
}

// scanRoles reads professionals from the store from start on and expands
// their matching roles until count roles are found, the result ends, or
// maxScan professionals were read (then the page is short but has a next
// link, so one request's work stays bounded).
func (s *server) scanRoles(ctx context.Context, q storage.DirectoryQuery, f *roleFilter, start roleCursor, count int) ([]PractitionerRole, *roleCursor, error) {
	var roles []PractitionerRole
	off, skip := start.offset, start.skip
	for scanned := 0; scanned < maxScan; {
		q.Offset, q.Limit = off, storeBatch
		page, err := s.dir.SearchDirectory(ctx, q)
		if err != nil {
			return nil, nil, err
		}
		for i, h := range page.Hits {
			if h.Professional == nil {
				skip = 0
				continue
			}
			matched := filterRoles(h, f)
			for j := skip; j < len(matched); j++ {
				if len(roles) == count {
					return roles, &roleCursor{off + i, j}, nil
				}
				roles = append(roles, matched[j])
			}
			skip = 0
		}
		off += len(page.Hits)
		scanned += len(page.Hits)
		if !page.More || len(page.Hits) == 0 {
			return roles, nil, nil
		}
	}
	return roles, &roleCursor{off, 0}, nil
}

// ---- helpers

// hasCriterion: the store searches only with at least one criterion.
func hasCriterion(q storage.DirectoryQuery) bool {
	return strings.TrimSpace(q.Name+q.Identifier+q.Address+q.ProfessionCode+q.SpecialtyCode+q.PostalCode+q.City) != ""
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// hasIdentifier: token search on identifier (search.html#token): code
// alone matches any system; system|code both; |code an identifier
// without a system.
func hasIdentifier(ids []Identifier, t token) bool {
	for _, id := range ids {
		if id.Value == t.code && (!t.hasSystem || id.System == t.system) {
			return true
		}
	}
	return false
}

// hasMailboxPrefix: an MSSanté mailbox of telecom starts with addr (or,
// exact, is addr), case-insensitively.
func hasMailboxPrefix(telecom []ContactPoint, addr string, exact bool) bool {
	addr = strings.ToLower(addr)
	for _, t := range telecom {
		if t.System != "email" || len(t.Extension) == 0 {
			continue
		}
		v := strings.ToLower(t.Value)
		if v == addr || !exact && strings.HasPrefix(v, addr) {
			return true
		}
	}
	return false
}

// fold lower-cases and strips accents, as string search requires
// (search.html#string: case- and accent-insensitive).
func fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// baseURL is the service base URL of a request: scheme, host and Prefix.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + Prefix
}

func pageURL(base, typ string, applied url.Values, count int, key, value string) string {
	v := url.Values{}
	for k, vs := range applied {
		v[k] = vs
	}
	v.Set("_count", strconv.Itoa(count))
	v.Set(key, value)
	return base + "/" + typ + "?" + v.Encode()
}

// ---- bundles and replies

type Bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id,omitempty"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []BundleLink  `json:"link,omitempty"`
	Entry        []BundleEntry `json:"entry,omitempty"`
}

type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type BundleEntry struct {
	FullURL  string       `json:"fullUrl"`
	Resource any          `json:"resource"`
	Search   *EntrySearch `json:"search,omitempty"`
}

type EntrySearch struct {
	Mode string `json:"mode"`
}

func newBundle(base, typ string, p *params) *Bundle {
	var id [8]byte
	rand.Read(id[:])
	self := base + "/" + typ
	if len(p.applied) > 0 || p.count != DefaultCount || p.offset != 0 || p.cursor != "" {
		v := url.Values{}
		for k, vs := range p.applied {
			v[k] = vs
		}
		v.Set("_count", strconv.Itoa(p.count))
		if p.offset != 0 {
			v.Set("_offset", strconv.Itoa(p.offset))
		}
		if p.cursor != "" {
			v.Set("_cursor", p.cursor)
		}
		self += "?" + v.Encode()
	}
	return &Bundle{ResourceType: "Bundle", ID: hex.EncodeToString(id[:]), Type: "searchset",
		Link: []BundleLink{{Relation: "self", URL: self}}}
}

func (b *Bundle) add(fullURL string, res any) {
	b.Entry = append(b.Entry, BundleEntry{FullURL: fullURL, Resource: res, Search: &EntrySearch{Mode: "match"}})
}

func (b *Bundle) link(rel, u string) { b.Link = append(b.Link, BundleLink{Relation: rel, URL: u}) }

type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

type Issue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics,omitempty"`
}

func writeResource(w http.ResponseWriter, res any) {
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

// writeOutcome answers an error as an OperationOutcome (FHIR R4
// operationoutcome.html; codes from the IssueType value set).
func writeOutcome(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, OperationOutcome{ResourceType: "OperationOutcome",
		Issue: []Issue{{Severity: "error", Code: code, Diagnostics: msg}}})
}

func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var bp *badParam
	if errors.As(err, &bp) {
		writeOutcome(w, http.StatusBadRequest, bp.code, bp.msg)
		return
	}
	s.internal(w, r, err)
}

// internal logs err with a correlation id; the reply carries only the
// id. A query the store refuses as invalid is a 400.
func (s *server) internal(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, storage.ErrInvalid) {
		writeOutcome(w, http.StatusBadRequest, "invalid", "the directory refused this search as invalid")
		return
	}
	id := jsonhttp.Ref()
	s.log.Error("fhir: store error", "err", err, "path", r.URL.Path, "correlation_id", id)
	writeOutcome(w, http.StatusInternalServerError, "exception", "internal error, reference "+id)
}
