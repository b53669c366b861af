package report_test

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/smtp/report"
	"github.com/relais-mssante/relais/storage"
)

const original = "From: Dr Claire Martin <dr.martin@demo.test>\r\n" +
	"To: nobody@remote-operator.test\r\n" +
	"Subject: Compte rendu\r\n" +
	"Message-ID: <cr-2026-0042@demo.test>\r\n" +
	"Date: Mon, 23 Nov 2026 10:14:58 +0100\r\n" +
	"\r\n" +
	"Body with patient data that must not come back unless RET=FULL.\r\n"

func failedDSN() report.DSN {
	at := time.Date(2026, 11, 23, 10, 15, 0, 0, time.UTC)
	return report.DSN{
		ReportingMTA: "mx.demo.test",
		To:           "dr.martin@demo.test",
		EnvID:        "QQ314159",
		Arrival:      at.Add(-time.Minute),
		Original:     []byte(original),
		Date:         at,
		Recipients: []report.Recipient{{
			OriginalRecipient: "rfc822;nobody@remote-operator.test",
			FinalRecipient:    "nobody@remote-operator.test",
			Action:            report.ActionFailed,
			Status:            "5.1.1",
			RemoteMTA:         "mx.remote-operator.test",
			Diagnostic:        "550 5.1.1 <nobody@remote-operator.test>: Recipient address rejected: User unknown in local recipient table",
			LastAttempt:       at,
		}},
	}
}

// parts splits a multipart/report into its parts' content types and bodies.
func parts(t *testing.T, raw []byte) (*mail.Message, []string, [][]byte) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/report", mt)
	require.Equal(t, "delivery-status", params["report-type"])
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	var bodies [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		body, err := io.ReadAll(p)
		require.NoError(t, err)
		types = append(types, ct)
		bodies = append(bodies, body)
	}
	return msg, types, bodies
}

func TestBuildDSNFailedHeadersOnlyByDefault(t *testing.T) {
	raw, err := report.BuildDSN(failedDSN())
	require.NoError(t, err)
	msg, types, bodies := parts(t, raw)

	assert.Equal(t, "<MAILER-DAEMON@mx.demo.test>", msg.Header.Get("From")[strings.Index(msg.Header.Get("From"), "<"):])
	assert.Equal(t, "<dr.martin@demo.test>", msg.Header.Get("To"))
	assert.Equal(t, "auto-replied", msg.Header.Get("Auto-Submitted"))
	assert.Equal(t, "<cr-2026-0042@demo.test>", msg.Header.Get("In-Reply-To"))
	assert.Equal(t, "<cr-2026-0042@demo.test>", msg.Header.Get("References"))
	assert.True(t, strings.HasSuffix(msg.Header.Get("Message-Id"), "@mx.demo.test>"))
	subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	require.NoError(t, err)
	assert.Contains(t, subj, "Undelivered")

	require.Equal(t, []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}, types)
	assert.Contains(t, string(bodies[0]), "n'a pas pu être remis")
	assert.Contains(t, string(bodies[0]), "could not be delivered")
	status := string(bodies[1])
	for _, want := range []string{
		"Reporting-MTA: dns; mx.demo.test\r\n",
		"Original-Envelope-Id: QQ314159\r\n",
		"Arrival-Date: Mon, 23 Nov 2026 10:14:00 +0000\r\n",
		"Original-Recipient: rfc822;nobody@remote-operator.test\r\n",
		"Final-Recipient: rfc822; nobody@remote-operator.test\r\n",
		"Action: failed\r\n",
		"Status: 5.1.1\r\n",
		"Remote-MTA: dns; mx.remote-operator.test\r\n",
		"Diagnostic-Code: smtp; 550 5.1.1",
		"Last-Attempt-Date: Mon, 23 Nov 2026 10:15:00 +0000\r\n",
	} {
		assert.Contains(t, status, want)
	}
	assert.NotContains(t, status, "Will-Retry-Until")
	assert.Contains(t, string(bodies[2]), "Subject: Compte rendu")
	assert.NotContains(t, string(raw), "patient data", "without RET=FULL the body is not returned")

	// And it reads back.
	rep, err := report.Parse(raw)
	require.NoError(t, err)
	assert.Equal(t, report.KindDSN, rep.Kind)
	assert.Equal(t, "<cr-2026-0042@demo.test>", rep.OriginalMessageID)
	assert.Equal(t, "mx.demo.test", rep.Reporter)
	assert.Equal(t, "QQ314159", rep.EnvID)
	require.Len(t, rep.Recipients, 1)
	r := rep.Recipients[0]
	assert.Equal(t, "nobody@remote-operator.test", r.FinalRecipient)
	assert.Equal(t, report.ActionFailed, r.Action)
	assert.Equal(t, "5.1.1", r.Status)
	assert.Contains(t, r.Diagnostic, "550 5.1.1 <nobody@remote-operator.test>: Recipient address rejected")
	st, detail, ok := r.DeliveryState()
	assert.True(t, ok)
	assert.Equal(t, storage.StatusFailed, st)
	assert.Contains(t, detail, "User unknown")
}

