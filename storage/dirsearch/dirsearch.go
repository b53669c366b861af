// Package dirsearch holds what the SQL stores' directory searches
// (storage.DirectoryStore.SearchDirectory) share: the query's parsing and
// limits, the candidates the stores' legs produce, and their ranking into
// a page, so that the SQLite and PostgreSQL stores answer a query with the
// same page.
//
// A store runs legs: index range scans, each in the ranking order of its
// rows and cut once it holds enough of them (Spec.Enough); each row is a
// Candidate whose Sort is Tier(exact) followed by its ranking key. Resolve
// then turns the mailbox rows of imported professionals into those
// professionals, keeps each entry once at its best rank and sorts; Page
// cuts the page.
package dirsearch

import (
	"fmt"
	"slices"
	"strings"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/dirkey"
)

// Limits of a query.
const (
	DefaultLimit = 20
	MaxLimit     = 200
	MaxOffset    = 10000
	MaxNameWords = 8
)

// Candidate is a search result before its details are read.
type Candidate struct {
	Kind storage.EntryKind
	Key  string // professional or organisation id, or mailbox address key
	Sort string // tier digit, then the ranking key
	Prof string // a mailbox row's professional
}

// Spec is a parsed query and the candidates its legs found.
type Spec struct {
	Q          storage.DirectoryQuery // trimmed, Limit set
	Words      []string               // of NameKey
	NameKey    string                 // dirkey.Name of the name, at most MaxNameWords words
	Postal     string                 // postcode prefix
	City       string                 // city key prefix
	Address    string                 // lower-case address prefix
	Max        int                    // offset+limit+1: what the legs must find
	Kinds      map[storage.EntryKind]bool
	Candidates []Candidate
}

// New parses and checks a query (ErrInvalid: no criterion, bad paging, a
// kind that is not a hit kind).
func New(q storage.DirectoryQuery) (*Spec, error) {
	s := &Spec{Q: q}
	s.Q.Identifier = strings.TrimSpace(q.Identifier)
	s.Q.ProfessionCode = strings.TrimSpace(q.ProfessionCode)
	s.Q.SpecialtyCode = strings.TrimSpace(q.SpecialtyCode)
	s.NameKey = dirkey.Name(q.Name)
	if s.NameKey != "" {
		s.Words = strings.Split(s.NameKey, " ")
		if len(s.Words) > MaxNameWords {
			s.Words = s.Words[:MaxNameWords]
			s.NameKey = strings.Join(s.Words, " ")
		}
	}
	s.Postal = strings.TrimSpace(q.PostalCode)
	s.City = dirkey.Name(q.City)
	s.Address = strings.ToLower(strings.TrimSpace(q.Address))
	if s.NameKey == "" && s.Q.Identifier == "" && s.Address == "" && s.Q.ProfessionCode == "" &&
		s.Q.SpecialtyCode == "" && s.Postal == "" && s.City == "" {
		return nil, fmt.Errorf("directory query without a criterion: %w", storage.ErrInvalid)
	}
	if q.Limit < 0 || q.Offset < 0 || q.Offset > MaxOffset {
		return nil, fmt.Errorf("directory query offset %d limit %d: %w", q.Offset, q.Limit, storage.ErrInvalid)
	}
	if s.Q.Limit == 0 {
		s.Q.Limit = DefaultLimit
	}
	s.Q.Limit = min(s.Q.Limit, MaxLimit)
	s.Max = s.Q.Offset + s.Q.Limit + 1
	s.Kinds = map[storage.EntryKind]bool{}
	for _, k := range q.Kinds {
		switch k {
		case storage.KindProfessional, storage.KindOrganisation, storage.KindMailbox:
			s.Kinds[k] = true
		default:
			return nil, fmt.Errorf("directory query kind %q: %w", k, storage.ErrInvalid)
		}
	}
	if len(s.Kinds) == 0 {
		s.Kinds = map[storage.EntryKind]bool{storage.KindProfessional: true, storage.KindOrganisation: true, storage.KindMailbox: true}
	}
	return s, nil
}

// Enough reports whether a leg's rows (in its ranking order) hold s.Max
// distinct keys and, after the row where the last of them appears, a row
// that ranks after it: no row the leg did not read can rank before one
// of the page.
func (s *Spec) Enough(cs []Candidate) bool {
	seen := make(map[string]bool, s.Max)
	for i, c := range cs {
		if seen[c.Key] {
			continue
		}
		seen[c.Key] = true
		if len(seen) == s.Max {
			return cs[len(cs)-1].Sort != cs[i].Sort
		}
	}
	return false
}

