package directory

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-mssante/relais/storage"
)

func TestImportTrustList(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sum := importFile(t, st, FormatTrustList, "testdata/listeblanche.xml", Options{})
	if sum.Rows != 6 || sum.Rejected != 0 {
		t.Fatalf("summary:\n%s", sum)
	}
	wantCounts(t, sum, map[storage.EntryKind]Counts{storage.KindTrust: {Added: 6}})
	domains, keys := map[string]int{}, map[string]int{}
	err := st.TrustEntries(ctx, func(e storage.TrustEntry) error {
		domains[e.Domain]++
		keys[e.OperatorKey]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The same operators written with other spacing, case and escapes.
	if len(domains) != 5 || len(keys) != 3 || domains["clinique-st-eloi.mssante.fr"] != 2 {
		t.Fatalf("domains %v, operator keys %v", domains, keys)
	}
	alpha, _ := CanonicalDN("CN=mx.operateur-alpha.example,OU=99900000000017,O=Opérateur Alpha,ST=Ille-et-Vilaine (35),C=FR")
	byOp, err := st.TrustByOperator(ctx, alpha)
	if err != nil || len(byOp) != 2 {
		t.Fatalf("entries of operator alpha: %+v, %v", byOp, err)
	}
	es, err := st.TrustByDomain(ctx, "clinique-st-eloi.mssante.fr")
	if err != nil || len(es) != 2 {
		t.Fatalf("entries of the clinic: %+v, %v", es, err)
	}
	for _, e := range es {
		if e.OperatorKey == alpha {
			if e.Description != "CLINIQUE SAINT-ÉLOI & ASSOCIÉS" || !e.Updated.Equal(time.Date(2026, 1, 11, 10, 0, 0, 0, time.UTC)) ||
				e.OperatorDN != "cn=MX.Operateur-Alpha.example, ou=99900000000017, o=OPÉRATEUR  ALPHA, s=Ille-et-Vilaine (35), c=fr" {
				t.Errorf("entry %+v", e)
			}
		}
	}
	again := importFile(t, st, FormatTrustList, "testdata/listeblanche.xml", Options{})
	if again.Batches != 0 {
		t.Errorf("re-import:\n%s", again)
	}
	wantCounts(t, again, map[storage.EntryKind]Counts{storage.KindTrust: {Unchanged: 6}})
}

func TestImportRealTrustList(t *testing.T) {
	path := filepath.Join("..", "..", "shared", "samples", "listeblanchemssante.xml")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no real trust list: %v", err)
	}
	ctx := context.Background()
	st := openStore(t)
	sum := importFile(t, st, FormatTrustList, path, Options{})
	t.Logf("summary:\n%s", sum)
	// 6,554 Domaine elements; 28 repeat a (domain, operator) pair with
	// another description or contact (21 with the DN written the same way,
	// 7 with the DN written otherwise: O="CLCC  INSTITUT CURIE" and
	// O=CLCC  INSTITUT CURIE are one DN), and one has an address for a
	// domain ("sessad@ase.ditepbeziers.mssante.fr"): 6,525 entries.
	dups, bad := 0, 0
	for _, r := range sum.Details {
		switch {
		case strings.HasPrefix(r.Reason, "duplicate domain and operator"):
			dups++
		case strings.HasPrefix(r.Reason, `bad domain "sessad@ase.ditepbeziers.mssante.fr"`):
			bad++
		default:
			t.Errorf("rejection %s", r)
		}
	}
	if sum.Rows != 6554 || sum.Rejected != 29 || dups != 28 || bad != 1 {
		t.Fatalf("%d rows, %d rejected (%d duplicates, %d bad domains)", sum.Rows, sum.Rejected, dups, bad)
	}
	wantCounts(t, sum, map[storage.EntryKind]Counts{storage.KindTrust: {Added: 6525}})
	domains, keys := map[string]bool{}, map[string]bool{}
	n := 0
	err := st.TrustEntries(ctx, func(e storage.TrustEntry) error {
		n++
		domains[e.Domain] = true
		keys[e.OperatorKey] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 5,002 distinct names in the file, the bad one aside; 392 distinct DN
	// strings but 384 DNs: 7 are written both quoted and unquoted (the
	// quoted form where the value has two spaces in a row), one with and
	// without spaces after the commas.
	if n != 6525 || len(domains) != 5001 || len(keys) != 384 {
		t.Fatalf("%d entries, %d domains, %d operator keys", n, len(domains), len(keys))
	}
	again := importFile(t, st, FormatTrustList, path, Options{})
	if again.Batches != 0 || again.Counts[storage.KindTrust].Unchanged != 6525 {
		t.Errorf("re-import:\n%s", again)
	}
}

const trustHead = `<?xml version="1.0" encoding="UTF-8"?><ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema"><ListeDomaines>`
const trustTail = `</ListeDomaines></ListeBlancheMSSante>`

func domaine(nom, dn string) string {
	return "\n<Domaine><Nom>" + nom + "</Nom><Description>D</Description><DNCertificatOperateur>" + dn +
		"</DNCertificatOperateur><DateMAJ>2026-01-10T09:30:00Z</DateMAJ></Domaine>"
}

func TestImportTrustListBadEntries(t *testing.T) {
	st := openStore(t)
	doc := trustHead +
		domaine("a.mssante.fr", "CN=mx.a,C=FR") + // line 2
		domaine("a.mssante.fr", "cn=MX.A, c=fr") + // 3: the same pair
		domaine("b.mssante.fr", "CN=mx.a,=C") + // 4: bad DN
		domaine("", "CN=mx.a,C=FR") + // 5: no domain
		domaine("é.mssante.fr", "CN=mx.a,C=FR") + // 6: not an A-label
		"\n<Domaine><Nom>c.mssante.fr</Nom><Description>" + strings.Repeat("d", maxXMLField+1) + "</Description></Domaine>" + // 7
		"\n<Domaine><Nom>d.mssante.fr</Nom><DNCertificatOperateur>CN=x</DNCertificatOperateur><DateMAJ>hier</DateMAJ></Domaine>" + // 8
		domaine("e.mssante.fr.", "CN=mx.e,C=FR") + // 9: trailing dot
		"\n" + trustTail
	sum := importString(t, st, FormatTrustList, doc, Options{})
	checkRejections(t, sum, []Rejection{
		{3, "a.mssante.fr CN=mx.a,C=fr", "duplicate domain and operator (first at line 2)"},
		{4, "b.mssante.fr", `directory: DN "CN=mx.a,=C": empty attribute type at byte 8`},
		{5, "", "empty domain (Nom)"},
		{6, "é.mssante.fr", `bad domain "é.mssante.fr" (not an ASCII A-label)`},
		{7, "c.mssante.fr", "Description longer than 8192 bytes"},
		{8, "d.mssante.fr", `bad DateMAJ "hier"`},
	})
	wantCounts(t, sum, map[storage.EntryKind]Counts{storage.KindTrust: {Added: 2}})
}

func TestTrustListFatal(t *testing.T) {
	st := openStore(t)
	cases := map[string]string{
		"doctype":  `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ListeBlancheMSSante>&e;</ListeBlancheMSSante>`,
		"entity":   `<ListeBlancheMSSante><ListeDomaines><Domaine><Nom>&e;</Nom></Domaine></ListeDomaines></ListeBlancheMSSante>`,
		"root":     `<Autre/>`,
		"empty":    ``,
		"depth":    `<ListeBlancheMSSante>` + strings.Repeat("<a>", maxXMLDepth+1) + strings.Repeat("</a>", maxXMLDepth+1) + `</ListeBlancheMSSante>`,
		"run":      `<ListeBlancheMSSante><x>` + strings.Repeat("t>", maxXMLRun/2+1) + `</x></ListeBlancheMSSante>`,
		"comment":  `<ListeBlancheMSSante><!--` + strings.Repeat("-", maxXMLRun) + `--></ListeBlancheMSSante>`,
		"unclosed": trustHead + domaine("a.mssante.fr", "CN=x") + "<Domaine><Nom>b.mssante.fr</Nom>",
		"mismatch": `<ListeBlancheMSSante><ListeDomaines></Domaine></ListeBlancheMSSante>`,
	}
	for name, doc := range cases {
		_, err := Import(context.Background(), st, FormatTrustList, strings.NewReader(doc), Options{})
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// trustEntries parses a whole trust list without a store.
func trustEntries(r io.Reader) (n int, err error) {
	td := newTrustDecoder(r)
	for {
		rec, err := td.next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if e, rerr := parseTrustRecord(rec); rerr == nil {
			if checkDomain(e.Domain) != nil || e.OperatorKey == "" {
				return n, errors.New("accepted a bad entry")
			}
			n++
		}
		for name, b := range rec.fields {
			if b.Len() > maxXMLField {
				return n, errors.New(name + " over its bound")
			}
		}
	}
}

func FuzzTrustList(f *testing.F) {
	fixture, err := os.ReadFile("testdata/listeblanche.xml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	f.Add([]byte(trustHead + domaine("a.mssante.fr", "CN=mx.a,C=FR") + trustTail))
	f.Add([]byte(`<ListeBlancheMSSante><!DOCTYPE x></ListeBlancheMSSante>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if _, err := trustEntries(strings.NewReader(string(doc))); err != nil && strings.Contains(err.Error(), "bound") {
			t.Fatal(err)
		}
	})
}

func TestImportTrustListRemoval(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	b, err := os.ReadFile("testdata/listeblanche.xml")
	if err != nil {
		t.Fatal(err)
	}
	importString(t, st, FormatTrustList, string(b), Options{})
	// The pharmacy's domain leaves the list; an entry with a bad domain
	// arrives (as in the real list): the removal still happens.
	doc := string(b)
	start := strings.Index(doc, "<Domaine>\n            <Nom>pharmacie-eglise.mssante.fr")
	end := start + strings.Index(doc[start:], "</Domaine>") + len("</Domaine>")
	doc = doc[:start] + domaine("sessad@ase.example.mssante.fr", "CN=mx.a,C=FR") + doc[end:]
	sum := importString(t, st, FormatTrustList, doc, Options{})
	if sum.Rejected != 1 || sum.RemovalsSkipped != "" {
		t.Fatalf("summary:\n%s", sum)
	}
	wantCounts(t, sum, map[storage.EntryKind]Counts{storage.KindTrust: {Unchanged: 5, Removed: 1}})
	if es, err := st.TrustByDomain(ctx, "pharmacie-eglise.mssante.fr"); (err == nil && len(es) > 0) || (err != nil && !errors.Is(err, storage.ErrNotFound)) {
		t.Fatalf("removed domain: %+v, %v", es, err)
	}
	// A Domaine whose DN cannot be read keeps every entry of its domain.
	doc = strings.Replace(string(b), "CN=relais.operateur-beta.example,OU=99900000000025,O=Opérateur Bêta\\, Santé", "CN=,=", 1)
	doc = strings.Replace(doc, "<Nom>cabinet-lilas.mssante.fr</Nom>", "<Nom>cabinet-lilas.mssante.fr</Nom><Inconnu>x</Inconnu>", 1)
	sum = importString(t, st, FormatTrustList, doc, Options{})
	if sum.Rejected != 1 || sum.Details[0].Key != "clinique-st-eloi.mssante.fr" {
		t.Fatalf("summary:\n%s", sum)
	}
	wantCounts(t, sum, map[storage.EntryKind]Counts{storage.KindTrust: {Added: 1, Unchanged: 4}})
	if es, err := st.TrustByDomain(ctx, "clinique-st-eloi.mssante.fr"); err != nil || len(es) != 2 {
		t.Fatalf("protected domain: %+v, %v", es, err)
	}
}
