package document

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
)

// FuzzAnalyze: no input makes Analyze panic (a recovered panic shows as an
// "internal error" problem), and the header fields stay clean ASCII.
func FuzzAnalyze(f *testing.F) {
	doc := fixtureCDA(f)
	built, _ := buildTestMessage(f, doc, testPDF())
	f.Add(built)
	f.Add(mixedMessage("CR", nil, attachment{MediaTypeCDA, "a.xml", doc}))
	f.Add(mixedMessage(xdmSubject, xdmHeaders, attachment{"application/zip", "IHE_XDM.ZIP", []byte("PK\x03\x04garbage")}))
	f.Add(mixedMessage("CR", nil, attachment{"text/xml", "a.xml", []byte(`<ClinicalDocument xmlns="urn:hl7-org:v3"><recordTarget/></ClinicalDocument>`)}))
	f.Add([]byte("Subject: x\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a--\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		a := Analyze(msg, Limits{MaxPart: 1 << 20, MaxMessage: 4 << 20})
		for _, p := range a.Problems {
			if strings.Contains(p.Text, "internal error") {
				t.Fatalf("recovered panic on input %q", msg)
			}
		}
		hf := a.HeaderFields()
		if a.Has() != (hf != "") {
			t.Fatalf("Has=%v but header %q", a.Has(), hf)
		}
		if hf != "" && !strings.HasSuffix(hf, "\r\n") {
			t.Fatalf("header not CRLF-terminated: %q", hf)
		}
		for _, line := range strings.Split(strings.TrimSuffix(hf, "\r\n"), "\r\n") {
			if hf == "" {
				break
			}
			for i := 0; i < len(line); i++ {
				if c := line[i]; c >= 0x80 || c < 0x20 {
					t.Fatalf("header line not clean: %q", line)
				}
			}
			if len(line) > 998 {
				t.Fatalf("header line too long: %d", len(line))
			}
		}
		if a.Has() && len(a.Events()) == 0 {
			t.Fatal("Has but no events")
		}
		_ = a.Valid()
	})
}

// FuzzAnswer: the answers and RemoveHeaderFields never panic on a hostile
// original, and what they build is a readable message.
func FuzzAnswer(f *testing.F) {
	built, _ := buildTestMessage(f, fixtureCDA(f), testPDF())
	f.Add(withHeader(built, "Disposition-Notification-To: a@b.test"))
	f.Add(built)
	f.Add([]byte("From: x\r\nX-Relais-Document: forged\r\n\tmore\r\n\r\nbody"))
	f.Add([]byte("Message-ID: <<>>\r\nFrom: a@b.test\r\nReturn-Path: <>\r\nDisposition-Notification-To: a@b.test\r\n\r\n"))
	f.Fuzz(func(t *testing.T, orig []byte) {
		out := RemoveHeaderFields(orig)
		if len(out) > len(orig) {
			t.Fatal("RemoveHeaderFields grew the message")
		}
		msg, _, err := Answer(orig, appMailbox, Problem{Code: CodeNoINS, Text: Label(CodeNoINS)}, testNow, "relais.test")
		if err != nil {
			return
		}
		if _, err := mail.ReadMessage(bytes.NewReader(msg)); err != nil {
			t.Fatalf("answer unreadable: %v", err)
		}
	})
}
