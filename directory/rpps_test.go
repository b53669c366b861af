package directory

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestNationalID(t *testing.T) {
	cases := []struct {
		typ, id, wantType, wantNat string
		ok                         bool
	}{
		{"8", "19912345601", "RPPS", "819912345601", true},
		{"0", "991234567", "ADELI", "0991234567", true},
		{"0", "2A9123456", "ADELI", "02A9123456", true},
		{"8", "1991234560", "", "", false},  // 10 digits
		{"8", "1991234560A", "", "", false}, // a letter
		{"0", "99123456", "", "", false},
		{"3", "19912345601", "", "", false}, // not a PP type
		{"", "19912345601", "", "", false},
	}
	for _, c := range cases {
		typ, nat, err := nationalID(c.typ, c.id)
		if (err == nil) != c.ok || typ != c.wantType || nat != c.wantNat {
			t.Errorf("nationalID(%q, %q) = %q, %q, %v", c.typ, c.id, typ, nat, err)
		}
	}
}

// parseRPPS parses a whole RPPS file without a store, checking the
// invariants of accepted rows.
func parseRPPS(t *testing.T, data string, maxLine int) {
	pf, header, err := openPipeFile(strings.NewReader(data), maxLine)
	if err != nil {
		return
	}
	idx, err := headerIndex(header, rppsColumns)
	if err != nil {
		return
	}
	for {
		row, err := pf.next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if row.reason != "" {
			continue
		}
		if len(row.fields) != pf.width {
			t.Fatalf("line %d: %d fields, width %d", row.num, len(row.fields), pf.width)
		}
		rec, rerr := parseRPPSRow(idx, row.fields)
		if rerr != nil {
			if rerr.key != "" && !validNatID(rerr.key) {
				t.Fatalf("line %d: rejection key %q", row.num, rerr.key)
			}
			continue
		}
		if !validNatID(rec.prof.ID) || rec.act.Professional != rec.prof.ID || rec.prof.FamilyName == "" {
			t.Fatalf("line %d: accepted %+v", row.num, rec.prof)
		}
		if len(rec.prof.FamilyName) > maxLine || len(rec.org.Name) > maxLine {
			t.Fatalf("line %d: a value over the line bound", row.num)
		}
	}
}

func FuzzRPPSRow(f *testing.F) {
	l := rppsFixture(f, "testdata/rpps.txt")
	for _, line := range l[1:] {
		f.Add(line)
	}
	f.Add(strings.Replace(l[1], "|19912345601|", "||", 1))
	f.Add(strings.TrimSuffix(l[1], "|"))
	f.Add("\xff" + l[1])
	header := l[0]
	f.Fuzz(func(t *testing.T, row string) {
		parseRPPS(t, header+"\n"+row+"\n"+row, 4096)
	})
}

func FuzzRPPSFile(f *testing.F) {
	l := rppsFixture(f, "testdata/rpps.txt")
	f.Add(strings.Join(l[:4], "\n"))
	f.Add(strings.Join(l[:2], "\r\n"))
	f.Add("a|b|\n1|2|\n")
	f.Fuzz(func(t *testing.T, data string) {
		parseRPPS(t, data, 1024)
	})
}
