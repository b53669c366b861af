package storagetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

func testFlags(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	d := e.append(t, e.alice.ID, "INBOX", textMessage("f", "f"), `\seen`, "$Label1", "$label1", "Dossier-42", `\SEEN`)
	m := e.message(t, e.alice.ID, in.ID, d.UID)
	// RFC 9051 2.3.2: system flags in canonical case, keywords as given,
	// duplicates (case-insensitive) removed.
	assert.ElementsMatch(t, []string{storage.FlagSeen, "$Label1", "Dossier-42"}, m.Flags)

	up, failed, err := e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d.UID, 999}, storage.FlagsAdd, []string{`\FLAGGED`, "dossier-42"}, 0)
	require.NoError(t, err)
	assert.Empty(t, failed)
	require.Len(t, up, 1)
	assert.Equal(t, d.UID, up[0].UID)
	assert.Greater(t, up[0].ModSeq, m.ModSeq)
	assert.ElementsMatch(t, []string{storage.FlagSeen, storage.FlagFlagged, "$Label1", "Dossier-42"}, up[0].Flags)
	m2 := e.message(t, e.alice.ID, in.ID, d.UID)
	assert.ElementsMatch(t, up[0].Flags, m2.Flags)
	assert.Equal(t, up[0].ModSeq, m2.ModSeq)
	assert.Equal(t, up[0].ModSeq, e.mailbox(t, e.alice.ID, "INBOX").HighestModSeq)

	// Adding flags already there changes nothing, modseq included.
	up, _, err = e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d.UID}, storage.FlagsAdd, []string{`\Seen`, "$LABEL1"}, 0)
	require.NoError(t, err)
	assert.Empty(t, up)
	assert.Equal(t, m2.ModSeq, e.message(t, e.alice.ID, in.ID, d.UID).ModSeq)

	up, _, err = e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d.UID}, storage.FlagsRemove, []string{`\seen`, "DOSSIER-42", "absent"}, 0)
	require.NoError(t, err)
	require.Len(t, up, 1)
	assert.ElementsMatch(t, []string{storage.FlagFlagged, "$Label1"}, up[0].Flags)

	up, _, err = e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d.UID}, storage.FlagsSet, []string{`\answered`, `\Draft`, "Urgent"}, 0)
	require.NoError(t, err)
	require.Len(t, up, 1)
	assert.ElementsMatch(t, []string{storage.FlagAnswered, storage.FlagDraft, "Urgent"}, up[0].Flags)

	up, _, err = e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d.UID}, storage.FlagsSet, nil, 0)
	require.NoError(t, err)
	require.Len(t, up, 1)
	assert.Empty(t, up[0].Flags)
	assert.Empty(t, e.message(t, e.alice.ID, in.ID, d.UID).Flags)

	for _, bad := range [][]string{{`\Bogus`}, {"two words"}, {"par(en"}, {""}} {
		_, _, err = e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d.UID}, storage.FlagsAdd, bad, 0)
		require.ErrorIs(t, err, storage.ErrInvalid, "%q", bad)
	}
}

