package storagetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

func names(t *testing.T, e *env, acct storage.AccountID) map[string]storage.Mailbox {
	t.Helper()
	ms, err := e.s.Mailboxes(e.ctx, acct)
	require.NoError(t, err)
	out := map[string]storage.Mailbox{}
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

func testCreateMailbox(t *testing.T, e *env) {
	m, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "Patients/2026/Janvier", storage.SpecialUseNone)
	require.NoError(t, err)
	assert.Equal(t, "Patients/2026/Janvier", m.Name)
	assert.Equal(t, uint32(1), m.UIDNext)
	assert.NotZero(t, m.UIDValidity)
	all := names(t, e, e.alice.ID)
	assert.Contains(t, all, "Patients", "RFC 9051 6.3.4: missing parents created")
	assert.Contains(t, all, "Patients/2026")
	assert.Equal(t, m.ID, all["Patients/2026/Janvier"].ID)

	_, err = e.s.CreateMailbox(e.ctx, e.alice.ID, "Patients/2026/Janvier", "")
	require.ErrorIs(t, err, storage.ErrExists)
	_, err = e.s.CreateMailbox(e.ctx, e.alice.ID, "inbox", "")
	require.ErrorIs(t, err, storage.ErrExists, "INBOX is case-insensitive")
	for _, bad := range []string{"", "a//b", "/a", "a/"} {
		_, err = e.s.CreateMailbox(e.ctx, e.alice.ID, bad, "")
		require.ErrorIs(t, err, storage.ErrInvalid, "%q", bad)
	}
	_, err = e.s.CreateMailbox(e.ctx, e.alice.ID, "Weird", `\Bogus`)
	require.ErrorIs(t, err, storage.ErrInvalid)

	// Names other than INBOX are case-sensitive (RFC 9051 5.1).
	lower, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "patients", "")
	require.NoError(t, err)
	assert.NotEqual(t, all["Patients"].ID, lower.ID)

	in := e.mailbox(t, e.alice.ID, "iNbOx")
	assert.Equal(t, "INBOX", in.Name)
	_, err = e.s.MailboxByName(e.ctx, e.alice.ID, "Nope")
	require.ErrorIs(t, err, storage.ErrNotFound)

	f, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "Important", storage.SpecialUseFlagged)
	require.NoError(t, err)
	assert.Equal(t, storage.SpecialUseFlagged, e.mailbox(t, e.alice.ID, "Important").SpecialUse)
	assert.Equal(t, f.ID, e.mailbox(t, e.alice.ID, "Important").ID)

	_, err = e.s.CreateMailbox(e.ctx, 987654, "X", "")
	require.ErrorIs(t, err, storage.ErrNotFound)
}

func testDeleteMailbox(t *testing.T, e *env) {
	require.ErrorIs(t, e.s.DeleteMailbox(e.ctx, e.alice.ID, "INBOX"), storage.ErrForbidden)
	require.ErrorIs(t, e.s.DeleteMailbox(e.ctx, e.alice.ID, "inbox"), storage.ErrForbidden)
	require.ErrorIs(t, e.s.DeleteMailbox(e.ctx, e.alice.ID, "Nope"), storage.ErrNotFound)

	old, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "Dossiers/X", "")
	require.NoError(t, err)
	parent := e.mailbox(t, e.alice.ID, "Dossiers")
	d := e.append(t, e.alice.ID, "Dossiers", textMessage("in parent", "p"))
	e.append(t, e.alice.ID, "Dossiers/X", textMessage("in child", "c"))

	// RFC 9051 6.3.9: deleting a name with inferior names removes only it.
	require.NoError(t, e.s.DeleteMailbox(e.ctx, e.alice.ID, "Dossiers"))
	all := names(t, e, e.alice.ID)
	assert.NotContains(t, all, "Dossiers")
	assert.Contains(t, all, "Dossiers/X")
	assert.Len(t, e.uids(t, e.alice.ID, all["Dossiers/X"].ID), 1)
	_, err = e.s.RawMessage(e.ctx, e.alice.ID, parent.ID, d.UID)
	require.ErrorIs(t, err, storage.ErrNotFound)
	_, err = e.s.Messages(e.ctx, e.alice.ID, parent.ID)
	require.ErrorIs(t, err, storage.ErrNotFound)

	// A recreated mailbox never reuses a UIDVALIDITY (RFC 9051 2.3.1.1).
	require.NoError(t, e.s.DeleteMailbox(e.ctx, e.alice.ID, "Dossiers/X"))
	again, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "Dossiers/X", "")
	require.NoError(t, err)
	assert.Greater(t, again.UIDValidity, old.UIDValidity)
	assert.Greater(t, again.UIDValidity, parent.UIDValidity)
	assert.Empty(t, e.uids(t, e.alice.ID, again.ID))
}

