package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/dirsearch"
)

// Directory search: the SQLite store's legs (storage/sqlite,
// directory_search.go, which explains them), on the same indexes, so that
// both stores answer a query with the same page: dirsearch parses the
// query and ranks the candidates; here each leg is one btree range scan in
// ranking order, cut by LIMIT. The key columns are COLLATE "C", so ranges
// and orders are bytewise as in SQLite.
//
// Differences from the SQLite legs: no INDEXED BY (PostgreSQL's planner
// picks the index of the range and order); the loose index scans are the
// same recursive queries; PostgreSQL text must be valid UTF-8, so a prefix
// range ends at the prefix with its last character incremented
// (dirPrefixEnd), which bounds the same strings as SQLite's byte
// increment, and a criterion that is not valid UTF-8 matches nothing.

// dirEnumCap is how many distinct values an enumeration reads at a time
// (a variable for tests).
var dirEnumCap = 64

// dirSearch is one search: the parsed query and its transaction.
type dirSearch struct {
	*dirsearch.Spec
	ctx context.Context
	tx  pgx.Tx
}

// dirPrefixEnd returns the smallest valid UTF-8 string greater than every
// string that starts with prefix (prefix with its last character
// incremented); ok is false when there is none (no upper bound).
func dirPrefixEnd(prefix string) (end string, ok bool) {
	for prefix != "" {
		r, n := utf8.DecodeLastRuneInString(prefix)
		prefix = prefix[:len(prefix)-n]
		switch {
		case r == utf8.MaxRune:
			continue
		case r == 0xD7FF:
			r = 0xE000 // past the surrogates
		default:
			r++
		}
		return prefix + string(r), true
	}
	return "", false
}

// dirConds is a WHERE clause under construction, with ? placeholders
// (dirBind numbers them).
type dirConds struct {
	where []string
	args  []any
}

func (c *dirConds) add(cond string, args ...any) {
	c.where = append(c.where, cond)
	c.args = append(c.args, args...)
}

// prefix adds col >= p AND col < dirPrefixEnd(p).
func (c *dirConds) prefix(col, p string) {
	if end, ok := dirPrefixEnd(p); ok {
		c.add(col+` >= ? AND `+col+` < ?`, p, end)
		return
	}
	c.add(col+` >= ?`, p)
}

func (c *dirConds) clone() dirConds {
	return dirConds{where: slices.Clone(c.where), args: slices.Clone(c.args)}
}

func (c *dirConds) sql() string {
	if len(c.where) == 0 {
		return "true"
	}
	return strings.Join(c.where, " AND ")
}

// and (after) appends the conditions of o.
func (c dirConds) and(o dirConds) dirConds {
	out := c.clone()
	out.where = append(out.where, o.where...)
	out.args = append(out.args, o.args...)
	return out
}

// dirBind numbers the ? placeholders of q ($1, $2, ...); the queries
// hold no ? of their own.
func dirBind(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for {
		i := strings.IndexByte(q, '?')
		if i < 0 {
			b.WriteString(q)
			return b.String()
		}
		n++
		b.WriteString(q[:i])
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
		q = q[i+1:]
	}
}

func (s *dirSearch) query(q string, args []any) (pgx.Rows, error) {
	return s.tx.Query(s.ctx, dirBind(q), args...)
}

// Filters of each kind, on aliases p, o and m.

// profFilters: withPlace false leaves out the postcode and city (when
// the activities drive).
func (s *dirSearch) profFilters(withPlace bool) dirConds {
	var c dirConds
	if id := s.Q.Identifier; id != "" {
		c.add(`p.id IN (?, '8' || ?::text, '0' || ?::text)`, id, id, id)
	}
	if s.Address != "" {
		var sub dirConds
		sub.prefix(`x.address_key`, s.Address)
		c.add(`EXISTS (SELECT 1 FROM dir_mailboxes x WHERE x.professional = p.id AND `+sub.sql()+`)`, sub.args...)
	}
	if s.Q.ProfessionCode != "" {
		c.add(`p.profession_code = ?`, s.Q.ProfessionCode)
	}
	if s.Q.SpecialtyCode != "" {
		c.add(`p.specialty_code = ?`, s.Q.SpecialtyCode)
	}
	if withPlace && (s.Postal != "" || s.City != "") {
		var sub dirConds
		if s.Postal != "" {
			sub.prefix(`a.postal_code`, s.Postal)
		}
		if s.City != "" {
			sub.prefix(`a.city_key`, s.City)
		}
		c.add(`EXISTS (SELECT 1 FROM dir_activities a WHERE a.professional = p.id AND `+sub.sql()+`)`, sub.args...)
	}
	return c
}

