package synth

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func generate(t *testing.T, f func(*bytes.Buffer, Options) error, o Options) string {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestDeterministic(t *testing.T) {
	for name, f := range map[string]func(*bytes.Buffer, Options) error{
		"rpps":      func(b *bytes.Buffer, o Options) error { return RPPS(b, o) },
		"mssante":   func(b *bytes.Buffer, o Options) error { return MSSante(b, o) },
		"trustlist": func(b *bytes.Buffer, o Options) error { return TrustList(b, o) },
	} {
		a := generate(t, f, Options{Rows: 500, Seed: 42})
		b := generate(t, f, Options{Rows: 500, Seed: 42})
		c := generate(t, f, Options{Rows: 500, Seed: 43})
		if a != b {
			t.Errorf("%s: two runs with one seed differ", name)
		}
		if a == c {
			t.Errorf("%s: two seeds give the same file", name)
		}
	}
}

func TestRPPSShape(t *testing.T) {
	s := generate(t, func(b *bytes.Buffer, o Options) error { return RPPS(b, o) }, Options{Rows: 3000, Seed: 1})
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != 3001 {
		t.Fatalf("%d lines", len(lines))
	}
	people := map[string]bool{}
	for i, l := range lines {
		f := strings.Split(l, "|")
		if len(f) != 53 || f[52] != "" {
			t.Fatalf("line %d: %d fields", i+1, len(f))
		}
		if i == 0 {
			continue
		}
		if f[2] != f[0]+f[1] || (f[0] == "8" && len(f[1]) != 11) || (f[0] == "0" && len(f[1]) != 9) {
			t.Fatalf("line %d: identifiers %q %q %q", i+1, f[0], f[1], f[2])
		}
		people[f[2]] = true
	}
	// About 1.5 activity lines per person.
	if r := 3000 / float64(len(people)); r < 1.3 || r > 1.7 {
		t.Errorf("%.2f lines per person", r)
	}
	if !strings.Contains(s, "é") || !utf8.ValidString(s) {
		t.Error("no accents, or not UTF-8")
	}
	win := generate(t, func(b *bytes.Buffer, o Options) error { return RPPS(b, o) }, Options{Rows: 3000, Seed: 1, Windows1252: true})
	if utf8.ValidString(win) || len(win) >= len(s) {
		t.Error("the Windows-1252 file looks like UTF-8")
	}
}

func TestMSSanteShape(t *testing.T) {
	s := generate(t, func(b *bytes.Buffer, o Options) error { return MSSante(b, o) }, Options{Rows: 2000, Seed: 1})
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	seen := map[string]bool{}
	per := 0
	for i, l := range lines[1:] {
		f := strings.Split(l, "|")
		if len(f) != 31 {
			t.Fatalf("line %d: %d fields", i+2, len(f))
		}
		if seen[f[1]] || !strings.HasSuffix(f[1], ".mssante.fr") || strings.Count(f[1], "@") != 1 {
			t.Fatalf("line %d: address %q", i+2, f[1])
		}
		seen[f[1]] = true
		if f[0] == "PER" {
			per++
		}
	}
	if per < 1500 || per > 1900 {
		t.Errorf("%d personal mailboxes of 2000", per)
	}
}

// The MSSanté file of a seed gives each personal address to a person of
// the RPPS file of the same seed, under the same names.
func TestMSSanteAgreesWithRPPS(t *testing.T) {
	names := map[string]string{} // national id -> "family|given"
	for _, line := range strings.Split(generate(t, func(b *bytes.Buffer, o Options) error { return RPPS(b, o) }, Options{Rows: 3000, Seed: 9}), "\n")[1:] {
		f := strings.Split(line, "|")
		if len(f) > 8 {
			names[f[2]] = f[7] + "|" + f[8]
		}
	}
	matched := 0
	for _, line := range strings.Split(generate(t, func(b *bytes.Buffer, o Options) error { return MSSante(b, o) }, Options{Rows: 1000, Seed: 9}), "\n")[1:] {
		f := strings.Split(line, "|")
		if len(f) < 11 || f[0] != "PER" {
			continue
		}
		want, ok := names[f[4]]
		if !ok {
			continue
		}
		matched++
		if got := f[9] + "|" + f[10]; got != want {
			t.Errorf("%s: %s in the MSSanté file, %s in the RPPS file", f[4], got, want)
		}
	}
	if matched < 500 {
		t.Errorf("only %d personal addresses belong to professionals of the RPPS file", matched)
	}
}