func testCondStore(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	d1 := e.append(t, e.alice.ID, "INBOX", textMessage("1", "1"))
	d2 := e.append(t, e.alice.ID, "INBOX", textMessage("2", "2"))
	m1 := e.message(t, e.alice.ID, in.ID, d1.UID)
	// Another client changes message 2 after we read message 1's modseq.
	_, _, err := e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d2.UID}, storage.FlagsAdd, []string{"$Other"}, 0)
	require.NoError(t, err)
	m2 := e.message(t, e.alice.ID, in.ID, d2.UID)
	require.Greater(t, m2.ModSeq, m1.ModSeq)

	// RFC 7162 3.1.3: UNCHANGEDSINCE m1.ModSeq fails for message 2.
	up, failed, err := e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d1.UID, d2.UID}, storage.FlagsAdd, []string{storage.FlagSeen}, m1.ModSeq)
	require.NoError(t, err)
	assert.Equal(t, []uint32{d2.UID}, failed)
	require.Len(t, up, 1)
	assert.Equal(t, d1.UID, up[0].UID)
	assert.Greater(t, up[0].ModSeq, m2.ModSeq)
	assert.Equal(t, []string{"$Other"}, e.message(t, e.alice.ID, in.ID, d2.UID).Flags)
	assert.Equal(t, up[0].ModSeq, e.mailbox(t, e.alice.ID, "INBOX").HighestModSeq)

	// With the current modseq it succeeds.
	up, failed, err = e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d2.UID}, storage.FlagsAdd, []string{storage.FlagSeen}, m2.ModSeq)
	require.NoError(t, err)
	assert.Empty(t, failed)
	require.Len(t, up, 1)
}

func testExpunge(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	d1 := e.append(t, e.alice.ID, "INBOX", textMessage("1", "1"), storage.FlagDeleted)
	d2 := e.append(t, e.alice.ID, "INBOX", textMessage("2", "2"))
	d3 := e.append(t, e.alice.ID, "INBOX", textMessage("3", "3"))
	_, _, err := e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d3.UID}, storage.FlagsAdd, []string{`\deleted`}, 0)
	require.NoError(t, err)
	before := e.mailbox(t, e.alice.ID, "INBOX")

	// UID EXPUNGE (RFC 9051 6.4.9): only listed messages carrying \Deleted.
	got, err := e.s.Expunge(e.ctx, e.alice.ID, in.ID, []uint32{d2.UID, d3.UID})
	require.NoError(t, err)
	assert.Equal(t, []uint32{d3.UID}, got)
	got, err = e.s.Expunge(e.ctx, e.alice.ID, in.ID, []uint32{})
	require.NoError(t, err)
	assert.Empty(t, got)
	mid := e.mailbox(t, e.alice.ID, "INBOX")
	assert.Greater(t, mid.HighestModSeq, before.HighestModSeq)

	got, err = e.s.Expunge(e.ctx, e.alice.ID, in.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, []uint32{d1.UID}, got)
	assert.Equal(t, []uint32{d2.UID}, e.uids(t, e.alice.ID, in.ID))
	_, err = e.s.RawMessage(e.ctx, e.alice.ID, in.ID, d1.UID)
	require.ErrorIs(t, err, storage.ErrNotFound)

	after := e.mailbox(t, e.alice.ID, "INBOX")
	assert.Equal(t, before.UIDNext, after.UIDNext)
	assert.Greater(t, after.HighestModSeq, mid.HighestModSeq)
	got, err = e.s.Expunge(e.ctx, e.alice.ID, in.ID, nil)
	require.NoError(t, err)
	assert.Empty(t, got)

	// UIDs are never reused (RFC 9051 2.3.1.1).
	d4 := e.append(t, e.alice.ID, "INBOX", textMessage("4", "4"))
	assert.Equal(t, d3.UID+1, d4.UID)
}

