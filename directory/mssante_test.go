package directory

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

func TestSplitL6(t *testing.T) {
	cases := []struct{ in, postal, city string }{
		{"75011 PARIS", "75011", "PARIS"},
		{"69437 LYON CEDEX 03", "69437", "LYON"},
		{"29200  BREST  Cedex 2", "29200", "BREST"},
		{"20000 AJACCIO", "20000", "AJACCIO"},
		{"2A004 AJACCIO", "2A004", "AJACCIO"},
		{"SAINT-DENIS", "", "SAINT-DENIS"},
		{"97400 SAINT-DENIS", "97400", "SAINT-DENIS"},
		{"13000 CEDEX", "13000", ""},
		{"", "", ""},
		{"1234 VILLE", "", "1234 VILLE"},
	}
	for _, c := range cases {
		if p, city := splitL6(c.in); p != c.postal || city != c.city {
			t.Errorf("splitL6(%q) = %q, %q; want %q, %q", c.in, p, city, c.postal, c.city)
		}
	}
}

func TestCheckAddress(t *testing.T) {
	for _, a := range []string{"a@b.fr", "prenom.nom@ch-x.mssante.fr", "Secretariat.CARDIO@x.mssante.fr"} {
		if err := checkAddress(a); err != nil {
			t.Errorf("%q: %v", a, err)
		}
	}
	for _, a := range []string{"", "a", "@b.fr", "a@", "a@b", "a@@b.fr", "a b@c.fr", "a@b.fr.", "a@.b.fr", strings.Repeat("a", 250) + "@b.fr"} {
		if err := checkAddress(a); err == nil {
			t.Errorf("%q accepted", a)
		}
	}
}

func FuzzMSSanteRow(f *testing.F) {
	b, err := os.ReadFile("testdata/mssante.txt")
	if err != nil {
		f.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for _, l := range lines[1:] {
		f.Add(l)
	}
	f.Add(strings.Replace(lines[1], "PER|", "|", 1))
	header := lines[0]
	f.Fuzz(func(t *testing.T, row string) {
		pf, h, err := openPipeFile(strings.NewReader(header+"\n"+row+"\n"), 2048)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := headerIndex(h, mssanteColumns)
		if err != nil {
			t.Fatal(err)
		}
		for {
			r, err := pf.next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.reason != "" {
				continue
			}
			m, rerr := parseMSSanteRow(idx, r.fields)
			if rerr != nil {
				if rerr.key != "" && checkAddress(rerr.key) != nil {
					t.Fatalf("rejection key %q", rerr.key)
				}
				continue
			}
			if checkAddress(m.Address) != nil || len(m.Address) > maxAddress {
				t.Fatalf("accepted address %q", m.Address)
			}
			switch m.Type {
			case "PER", "ORG", "APP", "CAB":
			default:
				t.Fatalf("accepted type %q", m.Type)
			}
		}
	})
}
