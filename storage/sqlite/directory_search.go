package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/dirkey"
)

// Directory search.
//
// Every criterion becomes SQL conditions; one of them drives: a name, else
// an identifier, else an address, else a postcode or city, else a
// profession or specialty. The driver's legs are index range scans
// (INDEXED BY, so that the plan never varies) in the order of the ranking,
// each with LIMIT offset+limit+1, so the page is the head of their merge.
//
// Names: the query key k = dirkey.Name(q.Name), words w1..wn. A person
// (professional, or mailbox owner) matches when, for some split of the
// words, w1..wi begin the family name and w(i+1)..wn begin the given name
// ("mart cla" and "martin claire" find Claire MARTIN), or the same with
// given and family swapped ("claire m"). The pairs (family, given) and
// (given, family) are indexed as pairs, so each split is: a seek when the
// head is the whole family name ("martin cla"), a range when all words
// fall in the family name ("martin du g"), and, when both parts are
// prefixes ("mart cla"), a loose index scan over the distinct values of
// one part followed by a seek per value (twoPrefixes). The ranking key is
// the pair itself, (family, given), or (given, family) for a match in the
// reverse direction: first the exact matches (the whole key, or the family
// name alone), then the prefix matches; alphabetical within. Each leg
// returns rows in that order, so exact family names ("martin") come before
// longer ones ("martin du gard", "martinez") at no cost. Organisations
// match on their name or trade name as one prefix.
//
// Without a name, hits come in the driver's order: identifier, address,
// postcode (or city) then id, or id for a profession or specialty alone.
//
// A mailbox row whose owner is an imported professional becomes that
// professional's hit; the others are mailbox hits, one per address, the
// local entry winning.

const (
	defaultSearchLimit = 20
	maxSearchLimit     = 200
	maxSearchOffset    = 10000
	maxNameWords       = 8
	searchMmapSize     = 4 << 30
)

// candidate is a search result before its details are read.
type candidate struct {
	kind storage.EntryKind
	key  string // professional or organisation id, or mailbox address key
	sort string // tier digit, then the ranking key
	prof string // a mailbox row's professional
}

type searchSpec struct {
	q          storage.DirectoryQuery
	words      []string
	nameKey    string
	postal     string
	city       string
	address    string
	max        int // offset+limit+1
	kinds      map[storage.EntryKind]bool
	candidates []candidate
	missing    map[string]bool // indexes out during a bulk import
}

// searchTrace, when set (by tests), sees every query a search runs, so
// that their plans can be checked.
var searchTrace func(query string, args []any)

func (s *searchSpec) trace(query string, args []any) {
	if searchTrace != nil {
		searchTrace(query, slices.Clone(args))
	}
}

// sql drops the INDEXED BY clauses naming an index that is out (during a
// bulk import), leaving the plan to the planner.
func (s *searchSpec) sql(query string) string {
	for name := range s.missing {
		query = strings.ReplaceAll(query, " INDEXED BY "+name+" ", " ")
	}
	return query
}

func prefixArgs(p string) (string, string) { return p, dirkey.PrefixEnd(p) }

