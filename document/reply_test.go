package document

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const appMailbox = "dpi.auto@cabinet.test.mssante.fr"

// withHeader inserts header lines at the top of a message.
func withHeader(msg []byte, lines ...string) []byte {
	return append([]byte(strings.Join(lines, "\r\n")+"\r\n"), msg...)
}

// The MDN answering a document without INS, read by Python's email package:
// multipart/report of text, disposition-notification and the original.
func TestErrorMDN(t *testing.T) {
	t.Parallel()
	doc := bytes.Replace(fixtureCDA(t), []byte(`<id root="1.2.250.1.213.1.4.10" extension="285037512345688"/>`), nil, 1)
	orig, origID := buildTestMessage(t, doc, testPDF())
	orig = withHeader(orig, "Disposition-Notification-To: "+testFrom)
	a := Analyze(orig, Limits{})
	if a.Valid() || len(a.Documents) != 1 || !hasCode(a.Documents[0].Problems, CodeNoINS) {
		t.Fatalf("analysis: %s", problemTexts(a.Documents[0].Problems))
	}
	if n := len(a.Documents[0].Problems); n != 1 {
		t.Errorf("want 903 alone, got %s", problemTexts(a.Documents[0].Problems))
	}
	var p Problem
	for _, q := range a.Documents[0].Problems {
		if q.Code == CodeNoINS {
			p = q
		}
	}
	mdn, err := ErrorMDN(orig, appMailbox, p, testNow, "relais.test")
	if err != nil {
		t.Fatal(err)
	}
	out := runPython(t, `
import sys, email, email.policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
print("defects", len(m.defects))
print("subject", m["subject"])
print("to", m["to"], "from", m["from"], "auto", m["auto-submitted"], "irt", m["in-reply-to"])
print("type", m.get_content_type(), m.get_param("report-type"))
parts = list(m.iter_parts())
print("parts", [p.get_content_type() for p in parts])
print("text", parts[0].get_content().replace("\n", " | "))
dn = parts[1].get_payload()[0] if parts[1].is_multipart() else None
raw = parts[1].as_bytes().decode("utf-8")
print("dn", raw.replace("\r\n", " | ").replace("\n", " | "))
inner = parts[2].get_payload()[0]
print("inner-subject", inner["subject"])
print("inner-id", inner["message-id"])
print("inner-attachments", [x.get_filename() for x in inner.walk() if x.get_filename()])
`, mdn)
	wants := []string{
		"defects 0",
		"subject [KO Intégration système !][903] XDM/1.0/DDM+Lettre de liaison de sortie DUPONT-ESSAI Camille 12/03/1985",
		"to " + testFrom + " from " + appMailbox + " auto auto-replied irt " + origID,
		"type multipart/report disposition-notification",
		"parts ['text/plain', 'message/disposition-notification', 'message/rfc822']",
		"Le système a retourné l'erreur 903^INS non présent dans le document",
		"Original-Message-ID: " + origID,
		"Final-Recipient: rfc822;" + appMailbox,
		"Original-Recipient: rfc822;" + appMailbox,
		"Reporting-UA: relais.test; Relais",
		"Disposition: automatic-action/MDN-sent-automatically; processed/error",
		"Error: 903^INS non présent dans le document",
		"inner-subject XDM/1.0/DDM+Lettre de liaison de sortie DUPONT-ESSAI Camille 12/03/1985",
		"inner-id " + origID,
		"inner-attachments ['IHE_XDM.ZIP', ",
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("python output lacks %q:\n%s", w, out)
		}
	}
	// The original travels unchanged inside the MDN.
	if !bytes.Contains(mdn, orig) {
		t.Error("original message not carried verbatim")
	}
	// An MDN is a report: it is never analysed as a new document delivery.
	if a := Analyze(mdn, Limits{}); a.Has() {
		t.Errorf("MDN analysed as a document delivery: %+v", a.Documents)
	}
	// And never answered.
	if _, err := ErrorMDN(withHeader(mdn, "Disposition-Notification-To: x@y.test"), appMailbox, p, testNow, "relais.test"); !errors.Is(err, ErrNotAnswerable) {
		t.Errorf("answering an MDN: %v", err)
	}
}

