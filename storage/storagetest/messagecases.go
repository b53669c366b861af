package storagetest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/summary"
)

func testAppend(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	date := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))
	d1, err := e.s.Append(e.ctx, e.alice.ID, "inbox", storage.NewMessage{Raw: textMessage("a", "b"), InternalDate: date})
	require.NoError(t, err)
	assert.Equal(t, storage.Delivered{Account: e.alice.ID, Mailbox: in.ID, UIDValidity: in.UIDValidity, UID: 1}, d1)
	d2 := e.append(t, e.alice.ID, "INBOX", textMessage("c", "d"))
	assert.Equal(t, uint32(2), d2.UID)

	m1 := e.message(t, e.alice.ID, in.ID, 1)
	assert.True(t, m1.InternalDate.Equal(date), "internal date kept: %v", m1.InternalDate)
	assert.Equal(t, int64(len(textMessage("a", "b"))), m1.Size)
	assert.NotZero(t, m1.ModSeq)
	m2 := e.message(t, e.alice.ID, in.ID, 2)
	assert.WithinDuration(t, time.Now(), m2.InternalDate, time.Minute, "zero internal date means now")
	assert.Greater(t, m2.ModSeq, m1.ModSeq)

	after := e.mailbox(t, e.alice.ID, "INBOX")
	assert.Equal(t, uint32(3), after.UIDNext)
	assert.GreaterOrEqual(t, after.HighestModSeq, m2.ModSeq)

	_, err = e.s.Append(e.ctx, e.alice.ID, "Nope", storage.NewMessage{Raw: textMessage("x", "y")})
	require.ErrorIs(t, err, storage.ErrNotFound)
	_, err = e.s.Append(e.ctx, e.alice.ID, "INBOX", storage.NewMessage{Raw: nil})
	require.ErrorIs(t, err, storage.ErrInvalid)
	_, err = e.s.Append(e.ctx, e.alice.ID, "INBOX", storage.NewMessage{Raw: textMessage("x", "y"), Flags: []string{`\Bogus`}})
	require.ErrorIs(t, err, storage.ErrInvalid)
	assert.Len(t, e.uids(t, e.alice.ID, in.ID), 2)

	// Garbage is stored as received, with some summary.
	junk := []byte("\x00\x01 not a message at all\r\n\r\n(((")
	d := e.append(t, e.alice.ID, "INBOX", junk)
	raw, err := e.s.RawMessage(e.ctx, e.alice.ID, in.ID, d.UID)
	require.NoError(t, err)
	assert.Equal(t, junk, raw)
	_, err = summary.Decode(e.message(t, e.alice.ID, in.ID, d.UID).Summary)
	require.NoError(t, err)
}

func testDeliverAtomic(t *testing.T, e *env) {
	raw := textMessage("multi", "to several")
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ds, err := e.s.Deliver(e.ctx, raw, date, []storage.Recipient{
		{Account: e.bob.ID, Mailbox: "INBOX"},
		{Account: e.alice.ID, Mailbox: "Sent", Flags: []string{`\Seen`}},
		{Account: e.alice.ID, Mailbox: "INBOX"},
	})
	require.NoError(t, err)
	require.Len(t, ds, 3)
	assert.Equal(t, e.bob.ID, ds[0].Account)
	assert.Equal(t, e.mailbox(t, e.bob.ID, "INBOX").ID, ds[0].Mailbox)
	assert.Equal(t, e.mailbox(t, e.alice.ID, "Sent").ID, ds[1].Mailbox)
	assert.Equal(t, e.mailbox(t, e.alice.ID, "Sent").UIDValidity, ds[1].UIDValidity)
	for _, d := range ds {
		got, err := e.s.RawMessage(e.ctx, d.Account, d.Mailbox, d.UID)
		require.NoError(t, err)
		assert.Equal(t, raw, got)
		m := e.message(t, d.Account, d.Mailbox, d.UID)
		assert.True(t, m.InternalDate.Equal(date))
	}
	assert.Equal(t, []string{storage.FlagSeen}, e.message(t, e.alice.ID, ds[1].Mailbox, ds[1].UID).Flags)
	assert.Empty(t, e.message(t, e.alice.ID, ds[2].Mailbox, ds[2].UID).Flags)

	// One bad recipient: nothing is stored anywhere.
	before := map[storage.MailboxID]storage.Mailbox{}
	for _, acct := range []storage.AccountID{e.alice.ID, e.bob.ID} {
		ms, err := e.s.Mailboxes(e.ctx, acct)
		require.NoError(t, err)
		for _, m := range ms {
			before[m.ID] = m
		}
	}
	for _, bad := range []storage.Recipient{
		{Account: e.alice.ID, Mailbox: "Nope"},
		{Account: 987654, Mailbox: "INBOX"},
	} {
		_, err = e.s.Deliver(e.ctx, raw, date, []storage.Recipient{
			{Account: e.bob.ID, Mailbox: "INBOX"},
			{Account: e.alice.ID, Mailbox: "INBOX"},
			bad,
		})
		require.ErrorIs(t, err, storage.ErrNotFound)
	}
	for id, m := range before {
		c, err := e.s.MailboxCounts(e.ctx, m.Account, id)
		require.NoError(t, err)
		now := e.mailbox(t, m.Account, m.Name)
		assert.Equal(t, len(e.uids(t, m.Account, id)), int(c.Messages))
		assert.Equal(t, m.UIDNext, now.UIDNext, m.Name)
		assert.Equal(t, m.HighestModSeq, now.HighestModSeq, m.Name)
	}
	assert.Len(t, e.uids(t, e.bob.ID, ds[0].Mailbox), 1)

	_, err = e.s.Deliver(e.ctx, raw, date, nil)
	require.ErrorIs(t, err, storage.ErrInvalid)
}

