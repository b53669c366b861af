package dirkey

import (
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Jean-Pierre DE L'ÉTANG", "jean pierre de l etang"},
		{"  ÉLÉONORE  ", "eleonore"},
		{"éléonore", "eleonore"},
		{"O'NEIL--Smith", "o neil smith"},
		{"Cabinet médical (Saint-Étienne) n°3", "cabinet medical saint etienne n 3"},
		{"", ""},
		{"--", ""},
		{"Ærø Straße", "ærø straße"},
	} {
		if got := Name(tc.in); got != tc.want {
			t.Errorf("Name(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, p := range []string{"mart", "a", "z", "é", "martin "} {
		end := PrefixEnd(p)
		if !(p < end) {
			t.Errorf("PrefixEnd(%q) = %q not after", p, end)
		}
		for _, s := range []string{p, p + "a", p + " x", p + "\u00ff", p + "zzzz"} {
			if !(s >= p && s < end) {
				t.Errorf("%q not in [%q, %q)", s, p, end)
			}
		}
		if strings.HasPrefix(end, p) {
			t.Errorf("PrefixEnd(%q) = %q starts with the prefix", p, end)
		}
	}
	if PrefixEnd("") != "" || PrefixEnd("\xff\xff") != "" {
		t.Error("PrefixEnd of empty/0xff")
	}
	if got := PrefixEnd("a\xff"); got != "b" {
		t.Errorf("PrefixEnd(a\\xff) = %q", got)
	}
}

func FuzzName(f *testing.F) {
	f.Add("Jean-Pierre DE L'ÉTANG")
	f.Fuzz(func(t *testing.T, s string) {
		k := Name(s)
		if strings.HasPrefix(k, " ") || strings.HasSuffix(k, " ") || strings.Contains(k, "  ") {
			t.Fatalf("Name(%q) = %q", s, k)
		}
		if Name(k) != k {
			t.Fatalf("Name not idempotent on %q: %q -> %q", s, k, Name(k))
		}
	})
}