// orgFilters reports false when the query cannot match an organisation.
func (s *dirSearch) orgFilters() (dirConds, bool) {
	var c dirConds
	if s.Address != "" || s.Q.ProfessionCode != "" || s.Q.SpecialtyCode != "" {
		return c, false
	}
	if id := s.Q.Identifier; id != "" {
		c.add(`o.id IN (SELECT ?::text UNION ALL SELECT id FROM dir_organisations WHERE finess = ? UNION ALL SELECT id FROM dir_organisations WHERE legal_finess = ?
	UNION ALL SELECT id FROM dir_organisations WHERE siret = ? UNION ALL SELECT id FROM dir_organisations WHERE siren = ?)`, id, id, id, id, id)
	}
	if s.Postal != "" {
		c.prefix(`o.postal_code`, s.Postal)
	}
	if s.City != "" {
		c.prefix(`o.city_key`, s.City)
	}
	return c, true
}

func (s *dirSearch) mailboxFilters() dirConds {
	var c dirConds
	if id := s.Q.Identifier; id != "" {
		c.add(`m.professional IN (?, '8' || ?::text, '0' || ?::text)`, id, id, id)
	}
	if s.Address != "" {
		c.prefix(`m.address_key`, s.Address)
	}
	if s.Q.ProfessionCode != "" {
		c.add(`m.profession_code = ?`, s.Q.ProfessionCode)
	}
	if s.Q.SpecialtyCode != "" {
		c.add(`m.specialty_code = ?`, s.Q.SpecialtyCode)
	}
	if s.Postal != "" {
		c.prefix(`m.postal_code`, s.Postal)
	}
	if s.City != "" {
		c.prefix(`m.city_key`, s.City)
	}
	return c
}

// leg runs one driver query (its args without the limit, which leg
// appends). Its columns: key, exact (dirsearch.Tier), ranking key, and a
// mailbox row's professional. dup: the rows may repeat a key (one row per
// activity). leg reads more rows until it has s.Max distinct keys and
// every row that ties with the last of them, or the rows run out
// (dirsearch.Spec.Enough). It returns the candidates it added.
func (s *dirSearch) leg(kind storage.EntryKind, query string, args []any, dup bool) ([]dirsearch.Candidate, error) {
	limit := s.Max + 1
	if dup {
		limit = 2 * s.Max
	}
	for {
		rows, err := s.query(query, append(slices.Clone(args), limit))
		if err != nil {
			return nil, fmt.Errorf("search %s: %w", kind, err)
		}
		got, err := dirsearch.ScanCandidates(kind, rows)
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("search %s: %w", kind, err)
		}
		if len(got) < limit || s.Enough(got) {
			s.Candidates = append(s.Candidates, got...)
			return got, nil
		}
		limit *= 4
	}
}

// dirPair is one direction of a name pair: columns a and b (indexed as a
// pair), and the same values in the other direction's columns (b2 holds
// b's values, a2 a's). With lead, the pair's indexes begin with one more
// column that lead holds equal (a postal area).
type dirPair struct {
	kind      storage.EntryKind
	from      string // table and alias
	join      string // joined after the table, or ""
	key, prof string // result columns
	a, b      string
	b2, a2    string
	lead      dirConds
	filters   dirConds
	dup       bool // rows repeat keys (activities)
	rev       bool // given name first: ranked after the other direction
}

// exactCol is the exact column of the side's legs (dirsearch.Tier).
func (p *dirPair) exactCol(exact string) string {
	if p.rev {
		return `(` + exact + `)::int + 2`
	}
	return `(` + exact + `)::int`
}

// queryCols reads the ranking key from columns a and b.
func (p *dirPair) queryCols(c dirConds, exact, order, a, b string) string {
	return `SELECT ` + p.key + `, ` + p.exactCol(exact) + `, ` + a + ` || chr(1) || ` + b + `, ` + p.prof + ` FROM ` + p.from +
		p.join + ` WHERE ` + c.sql() + ` ORDER BY ` + order + ` LIMIT ?`
}