// Tier is the first character of a candidate's sort key, from the exact
// column of its leg: 1 exact, 0 prefix; 3 and 2 the same for a match in
// the reverse direction (given name first). Exact matches come first,
// then the prefix matches, and within each the family-name direction
// before the given-name one: "mar" lists MARTIN Claire before Marc DUPONT.
func Tier(exact int64) string {
	switch exact {
	case 1:
		return "0"
	case 3:
		return "1"
	case 2:
		return "3"
	}
	return "2"
}

// Owners is what Resolve asks the store, in the search's snapshot.
type Owners interface {
	// ImportedOwners calls fn with the address key and professional of
	// each row of these addresses (padded with nils, PadIn) that names
	// an imported professional, by address key then source.
	ImportedOwners(addrs []any, fn func(addr, prof string)) error
	// Imported calls fn with each of these professional ids (padded with
	// nils) that is imported.
	Imported(ids []any, fn func(id string)) error
}

// Resolve turns mailbox rows of imported professionals into professional
// candidates, keeps one candidate per entry (its best rank), and sorts.
//
// A mailbox row names its owner (the legs read m.professional): that
// owner is taken as is, and checked (it must be imported) only when it
// ranks in the page, so that the page costs a few seeks rather than one
// per mailbox row read. The addresses whose rows name no owner, or two,
// are looked up: the owner is then the first row's, by source, whose
// professional is imported.
func (s *Spec) Resolve(o Owners) ([]Candidate, error) {
	known := map[string]bool{} // professionals known to be imported
	named := map[string]string{}
	ambiguous := map[string]bool{}
	for _, c := range s.Candidates {
		switch {
		case c.Kind == storage.KindProfessional:
			known[c.Key] = true
		case c.Kind == storage.KindMailbox && c.Prof != "":
			if p, ok := named[c.Key]; ok && p != c.Prof {
				ambiguous[c.Key] = true
			}
			named[c.Key] = c.Prof
		}
	}
	var addrs []any
	seenAddr := map[string]bool{}
	for _, c := range s.Candidates {
		if c.Kind == storage.KindMailbox && !seenAddr[c.Key] && (named[c.Key] == "" || ambiguous[c.Key]) {
			seenAddr[c.Key] = true
			addrs = append(addrs, c.Key)
		}
	}
	owner := map[string]string{} // address key -> imported professional
	if len(addrs) > 0 {
		err := o.ImportedOwners(PadIn(addrs), func(a, p string) {
			if _, ok := owner[a]; !ok {
				owner[a] = p
				known[p] = true
			}
		})
		if err != nil {
			return nil, fmt.Errorf("search owners: %w", err)
		}
	}
	for a, p := range named {
		if !ambiguous[a] {
			owner[a] = p // to be checked if it ranks in the page
		}
	}
	for {
		out := s.Rank(owner)
		var check []any
		for _, c := range out[:min(len(out), s.Max)] {
			if c.Kind == storage.KindProfessional && !known[c.Key] {
				check = append(check, c.Key)
			}
		}
		if len(check) == 0 {
			return out, nil
		}
		for _, p := range check {
			known[p.(string)] = false
		}
		if err := o.Imported(PadIn(check), func(p string) { known[p] = true }); err != nil {
			return nil, fmt.Errorf("search owners: %w", err)
		}
		for a, p := range owner {
			if !known[p] {
				delete(owner, a) // not imported: the address stays a mailbox hit
			}
		}
		for p, ok := range known {
			if !ok {
				delete(known, p)
			}
		}
	}
}

