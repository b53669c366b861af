package directory

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"golang.org/x/text/encoding/charmap"
)

// readAll returns the lines of s read with a bound of max bytes.
func readAll(t *testing.T, r io.Reader, max int) (*LineReader, []Line) {
	t.Helper()
	lr, err := NewLineReader(r, max)
	if err != nil {
		t.Fatal(err)
	}
	var lines []Line
	for {
		l, err := lr.Next()
		if errors.Is(err, io.EOF) {
			return lr, lines
		}
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
}

func TestLineReaderTerminatorsAndBOM(t *testing.T) {
	lr, lines := readAll(t, strings.NewReader("\xEF\xBB\xBFun|deux\r\ntrois\n\nquatre"), 0)
	want := []Line{{Num: 1, Text: "un|deux"}, {Num: 2, Text: "trois"}, {Num: 3, Text: ""}, {Num: 4, Text: "quatre", NoNewline: true}}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines %+v, want %d", len(lines), lines, len(want))
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, lines[i], want[i])
		}
	}
	if lr.Encoding() != EncodingUTF8 {
		t.Errorf("encoding %s", lr.Encoding())
	}
}

func TestLineReaderWindows1252(t *testing.T) {
	src, err := charmap.Windows1252.NewEncoder().String("Hélène|LECŒUR|Zoé\nÉtienne\n")
	if err != nil {
		t.Fatal(err)
	}
	lr, lines := readAll(t, strings.NewReader(src), 0)
	if lr.Encoding() != EncodingWindows1252 {
		t.Fatalf("encoding %s, want Windows-1252", lr.Encoding())
	}
	if len(lines) != 2 || lines[0].Text != "Hélène|LECŒUR|Zoé" || lines[1].Text != "Étienne" {
		t.Fatalf("lines %+v", lines)
	}
}

func TestLineReaderInvalidUTF8AfterSniff(t *testing.T) {
	// 64 KiB of valid UTF-8 decide the encoding; a later bad line is
	// rejected on its own.
	var b bytes.Buffer
	for b.Len() <= sniffSize {
		b.WriteString("ligne valide é\n")
	}
	n := strings.Count(b.String(), "\n")
	b.WriteString("abc\xE9def\nfin\n")
	lr, lines := readAll(t, &b, 0)
	if lr.Encoding() != EncodingUTF8 {
		t.Fatalf("encoding %s", lr.Encoding())
	}
	bad := lines[n]
	if bad.Num != n+1 || bad.Err == nil || bad.Err.Error() != "invalid UTF-8 at byte 4" {
		t.Fatalf("bad line %+v", bad)
	}
	if last := lines[n+1]; last.Text != "fin" || last.Err != nil {
		t.Fatalf("line after the bad one %+v", last)
	}
}

func TestLineReaderSniffCutsARune(t *testing.T) {
	// A multi-byte character across the 64 KiB boundary is not a sign of
	// Windows-1252.
	s := strings.Repeat("a", sniffSize-1) + "é\n"
	lr, lines := readAll(t, strings.NewReader(s), sniffSize+10)
	if lr.Encoding() != EncodingUTF8 || len(lines) != 1 || lines[0].Err != nil {
		t.Fatalf("encoding %s, lines %d, err %v", lr.Encoding(), len(lines), lines[0].Err)
	}
}

func TestLineReaderLongLines(t *testing.T) {
	long := strings.Repeat("x", 300)
	huge := strings.Repeat("y", 200<<10) // longer than the buffer
	lr, lines := readAll(t, strings.NewReader("court\n"+long+"\r\n"+huge+"\napres\n"+huge), 100)
	if len(lines) != 5 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, i := range []int{1, 2, 4} {
		if !errors.Is(lines[i].Err, ErrLineTooLong) || lines[i].Num != i+1 {
			t.Errorf("line %d: %+v", i+1, lines[i])
		}
	}
	if lines[3].Text != "apres" || lines[3].Num != 4 {
		t.Errorf("line 4: %+v", lines[3])
	}
	if got, want := lr.Bytes(), int64(6+302+len(huge)+1+6+len(huge)); got != want {
		t.Errorf("bytes %d, want %d", got, want)
	}
}

func TestSplitFields(t *testing.T) {
	got := splitFields(nil, "a||b|")
	if len(got) != 4 || got[0] != "a" || got[1] != "" || got[2] != "b" || got[3] != "" {
		t.Fatalf("%q", got)
	}
}

func TestHeaderIndex(t *testing.T) {
	header := []string{"Code postal (coord. structure)", "NOM D'EXERCICE", "Prénom  d’exercice", "Raison Sociale structure BAL"}
	cols := []column{
		{names: []string{"nomdexercice"}, required: true},
		{names: []string{"prenomdexercice"}, required: true},
		{names: []string{"codepostal"}},
		{names: []string{"raisonsociale"}},
		{names: []string{"absente"}},
	}
	idx, err := headerIndex(header, cols)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 2, 0, 3, -1}; !equalInts(idx, want) {
		t.Fatalf("index %v, want %v", idx, want)
	}
	_, err = headerIndex(header[:1], cols)
	if !errors.Is(err, ErrMissingColumn) || !strings.Contains(err.Error(), "nomdexercice, prenomdexercice") {
		t.Fatalf("error %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