func (s *dirSearch) pairLegs(p dirPair) error {
	for i := 1; i < len(s.Words); i++ {
		head, tail := strings.Join(s.Words[:i], " "), strings.Join(s.Words[i:], " ")
		if err := s.twoPrefixes(p, head, tail); err != nil {
			return err
		}
	}
	// All the words in a: "martin du g", "mart".
	c := p.lead.clone()
	c.prefix(p.a, s.NameKey)
	c = c.and(p.filters)
	_, err := s.leg(p.kind, p.queryCols(c, p.a+` = ?`, p.a+`, `+p.b, p.a, p.b), append([]any{s.NameKey}, c.args...), p.dup)
	return err
}

// twoPrefixes finds the rows whose a starts with head and b with tail, as
// the SQLite store does: it walks the distinct values of a within head
// (dirEnumCap at a time) and reads each round's rows within tail, in
// ranking order, until s.Max keys; when a has more than dirEnumCap values
// and b at most dirEnumCap within tail, it seeks each value of b instead.
func (s *dirSearch) twoPrefixes(p dirPair, head, tail string) error {
	exact := p.a + ` = ? AND ` + p.b + ` = ?`
	va, err := s.enumerate(p.from, p.lead, p.a, head, "")
	if err != nil {
		return err
	}
	if len(va) == 0 {
		return nil
	}
	if len(va) > dirEnumCap {
		vb, err := s.enumerate(p.from, p.lead, p.b2, tail, "")
		if err != nil {
			return err
		}
		if len(vb) <= dirEnumCap {
			// One seek per value of b, each in a's order, up to s.Max keys.
			c := p.lead.clone()
			at := 2 + len(c.args)
			c.add(p.b2+` = ?`, nil)
			c.prefix(p.a2, head)
			c = c.and(p.filters)
			// Rows with both parts hold a's and b's values in a2 and b2
			// too: read them there.
			q := p.queryCols(c, p.a2+` = ? AND `+p.b2+` = ?`, p.a2, p.a2, p.b2)
			args := append([]any{head, tail}, c.args...)
			for _, v := range vb {
				args[at] = v
				if _, err := s.leg(p.kind, q, args, p.dup); err != nil {
					return err
				}
			}
			return nil
		}
	}
	seen := map[string]bool{}
	for {
		batch := va[:min(len(va), dirEnumCap)]
		c := p.lead.clone()
		c.add(p.a+` = ANY(?::text[])`, batch)
		c.prefix(p.b, tail)
		c = c.and(p.filters)
		got, err := s.leg(p.kind, p.queryCols(c, exact, p.a+`, `+p.b, p.a, p.b), append([]any{head, tail}, c.args...), p.dup)
		if err != nil {
			return err
		}
		for _, c := range got {
			seen[c.Key] = true
		}
		if len(seen) >= s.Max || len(va) <= dirEnumCap {
			return nil
		}
		if va, err = s.enumerate(p.from, p.lead, p.a, head, va[dirEnumCap-1]); err != nil {
			return err
		}
	}
}

