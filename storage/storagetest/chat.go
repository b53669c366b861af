package storagetest

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

// The chat (storage.ChatStore) and the audit log (storage.AuditStore).

// Synthetic test INS (NIR of the test range, invented patients).
const (
	insA = "299999912345678"
	insB = "199999987654321"
)

func (e *env) chat(t *testing.T) storage.ChatStore {
	t.Helper()
	return e.s
}

func (e *env) account(t *testing.T, local string) storage.Account {
	t.Helper()
	a, err := e.s.CreateAccount(e.ctx, local+"@example.org", strings.ToUpper(local[:1])+local[1:], "hash-"+local)
	require.NoError(t, err)
	return a
}

func (e *env) teamRoom(t *testing.T, cs storage.ChatStore, owner storage.AccountID, members ...storage.AccountID) storage.Room {
	t.Helper()
	r, err := cs.CreateRoom(e.ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "Équipe MSP Exemple", CreatedBy: owner, Members: members})
	require.NoError(t, err)
	return r
}

func post(t *testing.T, e *env, cs storage.ChatStore, room storage.RoomID, sender storage.AccountID, body string) storage.ChatMessage {
	t.Helper()
	m, dup, err := cs.Post(e.ctx, storage.NewChatMessage{Room: room, Sender: sender, Kind: storage.ChatText, Body: body})
	require.NoError(t, err)
	require.False(t, dup)
	return m
}

// chatChanges keeps the ChangeChat and ChangeChatNotification changes of a
// subscription.
func chatChanges(t *testing.T, sub *storage.Subscription) []storage.Change {
	t.Helper()
	var out []storage.Change
	for _, c := range drain(t, sub) {
		if c.Kind == storage.ChangeChat || c.Kind == storage.ChangeChatNotification {
			out = append(out, c)
		}
	}
	return out
}

func seqs(ms []storage.ChatMessage) []uint64 {
	out := []uint64{}
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func testChatRooms(t *testing.T, e *env) {
	cs := e.chat(t)
	sub := e.s.Subscribe(e.bob.ID)
	defer sub.Close()
	team := e.teamRoom(t, cs, e.alice.ID, e.bob.ID, e.bob.ID, e.alice.ID)
	assert.Equal(t, storage.RoomTeam, team.Kind)
	assert.Equal(t, "Équipe MSP Exemple", team.Name)
	assert.Equal(t, e.alice.ID, team.CreatedBy)
	assert.Zero(t, team.LastSeq)
	assert.False(t, team.Created.IsZero())
	assert.Equal(t, []storage.Change{{Kind: storage.ChangeChat, Room: team.ID, Chat: storage.ChatChangeMember, Account: e.bob.ID}},
		chatChanges(t, sub))

	pat, err := cs.CreateRoom(e.ctx, storage.NewRoom{Kind: storage.RoomPatient, Name: "Cercle de soins", PatientINS: insA,
		PatientName: "TESTUN Camille", CreatedBy: e.bob.ID})
	require.NoError(t, err)
	got, err := cs.Room(e.ctx, e.bob.ID, pat.ID)
	require.NoError(t, err)
	assert.Equal(t, pat, got)
	assert.Equal(t, insA, got.PatientINS)
	assert.Equal(t, "TESTUN Camille", got.PatientName)

	members, err := cs.Members(e.ctx, team.ID, e.bob.ID)
	require.NoError(t, err)
	require.Len(t, members, 2) // duplicates and the creator ignored
	assert.Equal(t, e.alice.ID, members[0].Account)
	assert.Equal(t, storage.RoleOwner, members[0].Role)
	assert.Equal(t, e.bob.ID, members[1].Account)
	assert.Equal(t, storage.RoleMember, members[1].Role)
	assert.Equal(t, e.alice.ID, members[1].AddedBy)
	role, err := cs.MemberRole(e.ctx, team.ID, e.bob.ID)
	require.NoError(t, err)
	assert.Equal(t, storage.RoleMember, role)

	// The room list: most recent activity first.
	post(t, e, cs, team.ID, e.alice.ID, "bonjour")
	list, err := cs.Rooms(e.ctx, e.bob.ID)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, team.ID, list[0].ID)
	assert.Equal(t, uint64(1), list[0].LastSeq)
	assert.Equal(t, 1, list[0].Unread)
	assert.Equal(t, storage.RoleMember, list[0].Role)
	assert.Equal(t, pat.ID, list[1].ID)
	assert.Equal(t, storage.RoleOwner, list[1].Role)
	list, err = cs.Rooms(e.ctx, e.alice.ID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Zero(t, list[0].Unread) // her own message

	// Validation.
	for _, bad := range []storage.NewRoom{
		{Kind: storage.RoomTeam, Name: "", CreatedBy: e.alice.ID},
		{Kind: storage.RoomTeam, Name: "x", PatientINS: insA, CreatedBy: e.alice.ID},
		{Kind: storage.RoomPatient, Name: "x", CreatedBy: e.alice.ID},
		{Kind: storage.RoomDirect, Name: "x", CreatedBy: e.alice.ID},
		{Kind: "other", Name: "x", CreatedBy: e.alice.ID},
		{Kind: storage.RoomTeam, Name: "x", CreatedBy: 0},
		{Kind: storage.RoomTeam, Name: "a\nb", CreatedBy: e.alice.ID},
		{Kind: storage.RoomTeam, Name: "\xff", CreatedBy: e.alice.ID},
	} {
		_, err := cs.CreateRoom(e.ctx, bad)
		assert.ErrorIs(t, err, storage.ErrInvalid, "%+v", bad)
	}
	_, err = cs.CreateRoom(e.ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: strings.Repeat("n", storage.MaxRoomName+1), CreatedBy: e.alice.ID})
	assert.ErrorIs(t, err, storage.ErrTooLarge)
	many := make([]storage.AccountID, storage.MaxRoomMembers)
	for i := range many {
		many[i] = storage.AccountID(1000 + i)
	}
	_, err = cs.CreateRoom(e.ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "x", CreatedBy: e.alice.ID, Members: many})
	assert.ErrorIs(t, err, storage.ErrTooLarge)
	_, err = cs.CreateRoom(e.ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "x", CreatedBy: e.alice.ID, Members: []storage.AccountID{999999}})
	assert.ErrorIs(t, err, storage.ErrNotFound)
}

