package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/dirkey"
)

func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{Logger: quietLogger()})
	require.NoError(t, err)
	return s
}

func indexExists(t *testing.T, s *Store, name string) bool {
	t.Helper()
	var n int
	require.NoError(t, s.rdb.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = ?`, name).Scan(&n))
	return n == 1
}

func names(p storage.DirectoryPage) []string {
	var out []string
	for _, h := range p.Hits {
		switch h.Kind {
		case storage.KindProfessional:
			out = append(out, h.Professional.FamilyName+" "+h.Professional.GivenName)
		case storage.KindOrganisation:
			out = append(out, h.Organisation.Name)
		case storage.KindMailbox:
			out = append(out, h.Mailbox.Address)
		}
	}
	return out
}

// A bulk import drops the search indexes, searches still answer the same,
// and the indexes come back at the end, or at the next Open after a crash.
func TestDirectoryBulk(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relais.db")
	s := openAt(t, path)
	d := genBenchDirectory(3000)
	queries := []storage.DirectoryQuery{
		{Name: d.profs[10].FamilyName}, {Name: d.profs[20].GivenName + " " + d.profs[20].FamilyName[:2]},
		{Name: d.profs[30].FamilyName[:3], ProfessionCode: d.profs[30].ProfessionCode}, {PostalCode: d.acts[5].PostalCode[:2]},
		{City: d.acts[7].City}, {Address: d.mbox[3].Address[:6]}, {Identifier: d.profs[40].Identifier},
	}
	require.NoError(t, s.BeginDirectoryBulk(ctx))
	require.NoError(t, s.BeginDirectoryBulk(ctx), "twice is harmless")
	assert.False(t, indexExists(t, s, "dir_professionals_name"))
	for _, b := range d.batches(1000) {
		require.NoError(t, s.ApplyDirectory(ctx, b))
	}
	var during [][]string
	for _, q := range queries {
		p, err := s.SearchDirectory(ctx, q)
		require.NoError(t, err, "%+v", q)
		require.NotEmpty(t, p.Hits, "%d %+v", len(during), q)
		during = append(during, names(p))
	}
	require.NoError(t, s.EndDirectoryBulk(ctx))
	for _, name := range deferredIndexes {
		assert.True(t, indexExists(t, s, name), name)
	}
	for i, q := range queries {
		p, err := s.SearchDirectory(ctx, q)
		require.NoError(t, err)
		if q.Name != "" || q.Address != "" || q.Identifier != "" {
			assert.Equal(t, during[i], names(p), "%+v", q)
		} else {
			assert.Len(t, p.Hits, len(during[i]), "%+v", q)
		}
	}

	// An import that dies half-way: Open puts the indexes back.
	require.NoError(t, s.BeginDirectoryBulk(ctx))
	require.NoError(t, s.Close())
	s = openAt(t, path)
	defer s.Close()
	for _, name := range deferredIndexes {
		assert.True(t, indexExists(t, s, name), name)
	}
	var n int
	require.NoError(t, s.rdb.QueryRow(`SELECT count(*) FROM dir_deferred_indexes`).Scan(&n))
	assert.Zero(t, n)
}

// During a bulk import, organisations wait in dir_organisations_pending:
// lookups by key, hashes, counts and search hits' sites see them; the end
// of the import (or the next Open) merges them with the ownership and
// update rules of ApplyDirectory.
func TestDirectoryBulkOrganisations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relais.db")
	s := openAt(t, path)
	pending := func() int {
		var n int
		require.NoError(t, s.rdb.QueryRow(`SELECT count(*) FROM dir_organisations_pending`).Scan(&n))
		return n
	}
	org := func(id, name string) storage.Organisation {
		return storage.Organisation{ID: id, FINESS: "99" + id[1:], Name: name, Hash: uint64(len(name)),
			Address: storage.PostalAddress{PostalCode: "75011", City: "PARIS"}}
	}
	// Owned by rpps before the import.
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceRPPS,
		Organisations: []storage.Organisation{org("S0000001", "CABINET ANCIEN")}}))

	require.NoError(t, s.BeginDirectoryBulk(ctx))
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceRPPS,
		Organisations: []storage.Organisation{org("S0000003", "CABINET TROIS"), org("S0000002", "CABINET DEUX"), org("S0000001", "CABINET RENOMME")},
		Professionals: []storage.Professional{{ID: "810000000001", FamilyName: "ZORGLUB", GivenName: "Anne"}},
		Activities:    []storage.Activity{{Professional: "810000000001", Key: "a", Organisation: "S0000002", PostalCode: "75011"}}}))
	// Another source names the same structures: ignored, at the merge.
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceMSSante,
		Organisations: []storage.Organisation{org("S0000002", "AUTRE SOURCE"), org("S0000001", "AUTRE SOURCE")}}))
	// The same source updates one it sent earlier in the import.
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceRPPS,
		Organisations: []storage.Organisation{org("S0000003", "CABINET TROIS BIS")}}))
	assert.Equal(t, 6, pending())
	// Entries whose key exists take the upsert's rules in bulk mode too:
	// the owner's update applies, another source's is ignored.
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceRPPS,
		Professionals: []storage.Professional{{ID: "810000000001", FamilyName: "ZORGLUB", GivenName: "Annie"}, {ID: "810000000002", FamilyName: "NOUVEAU"}},
		Activities: []storage.Activity{{Professional: "810000000001", Key: "a", Organisation: "S0000002", PostalCode: "75012"},
			{Professional: "810000000002", Key: "a", PostalCode: "13001"}}}))
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceMSSante,
		Professionals: []storage.Professional{{ID: "810000000001", FamilyName: "INTRUS"}},
		Activities:    []storage.Activity{{Professional: "810000000001", Key: "a", PostalCode: "99999"}}}))
	pr, err := s.Professional(ctx, "810000000001")
	require.NoError(t, err)
	assert.Equal(t, "Annie", pr.GivenName)
	assert.Equal(t, storage.SourceRPPS, pr.Source)
	acts, err := s.Activities(ctx, "810000000001")
	require.NoError(t, err)
	require.Len(t, acts, 1)
	assert.Equal(t, "75012", acts[0].PostalCode)
	_, err = s.Professional(ctx, "810000000002")
	require.NoError(t, err)

	o, err := s.Organisation(ctx, "S0000002")
	require.NoError(t, err)
	assert.Equal(t, "CABINET DEUX", o.Name)
	assert.Equal(t, storage.SourceRPPS, o.Source)
	o, err = s.Organisation(ctx, "990000003") // by FINESS
	require.NoError(t, err)
	assert.Equal(t, "CABINET TROIS BIS", o.Name)
	o, err = s.Organisation(ctx, "S0000001")
	require.NoError(t, err)
	assert.Equal(t, "CABINET ANCIEN", o.Name, "an update waits for the end of the import")
	n, err := s.DirectoryCount(ctx, storage.KindOrganisation, storage.SourceRPPS)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	hashes := map[string]uint64{}
	require.NoError(t, s.DirectoryHashes(ctx, storage.KindOrganisation, storage.SourceRPPS, func(k string, h uint64) error {
		hashes[k] = h
		return nil
	}))
	assert.Equal(t, map[string]uint64{"S0000001": uint64(len("CABINET ANCIEN")), "S0000002": uint64(len("CABINET DEUX")),
		"S0000003": uint64(len("CABINET TROIS BIS"))}, hashes)
	p, err := s.SearchDirectory(ctx, storage.DirectoryQuery{Name: "zorglub"})
	require.NoError(t, err)
	require.Len(t, p.Hits, 1)
	require.Len(t, p.Hits[0].Sites, 1)
	assert.Equal(t, "CABINET DEUX", p.Hits[0].Sites[0].Name)

	require.NoError(t, s.EndDirectoryBulk(ctx))
	assert.Zero(t, pending())
	for id, want := range map[string]string{"S0000001": "CABINET RENOMME", "S0000002": "CABINET DEUX", "S0000003": "CABINET TROIS BIS"} {
		o, err := s.Organisation(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want, o.Name, id)
		assert.Equal(t, storage.SourceRPPS, o.Source, id)
	}
	p, err = s.SearchDirectory(ctx, storage.DirectoryQuery{Name: "cabinet t"})
	require.NoError(t, err)
	assert.Equal(t, []string{"CABINET TROIS BIS"}, names(p))

	// A delete during the import sees what is held back.
	require.NoError(t, s.BeginDirectoryBulk(ctx))
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceRPPS,
		Organisations: []storage.Organisation{org("S0000004", "CABINET QUATRE"), org("S0000005", "CABINET CINQ")}}))
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceRPPS,
		Delete: []storage.EntryRef{{Kind: storage.KindOrganisation, Key: "S0000004"}}}))
	_, err = s.Organisation(ctx, "S0000004")
	assert.ErrorIs(t, err, storage.ErrNotFound)
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceRPPS,
		Organisations: []storage.Organisation{org("S0000006", "CABINET SIX")}}))
	assert.Equal(t, 1, pending())

	// The import dies: the next Open merges what it held back.
	require.NoError(t, s.Close())
	s = openAt(t, path)
	defer s.Close()
	assert.Zero(t, pending())
	for _, id := range []string{"S0000005", "S0000006"} {
		_, err := s.Organisation(ctx, id)
		assert.NoError(t, err, id)
	}
	n, err = s.DirectoryCount(ctx, storage.KindOrganisation, "")
	require.NoError(t, err)
	assert.Equal(t, 5, n)
}

// Accounts of a database created before the directory become local
// entries when migration 2 runs.
func TestDirectoryBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relais.db")
	s := openAt(t, path)
	_, err := s.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	a, err := s.CreateAccount(ctx, "Zoe.Durand@example.org", "Zoé Durand", "h")
	require.NoError(t, err)
	// Back to schema 1: the directory tables gone.
	require.NoError(t, s.write(ctx, "downgrade", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'dir_%'`)
		if err != nil {
			return err
		}
		var tables []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return err
			}
			tables = append(tables, n)
		}
		rows.Close()
		for _, n := range tables {
			if _, err := tx.ExecContext(ctx, `DROP TABLE `+n); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE schema_version SET version = 1`)
		return err
	}))
	require.NoError(t, s.Close())

	s = openAt(t, path)
	defer s.Close()
	mb, err := s.MailboxEntries(ctx, "zoe.durand@example.org")
	require.NoError(t, err)
	require.Len(t, mb, 1)
	assert.Equal(t, storage.MailboxEntry{Address: "Zoe.Durand@example.org", Type: storage.MailboxPersonal, GivenName: "Zoé",
		FamilyName: "Durand", Account: a.ID, Source: storage.SourceLocal}, mb[0])
	p, err := s.SearchDirectory(ctx, storage.DirectoryQuery{Name: "zoe d"})
	require.NoError(t, err)
	assert.Equal(t, []string{"Zoe.Durand@example.org"}, names(p))
}

// Every query a search runs reads through an index: no full scan of a
// directory table, no sort of a whole range (EXPLAIN QUERY PLAN,
// https://sqlite.org/eqp.html).
func TestDirectorySearchPlans(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, filepath.Join(t.TempDir(), "relais.db"))
	defer s.Close()
	d := genBenchDirectory(2000)
	for _, b := range d.batches(5000) {
		require.NoError(t, s.ApplyDirectory(ctx, b))
	}
	type traced struct {
		query string
		args  []any
	}
	var queries []traced
	searchTrace = func(q string, args []any) { queries = append(queries, traced{q, args}) }
	defer func() { searchTrace = nil }()
	p := d.profs[7]
	// With enumCap 3, the two-prefix walks take every path.
	defer func(n int) { enumCap = n }(enumCap)
	for _, capacity := range []int{enumCap, 3} {
		enumCap = capacity
		for _, q := range []storage.DirectoryQuery{
			{Name: "m"}, {Name: p.FamilyName}, {Name: p.FamilyName + " " + p.GivenName[:2]}, {Name: p.GivenName + " " + p.FamilyName[:2]},
			{Name: p.FamilyName[:3] + " " + p.GivenName[:2]}, {Name: p.FamilyName[:3], ProfessionCode: p.ProfessionCode},
			{Name: p.FamilyName[:3], SpecialtyCode: "SM54"}, {Name: p.FamilyName[:2], PostalCode: "75"}, {Name: "ma", City: "paris"},
			{PostalCode: "75"}, {PostalCode: "75011", City: "paris"}, {City: "lyon"}, {ProfessionCode: "60"}, {SpecialtyCode: "SM54"},
			{Identifier: p.Identifier}, {Identifier: d.orgs[3].FINESS}, {Address: d.mbox[2].Address[:5]}, {Address: "x", Name: "m"},
			{Name: "m c"}, {Name: "m clai"}, {Name: p.FamilyName + " " + p.GivenName}, {Name: p.GivenName[:2] + " " + p.FamilyName[:1]},
			{Name: p.FamilyName[:1], PostalCode: "0"}, {Name: p.FamilyName[:2] + " " + p.GivenName[:1], PostalCode: "01"},
			{Name: p.FamilyName, PostalCode: "01150", ProfessionCode: p.ProfessionCode, City: "p"}, {PostalCode: "0"},
			{PostalCode: "01", ProfessionCode: "10"}, {Name: "cabinet", PostalCode: "02"}, {Name: p.FamilyName[:1] + " " + p.GivenName},
		} {
			_, err := s.SearchDirectory(ctx, q)
			require.NoError(t, err, "%+v", q)
		}
	}
	require.NotEmpty(t, queries)
	for _, q := range queries {
		rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN `+q.query, q.args...)
		require.NoError(t, err, q.query)
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &notused, &detail))
			plan = append(plan, detail)
		}
		rows.Close()
		for _, line := range plan {
			full := strings.HasPrefix(line, "SCAN ") && !strings.Contains(line, " INDEX ") && !strings.HasPrefix(line, "SCAN d") && !strings.HasPrefix(line, "SCAN (subquery-") &&
				!strings.Contains(line, "CONSTANT ROW")
			assert.False(t, full, "full scan in %q: %v", q.query, plan)
			// A leg (LIMIT) reads its index alone, unless a filter needs
			// the row; the details of a page's hits (no LIMIT) may be
			// sorted: they are a page's worth.
			leg := strings.Contains(q.query, " LIMIT ")
			if leg && !strings.Contains(q.query, "city_key") && !strings.Contains(q.query, "EXISTS") {
				assert.NotContains(t, line, "USING INDEX dir_", "not covering in %q: %v", q.query, plan)
			}
			if leg {
				assert.NotContains(t, line, "TEMP B-TREE FOR ORDER BY", "sort in %q: %v", q.query, plan)
			}
		}
	}
}