func TestErrorMDNRefusals(t *testing.T) {
	orig, _ := buildTestMessage(t, fixtureCDA(t), testPDF())
	p := Problem{Code: CodeUnknownPatient, Text: Label(CodeUnknownPatient)}
	if _, err := ErrorMDN(orig, appMailbox, p, testNow, "relais.test"); !errors.Is(err, ErrNoMDNRequested) {
		t.Errorf("no DNT: %v", err)
	}
	// RFC 8098 2.1: Return-Path differs from Disposition-Notification-To.
	o := withHeader(orig, "Return-Path: <bounce@elsewhere.test>", "Disposition-Notification-To: "+testFrom)
	if _, err := ErrorMDN(o, appMailbox, p, testNow, "relais.test"); !errors.Is(err, ErrMDNNeedsConsent) {
		t.Errorf("Return-Path mismatch: %v", err)
	}
	o = withHeader(orig, "Return-Path: <"+testFrom+">", "Disposition-Notification-To: "+testFrom)
	if _, err := ErrorMDN(o, appMailbox, p, testNow, "relais.test"); err != nil {
		t.Errorf("matching Return-Path: %v", err)
	}
	if _, err := ErrorMDN([]byte("garbage"), appMailbox, p, testNow, "relais.test"); !errors.Is(err, ErrBadOriginal) {
		t.Errorf("garbage: %v", err)
	}
	if _, err := ErrorMail(withHeader(orig, "Auto-Submitted: auto-replied"), appMailbox, p, testNow, "relais.test"); !errors.Is(err, ErrNotAnswerable) {
		t.Errorf("auto-replied: %v", err)
	}
}

// Without Disposition-Notification-To: the error mail of the IG, with the
// original as message_original.eml.
func TestErrorMail(t *testing.T) {
	t.Parallel()
	orig, origID := buildTestMessage(t, fixtureCDA(t), testPDF())
	p := Problem{Code: CodeOther, Text: "IHE_XDM.ZIP: not a readable IHE XDM package"}
	msg, err := ErrorMail(orig, appMailbox, p, testNow, "relais.test")
	if err != nil {
		t.Fatal(err)
	}
	out := runPython(t, `
import sys, email, email.policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
print("defects", len(m.defects))
print("subject", m["subject"])
print("to", m["to"], "from", m["from"], "refs", m["references"])
print("type", m.get_content_type())
parts = list(m.iter_parts())
print("parts", [(p.get_content_type(), p.get_filename()) for p in parts])
print("text", parts[0].get_content().replace("\n", " | "))
inner = parts[1].get_payload()[0]
print("inner-id", inner["message-id"])
print("inner-attachments", [x.get_filename() for x in inner.walk() if x.get_filename()])
`, msg)
	wants := []string{
		"defects 0",
		"subject [KO Intégration système !][906] XDM/1.0/DDM+Lettre de liaison de sortie DUPONT-ESSAI Camille 12/03/1985",
		"to " + testFrom + " from " + appMailbox + " refs " + origID,
		"type multipart/mixed",
		"parts [('text/plain', None), ('message/rfc822', 'message_original.eml')]",
		"Erreur détectée : Erreur 'Autre'",
		"Code d’erreur : 906",
		"Détail : IHE_XDM.ZIP: not a readable IHE XDM package",
		"inner-id " + origID,
		"inner-attachments ['IHE_XDM.ZIP', ",
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("python output lacks %q:\n%s", w, out)
		}
	}
	if a := Analyze(msg, Limits{}); a.Has() {
		t.Error("error mail analysed as a document delivery")
	}
}

func TestAnswer(t *testing.T) {
	orig, _ := buildTestMessage(t, fixtureCDA(t), testPDF())
	p := Problem{Code: CodeINSMismatch, Text: Label(CodeINSMismatch)}
	msg, to, err := Answer(withHeader(orig, "Disposition-Notification-To: <"+testFrom+">"), appMailbox, p, testNow, "relais.test")
	if err != nil || to != testFrom || !bytes.Contains(msg, []byte("report-type=disposition-notification")) {
		t.Errorf("MDN answer: to=%q err=%v", to, err)
	}
	msg, to, err = Answer(orig, appMailbox, p, testNow, "relais.test")
	if err != nil || to != testFrom || !bytes.Contains(msg, []byte("message_original.eml")) {
		t.Errorf("mail answer: to=%q err=%v", to, err)
	}
}

func TestRemoveHeaderFields(t *testing.T) {
	body := "\r\nX-Relais-Document: valid; in the body stays\r\n"
	msg := []byte("From: a@b.test\r\nX-Relais-Document: valid; source=xdm;\r\n forged=yes\r\nx-relais-document: valid\r\nSubject: s\r\n" + body)
	got := string(RemoveHeaderFields(msg))
	if got != "From: a@b.test\r\nSubject: s\r\n"+body {
		t.Errorf("got %q", got)
	}
	clean := []byte("From: a@b.test\r\nSubject: s\r\n" + body)
	if out := RemoveHeaderFields(clean); &out[0] != &clean[0] || !bytes.Equal(out, clean) {
		t.Error("message without the field was copied or changed")
	}
}