// testChatSeqConcurrent: 8 senders at once; the room's events are numbered
// 1..n without a gap, each sender's in the order it sent them, and every
// member's feed sees them in order.
func testChatSeqConcurrent(t *testing.T, e *env) {
	cs := e.chat(t)
	const senders, each = 8, 25
	accts := []storage.AccountID{e.alice.ID, e.bob.ID}
	for i := 2; i < senders; i++ {
		accts = append(accts, e.account(t, fmt.Sprintf("soignant%d", i)).ID)
	}
	room := e.teamRoom(t, cs, e.alice.ID, accts[1:]...)
	sub := e.s.Subscribe(e.bob.ID)
	defer sub.Close()
	drain(t, sub)

	got := make([][]uint64, senders)
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for i, a := range accts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				m, _, err := cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: a, Kind: storage.ChatText,
					ClientID: fmt.Sprintf("c%d", j), Body: fmt.Sprintf("message %d de %d", j, i)})
				if err != nil {
					errs <- err
					return
				}
				got[i] = append(got[i], m.Seq)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	all := map[uint64]bool{}
	for i := range got {
		require.Len(t, got[i], each)
		for j := 1; j < each; j++ {
			assert.Less(t, got[i][j-1], got[i][j], "sender %d out of order", i)
		}
		for _, s := range got[i] {
			assert.False(t, all[s], "seq %d twice", s)
			all[s] = true
		}
	}
	const n = senders * each
	for s := uint64(1); s <= n; s++ {
		assert.True(t, all[s], "seq %d missing", s)
	}
	r, err := cs.Room(e.ctx, e.bob.ID, room.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(n), r.LastSeq)

	// Paged replay returns 1..n in order.
	var replay []uint64
	after := uint64(0)
	for {
		page, err := cs.MessagesAfter(e.ctx, room.ID, e.bob.ID, after, 64)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		replay = append(replay, seqs(page)...)
		after = page[len(page)-1].Seq
	}
	require.Len(t, replay, n)
	for i, s := range replay {
		require.Equal(t, uint64(i+1), s)
	}

	// The feed: every event, in commit order.
	var feed []uint64
	for _, c := range chatChanges(t, sub) {
		require.Equal(t, storage.ChatChangeEvent, c.Chat)
		require.Equal(t, room.ID, c.Room)
		feed = append(feed, c.Seq)
	}
	assert.Equal(t, replay, feed)
}

func testChatIdempotent(t *testing.T, e *env) {
	cs := e.chat(t)
	room := e.teamRoom(t, cs, e.alice.ID, e.bob.ID)
	other := e.teamRoom(t, cs, e.alice.ID, e.bob.ID)
	sub := e.s.Subscribe(e.bob.ID)
	defer sub.Close()
	drain(t, sub)
	in := storage.NewChatMessage{Room: room.ID, Sender: e.alice.ID, ClientID: "k-1", Kind: storage.ChatText, Body: "première",
		Mentions: []storage.AccountID{e.bob.ID}}
	m1, dup, err := cs.Post(e.ctx, in)
	require.NoError(t, err)
	assert.False(t, dup)
	assert.Equal(t, uint64(1), m1.Seq)
	assert.Equal(t, "k-1", m1.ClientID)
	assert.Equal(t, []storage.AccountID{e.bob.ID}, m1.Mentions)
	post(t, e, cs, room.ID, e.bob.ID, "entre-temps")

	// The retry (even with another body) returns the stored message.
	in.Body = "autre"
	m2, dup, err := cs.Post(e.ctx, in)
	require.NoError(t, err)
	assert.True(t, dup)
	assert.Equal(t, m1.Seq, m2.Seq)
	assert.Equal(t, "première", m2.Body)
	assert.Equal(t, m1.Created.UnixNano(), m2.Created.UnixNano())
	// Another sender, another room: not the same key.
	m3, dup, err := cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: e.bob.ID, ClientID: "k-1", Kind: storage.ChatText, Body: "x"})
	require.NoError(t, err)
	assert.False(t, dup)
	assert.Equal(t, uint64(3), m3.Seq)
	m4, dup, err := cs.Post(e.ctx, storage.NewChatMessage{Room: other.ID, Sender: e.alice.ID, ClientID: "k-1", Kind: storage.ChatText, Body: "x"})
	require.NoError(t, err)
	assert.False(t, dup)
	assert.Equal(t, uint64(1), m4.Seq)

	ms, err := cs.MessagesAfter(e.ctx, room.ID, e.bob.ID, 0, 100)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2, 3}, seqs(ms))
	// The retry published nothing.
	assert.Len(t, chatChanges(t, sub), 4)
}

// testChatMemberOnly: a non-member and a missing room get the same
// ErrNotFound from every call.
func testChatMemberOnly(t *testing.T, e *env) {
	cs := e.chat(t)
	carol := e.account(t, "carol")
	room := e.teamRoom(t, cs, e.alice.ID, e.bob.ID)
	m := post(t, e, cs, room.ID, e.alice.ID, "confidentiel")
	sub := e.s.Subscribe(carol.ID)
	defer sub.Close()

	for _, id := range []storage.RoomID{room.ID, room.ID + 1000} {
		_, err := cs.Room(e.ctx, carol.ID, id)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		_, err = cs.Message(e.ctx, id, carol.ID, m.Seq)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		_, err = cs.MessagesAfter(e.ctx, id, carol.ID, 0, 10)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		_, err = cs.MessagesBefore(e.ctx, id, carol.ID, 0, 10)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		_, err = cs.MessageHistory(e.ctx, id, carol.ID, m.Seq)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		_, err = cs.Members(e.ctx, id, carol.ID)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		_, err = cs.ReadMarkers(e.ctx, id, carol.ID)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		_, err = cs.SetReadMarker(e.ctx, id, carol.ID, 1)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		_, err = cs.MemberRole(e.ctx, id, carol.ID)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: id, Sender: carol.ID, Kind: storage.ChatText, Body: "x"})
		assert.ErrorIs(t, err, storage.ErrNotFound)
		err = cs.AddMember(e.ctx, id, carol.ID, carol.ID, storage.RoleMember)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		err = cs.RemoveMember(e.ctx, id, carol.ID, e.bob.ID)
		assert.ErrorIs(t, err, storage.ErrNotFound)
		_, err = cs.Notify(e.ctx, storage.Notification{Account: carol.ID, Kind: storage.NotificationMention, Room: id, Seq: 1})
		assert.ErrorIs(t, err, storage.ErrNotFound)
		ok, err := cs.IsMember(e.ctx, id, carol.ID)
		require.NoError(t, err)
		assert.False(t, ok)
	}
	ok, err := cs.IsMember(e.ctx, room.ID, e.bob.ID)
	require.NoError(t, err)
	assert.True(t, ok)
	list, err := cs.Rooms(e.ctx, carol.ID)
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.Empty(t, chatChanges(t, sub))
	// A member reads a missing message as ErrNotFound too.
	_, err = cs.Message(e.ctx, room.ID, e.bob.ID, 99)
	assert.ErrorIs(t, err, storage.ErrNotFound)
}

