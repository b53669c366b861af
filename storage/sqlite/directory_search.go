package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"weak"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/dirkey"
	"github.com/relais-mssante/relais/storage/dirsearch"
)

// Directory search.
//
// Every criterion becomes SQL conditions; one of them drives: a name, else
// an identifier, else an address, else a postcode, else a city, else a
// profession or specialty. The driver's legs are index range scans
// (INDEXED BY, so that the plan never varies) in the order of the ranking,
// each with LIMIT offset+limit+1 (distinct keys, for the activities' rows),
// so the page is the head of their merge.
//
// Names: the query key k = dirkey.Name(q.Name), words w1..wn. A person
// (professional, or mailbox owner) matches when, for some split of the
// words, w1..wi begin the family name and w(i+1)..wn begin the given name
// ("mart cla" and "martin claire" find Claire MARTIN), or the same with
// given and family swapped ("claire m"). The pairs (family, given) and
// (given, family) are indexed as pairs, so each split walks the distinct
// values of the first part within its prefix (a loose index scan) and
// seeks each value's rows within the second prefix: rows come in ranking
// order and the walk stops when the page is full (twoPrefixes). All the
// words in the first part ("martin du g") is one range. The ranking key is
// the pair itself, (family, given), or (given, family) for a match in the
// reverse direction: first the exact matches (the whole key, or the family
// name alone), then the prefix matches; within each, the matches in the
// family-name direction before those in the reverse one (tierOf);
// alphabetical within. Organisations
// match on their name or trade name as one prefix. No enumeration is
// bounded: every match is reachable by paging.
//
// Places: a postcode prefix of two characters or more is one postal area
// (its first two characters); one character is each area that begins with
// it. The activities carry their professional's name keys, and the
// activities, organisations and mailboxes have place indexes (postal_area,
// name pair, postal_code), so a postcode with or without a name is a seek
// per area then a range in ranking order, the longer postcode filtered
// within the index.
//
// Profession and specialty filter the name legs within the name indexes
// (which carry the codes): a leg reads about page size / share of the code
// entries of the name range (a rare code in a large range reads more).
//
// Without a name, hits come in the driver's order: identifier, address,
// name for a postcode, city then id, or id for a profession or specialty
// alone.
//
// A mailbox row whose owner is an imported professional becomes that
// professional's hit; the others are mailbox hits, one per address, the
// local entry winning.

const searchMmapSize = 4 << 30

