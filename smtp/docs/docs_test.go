package docs_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/document"
	"github.com/relais-mssante/relais/smtp/docs"
	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

type env struct {
	st  *sqlite.Store
	gp  storage.Account
	in  *docs.Inspector
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	_, err = st.AddDomain(ctx, "demo.test")
	require.NoError(t, err)
	gp, err := st.CreateAccount(ctx, "gp@demo.test", "GP", "x")
	require.NoError(t, err)
	return &env{st: st, gp: gp, ctx: ctx, in: &docs.Inspector{Store: st, Hostname: "mx.demo.test"}}
}

// deliver is what smtpd does: inspect, store, then record.
func (e *env) deliver(t *testing.T, sender string, msg []byte) ([]byte, storage.Delivered) {
	out, after := e.in.Inspect(e.ctx, sender, msg)
	d, err := e.st.Deliver(e.ctx, out, time.Now(), []storage.Recipient{{Account: e.gp.ID, Mailbox: "INBOX"}})
	require.NoError(t, err)
	if after != nil {
		after(e.ctx, []smtpd.DeliveredCopy{{Delivered: d[0], Address: "gp@demo.test"}})
	}
	return out, d[0]
}

func letter(t *testing.T, transform func(string) string) []byte {
	b, err := os.ReadFile("../../document/testdata/discharge.xml")
	require.NoError(t, err)
	cdaDoc := []byte(transform(string(b)))
	msg, _, err := document.Build(document.BuildRequest{From: "secretariat@hospital.test", To: []string{"gp@demo.test"},
		CDA: cdaDoc, NIL: "TEST", Now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), Hostname: "hospital.test"})
	require.NoError(t, err)
	return msg
}

func TestValidDocumentRecorded(t *testing.T) {
	e := newEnv(t)
	sub := e.st.Subscribe(e.gp.ID)
	defer sub.Close()
	msg := letter(t, func(s string) string { return s })
	out, d := e.deliver(t, "secretariat@hospital.test", msg)
	assert.True(t, bytes.HasSuffix(out, msg), "attachments stay exactly as sent")
	assert.Regexp(t, `^X-Relais-Document: valid`, string(out))

	recs, err := e.st.Documents(e.ctx, e.gp.ID, d.Mailbox, d.UID)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.True(t, recs[0].Valid)
	assert.Equal(t, "285037512345688", recs[0].PatientINS)
	assert.Equal(t, "NIR-test", recs[0].INSKind)
	assert.Contains(t, recs[0].PatientName, "DUPONT-ESSAI")
	assert.NotEmpty(t, recs[0].Metadata)

	changes, _ := sub.Next()
	var kinds []storage.ChangeKind
	for _, c := range changes {
		kinds = append(kinds, c.Kind)
	}
	assert.Contains(t, kinds, storage.ChangeDocumentReceived)
}

// TestInvalidDocumentDeliveredAndAnswered: a letter without an INS is
// still delivered, flagged, recorded as invalid, and its (local) sender gets
// the error mail of the CI-SIS guide.
func TestInvalidDocumentDeliveredAndAnswered(t *testing.T) {
	e := newEnv(t)
	sec, err := e.st.CreateAccount(e.ctx, "secretariat@demo.test", "Secrétariat", "x")
	require.NoError(t, err)
	noINS := regexp.MustCompile(`<id root="1\.2\.250\.1\.213\.1\.4\.10" extension="[0-9]+"/>`)
	msg := letter(t, func(s string) string { return noINS.ReplaceAllString(s, "") })
	msg = bytes.ReplaceAll(msg, []byte("secretariat@hospital.test"), []byte("secretariat@demo.test"))
	out, d := e.deliver(t, "secretariat@demo.test", msg)
	assert.Regexp(t, `^X-Relais-Document: invalid`, string(out))
	recs, err := e.st.Documents(e.ctx, e.gp.ID, d.Mailbox, d.UID)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.False(t, recs[0].Valid)
	assert.Contains(t, recs[0].Problems, "903")

	inbox, err := e.st.MailboxByName(e.ctx, sec.ID, "INBOX")
	require.NoError(t, err)
	list, err := e.st.Messages(e.ctx, sec.ID, inbox.ID)
	require.NoError(t, err)
	require.Len(t, list, 1, "the sender got the answer")
	raw, err := e.st.RawMessage(e.ctx, sec.ID, inbox.ID, list[0].UID)
	require.NoError(t, err)
	assert.Contains(t, string(raw), "903")
	assert.True(t, strings.HasPrefix(string(raw), "Return-Path: <>"))
}

// TestForgedVerdictRemoved: a sender cannot pass its own verdict header.
func TestForgedVerdictRemoved(t *testing.T) {
	e := newEnv(t)
	plain := []byte("X-Relais-Document: valid; forged\r\nFrom: a@b.test\r\nSubject: hi\r\n\r\nno document\r\n")
	out, after := e.in.Inspect(e.ctx, "a@b.test", plain)
	assert.Nil(t, after)
	assert.NotContains(t, string(out), "forged")
}

// TestZipBombDeliveredFlagged: a crafted IHE_XDM.ZIP (5 MiB of zeros in a
// few KiB) is not unpacked, and the mail is still delivered with the
// reason.
func TestZipBombDeliveredFlagged(t *testing.T) {
	e := newEnv(t)
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	w, err := zw.Create("IHE_XDM/SUBSET01/DOC0001.XML")
	require.NoError(t, err)
	_, err = w.Write(make([]byte, 5<<20))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	msg := "From: secretariat@hospital.test\r\nTo: gp@demo.test\r\nSubject: XDM/1.0/DDM+bomb\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nci-joint\r\n" +
		"--b\r\nContent-Type: application/zip; name=IHE_XDM.ZIP\r\nContent-Disposition: attachment; filename=IHE_XDM.ZIP\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(zbuf.Bytes()) + "\r\n--b--\r\n"
	out, d := e.deliver(t, "secretariat@hospital.test", []byte(msg))
	assert.Regexp(t, `^X-Relais-Document: invalid`, string(out))
	assert.True(t, bytes.HasSuffix(out, []byte(msg)))
	recs, err := e.st.Documents(e.ctx, e.gp.ID, d.Mailbox, d.UID)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.False(t, recs[0].Valid)
	assert.NotEmpty(t, recs[0].Problems)
}