func testChatRemoval(t *testing.T, e *env) {
	cs := e.chat(t)
	carol := e.account(t, "carol")
	room := e.teamRoom(t, cs, e.alice.ID, e.bob.ID)
	post(t, e, cs, room.ID, e.alice.ID, "un")
	_, err := cs.SetReadMarker(e.ctx, room.ID, e.bob.ID, 1)
	require.NoError(t, err)
	bobSub := e.s.Subscribe(e.bob.ID)
	defer bobSub.Close()
	aliceSub := e.s.Subscribe(e.alice.ID)
	defer aliceSub.Close()

	assert.ErrorIs(t, cs.AddMember(e.ctx, room.ID, e.alice.ID, e.bob.ID, storage.RoleMember), storage.ErrExists)
	assert.ErrorIs(t, cs.AddMember(e.ctx, room.ID, e.alice.ID, 999999, storage.RoleMember), storage.ErrNotFound)
	assert.ErrorIs(t, cs.AddMember(e.ctx, room.ID, e.alice.ID, carol.ID, "admin"), storage.ErrInvalid)
	require.NoError(t, cs.AddMember(e.ctx, room.ID, e.bob.ID, carol.ID, storage.RoleMember))
	assert.Equal(t, []storage.Change{{Kind: storage.ChangeChat, Room: room.ID, Seq: 1, Chat: storage.ChatChangeMember, Account: carol.ID}},
		chatChanges(t, aliceSub))
	drain(t, bobSub)

	require.NoError(t, cs.RemoveMember(e.ctx, room.ID, e.alice.ID, e.bob.ID))
	// At once: every read and write of bob's fails, as for a stranger.
	_, err = cs.MessagesAfter(e.ctx, room.ID, e.bob.ID, 0, 10)
	assert.ErrorIs(t, err, storage.ErrNotFound)
	_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: e.bob.ID, Kind: storage.ChatText, Body: "x"})
	assert.ErrorIs(t, err, storage.ErrNotFound)
	ok, err := cs.IsMember(e.ctx, room.ID, e.bob.ID)
	require.NoError(t, err)
	assert.False(t, ok)
	change := storage.Change{Kind: storage.ChangeChat, Room: room.ID, Seq: 1, Chat: storage.ChatChangeMember, Account: e.bob.ID}
	assert.Equal(t, []storage.Change{change}, chatChanges(t, bobSub))
	assert.Equal(t, []storage.Change{change}, chatChanges(t, aliceSub))
	post(t, e, cs, room.ID, e.alice.ID, "deux")
	assert.Empty(t, chatChanges(t, bobSub)) // no longer on his feed
	assert.ErrorIs(t, cs.RemoveMember(e.ctx, room.ID, e.alice.ID, e.bob.ID), storage.ErrNotFound)

	// Back in: the marker went with the membership.
	require.NoError(t, cs.AddMember(e.ctx, room.ID, e.alice.ID, e.bob.ID, storage.RoleOwner))
	marks, err := cs.ReadMarkers(e.ctx, room.ID, e.bob.ID)
	require.NoError(t, err)
	for _, m := range marks {
		if m.Account == e.bob.ID {
			assert.Zero(t, m.Seq)
		}
	}
	// Leaving.
	require.NoError(t, cs.RemoveMember(e.ctx, room.ID, carol.ID, carol.ID))
	_, err = cs.Room(e.ctx, carol.ID, room.ID)
	assert.ErrorIs(t, err, storage.ErrNotFound)

	// Direct rooms keep their two members.
	d, err := cs.DirectRoom(e.ctx, e.alice.ID, e.bob.ID)
	require.NoError(t, err)
	assert.ErrorIs(t, cs.AddMember(e.ctx, d.ID, e.alice.ID, carol.ID, storage.RoleMember), storage.ErrForbidden)
	assert.ErrorIs(t, cs.RemoveMember(e.ctx, d.ID, e.alice.ID, e.bob.ID), storage.ErrForbidden)
}

