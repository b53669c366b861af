package smtpd_test

import (
	"regexp"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAuthRefusedBeforeSTARTTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	tc := dialRaw(t, e.subAddr, nil)
	tc.expect(220)
	tc.send("EHLO client.test")
	ehlo := tc.expect(250)
	assert.Contains(t, ehlo, "STARTTLS")
	assert.NotContains(t, ehlo, "AUTH", "no AUTH offered in clear (RFC 4954 4)")
	tc.send("AUTH PLAIN " + plainIR("", drAddr, drPass))
	tc.expectEnh(523, "5.7.10") // go-smtp's "TLS is required" (RFC 5248 5.7.10 Encryption Needed)
	tc.send("MAIL FROM:<" + drAddr + ">")
	tc.expectEnh(530, "5.7.0")

	// After STARTTLS, AUTH is offered and works.
	c, err := smtp.DialStartTLS(e.subAddr, e.client)
	require.NoError(t, err)
	defer c.Close()
	ok, mechs := c.Extension("AUTH")
	require.True(t, ok)
	assert.Equal(t, "PLAIN LOGIN", mechs)
	require.NoError(t, c.Auth(sasl.NewPlainClient("", drAddr, drPass)))
	requireReply(t, c.Auth(sasl.NewPlainClient("", drAddr, drPass)), 503, smtp.EnhancedCode{5, 5, 1})
}

func TestAuthWrongPasswordThenThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{}) // throttle: 2 free failures, then 1 minute
	// By hand: go-smtp's client sends "*" after a failed AUTH, which the
	// server counts as a protocol error.
	tc := dialRaw(t, e.tlsAddr, e.client)
	tc.expect(220)
	tc.send("EHLO client.test")
	tc.expect(250)
	for range 3 {
		tc.send("AUTH PLAIN " + plainIR("", drAddr, "wrong"))
		msg := tc.expectEnh(535, "5.7.8")
		assert.NotContains(t, msg, "wrong")
	}
	// Now throttled, even with the right password: 454 4.7.0 (RFC 4954 6).
	tc.send("AUTH PLAIN " + plainIR("", drAddr, drPass))
	tc.expectEnh(454, "4.7.0")
	// Other accounts from the same IP are throttled too (authn's per-IP key).
	tc.send("AUTH LOGIN " + b64(nurse))
	tc.expect(334)
	tc.send(b64(userPass))
	tc.expectEnh(454, "4.7.0")
	tc.send("MAIL FROM:<" + drAddr + ">")
	tc.expectEnh(530, "5.7.0")
	assert.NotContains(t, e.log.String(), "wrong", "passwords never logged")
}

func TestAuthLoginAndAuthzid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c, err := smtp.DialTLS(e.tlsAddr, e.client)
	require.NoError(t, err)
	defer c.Close()
	// PLAIN with an authorization identity of someone else: refused.
	requireReply(t, c.Auth(sasl.NewPlainClient(nurse, drAddr, drPass)), 535, smtp.EnhancedCode{5, 7, 8})
	// LOGIN, as Outlook does.
	require.NoError(t, c.Auth(sasl.NewLoginClient(drAddr, drPass)))
	require.NoError(t, c.SendMail(drAddr, []string{nurse}, stringsReader(message(drAddr, nurse, "login", "x\r\n"))))
	e.only(nurse, "INBOX")

	// LOGIN with the username as initial response, by hand.
	tc := dialRaw(t, e.tlsAddr, e.client)
	tc.expect(220)
	tc.send("EHLO client.test")
	tc.expect(250)
	tc.send("AUTH LOGIN " + b64(nurse))
	assert.Equal(t, b64("Password:"), tc.expect(334))
	tc.send(b64(userPass))
	tc.expectEnh(235, "2.0.0")
}

func TestConnectionIDKeptAcrossSTARTTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.submit(drAddr, drPass)
	require.NoError(t, c.Quit())
	ids := regexp.MustCompile(`msg="session started" listener=submission conn=([0-9a-f]+) .* tls=(true|false)`).FindAllStringSubmatch(e.log.String(), -1)
	require.Len(t, ids, 2)
	assert.Equal(t, "false", ids[0][2])
	assert.Equal(t, "true", ids[1][2])
	assert.Equal(t, ids[0][1], ids[1][1])
	assert.Regexp(t, `msg=authenticated listener=submission conn=`+ids[0][1]+` remote=127\.0\.0\.1:\d+ account=\d+`, e.log.String())
}
