package sqlite

import (
	"context"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// A synthetic national directory for the benchmarks: n professionals with
// 1.5 activities each on average (the RPPS file's ratio: 2M lines for 1.3M
// professionals), n/9 organisations, a PER address for a third of the
// professionals and an ORG address for half the organisations. Names are
// built from syllables and drawn with a skewed distribution, so that some
// family names are very common (like MARTIN) and most are rare.

var (
	benchSyllables = strings.Fields("ma ri ne lo ber tin du rand mo reau le fe vre gar ni er ro che dal bo sa vi ou pe ti jo li ca mi po la ru sel fon tai gue rin mar cha va lan dre si")
	benchCities    = strings.Fields("paris lyon marseille toulouse nice nantes strasbourg montpellier bordeaux lille rennes reims brest tours dijon angers nimes grenoble")
	benchProfs     = []struct {
		code  string
		share int
		specs []string
	}{
		{"10", 40, []string{"SM54", "SM26", "SM02", "SM32", "SM42", "SM47"}},
		{"60", 35, nil}, {"50", 7, nil}, {"40", 5, []string{"SCD01", "SCD02"}}, {"21", 6, nil}, {"70", 4, nil}, {"80", 2, nil}, {"91", 1, nil},
	}
)

type benchDirectory struct {
	profs []storage.Professional
	acts  []storage.Activity
	orgs  []storage.Organisation
	mbox  []storage.MailboxEntry
}

func benchWord(r *rand.Rand, syll int) string {
	var b strings.Builder
	for range syll {
		b.WriteString(benchSyllables[r.IntN(len(benchSyllables))])
	}
	return b.String()
}

// skewed draws an index in [0, n) with a heavy head (about Zipf's law).
func skewed(r *rand.Rand, n int) int {
	f := r.Float64()
	return min(n-1, int(float64(n)*f*f*f))
}

func genBenchDirectory(n int) *benchDirectory {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	families := make([]string, max(1000, n/60))
	for i := range families {
		families[i] = strings.ToUpper(benchWord(r, 2+r.IntN(2)))
		if r.IntN(40) == 0 {
			families[i] += "-" + strings.ToUpper(benchWord(r, 2))
		} else if r.IntN(60) == 0 {
			families[i] = "DE " + families[i]
		}
	}
	givens := make([]string, 800)
	for i := range givens {
		g := benchWord(r, 2+r.IntN(2))
		givens[i] = strings.ToUpper(g[:1]) + g[1:]
		if r.IntN(15) == 0 {
			givens[i] += "-" + strings.ToUpper(g[:1]) + benchWord(r, 1)
		}
	}
	d := &benchDirectory{}
	norgs := max(10, n/9)
	for i := range norgs {
		dept := 1 + skewed(r, 95)
		cp := fmt.Sprintf("%02d%03d", dept, r.IntN(60)*10)
		o := storage.Organisation{ID: fmt.Sprintf("S%09d", 100000000+i), FINESS: fmt.Sprintf("%09d", 900000000+i), SIRET: fmt.Sprintf("%014d", 10000000000000+int64(i)),
			Name: "CABINET " + families[skewed(r, len(families))], Hash: r.Uint64(),
			Address: storage.PostalAddress{Number: strconv.Itoa(1 + r.IntN(200)), StreetType: "RUE", Street: strings.ToUpper(benchWord(r, 3)),
				PostalCode: cp, City: strings.ToUpper(benchCities[dept%len(benchCities)]) + " " + strconv.Itoa(dept)}}
		if i%5 == 0 {
			o.Name = "CENTRE HOSPITALIER " + strings.ToUpper(benchWord(r, 3))
		}
		d.orgs = append(d.orgs, o)
		if i%2 == 0 {
			d.mbox = append(d.mbox, storage.MailboxEntry{Address: fmt.Sprintf("secretariat.%d@org%d.mssante.example", i, i%97), Type: storage.MailboxOrganisational,
				Organisation: o.ID, OrganisationName: o.Name, StructureAddress: o.Address, Hash: r.Uint64()})
		}
	}
	for i := range n {
		pc := benchProfs[0]
		for x, k := r.IntN(100), 0; ; k++ {
			if x < benchProfs[k].share {
				pc = benchProfs[k]
				break
			}
			x -= benchProfs[k].share
		}
		ident := fmt.Sprintf("1%010d", 1000000+i*7)
		p := storage.Professional{ID: "8" + ident, IDType: storage.IDTypeRPPS, Identifier: ident, CivilityCode: "DR", Civility: "Docteur",
			FamilyName: families[skewed(r, len(families))], GivenName: givens[skewed(r, len(givens))],
			ProfessionCode: pc.code, Profession: "Profession " + pc.code, CategoryCode: "C", Category: "Civil", Hash: r.Uint64()}
		if pc.specs != nil {
			p.SpecialtyCode = pc.specs[r.IntN(len(pc.specs))]
			p.Specialty = "Savoir-faire " + p.SpecialtyCode
		}
		d.profs = append(d.profs, p)
		nacts := 1
		if r.IntN(2) == 0 {
			nacts = 1 + r.IntN(2) + r.IntN(2)
		}
		for k := range nacts {
			o := &d.orgs[r.IntN(len(d.orgs))]
			d.acts = append(d.acts, storage.Activity{Professional: p.ID, Key: fmt.Sprintf("%08x", r.Uint32()) + strconv.Itoa(k), Organisation: o.ID,
				ModeCode: "L", Mode: "Libéral", PostalCode: o.Address.PostalCode, City: o.Address.City, Hash: r.Uint64()})
		}
		if i%3 == 0 {
			d.mbox = append(d.mbox, storage.MailboxEntry{Address: strings.ToLower(fmt.Sprintf("%s.%s.%d@pro.mssante.example",
				strings.ReplaceAll(p.GivenName, "-", ""), strings.ReplaceAll(strings.ReplaceAll(p.FamilyName, " ", ""), "-", ""), i)),
				Type: storage.MailboxPersonal, Professional: p.ID, FamilyName: p.FamilyName, GivenName: p.GivenName,
				ProfessionCode: p.ProfessionCode, Hash: r.Uint64()})
		}
	}
	return d
}

// batches cuts the directory as the importer does: in file order, about
// size entries per batch, each professional with its activities.
func (d *benchDirectory) batches(size int) []storage.DirectoryBatch {
	var out []storage.DirectoryBatch
	cur := storage.DirectoryBatch{Source: storage.SourceRPPS}
	n, a, o := 0, 0, 0
	flush := func() {
		out = append(out, cur)
		cur = storage.DirectoryBatch{Source: storage.SourceRPPS}
		n = 0
	}
	for i := range d.profs {
		// Organisations arrive spread over the file, as first seen.
		for o < len(d.orgs) && o*len(d.profs) <= i*len(d.orgs) {
			cur.Organisations = append(cur.Organisations, d.orgs[o])
			o++
			n++
		}
		cur.Professionals = append(cur.Professionals, d.profs[i])
		n++
		for a < len(d.acts) && d.acts[a].Professional == d.profs[i].ID {
			cur.Activities = append(cur.Activities, d.acts[a])
			a++
			n++
		}
		if n >= size {
			flush()
		}
	}
	cur.Organisations = append(cur.Organisations, d.orgs[o:]...)
	flush()
	for i := 0; i < len(d.mbox); i += size {
		out = append(out, storage.DirectoryBatch{Source: storage.SourceMSSante, Mailboxes: d.mbox[i:min(i+size, len(d.mbox))]})
	}
	return out
}

func benchDirectoryRows() int {
	if v, err := strconv.Atoi(os.Getenv("RELAIS_BENCH_DIRECTORY_ROWS")); err == nil && v > 0 {
		return v
	}
	return 200000
}

func applyAll(b *testing.B, s *Store, batches []storage.DirectoryBatch) {
	ctx := context.Background()
	for _, bt := range batches {
		if err := s.ApplyDirectory(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
}

var (
	benchDirOnce sync.Once
	benchQ       *benchQueries
	benchDirPath string
	benchDirErr  error
)

// benchQueries is what the search benchmark draws its queries from: the
// generated directory's few fields it uses, and nothing else, so that the
// garbage collector does not mark gigabytes of generated entries while
// searches are timed (with 2 cores, a marking cycle of seconds shows in
// the tail latencies).
type benchQueries struct {
	profs     []benchProf
	postcodes []string // one per activity
	addresses []string
}

type benchProf struct {
	family, given, profession, identifier string
}

// benchDirectoryDB returns the queries' data of the generated directory
// and a database holding it, built once per process and cached under
// os.TempDir() by size and schema, so that reruns only open it.
func benchDirectoryDB(b *testing.B) (*benchQueries, string) {
	benchDirOnce.Do(func() {
		n := benchDirectoryRows()
		benchDir := genBenchDirectory(n)
		benchQ = &benchQueries{}
		for _, p := range benchDir.profs {
			benchQ.profs = append(benchQ.profs, benchProf{p.FamilyName, p.GivenName, p.ProfessionCode, p.Identifier})
		}
		for _, a := range benchDir.acts {
			benchQ.postcodes = append(benchQ.postcodes, a.PostalCode)
		}
		for _, m := range benchDir.mbox {
			benchQ.addresses = append(benchQ.addresses, m.Address)
		}
		schema := crc32.ChecksumIEEE([]byte(strings.Join(migrations, "")))
		benchDirPath = filepath.Join(os.TempDir(), fmt.Sprintf("relais-dirbench-%d-%08x.db", n, schema))
		if _, err := os.Stat(benchDirPath); err == nil {
			return
		}
		tmp := benchDirPath + ".building"
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(tmp + suffix)
		}
		s, err := Open(tmp, Options{Logger: quietLogger()})
		if err != nil {
			benchDirErr = err
			return
		}
		start := time.Now()
		if benchDirErr = s.BeginDirectoryBulk(context.Background()); benchDirErr != nil {
			return
		}
		for _, bt := range benchDir.batches(5000) {
			if err := s.ApplyDirectory(context.Background(), bt); err != nil {
				benchDirErr = err
				s.Close()
				return
			}
		}
		if benchDirErr = s.EndDirectoryBulk(context.Background()); benchDirErr != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "built %s in %v\n", benchDirPath, time.Since(start).Round(time.Millisecond))
		if benchDirErr = s.Close(); benchDirErr == nil {
			benchDirErr = os.Rename(tmp, benchDirPath)
		}
	})
	if benchDirErr != nil {
		b.Fatal(benchDirErr)
	}
	runtime.GC()
	return benchQ, benchDirPath
}

// BenchmarkApplyDirectory imports the RPPS part of the synthetic directory
// (professionals, activities, organisations) into an empty store in
// batches of 5,000 entries between BeginDirectoryBulk and EndDirectoryBulk,
// then re-imports it with 1% of the professionals changed (differential:
// only the changed entries are sent, no bulk mode).
func BenchmarkApplyDirectory(b *testing.B) {
	n := benchDirectoryRows()
	d := genBenchDirectory(n)
	// The RPPS file alone: the MSSanté extraction is another import.
	var batches []storage.DirectoryBatch
	var rpps int
	for _, bt := range d.batches(5000) {
		if bt.Source == storage.SourceRPPS {
			batches = append(batches, bt)
			rpps += len(bt.Professionals) + len(bt.Activities) + len(bt.Organisations)
		}
	}
	b.Run("empty", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			s, err := Open(filepath.Join(b.TempDir(), "relais.db"), Options{Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			if err := s.BeginDirectoryBulk(context.Background()); err != nil {
				b.Fatal(err)
			}
			applyAll(b, s, batches)
			loaded := time.Since(start)
			if err := s.EndDirectoryBulk(context.Background()); err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			b.ReportMetric(loaded.Seconds(), "s/load")
			b.ReportMetric((el - loaded).Seconds(), "s/index")
			b.ReportMetric(el.Seconds(), "s/import")
			b.ReportMetric(float64(rpps)/el.Seconds(), "rpps-entries/s")
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
	})
	b.Run("differential-1pct", func(b *testing.B) {
		s, err := Open(filepath.Join(b.TempDir(), "relais.db"), Options{Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if err := s.BeginDirectoryBulk(context.Background()); err != nil {
			b.Fatal(err)
		}
		applyAll(b, s, batches)
		if err := s.EndDirectoryBulk(context.Background()); err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(2, 2))
		round := 0
		for b.Loop() {
			round++
			// 1% of the professionals change (a new name, a new
			// activity replacing one), as the importer would send them
			// after comparing DirectoryHashes.
			var changed []storage.DirectoryBatch
			cur := storage.DirectoryBatch{Source: storage.SourceRPPS}
			for i := range d.profs {
				if r.IntN(100) != 0 {
					continue
				}
				p := d.profs[i]
				p.FamilyName = p.FamilyName + "-" + strconv.Itoa(round)
				p.Hash = r.Uint64()
				cur.Professionals = append(cur.Professionals, p)
				cur.Activities = append(cur.Activities, storage.Activity{Professional: p.ID, Key: "new" + strconv.Itoa(round),
					Organisation: d.orgs[r.IntN(len(d.orgs))].ID, PostalCode: "75011", City: "PARIS", Hash: r.Uint64()})
				if len(cur.Professionals)+len(cur.Activities) >= 5000 {
					changed = append(changed, cur)
					cur = storage.DirectoryBatch{Source: storage.SourceRPPS}
				}
			}
			changed = append(changed, cur)
			start := time.Now()
			applyAll(b, s, changed)
			b.ReportMetric(time.Since(start).Seconds(), "s/import")
		}
	})
}

// BenchmarkSearchDirectory times a mix of queries on the synthetic
// directory and reports p50/p99 per query type (milliseconds).
func BenchmarkSearchDirectory(b *testing.B) {
	d, path := benchDirectoryDB(b)
	s, err := Open(path, Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 3))
	prof := func() benchProf { return d.profs[r.IntN(len(d.profs))] }
	pfx := func(s string, n int) string { return string([]rune(s)[:min(n, len([]rune(s)))]) }
	types := []struct {
		name string
		q    func() storage.DirectoryQuery
	}{
		{"name1", func() storage.DirectoryQuery { return storage.DirectoryQuery{Name: pfx(prof().family, 1)} }},
		{"name2", func() storage.DirectoryQuery { return storage.DirectoryQuery{Name: pfx(prof().family, 2)} }},
		{"name3", func() storage.DirectoryQuery { return storage.DirectoryQuery{Name: pfx(prof().family, 3)} }},
		{"family", func() storage.DirectoryQuery { return storage.DirectoryQuery{Name: prof().family} }},
		{"family_given", func() storage.DirectoryQuery {
			p := prof()
			return storage.DirectoryQuery{Name: p.family + " " + pfx(p.given, 3)}
		}},
		{"given_family", func() storage.DirectoryQuery {
			p := prof()
			return storage.DirectoryQuery{Name: p.given + " " + pfx(p.family, 2)}
		}},
		{"prefix_pair", func() storage.DirectoryQuery {
			p := prof()
			return storage.DirectoryQuery{Name: pfx(p.family, 4) + " " + pfx(p.given, 2)}
		}},
		{"profession_name", func() storage.DirectoryQuery {
			p := prof()
			return storage.DirectoryQuery{Name: pfx(p.family, 3), ProfessionCode: p.profession}
		}},
		{"postcode", func() storage.DirectoryQuery {
			a := d.postcodes[r.IntN(len(d.postcodes))]
			if r.IntN(2) == 0 {
				return storage.DirectoryQuery{PostalCode: a[:2]}
			}
			return storage.DirectoryQuery{PostalCode: a}
		}},
		{"postcode_name", func() storage.DirectoryQuery {
			p := prof()
			return storage.DirectoryQuery{Name: pfx(p.family, 3), PostalCode: d.postcodes[r.IntN(len(d.postcodes))][:2]}
		}},
		{"identifier", func() storage.DirectoryQuery { return storage.DirectoryQuery{Identifier: prof().identifier} }},
		{"address", func() storage.DirectoryQuery {
			return storage.DirectoryQuery{Address: pfx(d.addresses[r.IntN(len(d.addresses))], 4+r.IntN(6))}
		}},
	}
	lat := make([][]time.Duration, len(types))
	hits := make([]int, len(types))
	for b.Loop() {
		for i, t := range types {
			q := t.q()
			start := time.Now()
			p, err := s.SearchDirectory(ctx, q)
			lat[i] = append(lat[i], time.Since(start))
			if err != nil {
				b.Fatalf("%s %+v: %v", t.name, q, err)
			}
			hits[i] += len(p.Hits)
		}
	}
	b.StopTimer()
	for i, t := range types {
		l := lat[i]
		slices.Sort(l)
		p := func(f float64) float64 {
			return float64(l[min(len(l)-1, int(f*float64(len(l))))].Microseconds()) / 1000
		}
		b.ReportMetric(p(0.50), "p50-ms-"+t.name)
		b.ReportMetric(p(0.99), "p99-ms-"+t.name)
		b.ReportMetric(float64(hits[i])/float64(len(l)), "hits-"+t.name)
	}
}