func testChatEditDelete(t *testing.T, e *env) {
	cs := e.chat(t)
	carol := e.account(t, "carol")
	room := e.teamRoom(t, cs, e.alice.ID, e.bob.ID, carol.ID)
	orig := post(t, e, cs, room.ID, e.bob.ID, "Tension 12/8 ce matin")

	edit := func(sender storage.AccountID, target uint64, body string) (storage.ChatMessage, error) {
		m, _, err := cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: sender, Kind: storage.ChatEdit, Target: target, Body: body})
		return m, err
	}
	del := func(sender storage.AccountID, target uint64) (storage.ChatMessage, error) {
		m, _, err := cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: sender, Kind: storage.ChatDelete, Target: target})
		return m, err
	}
	_, err := edit(carol.ID, orig.Seq, "pas à moi")
	assert.ErrorIs(t, err, storage.ErrForbidden)
	_, err = edit(e.bob.ID, 99, "x")
	assert.ErrorIs(t, err, storage.ErrNotFound)
	_, err = edit(e.bob.ID, 0, "x")
	assert.ErrorIs(t, err, storage.ErrInvalid)
	_, err = edit(e.bob.ID, orig.Seq, "")
	assert.ErrorIs(t, err, storage.ErrInvalid)

	e1, err := edit(e.bob.ID, orig.Seq, "Tension 13/8 ce matin")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), e1.Seq)
	assert.Equal(t, storage.ChatEdit, e1.Kind)
	assert.Equal(t, orig.Seq, e1.Target)
	_, err = edit(e.bob.ID, e1.Seq, "an edit is not a message")
	assert.ErrorIs(t, err, storage.ErrNotFound)
	e2, err := edit(e.bob.ID, orig.Seq, "Tension 13/8 ce matin, pouls 70")
	require.NoError(t, err)
	m, err := cs.Message(e.ctx, room.ID, carol.ID, orig.Seq)
	require.NoError(t, err)
	assert.Equal(t, "Tension 13/8 ce matin, pouls 70", m.Body)
	assert.False(t, m.Edited.IsZero())
	assert.True(t, m.Deleted.IsZero())
	assert.Equal(t, orig.Created.UnixNano(), m.Created.UnixNano())

	// Deleting: not another member's (carol is no owner), but an owner may.
	_, err = del(carol.ID, orig.Seq)
	assert.ErrorIs(t, err, storage.ErrForbidden)
	d, err := del(e.bob.ID, orig.Seq)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), d.Seq)
	assert.Equal(t, storage.ChatDelete, d.Kind)
	_, err = edit(e.bob.ID, orig.Seq, "trop tard")
	assert.ErrorIs(t, err, storage.ErrForbidden)
	_, err = del(e.bob.ID, orig.Seq)
	assert.ErrorIs(t, err, storage.ErrForbidden)
	_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: e.bob.ID, Kind: storage.ChatDelete, Target: orig.Seq, Body: "x"})
	assert.ErrorIs(t, err, storage.ErrInvalid)

	// The listing shows it deleted, no body anywhere (the edits' hidden too).
	ms, err := cs.MessagesAfter(e.ctx, room.ID, carol.ID, 0, 10)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3, 4}, seqs(ms))
	assert.False(t, ms[0].Deleted.IsZero())
	for _, m := range ms {
		assert.Empty(t, m.Body, "seq %d", m.Seq)
	}
	assert.Equal(t, []storage.ChatKind{storage.ChatText, storage.ChatEdit, storage.ChatEdit, storage.ChatDelete},
		[]storage.ChatKind{ms[0].Kind, ms[1].Kind, ms[2].Kind, ms[3].Kind})
	// The history keeps every body, for members.
	h, err := cs.MessageHistory(e.ctx, room.ID, carol.ID, orig.Seq)
	require.NoError(t, err)
	require.Len(t, h, 4)
	assert.Equal(t, storage.ChatRevision{Seq: 1, Kind: storage.ChatText, Sender: e.bob.ID, Body: "Tension 12/8 ce matin", Time: h[0].Time}, h[0])
	assert.Equal(t, storage.ChatRevision{Seq: e1.Seq, Kind: storage.ChatEdit, Sender: e.bob.ID, Body: "Tension 13/8 ce matin", Time: h[1].Time}, h[1])
	assert.Equal(t, storage.ChatRevision{Seq: e2.Seq, Kind: storage.ChatEdit, Sender: e.bob.ID, Body: "Tension 13/8 ce matin, pouls 70", Time: h[2].Time}, h[2])
	assert.Equal(t, storage.ChatRevision{Seq: d.Seq, Kind: storage.ChatDelete, Sender: e.bob.ID, Time: h[3].Time}, h[3])
	_, err = cs.MessageHistory(e.ctx, room.ID, carol.ID, e1.Seq)
	assert.ErrorIs(t, err, storage.ErrNotFound)

	// An owner deletes someone else's message; a reply points at a message.
	c := post(t, e, cs, room.ID, carol.ID, "hors sujet")
	_, err = del(e.alice.ID, c.Seq)
	require.NoError(t, err)
	r, _, err := cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: e.alice.ID, Kind: storage.ChatText, Body: "réponse", ReplyTo: orig.Seq})
	require.NoError(t, err)
	assert.Equal(t, orig.Seq, r.ReplyTo)
	_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: e.alice.ID, Kind: storage.ChatText, Body: "x", ReplyTo: 999})
	assert.ErrorIs(t, err, storage.ErrNotFound)
	// System and document messages are Relais's: nobody edits them.
	sys, dup, err := cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Kind: storage.ChatDocument, ClientID: "doc:1",
		Body: "Lettre de liaison reçue", Attachments: []storage.ChatAttachment{{Kind: storage.AttachDocument, Document: 7, Name: "Lettre"}}})
	require.NoError(t, err)
	assert.False(t, dup)
	assert.Zero(t, sys.Sender)
	_, err = edit(e.alice.ID, sys.Seq, "x")
	assert.ErrorIs(t, err, storage.ErrForbidden)
	got, err := cs.Message(e.ctx, room.ID, e.bob.ID, sys.Seq)
	require.NoError(t, err)
	assert.Equal(t, []storage.ChatAttachment{{Kind: storage.AttachDocument, Document: 7, Name: "Lettre"}}, got.Attachments)
	_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Kind: storage.ChatText, Body: "sans auteur"})
	assert.ErrorIs(t, err, storage.ErrInvalid)

	// MessagesBefore: the latest first page, then older, in seq order.
	page, err := cs.MessagesBefore(e.ctx, room.ID, e.bob.ID, 0, 3)
	require.NoError(t, err)
	assert.Equal(t, []uint64{6, 7, 8}, seqs(page))
	page, err = cs.MessagesBefore(e.ctx, room.ID, e.bob.ID, 6, 3)
	require.NoError(t, err)
	assert.Equal(t, []uint64{3, 4, 5}, seqs(page))
	page, err = cs.MessagesBefore(e.ctx, room.ID, e.bob.ID, 3, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2}, seqs(page))
	_, err = cs.MessagesBefore(e.ctx, room.ID, e.bob.ID, 3, 0)
	assert.ErrorIs(t, err, storage.ErrInvalid)
}