func inList(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func newSearchSpec(q storage.DirectoryQuery) (*searchSpec, error) {
	s := &searchSpec{q: q}
	s.q.Identifier = strings.TrimSpace(q.Identifier)
	s.q.ProfessionCode = strings.TrimSpace(q.ProfessionCode)
	s.q.SpecialtyCode = strings.TrimSpace(q.SpecialtyCode)
	s.nameKey = dirkey.Name(q.Name)
	if s.nameKey != "" {
		s.words = strings.Split(s.nameKey, " ")
		if len(s.words) > maxNameWords {
			s.words = s.words[:maxNameWords]
			s.nameKey = strings.Join(s.words, " ")
		}
	}
	s.postal = strings.TrimSpace(q.PostalCode)
	s.city = dirkey.Name(q.City)
	s.address = strings.ToLower(strings.TrimSpace(q.Address))
	if s.nameKey == "" && s.q.Identifier == "" && s.address == "" && s.q.ProfessionCode == "" &&
		s.q.SpecialtyCode == "" && s.postal == "" && s.city == "" {
		return nil, fmt.Errorf("directory query without a criterion: %w", storage.ErrInvalid)
	}
	if q.Limit < 0 || q.Offset < 0 || q.Offset > maxSearchOffset {
		return nil, fmt.Errorf("directory query offset %d limit %d: %w", q.Offset, q.Limit, storage.ErrInvalid)
	}
	if s.q.Limit == 0 {
		s.q.Limit = defaultSearchLimit
	}
	s.q.Limit = min(s.q.Limit, maxSearchLimit)
	s.max = s.q.Offset + s.q.Limit + 1
	s.kinds = map[storage.EntryKind]bool{}
	for _, k := range q.Kinds {
		switch k {
		case storage.KindProfessional, storage.KindOrganisation, storage.KindMailbox:
			s.kinds[k] = true
		default:
			return nil, fmt.Errorf("directory query kind %q: %w", k, storage.ErrInvalid)
		}
	}
	if len(s.kinds) == 0 {
		s.kinds = map[storage.EntryKind]bool{storage.KindProfessional: true, storage.KindOrganisation: true, storage.KindMailbox: true}
	}
	return s, nil
}

// conds is a WHERE clause under construction.
type conds struct {
	where []string
	args  []any
}

func (c *conds) add(cond string, args ...any) {
	c.where = append(c.where, cond)
	c.args = append(c.args, args...)
}

func (c *conds) clone() conds {
	return conds{where: slices.Clone(c.where), args: slices.Clone(c.args)}
}

func (c *conds) sql() string {
	if len(c.where) == 0 {
		return "1"
	}
	return strings.Join(c.where, " AND ")
}

// Filters of each kind, on aliases p, o and m.

// profFilters: withPlace false leaves out the postcode and city (when
// the activities drive).
func (s *searchSpec) profFilters(withPlace bool) conds {
	var c conds
	if s.q.Identifier != "" {
		c.add(`p.id IN (?, '8' || ?, '0' || ?)`, s.q.Identifier, s.q.Identifier, s.q.Identifier)
	}
	if s.address != "" {
		lo, hi := prefixArgs(s.address)
		c.add(`EXISTS (SELECT 1 FROM dir_mailboxes x WHERE x.professional = p.id AND x.address_key >= ? AND x.address_key < ?)`, lo, hi)
	}
	if s.q.ProfessionCode != "" {
		c.add(`p.profession_code = ?`, s.q.ProfessionCode)
	}
	if s.q.SpecialtyCode != "" {
		c.add(`p.specialty_code = ?`, s.q.SpecialtyCode)
	}
	if withPlace && (s.postal != "" || s.city != "") {
		var sub conds
		if s.postal != "" {
			lo, hi := prefixArgs(s.postal)
			sub.add(`a.postal_code >= ? AND a.postal_code < ?`, lo, hi)
		}
		if s.city != "" {
			lo, hi := prefixArgs(s.city)
			sub.add(`a.city_key >= ? AND a.city_key < ?`, lo, hi)
		}
		c.add(`EXISTS (SELECT 1 FROM dir_activities a WHERE a.professional = p.id AND `+sub.sql()+`)`, sub.args...)
	}
	return c
}

// orgFilters reports false when the query cannot match an organisation.
func (s *searchSpec) orgFilters() (conds, bool) {
	var c conds
	if s.address != "" || s.q.ProfessionCode != "" || s.q.SpecialtyCode != "" {
		return c, false
	}
	if s.q.Identifier != "" {
		id := s.q.Identifier
		// A union of seeks: the planner does not split an OR over the
		// indexes of a WITHOUT ROWID table.
		c.add(`o.id IN (SELECT ? UNION ALL SELECT id FROM dir_organisations WHERE finess = ? UNION ALL SELECT id FROM dir_organisations WHERE legal_finess = ?
	UNION ALL SELECT id FROM dir_organisations WHERE siret = ? UNION ALL SELECT id FROM dir_organisations WHERE siren = ?)`, id, id, id, id, id)
	}
	if s.postal != "" {
		lo, hi := prefixArgs(s.postal)
		c.add(`o.postal_code >= ? AND o.postal_code < ?`, lo, hi)
	}
	if s.city != "" {
		lo, hi := prefixArgs(s.city)
		c.add(`o.city_key >= ? AND o.city_key < ?`, lo, hi)
	}
	return c, true
}

func (s *searchSpec) mailboxFilters() conds {
	var c conds
	if s.q.Identifier != "" {
		id := s.q.Identifier
		c.add(`m.professional IN (?, '8' || ?, '0' || ?)`, id, id, id)
	}
	if s.address != "" {
		lo, hi := prefixArgs(s.address)
		c.add(`m.address_key >= ? AND m.address_key < ?`, lo, hi)
	}
	if s.q.ProfessionCode != "" {
		c.add(`m.profession_code = ?`, s.q.ProfessionCode)
	}
	if s.q.SpecialtyCode != "" {
		c.add(`m.specialty_code = ?`, s.q.SpecialtyCode)
	}
	if s.postal != "" {
		lo, hi := prefixArgs(s.postal)
		c.add(`m.postal_code >= ? AND m.postal_code < ?`, lo, hi)
	}
	if s.city != "" {
		lo, hi := prefixArgs(s.city)
		c.add(`m.city_key >= ? AND m.city_key < ?`, lo, hi)
	}
	return c
}

// leg runs one driver query. Its columns: key, exact (0/1), ranking key,
// and a mailbox row's professional.
func (s *searchSpec) leg(ctx context.Context, tx *sql.Tx, kind storage.EntryKind, query string, args []any) error {
	args = append(args, s.max)
	s.trace(s.sql(query), args)
	rows, err := tx.QueryContext(ctx, s.sql(query), args...)
	if err != nil {
		return fmt.Errorf("search %s: %w", kind, err)
	}
	return s.scan(kind, rows)
}

func (s *searchSpec) scan(kind storage.EntryKind, rows *sql.Rows) error {
	defer rows.Close()
	for rows.Next() {
		var c candidate
		var exact bool
		if err := rows.Scan(&c.key, &exact, &c.sort, &c.prof); err != nil {
			return err
		}
		c.kind = kind
		if exact {
			c.sort = "0" + c.sort
		} else {
			c.sort = "1" + c.sort
		}
		s.candidates = append(s.candidates, c)
	}
	return rows.Err()
}

// pairSide is one direction of a name pair: columns a and b, the index on
// (a, b), and the index on (b, a) with its column names (b2 holds b's
// values, a2 a's).
type pairSide struct {
	kind       storage.EntryKind
	from       string // table and alias
	key, prof  string // result columns
	a, b, ab   string
	b2, a2, ba string
	filters    conds
}

// enumCap bounds the distinct values a two-prefix leg enumerates.
const enumCap = 64

func (s *searchSpec) pairLegs(ctx context.Context, tx *sql.Tx, p pairSide) error {
	sortExpr := p.a + ` || char(1) || ` + p.b
	abIndex := p.ab
	run := func(index string, c conds, exact string, exactArgs []any, order string) error {
		all := c.clone()
		all.where = append(all.where, p.filters.where...)
		all.args = append(all.args, p.filters.args...)
		query := `SELECT ` + p.key + `, ` + exact + `, ` + sortExpr + `, ` + p.prof + ` FROM ` + p.from + ` INDEXED BY ` + index +
			` WHERE ` + all.sql() + ` ORDER BY ` + order + ` LIMIT ?`
		return s.leg(ctx, tx, p.kind, query, append(exactArgs, all.args...))
	}
	n := len(s.words)
	for i := 1; i < n; i++ {
		head, tail := strings.Join(s.words[:i], " "), strings.Join(s.words[i:], " ")
		// The head is the whole first part: "martin cla".
		var c conds
		lo, hi := prefixArgs(tail)
		c.add(p.a+` = ? AND `+p.b+` >= ? AND `+p.b+` < ?`, head, lo, hi)
		if err := run(abIndex, c, p.b+` = ?`, []any{tail}, p.b); err != nil {
			return err
		}
		// Both parts are prefixes: "mart cla".
		if err := s.twoPrefixes(ctx, tx, p, head, tail); err != nil {
			return err
		}
	}
	var c conds
	lo, hi := prefixArgs(s.nameKey)
	c.add(p.a+` >= ? AND `+p.a+` < ?`, lo, hi)
	return run(abIndex, c, p.a+` = ?`, []any{s.nameKey}, p.a+`, `+p.b)
}

// twoPrefixes finds the rows whose a starts with head and b with tail: it
// enumerates the distinct values of one column within its prefix (a loose
// index scan, one seek per value, at most enumCap values: the column with
// the longer prefix first, else the other), then seeks each value's rows.
// Beyond enumCap values in both columns (two very short prefixes, "m c")
// it takes the first enumCap values of b: the page may then miss rows, a
// documented limit of such queries.
func (s *searchSpec) twoPrefixes(ctx context.Context, tx *sql.Tx, p pairSide, head, tail string) error {
	if s.missing[p.ab] || s.missing[p.ba] {
		return nil // a bulk import is running: no loose scans without the indexes
	}
	type dim struct{ enumCol, seekCol, index, enumPrefix, seekPrefix string }
	dims := []dim{{p.a, p.b, p.ab, head, tail}, {p.b2, p.a2, p.ba, tail, head}}
	if len(tail) > len(head) {
		dims[0], dims[1] = dims[1], dims[0]
	}
	var values []string
	var d dim
	for i, cand := range dims {
		vs, err := s.enumerate(ctx, tx, p.from, cand.enumCol, cand.index, cand.enumPrefix)
		if err != nil {
			return err
		}
		d, values = cand, vs
		if len(vs) <= enumCap {
			break
		}
		if i == 1 {
			values = vs[:enumCap]
		}
	}
	if len(values) == 0 {
		return nil
	}
	all := conds{}
	lo, hi := prefixArgs(d.seekPrefix)
	all.add(d.enumCol+` = ? AND `+d.seekCol+` >= ? AND `+d.seekCol+` < ?`, nil, lo, hi)
	all.where = append(all.where, p.filters.where...)
	all.args = append(all.args, p.filters.args...)
	query := `SELECT ` + p.key + `, 0, ` + p.a + ` || char(1) || ` + p.b + `, ` + p.prof + ` FROM ` + p.from + ` INDEXED BY ` + d.index +
		` WHERE ` + all.sql() + ` ORDER BY ` + d.seekCol + ` LIMIT ?`
	st, err := tx.PrepareContext(ctx, s.sql(query))
	if err != nil {
		return fmt.Errorf("search %s: %w", p.kind, err)
	}
	defer st.Close()
	args := append(all.args, s.max)
	for _, v := range values {
		args[0] = v
		s.trace(s.sql(query), args)
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("search %s: %w", p.kind, err)
		}
		if err := s.scan(p.kind, rows); err != nil {
			return err
		}
	}
	return nil
}