// Rank merges the candidates, mailbox rows of an owner as that owner, one
// per entry at its best rank, in ranking order.
func (s *Spec) Rank(owner map[string]string) []Candidate {
	best := map[[2]string]int{}
	var out []Candidate
	for _, c := range s.Candidates {
		if c.Kind == storage.KindMailbox {
			if p, ok := owner[c.Key]; ok {
				c.Kind, c.Key = storage.KindProfessional, p
			}
		}
		if !s.Kinds[c.Kind] {
			continue
		}
		k := [2]string{string(c.Kind), c.Key}
		if i, ok := best[k]; ok {
			if c.Sort < out[i].Sort {
				out[i].Sort = c.Sort
			}
			continue
		}
		best[k] = len(out)
		out = append(out, c)
	}
	kindRank := map[storage.EntryKind]int{storage.KindProfessional: 0, storage.KindOrganisation: 1, storage.KindMailbox: 2}
	slices.SortFunc(out, func(a, b Candidate) int {
		if c := strings.Compare(a.Sort, b.Sort); c != 0 {
			return c
		}
		if c := kindRank[a.Kind] - kindRank[b.Kind]; c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

// Page cuts the requested page out of the ranked candidates, and reports
// whether another follows.
func (s *Spec) Page(ranked []Candidate) (page []Candidate, more bool) {
	if len(ranked) > s.Q.Offset+s.Q.Limit {
		more = true
		ranked = ranked[:s.Q.Offset+s.Q.Limit]
	}
	if s.Q.Offset >= len(ranked) {
		return nil, more
	}
	return ranked[s.Q.Offset:], more
}

// KeysOf lists the keys of the candidates of a kind.
func KeysOf(cs []Candidate, kind storage.EntryKind) []any {
	var out []any
	for _, c := range cs {
		if c.Kind == kind {
			out = append(out, c.Key)
		}
	}
	return out
}

// PadIn pads the values of an IN list with nils (NULL, which matches
// nothing) to a power of two, so that a few statement texts serve every
// list length.
func PadIn(vals []any) []any {
	n := 1
	for n < len(vals) {
		n *= 2
	}
	return append(vals, make([]any, n-len(vals))...)
}

// Details are the entries a page's hits are made of, as a store read them:
// by professional, organisation or address key.
type Details struct {
	Profs      map[string]*storage.Professional
	Acts       map[string][]storage.Activity // by professional, in key order
	Orgs       map[string]*storage.Organisation
	ProfMboxes map[string][]storage.MailboxEntry // by professional
	OrgMboxes  map[string][]storage.MailboxEntry // by organisation
	Mboxes     map[string]*storage.MailboxEntry  // by address key
}

// NewDetails returns empty Details, ready to fill.
func NewDetails() *Details {
	return &Details{Profs: map[string]*storage.Professional{}, Acts: map[string][]storage.Activity{},
		Orgs: map[string]*storage.Organisation{}, ProfMboxes: map[string][]storage.MailboxEntry{},
		OrgMboxes: map[string][]storage.MailboxEntry{}, Mboxes: map[string]*storage.MailboxEntry{}}
}

// Hits assembles the page's hits in the candidates' order: a professional
// with its activities, the sites they are at (once each) and its
// mailboxes; an organisation with its mailboxes; a mailbox alone. An entry
// missing from d (gone between two reads) is left out.
func (d *Details) Hits(cs []Candidate) []storage.DirectoryHit {
	hits := make([]storage.DirectoryHit, 0, len(cs))
	for _, c := range cs {
		h := storage.DirectoryHit{Kind: c.Kind}
		switch c.Kind {
		case storage.KindProfessional:
			p := d.Profs[c.Key]
			if p == nil {
				continue
			}
			h.Professional = p
			h.Activities = d.Acts[c.Key]
			seen := map[string]bool{}
			for _, a := range h.Activities {
				if o := d.Orgs[a.Organisation]; o != nil && !seen[o.ID] {
					seen[o.ID] = true
					h.Sites = append(h.Sites, *o)
				}
			}
			h.Mailboxes = d.ProfMboxes[c.Key]
		case storage.KindOrganisation:
			o := d.Orgs[c.Key]
			if o == nil {
				continue
			}
			h.Organisation = o
			h.Mailboxes = d.OrgMboxes[c.Key]
		case storage.KindMailbox:
			m := d.Mboxes[c.Key]
			if m == nil {
				continue
			}
			h.Mailbox = m
		}
		hits = append(hits, h)
	}
	return hits
}

// Rows is what ScanCandidates reads: a *sql.Rows or a pgx.Rows.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ScanCandidates reads a search leg's rows (key, exact, sort, owner) as
// candidates of kind, their sort key led by the exactness tier. The caller
// closes rows.
func ScanCandidates(kind storage.EntryKind, rows Rows) ([]Candidate, error) {
	var out []Candidate
	for rows.Next() {
		var c Candidate
		var exact int64
		if err := rows.Scan(&c.Key, &exact, &c.Sort, &c.Prof); err != nil {
			return nil, err
		}
		c.Kind = kind
		c.Sort = Tier(exact) + c.Sort
		out = append(out, c)
	}
	return out, rows.Err()
}
