package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
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
	for _, q := range []storage.DirectoryQuery{
		{Name: "m"}, {Name: p.FamilyName}, {Name: p.FamilyName + " " + p.GivenName[:2]}, {Name: p.GivenName + " " + p.FamilyName[:2]},
		{Name: p.FamilyName[:3] + " " + p.GivenName[:2]}, {Name: p.FamilyName[:3], ProfessionCode: p.ProfessionCode},
		{Name: p.FamilyName[:3], SpecialtyCode: "SM54"}, {Name: p.FamilyName[:2], PostalCode: "75"}, {Name: "ma", City: "paris"},
		{PostalCode: "75"}, {PostalCode: "75011", City: "paris"}, {City: "lyon"}, {ProfessionCode: "60"}, {SpecialtyCode: "SM54"},
		{Identifier: p.Identifier}, {Identifier: d.orgs[3].FINESS}, {Address: d.mbox[2].Address[:5]}, {Address: "x", Name: "m"},
	} {
		_, err := s.SearchDirectory(ctx, q)
		require.NoError(t, err, "%+v", q)
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
			full := strings.HasPrefix(line, "SCAN ") && !strings.Contains(line, " INDEX ") && !strings.HasPrefix(line, "SCAN d") &&
				!strings.Contains(line, "CONSTANT ROW")
			assert.False(t, full, "full scan in %q: %v", q.query, plan)
			assert.NotContains(t, line, "TEMP B-TREE FOR ORDER BY", "sort in %q: %v", q.query, plan)
		}
	}
}
