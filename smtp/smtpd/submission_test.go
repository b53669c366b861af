package smtpd_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
)

func TestSubmissionMultiRecipientAndSentCopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.submit(drAddr, drPass)
	// bob is a Bcc: he is not in the header, and the header is kept as is.
	msg := message("Dr Test <"+drAddr+">", nurse, "multi", "Hello,\r\n.leading dot\r\nbye\r\n")
	require.NoError(t, c.SendMail(drAddr, []string{nurse, bob, "NURSE@Demo.Test"}, strings.NewReader(msg)))
	require.NoError(t, c.Quit())

	for _, who := range []string{nurse, bob} {
		raw, _ := e.only(who, "INBOX")
		trace, rest := splitTrace(t, raw)
		assert.Equal(t, msg, string(rest), "stored byte for byte after the trace headers")
		assert.Contains(t, trace, "Return-Path: <"+drAddr+">\r\n")
		assert.Contains(t, trace, "by "+hostname+" (Relais) with ESMTPSA id ")
		assert.NotContains(t, trace, "for <", "several recipients: no for clause")
	}
	raw, info := e.only(drAddr, "Sent")
	_, rest := splitTrace(t, raw)
	assert.Equal(t, msg, string(rest))
	assert.Contains(t, info.Flags, storage.FlagSeen)
	assert.Empty(t, e.mailbox(drAddr, "INBOX"))
	for _, who := range []string{nurse, bob} {
		_, info := e.only(who, "INBOX")
		assert.NotContains(t, info.Flags, storage.FlagSeen)
	}
}

func TestSubmissionSingleRecipientTrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.submit(drAddr, drPass)
	msg := message(drAddr, nurse, "single", "Hi\r\n")
	require.NoError(t, c.SendMail(drAddr, []string{nurse}, strings.NewReader(msg)))
	raw, _ := e.only(nurse, "INBOX")
	trace, _ := splitTrace(t, raw)
	assert.Regexp(t, `^Return-Path: <dr@demo\.test>\r\n`+
		`Received: from localhost \(\[127\.0\.0\.1\]\)\r\n`+
		`\t\(using TLSv1\.[23] with cipher [A-Z0-9_]+\)\r\n`+
		`\tby mx\.demo\.test \(Relais\) with ESMTPSA id [0-9a-f]{12}\r\n`+
		`\tfor <nurse@demo\.test>; [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n$`, trace)
}

func TestSubmissionSenderMustOwnAddresses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.submit(drAddr, drPass)

	// Envelope sender of another account: 553 5.7.1 at MAIL.
	requireReply(t, c.Mail(nurse, nil), 553, smtp.EnhancedCode{5, 7, 1})
	// Null sender: only MTAs send bounces.
	requireReply(t, c.Mail("", nil), 553, smtp.EnhancedCode{5, 7, 1})
	// Case of the domain and local part does not matter.
	require.NoError(t, c.Mail("DR@DEMO.TEST", nil))
	require.NoError(t, c.Reset())

	// From header of a colleague: 550 5.7.1 at the end of DATA.
	for _, from := range []string{nurse, "Dr <" + drAddr + ">, " + nurse} {
		err := c.SendMail(drAddr, []string{bob}, strings.NewReader(message(from, bob, "forged", "x\r\n")))
		msg := requireReply(t, err, 550, smtp.EnhancedCode{5, 7, 1})
		assert.Contains(t, msg, "From")
	}
	// No From at all.
	err := c.SendMail(drAddr, []string{bob}, strings.NewReader("Subject: none\r\n\r\nx\r\n"))
	requireReply(t, err, 550, smtp.EnhancedCode{5, 6, 0})
	assert.Empty(t, e.mailbox(bob, "INBOX"))
	assert.Empty(t, e.mailbox(drAddr, "Sent"))

	// An encoded display name is fine.
	require.NoError(t, c.SendMail(drAddr, []string{bob}, strings.NewReader(message("=?utf-8?q?Dr_=C3=89mile?= <"+drAddr+">", bob, "ok", "x\r\n"))))
	e.only(bob, "INBOX")
}