func testMessagesOrder(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	subjects := []string{"un", "deux", "trois", "quatre", "cinq"}
	for _, s := range subjects {
		e.append(t, e.alice.ID, "INBOX", textMessage(s, s))
	}
	ms, err := e.s.Messages(e.ctx, e.alice.ID, in.ID)
	require.NoError(t, err)
	require.Len(t, ms, 5)
	for i, m := range ms {
		assert.Equal(t, uint32(i+1), m.UID)
		sum, err := summary.Decode(m.Summary)
		require.NoError(t, err)
		assert.Equal(t, subjects[i], sum.Envelope.Subject)
		require.NotNil(t, sum.Body)
		assert.Equal(t, "text/plain", sum.Body.MediaType())
	}
	got, err := e.s.MessagesByUID(e.ctx, e.alice.ID, in.ID, []uint32{5, 1, 99, 3, 3})
	require.NoError(t, err)
	var uids []uint32
	for _, m := range got {
		uids = append(uids, m.UID)
	}
	assert.Equal(t, []uint32{1, 3, 5}, uids)
	got, err = e.s.MessagesByUID(e.ctx, e.alice.ID, in.ID, nil)
	require.NoError(t, err)
	assert.Empty(t, got)

	empty := e.mailbox(t, e.alice.ID, "Drafts")
	ms, err = e.s.Messages(e.ctx, e.alice.ID, empty.ID)
	require.NoError(t, err)
	assert.Empty(t, ms)
	_, err = e.s.Messages(e.ctx, e.alice.ID, 987654)
	require.ErrorIs(t, err, storage.ErrNotFound)
}

// testMessageIndex checks that MessageIndex is Messages without the
// summaries: same messages, order, modseqs, flags, dates and sizes, after
// flag changes and an expunge, and the same ErrNotFound for a mailbox that
// is not the account's.
func testMessageIndex(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	for i, s := range []string{"un", "deux", "trois", "quatre", "cinq"} {
		flags := []string{}
		if i%2 == 0 {
			flags = append(flags, storage.FlagSeen, "$Important")
		}
		e.append(t, e.alice.ID, "INBOX", textMessage(s, strings.Repeat(s, i+1)), flags...)
	}
	e.append(t, e.alice.ID, "Sent", textMessage("ailleurs", "autre boîte"))
	_, _, err := e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{2, 4}, storage.FlagsAdd, []string{storage.FlagFlagged}, 0)
	require.NoError(t, err)
	_, _, err = e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{3}, storage.FlagsAdd, []string{storage.FlagDeleted}, 0)
	require.NoError(t, err)
	_, err = e.s.Expunge(e.ctx, e.alice.ID, in.ID, []uint32{3})
	require.NoError(t, err)

	full, err := e.s.Messages(e.ctx, e.alice.ID, in.ID)
	require.NoError(t, err)
	require.Len(t, full, 4)
	want := make([]storage.MessageInfo, len(full))
	for i, m := range full {
		require.NotEmpty(t, m.Summary)
		m.Summary = nil
		want[i] = m
	}
	got, err := e.s.MessageIndex(e.ctx, e.alice.ID, in.ID)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	var uids []uint32
	for _, m := range got {
		uids = append(uids, m.UID)
	}
	assert.Equal(t, []uint32{1, 2, 4, 5}, uids)

	empty := e.mailbox(t, e.alice.ID, "Drafts")
	got, err = e.s.MessageIndex(e.ctx, e.alice.ID, empty.ID)
	require.NoError(t, err)
	assert.Empty(t, got)
	_, err = e.s.MessageIndex(e.ctx, e.bob.ID, in.ID)
	require.ErrorIs(t, err, storage.ErrNotFound, "another account's mailbox")
	_, err = e.s.MessageIndex(e.ctx, e.alice.ID, 987654)
	require.ErrorIs(t, err, storage.ErrNotFound)
}

