package smtpd_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bigMessage is a valid message of about size bytes: base64 lines, a few
// lines starting with a dot (dot-stuffing) and 8-bit text.
func bigMessage(t testing.TB, size int) string {
	var b bytes.Buffer
	b.WriteString("From: " + drAddr + "\r\nTo: " + nurse + "\r\nSubject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	chunk := make([]byte, 57)
	for i := 0; b.Len() < size; i++ {
		_, err := rand.Read(chunk)
		require.NoError(t, err)
		if i%1000 == 0 {
			b.WriteString(".dot line é\r\n")
		}
		b.WriteString(base64.StdEncoding.EncodeToString(chunk))
		b.WriteString("\r\n")
	}
	return b.String()
}

func TestLimitTenMiBStoredByteForByte(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.submit(drAddr, drPass)
	msg := bigMessage(t, 10<<20)
	require.NoError(t, c.Mail(drAddr, &smtp.MailOptions{Size: int64(len(msg)), Body: smtp.Body8BitMIME}))
	require.NoError(t, c.Rcpt(nurse, nil))
	require.NoError(t, send(c, msg))
	raw, info := e.only(nurse, "INBOX")
	_, rest := splitTrace(t, raw)
	require.True(t, bytes.Equal([]byte(msg), rest), "10 MiB message differs after the trace headers (got %d bytes, want %d)", len(rest), len(msg))
	assert.Equal(t, int64(len(raw)), info.Size)
}

func TestLimitOversize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxBytes: 64 << 10})
	c := e.submit(drAddr, drPass)
	size, ok := c.MaxMessageSize()
	require.True(t, ok)
	assert.Equal(t, 64<<10, size, "SIZE advertised (RFC 1870)")
	// Announced size too big: refused at MAIL.
	requireReply(t, c.Mail(drAddr, &smtp.MailOptions{Size: 65<<10 + 1}), 552, smtp.EnhancedCode{5, 3, 4})
	// Not announced: refused at the end of DATA, nothing stored.
	err := c.SendMail(drAddr, []string{nurse}, strings.NewReader(bigMessage(t, 65<<10)))
	requireReply(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	assert.Empty(t, e.mailbox(nurse, "INBOX"))
	// Just under the limit passes.
	require.NoError(t, c.SendMail(drAddr, []string{nurse}, strings.NewReader(bigMessage(t, 60<<10))))
	e.only(nurse, "INBOX")
}

func TestLimitRecipients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxRcpts: 2})
	c := e.submit(drAddr, drPass)
	require.NoError(t, c.Mail(drAddr, nil))
	require.NoError(t, c.Rcpt(nurse, nil))
	require.NoError(t, c.Rcpt(bob, nil))
	requireReply(t, c.Rcpt(elise, nil), 452, smtp.EnhancedCode{4, 5, 3})
	require.NoError(t, send(c, message(drAddr, nurse, "two", "x\r\n")))
	e.only(nurse, "INBOX")
	e.only(bob, "INBOX")
}

func TestLimitLineLength(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.submit(drAddr, drPass)
	// 4000 bytes is tolerated (RFC 5321 4.5.3.1.6 says 1000; we accept 4096).
	long := message(drAddr, nurse, "long", strings.Repeat("a", 4000)+"\r\n")
	require.NoError(t, c.SendMail(drAddr, []string{nurse}, strings.NewReader(long)))
	e.only(nurse, "INBOX")
	// Beyond: refused and the connection is closed.
	tooLong := message(drAddr, nurse, "toolong", strings.Repeat("a", 5000)+"\r\n")
	err := c.SendMail(drAddr, []string{nurse}, strings.NewReader(tooLong))
	requireReply(t, err, 500, smtp.EnhancedCode{5, 5, 2})
	assert.Len(t, e.mailbox(nurse, "INBOX"), 1)
}