// enumerate returns the distinct values of col that start with prefix, in
// order, at most enumCap+1 (more than enumCap: too many), by a loose index
// scan (https://sqlite.org/lang_with.html, recursive common table
// expressions): one index seek per distinct value.
func (s *searchSpec) enumerate(ctx context.Context, tx *sql.Tx, from, col, index, prefix string) ([]string, error) {
	lo, hi := prefixArgs(prefix)
	next := `SELECT ` + col + ` FROM ` + from + ` INDEXED BY ` + index + ` WHERE ` + col + ` %s AND ` + col + ` < ? ORDER BY ` + col + ` LIMIT 1`
	query := `WITH RECURSIVE d(v, n) AS (SELECT (` + fmt.Sprintf(next, `>= ?`) + `), 1
UNION ALL SELECT (` + fmt.Sprintf(next, `> d.v`) + `), d.n + 1 FROM d WHERE d.v IS NOT NULL AND d.n <= ?)
SELECT v FROM d WHERE v IS NOT NULL`
	s.trace(s.sql(query), []any{lo, hi, hi, enumCap})
	rows, err := tx.QueryContext(ctx, s.sql(query), lo, hi, hi, enumCap)
	if err != nil {
		return nil, fmt.Errorf("search enumerate: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *searchSpec) nameLegs(ctx context.Context, tx *sql.Tx) error {
	if s.kinds[storage.KindProfessional] {
		f := s.profFilters(true)
		name := pairSide{kind: storage.KindProfessional, from: "dir_professionals p", key: "p.id", prof: "''",
			a: "p.family_key", b: "p.given_key", ab: "dir_professionals_name",
			b2: "p.given_key", a2: "p.family_key", ba: "dir_professionals_rev", filters: f}
		rev := pairSide{kind: storage.KindProfessional, from: "dir_professionals p", key: "p.id", prof: "''",
			a: "p.given_key", b: "p.family_key", ab: "dir_professionals_rev",
			b2: "p.family_key", a2: "p.given_key", ba: "dir_professionals_name", filters: f}
		if err := s.pairLegs(ctx, tx, name); err != nil {
			return err
		}
		if err := s.pairLegs(ctx, tx, rev); err != nil {
			return err
		}
	}
	if s.kinds[storage.KindOrganisation] {
		if f, ok := s.orgFilters(); ok {
			lo, hi := prefixArgs(s.nameKey)
			for _, col := range []string{"name_key", "trade_key"} {
				c := conds{}
				c.add(`o.`+col+` >= ? AND o.`+col+` < ?`, lo, hi)
				c.where = append(c.where, f.where...)
				c.args = append(c.args, f.args...)
				query := `SELECT o.id, o.` + col + ` = ?, o.` + col + `, '' FROM dir_organisations o INDEXED BY dir_organisations_` +
					strings.TrimSuffix(col, "_key") + ` WHERE ` + c.sql() + ` ORDER BY o.` + col + ` LIMIT ?`
				if err := s.leg(ctx, tx, storage.KindOrganisation, query, append([]any{s.nameKey}, c.args...)); err != nil {
					return err
				}
			}
		}
	}
	if s.kinds[storage.KindMailbox] || s.kinds[storage.KindProfessional] {
		f := s.mailboxFilters()
		name := pairSide{kind: storage.KindMailbox, from: "dir_mailboxes m", key: "m.address_key", prof: "m.professional",
			a: "m.name_a", b: "m.name_b", ab: "dir_mailboxes_name", b2: "m.rev_a", a2: "m.rev_b", ba: "dir_mailboxes_rev", filters: f}
		rev := pairSide{kind: storage.KindMailbox, from: "dir_mailboxes m", key: "m.address_key", prof: "m.professional",
			a: "m.rev_a", b: "m.rev_b", ab: "dir_mailboxes_rev", b2: "m.name_a", a2: "m.name_b", ba: "dir_mailboxes_name", filters: f}
		if err := s.pairLegs(ctx, tx, name); err != nil {
			return err
		}
		if err := s.pairLegs(ctx, tx, rev); err != nil {
			return err
		}
	}
	return nil
}

// otherLegs drives a query without a name.
func (s *searchSpec) otherLegs(ctx context.Context, tx *sql.Tx) error {
	wantProf, wantOrg, wantMbox := s.kinds[storage.KindProfessional], s.kinds[storage.KindOrganisation], s.kinds[storage.KindMailbox]
	of, orgOK := s.orgFilters()
	wantOrg = wantOrg && orgOK
	switch {
	case s.q.Identifier != "":
		if wantProf {
			f := s.profFilters(true)
			if err := s.leg(ctx, tx, storage.KindProfessional, `SELECT p.id, 1, p.id, '' FROM dir_professionals p WHERE `+
				f.sql()+` ORDER BY p.id LIMIT ?`, f.args); err != nil {
				return err
			}
		}
		if wantOrg {
			if err := s.leg(ctx, tx, storage.KindOrganisation, `SELECT o.id, 1, o.id, '' FROM dir_organisations o WHERE `+
				of.sql()+` LIMIT ?`, of.args); err != nil {
				return err
			}
		}
		if wantMbox {
			f := s.mailboxFilters()
			if err := s.leg(ctx, tx, storage.KindMailbox, `SELECT m.address_key, 1, m.professional, m.professional FROM dir_mailboxes m INDEXED BY dir_mailboxes_professional WHERE `+
				f.sql()+` ORDER BY m.professional LIMIT ?`, f.args); err != nil {
				return err
			}
		}
	case s.address != "":
		// Address prefix: the mailbox rows drive; rows of imported
		// professionals become their hits.
		if wantProf || wantMbox {
			f := s.mailboxFilters()
			if err := s.leg(ctx, tx, storage.KindMailbox, `SELECT m.address_key, m.address_key = ?, m.address_key, m.professional FROM dir_mailboxes m WHERE `+
				f.sql()+` ORDER BY m.address_key LIMIT ?`, append([]any{s.address}, f.args...)); err != nil {
				return err
			}
		}
	case s.postal != "" || s.city != "":
		// Postcode or city: in postcode (else city) order.
		col, index, val := "postal_code", "postal", s.postal
		if val == "" {
			col, index, val = "city_key", "city", s.city
		}
		if wantProf {
			// The activities drive (one row per activity): read until
			// enough distinct professionals.
			var sub conds
			lo, hi := prefixArgs(val)
			sub.add(`a.`+col+` >= ? AND a.`+col+` < ?`, lo, hi)
			if col == "postal_code" && s.city != "" {
				clo, chi := prefixArgs(s.city)
				sub.add(`a.city_key >= ? AND a.city_key < ?`, clo, chi)
			}
			pf := s.profFilters(false)
			query := `SELECT a.professional, 1, a.` + col + ` || char(1) || a.professional, '' FROM dir_activities a INDEXED BY dir_activities_` + index +
				` JOIN dir_professionals p ON p.id = a.professional WHERE ` + sub.sql()
			if len(pf.where) > 0 {
				query += ` AND ` + pf.sql()
			}
			query += ` ORDER BY a.` + col + `, a.professional LIMIT ?`
			if err := s.distinctLeg(ctx, tx, storage.KindProfessional, query, append(sub.args, pf.args...)); err != nil {
				return err
			}
		}
		if wantOrg {
			if err := s.leg(ctx, tx, storage.KindOrganisation, `SELECT o.id, 1, o.`+col+` || char(1) || o.id, '' FROM dir_organisations o INDEXED BY dir_organisations_`+index+` WHERE `+
				of.sql()+` ORDER BY o.`+col+`, o.id LIMIT ?`, of.args); err != nil {
				return err
			}
		}
		if wantMbox {
			f := s.mailboxFilters()
			if err := s.leg(ctx, tx, storage.KindMailbox, `SELECT m.address_key, 1, m.`+col+` || char(1) || m.address_key, m.professional FROM dir_mailboxes m INDEXED BY dir_mailboxes_`+index+` WHERE `+
				f.sql()+` ORDER BY m.`+col+`, m.address_key LIMIT ?`, f.args); err != nil {
				return err
			}
		}
	default:
		// Profession or specialty alone: by national id.
		if wantProf {
			f := s.profFilters(true)
			index := "dir_professionals_profession"
			if s.q.SpecialtyCode != "" {
				index = "dir_professionals_specialty"
			}
			if err := s.leg(ctx, tx, storage.KindProfessional, `SELECT p.id, 1, p.id, '' FROM dir_professionals p INDEXED BY `+index+` WHERE `+
				f.sql()+` ORDER BY p.id LIMIT ?`, f.args); err != nil {
				return err
			}
		}
		if wantMbox {
			f := s.mailboxFilters()
			if err := s.leg(ctx, tx, storage.KindMailbox, `SELECT m.address_key, 1, m.name_a || char(1) || m.name_b, m.professional FROM dir_mailboxes m INDEXED BY dir_mailboxes_name WHERE `+
				f.sql()+` ORDER BY m.name_a, m.name_b LIMIT ?`, f.args); err != nil {
				return err
			}
		}
	}
	return nil
}

// distinctLeg runs a leg whose rows repeat keys, reading more rows until
// it has s.max distinct keys or the rows run out.
func (s *searchSpec) distinctLeg(ctx context.Context, tx *sql.Tx, kind storage.EntryKind, query string, args []any) error {
	saved := s.candidates
	for limit := 2 * s.max; ; limit *= 4 {
		s.candidates = nil
		max := s.max
		s.max = limit
		err := s.leg(ctx, tx, kind, query, args)
		s.max = max
		if err != nil {
			return err
		}
		got := s.candidates
		seen := map[string]bool{}
		for _, c := range got {
			seen[c.key] = true
		}
		if len(got) < limit || len(seen) >= s.max {
			s.candidates = append(saved, got...)
			return nil
		}
	}
}

// SearchDirectory searches the directory (storage.DirectoryQuery).
func (s *Store) SearchDirectory(ctx context.Context, q storage.DirectoryQuery) (storage.DirectoryPage, error) {
	spec, err := newSearchSpec(q)
	if err != nil {
		return storage.DirectoryPage{}, fmt.Errorf("sqlite: search directory: %w", err)
	}
	var page storage.DirectoryPage
	err = s.read(ctx, "search directory", func(tx *sql.Tx) error {
		// Searches read scattered pages of a large file: map it rather
		// than pread each page (https://sqlite.org/mmap.html). The setting
		// stays with the pooled connection.
		if _, err := tx.ExecContext(ctx, `PRAGMA mmap_size = `+fmt.Sprint(searchMmapSize)); err != nil {
			return err
		}
		if spec.missing, err = searchIndexes(ctx, tx); err != nil {
			return err
		}
		if spec.nameKey != "" {
			err = spec.nameLegs(ctx, tx)
		} else {
			err = spec.otherLegs(ctx, tx)
		}
		if err != nil {
			return err
		}
		hits, err := spec.resolve(ctx, tx)
		if err != nil {
			return err
		}
		if len(hits) > spec.q.Offset+spec.q.Limit {
			page.More = true
			hits = hits[:spec.q.Offset+spec.q.Limit]
		}
		if spec.q.Offset >= len(hits) {
			hits = nil
		} else {
			hits = hits[spec.q.Offset:]
		}
		page.Hits, err = spec.fillHits(ctx, tx, hits)
		return err
	})
	return page, err
}

// resolve turns mailbox rows of imported professionals into professional
// candidates, keeps one candidate per entry (its best rank), and sorts.
func (s *searchSpec) resolve(ctx context.Context, tx *sql.Tx) ([]candidate, error) {
	var addrs []any
	seenAddr := map[string]bool{}
	for _, c := range s.candidates {
		if c.kind == storage.KindMailbox && !seenAddr[c.key] {
			seenAddr[c.key] = true
			addrs = append(addrs, c.key)
		}
	}
	owner := map[string]string{} // address key -> imported professional
	if len(addrs) > 0 {
		// Seeks by address, then by professional (a join lets the planner
		// walk the professionals instead).
		q := `SELECT m.address_key, m.professional FROM dir_mailboxes m WHERE m.address_key IN (` + inList(len(addrs)) + `)
AND m.professional != '' AND EXISTS (SELECT 1 FROM dir_professionals p WHERE p.id = m.professional) ORDER BY m.address_key, m.source`
		s.trace(q, addrs)
		rows, err := tx.QueryContext(ctx, q, addrs...)
		if err != nil {
			return nil, fmt.Errorf("search owners: %w", err)
		}
		for rows.Next() {
			var a, p string
			if err := rows.Scan(&a, &p); err != nil {
				rows.Close()
				return nil, err
			}
			if _, ok := owner[a]; !ok {
				owner[a] = p
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	best := map[[2]string]int{}
	var out []candidate
	for _, c := range s.candidates {
		if c.kind == storage.KindMailbox {
			if p, ok := owner[c.key]; ok {
				c.kind, c.key = storage.KindProfessional, p
			}
		}
		if !s.kinds[c.kind] {
			continue
		}
		k := [2]string{string(c.kind), c.key}
		if i, ok := best[k]; ok {
			if c.sort < out[i].sort {
				out[i].sort = c.sort
			}
			continue
		}
		best[k] = len(out)
		out = append(out, c)
	}
	kindRank := map[storage.EntryKind]int{storage.KindProfessional: 0, storage.KindOrganisation: 1, storage.KindMailbox: 2}
	slices.SortFunc(out, func(a, b candidate) int {
		if c := strings.Compare(a.sort, b.sort); c != 0 {
			return c
		}
		if c := kindRank[a.kind] - kindRank[b.kind]; c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	return out, nil
}

func keysOf(cs []candidate, kind storage.EntryKind) []any {
	var out []any
	for _, c := range cs {
		if c.kind == kind {
			out = append(out, c.key)
		}
	}
	return out
}

// fillHits reads the page's entries and their details with a few IN
// queries.
func (s *searchSpec) fillHits(ctx context.Context, tx *sql.Tx, cs []candidate) ([]storage.DirectoryHit, error) {
	profIDs, orgIDs, addrs := keysOf(cs, storage.KindProfessional), keysOf(cs, storage.KindOrganisation), keysOf(cs, storage.KindMailbox)
	profs := map[string]*storage.Professional{}
	acts := map[string][]storage.Activity{}
	orgs := map[string]*storage.Organisation{}
	profMboxes := map[string][]storage.MailboxEntry{}
	orgMboxes := map[string][]storage.MailboxEntry{}
	mboxes := map[string]*storage.MailboxEntry{}

	query := func(q string, args []any, fn func(*sql.Rows) error) error {
		if len(args) == 0 {
			return nil
		}
		s.trace(s.sql(q), args)
		rows, err := tx.QueryContext(ctx, s.sql(q), args...)
		if err != nil {
			return fmt.Errorf("search details: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := fn(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	err := query(`SELECT source, hash, data FROM dir_professionals WHERE id IN (`+inList(len(profIDs))+`)`, profIDs, func(r *sql.Rows) error {
		p, err := scanProfessional(r)
		profs[p.ID] = &p
		return err
	})
	if err != nil {
		return nil, err
	}
	var siteIDs []any
	seenSite := map[string]bool{}
	err = query(`SELECT source, hash, data FROM dir_activities WHERE professional IN (`+inList(len(profIDs))+`) ORDER BY professional, akey`, profIDs, func(r *sql.Rows) error {
		a, err := scanActivity(r)
		acts[a.Professional] = append(acts[a.Professional], a)
		if a.Organisation != "" && !seenSite[a.Organisation] {
			seenSite[a.Organisation] = true
			siteIDs = append(siteIDs, a.Organisation)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, id := range orgIDs {
		if !seenSite[id.(string)] {
			seenSite[id.(string)] = true
			siteIDs = append(siteIDs, id)
		}
	}
	err = query(`SELECT source, hash, data FROM dir_organisations WHERE id IN (`+inList(len(siteIDs))+`)`, siteIDs, func(r *sql.Rows) error {
		o, err := scanOrganisation(r)
		orgs[o.ID] = &o
		return err
	})
	if err != nil {
		return nil, err
	}
	// Professionals' addresses: their national entries name them; the
	// local entries of the same addresses come along, first.
	addrOwner := map[string]string{}
	var profAddrs []any
	err = query(`SELECT address_key, professional FROM dir_mailboxes INDEXED BY dir_mailboxes_professional WHERE professional IN (`+inList(len(profIDs))+`)`, profIDs, func(r *sql.Rows) error {
		var a, p string
		if err := r.Scan(&a, &p); err != nil {
			return err
		}
		if _, ok := addrOwner[a]; !ok {
			addrOwner[a] = p
			profAddrs = append(profAddrs, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	all := append(slices.Clone(profAddrs), addrs...)
	err = query(`SELECT source, hash, account, data FROM dir_mailboxes WHERE address_key IN (`+inList(len(all))+`) ORDER BY `+mailboxOrder, all, func(r *sql.Rows) error {
		m, err := scanMailboxEntry(r)
		if err != nil {
			return err
		}
		key := strings.ToLower(strings.TrimSpace(m.Address))
		if p, ok := addrOwner[key]; ok {
			profMboxes[p] = append(profMboxes[p], m)
		}
		if _, ok := mboxes[key]; !ok {
			mboxes[key] = &m
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = query(`SELECT source, hash, account, data FROM dir_mailboxes INDEXED BY dir_mailboxes_organisation WHERE organisation IN (`+inList(len(orgIDs))+`) ORDER BY `+mailboxOrder, orgIDs, func(r *sql.Rows) error {
		m, err := scanMailboxEntry(r)
		orgMboxes[m.Organisation] = append(orgMboxes[m.Organisation], m)
		return err
	})
	if err != nil {
		return nil, err
	}

	hits := make([]storage.DirectoryHit, 0, len(cs))
	for _, c := range cs {
		h := storage.DirectoryHit{Kind: c.kind}
		switch c.kind {
		case storage.KindProfessional:
			p := profs[c.key]
			if p == nil {
				continue // deleted between the legs and here: cannot happen in one snapshot
			}
			h.Professional = p
			h.Activities = acts[c.key]
			seen := map[string]bool{}
			for _, a := range h.Activities {
				if o := orgs[a.Organisation]; o != nil && !seen[o.ID] {
					seen[o.ID] = true
					h.Sites = append(h.Sites, *o)
				}
			}
			h.Mailboxes = profMboxes[c.key]
		case storage.KindOrganisation:
			o := orgs[c.key]
			if o == nil {
				continue
			}
			h.Organisation = o
			h.Mailboxes = orgMboxes[c.key]
		case storage.KindMailbox:
			m := mboxes[c.key]
			if m == nil {
				continue
			}
			h.Mailbox = m
		}
		hits = append(hits, h)
	}
	return hits, nil
}
