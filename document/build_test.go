package document

import (
	"bytes"
	"errors"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/relais-mssante/relais/document/cda"
)

// Build then Analyze: the metadata read back equals the CDA header, the
// package passes `unzip -t`, the MSSanté headers are there.
func TestBuildAnalyzeRoundTrip(t *testing.T) {
	doc := fixtureCDA(t)
	msg, id := buildTestMessage(t, doc, testPDF())
	if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@relais.test>") {
		t.Errorf("Message-ID %q", id)
	}
	if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) {
		t.Error("bare LF in Build output")
	}
	for i, c := range msg {
		if c >= 0x80 {
			t.Fatalf("non-ASCII byte at %d: Build output must be 7-bit", i)
		}
	}

	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	wantHeaders := map[string]string{
		"X-Mss-Codecda": "11490-0",
		"X-Mss-Ins":     "O",
		"X-Mss-Nil":     "RELAIS-TEST-1",
		"X-Mss-Mes":     "FIN",
		"Message-Id":    id,
	}
	for k, v := range wantHeaders {
		if got := m.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}

	before := bytes.Clone(msg)
	a := Analyze(msg, Limits{})
	if !bytes.Equal(before, msg) {
		t.Fatal("Analyze modified the message")
	}
	wantSubject := "XDM/1.0/DDM+Lettre de liaison de sortie DUPONT-ESSAI Camille 12/03/1985"
	if a.Subject != wantSubject {
		t.Errorf("subject %q, want %q", a.Subject, wantSubject)
	}
	if a.MessageID != id {
		t.Errorf("MessageID %q, want %q", a.MessageID, id)
	}
	if !a.Has() || !a.Valid() || len(a.Documents) != 1 {
		t.Fatalf("Has=%v Valid=%v docs=%d problems: %s", a.Has(), a.Valid(), len(a.Documents), problemTexts(a.Problems))
	}
	if len(a.Problems) != 0 {
		t.Errorf("message problems: %s", problemTexts(a.Problems))
	}
	d := a.Documents[0]
	if len(d.Problems) != 0 {
		t.Errorf("document problems: %s", problemTexts(d.Problems))
	}
	if d.Source != SourceXDM || d.Filename != XDMFilename || d.Subset != "IHE_XDM/SUBSET01" || d.Entry == nil || !d.PDF {
		t.Errorf("document %+v", d)
	}
	want, err := cda.Parse(bytes.NewReader(doc), cda.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Header, want) {
		t.Errorf("header read back differs from the CDA's:\n got %+v\nwant %+v", d.Header, want)
	}
	if d.Entry.TypeCode.Code != "11490-0" || d.Entry.Title != want.Title || !strings.Contains(d.Entry.PatientID, testINS) {
		t.Errorf("XDS entry does not match the CDA: %+v", d.Entry)
	}

	ev := a.Events()
	if len(ev) != 1 {
		t.Fatalf("events %+v", ev)
	}
	e := ev[0]
	if e.PatientINS != testINS || e.INSKind != want.Patient.INSKind || e.TypeCode != "11490-0" ||
		e.Title != "Lettre de liaison de sortie" || e.AuthorID != "899900000029" || e.AuthorName != "DR Paul FICTIF" ||
		e.Custodian != "Centre Hospitalier Imaginaire" || !e.Valid || e.DocumentID != "1.2.250.1.999.42.1^LDL-2026-0007" || e.MessageID != id {
		t.Errorf("event %+v", e)
	}
	hf := a.HeaderFields()
	if unfolded := strings.ReplaceAll(hf, "\r\n ", " "); !strings.HasPrefix(unfolded, "X-Relais-Document: valid; source=xdm; type=11490-0; ins=") || !strings.HasSuffix(hf, "\r\n") {
		t.Errorf("header fields %q", hf)
	}

	// The attachments as a mail client sees them; unzip -t on the package.
	var zipData, pdf []byte
	for _, lf := range leavesOf(t, msg) {
		switch lf.filename {
		case XDMFilename:
			zipData = lf.data
			if lf.mediaType != "application/zip" {
				t.Errorf("zip media type %q", lf.mediaType)
			}
		case PDFFilename(want, testNow):
			pdf = lf.data
		}
	}
	if !bytes.Equal(pdf, testPDF()) {
		t.Errorf("PDF attachment %q missing or altered", PDFFilename(want, testNow))
	}
	if zipData == nil {
		t.Fatal("no IHE_XDM.ZIP attachment")
	}
	unzip := needTool(t, "unzip")
	path := filepath.Join(t.TempDir(), XDMFilename)
	if err := os.WriteFile(path, zipData, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(unzip, "-t", path).CombinedOutput()
	if err != nil {
		t.Fatalf("unzip -t: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "No errors detected") || !strings.Contains(string(out), "IHE_XDM/SUBSET01/METADATA.XML") {
		t.Errorf("unzip -t:\n%s", out)
	}
}

// Python's email package (an independent MIME implementation) reads Build's
// output without defects: subject, X-MSS headers, attachment names and types.
func TestBuildPythonParses(t *testing.T) {
	t.Parallel()
	doc := fixtureCDA(t)
	h, err := cda.Parse(bytes.NewReader(doc), cda.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := buildTestMessage(t, doc, testPDF())
	out := runPython(t, `
import sys, email, email.policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
print("defects", len(m.defects))
print("subject", m["subject"])
print("codecda", m["x-mss-codecda"], "ins", m["x-mss-ins"], "mes", m["x-mss-mes"])
print("from", m["from"].addresses[0].display_name, m["from"].addresses[0].addr_spec)
for part in m.walk():
    if part.defects:
        print("part-defects", part.get_content_type(), part.defects)
    if part.get_filename():
        print("attachment", part.get_content_type(), part.get_filename(), len(part.get_content()))
    elif part.get_content_type() == "text/plain":
        print("body", "Camille" in part.get_content(), "IHE_XDM.ZIP" in part.get_content())
`, msg)
	wants := []string{
		"defects 0",
		"subject XDM/1.0/DDM+Lettre de liaison de sortie DUPONT-ESSAI Camille 12/03/1985",
		"codecda 11490-0 ins O mes FIN",
		"from Dr Paul Fictif " + testFrom,
		"attachment application/zip IHE_XDM.ZIP ",
		"attachment application/pdf " + PDFFilename(h, testNow) + " " + itoa(len(testPDF())),
		"body True True",
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("python output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "part-defects") {
		t.Errorf("python found defects:\n%s", out)
	}
	// ECO.2.1.6 file name, with accents: RFC 2231 encoded, decoded by Python.
	if want := "20261120_Lettre de liaison à la sortie d'un établissement de soins_DUPONT-ESSAI_Camille.pdf"; PDFFilename(h, testNow) != want {
		t.Errorf("PDF name %q, want %q", PDFFilename(h, testNow), want)
	}
}

func TestBuildRefuses(t *testing.T) {
	doc := fixtureCDA(t)
	base := BuildRequest{From: testFrom, To: []string{testTo}, CDA: doc, Now: testNow, Hostname: "relais.test"}
	cases := []struct {
		name string
		mod  func(*BuildRequest)
		want error
	}{
		{"no recipient", func(r *BuildRequest) { r.To = nil }, ErrBadRequest},
		{"bad sender", func(r *BuildRequest) { r.From = "not an address" }, ErrBadRequest},
		{"no hostname", func(r *BuildRequest) { r.Hostname = "" }, ErrBadRequest},
		{"not a PDF", func(r *BuildRequest) { r.PDF = []byte("hello") }, ErrNotPDF},
		{"PDF not PDF/A", func(r *BuildRequest) { r.PDF = []byte("%PDF-1.7\n%%EOF\n") }, ErrNotPDFA},
		{"not a CDA", func(r *BuildRequest) { r.CDA = []byte("<html/>") }, cda.ErrNotCDA},
		{"no patient", func(r *BuildRequest) {
			s := string(doc)
			s = s[:strings.Index(s, "<recordTarget>")] + s[strings.Index(s, "</recordTarget>")+len("</recordTarget>"):]
			r.CDA = []byte(s)
		}, ErrNoPatient},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := base
			c.mod(&r)
			if _, _, err := Build(r); !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}
	// No header injection through the free-text fields; still 7-bit.
	inj := base
	inj.FromName = "Dr X\r\nBcc: victim@evil.test"
	inj.NIL = "Logiciel é\r\nX-Injected: 1"
	msg, _, err := Build(inj)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil || m.Header.Get("Bcc") != "" || m.Header.Get("X-Injected") != "" || bytes.ContainsFunc(msg, func(r rune) bool { return r >= 0x80 }) {
		t.Errorf("injection or 8-bit header: %v\n%s", err, msg[:bytes.Index(msg, []byte("\r\n\r\n"))])
	}
	// Without a PDF, Build works and Analyze warns (ECO.2.1.1).
	msg, _, err = Build(base)
	if err != nil {
		t.Fatal(err)
	}
	a := Analyze(msg, Limits{})
	if !a.Valid() || !strings.Contains(problemTexts(a.Problems), "no PDF copy") {
		t.Errorf("valid=%v problems %s", a.Valid(), problemTexts(a.Problems))
	}
	if m, _ := mail.ReadMessage(bytes.NewReader(msg)); m.Header.Get("X-Mss-Mes") != "" || m.Header.Get("X-Mss-Nil") != "" {
		t.Error("X-MSS-MES or X-MSS-NIL set without being asked")
	}
}