// enumerate returns the distinct values of col that start with prefix
// (and follow after, when not ""), in order, at most dirEnumCap+1, by a
// loose index scan (a recursive query: one index seek per distinct
// value, https://www.postgresql.org/docs/15/queries-with.html#QUERIES-WITH-RECURSIVE).
// lead holds the index's leading column.
func (s *dirSearch) enumerate(from string, lead dirConds, col, prefix, after string) ([]string, error) {
	end, bounded := dirPrefixEnd(prefix)
	first, start := `>= ?`, prefix
	if after != "" {
		first, start = `> ?`, after
	}
	w := ""
	if len(lead.where) > 0 {
		w = lead.sql() + ` AND `
	}
	upper, hi := ``, []any{}
	if bounded {
		upper, hi = ` AND `+col+` < ?`, []any{end}
	}
	next := func(cmp string) string {
		return `SELECT ` + col + ` FROM ` + from + ` WHERE ` + w + col + ` ` + cmp + upper + ` ORDER BY ` + col + ` LIMIT 1`
	}
	q := `WITH RECURSIVE d(v, n) AS (SELECT (` + next(first) + `), 1
UNION ALL SELECT (` + next(`> d.v`) + `), d.n + 1 FROM d WHERE d.v IS NOT NULL AND d.n <= ?)
SELECT v FROM d WHERE v IS NOT NULL`
	var args []any
	args = append(args, lead.args...)
	args = append(args, start)
	args = append(args, hi...)
	args = append(args, lead.args...)
	args = append(args, hi...)
	args = append(args, dirEnumCap)
	rows, err := s.query(q, args)
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

// placeLeads returns, for a postcode query, the conditions that hold a
// table's place index (led by postal_area) on each area the postcode
// prefix covers: one for two characters or more, each area of the first
// character otherwise (all of them, enumerated).
func (s *dirSearch) placeLeads(from, alias string) ([]dirConds, error) {
	var areas []string
	if utf8.RuneCountInString(s.Postal) >= 2 {
		areas = []string{storage.PostalArea(s.Postal)}
	} else {
		after := ""
		for {
			vs, err := s.enumerate(from, dirConds{}, alias+`.postal_area`, s.Postal, after)
			if err != nil {
				return nil, err
			}
			areas = append(areas, vs[:min(len(vs), dirEnumCap)]...)
			if len(vs) <= dirEnumCap {
				break
			}
			after = vs[dirEnumCap-1]
		}
	}
	out := make([]dirConds, len(areas))
	for i, a := range areas {
		out[i].add(alias+`.postal_area = ?`, a)
	}
	return out, nil
}

func (s *dirSearch) nameLegs() error {
	if s.Kinds[storage.KindProfessional] {
		if err := s.professionalNameLegs(); err != nil {
			return err
		}
	}
	if s.Kinds[storage.KindOrganisation] {
		if f, ok := s.orgFilters(); ok {
			leads := []dirConds{{}}
			if s.Postal != "" {
				var err error
				if leads, err = s.placeLeads("dir_organisations o", "o"); err != nil {
					return err
				}
			}
			for _, lead := range leads {
				for _, col := range []string{"o.name_key", "o.trade_key"} {
					c := lead.clone()
					c.prefix(col, s.NameKey)
					c = c.and(f)
					query := `SELECT o.id, (` + col + ` = ?)::int, ` + col + `, '' FROM dir_organisations o WHERE ` + c.sql() + ` ORDER BY ` + col + ` LIMIT ?`
					if _, err := s.leg(storage.KindOrganisation, query, append([]any{s.NameKey}, c.args...), false); err != nil {
						return err
					}
				}
			}
		}
	}
	if s.Kinds[storage.KindMailbox] || s.Kinds[storage.KindProfessional] {
		f := s.mailboxFilters()
		leads := []dirConds{{}}
		if s.Postal != "" {
			var err error
			if leads, err = s.placeLeads("dir_mailboxes m", "m"); err != nil {
				return err
			}
		}
		for _, lead := range leads {
			name := dirPair{kind: storage.KindMailbox, from: "dir_mailboxes m", key: "m.address_key", prof: "m.professional",
				a: "m.name_a", b: "m.name_b", b2: "m.rev_a", a2: "m.rev_b", lead: lead, filters: f}
			rev := dirPair{kind: storage.KindMailbox, from: "dir_mailboxes m", key: "m.address_key", prof: "m.professional",
				a: "m.rev_a", b: "m.rev_b", b2: "m.name_a", a2: "m.name_b", lead: lead, filters: f, rev: true}
			if err := s.pairLegs(name); err != nil {
				return err
			}
			if err := s.pairLegs(rev); err != nil {
				return err
			}
		}
	}
	return nil
}

// professionalNameLegs: without a postcode, the professionals' name pairs
// drive; with one, the activities' (which carry the names), per area.
func (s *dirSearch) professionalNameLegs() error {
	if s.Postal == "" {
		f := s.profFilters(true)
		name := dirPair{kind: storage.KindProfessional, from: "dir_professionals p", key: "p.id", prof: "''",
			a: "p.family_key", b: "p.given_key", b2: "p.given_key", a2: "p.family_key", filters: f}
		rev := dirPair{kind: storage.KindProfessional, from: "dir_professionals p", key: "p.id", prof: "''",
			a: "p.given_key", b: "p.family_key", b2: "p.family_key", a2: "p.given_key", filters: f, rev: true}
		if err := s.pairLegs(name); err != nil {
			return err
		}
		return s.pairLegs(rev)
	}
	leads, err := s.placeLeads("dir_activities a", "a")
	if err != nil {
		return err
	}
	f, join := s.activityFilters()
	for _, lead := range leads {
		name := dirPair{kind: storage.KindProfessional, from: "dir_activities a", join: join, key: "a.professional", prof: "''",
			a: "a.family_key", b: "a.given_key", b2: "a.given_key", a2: "a.family_key", lead: lead, filters: f, dup: true}
		rev := dirPair{kind: storage.KindProfessional, from: "dir_activities a", join: join, key: "a.professional", prof: "''",
			a: "a.given_key", b: "a.family_key", b2: "a.family_key", a2: "a.given_key", lead: lead, filters: f, dup: true, rev: true}
		if err := s.pairLegs(name); err != nil {
			return err
		}
		if err := s.pairLegs(rev); err != nil {
			return err
		}
	}
	return nil
}

// dirActivityJoin joins an activity (alias a) to its professional (p).
const dirActivityJoin = ` JOIN dir_professionals p ON p.id = a.professional`

// activityFilters are the conditions of a postcode query driven by the
// activities (alias a), with the join to their professional (alias p)
// when a condition needs it.
func (s *dirSearch) activityFilters() (dirConds, string) {
	var c dirConds
	c.prefix(`a.postal_code`, s.Postal)
	if s.City != "" {
		c.prefix(`a.city_key`, s.City)
	}
	pf := s.profFilters(false)
	if len(pf.where) == 0 {
		return c, ""
	}
	return c.and(pf), dirActivityJoin
}

// otherLegs drives a query without a name.
func (s *dirSearch) otherLegs() error {
	wantProf, wantOrg, wantMbox := s.Kinds[storage.KindProfessional], s.Kinds[storage.KindOrganisation], s.Kinds[storage.KindMailbox]
	of, orgOK := s.orgFilters()
	wantOrg = wantOrg && orgOK
	type leg struct {
		want  bool
		kind  storage.EntryKind
		query string
		args  []any
		dup   bool
	}
	var legs []leg
	switch {
	case s.Q.Identifier != "":
		pf, mf := s.profFilters(true), s.mailboxFilters()
		legs = []leg{
			{wantProf, storage.KindProfessional, `SELECT p.id, 1, p.id, '' FROM dir_professionals p WHERE ` + pf.sql() + ` ORDER BY p.id LIMIT ?`, pf.args, false},
			{wantOrg, storage.KindOrganisation, `SELECT o.id, 1, o.id, '' FROM dir_organisations o WHERE ` + of.sql() + ` ORDER BY o.id LIMIT ?`, of.args, false},
			{wantMbox, storage.KindMailbox, `SELECT m.address_key, 1, m.professional, m.professional FROM dir_mailboxes m WHERE ` +
				mf.sql() + ` ORDER BY m.professional LIMIT ?`, mf.args, false},
		}
	case s.Address != "":
		// Address prefix: the mailbox rows drive; rows of imported
		// professionals become their hits.
		mf := s.mailboxFilters()
		legs = []leg{{wantProf || wantMbox, storage.KindMailbox, `SELECT m.address_key, (m.address_key = ?)::int, m.address_key, m.professional FROM dir_mailboxes m WHERE ` +
			mf.sql() + ` ORDER BY m.address_key LIMIT ?`, append([]any{s.Address}, mf.args...), false}}
	case s.Postal != "":
		// Postcode: by name, from the place indexes, per area.
		if wantProf {
			leads, err := s.placeLeads("dir_activities a", "a")
			if err != nil {
				return err
			}
			f, join := s.activityFilters()
			if join == "" {
				// The join drops activities whose professional is absent.
				join = dirActivityJoin
			}
			for _, lead := range leads {
				c := lead.and(f)
				legs = append(legs, leg{true, storage.KindProfessional, `SELECT a.professional, 1, a.family_key || chr(1) || a.given_key, '' FROM dir_activities a` +
					join + ` WHERE ` + c.sql() + ` ORDER BY a.family_key, a.given_key LIMIT ?`, c.args, true})
			}
		}
		if wantOrg {
			leads, err := s.placeLeads("dir_organisations o", "o")
			if err != nil {
				return err
			}
			for _, lead := range leads {
				c := lead.and(of)
				legs = append(legs, leg{true, storage.KindOrganisation, `SELECT o.id, 1, o.name_key, '' FROM dir_organisations o WHERE ` +
					c.sql() + ` ORDER BY o.name_key LIMIT ?`, c.args, false})
			}
		}
		if wantMbox {
			leads, err := s.placeLeads("dir_mailboxes m", "m")
			if err != nil {
				return err
			}
			f := s.mailboxFilters()
			for _, lead := range leads {
				c := lead.and(f)
				legs = append(legs, leg{true, storage.KindMailbox, `SELECT m.address_key, 1, m.name_a || chr(1) || m.name_b, m.professional FROM dir_mailboxes m WHERE ` +
					c.sql() + ` ORDER BY m.name_a, m.name_b LIMIT ?`, c.args, false})
			}
		}
	case s.City != "":
		// City: in city order, then id.
		var sub dirConds
		sub.prefix(`a.city_key`, s.City)
		pc := sub.and(s.profFilters(false))
		mf := s.mailboxFilters()
		legs = []leg{
			{wantProf, storage.KindProfessional, `SELECT a.professional, 1, a.city_key || chr(1) || a.professional, '' FROM dir_activities a` + dirActivityJoin +
				` WHERE ` + pc.sql() + ` ORDER BY a.city_key, a.professional LIMIT ?`, pc.args, true},
			{wantOrg, storage.KindOrganisation, `SELECT o.id, 1, o.city_key || chr(1) || o.id, '' FROM dir_organisations o WHERE ` +
				of.sql() + ` ORDER BY o.city_key, o.id LIMIT ?`, of.args, false},
			{wantMbox, storage.KindMailbox, `SELECT m.address_key, 1, m.city_key || chr(1) || m.address_key, m.professional FROM dir_mailboxes m WHERE ` +
				mf.sql() + ` ORDER BY m.city_key, m.address_key LIMIT ?`, mf.args, false},
		}
	default:
		// Profession or specialty alone: by national id.
		pf, mf := s.profFilters(true), s.mailboxFilters()
		legs = []leg{
			{wantProf, storage.KindProfessional, `SELECT p.id, 1, p.id, '' FROM dir_professionals p WHERE ` + pf.sql() + ` ORDER BY p.id LIMIT ?`, pf.args, false},
			{wantMbox, storage.KindMailbox, `SELECT m.address_key, 1, m.name_a || chr(1) || m.name_b, m.professional FROM dir_mailboxes m WHERE ` +
				mf.sql() + ` ORDER BY m.name_a, m.name_b LIMIT ?`, mf.args, false},
		}
	}
	for _, l := range legs {
		if !l.want {
			continue
		}
		if _, err := s.leg(l.kind, l.query, l.args, l.dup); err != nil {
			return err
		}
	}
	return nil
}

// validQuery reports whether every text criterion is valid UTF-8 without
// NUL: the database holds no other text, so another matches nothing.
func validQuery(q storage.DirectoryQuery) bool {
	for _, v := range []string{q.Name, q.Identifier, q.Address, q.ProfessionCode, q.SpecialtyCode, q.PostalCode, q.City} {
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return false
		}
	}
	return true
}

