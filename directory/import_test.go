package directory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/relais-mssante/relais/directory/synth"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

var _ ImportStore = (*sqlite.Store)(nil)

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func importFile(t *testing.T, st ImportStore, f Format, path string, opts Options) Summary {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	sum, err := Import(context.Background(), st, f, file, opts)
	if err != nil {
		t.Fatalf("import %s: %v", path, err)
	}
	return sum
}

func importString(t *testing.T, st ImportStore, f Format, s string, opts Options) Summary {
	t.Helper()
	sum, err := Import(context.Background(), st, f, strings.NewReader(s), opts)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return sum
}

func wantCounts(t *testing.T, sum Summary, want map[storage.EntryKind]Counts) {
	t.Helper()
	for k, w := range want {
		if got := sum.Counts[k]; got != w {
			t.Errorf("%s: got %+v, want %+v", k, got, w)
		}
	}
	if t.Failed() {
		t.Logf("summary:\n%s", sum)
	}
}

func wantCount(t *testing.T, st *sqlite.Store, k storage.EntryKind, source string, want int) {
	t.Helper()
	n, err := st.DirectoryCount(context.Background(), k, source)
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("%s entries of %q: %d, want %d", k, source, n, want)
	}
}

func TestImportRPPS(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sum := importFile(t, st, FormatRPPS, "testdata/rpps.txt", Options{})
	if sum.Rows != 13 || sum.Rejected != 0 || sum.Encoding != EncodingUTF8 || sum.RemovalsSkipped != "" {
		t.Fatalf("summary:\n%s", sum)
	}
	wantCounts(t, sum, map[storage.EntryKind]Counts{
		storage.KindProfessional: {Added: 10},
		storage.KindActivity:     {Added: 13},
		storage.KindOrganisation: {Added: 6},
	})
	wantCount(t, st, storage.KindProfessional, storage.SourceRPPS, 10)
	wantCount(t, st, storage.KindActivity, storage.SourceRPPS, 13)
	wantCount(t, st, storage.KindOrganisation, storage.SourceRPPS, 6)

	p, err := st.Professional(ctx, "819912345607")
	if err != nil {
		t.Fatal(err)
	}
	if p.IDType != storage.IDTypeRPPS || p.Identifier != "19912345607" || p.FamilyName != "N'GUYEN-LÉVÊQUE" ||
		p.GivenName != "Anaïs" || p.CivilityCode != "DR" || p.ProfessionCode != "10" || p.SpecialtyCode != "SM40" ||
		p.Specialty != "Pédiatrie" || p.CategoryCode != "C" || p.Source != storage.SourceRPPS {
		t.Errorf("professional %+v", p)
	}
	adeli, err := st.Professional(ctx, "0991234567")
	if err != nil || adeli.IDType != storage.IDTypeADELI || adeli.FamilyName != "KERDRÉAN" {
		t.Errorf("ADELI professional %+v, %v", adeli, err)
	}
	acts, err := st.Activities(ctx, "0991234567")
	if err != nil || len(acts) != 1 || acts[0].Organisation != "" || acts[0].ModeCode != "L" {
		t.Errorf("activity without structure: %+v, %v", acts, err)
	}
	// The pharmacist's two lines are apart in the file.
	acts, err = st.Activities(ctx, "819912345604")
	if err != nil || len(acts) != 2 {
		t.Fatalf("pharmacist's activities %+v, %v", acts, err)
	}
	// Organisations: technical id, else 1+FINESS, else 3+SIRET.
	o, err := st.Organisation(ctx, "F359999001")
	if err != nil || o.FINESS != "359999001" || o.LegalFINESS != "359999000" || o.Name != "CENTRE HOSPITALIER DE L'ÉTANG" ||
		o.Address.City != "RENNES" || o.Address.PostalCode != "35000" || o.Address.StreetType != "Avenue" || o.Fax != "0299990003" {
		t.Errorf("organisation %+v, %v", o, err)
	}
	if o, err := st.Organisation(ctx, "1299999002"); err != nil || o.Name != "CLINIQUE SAINT-ÉLOI" {
		t.Errorf("organisation by FINESS only: %+v, %v", o, err)
	}
	if o, err := st.Organisation(ctx, "399912345800011"); err != nil || o.Address.CityCode != "2A004" ||
		o.Address.Distribution != "LIEU-DIT LES SANGUINAIRES" {
		t.Errorf("organisation by SIRET only: %+v, %v", o, err)
	}

	// Re-import: nothing changes, nothing is written.
	again := importFile(t, st, FormatRPPS, "testdata/rpps.txt", Options{})
	if again.Batches != 0 || again.Rejected != 0 {
		t.Errorf("re-import wrote %d batches:\n%s", again.Batches, again)
	}
	wantCounts(t, again, map[storage.EntryKind]Counts{
		storage.KindProfessional: {Unchanged: 10},
		storage.KindActivity:     {Unchanged: 13},
		storage.KindOrganisation: {Unchanged: 6},
	})

	// The same file in Windows-1252 decodes to the same entries.
	win := importFile(t, st, FormatRPPS, "testdata/rpps-windows1252.txt", Options{})
	if win.Encoding != EncodingWindows1252 || win.Batches != 0 || win.Rejected != 0 {
		t.Errorf("Windows-1252 import:\n%s", win)
	}
	wantCounts(t, win, map[storage.EntryKind]Counts{
		storage.KindProfessional: {Unchanged: 10},
		storage.KindActivity:     {Unchanged: 13},
		storage.KindOrganisation: {Unchanged: 6},
	})

	// One person removed (LECŒUR), one renamed (LE GOFF-ÉVRARD -> LE
	// GOFF), one new activity (FAURE at the hospital).
	changed := importFile(t, st, FormatRPPS, "testdata/rpps-changed.txt", Options{})
	if changed.Rejected != 0 || changed.RemovalsSkipped != "" {
		t.Fatalf("summary:\n%s", changed)
	}
	wantCounts(t, changed, map[storage.EntryKind]Counts{
		storage.KindProfessional: {Updated: 1, Unchanged: 8, Removed: 1},
		storage.KindActivity:     {Added: 1, Unchanged: 12, Removed: 1},
		storage.KindOrganisation: {Unchanged: 6},
	})
	if _, err := st.Professional(ctx, "819912345608"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("removed professional: %v", err)
	}
	if acts, err := st.Activities(ctx, "819912345608"); err != nil || len(acts) != 0 {
		t.Errorf("removed professional's activities: %+v, %v", acts, err)
	}
	if p, err := st.Professional(ctx, "819912345602"); err != nil || p.FamilyName != "LE GOFF" || p.GivenName != "Hélène" {
		t.Errorf("renamed professional %+v, %v", p, err)
	}
	if acts, err := st.Activities(ctx, "819912345605"); err != nil || len(acts) != 2 {
		t.Errorf("new activity: %+v, %v", acts, err)
	}
	wantCount(t, st, storage.KindProfessional, storage.SourceRPPS, 9)
	wantCount(t, st, storage.KindActivity, storage.SourceRPPS, 13)
}