func testChatReadMarkers(t *testing.T, e *env) {
	cs := e.chat(t)
	room := e.teamRoom(t, cs, e.alice.ID, e.bob.ID)
	for i := range 5 {
		post(t, e, cs, room.ID, e.alice.ID, fmt.Sprintf("m%d", i))
	}
	sub := e.s.Subscribe(e.alice.ID)
	defer sub.Close()

	got, err := cs.SetReadMarker(e.ctx, room.ID, e.bob.ID, 3)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), got)
	assert.Equal(t, []storage.Change{{Kind: storage.ChangeChat, Room: room.ID, Seq: 3, Chat: storage.ChatChangeRead, Account: e.bob.ID}},
		chatChanges(t, sub))
	got, err = cs.SetReadMarker(e.ctx, room.ID, e.bob.ID, 2) // backwards: ignored
	require.NoError(t, err)
	assert.Equal(t, uint64(3), got)
	got, err = cs.SetReadMarker(e.ctx, room.ID, e.bob.ID, 3)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), got)
	assert.Empty(t, chatChanges(t, sub))
	got, err = cs.SetReadMarker(e.ctx, room.ID, e.bob.ID, 1000) // capped
	require.NoError(t, err)
	assert.Equal(t, uint64(5), got)

	marks, err := cs.ReadMarkers(e.ctx, room.ID, e.alice.ID)
	require.NoError(t, err)
	require.Len(t, marks, 2)
	assert.Equal(t, e.alice.ID, marks[0].Account)
	assert.Zero(t, marks[0].Seq)
	assert.True(t, marks[0].Updated.IsZero())
	assert.Equal(t, e.bob.ID, marks[1].Account)
	assert.Equal(t, uint64(5), marks[1].Seq)
	assert.False(t, marks[1].Updated.IsZero())
}

func testChatUnread(t *testing.T, e *env) {
	cs := e.chat(t)
	r1 := e.teamRoom(t, cs, e.alice.ID, e.bob.ID)
	r2 := e.teamRoom(t, cs, e.bob.ID, e.alice.ID)
	for i := range 3 {
		post(t, e, cs, r1.ID, e.alice.ID, fmt.Sprintf("a%d", i))
	}
	post(t, e, cs, r1.ID, e.bob.ID, "b") // his own: never unread for him
	x := post(t, e, cs, r2.ID, e.alice.ID, "x")
	post(t, e, cs, r2.ID, e.alice.ID, "y")

	counts, err := cs.UnreadCounts(e.ctx, e.bob.ID)
	require.NoError(t, err)
	assert.Equal(t, map[storage.RoomID]int{r1.ID: 3, r2.ID: 2}, counts)
	counts, err = cs.UnreadCounts(e.ctx, e.alice.ID)
	require.NoError(t, err)
	assert.Equal(t, map[storage.RoomID]int{r1.ID: 1}, counts)

	_, err = cs.SetReadMarker(e.ctx, r1.ID, e.bob.ID, 2)
	require.NoError(t, err)
	// Edits and deletions are not unread messages; a deleted one no longer counts.
	_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: r2.ID, Sender: e.alice.ID, Kind: storage.ChatEdit, Target: x.Seq, Body: "x2"})
	require.NoError(t, err)
	_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: r2.ID, Sender: e.alice.ID, Kind: storage.ChatDelete, Target: x.Seq})
	require.NoError(t, err)
	counts, err = cs.UnreadCounts(e.ctx, e.bob.ID)
	require.NoError(t, err)
	assert.Equal(t, map[storage.RoomID]int{r1.ID: 1, r2.ID: 1}, counts)

	list, err := cs.Rooms(e.ctx, e.bob.ID)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, r2.ID, list[0].ID) // the latest activity
	assert.Equal(t, 1, list[0].Unread)
	assert.Equal(t, uint64(4), list[0].LastSeq)
	assert.Equal(t, r1.ID, list[1].ID)
	assert.Equal(t, 1, list[1].Unread)
	assert.Equal(t, uint64(2), list[1].ReadSeq)
	assert.False(t, list[0].LastActive.Before(list[1].LastActive))

	_, err = cs.SetReadMarker(e.ctx, r1.ID, e.bob.ID, 4)
	require.NoError(t, err)
	counts, err = cs.UnreadCounts(e.ctx, e.bob.ID)
	require.NoError(t, err)
	assert.Equal(t, map[storage.RoomID]int{r2.ID: 1}, counts)
}

func testChatRoomsByINS(t *testing.T, e *env) {
	cs := e.chat(t)
	mk := func(owner storage.AccountID, ins string, members ...storage.AccountID) storage.Room {
		r, err := cs.CreateRoom(e.ctx, storage.NewRoom{Kind: storage.RoomPatient, Name: "Cercle " + ins[:3], PatientINS: ins,
			PatientName: "TESTDEUX Dominique", CreatedBy: owner, Members: members})
		require.NoError(t, err)
		return r
	}
	a1 := mk(e.alice.ID, insA, e.bob.ID)
	mk(e.alice.ID, insA) // bob is not a member
	// As typed, with spaces.
	a3 := mk(e.bob.ID, " "+insA[:1]+" "+insA[1:3]+"\t"+insA[3:]+" ")
	mk(e.bob.ID, insB)
	e.teamRoom(t, cs, e.bob.ID)

	rooms, err := cs.RoomsByINS(e.ctx, e.bob.ID, insA)
	require.NoError(t, err)
	require.Len(t, rooms, 2)
	assert.Equal(t, a1.ID, rooms[0].ID)
	assert.Equal(t, a3.ID, rooms[1].ID)
	assert.Equal(t, insA, rooms[0].PatientINS)
	assert.Equal(t, insA, rooms[1].PatientINS)
	rooms, err = cs.RoomsByINS(e.ctx, e.bob.ID, insA[:5]+" "+insA[5:])
	require.NoError(t, err)
	assert.Len(t, rooms, 2)
	rooms, err = cs.RoomsByINS(e.ctx, e.alice.ID, insB)
	require.NoError(t, err)
	assert.Empty(t, rooms)
	_, err = cs.RoomsByINS(e.ctx, e.alice.ID, " ")
	assert.ErrorIs(t, err, storage.ErrInvalid)
}

