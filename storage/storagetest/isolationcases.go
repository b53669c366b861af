package storagetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

func testIsolation(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	d := e.append(t, e.alice.ID, "INBOX", textMessage("secret", "for alice"), storage.FlagDeleted)
	bob := e.bob.ID
	nf := func(err error) { t.Helper(); require.ErrorIs(t, err, storage.ErrNotFound) }

	_, err := e.s.Messages(e.ctx, bob, in.ID)
	nf(err)
	_, err = e.s.MessagesByUID(e.ctx, bob, in.ID, []uint32{d.UID})
	nf(err)
	_, err = e.s.RawMessage(e.ctx, bob, in.ID, d.UID)
	nf(err)
	_, _, err = e.s.SearchText(e.ctx, bob, in.ID, d.UID)
	nf(err)
	_, err = e.s.MailboxCounts(e.ctx, bob, in.ID)
	nf(err)
	_, _, err = e.s.StoreFlags(e.ctx, bob, in.ID, []uint32{d.UID}, storage.FlagsSet, nil, 0)
	nf(err)
	_, err = e.s.Expunge(e.ctx, bob, in.ID, nil)
	nf(err)
	_, err = e.s.Copy(e.ctx, bob, in.ID, []uint32{d.UID}, "INBOX")
	nf(err)
	_, err = e.s.Move(e.ctx, bob, in.ID, []uint32{d.UID}, "INBOX")
	nf(err)

	// Bob's names resolve in Bob's account only.
	_, err = e.s.CreateMailbox(e.ctx, e.alice.ID, "Privé", "")
	require.NoError(t, err)
	_, err = e.s.MailboxByName(e.ctx, bob, "Privé")
	nf(err)
	nf(e.s.RenameMailbox(e.ctx, bob, "Privé", "Mine"))
	nf(e.s.DeleteMailbox(e.ctx, bob, "Privé"))
	nf(e.s.SetSubscribed(e.ctx, bob, "Privé", true))
	bd := e.append(t, bob, "INBOX", textMessage("bob", "bob"))
	assert.Equal(t, e.mailbox(t, bob, "INBOX").ID, bd.Mailbox)
	assert.NotEqual(t, in.ID, bd.Mailbox)
	_, err = e.s.Copy(e.ctx, e.alice.ID, in.ID, []uint32{d.UID}, "Privé")
	require.NoError(t, err)

	// Alice's message is untouched.
	m := e.message(t, e.alice.ID, in.ID, d.UID)
	assert.Equal(t, []string{storage.FlagDeleted}, m.Flags)
	raw, err := e.s.RawMessage(e.ctx, e.alice.ID, in.ID, d.UID)
	require.NoError(t, err)
	assert.Equal(t, textMessage("secret", "for alice"), raw)
	assert.Equal(t, []uint32{bd.UID}, e.uids(t, bob, bd.Mailbox))
}

// testPersistence closes and reopens the store: every counter and message
// survives (RFC 9051 2.3.1.1, RFC 7162 3.1).
func testPersistence(t *testing.T, e *env) {
	m, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "Suivi/Patients", "")
	require.NoError(t, err)
	var last storage.Delivered
	for i := 0; i < 3; i++ {
		last = e.append(t, e.alice.ID, "Suivi/Patients", textMessage("p", string(rune('a'+i))), "$Suivi")
	}
	_, _, err = e.s.StoreFlags(e.ctx, e.alice.ID, m.ID, []uint32{last.UID}, storage.FlagsAdd, []string{storage.FlagDeleted}, 0)
	require.NoError(t, err)
	_, err = e.s.Expunge(e.ctx, e.alice.ID, m.ID, nil) // the highest UID goes
	require.NoError(t, err)
	_, err = e.s.CreateMailbox(e.ctx, e.alice.ID, "Temp", "")
	require.NoError(t, err)
	require.NoError(t, e.s.DeleteMailbox(e.ctx, e.alice.ID, "Temp"))
	before := e.mailbox(t, e.alice.ID, "Suivi/Patients")
	msgs, err := e.s.Messages(e.ctx, e.alice.ID, m.ID)
	require.NoError(t, err)
	allBefore, err := e.s.Mailboxes(e.ctx, e.alice.ID)
	require.NoError(t, err)
	var maxValidity uint32
	for _, mb := range allBefore {
		maxValidity = max(maxValidity, mb.UIDValidity)
	}

	e.reopen(t)

	after := e.mailbox(t, e.alice.ID, "Suivi/Patients")
	assert.Equal(t, before, after)
	msgsAfter, err := e.s.Messages(e.ctx, e.alice.ID, m.ID)
	require.NoError(t, err)
	require.Len(t, msgsAfter, len(msgs))
	for i := range msgs {
		assert.Equal(t, msgs[i].UID, msgsAfter[i].UID)
		assert.Equal(t, msgs[i].ModSeq, msgsAfter[i].ModSeq)
		assert.Equal(t, msgs[i].Flags, msgsAfter[i].Flags)
		assert.Equal(t, msgs[i].Summary, msgsAfter[i].Summary)
		assert.True(t, msgs[i].InternalDate.Equal(msgsAfter[i].InternalDate))
	}
	a, err := e.s.AccountByAddress(e.ctx, "alice@example.org")
	require.NoError(t, err)
	assert.Equal(t, e.alice.ID, a.ID)

	d := e.append(t, e.alice.ID, "Suivi/Patients", textMessage("p", "new"))
	assert.Equal(t, before.UIDNext, d.UID, "UIDNEXT survives, expunged UIDs are not reused")
	assert.Greater(t, e.message(t, e.alice.ID, m.ID, d.UID).ModSeq, before.HighestModSeq)
	tmp, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "Temp", "")
	require.NoError(t, err)
	assert.Greater(t, tmp.UIDValidity, maxValidity, "UIDVALIDITY counter survives")

	ds, err := e.s.Deliver(e.ctx, textMessage("x", "y"), time.Time{}, []storage.Recipient{{Account: e.bob.ID, Mailbox: "INBOX"}})
	require.NoError(t, err)
	assert.Equal(t, uint32(1), ds[0].UID)
}