func TestImportMSSante(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sum := importFile(t, st, FormatMSSante, "testdata/mssante.txt", Options{})
	if sum.Rows != 12 || sum.Rejected != 0 {
		t.Fatalf("summary:\n%s", sum)
	}
	wantCounts(t, sum, map[storage.EntryKind]Counts{storage.KindMailbox: {Added: 12}})
	wantCount(t, st, storage.KindMailbox, storage.SourceMSSante, 12)

	ms, err := st.MailboxEntries(ctx, "anais.nguyen-leveque@clinique-st-eloi.mssante.fr")
	if err != nil || len(ms) != 1 {
		t.Fatalf("mailbox: %+v, %v", ms, err)
	}
	m := ms[0]
	if m.Type != storage.MailboxPersonal || m.Professional != "819912345607" || m.Organisation != "1299999002" ||
		m.Service != "Pédiatrie" || m.FamilyName != "N'GUYEN-LÉVÊQUE" || m.SpecialtyCode != "SM40" || !m.Digitization ||
		m.StructureAddress.PostalCode != "29200" || m.StructureAddress.City != "BREST" ||
		m.StructureAddress.Cedex != "29200 BREST CEDEX 2" || m.OrganisationName != "CLINIQUE SAINT-ÉLOI" {
		t.Errorf("mailbox %+v", m)
	}
	ms, err = st.MailboxEntries(ctx, "accueil@pharmacie-eglise.mssante.fr")
	if err != nil || len(ms) != 1 || ms[0].Type != storage.MailboxOrganisational || ms[0].Organisation != "399912345700019" ||
		ms[0].Description != "PHARMACIE SAINT-ÉLOI" || ms[0].Digitization {
		t.Errorf("organisational mailbox %+v, %v", ms, err)
	}
	ms, err = st.MailboxEntries(ctx, "cabinet.lilas@cabinet-lilas.mssante.fr")
	if err != nil || len(ms) != 1 || ms[0].Type != storage.MailboxPractice {
		t.Errorf("practice mailbox %+v, %v", ms, err)
	}

	// The variant: BOM, CRLF, columns reordered, " structure BAL"
	// suffixes: the same entries.
	variant := importFile(t, st, FormatMSSante, "testdata/mssante-variant.txt", Options{})
	if variant.Rejected != 0 || variant.Batches != 0 {
		t.Errorf("variant:\n%s", variant)
	}
	wantCounts(t, variant, map[storage.EntryKind]Counts{storage.KindMailbox: {Unchanged: 12}})
}