func testRawMessage(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	for _, raw := range [][]byte{
		bigMessage(1000),
		bigMessage(10 << 20),
		[]byte("Subject: lf only\n\nbody\n"),
		[]byte(mimeMessage),
	} {
		d := e.append(t, e.alice.ID, "INBOX", raw)
		got, err := e.s.RawMessage(e.ctx, e.alice.ID, in.ID, d.UID)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(raw, got), "byte-for-byte, %d bytes", len(raw))
		assert.Equal(t, int64(len(raw)), e.message(t, e.alice.ID, in.ID, d.UID).Size)
	}
	_, err := e.s.RawMessage(e.ctx, e.alice.ID, in.ID, 999)
	require.ErrorIs(t, err, storage.ErrNotFound)
}

func testCounts(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	c, err := e.s.MailboxCounts(e.ctx, e.alice.ID, in.ID)
	require.NoError(t, err)
	assert.Equal(t, storage.MailboxCounts{}, c)
	var size int64
	for i, flags := range [][]string{nil, {storage.FlagSeen}, {storage.FlagSeen, storage.FlagDeleted}, {storage.FlagDeleted}} {
		raw := textMessage("n", string(rune('a'+i)))
		size += int64(len(raw))
		e.append(t, e.alice.ID, "INBOX", raw, flags...)
	}
	c, err = e.s.MailboxCounts(e.ctx, e.alice.ID, in.ID)
	require.NoError(t, err)
	assert.Equal(t, storage.MailboxCounts{Messages: 4, Unseen: 2, Deleted: 2, Size: size}, c)
	_, err = e.s.MailboxCounts(e.ctx, e.alice.ID, 987654)
	require.ErrorIs(t, err, storage.ErrNotFound)
}

func testSearchText(t *testing.T, e *env) {
	d := e.append(t, e.alice.ID, "INBOX", []byte(mimeMessage))
	header, body, err := e.s.SearchText(e.ctx, e.alice.ID, d.Mailbox, d.UID)
	require.NoError(t, err)
	assert.Contains(t, header, "compte-rendu d'hospitalisation resume", "RFC 2047 decoded and folded")
	assert.Contains(t, header, "elodie test")
	assert.Contains(t, header, summary.Fold("Élodie"))
	assert.Contains(t, body, "le patient a bu un cafe a l'hopital", "quoted-printable Latin-1 decoded")
	assert.Contains(t, body, "sortie prevue mardi", "base64 UTF-8 decoded")
	assert.NotContains(t, body, "secretpdftext", "attachments are not text")
	assert.NotContains(t, body, "=e9")

	_, _, err = e.s.SearchText(e.ctx, e.alice.ID, d.Mailbox, 999)
	require.ErrorIs(t, err, storage.ErrNotFound)
}

// testDeliverSpecialUse: a Recipient with a special use follows the
// mailbox that carries it, and recreates it when the user deleted it.
func testDeliverSpecialUse(t *testing.T, e *env) {
	sent := storage.Recipient{Account: e.alice.ID, Mailbox: "Sent", SpecialUse: storage.SpecialUseSent, Flags: []string{storage.FlagSeen}}

	require.NoError(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "Sent", "Envoyés"))
	ds, err := e.s.Deliver(e.ctx, textMessage("renamed", "x"), time.Time{}, []storage.Recipient{sent})
	require.NoError(t, err)
	renamed := e.mailbox(t, e.alice.ID, "Envoyés")
	assert.Equal(t, storage.SpecialUseSent, renamed.SpecialUse)
	assert.Equal(t, renamed.ID, ds[0].Mailbox, "the copy follows the \\Sent attribute")

	require.NoError(t, e.s.DeleteMailbox(e.ctx, e.alice.ID, "Envoyés"))
	ds, err = e.s.Deliver(e.ctx, textMessage("deleted", "x"), time.Time{}, []storage.Recipient{sent})
	require.NoError(t, err)
	again := e.mailbox(t, e.alice.ID, "Sent")
	assert.Equal(t, storage.SpecialUseSent, again.SpecialUse, "recreated with its attribute")
	assert.Equal(t, again.ID, ds[0].Mailbox)
	assert.Equal(t, []uint32{1}, e.uids(t, e.alice.ID, again.ID))

	// An unknown account is still an error, and creates nothing.
	_, err = e.s.Deliver(e.ctx, textMessage("x", "y"), time.Time{}, []storage.Recipient{{Account: 987654, Mailbox: "Sent", SpecialUse: storage.SpecialUseSent}})
	require.ErrorIs(t, err, storage.ErrNotFound)
}