func TestSubmissionRecipients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.submit(drAddr, drPass)
	require.NoError(t, c.Mail(drAddr, nil))
	requireReply(t, c.Rcpt("nobody@demo.test", nil), 550, smtp.EnhancedCode{5, 1, 1})
	msg := requireReply(t, c.Rcpt("someone@outside.example", nil), 550, smtp.EnhancedCode{5, 7, 1})
	assert.Equal(t, "Recipient domain is not in the MSSante trust space", msg)
	// The transaction goes on with the accepted recipient.
	require.NoError(t, c.Rcpt(nurse, nil))
	require.NoError(t, send(c, message(drAddr, nurse, "rest", "x\r\n")))
	e.only(nurse, "INBOX")
}

func TestSubmissionMailBeforeAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c, err := smtp.DialStartTLS(e.subAddr, e.client)
	require.NoError(t, err)
	defer c.Close()
	requireReply(t, c.Mail(drAddr, nil), 530, smtp.EnhancedCode{5, 7, 0})
}

func TestSubmissionUTF8(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.submit(elise, userPass)
	ok, _ := c.Extension("SMTPUTF8")
	require.True(t, ok)
	ok, _ = c.Extension("8BITMIME")
	require.True(t, ok)

	// Without SMTPUTF8 a non-ASCII address is refused (RFC 6531 3.4).
	requireReply(t, c.Mail(elise, &smtp.MailOptions{Body: smtp.Body8BitMIME}), 553, smtp.EnhancedCode{5, 6, 7})

	msg := "From: Élise Mérieux <" + elise + ">\r\nTo: " + nurse + "\r\nSubject: Compte rendu — été\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		"Bien reçu, à très bientôt.\r\n"
	require.NoError(t, c.Mail(elise, &smtp.MailOptions{UTF8: true, Body: smtp.Body8BitMIME}))
	require.NoError(t, c.Rcpt(nurse, nil))
	require.NoError(t, send(c, msg))

	// And to an accented recipient.
	require.NoError(t, c.SendMail(elise, []string{elise}, strings.NewReader(msg)))

	raw, _ := e.only(nurse, "INBOX")
	trace, rest := splitTrace(t, raw)
	assert.Equal(t, msg, string(rest))
	assert.Contains(t, trace, "Return-Path: <"+elise+">")
	assert.Contains(t, trace, "with UTF8SMTPSA id")
	raw, _ = e.only(elise, "INBOX")
	trace, _ = splitTrace(t, raw)
	assert.Contains(t, trace, "for <"+elise+">")
	assert.Len(t, e.mailbox(elise, "Sent"), 2)
}

func TestSubmissionPipelining(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	tc := dialRaw(t, e.tlsAddr, e.client)
	tc.expect(220)
	tc.send("EHLO client.test")
	ehlo := tc.expect(250)
	for _, ext := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "BINARYMIME", "SIZE 67108864", "AUTH PLAIN LOGIN", "DSN"} {
		assert.Contains(t, ehlo, ext)
	}
	assert.NotContains(t, ehlo, "STARTTLS", "already TLS")
	tc.send("AUTH PLAIN " + plainIR("", drAddr, drPass))
	tc.expect(235)

	// RFC 2920: the whole envelope and DATA in one write.
	body := message(drAddr, nurse, "pipelined", "one\r\n")
	tc.sendAll("MAIL FROM:<"+drAddr+">", "RCPT TO:<"+nurse+">", "RCPT TO:<nobody@demo.test>", "RCPT TO:<"+bob+">", "DATA")
	tc.expect(250)
	tc.expect(250)
	tc.expectEnh(550, "5.1.1")
	tc.expect(250)
	tc.expect(354)
	tc.sendRaw(body + ".\r\n")
	tc.expect(250)

	// BDAT (RFC 3030) with BINARYMIME, pipelined too.
	bin := message(drAddr, bob, "chunked", "part one\r\n") + "part two, no final CRLF\x00\xff"
	tc.sendRaw("MAIL FROM:<" + drAddr + "> BODY=BINARYMIME\r\nRCPT TO:<" + bob + ">\r\n" +
		bdat(bin[:20], false) + bdat(bin[20:], true))
	tc.expect(250)
	tc.expect(250)
	tc.expect(250)
	tc.expect(250)
	tc.send("QUIT")
	tc.expect(221)

	raw, _ := e.only(nurse, "INBOX")
	_, rest := splitTrace(t, raw)
	assert.Equal(t, body, string(rest))
	msgs := e.mailbox(bob, "INBOX")
	require.Len(t, msgs, 2)
	_, rest = splitTrace(t, e.raw(bob, "INBOX", msgs[1].UID))
	assert.Equal(t, bin, string(rest))
}

func TestSubmissionStorageFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{wrap: func(s smtpdStore) smtpdStore { return failingStore{s} }})
	c := e.submit(drAddr, drPass)
	err := c.SendMail(drAddr, []string{nurse}, strings.NewReader(message(drAddr, nurse, "fail", "x\r\n")))
	msg := requireReply(t, err, 451, smtp.EnhancedCode{4, 3, 0})
	assert.NotContains(t, msg, "disk", "no internals in the reply")
	assert.Contains(t, msg, "ref ")
	assert.Empty(t, e.mailbox(nurse, "INBOX"))
	// The connection is still usable.
	require.NoError(t, c.Noop())
}

// TestSubmissionRelayDisabled: without a relay, a recipient of another
// operator of the trust space is refused, for good.
func TestSubmissionRelayDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noRelay: true})
	c := e.submit(drAddr, drPass)
	require.NoError(t, c.Mail(drAddr, nil))
	msg := requireReply(t, c.Rcpt("someone@"+trustedDomain, nil), 550, smtp.EnhancedCode{5, 7, 1})
	assert.Equal(t, "Relay to other operators is not enabled", msg)
}

// TestSubmissionQueuesRemoteRecipients: local copies, the Sent copy, one
// queue entry for the recipients of other operators (with their DSN
// parameters) and the delivery status of everyone, from one submission.
func TestSubmissionQueuesRemoteRecipients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	c := e.submit(drAddr, drPass)
	require.NoError(t, c.Mail(drAddr, &smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: "env-42"}))
	require.NoError(t, c.Rcpt(nurse, nil))
	remote1, remote2 := "gp@"+trustedDomain, "pharma@"+trustedDomain
	require.NoError(t, c.Rcpt(remote1, &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure}}))
	require.NoError(t, c.Rcpt(remote2, &smtp.RcptOptions{OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: remote2}))
	body := "From: " + drAddr + "\r\nTo: " + remote1 + ", " + nurse + "\r\nSubject: relay\r\n\r\nCompte rendu\r\n"
	require.NoError(t, send(c, body))
	require.NoError(t, c.Quit())

	// Local copies as usual, with the Message-ID the MSA added (RFC 6409 8.3).
	raw, _ := e.only(nurse, "INBOX")
	_, rest := splitTrace(t, raw)
	require.True(t, strings.HasPrefix(string(rest), "Message-ID: <"), "%.60q", rest)
	msgID := string(rest[len("Message-ID: <"):bytes.IndexByte(rest, '>')])
	assert.Equal(t, body, string(rest[bytes.Index(rest, []byte("\r\n"))+2:]))
	e.only(drAddr, "Sent")

	var entries []storage.QueueEntry
	require.NoError(t, e.store.QueueEntries(ctx, func(q storage.QueueEntry) error { entries = append(entries, q); return nil }))
	require.Len(t, entries, 1)
	q := entries[0]
	assert.Equal(t, drAddr, q.Sender)
	assert.Equal(t, e.accounts[drAddr].ID, q.Account)
	assert.Equal(t, msgID, q.MessageID)
	assert.Equal(t, "HDRS", q.Ret)
	assert.Equal(t, "env-42", q.EnvID)
	assert.WithinDuration(t, time.Now().Add(smtpd.DefaultQueueExpiry), q.Expires, time.Minute)
	require.Len(t, q.Recipients, 2)
	assert.Equal(t, remote1, q.Recipients[0].Address)
	assert.Equal(t, []string{"SUCCESS", "FAILURE"}, q.Recipients[0].Notify)
	assert.Equal(t, remote2, q.Recipients[1].Address)
	assert.Equal(t, "RFC822;"+remote2, q.Recipients[1].ORCPT)
	out, err := e.store.QueueMessage(ctx, q.ID)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(out), "Received: from "), "the relayed copy starts with our Received, no Return-Path: %.40q", out)
	assert.Contains(t, string(out), "\r\n\r\nCompte rendu\r\n")
	assert.EqualValues(t, 1, e.kicks.n.Load(), "the relay was told")

	st, err := e.store.DeliveryStatuses(ctx, e.accounts[drAddr].ID, msgID)
	require.NoError(t, err)
	got := map[string]storage.DeliveryState{}
	for _, s := range st {
		got[s.Recipient] = s.State
	}
	assert.Equal(t, map[string]storage.DeliveryState{nurse: storage.StatusDelivered, remote1: storage.StatusQueued, remote2: storage.StatusQueued}, got)
}