func testChatNotifications(t *testing.T, e *env) {
	cs := e.chat(t)
	room := e.teamRoom(t, cs, e.alice.ID, e.bob.ID)
	m := post(t, e, cs, room.ID, e.alice.ID, "@bob peux-tu passer ?")
	delivered := e.append(t, e.bob.ID, "INBOX", textMessage("cr", "lettre de liaison"))
	docs, err := e.s.AddDocuments(e.ctx, []storage.DocumentRecord{docRecord(delivered, insA, "Lettre de sortie", time.Now())})
	require.NoError(t, err)
	sub := e.s.Subscribe(e.bob.ID)
	defer sub.Close()
	aliceSub := e.s.Subscribe(e.alice.ID)
	defer aliceSub.Close()

	n1, err := cs.Notify(e.ctx, storage.Notification{Account: e.bob.ID, Kind: storage.NotificationMention, Room: room.ID, Seq: m.Seq, Text: "Alice vous a mentionné"})
	require.NoError(t, err)
	assert.NotZero(t, n1.ID)
	assert.False(t, n1.Created.IsZero())
	_, err = cs.Notify(e.ctx, storage.Notification{Account: e.alice.ID, Kind: storage.NotificationDocument, Document: docs[0]})
	assert.ErrorIs(t, err, storage.ErrNotFound) // bob's document
	n2, err := cs.Notify(e.ctx, storage.Notification{Account: e.bob.ID, Kind: storage.NotificationDocument, Document: docs[0],
		Text: strings.Repeat("é", storage.MaxNotificationText)})
	require.NoError(t, err)
	assert.Greater(t, n2.ID, n1.ID)
	assert.LessOrEqual(t, len(n2.Text), storage.MaxNotificationText)
	assert.Equal(t, []storage.Change{
		{Kind: storage.ChangeChatNotification, Room: room.ID, Seq: m.Seq, Notification: n1.ID},
		{Kind: storage.ChangeChatNotification, Notification: n2.ID},
	}, chatChanges(t, sub))
	assert.Empty(t, chatChanges(t, aliceSub))

	_, err = cs.Notify(e.ctx, storage.Notification{Account: e.bob.ID, Kind: "other"})
	assert.ErrorIs(t, err, storage.ErrInvalid)
	_, err = cs.Notify(e.ctx, storage.Notification{Account: 999999, Kind: storage.NotificationDirect})
	assert.ErrorIs(t, err, storage.ErrNotFound)

	ns, err := cs.Notifications(e.ctx, e.bob.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, ns, 2)
	assert.Equal(t, n1, ns[0])
	assert.Equal(t, docs[0], ns[1].Document)
	assert.Equal(t, storage.NotificationDocument, ns[1].Kind)
	ns, err = cs.Notifications(e.ctx, e.bob.ID, n1.ID, 10)
	require.NoError(t, err)
	require.Len(t, ns, 1)
	assert.Equal(t, n2.ID, ns[0].ID)
	ns, err = cs.Notifications(e.ctx, e.alice.ID, 0, 10)
	require.NoError(t, err)
	assert.Empty(t, ns)

	unread, err := cs.UnreadNotifications(e.ctx, e.bob.ID)
	require.NoError(t, err)
	assert.Equal(t, 2, unread)
	require.NoError(t, cs.MarkNotificationsRead(e.ctx, e.alice.ID, n2.ID)) // not hers: nothing
	require.NoError(t, cs.MarkNotificationsRead(e.ctx, e.bob.ID, n1.ID))
	unread, err = cs.UnreadNotifications(e.ctx, e.bob.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, unread)
	ns, err = cs.Notifications(e.ctx, e.bob.ID, 0, 10)
	require.NoError(t, err)
	assert.True(t, ns[0].Read)
	assert.False(t, ns[1].Read)
}

func testChatSearch(t *testing.T, e *env) {
	cs := e.chat(t)
	carol := e.account(t, "carol")
	shared := e.teamRoom(t, cs, e.alice.ID, e.bob.ID)
	private := e.teamRoom(t, cs, e.alice.ID, carol.ID)
	m1 := post(t, e, cs, shared.ID, e.alice.ID, "Retour à domicile prévu après l'HÔPITAL de jour")
	post(t, e, cs, private.ID, e.alice.ID, "Hôpital: compte rendu attendu")
	m3 := post(t, e, cs, shared.ID, e.bob.ID, "Pansement refait, cicatrisation correcte")
	m4 := post(t, e, cs, shared.ID, e.bob.ID, "Passage de l'infirmière à l'hopital demain")

	find := func(acct storage.AccountID, q string) []uint64 {
		t.Helper()
		ms, err := cs.SearchMessages(e.ctx, acct, q, 10)
		require.NoError(t, err)
		return seqs(ms)
	}
	// Accents and case folded, words as prefixes, newest first, only the
	// rooms the account belongs to.
	assert.Equal(t, []uint64{m4.Seq, m1.Seq}, find(e.bob.ID, "hopital"))
	assert.Equal(t, []uint64{m4.Seq, m1.Seq}, find(e.bob.ID, "HÔP"))
	assert.Equal(t, []uint64{m1.Seq}, find(e.bob.ID, "hôpital domicile"))
	assert.Equal(t, []uint64{m3.Seq}, find(e.bob.ID, "cicatris"))
	assert.Empty(t, find(e.bob.ID, "compte rendu"))
	assert.Len(t, find(carol.ID, "hopital"), 1)
	assert.Len(t, find(e.alice.ID, "hopital"), 3)
	ms, err := cs.SearchMessages(e.ctx, e.bob.ID, "infirmiere", 10)
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, shared.ID, ms[0].Room)
	assert.Equal(t, "Passage de l'infirmière à l'hopital demain", ms[0].Body)
	// Query syntax is not FTS syntax.
	assert.Empty(t, find(e.bob.ID, `"hopital" OR NEAR(x`))
	_, err = cs.SearchMessages(e.ctx, e.bob.ID, "  ,;  ", 10)
	assert.ErrorIs(t, err, storage.ErrInvalid)

	// Edits replace the searchable text; deletions remove it.
	_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: shared.ID, Sender: e.bob.ID, Kind: storage.ChatEdit, Target: m3.Seq, Body: "Pansement refait, plaie propre"})
	require.NoError(t, err)
	assert.Empty(t, find(e.bob.ID, "cicatrisation"))
	assert.Equal(t, []uint64{m3.Seq}, find(e.bob.ID, "plaie"))
	_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: shared.ID, Sender: e.bob.ID, Kind: storage.ChatDelete, Target: m4.Seq})
	require.NoError(t, err)
	assert.Equal(t, []uint64{m1.Seq}, find(e.bob.ID, "hopital"))

	// Removal takes effect on search too.
	require.NoError(t, cs.RemoveMember(e.ctx, shared.ID, e.alice.ID, e.bob.ID))
	assert.Empty(t, find(e.bob.ID, "hopital"))
}

