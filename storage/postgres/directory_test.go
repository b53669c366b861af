package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/dircodec"
	"github.com/relais-mssante/relais/storage/postgres/pgtest"
	"github.com/relais-mssante/relais/storage/sqlite"
)

func openDirStore(t *testing.T, schema string) *Store {
	t.Helper()
	s, err := Open(context.Background(), pgtest.URL(t), Options{Logger: quietLogger(), Schema: schema, MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// dirFixture builds synthetic entries (invented names and identifiers)
// whose content depends only on their number, so that batches that
// overlap write the same values whoever writes last.
func dirProfessional(i int) storage.Professional {
	fams := []string{"MARTIN", "Dupré", "LE FÈVRE", "Moreau-Petit", "BERNARD", "Martinez", "DU GARD", "Rousseau"}
	givens := []string{"Claire", "Jean-Pierre", "Éléonore", "Paul", "Sophie", "Luc", "Anne", "Marc"}
	return storage.Professional{ID: fmt.Sprintf("8%011d", i), IDType: storage.IDTypeRPPS, Identifier: fmt.Sprintf("%011d", i),
		FamilyName: fmt.Sprintf("%s%d", fams[i%len(fams)], i/64), GivenName: givens[(i/8)%len(givens)],
		ProfessionCode: []string{"10", "60", "40"}[i%3], SpecialtyCode: []string{"SM54", "", "SM26", ""}[i%4], Hash: uint64(i) * 0x9e3779b97f4a7c15}
}

func dirActivity(i int) storage.Activity {
	pc := fmt.Sprintf("%02d%03d", 1+i%95, i%7)
	return storage.Activity{Professional: fmt.Sprintf("8%011d", i), Key: "a" + fmt.Sprint(i%2), Organisation: fmt.Sprintf("S%09d", i%40),
		ModeCode: "L", PostalCode: pc, City: []string{"PARIS", "Lyon", "Évry", "Bordeaux"}[i%4], Hash: uint64(i) + 7}
}

func dirOrganisation(i int) storage.Organisation {
	return storage.Organisation{ID: fmt.Sprintf("S%09d", i), FINESS: fmt.Sprintf("99%07d", i), Name: fmt.Sprintf("Centre Médical %d", i),
		TradeName: []string{"", "Maison de Santé"}[i%2], Hash: uint64(i) + 3,
		Address: storage.PostalAddress{PostalCode: fmt.Sprintf("%02d000", 1+i%95), City: []string{"PARIS", "Lyon", "Évry", "Bordeaux"}[i%4]}}
}

func dirMailbox(i int) storage.MailboxEntry {
	p := dirProfessional(i)
	m := storage.MailboxEntry{Address: fmt.Sprintf("Pro.%d@mssante.example", i), Type: storage.MailboxPersonal, Professional: p.ID,
		FamilyName: p.FamilyName, GivenName: p.GivenName, ProfessionCode: p.ProfessionCode, Hash: uint64(i) + 11,
		StructureAddress: storage.PostalAddress{PostalCode: fmt.Sprintf("%02d100", 1+i%95), City: "Lyon"}}
	if i%5 == 0 {
		// An address whose owner is never imported.
		m.Professional = fmt.Sprintf("8%011d", 900000+i)
	}
	if i%7 == 0 {
		m = storage.MailboxEntry{Address: fmt.Sprintf("secretariat.%d@mssante.example", i), Type: storage.MailboxOrganisational,
			Organisation: fmt.Sprintf("S%09d", i%40), OrganisationName: fmt.Sprintf("Centre Médical %d", i%40), Hash: uint64(i),
			StructureAddress: storage.PostalAddress{PostalCode: fmt.Sprintf("%02d000", 1+i%95), City: "PARIS"}}
	}
	return m
}

// dirBatch writes entries lo..hi-1; its activities are those of the
// professionals lo+shift..hi+shift-1, so that many are written before or
// after their professional, by another batch.
func dirBatch(lo, hi, shift int) storage.DirectoryBatch {
	b := storage.DirectoryBatch{Source: storage.SourceRPPS}
	for i := lo; i < hi; i++ {
		b.Professionals = append(b.Professionals, dirProfessional(i))
		b.Activities = append(b.Activities, dirActivity(i+shift))
		b.Mailboxes = append(b.Mailboxes, dirMailbox(i))
		if i%3 == 0 {
			b.Organisations = append(b.Organisations, dirOrganisation(i%40))
		}
		if i%10 == 0 {
			b.Trust = append(b.Trust, storage.TrustEntry{Domain: fmt.Sprintf("d%d.mssante.example", i%30), OperatorDN: "CN=mx",
				OperatorKey: fmt.Sprintf("cn=mx%d", i%4), Hash: uint64(i % 30)})
		}
	}
	return b
}

// dumpDirectory returns every row of the directory tables, as text, in
// key order.
func dumpDirectory(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, kind := range []storage.EntryKind{storage.KindProfessional, storage.KindActivity, storage.KindOrganisation, storage.KindMailbox, storage.KindTrust} {
		table, err := dircodec.Table(kind)
		require.NoError(t, err)
		rows, err := s.Pool().Query(context.Background(), `SELECT t::text FROM `+table+` t ORDER BY 1`)
		require.NoError(t, err)
		for rows.Next() {
			var r string
			require.NoError(t, rows.Scan(&r))
			out[table] = append(out[table], r)
		}
		require.NoError(t, rows.Err())
		rows.Close()
	}
	return out
}

// TestDirectoryConcurrentApply: two nodes applying overlapping batches at
// once end with the rows one node applying them in turn writes (no row
// lost, no name key of an activity left stale); two sources racing for
// the same organisations leave each owned whole by one of them.
func TestDirectoryConcurrentApply(t *testing.T) {
	ctx := context.Background()
	a := openDirStore(t, pgtest.Schema(t, "concurrent"))
	b := openDirStore(t, pgtest.Schema(t, "concurrent"))
	ref := openDirStore(t, pgtest.Schema(t, "sequential"))

	const batches, size = 12, 60
	var bs []storage.DirectoryBatch
	for i := range batches {
		// Batch i overlaps batch i+1 by half, and its activities belong
		// to the professionals of batch i+1.
		bs = append(bs, dirBatch(i*size/2, i*size/2+size, size/2))
	}
	for _, batch := range bs {
		require.NoError(t, ref.ApplyDirectory(ctx, batch))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(bs))
	start := make(chan struct{})
	for i, batch := range bs {
		node := a
		if i%2 == 1 {
			node = b
		}
		wg.Go(func() {
			<-start
			errs[i] = node.ApplyDirectory(ctx, batch)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "batch %d", i)
	}
	want, got := dumpDirectory(t, ref), dumpDirectory(t, a)
	require.NotEmpty(t, want["dir_activities"])
	for table := range want {
		assert.Equal(t, want[table], got[table], table)
	}
	// An activity written before its professional took the name keys
	// (trigger), whichever node wrote which.
	var stale int
	require.NoError(t, b.Pool().QueryRow(ctx, `SELECT count(*) FROM dir_activities a JOIN dir_professionals p ON p.id = a.professional
WHERE a.family_key <> p.family_key OR a.given_key <> p.given_key`).Scan(&stale))
	assert.Zero(t, stale)

	// Two sources write the same organisations at once, through two
	// nodes: each ends owned by one source, with that source's content.
	var orgs [2][]storage.Organisation
	for i := range 40 {
		for src := range 2 {
			o := dirOrganisation(1000 + i)
			o.Name = fmt.Sprintf("Version %d of %d", src, i)
			o.Hash = uint64(src)
			orgs[src] = append(orgs[src], o)
		}
	}
	wg = sync.WaitGroup{}
	for src, node := range []*Store{a, b} {
		wg.Go(func() {
			errs[src] = node.ApplyDirectory(ctx, storage.DirectoryBatch{Source: []string{storage.SourceRPPS, storage.SourceMSSante}[src], Organisations: orgs[src]})
		})
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	owned := 0
	for i := range 40 {
		o, err := b.Organisation(ctx, fmt.Sprintf("S%09d", 1000+i))
		require.NoError(t, err)
		src := int(o.Hash)
		assert.Equal(t, []string{storage.SourceRPPS, storage.SourceMSSante}[src], o.Source)
		assert.Equal(t, fmt.Sprintf("Version %d of %d", src, i), o.Name)
		owned++
	}
	assert.Equal(t, 40, owned)
}

// searchCorpus is a few thousand synthetic entries with skewed names, so
// that name prefixes have many values (the walks of dirsearch's legs take
// every path).
func searchCorpus() []storage.DirectoryBatch {
	r := rand.New(rand.NewPCG(7, 7))
	syll := strings.Fields("ma ri ne lo ber tin du rand mo reau le fe vre gar ni er ro che dal bo sa vi ou pe ti")
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(syll[min(len(syll)-1, int(float64(len(syll))*r.Float64()*r.Float64()))])
		}
		return b.String()
	}
	var profs []storage.Professional
	var acts []storage.Activity
	var orgs []storage.Organisation
	var mbox []storage.MailboxEntry
	cities := []string{"Paris", "Lyon", "Évry", "Bordeaux", "Marseille", "Lille"}
	for i := range 300 {
		orgs = append(orgs, storage.Organisation{ID: fmt.Sprintf("S%09d", i), FINESS: fmt.Sprintf("99%07d", i), SIRET: fmt.Sprintf("99%012d", i),
			Name: "Centre " + strings.ToUpper(word(2)), TradeName: []string{"", "Maison " + word(2)}[i%2],
			Address: storage.PostalAddress{PostalCode: fmt.Sprintf("%02d%03d", 1+r.IntN(95), r.IntN(20)), City: cities[r.IntN(len(cities))]}})
	}
	for i := range 3000 {
		p := storage.Professional{ID: fmt.Sprintf("8%011d", i), IDType: storage.IDTypeRPPS, Identifier: fmt.Sprintf("%011d", i),
			FamilyName: strings.ToUpper(word(1 + r.IntN(3))), GivenName: word(2), ProfessionCode: []string{"10", "10", "60", "40"}[r.IntN(4)],
			Hash: uint64(i)}
		if r.IntN(6) == 0 {
			p.FamilyName += "-" + strings.ToUpper(word(2))
		}
		if p.ProfessionCode == "10" {
			p.SpecialtyCode = []string{"SM54", "SM26"}[r.IntN(2)]
		}
		profs = append(profs, p)
		for k := range 1 + r.IntN(2) {
			o := orgs[r.IntN(len(orgs))]
			acts = append(acts, storage.Activity{Professional: p.ID, Key: fmt.Sprint("a", k), Organisation: o.ID, ModeCode: "S",
				PostalCode: o.Address.PostalCode, City: o.Address.City})
		}
		if r.IntN(3) == 0 {
			mbox = append(mbox, storage.MailboxEntry{Address: fmt.Sprintf("%s.%s.%d@mssante.example", p.GivenName, strings.ToLower(p.FamilyName), i),
				Type: storage.MailboxPersonal, Professional: p.ID, FamilyName: p.FamilyName, GivenName: p.GivenName, ProfessionCode: p.ProfessionCode,
				StructureAddress: storage.PostalAddress{PostalCode: fmt.Sprintf("%02d000", 1+r.IntN(95)), City: cities[r.IntN(len(cities))]}})
		}
	}
	// Addresses of professionals not imported, and organisations' ones.
	for i := range 400 {
		m := storage.MailboxEntry{Address: fmt.Sprintf("%s@autre.mssante.example", word(3)+fmt.Sprint(i)), Type: storage.MailboxPersonal,
			Professional: fmt.Sprintf("8%011d", 500000+i), FamilyName: strings.ToUpper(word(2)), GivenName: word(2),
			StructureAddress: storage.PostalAddress{PostalCode: fmt.Sprintf("%02d200", 1+r.IntN(95)), City: cities[r.IntN(len(cities))]}}
		if i%4 == 0 {
			o := orgs[r.IntN(len(orgs))]
			m = storage.MailboxEntry{Address: fmt.Sprintf("accueil.%d@centre.mssante.example", i), Type: storage.MailboxOrganisational,
				Organisation: o.ID, OrganisationName: o.Name, StructureAddress: o.Address}
		}
		mbox = append(mbox, m)
	}
	var out []storage.DirectoryBatch
	for lo := 0; lo < len(profs); lo += 1000 {
		out = append(out, storage.DirectoryBatch{Source: storage.SourceRPPS, Professionals: profs[lo:min(lo+1000, len(profs))]})
	}
	return append(out,
		storage.DirectoryBatch{Source: storage.SourceRPPS, Organisations: orgs, Activities: acts},
		storage.DirectoryBatch{Source: storage.SourceMSSante, Mailboxes: mbox})
}

// TestDirectorySearchMatchesSQLite: on the same entries, every query
// returns the same page from both stores (hits, their details, More),
// with the walks' enumerations at their default size and at 3.
func TestDirectorySearchMatchesSQLite(t *testing.T) {
	ctx := context.Background()
	pg := openDirStore(t, pgtest.Schema(t, "search"))
	lite, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: quietLogger()})
	require.NoError(t, err)
	defer lite.Close()
	for _, b := range searchCorpus() {
		require.NoError(t, pg.ApplyDirectory(ctx, b))
		require.NoError(t, lite.ApplyDirectory(ctx, b))
	}
	prof := []storage.EntryKind{storage.KindProfessional}
	var queries []storage.DirectoryQuery
	for _, name := range []string{"ma", "mari", "m", "ma r", "m r", "r ma", "ber", "du", "dupont", "mari ne", "ri du", "centre", "maison",
		"ne lo", "ti", "pe", "é", "zz"} {
		queries = append(queries, storage.DirectoryQuery{Name: name}, storage.DirectoryQuery{Name: name, Offset: 20, Limit: 20},
			storage.DirectoryQuery{Name: name, Limit: 200}, storage.DirectoryQuery{Name: name, PostalCode: "7"},
			storage.DirectoryQuery{Name: name, PostalCode: "75", Kinds: prof}, storage.DirectoryQuery{Name: name, ProfessionCode: "10"},
			storage.DirectoryQuery{Name: name, City: "ly"}, storage.DirectoryQuery{Name: name, SpecialtyCode: "SM26", Offset: 5})
	}
	queries = append(queries,
		storage.DirectoryQuery{PostalCode: "1"}, storage.DirectoryQuery{PostalCode: "13", Offset: 40},
		storage.DirectoryQuery{City: "par"}, storage.DirectoryQuery{City: "évry", Limit: 100},
		storage.DirectoryQuery{ProfessionCode: "60", Offset: 100}, storage.DirectoryQuery{SpecialtyCode: "SM54", Kinds: prof},
		storage.DirectoryQuery{Identifier: "00000000042"}, storage.DirectoryQuery{Identifier: "990000007"},
		storage.DirectoryQuery{Address: "ma"}, storage.DirectoryQuery{Address: "accueil.1"}, storage.DirectoryQuery{Address: "ri", Name: "ri"},
		storage.DirectoryQuery{Name: "ma", Kinds: []storage.EntryKind{storage.KindMailbox}, Limit: 50},
	)
	defer func(n int) { dirEnumCap = n }(dirEnumCap)
	for _, enumCap := range []int{dirEnumCap, 3} {
		dirEnumCap = enumCap
		nonEmpty := 0
		for _, q := range queries {
			want, err := lite.SearchDirectory(ctx, q)
			require.NoError(t, err, "%+v", q)
			got, err := pg.SearchDirectory(ctx, q)
			require.NoError(t, err, "%+v", q)
			if !assert.Equal(t, want, got, "enumCap %d, %+v", enumCap, q) {
				return
			}
			if len(want.Hits) > 0 {
				nonEmpty++
			}
		}
		assert.Greater(t, nonEmpty, len(queries)*2/3, "the queries find something")
	}
	// A query that is not valid UTF-8 matches nothing.
	p, err := pg.SearchDirectory(ctx, storage.DirectoryQuery{Address: "ma\xff"})
	require.NoError(t, err)
	assert.Empty(t, p.Hits)
}

// TestDirectoryBulk: between BeginDirectoryBulk and EndDirectoryBulk the
// search indexes are out and searches still answer as the SQLite store
// does; End (or RebuildDirectoryIndexes, after a crash) puts them back.
func TestDirectoryBulk(t *testing.T) {
	ctx := context.Background()
	schema := pgtest.Schema(t, "bulk")
	pg := openDirStore(t, schema)
	lite, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: quietLogger()})
	require.NoError(t, err)
	defer lite.Close()
	indexes := func() int {
		var n int
		require.NoError(t, pg.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ANY($1)`,
			dircodec.DeferredIndexes).Scan(&n))
		return n
	}
	require.Equal(t, len(dircodec.DeferredIndexes), indexes())
	require.NoError(t, pg.BeginDirectoryBulk(ctx))
	require.NoError(t, pg.BeginDirectoryBulk(ctx), "twice")
	assert.Zero(t, indexes())
	for _, b := range searchCorpus() {
		require.NoError(t, pg.ApplyDirectory(ctx, b))
		require.NoError(t, lite.ApplyDirectory(ctx, b))
	}
	queries := []storage.DirectoryQuery{{Name: "ma r"}, {Name: "ri", PostalCode: "7"}, {City: "par"}, {Address: "ma"}, {Identifier: "990000007"}}
	same := func(when string) {
		for _, q := range queries {
			want, err := lite.SearchDirectory(ctx, q)
			require.NoError(t, err)
			got, err := pg.SearchDirectory(ctx, q)
			require.NoError(t, err)
			assert.Equal(t, want, got, "%s: %+v", when, q)
			assert.NotEmpty(t, got.Hits, "%s: %+v", when, q)
		}
	}
	same("during the bulk import")
	require.NoError(t, pg.EndDirectoryBulk(ctx))
	assert.Equal(t, len(dircodec.DeferredIndexes), indexes())
	same("after it")

	// A bulk import that never ended: another node rebuilds the indexes.
	require.NoError(t, pg.BeginDirectoryBulk(ctx))
	pg.Close()
	other := openDirStore(t, schema)
	require.NoError(t, other.RebuildDirectoryIndexes(ctx))
	pg = other
	assert.Equal(t, len(dircodec.DeferredIndexes), indexes())
	same("after a rebuild")
	require.NoError(t, other.EndDirectoryBulk(ctx), "End without Begin")
}

// TestDirectoryBadText: a value PostgreSQL text cannot hold (NUL) is
// refused as ErrInvalid, the batch writes nothing, and the store keeps
// serving.
func TestDirectoryBadText(t *testing.T) {
	ctx := context.Background()
	s := openDirStore(t, pgtest.Schema(t, "badtext"))
	for name, b := range map[string]storage.DirectoryBatch{
		"professional id": {Source: storage.SourceRPPS, Professionals: []storage.Professional{dirProfessional(1), {ID: "8\x00"}}},
		"activity key":    {Source: storage.SourceRPPS, Activities: []storage.Activity{{Professional: "8", Key: "a\x00"}}},
		"mailbox":         {Source: storage.SourceMSSante, Mailboxes: []storage.MailboxEntry{{Address: "a\x00@b.example"}}},
		"delete":          {Source: storage.SourceRPPS, Delete: []storage.EntryRef{{Kind: storage.KindOrganisation, Key: "\x00"}}},
	} {
		require.ErrorIs(t, s.ApplyDirectory(ctx, b), storage.ErrInvalid, name)
	}
	n, err := s.DirectoryCount(ctx, storage.KindProfessional, "")
	require.NoError(t, err)
	assert.Zero(t, n)
	p, err := s.SearchDirectory(ctx, storage.DirectoryQuery{Identifier: "\x00"})
	require.NoError(t, err)
	assert.Empty(t, p.Hits)
	require.NoError(t, s.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceRPPS, Professionals: []storage.Professional{dirProfessional(1)}}))
}

func TestDirPrefixEnd(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"mar", "mas", true},
		{"é", "ê", true},
		{"aÿ", "aĀ", true},
		{"a\U0010FFFF", "b", true},
		{"\U0010FFFF", "", false},
		{"", "", false},
		{"a\uD7FF", "a\uE000", true},
	} {
		got, ok := dirPrefixEnd(tc.in)
		assert.Equal(t, tc.ok, ok, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}