// noIdentity is a Signer that has no certificate for anyone.
type noIdentity struct{}

func (noIdentity) Sign(context.Context, string, []byte) ([]byte, error) {
	return nil, fmt.Errorf("no certificate for the sender: %w", smtpd.ErrNoSigningIdentity)
}

// TestSubmissionWithoutSigningIdentity: a message for another operator that
// cannot be signed is refused temporarily, and nothing is stored.
func TestSubmissionWithoutSigningIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{signer: noIdentity{}})
	c := e.submit(drAddr, drPass)
	err := c.SendMail(drAddr, []string{nurse, "gp@" + trustedDomain}, strings.NewReader(message(drAddr, nurse, "unsigned", "x\r\n")))
	requireReply(t, err, 451, smtp.EnhancedCode{4, 7, 5})
	assert.Empty(t, e.mailbox(nurse, "INBOX"))
	assert.Empty(t, e.mailbox(drAddr, "Sent"))
	n := 0
	require.NoError(t, e.store.QueueEntries(context.Background(), func(storage.QueueEntry) error { n++; return nil }))
	assert.Zero(t, n)
	// Local mail needs no signature.
	require.NoError(t, c.SendMail(drAddr, []string{nurse}, strings.NewReader(message(drAddr, nurse, "local", "x\r\n"))))
	e.only(nurse, "INBOX")
}

// TestSendPipeline: the documents API's path into submission applies the
// same policy and stores like SMTP does.
func TestSendPipeline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	dr := e.accounts[drAddr]
	msg := []byte("From: " + drAddr + "\r\nTo: " + nurse + "\r\nSubject: api\r\nMessage-ID: <api-1@demo.test>\r\n\r\nlettre\r\n")
	require.NoError(t, e.sub.Send(ctx, dr, []string{nurse, "gp@" + trustedDomain}, msg))
	raw, _ := e.only(nurse, "INBOX")
	assert.Contains(t, string(raw), " with HTTPS id ")
	assert.True(t, strings.HasSuffix(string(raw), string(msg)))
	e.only(drAddr, "Sent")
	st, err := e.store.DeliveryStatuses(ctx, dr.ID, "api-1@demo.test")
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.EqualValues(t, 1, e.kicks.n.Load())

	var refused *smtpd.RefusedError
	err = e.sub.Send(ctx, dr, []string{"x@outside.example"}, msg)
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, 550, refused.Code())
	err = e.sub.Send(ctx, dr, []string{nurse}, []byte("From: "+bob+"\r\nSubject: spoof\r\n\r\nx\r\n"))
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, 550, refused.Code())
	err = e.sub.Send(ctx, dr, nil, msg)
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, 554, refused.Code())
}