func testChatDirect(t *testing.T, e *env) {
	cs := e.chat(t)
	d1, err := cs.DirectRoom(e.ctx, e.alice.ID, e.bob.ID)
	require.NoError(t, err)
	assert.Equal(t, storage.RoomDirect, d1.Kind)
	d2, err := cs.DirectRoom(e.ctx, e.bob.ID, e.alice.ID)
	require.NoError(t, err)
	assert.Equal(t, d1.ID, d2.ID)
	members, err := cs.Members(e.ctx, d1.ID, e.bob.ID)
	require.NoError(t, err)
	require.Len(t, members, 2)
	for _, m := range members {
		assert.Equal(t, storage.RoleMember, m.Role, "nobody owns a direct conversation")
	}
	// Neither deletes the other's messages.
	m, _, err := cs.Post(e.ctx, storage.NewChatMessage{Room: d1.ID, Sender: e.alice.ID, ClientID: "d-1", Kind: storage.ChatText, Body: "bonjour"})
	require.NoError(t, err)
	_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: d1.ID, Sender: e.bob.ID, ClientID: "d-2", Kind: storage.ChatDelete, Target: m.Seq})
	assert.ErrorIs(t, err, storage.ErrForbidden)

	// Concurrent first calls still make one room.
	carol := e.account(t, "carol")
	ids := make([]storage.RoomID, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := carol.ID, e.bob.ID
			if i%2 == 1 {
				a, b = b, a
			}
			r, err := cs.DirectRoom(e.ctx, a, b)
			assert.NoError(t, err)
			ids[i] = r.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		assert.Equal(t, ids[0], id)
	}
	assert.NotEqual(t, d1.ID, ids[0])
	list, err := cs.Rooms(e.ctx, e.bob.ID)
	require.NoError(t, err)
	assert.Len(t, list, 2)

	_, err = cs.DirectRoom(e.ctx, e.alice.ID, e.alice.ID)
	assert.ErrorIs(t, err, storage.ErrInvalid)
	_, err = cs.DirectRoom(e.ctx, e.alice.ID, 999999)
	assert.ErrorIs(t, err, storage.ErrNotFound)
}

func testChatLimits(t *testing.T, e *env) {
	cs := e.chat(t)
	room := e.teamRoom(t, cs, e.alice.ID, e.bob.ID)
	p := func(m storage.NewChatMessage) error {
		m.Room, m.Sender = room.ID, e.alice.ID
		if m.Kind == "" {
			m.Kind = storage.ChatText
		}
		_, _, err := cs.Post(e.ctx, m)
		return err
	}
	require.NoError(t, p(storage.NewChatMessage{Body: strings.Repeat("a", storage.MaxChatBody)}))
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: strings.Repeat("a", storage.MaxChatBody+1)}), storage.ErrTooLarge)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "a\xffb"}), storage.ErrInvalid)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "  "}), storage.ErrInvalid)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "x", Kind: "shout"}), storage.ErrInvalid)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "x", Target: 1}), storage.ErrInvalid)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "x", ClientID: strings.Repeat("c", storage.MaxClientID+1)}), storage.ErrTooLarge)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "x", Mentions: make([]storage.AccountID, storage.MaxMentions+1)}), storage.ErrTooLarge)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "x", Mentions: []storage.AccountID{0}}), storage.ErrInvalid)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "x", Attachments: make([]storage.ChatAttachment, storage.MaxAttachments+1)}), storage.ErrTooLarge)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "x", Attachments: []storage.ChatAttachment{{Kind: "file"}}}), storage.ErrInvalid)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "x", Attachments: []storage.ChatAttachment{{Kind: storage.AttachMessage, Mailbox: 1}}}), storage.ErrInvalid)
	require.NoError(t, p(storage.NewChatMessage{Body: "voir le mail", Mentions: []storage.AccountID{e.bob.ID, e.bob.ID},
		Attachments: []storage.ChatAttachment{{Kind: storage.AttachMessage, Mailbox: 3, UID: 9, Name: "CR"}}}))
	ms, err := cs.MessagesBefore(e.ctx, room.ID, e.bob.ID, 0, 1)
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, []storage.AccountID{e.bob.ID}, ms[0].Mentions)
	assert.Equal(t, []storage.ChatAttachment{{Kind: storage.AttachMessage, Mailbox: 3, UID: 9, Name: "CR"}}, ms[0].Attachments)
	// Refused posts used no sequence number.
	assert.Equal(t, uint64(2), ms[0].Seq)
	// Sequence numbers beyond any room's name no event, without an error.
	ms, err = cs.MessagesAfter(e.ctx, room.ID, e.bob.ID, math.MaxUint64, 10)
	require.NoError(t, err)
	assert.Empty(t, ms)
	_, err = cs.Message(e.ctx, room.ID, e.bob.ID, math.MaxUint64)
	assert.ErrorIs(t, err, storage.ErrNotFound)
	_, err = cs.MessageHistory(e.ctx, room.ID, e.bob.ID, math.MaxUint64)
	assert.ErrorIs(t, err, storage.ErrNotFound)
	assert.ErrorIs(t, p(storage.NewChatMessage{Body: "x", ReplyTo: math.MaxUint64}), storage.ErrNotFound)
	ms, err = cs.MessagesBefore(e.ctx, room.ID, e.bob.ID, math.MaxUint64, 10)
	require.NoError(t, err)
	assert.Len(t, ms, 2)
	got, err := cs.SetReadMarker(e.ctx, room.ID, e.bob.ID, math.MaxUint64)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), got)
	_, err = cs.MessagesAfter(e.ctx, room.ID, e.bob.ID, 0, -1)
	assert.ErrorIs(t, err, storage.ErrInvalid)
	_, err = cs.Notifications(e.ctx, e.bob.ID, 0, 0)
	assert.ErrorIs(t, err, storage.ErrInvalid)
}