// refMatch is the reference of the name semantics (storage.DirectoryQuery):
// the best ranking key of a (family, given) pair for the query's words, or
// false. Splits: head in a and tail in b, as prefixes (exact when both are
// whole), or all the words in a (exact when a is the whole key); in both
// directions. Tiers: exact before prefix, and within each the (family,
// given) direction before (given, family).
func refMatch(key, family, given string) (string, bool) {
	words := strings.Split(key, " ")
	best, ok := "", false
	consider := func(tier int, a, b string) {
		s := strconv.Itoa(tier) + a + "\x01" + b
		if !ok || s < best {
			best, ok = s, true
		}
	}
	for dir, pair := range [][2]string{{family, given}, {given, family}} {
		a, b := pair[0], pair[1]
		for i := 1; i < len(words); i++ {
			head, tail := strings.Join(words[:i], " "), strings.Join(words[i:], " ")
			if strings.HasPrefix(a, head) && strings.HasPrefix(b, tail) {
				tier := 2 + dir
				if a == head && b == tail {
					tier = dir
				}
				consider(tier, a, b)
			}
		}
		if strings.HasPrefix(a, key) {
			tier := 2 + dir
			if a == key {
				tier = dir
			}
			consider(tier, a, b)
		}
	}
	return best, ok
}