// SearchDirectory searches the directory (storage.DirectoryQuery).
func (s *Store) SearchDirectory(ctx context.Context, q storage.DirectoryQuery) (storage.DirectoryPage, error) {
	spec, err := dirsearch.New(q)
	if err != nil {
		return storage.DirectoryPage{}, fmt.Errorf("postgres: search directory: %w", err)
	}
	if !validQuery(q) {
		return storage.DirectoryPage{}, nil
	}
	var page storage.DirectoryPage
	err = s.read(ctx, "search directory", func(tx pgx.Tx) error {
		spec.Candidates = nil
		ds := &dirSearch{Spec: spec, ctx: ctx, tx: tx}
		var err error
		if spec.NameKey != "" {
			err = ds.nameLegs()
		} else {
			err = ds.otherLegs()
		}
		if err != nil {
			return err
		}
		ranked, err := spec.Resolve(ds)
		if err != nil {
			return err
		}
		var hits []dirsearch.Candidate
		hits, page.More = spec.Page(ranked)
		page.Hits, err = ds.fillHits(hits)
		return err
	})
	return page, err
}

// ImportedOwners answers dirsearch.Spec.Resolve.
func (s *dirSearch) ImportedOwners(addrs []any, fn func(addr, prof string)) error {
	rows, err := s.tx.Query(s.ctx, `SELECT m.address_key, m.professional FROM dir_mailboxes m WHERE m.address_key = ANY($1::text[])
AND m.professional <> '' AND EXISTS (SELECT 1 FROM dir_professionals p WHERE p.id = m.professional) ORDER BY m.address_key, m.source`, dirTextArray(addrs))
	if err != nil {
		return err
	}
	defer rows.Close()
	var a, p string
	for rows.Next() {
		if err := rows.Scan(&a, &p); err != nil {
			return err
		}
		fn(a, p)
	}
	return rows.Err()
}

