package document

import (
	"bytes"
	"encoding/base64"
	"mime"
	"net/mail"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 23, 10, 30, 0, 0, time.FixedZone("CET", 3600))

const (
	testFrom = "dr.fictif@chi-imaginaire.test.mssante.fr"
	testTo   = "dr.generaliste@cabinet.test.mssante.fr"
	testINS  = "285037512345688"
)

func fixtureCDA(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "discharge.xml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testPDF is a tiny synthetic PDF whose XMP metadata declares PDF/A-1b.
func testPDF() []byte {
	return []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" +
		"1 0 obj << /Type /Catalog /Pages 2 0 R /Metadata 3 0 R >> endobj\n" +
		"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n" +
		"3 0 obj << /Type /Metadata /Subtype /XML >> stream\n" +
		`<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">` +
		`<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"><pdfaid:part>1</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance></rdf:Description>` +
		"</rdf:RDF></x:xmpmeta>\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
}

func buildTestMessage(t testing.TB, cdaDoc, pdf []byte) ([]byte, string) {
	t.Helper()
	msg, id, err := Build(BuildRequest{
		From: testFrom, FromName: "Dr Paul Fictif", To: []string{testTo},
		CDA: cdaDoc, PDF: pdf, NIL: "RELAIS-TEST-1", NoReply: true,
		Now: testNow, Hostname: "relais.test",
	})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return msg, id
}

// attachment is one part of a hand-made test message.
type attachment struct {
	contentType string // full Content-Type value
	filename    string // "" for none
	data        []byte
}

// mixedMessage writes a multipart/mixed message with a text part and the
// attachments (base64), plus extra header lines.
func mixedMessage(subject string, extra []string, atts ...attachment) []byte {
	var b bytes.Buffer
	b.WriteString("From: " + testFrom + "\r\nTo: " + testTo + "\r\n")
	b.WriteString("Subject: " + mime.QEncoding.Encode("utf-8", subject) + "\r\n")
	b.WriteString("Message-ID: <test.1@relais.test>\r\nDate: Mon, 23 Nov 2026 10:30:00 +0100\r\n")
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BOUNDARY\"\r\n\r\n")
	b.WriteString("--BOUNDARY\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour.\r\n")
	for _, a := range atts {
		b.WriteString("--BOUNDARY\r\nContent-Type: " + a.contentType + "\r\n")
		if a.filename != "" {
			b.WriteString("Content-Disposition: attachment; filename=\"" + a.filename + "\"\r\n")
		}
		b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
		enc := base64.StdEncoding.EncodeToString(a.data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--BOUNDARY--\r\n")
	return b.Bytes()
}

// leavesOf returns the decoded leaves of a message, for tests.
func leavesOf(t testing.TB, msg []byte) []leaf {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	w := &walker{lim: Limits{}.withDefaults()}
	if err := w.walk(textproto.MIMEHeader(m.Header), m.Body, 0); err != nil {
		t.Fatal(err)
	}
	return w.leaves
}

func hasCode(ps []Problem, code int) bool {
	for _, p := range ps {
		if !p.Warning && p.Code == code {
			return true
		}
	}
	return false
}

func problemTexts(ps []Problem) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " | ")
}

// needTool skips when a real peer is missing (scripts/test-deps.sh installs it).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// runPython runs a Python 3 script with the message on stdin and returns
// its standard output.
func runPython(t *testing.T, script string, stdin []byte) string {
	t.Helper()
	py := needTool(t, "python3")
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3: %v\n%s", err, errb.String())
	}
	return out.String()
}
