package smtpd_test

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInboundLocalDeliveryWithoutAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c, err := smtp.Dial(e.inAddr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Hello("mx.operator.mssante.test"))
	ok, _ := c.Extension("AUTH")
	assert.False(t, ok, "no AUTH on port 25")
	ok, _ = c.Extension("STARTTLS")
	assert.True(t, ok)
	ok, _ = c.Extension("DSN")
	assert.True(t, ok, "RFC 3461")
	require.NoError(t, c.Quit())

	c = e.inbound()

	msg := message("someone@"+trustedDomain, nurse, "inbound", "Bonjour\r\n")
	require.NoError(t, c.SendMail("someone@"+trustedDomain, []string{nurse}, strings.NewReader(msg)))
	// A bounce: null reverse-path (RFC 5321 4.5.5).
	bounce := "From: MAILER-DAEMON@" + trustedDomain + "\r\nTo: " + bob + "\r\nSubject: Undelivered\r\n\r\nsorry\r\n"
	require.NoError(t, c.SendMail("", []string{bob}, strings.NewReader(bounce)))
	require.NoError(t, c.Quit())

	raw, _ := e.only(nurse, "INBOX")
	trace, rest := splitTrace(t, raw)
	assert.Equal(t, msg, string(rest))
	assert.Contains(t, trace, "Return-Path: <someone@"+trustedDomain+">\r\n")
	assert.Contains(t, trace, "Received: from localhost ([127.0.0.1])\r\n\t(using TLSv1.3 with cipher ")
	assert.Contains(t, trace, "by mx.demo.test (Relais) with ESMTPS id ")
	raw, _ = e.only(bob, "INBOX")
	trace, _ = splitTrace(t, raw)
	assert.Contains(t, trace, "Return-Path: <>\r\n")
	assert.Empty(t, e.mailbox(drAddr, "Sent"))
}

func TestInboundRefusesRelayAndUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.inbound()
	// AUTH is not offered even over TLS.
	ok, _ := c.Extension("AUTH")
	assert.False(t, ok)
	require.NoError(t, c.Mail("someone@"+trustedDomain, nil))
	msg := requireReply(t, c.Rcpt("victim@elsewhere.test", nil), 550, smtp.EnhancedCode{5, 7, 1})
	assert.Equal(t, "Relaying denied", msg)
	requireReply(t, c.Rcpt("nobody@demo.test", nil), 550, smtp.EnhancedCode{5, 1, 1})
	requireReply(t, c.Rcpt("x@[127.0.0.1]", nil), 550, smtp.EnhancedCode{5, 7, 1})
	require.NoError(t, c.Rcpt(nurse, nil))
	// Inbound does not check the From header: the message is not ours.
	require.NoError(t, send(c, message("spoofed@demo.test", nurse, "tls", "x\r\n")))
	raw, _ := e.only(nurse, "INBOX")
	trace, _ := splitTrace(t, raw)
	assert.Contains(t, trace, "with ESMTPS id")
	assert.Contains(t, trace, "for <"+nurse+">")
}

// TestInboundOnlyFromOperators: port 25 takes mail only from an operator of
// the trust space, over TLS, with a client certificate verified against the
// anchors and listed, for one of its own domains.
func TestInboundOnlyFromOperators(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	from := "someone@" + trustedDomain

	plain, err := smtp.Dial(e.inAddr)
	require.NoError(t, err)
	defer plain.Close()
	requireReply(t, plain.Mail(from, nil), 530, smtp.EnhancedCode{5, 7, 0})

	for name, cfg := range map[string]*tls.Config{"no certificate": e.client, "untrusted root": nil} {
		t.Run(name, func(t *testing.T) {
			if cfg == nil {
				// A certificate with the listed DN from a root nobody
				// trusts fails the handshake itself (with TLS 1.3 the
				// client learns it at its next read).
				c, err := smtp.DialStartTLS(e.inAddr, e.rogue)
				if err == nil {
					defer c.Close()
					err = c.Mail(from, nil)
				}
				require.Error(t, err)
				assert.Contains(t, err.Error(), "certificate")
				return
			}
			c, err := smtp.DialStartTLS(e.inAddr, cfg)
			require.NoError(t, err)
			defer c.Close()
			msg := requireReply(t, c.Mail(from, nil), 550, smtp.EnhancedCode{5, 7, 1})
			assert.Contains(t, msg, "client certificate")
		})
	}

	c := e.inbound()
	msg := requireReply(t, c.Mail("someone@elsewhere.test", nil), 550, smtp.EnhancedCode{5, 7, 1})
	assert.Contains(t, msg, "not served by your operator")
	require.NoError(t, c.Reset())
	require.NoError(t, c.Mail(from, nil))
	require.NoError(t, c.Rcpt(nurse, nil))
	require.NoError(t, send(c, message(from, nurse, "ok", "x\r\n")))
	e.only(nurse, "INBOX")
}