func testCopy(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	arch := e.mailbox(t, e.alice.ID, "Archive")
	e.append(t, e.alice.ID, "Archive", textMessage("already", "there"))
	d1 := e.append(t, e.alice.ID, "INBOX", textMessage("1", "1"), storage.FlagSeen, "$Work")
	d2 := e.append(t, e.alice.ID, "INBOX", textMessage("2", "2"))
	d3 := e.append(t, e.alice.ID, "INBOX", textMessage("3", "3"))

	res, err := e.s.Copy(e.ctx, e.alice.ID, in.ID, []uint32{d3.UID, d1.UID, 999}, "Archive")
	require.NoError(t, err)
	// RFC 4315 3: COPYUID, source and destination in the same order.
	assert.Equal(t, arch.UIDValidity, res.UIDValidity)
	assert.Equal(t, []uint32{d1.UID, d3.UID}, res.SourceUIDs)
	assert.Equal(t, []uint32{2, 3}, res.DestUIDs)
	assert.Equal(t, []uint32{d1.UID, d2.UID, d3.UID}, e.uids(t, e.alice.ID, in.ID), "source untouched")

	src := e.message(t, e.alice.ID, in.ID, d1.UID)
	cp := e.message(t, e.alice.ID, arch.ID, 2)
	assert.ElementsMatch(t, src.Flags, cp.Flags)
	assert.True(t, src.InternalDate.Equal(cp.InternalDate))
	assert.Equal(t, src.Size, cp.Size)
	assert.Equal(t, src.Summary, cp.Summary)

	// The copy outlives the original.
	_, _, err = e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d1.UID}, storage.FlagsAdd, []string{storage.FlagDeleted}, 0)
	require.NoError(t, err)
	_, err = e.s.Expunge(e.ctx, e.alice.ID, in.ID, nil)
	require.NoError(t, err)
	raw, err := e.s.RawMessage(e.ctx, e.alice.ID, arch.ID, 2)
	require.NoError(t, err)
	assert.Equal(t, textMessage("1", "1"), raw)
	assert.NotContains(t, e.message(t, e.alice.ID, arch.ID, 2).Flags, storage.FlagDeleted)

	// Copy into the same mailbox gives new UIDs.
	res, err = e.s.Copy(e.ctx, e.alice.ID, in.ID, []uint32{d2.UID}, "INBOX")
	require.NoError(t, err)
	assert.Equal(t, []uint32{d3.UID + 1}, res.DestUIDs)

	_, err = e.s.Copy(e.ctx, e.alice.ID, in.ID, []uint32{d2.UID}, "Nope")
	require.ErrorIs(t, err, storage.ErrNotFound)
}

func testMove(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	trash := e.mailbox(t, e.alice.ID, "Trash")
	d1 := e.append(t, e.alice.ID, "INBOX", textMessage("1", "1"), storage.FlagSeen)
	d2 := e.append(t, e.alice.ID, "INBOX", textMessage("2", "2"))
	d3 := e.append(t, e.alice.ID, "INBOX", textMessage("3", "3"))
	before := e.mailbox(t, e.alice.ID, "INBOX")

	res, err := e.s.Move(e.ctx, e.alice.ID, in.ID, []uint32{d3.UID, d1.UID}, "Trash")
	require.NoError(t, err)
	assert.Equal(t, trash.UIDValidity, res.UIDValidity)
	assert.Equal(t, []uint32{d1.UID, d3.UID}, res.SourceUIDs)
	assert.Equal(t, []uint32{1, 2}, res.DestUIDs)
	assert.Equal(t, []uint32{d2.UID}, e.uids(t, e.alice.ID, in.ID), "RFC 6851: moved messages are gone")
	assert.Equal(t, []uint32{1, 2}, e.uids(t, e.alice.ID, trash.ID))
	raw, err := e.s.RawMessage(e.ctx, e.alice.ID, trash.ID, 1)
	require.NoError(t, err)
	assert.Equal(t, textMessage("1", "1"), raw)
	assert.Equal(t, []string{storage.FlagSeen}, e.message(t, e.alice.ID, trash.ID, 1).Flags)
	assert.Greater(t, e.mailbox(t, e.alice.ID, "INBOX").HighestModSeq, before.HighestModSeq)

	_, err = e.s.Move(e.ctx, e.alice.ID, in.ID, []uint32{d2.UID}, "Nope")
	require.ErrorIs(t, err, storage.ErrNotFound)
	assert.Equal(t, []uint32{d2.UID}, e.uids(t, e.alice.ID, in.ID))
	res, err = e.s.Move(e.ctx, e.alice.ID, in.ID, []uint32{999}, "Trash")
	require.NoError(t, err)
	assert.Empty(t, res.DestUIDs)
}