func testChatAudit(t *testing.T, e *env) {
	cs := e.chat(t)
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	entries := []storage.AuditEntry{
		{Time: t0, Account: e.alice.ID, Action: "chat.send", Object: "room:1", Outcome: storage.AuditOK},
		{Time: t0.Add(time.Minute), Account: e.bob.ID, Action: "chat.read", Object: "room:2", Outcome: storage.AuditDenied, Detail: "not a member"},
		{Time: t0.Add(2 * time.Minute), Account: e.bob.ID, Action: "chat.send", Object: "room:2", Outcome: storage.AuditDenied},
		{Account: 0, Action: "document.open", Object: "document:3", Outcome: storage.AuditError, Detail: strings.Repeat("d", storage.MaxAuditField+10)},
	}
	var ids []storage.AuditID
	for _, en := range entries {
		id, err := cs.AppendAudit(e.ctx, en)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		assert.Greater(t, ids[i], ids[i-1])
	}
	_, err := cs.AppendAudit(e.ctx, storage.AuditEntry{Account: e.alice.ID})
	assert.ErrorIs(t, err, storage.ErrInvalid)

	all, err := cs.Audit(e.ctx, storage.AuditFilter{})
	require.NoError(t, err)
	require.Len(t, all, 4)
	for i, a := range all {
		assert.Equal(t, ids[i], a.ID)
	}
	assert.Equal(t, entries[1].Detail, all[1].Detail)
	assert.Equal(t, t0.UnixNano(), all[0].Time.UnixNano())
	assert.False(t, all[3].Time.IsZero()) // now
	assert.LessOrEqual(t, len(all[3].Detail), storage.MaxAuditField)

	filter := func(f storage.AuditFilter) []storage.AuditID {
		t.Helper()
		got, err := cs.Audit(e.ctx, f)
		require.NoError(t, err)
		out := []storage.AuditID{}
		for _, a := range got {
			out = append(out, a.ID)
		}
		return out
	}
	assert.Equal(t, []storage.AuditID{ids[1], ids[2]}, filter(storage.AuditFilter{Account: e.bob.ID}))
	assert.Equal(t, []storage.AuditID{ids[1], ids[2]}, filter(storage.AuditFilter{Outcome: storage.AuditDenied}))
	assert.Equal(t, []storage.AuditID{ids[0], ids[2]}, filter(storage.AuditFilter{Action: "chat.send"}))
	assert.Equal(t, []storage.AuditID{ids[1]}, filter(storage.AuditFilter{Since: t0.Add(time.Minute), Until: t0.Add(2 * time.Minute)}))
	assert.Equal(t, []storage.AuditID{ids[2], ids[3]}, filter(storage.AuditFilter{AfterID: ids[1]}))
	assert.Equal(t, []storage.AuditID{ids[0], ids[1]}, filter(storage.AuditFilter{Limit: 2}))
}

func testChatPersistence(t *testing.T, e *env) {
	cs := e.chat(t)
	room := e.teamRoom(t, cs, e.alice.ID, e.bob.ID)
	m, _, err := cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: e.alice.ID, ClientID: "p-1", Kind: storage.ChatText, Body: "avant"})
	require.NoError(t, err)
	_, _, err = cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: e.alice.ID, Kind: storage.ChatEdit, Target: m.Seq, Body: "avant, corrigé"})
	require.NoError(t, err)
	_, err = cs.SetReadMarker(e.ctx, room.ID, e.bob.ID, 2)
	require.NoError(t, err)
	n, err := cs.Notify(e.ctx, storage.Notification{Account: e.bob.ID, Kind: storage.NotificationMention, Room: room.ID, Seq: m.Seq})
	require.NoError(t, err)
	d, err := cs.DirectRoom(e.ctx, e.alice.ID, e.bob.ID)
	require.NoError(t, err)
	aid, err := cs.AppendAudit(e.ctx, storage.AuditEntry{Account: e.bob.ID, Action: "chat.read", Outcome: storage.AuditOK})
	require.NoError(t, err)

	e.reopen(t)
	cs = e.chat(t)
	r, err := cs.Room(e.ctx, e.bob.ID, room.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), r.LastSeq)
	got, err := cs.Message(e.ctx, room.ID, e.bob.ID, m.Seq)
	require.NoError(t, err)
	assert.Equal(t, "avant, corrigé", got.Body)
	h, err := cs.MessageHistory(e.ctx, room.ID, e.bob.ID, m.Seq)
	require.NoError(t, err)
	require.Len(t, h, 2)
	assert.Equal(t, "avant", h[0].Body)
	// The sequence carries on; the client id still deduplicates.
	m3 := post(t, e, cs, room.ID, e.bob.ID, "après")
	assert.Equal(t, uint64(3), m3.Seq)
	again, dup, err := cs.Post(e.ctx, storage.NewChatMessage{Room: room.ID, Sender: e.alice.ID, ClientID: "p-1", Kind: storage.ChatText, Body: "avant"})
	require.NoError(t, err)
	assert.True(t, dup)
	assert.Equal(t, m.Seq, again.Seq)
	marks, err := cs.ReadMarkers(e.ctx, room.ID, e.alice.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), marks[1].Seq)
	ns, err := cs.Notifications(e.ctx, e.bob.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, ns, 1)
	assert.Equal(t, n.ID, ns[0].ID)
	d2, err := cs.DirectRoom(e.ctx, e.bob.ID, e.alice.ID)
	require.NoError(t, err)
	assert.Equal(t, d.ID, d2.ID)
	audit, err := cs.Audit(e.ctx, storage.AuditFilter{})
	require.NoError(t, err)
	require.Len(t, audit, 1)
	assert.Equal(t, aid, audit[0].ID)
	ms, err := cs.SearchMessages(e.ctx, e.bob.ID, "corrige", 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{m.Seq}, seqs(ms))
}