// Search against a reference: every professional the query's semantics
// match, in ranking order, and none other; in particular two very short
// words ("m r", where both name parts have many values) and one-character
// postcodes (several areas) drop nothing.
func TestDirectorySearchReference(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, filepath.Join(t.TempDir(), "relais.db"))
	defer s.Close()
	d := genBenchDirectory(8000)
	var rpps []storage.DirectoryBatch
	for _, b := range d.batches(5000) {
		if b.Source == storage.SourceRPPS {
			rpps = append(rpps, b)
		}
	}
	for _, b := range rpps {
		require.NoError(t, s.ApplyDirectory(ctx, b))
	}
	// "m r" walks more than enumCap values on both sides.
	for _, q := range []string{`SELECT count(DISTINCT family_key) FROM dir_professionals WHERE family_key LIKE 'm%'`,
		`SELECT count(DISTINCT given_key) FROM dir_professionals WHERE given_key LIKE 'r%'`} {
		var n int
		require.NoError(t, s.rdb.QueryRow(q).Scan(&n))
		require.Greater(t, n, enumCap, q)
	}
	acts := map[string][]storage.Activity{}
	for _, a := range d.acts {
		acts[a.Professional] = append(acts[a.Professional], a)
	}
	type ref struct {
		id, sort string
	}
	reference := func(q storage.DirectoryQuery) []string {
		key := dirkey.Name(q.Name)
		var out []ref
		for _, p := range d.profs {
			sort := "0" + dirkey.Name(p.FamilyName) + "\x01" + dirkey.Name(p.GivenName)
			if key != "" {
				var ok bool
				if sort, ok = refMatch(key, dirkey.Name(p.FamilyName), dirkey.Name(p.GivenName)); !ok {
					continue
				}
			}
			if q.ProfessionCode != "" && p.ProfessionCode != q.ProfessionCode || q.SpecialtyCode != "" && p.SpecialtyCode != q.SpecialtyCode {
				continue
			}
			if q.PostalCode != "" && !slices.ContainsFunc(acts[p.ID], func(a storage.Activity) bool { return strings.HasPrefix(a.PostalCode, q.PostalCode) }) {
				continue
			}
			out = append(out, ref{p.ID, sort})
		}
		slices.SortFunc(out, func(a, b ref) int { return cmp.Or(strings.Compare(a.sort, b.sort), strings.Compare(a.id, b.id)) })
		ids := make([]string, len(out))
		for i, r := range out {
			ids[i] = r.id
		}
		return ids
	}
	p, o := d.profs[11], d.profs[12]
	queries := []storage.DirectoryQuery{
		{Name: "m r"}, {Name: "r m"}, {Name: "m c"}, {Name: "ma ch"}, {Name: "m"}, {Name: p.FamilyName[:1] + " " + p.GivenName[:1]},
		{Name: p.FamilyName}, {Name: p.FamilyName + " " + p.GivenName}, {Name: p.GivenName + " " + p.FamilyName[:2]},
		{Name: p.FamilyName[:3] + " " + p.GivenName[:2]}, {Name: o.FamilyName[:2], ProfessionCode: o.ProfessionCode},
		{Name: o.FamilyName[:2], SpecialtyCode: "SM54"}, {Name: p.FamilyName[:2], PostalCode: "0"}, {Name: "m c", PostalCode: "1"},
		{Name: o.FamilyName[:1], PostalCode: d.acts[5].PostalCode[:2]}, {Name: "m", PostalCode: d.acts[9].PostalCode},
		{Name: p.GivenName[:2], PostalCode: "0", ProfessionCode: "60"}, {PostalCode: "0"}, {PostalCode: d.acts[3].PostalCode},
		{PostalCode: d.acts[4].PostalCode[:2], ProfessionCode: "10"},
	}
	// With a small enumCap, enumerations run in several rounds and the
	// walks take every path.
	defer func(n int) { enumCap = n }(enumCap)
	for _, capacity := range []int{enumCap, 3} {
		enumCap = capacity
		for _, q := range queries {
			checkReference(t, s, q, reference(q))
		}
	}
}

