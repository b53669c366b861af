package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/document/cda"
	"github.com/relais-mssante/relais/document/xdm"
	"github.com/relais-mssante/relais/storage/sqlite"
)

var tokenLine = regexp.MustCompile(`(?m)^token: (\S+)$`)

// TestDocumentsEndToEnd is hospital software sending a discharge letter
// through the documents API with curl and an API token made by the
// administrator: the practitioner reads it in IMAP with IHE_XDM.ZIP as
// sent (unzip -t and Relais's own reader agree, the metadata equals the
// CDA header), Relais recorded the document for the recipient, and the
// status resource says delivered.
func TestDocumentsEndToEnd(t *testing.T) {
	in := startRelais(t, "")
	out := in.relais("admin", "token", "create", "secretariat.chu@demo.mssante.test", "--name", "DPI de test")
	m := tokenLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	token := m[1]

	cdaFile := filepath.Join("..", "..", "document", "testdata", "discharge.xml")
	cdaBytes, err := os.ReadFile(cdaFile)
	require.NoError(t, err)
	want, err := cda.Parse(bytes.NewReader(cdaBytes), cda.Limits{})
	require.NoError(t, err)

	base := "https://" + in.addrs["http"]
	body, err := runTool(t, "", "curl", "--silent", "--show-error", "--fail-with-body", "--cacert", in.caFile(),
		"-H", "Authorization: Bearer "+token,
		"-F", "recipients="+claire, "-F", "cda=@"+cdaFile+";type=application/hl7-cda+xml", "-F", "nil=DPI-TEST-1",
		base+"/api/v1/documents")
	require.NoError(t, err, body)
	var created struct{ ID, MessageID, Status string }
	require.NoError(t, json.Unmarshal([]byte(body), &created), body)
	require.NotEmpty(t, created.ID)

	// The practitioner's mail client.
	c := in.imapLogin(claire, in.passwords[claire])
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	raw := msgs[0].BodySection[0].Bytes
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(msg.Header.Get("Subject"), "XDM/1.0/DDM+"), msg.Header.Get("Subject"))
	assert.Equal(t, "DPI-TEST-1", msg.Header.Get("X-MSS-NIL"))
	assert.Contains(t, msg.Header.Get("X-Relais-Document"), "valid")
	assert.Contains(t, msg.Header.Get("X-MSS-CODECDA"), want.Type.Code)

	zipData := attachment(t, msg, "IHE_XDM.ZIP")
	zipFile := filepath.Join(t.TempDir(), "IHE_XDM.ZIP")
	require.NoError(t, os.WriteFile(zipFile, zipData, 0o600))
	if _, err := exec.LookPath("unzip"); err == nil {
		out, err := exec.Command("unzip", "-t", zipFile).CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "No errors detected")
	}
	pkg, err := xdm.Read(zipData, xdm.Limits{})
	require.NoError(t, err)
	require.Len(t, pkg.Entries, 1)
	assert.Equal(t, cdaBytes, pkg.Files[pkg.Entries[0].URI], "the CDA travels byte for byte")
	assert.Empty(t, pkg.Check([]cda.Header{want}), "the metadata equals the CDA header")
	assert.Equal(t, want.Type.Code, pkg.Entries[0].TypeCode.Code)
	assert.Contains(t, pkg.Entries[0].PatientID, want.Patient.INS.Extension)

	// Relais recorded it for the recipient: the event the chat listens to.
	st, err := sqlite.Open(filepath.Join(in.dir, DatabaseFile), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	acct, err := st.AccountByAddress(ctx, claire)
	require.NoError(t, err)
	docs, err := st.DocumentsByPatient(ctx, acct.ID, want.Patient.INS.Extension, 10)
	require.NoError(t, err)
	require.Len(t, docs, 1)
	assert.True(t, docs[0].Valid, docs[0].Problems)
	assert.Equal(t, want.Type.Code, docs[0].TypeCode)
	assert.Equal(t, want.Title, docs[0].Title)
	assert.Equal(t, claire, docs[0].Recipient)

	// The status resource, as the hospital software polls it.
	var status struct {
		Recipients []struct{ Recipient, State string }
	}
	require.Eventually(t, func() bool {
		out, err := exec.Command("curl", "--silent", "--cacert", in.caFile(), "-H", "Authorization: Bearer "+token,
			base+created.Status).Output()
		return err == nil && json.Unmarshal(out, &status) == nil && len(status.Recipients) == 1 && status.Recipients[0].State == "delivered"
	}, 10*time.Second, 100*time.Millisecond, "%+v", status)

	// The API is described where it says.
	out2, err := runTool(t, "", "curl", "--silent", "--fail", "--cacert", in.caFile(), base+"/api/v1/openapi.json")
	require.NoError(t, err)
	assert.Contains(t, out2, `"/api/v1/documents"`)
}

// attachment returns the decoded part whose filename is name.
func attachment(t *testing.T, msg *mail.Message, name string) []byte {
	t.Helper()
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(mt, "multipart/"), mt)
	var found []byte
	var walk func(r io.Reader, boundary string)
	walk = func(r io.Reader, boundary string) {
		mr := multipart.NewReader(r, boundary)
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return
			}
			require.NoError(t, err)
			ct, ps, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			if strings.HasPrefix(ct, "multipart/") {
				walk(p, ps["boundary"])
				continue
			}
			if p.FileName() == name {
				b, err := io.ReadAll(p) // multipart decodes quoted-printable, not base64
				require.NoError(t, err)
				if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
					b = decodeBase64(t, b)
				}
				found = b
			}
		}
	}
	walk(msg.Body, params["boundary"])
	require.NotNil(t, found, "no attachment %s", name)
	return found
}

func decodeBase64(t *testing.T, b []byte) []byte {
	t.Helper()
	clean := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, string(b))
	out, err := base64.StdEncoding.DecodeString(clean)
	require.NoError(t, err)
	return out
}