// searchSpec is a query (dirsearch.Spec: its parsing, candidates and
// ranking are shared with the PostgreSQL store) and this store's state.
type searchSpec struct {
	*dirsearch.Spec
	missing map[string]bool // indexes out during a bulk import
	stmts   *stmtCache
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

// stmtCache keeps the prepared statements of searches, by text, for one
// store. Preparing costs more than running most of a search's queries
// (complex statements, a pure Go SQLite); database/sql prepares a cached
// statement once per pooled connection. The texts are a bounded set
// (padIn); past maxCachedStmts, statements are prepared per query.
type stmtCache struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

const maxCachedStmts = 2048

var (
	stmtCachesMu sync.Mutex
	// stmtCaches is keyed by a weak pointer so that a store that is no
	// longer used can be collected; its cache goes with it.
	stmtCaches = map[weak.Pointer[Store]]*stmtCache{}
)

// searchStmts returns the store's statement cache.
func (s *Store) searchStmts() *stmtCache {
	k := weak.Make(s)
	stmtCachesMu.Lock()
	defer stmtCachesMu.Unlock()
	c := stmtCaches[k]
	if c == nil {
		c = &stmtCache{db: s.rdb, stmts: map[string]*sql.Stmt{}}
		stmtCaches[k] = c
		runtime.AddCleanup(s, func(k weak.Pointer[Store]) {
			stmtCachesMu.Lock()
			c := stmtCaches[k]
			delete(stmtCaches, k)
			stmtCachesMu.Unlock()
			c.close()
		}, k)
	}
	return c
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts = nil
}

// query runs a read query in tx, from a cached statement when it can.
func (c *stmtCache) query(ctx context.Context, tx *sql.Tx, query string, args []any) (*sql.Rows, error) {
	if c == nil {
		return tx.QueryContext(ctx, query, args...)
	}
	c.mu.Lock()
	st := c.stmts[query]
	if st == nil && c.stmts != nil && len(c.stmts) < maxCachedStmts {
		var err error
		if st, err = c.db.PrepareContext(ctx, query); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		c.stmts[query] = st
	}
	c.mu.Unlock()
	if st == nil {
		return tx.QueryContext(ctx, query, args...)
	}
	return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
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
	if s.Q.Identifier != "" {
		c.add(`p.id IN (?, '8' || ?, '0' || ?)`, s.Q.Identifier, s.Q.Identifier, s.Q.Identifier)
	}
	if s.Address != "" {
		lo, hi := prefixArgs(s.Address)
		c.add(`EXISTS (SELECT 1 FROM dir_mailboxes x WHERE x.professional = p.id AND x.address_key >= ? AND x.address_key < ?)`, lo, hi)
	}
	if s.Q.ProfessionCode != "" {
		c.add(`p.profession_code = ?`, s.Q.ProfessionCode)
	}
	if s.Q.SpecialtyCode != "" {
		c.add(`p.specialty_code = ?`, s.Q.SpecialtyCode)
	}
	if withPlace && (s.Postal != "" || s.City != "") {
		var sub conds
		if s.Postal != "" {
			lo, hi := prefixArgs(s.Postal)
			sub.add(`a.postal_code >= ? AND a.postal_code < ?`, lo, hi)
		}
		if s.City != "" {
			lo, hi := prefixArgs(s.City)
			sub.add(`a.city_key >= ? AND a.city_key < ?`, lo, hi)
		}
		c.add(`EXISTS (SELECT 1 FROM dir_activities a WHERE a.professional = p.id AND `+sub.sql()+`)`, sub.args...)
	}
	return c
}

// orgFilters reports false when the query cannot match an organisation.
func (s *searchSpec) orgFilters() (conds, bool) {
	var c conds
	if s.Address != "" || s.Q.ProfessionCode != "" || s.Q.SpecialtyCode != "" {
		return c, false
	}
	if s.Q.Identifier != "" {
		id := s.Q.Identifier
		// A union of seeks: the planner does not split an OR over the
		// indexes of a WITHOUT ROWID table.
		c.add(`o.id IN (SELECT ? UNION ALL SELECT id FROM dir_organisations WHERE finess = ? UNION ALL SELECT id FROM dir_organisations WHERE legal_finess = ?
	UNION ALL SELECT id FROM dir_organisations WHERE siret = ? UNION ALL SELECT id FROM dir_organisations WHERE siren = ?)`, id, id, id, id, id)
	}
	if s.Postal != "" {
		lo, hi := prefixArgs(s.Postal)
		c.add(`o.postal_code >= ? AND o.postal_code < ?`, lo, hi)
	}
	if s.City != "" {
		lo, hi := prefixArgs(s.City)
		c.add(`o.city_key >= ? AND o.city_key < ?`, lo, hi)
	}
	return c, true
}

func (s *searchSpec) mailboxFilters() conds {
	var c conds
	if s.Q.Identifier != "" {
		id := s.Q.Identifier
		c.add(`m.professional IN (?, '8' || ?, '0' || ?)`, id, id, id)
	}
	if s.Address != "" {
		lo, hi := prefixArgs(s.Address)
		c.add(`m.address_key >= ? AND m.address_key < ?`, lo, hi)
	}
	if s.Q.ProfessionCode != "" {
		c.add(`m.profession_code = ?`, s.Q.ProfessionCode)
	}
	if s.Q.SpecialtyCode != "" {
		c.add(`m.specialty_code = ?`, s.Q.SpecialtyCode)
	}
	if s.Postal != "" {
		lo, hi := prefixArgs(s.Postal)
		c.add(`m.postal_code >= ? AND m.postal_code < ?`, lo, hi)
	}
	if s.City != "" {
		lo, hi := prefixArgs(s.City)
		c.add(`m.city_key >= ? AND m.city_key < ?`, lo, hi)
	}
	return c
}

// and (after) appends the conditions of o.
func (c conds) and(o conds) conds {
	out := c.clone()
	out.where = append(out.where, o.where...)
	out.args = append(out.args, o.args...)
	return out
}

// leg runs one driver query (its args without the limit, which leg
// appends), prepared as st when st is not nil. Its columns: key, exact
// (tierOf), ranking key, and a mailbox row's professional. dup: the rows
// may repeat a key (one row per activity). leg reads more rows until it
// has s.Max distinct keys and every row that ties with the last of them
// (the page breaks ties by key, the index by its other columns), or the
// rows run out. It returns the candidates it added.
func (s *searchSpec) leg(ctx context.Context, tx *sql.Tx, kind storage.EntryKind, query string, args []any, dup bool) ([]dirsearch.Candidate, error) {
	query = s.sql(query)
	limit := s.Max + 1
	if dup {
		limit = 2 * s.Max
	}
	for {
		a := append(slices.Clone(args), limit)
		s.trace(query, a)
		rows, err := s.stmts.query(ctx, tx, query, a)
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

// pairSide is one direction of a name pair: columns a and b, the index on
// (a, b), and the index on (b, a) with its column names (b2 holds b's
// values, a2 a's). With lead, both indexes begin with one more column that
// lead holds equal (a postal area), before a and b.
type pairSide struct {
	kind       storage.EntryKind
	from       string // table and alias
	join       string // joined after the indexed table, or ""
	key, prof  string // result columns
	a, b, ab   string
	b2, a2, ba string
	lead       conds
	filters    conds
	dup        bool // rows repeat keys (activities)
	rev        bool // given name first: ranked after the other direction
}

// exactCol is the exact column of the side's legs (tierOf).
func (p *pairSide) exactCol(exact string) string {
	if p.rev {
		return `(` + exact + `) + 2`
	}
	return exact
}

func (p *pairSide) query(index string, c conds, exact, order string) string {
	return p.queryCols(index, c, exact, order, p.a, p.b)
}

// queryCols reads the ranking key from columns a and b (those of index,
// so that it covers the query).
func (p *pairSide) queryCols(index string, c conds, exact, order, a, b string) string {
	return `SELECT ` + p.key + `, ` + p.exactCol(exact) + `, ` + a + ` || char(1) || ` + b + `, ` + p.prof + ` FROM ` + p.from + ` INDEXED BY ` + index +
		p.join + ` WHERE ` + c.sql() + ` ORDER BY ` + order + ` LIMIT ?`
}

// enumCap is how many distinct values an enumeration reads at a time
// (a variable for tests).
var enumCap = 64

func (s *searchSpec) pairLegs(ctx context.Context, tx *sql.Tx, p pairSide) error {
	for i := 1; i < len(s.Words); i++ {
		head, tail := strings.Join(s.Words[:i], " "), strings.Join(s.Words[i:], " ")
		if err := s.twoPrefixes(ctx, tx, p, head, tail); err != nil {
			return err
		}
	}
	// All the words in a: "martin du g", "mart".
	c := p.lead.clone()
	lo, hi := prefixArgs(s.NameKey)
	c.add(p.a+` >= ? AND `+p.a+` < ?`, lo, hi)
	c = c.and(p.filters)
	_, err := s.leg(ctx, tx, p.kind, p.query(p.ab, c, p.a+` = ?`, p.a+`, `+p.b), append([]any{s.NameKey}, c.args...), p.dup)
	return err
}

// twoPrefixes finds the rows whose a starts with head and b with tail
// ("mart cla", and "martin cla" whose head is a whole family name: exact
// when both parts are whole, "martin claire"). It walks the distinct
// values of a within head (a loose index scan, enumCap values at a time)
// and seeks each value's rows within tail (one query per round, a IN
// (values)): rows then come in ranking order, so the walk stops at s.Max
// keys. When a has more than enumCap
// values and b at most enumCap within tail (a short head, a longer tail:
// "m clai"), it seeks each value of b instead, each up to s.Max keys. No
// value is ever skipped: the cost is bounded by the values walked, never
// the result.
func (s *searchSpec) twoPrefixes(ctx context.Context, tx *sql.Tx, p pairSide, head, tail string) error {
	exact := p.a + ` = ? AND ` + p.b + ` = ?`
	hlo, hhi := prefixArgs(head)
	tlo, thi := prefixArgs(tail)
	if s.missing[p.ab] || s.missing[p.ba] {
		// A bulk import is running: one filtered query, the planner's plan.
		c := p.lead.clone()
		c.add(p.a+` >= ? AND `+p.a+` < ? AND `+p.b+` >= ? AND `+p.b+` < ?`, hlo, hhi, tlo, thi)
		c = c.and(p.filters)
		q := `SELECT ` + p.key + `, ` + p.exactCol(exact) + `, ` + p.a + ` || char(1) || ` + p.b + `, ` + p.prof + ` FROM ` + p.from + p.join +
			` WHERE ` + c.sql() + ` ORDER BY ` + p.a + `, ` + p.b + ` LIMIT ?`
		_, err := s.leg(ctx, tx, p.kind, q, append([]any{head, tail}, c.args...), p.dup)
		return err
	}
	va, err := s.enumerate(ctx, tx, p.from, p.lead, p.a, p.ab, head, "")
	if err != nil {
		return err
	}
	if len(va) == 0 {
		return nil
	}
	if len(va) > enumCap {
		vb, err := s.enumerate(ctx, tx, p.from, p.lead, p.b2, p.ba, tail, "")
		if err != nil {
			return err
		}
		if len(vb) <= enumCap {
			// One seek per value of b, each in a's order, up to s.Max keys.
			c := p.lead.clone()
			at := 2 + len(c.args)
			c.add(p.b2+` = ? AND `+p.a2+` >= ? AND `+p.a2+` < ?`, nil, hlo, hhi)
			c = c.and(p.filters)
			// Rows with both parts hold a's and b's values in a2 and b2
			// too: read them there.
			q := p.queryCols(p.ba, c, p.a2+` = ? AND `+p.b2+` = ?`, p.a2, p.a2, p.b2)
			args := append([]any{head, tail}, c.args...)
			for _, v := range vb {
				args[at] = v
				if _, err := s.leg(ctx, tx, p.kind, q, args, p.dup); err != nil {
					return err
				}
			}
			return nil
		}
	}
	// The walk: each round's values in one IN list, whose seeks SQLite
	// makes in order, so rows come in ranking order without a sort.
	seen := map[string]bool{}
	for {
		batch := va[:min(len(va), enumCap)]
		c := p.lead.clone()
		in := make([]any, len(batch))
		for i, v := range batch {
			in[i] = v
		}
		in = dirsearch.PadIn(in)
		c.add(p.a+` IN (`+inList(len(in))+`)`, in...)
		c.add(p.b+` >= ? AND `+p.b+` < ?`, tlo, thi)
		c = c.and(p.filters)
		got, err := s.leg(ctx, tx, p.kind, p.query(p.ab, c, exact, p.a+`, `+p.b), append([]any{head, tail}, c.args...), p.dup)
		if err != nil {
			return err
		}
		for _, c := range got {
			seen[c.Key] = true
		}
		if len(seen) >= s.Max || len(va) <= enumCap {
			return nil
		}
		if va, err = s.enumerate(ctx, tx, p.from, p.lead, p.a, p.ab, head, va[enumCap-1]); err != nil {
			return err
		}
	}
}

// enumerate returns the distinct values of col that start with prefix
// (and follow after, when not ""), in order, at most enumCap+1, by a loose
// index scan (https://sqlite.org/lang_with.html, recursive common table
// expressions): one index seek per distinct value. lead holds the
// index's leading column.
func (s *searchSpec) enumerate(ctx context.Context, tx *sql.Tx, from string, lead conds, col, index, prefix, after string) ([]string, error) {
	lo, hi := prefixArgs(prefix)
	first, start := `>= ?`, lo
	if after != "" {
		first, start = `> ?`, after
	}
	w := ""
	if len(lead.where) > 0 {
		w = lead.sql() + ` AND `
	}
	next := `SELECT ` + col + ` FROM ` + from + ` INDEXED BY ` + index + ` WHERE ` + w + col + ` %s AND ` + col + ` < ? ORDER BY ` + col + ` LIMIT 1`
	query := s.sql(`WITH RECURSIVE d(v, n) AS (SELECT (` + fmt.Sprintf(next, first) + `), 1
UNION ALL SELECT (` + fmt.Sprintf(next, `> d.v`) + `), d.n + 1 FROM d WHERE d.v IS NOT NULL AND d.n <= ?)
SELECT v FROM d WHERE v IS NOT NULL`)
	args := append(append(append(append(slices.Clone(lead.args), start, hi), lead.args...), hi), enumCap)
	s.trace(query, args)
	rows, err := s.stmts.query(ctx, tx, query, args)
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
// character otherwise (all of them, enumerated). During a bulk import,
// without the index, one postcode range.
func (s *searchSpec) placeLeads(ctx context.Context, tx *sql.Tx, from, alias, index string) ([]conds, error) {
	if s.missing[index] {
		var c conds
		lo, hi := prefixArgs(s.Postal)
		c.add(alias+`.postal_code >= ? AND `+alias+`.postal_code < ?`, lo, hi)
		return []conds{c}, nil
	}
	var areas []string
	if len([]rune(s.Postal)) >= 2 {
		areas = []string{storage.PostalArea(s.Postal)}
	} else {
		after := ""
		for {
			vs, err := s.enumerate(ctx, tx, from, conds{}, alias+`.postal_area`, index, s.Postal, after)
			if err != nil {
				return nil, err
			}
			areas = append(areas, vs[:min(len(vs), enumCap)]...)
			if len(vs) <= enumCap {
				break
			}
			after = vs[enumCap-1]
		}
	}
	out := make([]conds, len(areas))
	for i, a := range areas {
		out[i].add(alias+`.postal_area = ?`, a)
	}
	return out, nil
}

func (s *searchSpec) nameLegs(ctx context.Context, tx *sql.Tx) error {
	if s.Kinds[storage.KindProfessional] {
		if err := s.professionalNameLegs(ctx, tx); err != nil {
			return err
		}
	}
	if s.Kinds[storage.KindOrganisation] {
		if f, ok := s.orgFilters(); ok {
			leads, names := []conds{{}}, [2]string{"dir_organisations_name", "dir_organisations_trade"}
			if s.Postal != "" {
				var err error
				if leads, err = s.placeLeads(ctx, tx, "dir_organisations o", "o", "dir_organisations_place"); err != nil {
					return err
				}
				names = [2]string{"dir_organisations_place", "dir_organisations_place_trade"}
			}
			lo, hi := prefixArgs(s.NameKey)
			for _, lead := range leads {
				for i, col := range []string{"o.name_key", "o.trade_key"} {
					c := lead.clone()
					c.add(col+` >= ? AND `+col+` < ?`, lo, hi)
					c = c.and(f)
					query := `SELECT o.id, ` + col + ` = ?, ` + col + `, '' FROM dir_organisations o INDEXED BY ` + names[i] +
						` WHERE ` + c.sql() + ` ORDER BY ` + col + ` LIMIT ?`
					if _, err := s.leg(ctx, tx, storage.KindOrganisation, query, append([]any{s.NameKey}, c.args...), false); err != nil {
						return err
					}
				}
			}
		}
	}
	if s.Kinds[storage.KindMailbox] || s.Kinds[storage.KindProfessional] {
		f := s.mailboxFilters()
		leads := []conds{{}}
		nameIdx, revIdx := "dir_mailboxes_name", "dir_mailboxes_rev"
		if s.Postal != "" {
			var err error
			if leads, err = s.placeLeads(ctx, tx, "dir_mailboxes m", "m", "dir_mailboxes_place"); err != nil {
				return err
			}
			nameIdx, revIdx = "dir_mailboxes_place", "dir_mailboxes_place_rev"
		}
		for _, lead := range leads {
			name := pairSide{kind: storage.KindMailbox, from: "dir_mailboxes m", key: "m.address_key", prof: "m.professional",
				a: "m.name_a", b: "m.name_b", ab: nameIdx, b2: "m.rev_a", a2: "m.rev_b", ba: revIdx, lead: lead, filters: f}
			rev := pairSide{kind: storage.KindMailbox, from: "dir_mailboxes m", key: "m.address_key", prof: "m.professional",
				a: "m.rev_a", b: "m.rev_b", ab: revIdx, b2: "m.name_a", a2: "m.name_b", ba: nameIdx, lead: lead, filters: f, rev: true}
			if err := s.pairLegs(ctx, tx, name); err != nil {
				return err
			}
			if err := s.pairLegs(ctx, tx, rev); err != nil {
				return err
			}
		}
	}
	return nil
}

// professionalNameLegs: without a postcode, the professionals' name pairs
// drive; with one, the activities' (which carry the names), per area.
func (s *searchSpec) professionalNameLegs(ctx context.Context, tx *sql.Tx) error {
	if s.Postal == "" {
		f := s.profFilters(true)
		name := pairSide{kind: storage.KindProfessional, from: "dir_professionals p", key: "p.id", prof: "''",
			a: "p.family_key", b: "p.given_key", ab: "dir_professionals_name",
			b2: "p.given_key", a2: "p.family_key", ba: "dir_professionals_rev", filters: f}
		rev := pairSide{kind: storage.KindProfessional, from: "dir_professionals p", key: "p.id", prof: "''",
			a: "p.given_key", b: "p.family_key", ab: "dir_professionals_rev",
			b2: "p.family_key", a2: "p.given_key", ba: "dir_professionals_name", filters: f, rev: true}
		if err := s.pairLegs(ctx, tx, name); err != nil {
			return err
		}
		return s.pairLegs(ctx, tx, rev)
	}
	leads, err := s.placeLeads(ctx, tx, "dir_activities a", "a", "dir_activities_name")
	if err != nil {
		return err
	}
	f, join := s.activityFilters()
	for _, lead := range leads {
		name := pairSide{kind: storage.KindProfessional, from: "dir_activities a", join: join, key: "a.professional", prof: "''",
			a: "a.family_key", b: "a.given_key", ab: "dir_activities_name",
			b2: "a.given_key", a2: "a.family_key", ba: "dir_activities_rev", lead: lead, filters: f, dup: true}
		rev := pairSide{kind: storage.KindProfessional, from: "dir_activities a", join: join, key: "a.professional", prof: "''",
			a: "a.given_key", b: "a.family_key", ab: "dir_activities_rev",
			b2: "a.family_key", a2: "a.given_key", ba: "dir_activities_name", lead: lead, filters: f, dup: true, rev: true}
		if err := s.pairLegs(ctx, tx, name); err != nil {
			return err
		}
		if err := s.pairLegs(ctx, tx, rev); err != nil {
			return err
		}
	}
	return nil
}

// activityFilters are the conditions of a postcode query driven by the
// activities (alias a), with the join to their professional (alias p)
// when a condition needs it.
func (s *searchSpec) activityFilters() (conds, string) {
	var c conds
	lo, hi := prefixArgs(s.Postal)
	c.add(`a.postal_code >= ? AND a.postal_code < ?`, lo, hi)
	if s.City != "" {
		clo, chi := prefixArgs(s.City)
		c.add(`a.city_key >= ? AND a.city_key < ?`, clo, chi)
	}
	pf := s.profFilters(false)
	if len(pf.where) == 0 {
		return c, ""
	}
	return c.and(pf), activityJoin
}

const activityJoin = ` CROSS JOIN dir_professionals p ON p.id = a.professional`

// otherLegs drives a query without a name.
func (s *searchSpec) otherLegs(ctx context.Context, tx *sql.Tx) error {
	wantProf, wantOrg, wantMbox := s.Kinds[storage.KindProfessional], s.Kinds[storage.KindOrganisation], s.Kinds[storage.KindMailbox]
	of, orgOK := s.orgFilters()
	wantOrg = wantOrg && orgOK
	switch {
	case s.Q.Identifier != "":
		if wantProf {
			f := s.profFilters(true)
			if _, err := s.leg(ctx, tx, storage.KindProfessional, `SELECT p.id, 1, p.id, '' FROM dir_professionals p WHERE `+
				f.sql()+` ORDER BY p.id LIMIT ?`, f.args, false); err != nil {
				return err
			}
		}
		if wantOrg {
			if _, err := s.leg(ctx, tx, storage.KindOrganisation, `SELECT o.id, 1, o.id, '' FROM dir_organisations o WHERE `+
				of.sql()+` LIMIT ?`, of.args, false); err != nil {
				return err
			}
		}
		if wantMbox {
			f := s.mailboxFilters()
			if _, err := s.leg(ctx, tx, storage.KindMailbox, `SELECT m.address_key, 1, m.professional, m.professional FROM dir_mailboxes m INDEXED BY dir_mailboxes_professional WHERE `+
				f.sql()+` ORDER BY m.professional LIMIT ?`, f.args, false); err != nil {
				return err
			}
		}
	case s.Address != "":
		// Address prefix: the mailbox rows drive; rows of imported
		// professionals become their hits.
		if wantProf || wantMbox {
			f := s.mailboxFilters()
			if _, err := s.leg(ctx, tx, storage.KindMailbox, `SELECT m.address_key, m.address_key = ?, m.address_key, m.professional FROM dir_mailboxes m WHERE `+
				f.sql()+` ORDER BY m.address_key LIMIT ?`, append([]any{s.Address}, f.args...), false); err != nil {
				return err
			}
		}
	case s.Postal != "":
		// Postcode: by name, from the place indexes, per area.
		if wantProf {
			leads, err := s.placeLeads(ctx, tx, "dir_activities a", "a", "dir_activities_name")
			if err != nil {
				return err
			}
			f, join := s.activityFilters()
			if join == "" {
				// The join drops activities whose professional is absent.
				join = activityJoin
			}
			for _, lead := range leads {
				c := lead.and(f)
				if _, err := s.leg(ctx, tx, storage.KindProfessional, `SELECT a.professional, 1, a.family_key || char(1) || a.given_key, '' FROM dir_activities a INDEXED BY dir_activities_name`+
					join+` WHERE `+c.sql()+` ORDER BY a.family_key, a.given_key LIMIT ?`, c.args, true); err != nil {
					return err
				}
			}
		}
		if wantOrg {
			leads, err := s.placeLeads(ctx, tx, "dir_organisations o", "o", "dir_organisations_place")
			if err != nil {
				return err
			}
			for _, lead := range leads {
				c := lead.and(of)
				if _, err := s.leg(ctx, tx, storage.KindOrganisation, `SELECT o.id, 1, o.name_key, '' FROM dir_organisations o INDEXED BY dir_organisations_place WHERE `+
					c.sql()+` ORDER BY o.name_key LIMIT ?`, c.args, false); err != nil {
					return err
				}
			}
		}
		if wantMbox {
			leads, err := s.placeLeads(ctx, tx, "dir_mailboxes m", "m", "dir_mailboxes_place")
			if err != nil {
				return err
			}
			f := s.mailboxFilters()
			for _, lead := range leads {
				c := lead.and(f)
				if _, err := s.leg(ctx, tx, storage.KindMailbox, `SELECT m.address_key, 1, m.name_a || char(1) || m.name_b, m.professional FROM dir_mailboxes m INDEXED BY dir_mailboxes_place WHERE `+
					c.sql()+` ORDER BY m.name_a, m.name_b LIMIT ?`, c.args, false); err != nil {
					return err
				}
			}
		}
	case s.City != "":
		// City: in city order, then id.
		if wantProf {
			var sub conds
			lo, hi := prefixArgs(s.City)
			sub.add(`a.city_key >= ? AND a.city_key < ?`, lo, hi)
			c := sub.and(s.profFilters(false))
			if _, err := s.leg(ctx, tx, storage.KindProfessional, `SELECT a.professional, 1, a.city_key || char(1) || a.professional, '' FROM dir_activities a INDEXED BY dir_activities_city CROSS JOIN dir_professionals p ON p.id = a.professional WHERE `+c.sql()+` ORDER BY a.city_key, a.professional LIMIT ?`, c.args, true); err != nil {
				return err
			}
		}
		if wantOrg {
			if _, err := s.leg(ctx, tx, storage.KindOrganisation, `SELECT o.id, 1, o.city_key || char(1) || o.id, '' FROM dir_organisations o INDEXED BY dir_organisations_city WHERE `+
				of.sql()+` ORDER BY o.city_key, o.id LIMIT ?`, of.args, false); err != nil {
				return err
			}
		}
		if wantMbox {
			f := s.mailboxFilters()
			if _, err := s.leg(ctx, tx, storage.KindMailbox, `SELECT m.address_key, 1, m.city_key || char(1) || m.address_key, m.professional FROM dir_mailboxes m INDEXED BY dir_mailboxes_city WHERE `+
				f.sql()+` ORDER BY m.city_key, m.address_key LIMIT ?`, f.args, false); err != nil {
				return err
			}
		}
	default:
		// Profession or specialty alone: by national id.
		if wantProf {
			f := s.profFilters(true)
			index := "dir_professionals_profession"
			if s.Q.SpecialtyCode != "" {
				index = "dir_professionals_specialty"
			}
			if _, err := s.leg(ctx, tx, storage.KindProfessional, `SELECT p.id, 1, p.id, '' FROM dir_professionals p INDEXED BY `+index+` WHERE `+
				f.sql()+` ORDER BY p.id LIMIT ?`, f.args, false); err != nil {
				return err
			}
		}
		if wantMbox {
			f := s.mailboxFilters()
			if _, err := s.leg(ctx, tx, storage.KindMailbox, `SELECT m.address_key, 1, m.name_a || char(1) || m.name_b, m.professional FROM dir_mailboxes m INDEXED BY dir_mailboxes_name WHERE `+
				f.sql()+` ORDER BY m.name_a, m.name_b LIMIT ?`, f.args, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// SearchDirectory searches the directory (storage.DirectoryQuery).
func (s *Store) SearchDirectory(ctx context.Context, q storage.DirectoryQuery) (storage.DirectoryPage, error) {
	ds, err := dirsearch.New(q)
	if err != nil {
		return storage.DirectoryPage{}, fmt.Errorf("sqlite: search directory: %w", err)
	}
	spec := &searchSpec{Spec: ds}
	var page storage.DirectoryPage
	err = s.read(ctx, "search directory", func(tx *sql.Tx) error {
		// Searches read scattered pages of a large file: map it rather
		// than pread each page (https://sqlite.org/mmap.html). The setting
		// stays with the pooled connection.
		if _, err := tx.ExecContext(ctx, `PRAGMA mmap_size = `+fmt.Sprint(searchMmapSize)); err != nil {
			return err
		}
		spec.stmts = s.searchStmts()
		if spec.missing, err = searchIndexes(ctx, tx); err != nil {
			return err
		}
		if spec.NameKey != "" {
			err = spec.nameLegs(ctx, tx)
		} else {
			err = spec.otherLegs(ctx, tx)
		}
		if err != nil {
			return err
		}
		ranked, err := spec.Resolve(searchOwners{spec: spec, ctx: ctx, tx: tx})
		if err != nil {
			return err
		}
		var hits []dirsearch.Candidate
		hits, page.More = spec.Page(ranked)
		page.Hits, err = spec.fillHits(ctx, tx, hits)
		return err
	})
	return page, err
}

// searchOwners answers dirsearch.Spec.Resolve in the search's
// transaction.
type searchOwners struct {
	spec *searchSpec
	ctx  context.Context
	tx   *sql.Tx
}

func (o searchOwners) rows(q string, args []any, fn func(*sql.Rows) error) error {
	o.spec.trace(q, args)
	rows, err := o.spec.stmts.query(o.ctx, o.tx, q, args)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ImportedOwners seeks by address, then by professional (a join lets the
// planner walk the professionals instead).
func (o searchOwners) ImportedOwners(addrs []any, fn func(addr, prof string)) error {
	q := `SELECT m.address_key, m.professional FROM dir_mailboxes m WHERE m.address_key IN (` + inList(len(addrs)) + `)
AND m.professional != '' AND EXISTS (SELECT 1 FROM dir_professionals p WHERE p.id = m.professional) ORDER BY m.address_key, m.source`
	return o.rows(q, addrs, func(r *sql.Rows) error {
		var a, p string
		if err := r.Scan(&a, &p); err != nil {
			return err
		}
		fn(a, p)
		return nil
	})
}

func (o searchOwners) Imported(ids []any, fn func(id string)) error {
	q := `SELECT id FROM dir_professionals WHERE id IN (` + inList(len(ids)) + `)`
	return o.rows(q, ids, func(r *sql.Rows) error {
		var p string
		if err := r.Scan(&p); err != nil {
			return err
		}
		fn(p)
		return nil
	})
}

// fillHits reads the page's entries and their details with a few IN
// queries.
func (s *searchSpec) fillHits(ctx context.Context, tx *sql.Tx, cs []dirsearch.Candidate) ([]storage.DirectoryHit, error) {
	profIDs, orgIDs, addrs := dirsearch.KeysOf(cs, storage.KindProfessional), dirsearch.KeysOf(cs, storage.KindOrganisation), dirsearch.KeysOf(cs, storage.KindMailbox)
	d := dirsearch.NewDetails()
	profs, acts, orgs, profMboxes, orgMboxes, mboxes := d.Profs, d.Acts, d.Orgs, d.ProfMboxes, d.OrgMboxes, d.Mboxes

	// q's IN list is written by query, of args padded (padIn).
	query := func(q string, args []any, fn func(*sql.Rows) error) error {
		if len(args) == 0 {
			return nil
		}
		args = dirsearch.PadIn(args)
		q = strings.Replace(q, "IN (?)", "IN ("+inList(len(args))+")", 1)
		s.trace(s.sql(q), args)
		rows, err := s.stmts.query(ctx, tx, s.sql(q), args)
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
	err := query(`SELECT source, hash, data FROM dir_professionals WHERE id IN (?)`, profIDs, func(r *sql.Rows) error {
		p, err := scanProfessional(r)
		profs[p.ID] = &p
		return err
	})
	if err != nil {
		return nil, err
	}
	var siteIDs []any
	seenSite := map[string]bool{}
	err = query(`SELECT source, hash, data FROM dir_activities WHERE professional IN (?) ORDER BY professional, akey`, profIDs, func(r *sql.Rows) error {
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
	err = query(`SELECT source, hash, data FROM dir_organisations WHERE id IN (?)`, siteIDs, func(r *sql.Rows) error {
		o, err := scanOrganisation(r)
		orgs[o.ID] = &o
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.missing != nil {
		// A bulk import is running: sites it holds back (a scan; the
		// latest row wins, as when they are merged).
		var held []any
		for _, id := range siteIDs {
			if orgs[id.(string)] == nil {
				held = append(held, id)
			}
		}
		err = query(`SELECT source, hash, data FROM dir_organisations_pending WHERE id IN (?) ORDER BY seq`, held, func(r *sql.Rows) error {
			o, err := scanOrganisation(r)
			if prev := orgs[o.ID]; prev == nil || prev.Source == o.Source {
				orgs[o.ID] = &o
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	// Professionals' addresses: their national entries name them; the
	// local entries of the same addresses come along, first.
	addrOwner := map[string]string{}
	var profAddrs []any
	err = query(`SELECT address_key, professional FROM dir_mailboxes INDEXED BY dir_mailboxes_professional WHERE professional IN (?)`, profIDs, func(r *sql.Rows) error {
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
	err = query(`SELECT source, hash, account, data FROM dir_mailboxes WHERE address_key IN (?) ORDER BY `+mailboxOrder, all, func(r *sql.Rows) error {
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
	err = query(`SELECT source, hash, account, data FROM dir_mailboxes INDEXED BY dir_mailboxes_organisation WHERE organisation IN (?) ORDER BY `+mailboxOrder, orgIDs, func(r *sql.Rows) error {
		m, err := scanMailboxEntry(r)
		orgMboxes[m.Organisation] = append(orgMboxes[m.Organisation], m)
		return err
	})
	if err != nil {
		return nil, err
	}

	return d.Hits(cs), nil
}