func testRenameMailbox(t *testing.T, e *env) {
	src, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "Equipe/2026", "")
	require.NoError(t, err)
	_, err = e.s.CreateMailbox(e.ctx, e.alice.ID, "Equipe/2026/Q1/Jan", "")
	require.NoError(t, err)
	d := e.append(t, e.alice.ID, "Equipe/2026", textMessage("kept", "k"))
	_, err = e.s.CreateMailbox(e.ctx, e.alice.ID, "Equipe/20260", "") // not a child
	require.NoError(t, err)

	require.NoError(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "Equipe/2026", "Archives/Equipe"))
	all := names(t, e, e.alice.ID)
	for _, gone := range []string{"Equipe/2026", "Equipe/2026/Q1", "Equipe/2026/Q1/Jan"} {
		assert.NotContains(t, all, gone)
	}
	for _, there := range []string{"Archives", "Archives/Equipe", "Archives/Equipe/Q1", "Archives/Equipe/Q1/Jan", "Equipe", "Equipe/20260"} {
		assert.Contains(t, all, there)
	}
	moved := all["Archives/Equipe"]
	assert.Equal(t, src.ID, moved.ID)
	raw, err := e.s.RawMessage(e.ctx, e.alice.ID, moved.ID, d.UID)
	require.NoError(t, err)
	assert.Equal(t, textMessage("kept", "k"), raw)

	require.ErrorIs(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "Archives/Equipe", "Sent"), storage.ErrExists)
	require.ErrorIs(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "Archives/Equipe", "INBOX"), storage.ErrExists)
	require.ErrorIs(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "Nope", "Other"), storage.ErrNotFound)
	// A child of the target already exists: nothing is renamed.
	_, err = e.s.CreateMailbox(e.ctx, e.alice.ID, "Z/Q1", "")
	require.NoError(t, err)
	require.ErrorIs(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "Archives/Equipe", "Z"), storage.ErrExists)
	assert.Contains(t, names(t, e, e.alice.ID), "Archives/Equipe/Q1")
	assert.Error(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "Archives", "Archives/Sub"), "into itself")
}

func testRenameInbox(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	d1 := e.append(t, e.alice.ID, "INBOX", textMessage("one", "1"), storage.FlagSeen)
	d2 := e.append(t, e.alice.ID, "INBOX", textMessage("two", "2"))
	_, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "INBOX/Child", "")
	require.NoError(t, err)
	before := e.mailbox(t, e.alice.ID, "INBOX")

	// RFC 9051 6.3.6: renaming INBOX moves its messages, INBOX stays empty.
	require.NoError(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "inbox", "Ancien"))
	all := names(t, e, e.alice.ID)
	assert.Contains(t, all, "INBOX")
	assert.Contains(t, all, "INBOX/Child", "inferior names of INBOX are not renamed")
	assert.NotContains(t, all, "Ancien/Child")
	after := all["INBOX"]
	assert.Equal(t, in.ID, after.ID)
	assert.Empty(t, e.uids(t, e.alice.ID, in.ID))
	assert.GreaterOrEqual(t, after.UIDNext, before.UIDNext, "UIDNEXT never goes backwards")
	assert.GreaterOrEqual(t, after.HighestModSeq, before.HighestModSeq)

	old := all["Ancien"]
	got := e.uids(t, e.alice.ID, old.ID)
	require.Len(t, got, 2)
	raw, err := e.s.RawMessage(e.ctx, e.alice.ID, old.ID, got[0])
	require.NoError(t, err)
	assert.Equal(t, textMessage("one", "1"), raw)
	assert.Contains(t, e.message(t, e.alice.ID, old.ID, got[0]).Flags, storage.FlagSeen)

	// New mail still gets fresh UIDs in INBOX.
	d3 := e.append(t, e.alice.ID, "INBOX", textMessage("three", "3"))
	assert.Greater(t, d3.UID, d2.UID)
	assert.Greater(t, d2.UID, d1.UID)
}

func testSubscriptions(t *testing.T, e *env) {
	require.NoError(t, e.s.SetSubscribed(e.ctx, e.alice.ID, "Junk", false))
	assert.False(t, e.mailbox(t, e.alice.ID, "Junk").Subscribed)
	assert.True(t, e.mailbox(t, e.alice.ID, "Sent").Subscribed)
	require.NoError(t, e.s.SetSubscribed(e.ctx, e.alice.ID, "Junk", true))
	assert.True(t, e.mailbox(t, e.alice.ID, "Junk").Subscribed)

	m, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "Notes", "")
	require.NoError(t, err)
	assert.False(t, m.Subscribed)
	require.NoError(t, e.s.SetSubscribed(e.ctx, e.alice.ID, "Notes", true))
	assert.True(t, e.mailbox(t, e.alice.ID, "Notes").Subscribed)
	require.NoError(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "Notes", "Carnet"))
	assert.True(t, e.mailbox(t, e.alice.ID, "Carnet").Subscribed, "subscription follows a rename")

	require.ErrorIs(t, e.s.SetSubscribed(e.ctx, e.alice.ID, "Nope", true), storage.ErrNotFound)
	assert.True(t, e.mailbox(t, e.bob.ID, "Junk").Subscribed)
}

// testRenameNonASCII: children of a mailbox whose name is not ASCII move
// with it (names are UTF-8, RFC 9051 5.1; lengths in bytes and characters
// differ).
func testRenameNonASCII(t *testing.T, e *env) {
	_, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "Reçus/Équipe", storage.SpecialUseNone)
	require.NoError(t, err)
	require.NoError(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "Reçus", "Arrivés"))
	_, err = e.s.MailboxByName(e.ctx, e.alice.ID, "Arrivés/Équipe")
	require.NoError(t, err, "child renamed")
	_, err = e.s.MailboxByName(e.ctx, e.alice.ID, "Reçus/Équipe")
	require.ErrorIs(t, err, storage.ErrNotFound, "old child name gone")
}