func TestBuildDSNRetFullReturnsTheMessage(t *testing.T) {
	d := failedDSN()
	d.Ret = report.RetFull
	raw, err := report.BuildDSN(d)
	require.NoError(t, err)
	_, types, bodies := parts(t, raw)
	require.Equal(t, "message/rfc822", types[2])
	assert.Equal(t, original, string(bodies[2]))
}

func TestBuildDSNDelayed(t *testing.T) {
	d := failedDSN()
	until := d.Date.Add(5 * 24 * time.Hour)
	d.Recipients[0].Action = report.ActionDelayed
	d.Recipients[0].Status = "4.4.1"
	d.Recipients[0].Diagnostic = "dial tcp 192.0.2.1:25: connection refused"
	d.Recipients[0].WillRetryUntil = until
	raw, err := report.BuildDSN(d)
	require.NoError(t, err)
	msg, _, bodies := parts(t, raw)
	subj, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	assert.Equal(t, "Remise retardée / Delivery delayed", subj)
	assert.Contains(t, string(bodies[1]), "Will-Retry-Until: Sat, 28 Nov 2026 10:15:00 +0000\r\n")
	assert.Contains(t, string(bodies[1]), "Diagnostic-Code: x-local; dial tcp")
	assert.Contains(t, string(bodies[0]), "will be retried until 2026-11-28 10:15 UTC")

	rep, err := report.Parse(raw)
	require.NoError(t, err)
	st, _, ok := rep.Recipients[0].DeliveryState()
	assert.True(t, ok)
	assert.Equal(t, storage.StatusDelayed, st)
}

func TestBuildDSNNonASCIIAddressIsGlobal(t *testing.T) {
	d := failedDSN()
	d.Recipients[0].FinalRecipient = "élise@remote-operator.test"
	d.Recipients[0].OriginalRecipient = ""
	raw, err := report.BuildDSN(d)
	require.NoError(t, err)
	_, types, bodies := parts(t, raw)
	assert.Equal(t, "message/global-delivery-status", types[1]) // RFC 6533
	assert.Contains(t, string(bodies[1]), "Final-Recipient: utf-8; élise@remote-operator.test")
	rep, err := report.Parse(raw)
	require.NoError(t, err)
	assert.Equal(t, "élise@remote-operator.test", rep.Recipients[0].FinalRecipient)
}