// Imported answers dirsearch.Spec.Resolve.
func (s *dirSearch) Imported(ids []any, fn func(id string)) error {
	rows, err := s.tx.Query(s.ctx, `SELECT id FROM dir_professionals WHERE id = ANY($1::text[])`, dirTextArray(ids))
	if err != nil {
		return err
	}
	defer rows.Close()
	var p string
	for rows.Next() {
		if err := rows.Scan(&p); err != nil {
			return err
		}
		fn(p)
	}
	return rows.Err()
}

// dirTextArray is the strings of vals (the padding nils left out).
func dirTextArray(vals []any) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if v, ok := v.(string); ok {
			out = append(out, v)
		}
	}
	return out
}

// fillHits reads the page's entries and their details with a few
// queries on key arrays.
func (s *dirSearch) fillHits(cs []dirsearch.Candidate) ([]storage.DirectoryHit, error) {
	profIDs := dirTextArray(dirsearch.KeysOf(cs, storage.KindProfessional))
	orgIDs := dirTextArray(dirsearch.KeysOf(cs, storage.KindOrganisation))
	addrs := dirTextArray(dirsearch.KeysOf(cs, storage.KindMailbox))
	d := dirsearch.NewDetails()
	profs, acts, orgs, profMboxes, orgMboxes, mboxes := d.Profs, d.Acts, d.Orgs, d.ProfMboxes, d.OrgMboxes, d.Mboxes

	query := func(q string, keys []string, fn func(pgx.Rows) error) error {
		if len(keys) == 0 {
			return nil
		}
		rows, err := s.tx.Query(s.ctx, q, keys)
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
	err := query(`SELECT source, hash, data FROM dir_professionals WHERE id = ANY($1::text[])`, profIDs, func(r pgx.Rows) error {
		p, err := scanProfessional(r)
		profs[p.ID] = &p
		return err
	})
	if err != nil {
		return nil, err
	}
	var siteIDs []string
	seenSite := map[string]bool{}
	err = query(`SELECT source, hash, data FROM dir_activities WHERE professional = ANY($1::text[]) ORDER BY professional, akey`, profIDs, func(r pgx.Rows) error {
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
		if !seenSite[id] {
			seenSite[id] = true
			siteIDs = append(siteIDs, id)
		}
	}
	err = query(`SELECT source, hash, data FROM dir_organisations WHERE id = ANY($1::text[])`, siteIDs, func(r pgx.Rows) error {
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
	var profAddrs []string
	err = query(`SELECT address_key, professional FROM dir_mailboxes WHERE professional = ANY($1::text[])`, profIDs, func(r pgx.Rows) error {
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
	err = query(`SELECT source, hash, account, data FROM dir_mailboxes WHERE address_key = ANY($1::text[]) ORDER BY `+dirMailboxOrder, all, func(r pgx.Rows) error {
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
	err = query(`SELECT source, hash, account, data FROM dir_mailboxes WHERE organisation = ANY($1::text[]) ORDER BY `+dirMailboxOrder, orgIDs, func(r pgx.Rows) error {
		m, err := scanMailboxEntry(r)
		orgMboxes[m.Organisation] = append(orgMboxes[m.Organisation], m)
		return err
	})
	if err != nil {
		return nil, err
	}

	return d.Hits(cs), nil
}
