package document

import (
	"archive/zip"
	"bytes"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-mssante/relais/document/cda"
	"github.com/relais-mssante/relais/document/xdm"
)

func parseFixture(t testing.TB, doc []byte) cda.Header {
	t.Helper()
	h, err := cda.Parse(bytes.NewReader(doc), cda.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// xdmZip packs doc with xdm.Build, the metadata derived from meta.
func xdmZip(t testing.TB, doc []byte, meta cda.Header) []byte {
	t.Helper()
	z, _, err := xdm.Build(xdm.BuildInput{
		Documents:  []xdm.Document{{Data: doc, Header: meta, MimeType: "text/xml"}},
		Recipients: []string{testTo},
		Now:        testNow,
	})
	if err != nil {
		t.Fatalf("xdm.Build: %v", err)
	}
	return z
}

// xdmHeaders are the headers an MSSanté client sets beside IHE_XDM.ZIP.
var xdmHeaders = []string{"X-MSS-CODECDA: 11490-0", "X-MSS-INS: O"}

const xdmSubject = "XDM/1.0/DDM+Lettre de liaison de sortie DUPONT-ESSAI Camille 12/03/1985"

func TestAnalyzePlainMail(t *testing.T) {
	// An ordinary archive that compresses very well is not a broken XDM.
	logs := zipOf(t, map[string][]byte{"logs.txt": bytes.Repeat([]byte("all quiet\n"), 200000)})
	if a := Analyze(mixedMessage("logs", nil, attachment{"application/zip", "logs.zip", logs}), Limits{}); a.Has() {
		t.Errorf("ordinary zip taken for a document: %s", problemTexts(a.Problems))
	}
	msg := mixedMessage("Bonjour", nil, attachment{"application/zip", "photos.zip", zipOf(t, map[string][]byte{"a.txt": []byte("hello")})},
		attachment{"text/xml", "config.xml", []byte(`<?xml version="1.0"?><config/>`)})
	a := Analyze(msg, Limits{})
	if a.Has() || a.Valid() || a.HeaderFields() != "" || a.Events() != nil {
		t.Errorf("plain mail: Has=%v docs=%d problems %s", a.Has(), len(a.Documents), problemTexts(a.Problems))
	}
	if a.Subject != "Bonjour" || a.MessageID != "<test.1@relais.test>" {
		t.Errorf("subject %q id %q", a.Subject, a.MessageID)
	}
	if a := Analyze([]byte("not a mail at all"), Limits{}); a.Has() {
		t.Error("garbage has documents")
	}
}

// A message built from the real ANS example (LDL-SES): INS, LOINC type and
// author read back.
func TestAnalyzeRealSample(t *testing.T) {
	// ../shared/samples from the repository root.
	doc, err := os.ReadFile(filepath.Join("..", "..", "shared", "samples", "LDL-SES_2022.01.xml"))
	if err != nil {
		t.Skip("../shared/samples absent")
	}
	msg, _, err := Build(BuildRequest{From: testFrom, To: []string{testTo}, CDA: doc, PDF: testPDF(), Now: testNow, Hostname: "relais.test"})
	if err != nil {
		t.Fatalf("Build from the sample: %v", err)
	}
	a := Analyze(msg, Limits{})
	if len(a.Documents) != 1 {
		t.Fatalf("docs %d, problems %s", len(a.Documents), problemTexts(a.Problems))
	}
	d := a.Documents[0]
	if d.Header.Patient.INS == nil || d.Header.Patient.INS.Extension != "279035121518989" || d.Header.Patient.INS.Root != cda.OIDINSNIRTest {
		t.Errorf("INS %+v", d.Header.Patient.INS)
	}
	if d.Header.Type.Code != "11490-0" {
		t.Errorf("type %+v", d.Header.Type)
	}
	if len(d.Header.Authors) == 0 || d.Header.Authors[0].ID.Root != cda.OIDRPPS {
		t.Errorf("authors %+v", d.Header.Authors)
	}
	if !a.Valid() {
		t.Errorf("sample invalid: %s / %s", problemTexts(a.Problems), problemTexts(d.Problems))
	}
	ev := a.Events()
	if len(ev) != 1 || ev[0].PatientINS != "279035121518989" || ev[0].TypeCode != "11490-0" || ev[0].AuthorID == "" {
		t.Errorf("events %+v", ev)
	}
}

// Issue 5.2: a bare CDA attachment (.xml, any declared type) is read.
func TestAnalyzeBareCDA(t *testing.T) {
	doc := fixtureCDA(t)
	msg := mixedMessage("Lettre de sortie", nil, attachment{"application/octet-stream", "lettre.xml", doc})
	a := Analyze(msg, Limits{})
	if !a.Has() || !a.Valid() || len(a.Documents) != 1 {
		t.Fatalf("Has=%v Valid=%v docs=%d %s", a.Has(), a.Valid(), len(a.Documents), problemTexts(a.Problems))
	}
	d := a.Documents[0]
	if d.Source != SourceCDA || d.Filename != "lettre.xml" || d.Entry != nil || d.PDF {
		t.Errorf("document %+v", d)
	}
	if d.Header.Patient.INS == nil || d.Header.Patient.INS.Extension != testINS {
		t.Errorf("INS %+v", d.Header.Patient.INS)
	}
	all := problemTexts(a.Problems)
	if !strings.Contains(all, "not packed as IHE_XDM.ZIP") || !strings.Contains(all, "no PDF copy") {
		t.Errorf("warnings %s", all)
	}
}

// Issue 5.2: an application/hl7-cda+xml part is read; a broken one is an
// invalid attempt, delivered with a header saying what is wrong.
func TestAnalyzeHL7CDAPart(t *testing.T) {
	doc := fixtureCDA(t)
	a := Analyze(mixedMessage("CR", nil, attachment{contentType: MediaTypeCDA, data: doc}, attachment{"application/pdf", "cr.pdf", testPDF()}), Limits{})
	if len(a.Documents) != 1 || !a.Valid() || a.Documents[0].Source != SourceCDA || !a.Documents[0].PDF {
		t.Fatalf("docs %+v problems %s", a.Documents, problemTexts(a.Problems))
	}

	broken := Analyze(mixedMessage("CR", nil, attachment{contentType: MediaTypeCDA + "; charset=utf-8", filename: "cr.xml", data: []byte("<ClinicalDocument")}), Limits{})
	if !broken.Has() || broken.Valid() || len(broken.Documents) != 1 || broken.Documents[0].Parsed {
		t.Fatalf("broken: Has=%v Valid=%v docs=%+v", broken.Has(), broken.Valid(), broken.Documents)
	}
	if !hasCode(broken.Documents[0].Problems, CodeOther) {
		t.Errorf("problems %s", problemTexts(broken.Documents[0].Problems))
	}
	hf := broken.HeaderFields()
	if !strings.HasPrefix(hf, "X-Relais-Document: invalid; source=cda;") || !strings.Contains(hf, "error=906") {
		t.Errorf("header %q", hf)
	}
	ev := broken.Events()
	if len(ev) != 1 || ev[0].Valid || len(ev[0].Problems) == 0 {
		t.Errorf("events %+v", ev)
	}

	// A DOCTYPE (XXE attempt) is refused by the CDA parser: a problem, no panic.
	xxe := []byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ClinicalDocument xmlns="urn:hl7-org:v3">&e;</ClinicalDocument>`)
	a = Analyze(mixedMessage("CR", nil, attachment{"text/xml", "cr.xml", xxe}), Limits{})
	if !a.Has() || a.Valid() || strings.Contains(problemTexts(a.Documents[0].Problems), "root:") {
		t.Errorf("XXE: Has=%v problems %s", a.Has(), problemTexts(a.Documents[0].Problems))
	}
}

// MSSanté: one patient per message.
func TestAnalyzeTwoPatients(t *testing.T) {
	doc := fixtureCDA(t)
	other := bytes.ReplaceAll(doc, []byte(testINS), []byte("185057512345649"))
	other = bytes.ReplaceAll(other, []byte("LDL-2026-0007"), []byte("LDL-2026-0008"))
	a := Analyze(mixedMessage("2 lettres", nil,
		attachment{MediaTypeCDA, "a.xml", doc}, attachment{MediaTypeCDA, "b.xml", other}), Limits{})
	if len(a.Documents) != 2 {
		t.Fatalf("docs %d", len(a.Documents))
	}
	if a.Valid() || !hasCode(a.Problems, CodeOther) || !strings.Contains(problemTexts(a.Problems), "one patient per message") {
		t.Errorf("valid=%v problems %s", a.Valid(), problemTexts(a.Problems))
	}
	for _, e := range a.Events() {
		if e.Valid {
			t.Errorf("event valid despite two patients: %+v", e)
		}
	}
	if hf := a.HeaderFields(); strings.Count(hf, "X-Relais-Document: invalid;") != 2 {
		t.Errorf("header %q", hf)
	}
	// The same document twice (bare and in the package) is one document.
	z := xdmZip(t, doc, parseFixture(t, doc))
	a = Analyze(mixedMessage(xdmSubject, xdmHeaders, attachment{"application/zip", "IHE_XDM.ZIP", z}, attachment{MediaTypeCDA, "a.xml", doc}), Limits{})
	if len(a.Documents) != 1 || a.Documents[0].Source != SourceXDM {
		t.Errorf("dedupe: %d docs", len(a.Documents))
	}
}

// 903: no INS in the document; 905: INS without the identity traits.
func TestAnalyzeINSProblems(t *testing.T) {
	doc := fixtureCDA(t)
	noINS := bytes.Replace(doc, []byte(`<id root="1.2.250.1.213.1.4.10" extension="285037512345688"/>`), nil, 1)
	a := Analyze(mixedMessage("CR", nil, attachment{MediaTypeCDA, "a.xml", noINS}), Limits{})
	if len(a.Documents) != 1 || a.Valid() || !hasCode(a.Documents[0].Problems, CodeNoINS) {
		t.Fatalf("no INS: %s", problemTexts(a.Documents[0].Problems))
	}
	hf := a.HeaderFields()
	if !strings.Contains(hf, "error=903") || strings.Contains(hf, "ins=") {
		t.Errorf("header %q", hf)
	}
	// RFC 2047: the label's accents are encoded and decode back.
	if dec := decodeHeader(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(hf), HeaderName+":"), "\r\n", "")); !strings.Contains(dec, "903 INS non présent dans le document") {
		t.Errorf("decoded header %q", dec)
	}
	for _, line := range strings.Split(strings.TrimSuffix(hf, "\r\n"), "\r\n") {
		if len(line) > 78 {
			t.Errorf("header line longer than 78: %q", line)
		}
		for _, c := range []byte(line) {
			if c >= 0x80 || c < 0x20 {
				t.Fatalf("header line not clean ASCII: %q", line)
			}
		}
	}
	if e := a.Events(); len(e) != 1 || e[0].Valid || e[0].PatientINS != "" {
		t.Errorf("events %+v", e)
	}

	noTraits := bytes.Replace(doc, []byte(`<birthTime value="19850312"/>`), nil, 1)
	noTraits = bytes.Replace(noTraits, []byte(`<administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>`), nil, 1)
	a = Analyze(mixedMessage("CR", nil, attachment{MediaTypeCDA, "a.xml", noTraits}), Limits{})
	if a.Valid() || !hasCode(a.Documents[0].Problems, CodeINSIncomplete) {
		t.Errorf("no traits: %s", problemTexts(a.Documents[0].Problems))
	}
	badINS := bytes.Replace(doc, []byte(testINS), []byte("28503751234"), 1)
	a = Analyze(mixedMessage("CR", nil, attachment{MediaTypeCDA, "a.xml", badINS}), Limits{})
	if a.Valid() || !strings.Contains(problemTexts(a.Documents[0].Problems), "malformed") {
		t.Errorf("bad INS: %s", problemTexts(a.Documents[0].Problems))
	}
}

func TestINSKey(t *testing.T) {
	for s, want := range map[string]insVerdict{
		"285037512345688": insOK,
		"279035121518989": insOK,
		"285037512345687": insBadKey,
		"1850275A0123456": insMalformed,
		"28503":           insMalformed,
	} {
		if got := insCheck(s); got != want {
			t.Errorf("insCheck(%s) = %v, want %v", s, got, want)
		}
	}
	// Corsica: 2A counts as 19 (key computed with 19 in place of 2A).
	if got := insCheck("185022A12345682"); got != insOK {
		t.Errorf("Corsican INS: %v", got)
	}
}

// The subset folder is read, not assumed: IHE_XDM/SS000001/ as in an
// official sample.
func TestAnalyzeXDMSubsetSS000001(t *testing.T) {
	doc := fixtureCDA(t)
	z := renameInZip(t, xdmZip(t, doc, parseFixture(t, doc)), "IHE_XDM/SUBSET01/", "IHE_XDM/SS000001/")
	a := Analyze(mixedMessage(xdmSubject, xdmHeaders, attachment{"application/octet-stream", "ihe_xdm.zip", z}, attachment{"application/pdf", "cr.pdf", testPDF()}), Limits{})
	if len(a.Documents) != 1 || !a.Valid() {
		t.Fatalf("docs %d valid %v: %s", len(a.Documents), a.Valid(), problemTexts(a.Problems))
	}
	if d := a.Documents[0]; d.Subset != "IHE_XDM/SS000001" || d.Source != SourceXDM || len(d.Problems) != 0 || len(a.Problems) != 0 {
		t.Errorf("subset %q problems %s / %s", d.Subset, problemTexts(d.Problems), problemTexts(a.Problems))
	}
}

func TestAnalyzeBrokenZip(t *testing.T) {
	a := Analyze(mixedMessage(xdmSubject, xdmHeaders, attachment{"application/zip", "IHE_XDM.ZIP", []byte("PK\x03\x04 this is not a zip")}), Limits{})
	if !a.Has() || a.Valid() || len(a.Documents) != 0 || !hasCode(a.Problems, CodeOther) {
		t.Fatalf("Has=%v Valid=%v problems %s", a.Has(), a.Valid(), problemTexts(a.Problems))
	}
	if hf := a.HeaderFields(); !strings.HasPrefix(hf, "X-Relais-Document: invalid; error=906") {
		t.Errorf("header %q", hf)
	}
	if ev := a.Events(); len(ev) != 1 || ev[0].Valid || ev[0].MessageID != "<test.1@relais.test>" || len(ev[0].Problems) == 0 {
		t.Errorf("events %+v", ev)
	}
	// A zip named otherwise without XDM metadata is an ordinary attachment,
	// but IHE_XDM.ZIP without metadata is a broken package.
	z := zipOf(t, map[string][]byte{"README.TXT": []byte("hello")})
	if a := Analyze(mixedMessage("x", nil, attachment{"application/zip", "IHE_XDM.ZIP", z}), Limits{}); !a.Has() || a.Valid() {
		t.Errorf("IHE_XDM.ZIP without metadata: Has=%v", a.Has())
	}
}

func TestAnalyzeZipBomb(t *testing.T) {
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, err := zw.Create("IHE_XDM/SUBSET01/METADATA.XML")
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for i := 0; i < 8; i++ { // 8 MiB of zeros: a compression ratio near 1000
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	a := Analyze(mixedMessage(xdmSubject, xdmHeaders, attachment{"application/zip", "IHE_XDM.ZIP", zb.Bytes()}), Limits{})
	if !a.Has() || a.Valid() || !hasCode(a.Problems, CodeOther) || !strings.Contains(problemTexts(a.Problems), "limit") {
		t.Errorf("zip bomb: Has=%v problems %s", a.Has(), problemTexts(a.Problems))
	}
	// Size limit on the part itself.
	a = Analyze(mixedMessage(xdmSubject, xdmHeaders, attachment{"application/zip", "IHE_XDM.ZIP", zb.Bytes()}), Limits{MaxPart: 1024})
	if !a.Has() || a.Valid() || !strings.Contains(problemTexts(a.Problems), "size limit") {
		t.Errorf("part limit: %s", problemTexts(a.Problems))
	}
}

// METADATA.XML that contradicts the CDA is a problem of that document.
func TestAnalyzeMetadataContradiction(t *testing.T) {
	doc := fixtureCDA(t)
	meta := parseFixture(t, doc)
	meta.Type = cda.Code{Code: "34112-3", System: cda.OIDLOINC, Display: "Compte rendu opératoire"}
	z := xdmZip(t, doc, meta)
	a := Analyze(mixedMessage(xdmSubject, xdmHeaders, attachment{"application/zip", "IHE_XDM.ZIP", z}, attachment{"application/pdf", "cr.pdf", testPDF()}), Limits{})
	if len(a.Documents) != 1 || a.Valid() {
		t.Fatalf("docs %d valid %v", len(a.Documents), a.Valid())
	}
	if !strings.Contains(problemTexts(a.Documents[0].Problems)+problemTexts(a.Problems), "METADATA.XML contradicts the CDA") {
		t.Errorf("problems %s / %s", problemTexts(a.Documents[0].Problems), problemTexts(a.Problems))
	}
}

// The X-MSS headers are checked against the documents (warnings).
func TestAnalyzeMSSHeaders(t *testing.T) {
	doc := fixtureCDA(t)
	z := xdmZip(t, doc, parseFixture(t, doc))
	a := Analyze(mixedMessage("Compte rendu", []string{"X-MSS-CODECDA: 34112-3", "X-MSS-INS: N"},
		attachment{"application/zip", "IHE_XDM.ZIP", z}, attachment{"application/pdf", "cr.pdf", []byte("%PDF-1.7\n%%EOF")}), Limits{})
	if !a.Valid() {
		t.Fatalf("warnings made it invalid: %s", problemTexts(a.Problems))
	}
	all := problemTexts(a.Problems)
	for _, w := range []string{"subject does not start", "X-MSS-CODECDA does not list", "X-MSS-INS contradicts", "not declared PDF/A"} {
		if !strings.Contains(all, w) {
			t.Errorf("missing warning %q in %s", w, all)
		}
	}
	if hf := a.HeaderFields(); !strings.HasPrefix(hf, "X-Relais-Document: valid;") || !strings.Contains(hf, "warning=") {
		t.Errorf("header %q", hf)
	}
}

// RFC 2231 and RFC 2047 file names are decoded; message/rfc822 parts are
// not descended.
func TestAnalyzeFilenames(t *testing.T) {
	doc := fixtureCDA(t)
	z := xdmZip(t, doc, parseFixture(t, doc))
	var b bytes.Buffer
	b.WriteString("From: " + testFrom + "\r\nSubject: " + xdmSubject + "\r\nX-MSS-CODECDA: 11490-0\r\nX-MSS-INS: O\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename*=UTF-8''IHE_XDM.ZIP\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	b.WriteString(b64(z) + "\r\n")
	b.WriteString("--b1\r\nContent-Type: application/pdf; name=\"" + mime.QEncoding.Encode("utf-8", "compte rendu é.pdf") + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(testPDF()) + "\r\n")
	b.WriteString("--b1\r\nContent-Type: message/rfc822\r\n\r\n")
	b.Write(mixedMessage("forwarded", nil, attachment{MediaTypeCDA, "other.xml", doc}))
	b.WriteString("\r\n--b1--\r\n")
	leaves := leavesOf(t, b.Bytes())
	if len(leaves) != 3 || leaves[0].filename != "IHE_XDM.ZIP" || leaves[1].filename != "compte rendu é.pdf" || leaves[2].mediaType != "message/rfc822" {
		t.Errorf("leaves %+v", leaves)
	}
	a := Analyze(b.Bytes(), Limits{})
	if len(a.Documents) != 1 || !a.Valid() || len(a.Problems) != 0 {
		t.Errorf("docs %d valid %v problems %s", len(a.Documents), a.Valid(), problemTexts(a.Problems))
	}
}

func TestAnalyzeLimits(t *testing.T) {
	doc := fixtureCDA(t)
	msg := mixedMessage("CR", nil, attachment{MediaTypeCDA, "a.xml", doc})
	if a := Analyze(msg, Limits{MaxMessage: 100}); a.Has() {
		t.Error("message over MaxMessage analysed")
	}
	// Deep nesting stops at MaxDepth without failing.
	var b bytes.Buffer
	b.WriteString("Subject: deep\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := 1; i < 40; i++ {
		b.WriteString("--b" + itoa(i-1) + "\r\nContent-Type: multipart/mixed; boundary=b" + itoa(i) + "\r\n\r\n")
	}
	if a := Analyze(b.Bytes(), Limits{}); a.Has() {
		t.Error("deep nesting produced documents")
	}
	many := make([]attachment, 30)
	for i := range many {
		many[i] = attachment{MediaTypeCDA, "d" + itoa(i) + ".xml", doc}
	}
	a := Analyze(mixedMessage("many", nil, many...), Limits{MaxDocuments: 3})
	if len(a.Documents) != 3 || a.Valid() {
		t.Errorf("MaxDocuments: %d docs", len(a.Documents))
	}
}

func zipOf(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, data := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// renameInZip rewrites a ZIP with every name prefix from replaced by to.
func renameInZip(t testing.TB, data []byte, from, to string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		name := f.Name
		if strings.HasPrefix(name, from) {
			name = to + strings.TrimPrefix(name, from)
		}
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(content); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func b64(data []byte) string {
	var b bytes.Buffer
	_ = writeBase64(&b, data)
	return b.String()
}