func TestBuildDSNRejectsBadInput(t *testing.T) {
	for name, mod := range map[string]func(*report.DSN){
		"no recipients":  func(d *report.DSN) { d.Recipients = nil },
		"no sender":      func(d *report.DSN) { d.To = "" },
		"header inject":  func(d *report.DSN) { d.To = "a@b\r\nBcc: x@y" },
		"bad status":     func(d *report.DSN) { d.Recipients[0].Status = "550" },
		"bad action":     func(d *report.DSN) { d.Recipients[0].Action = "bounced" },
		"no host":        func(d *report.DSN) { d.ReportingMTA = "" },
		"rcpt injection": func(d *report.DSN) { d.Recipients[0].FinalRecipient = "a@b\nX: y" },
	} {
		t.Run(name, func(t *testing.T) {
			d := failedDSN()
			mod(&d)
			_, err := report.BuildDSN(d)
			assert.Error(t, err)
		})
	}
}

func TestParsePostfixDSN(t *testing.T) {
	raw, err := os.ReadFile("testdata/postfix-failed.eml")
	require.NoError(t, err)
	rep, err := report.Parse(raw)
	require.NoError(t, err)
	assert.Equal(t, report.KindDSN, rep.Kind)
	assert.Equal(t, "mx.remote-operator.test", rep.Reporter)
	assert.Equal(t, "<cr-2026-0042@demo.test>", rep.OriginalMessageID, "from the returned headers")
	require.Len(t, rep.Recipients, 2)
	failed := rep.Recipients[0]
	assert.Equal(t, "nobody@remote-operator.test", failed.FinalRecipient)
	assert.Equal(t, "rfc822;nobody@remote-operator.test", failed.OriginalRecipient)
	assert.Equal(t, report.ActionFailed, failed.Action)
	assert.Equal(t, "5.1.1", failed.Status)
	assert.Equal(t, "127.0.0.1", failed.RemoteMTA)
	assert.Equal(t, "550 5.1.1 <nobody@remote-operator.test>: Recipient address rejected: User unknown in local recipient table", failed.Diagnostic, "continuation lines unfolded")
	st, _, _ := rep.Recipients[1].DeliveryState()
	assert.Equal(t, storage.StatusDelivered, st)
}

func TestParseThunderbirdMDN(t *testing.T) {
	raw, err := os.ReadFile("testdata/thunderbird-mdn.eml")
	require.NoError(t, err)
	rep, err := report.Parse(raw)
	require.NoError(t, err)
	assert.Equal(t, report.KindMDN, rep.Kind)
	assert.Equal(t, "<cr-2026-0042@demo.test>", rep.OriginalMessageID)
	assert.Equal(t, "remote-operator.test; Mozilla Thunderbird", rep.Reporter)
	require.Len(t, rep.Recipients, 1)
	r := rep.Recipients[0]
	assert.Equal(t, "infirmiere@remote-operator.test", r.FinalRecipient)
	assert.Equal(t, "manual-action/MDN-sent-manually; displayed", r.Disposition)
	assert.Equal(t, "displayed", r.DispositionType())
	st, detail, ok := r.DeliveryState()
	assert.True(t, ok)
	assert.Equal(t, storage.StatusRead, st)
	assert.Equal(t, r.Disposition, detail)
}

func TestParseSignedMDN(t *testing.T) {
	inner, err := os.ReadFile("testdata/thunderbird-mdn.eml")
	require.NoError(t, err)
	// Keep only the Content-Type header and the body of the MDN inside a
	// multipart/signed (RFC 8098 allows signed MDNs; RFC 8551 3.5.3).
	i := bytes.Index(inner, []byte("Content-Type: multipart/report"))
	signed := "From: infirmiere@remote-operator.test\r\n" +
		"In-Reply-To: <other@demo.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"sig\"\r\n\r\n" +
		"--sig\r\n" + string(inner[i:]) + "\r\n--sig\r\n" +
		"Content-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\r\n--sig--\r\n"
	rep, err := report.Parse([]byte(signed))
	require.NoError(t, err)
	assert.Equal(t, report.KindMDN, rep.Kind)
	assert.Equal(t, "<cr-2026-0042@demo.test>", rep.OriginalMessageID, "Original-Message-ID wins over In-Reply-To")
}