// checkReference compares two pages of professionals to the reference
// (every match, in ranking order).
func checkReference(t *testing.T, s *Store, q storage.DirectoryQuery, want []string) {
	t.Helper()
	q.Kinds = []storage.EntryKind{storage.KindProfessional}
	for _, page := range []struct{ offset, limit int }{{0, 200}, {7, 15}} {
		q.Offset, q.Limit = page.offset, page.limit
		res, err := s.SearchDirectory(context.Background(), q)
		require.NoError(t, err, "%+v", q)
		var got []string
		for _, h := range res.Hits {
			got = append(got, h.Professional.ID)
		}
		end := min(len(want), page.offset+page.limit)
		exp := want[min(page.offset, end):end]
		if len(exp) == 0 {
			exp = nil
		}
		assert.Equal(t, exp, got, "enumCap %d %+v (%d matches)", enumCap, q, len(want))
		assert.Equal(t, len(want) > page.offset+page.limit, res.More, "%+v", q)
	}
}

// An activity carries its professional's name keys: they follow a rename,
// an activity written before its professional, and a deletion.
func TestDirectoryActivityNames(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, filepath.Join(t.TempDir(), "relais.db"))
	defer s.Close()
	src := storage.SourceRPPS
	prof := func(id, family, given string) storage.Professional {
		return storage.Professional{ID: id, IDType: storage.IDTypeRPPS, Identifier: id[1:], FamilyName: family, GivenName: given, ProfessionCode: "10"}
	}
	act := func(prof, key, cp string) storage.Activity {
		return storage.Activity{Professional: prof, Key: key, PostalCode: cp, City: "VILLE " + cp}
	}
	// The activity first, its professional in a later batch.
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: src, Activities: []storage.Activity{act("810000000001", "a", "29200")}}))
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: src,
		Professionals: []storage.Professional{prof("810000000001", "Quéméner", "Anaïs"), prof("810000000002", "Quéré", "Yann")},
		Activities:    []storage.Activity{act("810000000002", "a", "29200"), act("810000000002", "b", "35000")}}))
	search := func(q storage.DirectoryQuery) []string {
		t.Helper()
		p, err := s.SearchDirectory(ctx, q)
		require.NoError(t, err)
		return names(p)
	}
	assert.Equal(t, []string{"Quéméner Anaïs", "Quéré Yann"}, search(storage.DirectoryQuery{Name: "que", PostalCode: "29"}))
	assert.Equal(t, []string{"Quéré Yann"}, search(storage.DirectoryQuery{Name: "yann q", PostalCode: "3"}))
	assert.Equal(t, []string{"Quéméner Anaïs", "Quéré Yann"}, search(storage.DirectoryQuery{PostalCode: "2"}))

	// A rename.
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: src, Professionals: []storage.Professional{prof("810000000002", "Le Gall", "Yann")}}))
	assert.Equal(t, []string{"Quéméner Anaïs"}, search(storage.DirectoryQuery{Name: "que", PostalCode: "29"}))
	assert.Equal(t, []string{"Le Gall Yann"}, search(storage.DirectoryQuery{Name: "yann le", PostalCode: "35"}))
	assert.Equal(t, []string{"Le Gall Yann", "Quéméner Anaïs"}, search(storage.DirectoryQuery{PostalCode: "29"}))

	// Another source cannot rename it (ownership), nor its activities.
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: "other", Professionals: []storage.Professional{prof("810000000002", "Autre", "Nom")}}))
	assert.Empty(t, search(storage.DirectoryQuery{Name: "autre", PostalCode: "35"}))

	// A deletion: its activities of another source stay, unnamed and unlisted.
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: "other", Activities: []storage.Activity{act("810000000001", "x", "29000")}}))
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: src, Delete: []storage.EntryRef{{Kind: storage.KindProfessional, Key: "810000000001"}}}))
	assert.Equal(t, []string{"Le Gall Yann"}, search(storage.DirectoryQuery{PostalCode: "29"}))
	assert.Empty(t, search(storage.DirectoryQuery{Name: "que", PostalCode: "29"}))
	var keys []string
	rows, err := s.rdb.Query(`SELECT professional || '/' || akey || '=' || family_key || ',' || given_key FROM dir_activities ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		keys = append(keys, k)
	}
	rows.Close()
	assert.Equal(t, []string{"810000000001/x=,", "810000000002/a=le gall,yann", "810000000002/b=le gall,yann"}, keys)
}