func TestImportMSSanteBadRows(t *testing.T) {
	st := openStore(t)
	fixture, err := os.ReadFile("testdata/mssante.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(fixture), "\n"), "\n")
	good := lines[1]
	bad := []string{
		lines[0],
		good,
		strings.Replace(good, "claire.martineau@ch-etang.mssante.fr", "CLAIRE.Martineau@ch-etang.mssante.fr", 1), // duplicate address
		strings.Replace(good, "claire.martineau@ch-etang.mssante.fr", "pas-une-adresse", 1),
		strings.Replace(good, "claire.martineau@ch-etang.mssante.fr", "", 1),
		strings.Replace(good, "PER|", "XYZ|", 1),
		good + "|en trop",
		lines[5],
	}
	sum := importString(t, st, FormatMSSante, strings.Join(bad, "\n")+"\n", Options{})
	want := []Rejection{
		{3, "claire.martineau@ch-etang.mssante.fr", "duplicate address (first at line 2)"},
		{4, "", `bad address "pas-une-adresse"`},
		{5, "", `empty "Adresse BAL"`},
		{6, "claire.martineau@ch-etang.mssante.fr", `bad "Type de BAL" "XYZ" (want PER, ORG, APP or CAB)`},
		{7, "claire.martineau@ch-etang.mssante.fr", "32 columns, want 31"},
	}
	checkRejections(t, sum, want)
	wantCounts(t, sum, map[storage.EntryKind]Counts{storage.KindMailbox: {Added: 2}})
}

func checkRejections(t *testing.T, sum Summary, want []Rejection) {
	t.Helper()
	if sum.Rejected != len(want) || len(sum.Details) != len(want) {
		t.Fatalf("%d rejections, want %d:\n%s", sum.Rejected, len(want), sum)
	}
	for i, w := range want {
		if sum.Details[i] != w {
			t.Errorf("rejection %d:\n got %s\nwant %s", i, sum.Details[i], w)
		}
	}
}

// rppsFixture returns the lines of testdata/rpps.txt, header first.
func rppsFixture(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestImportRPPSBadInput(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	importFile(t, st, FormatRPPS, "testdata/rpps.txt", Options{})
	l := rppsFixture(t, "testdata/rpps.txt")
	// Lines (1-based in the file): 1 header; 2-3 MARTINEAU; 4 LE GOFF-ÉVRARD;
	// 5 DE LA VILLARDIÈRE; 6 KERDRÉAN; 7 FAURE; 8 BÉRANGER; 9-10
	// N'GUYEN-LÉVÊQUE; 11 DE LA VILLARDIÈRE again; 12 LECŒUR; 13 ANDRÉ; 14
	// ÉTIENNE-DUPRÉ.
	file := []string{
		l[0], l[1], l[2], l[3], l[4], l[5], l[6],
		l[7], l[7], // 9: the same activity line twice
		l[8],
		strings.Replace(l[9], "|Anaïs|", "|Anaïse|", 1), // 11: same person, other names
		l[10],
		// LECŒUR (line 12 of the fixture) is gone: removed.
		strings.Replace(l[12], "|Civil|", "|", 1),              // 13: ANDRÉ, a column lost
		strings.Replace(l[13], "|991234568|", "|99123456|", 1), // 14: ÉTIENNE-DUPRÉ, bad ADELI number
		l[1][:200], // 15: MARTINEAU truncated, no newline
	}
	sum := importString(t, st, FormatRPPS, strings.Join(file, "\n"), Options{})
	want := []Rejection{
		{9, "819912345606/R10000000002|L|", "duplicate of line 8"},
		{11, "819912345607", "names differ from line 10 for the same person"},
		{13, "819912345609", "51 columns, want 52"},
		{14, "0991234568", `bad ADELI number "99123456" (want 9 characters)`},
		{15, "819912345601", fmt.Sprintf("truncated last line: %d columns, want 52", len(strings.Split(strings.TrimSuffix(l[1][:200], "|"), "|")))},
	}
	checkRejections(t, sum, want)
	// ANDRÉ's line lost a column: its organisation cannot be read, so no
	// organisation is removed.
	if sum.RemovalsPending != 1 || sum.RemovalsSkipped != "1 organisation entries kept: rejected rows may refer to them" {
		t.Fatalf("removals skipped: %d, %s", sum.RemovalsPending, sum.RemovalsSkipped)
	}
	// Only LECŒUR and her activity are removed: the rejected lines of
	// N'GUYEN-LÉVÊQUE, ANDRÉ and ÉTIENNE-DUPRÉ keep what they name.
	wantCounts(t, sum, map[storage.EntryKind]Counts{
		storage.KindProfessional: {Unchanged: 7, Removed: 1},
		storage.KindActivity:     {Unchanged: 9, Removed: 1},
		storage.KindOrganisation: {Unchanged: 5},
	})
	for _, id := range []string{"819912345607", "819912345609", "0991234568"} {
		if _, err := st.Professional(ctx, id); err != nil {
			t.Errorf("professional %s: %v", id, err)
		}
	}
	for id, n := range map[string]int{"819912345607": 2, "819912345609": 1, "0991234568": 1, "819912345608": 0} {
		if acts, err := st.Activities(ctx, id); err != nil || len(acts) != n {
			t.Errorf("activities of %s: %d, want %d (%v)", id, len(acts), n, err)
		}
	}
	wantCount(t, st, storage.KindOrganisation, storage.SourceRPPS, 6)

	// Rejected lines without a readable identifier (invalid UTF-8, a line
	// too long, an empty identifier): nothing is removed, although
	// MARTINEAU is missing.
	pad := bytes.Buffer{}
	if err := synth.RPPS(&pad, synth.Options{Rows: 200, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	padLines := strings.Split(strings.TrimSuffix(pad.String(), "\n"), "\n")[1:]
	noKey := strings.Replace(l[3], "|19912345602|819912345602|", "|||", 1)
	file = append([]string{l[0]}, padLines...) // 64 KiB of UTF-8 first
	file = append(file, l[3], "abc\xff|"+l[4], strings.Repeat("x", 100<<10), noKey)
	sum = importString(t, st, FormatRPPS, strings.Join(file, "\n")+"\n", Options{})
	n := len(padLines) + 2
	want = []Rejection{
		{n + 1, "", "invalid UTF-8 at byte 4"},
		{n + 2, "", fmt.Sprintf("line too long (%d bytes, limit %d)", 100<<10, DefaultMaxLine)},
		{n + 3, "", `empty "Identifiant PP"`},
	}
	checkRejections(t, sum, want)
	if sum.RemovalsSkipped == "" || sum.RemovalsPending == 0 {
		t.Fatalf("removals not skipped:\n%s", sum)
	}
	if _, err := st.Professional(ctx, "819912345601"); err != nil {
		t.Errorf("MARTINEAU lost: %v", err)
	}
	wantCount(t, st, storage.KindProfessional, storage.SourceRPPS, 9+len(distinctIDs(padLines)))
}

func distinctIDs(lines []string) map[string]bool {
	ids := map[string]bool{}
	for _, l := range lines {
		ids[strings.Split(l, "|")[2]] = true
	}
	return ids
}

func TestImportMassRemoval(t *testing.T) {
	st := openStore(t)
	importFile(t, st, FormatRPPS, "testdata/rpps.txt", Options{})
	l := rppsFixture(t, "testdata/rpps.txt")
	only := strings.Join(l[:3], "\n") + "\n" // MARTINEAU alone
	sum := importString(t, st, FormatRPPS, only, Options{})
	if sum.RemovalsPending != 9+11+4 || !strings.Contains(sum.RemovalsSkipped, "24 of 29 entries") {
		t.Fatalf("summary:\n%s", sum)
	}
	wantCount(t, st, storage.KindProfessional, storage.SourceRPPS, 10)
	// A header alone is a mass removal too.
	sum = importString(t, st, FormatRPPS, l[0]+"\n", Options{})
	if sum.RemovalsPending != 29 {
		t.Fatalf("summary:\n%s", sum)
	}
	sum = importString(t, st, FormatRPPS, only, Options{AllowMassRemoval: true})
	wantCounts(t, sum, map[storage.EntryKind]Counts{
		storage.KindProfessional: {Unchanged: 1, Removed: 9},
		storage.KindActivity:     {Unchanged: 2, Removed: 11},
		storage.KindOrganisation: {Unchanged: 2, Removed: 4},
	})
	wantCount(t, st, storage.KindProfessional, storage.SourceRPPS, 1)
	wantCount(t, st, storage.KindActivity, storage.SourceRPPS, 2)
	wantCount(t, st, storage.KindOrganisation, storage.SourceRPPS, 2)
}

func TestImportMissingColumn(t *testing.T) {
	st := openStore(t)
	l := rppsFixture(t, "testdata/rpps.txt")
	header := strings.Replace(l[0], "|Nom d'exercice|", "|Nom|", 1)
	_, err := Import(context.Background(), st, FormatRPPS, strings.NewReader(header+"\n"+l[1]+"\n"), Options{})
	if !errors.Is(err, ErrMissingColumn) || !strings.Contains(err.Error(), "nomdexercice") {
		t.Fatalf("error %v", err)
	}
	_, err = Import(context.Background(), st, FormatMSSante, strings.NewReader(""), Options{})
	if err == nil {
		t.Fatal("no error for an empty file")
	}
	if _, err := ParseFormat("ldif"); err == nil {
		t.Fatal("no error for an unknown format")
	}
}

// hugeLineReader produces a header, a good line, a line of size bytes and
// another good line, without holding the long line in memory.
type hugeLineReader struct {
	head, tail string
	size, done int64
}

func (h *hugeLineReader) Read(p []byte) (int, error) {
	n := 0
	if h.head != "" {
		n = copy(p, h.head)
		h.head = h.head[n:]
		return n, nil
	}
	if h.done < h.size {
		m := int64(len(p))
		m = min(m, h.size-h.done)
		for i := range m {
			p[i] = 'x'
		}
		h.done += m
		return int(m), nil
	}
	if h.tail == "" {
		return 0, io.EOF
	}
	n = copy(p, h.tail)
	h.tail = h.tail[n:]
	return n, nil
}

func TestImportGiBLine(t *testing.T) {
	start := time.Now()
	st := openStore(t)
	l := rppsFixture(t, "testdata/rpps.txt")
	r := &hugeLineReader{head: l[0] + "\n" + l[1] + "\n", size: 1 << 30, tail: "\n" + l[3] + "\n"}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	sum, err := Import(context.Background(), st, FormatRPPS, r, Options{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	checkRejections(t, sum, []Rejection{{3, "", fmt.Sprintf("line too long (%d bytes, limit %d)", 1<<30, DefaultMaxLine)}})
	wantCounts(t, sum, map[storage.EntryKind]Counts{storage.KindProfessional: {Added: 2}})
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("allocated %d MiB for a 1 GiB line", alloc>>20)
	}
	t.Logf("1 GiB line skipped in %s", time.Since(start))
}

func TestImportProgress(t *testing.T) {
	st := openStore(t)
	var buf bytes.Buffer
	if err := synth.RPPS(&buf, synth.Options{Rows: 5000, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	total := int64(buf.Len())
	// A clock that advances 10 ms per reading: progress at most every
	// tenth reading.
	now := time.Unix(0, 0)
	clock := func() time.Time { now = now.Add(10 * time.Millisecond); return now }
	var calls []Progress
	sum, err := Import(context.Background(), st, FormatRPPS, &buf, Options{
		Total: total, Now: clock, BatchSize: 1000,
		Progress: func(p Progress) { calls = append(calls, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 2 {
		t.Fatalf("%d progress calls", len(calls))
	}
	last := calls[len(calls)-1]
	if last.Rows != 5000 || last.Bytes != total || last.Total != total || sum.Rows != 5000 {
		t.Errorf("last progress %+v, rows %d", last, sum.Rows)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].Rows < calls[i-1].Rows || calls[i].Bytes < calls[i-1].Bytes {
			t.Errorf("progress goes back: %+v then %+v", calls[i-1], calls[i])
		}
	}
	if sum.Batches < 5 {
		t.Errorf("%d batches of 1000 for 5000 rows", sum.Batches)
	}
}

func TestImportCancelled(t *testing.T) {
	st := openStore(t)
	var buf bytes.Buffer
	if err := synth.RPPS(&buf, synth.Options{Rows: 2000, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Import(ctx, st, FormatRPPS, &buf, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
}

func TestImportSynthetic(t *testing.T) {
	// The generators' files import without rejections.
	st := openStore(t)
	for _, c := range []struct {
		f     Format
		write func(io.Writer, synth.Options) error
		win   bool
	}{
		{FormatRPPS, synth.RPPS, false},
		{FormatMSSante, synth.MSSante, true},
		{FormatTrustList, synth.TrustList, false},
	} {
		var buf bytes.Buffer
		if err := c.write(&buf, synth.Options{Rows: 3000, Seed: 11, Windows1252: c.win}); err != nil {
			t.Fatal(err)
		}
		sum := importString(t, st, c.f, buf.String(), Options{})
		if sum.Rows != 3000 || sum.Rejected != 0 {
			t.Errorf("%s: summary:\n%s", c.f, sum)
		}
		if c.win && sum.Encoding != EncodingWindows1252 {
			t.Errorf("%s: encoding %s", c.f, sum.Encoding)
		}
		again := importString(t, st, c.f, buf.String(), Options{})
		if again.Batches != 0 {
			t.Errorf("%s: re-import wrote %d batches", c.f, again.Batches)
		}
	}
}