func TestParseOriginalIDFromInReplyTo(t *testing.T) {
	raw := "From: MAILER-DAEMON@x.test\r\nIn-Reply-To: <abc@demo.test>\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"UmVwb3J0aW5nLU1UQTogZG5zOyB4LnRlc3QKCkZpbmFsLVJlY2lwaWVudDogcmZjODIyOyBh\r\nQGIudGVzdApBY3Rpb246IHJlbGF5ZWQKU3RhdHVzOiAyLjAuMAo=\r\n" +
		"--b--\r\n"
	rep, err := report.Parse([]byte(raw))
	require.NoError(t, err)
	assert.Equal(t, "<abc@demo.test>", rep.OriginalMessageID)
	require.Len(t, rep.Recipients, 1)
	assert.Equal(t, "a@b.test", rep.Recipients[0].FinalRecipient)
	assert.Equal(t, report.ActionRelayed, rep.Recipients[0].Action)
}

func TestParseRejectsOrdinaryMail(t *testing.T) {
	for _, raw := range []string{
		original,
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n",
		"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n",
		"",
		"garbage",
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=s\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\nsigned mail\r\n--s\r\nContent-Type: application/pkcs7-signature\r\n\r\nMIAG\r\n--s--\r\n",
	} {
		_, err := report.Parse([]byte(raw))
		assert.ErrorIs(t, err, report.ErrNotReport, "%q", raw)
	}
}

func TestParseBoundsRecipients(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n")
	for range 2000 {
		b.WriteString("\r\nFinal-Recipient: rfc822; a@b\r\n")
	}
	b.WriteString("--b--\r\n")
	_, err := report.Parse([]byte(b.String()))
	assert.Error(t, err, "more fields than the bound")
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/postfix-failed.eml", "testdata/thunderbird-mdn.eml"} {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	raw, err := report.BuildDSN(failedDSN())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, raw []byte) {
		rep, err := report.Parse(raw)
		if err == nil && rep.Kind == "" {
			t.Fatal("a report without a kind")
		}
		if len(rep.Recipients) > 500 {
			t.Fatal("recipients unbounded")
		}
	})
}

// TestPythonReadsDSN has an independent parser, Python's email package
// (which knows message/delivery-status, RFC 3464), read our DSN.
func TestPythonReadsDSN(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	raw, err := report.BuildDSN(failedDSN())
	require.NoError(t, err)
	script := `
import email, sys
from email import policy
msg = email.message_from_binary_file(sys.stdin.buffer, policy=policy.default)
assert msg.get_content_type() == "multipart/report", msg.get_content_type()
assert msg.get_param("report-type") == "delivery-status"
parts = list(msg.iter_parts())
print(parts[0].get_content().splitlines()[0])
status = parts[1]
assert status.get_content_type() == "message/delivery-status"
groups = status.get_payload()
print("reporting", groups[0]["Reporting-MTA"])
for g in groups[1:]:
    print("rcpt", g["Final-Recipient"], g["Action"], g["Status"])
print("third", parts[2].get_content_type())
print("subject", msg["Subject"])
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "Votre message n'a pas pu être remis à un ou plusieurs destinataires ; il ne sera plus retenté.\n"+
		"reporting dns; mx.demo.test\n"+
		"rcpt rfc822; nobody@remote-operator.test failed 5.1.1\n"+
		"third text/rfc822-headers\n"+
		"subject Message non remis / Undelivered mail returned to sender\n", string(out))
}

func BenchmarkParse(b *testing.B) {
	raw, err := os.ReadFile("testdata/postfix-failed.eml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := report.Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildDSN(b *testing.B) {
	d := failedDSN()
	for b.Loop() {
		if _, err := report.BuildDSN(d); err != nil {
			b.Fatal(err)
		}
	}
}
