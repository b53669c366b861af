package smtpd_test

import (
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
	require.NoError(t, c.Hello("mx.other-operator.test"))
	ok, _ := c.Extension("AUTH")
	assert.False(t, ok, "no AUTH on port 25")
	ok, _ = c.Extension("STARTTLS")
	assert.True(t, ok)

	msg := message("someone@other-operator.test", nurse, "inbound", "Bonjour\r\n")
	require.NoError(t, c.SendMail("someone@other-operator.test", []string{nurse}, strings.NewReader(msg)))
	// A bounce: null reverse-path (RFC 5321 4.5.5).
	bounce := "From: MAILER-DAEMON@other-operator.test\r\nTo: " + bob + "\r\nSubject: Undelivered\r\n\r\nsorry\r\n"
	require.NoError(t, c.SendMail("", []string{bob}, strings.NewReader(bounce)))
	require.NoError(t, c.Quit())

	raw, _ := e.only(nurse, "INBOX")
	trace, rest := splitTrace(t, raw)
	assert.Equal(t, msg, string(rest))
	assert.Contains(t, trace, "Return-Path: <someone@other-operator.test>\r\n")
	assert.Contains(t, trace, "Received: from mx.other-operator.test ([127.0.0.1])\r\n\tby mx.demo.test (Relais) with ESMTP id ")
	raw, _ = e.only(bob, "INBOX")
	trace, _ = splitTrace(t, raw)
	assert.Contains(t, trace, "Return-Path: <>\r\n")
	assert.Empty(t, e.mailbox(drAddr, "Sent"))
}

func TestInboundRefusesRelayAndUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c, err := smtp.DialStartTLS(e.inAddr, e.client)
	require.NoError(t, err)
	defer c.Close()
	// AUTH is not offered even over TLS.
	ok, _ := c.Extension("AUTH")
	assert.False(t, ok)
	require.NoError(t, c.Mail("someone@other-operator.test", nil))
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
