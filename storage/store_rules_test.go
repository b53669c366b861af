package storage

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The helpers both stores use to encode and decode columns and to plan
// their writes; the stores' own tests and the conformance suite check them
// against the real databases.

func TestEncodePostRoundTrip(t *testing.T) {
	m := NewChatMessage{Room: 3, Sender: 7, Kind: ChatText, Body: "Bonjour l'Hôpital", Mentions: []AccountID{8, 9},
		Attachments: []ChatAttachment{{Kind: AttachDocument, Document: 4, Name: "CR"}}}
	mentions, attachments, folded, err := EncodePost(&m)
	require.NoError(t, err)
	assert.Equal(t, "[8,9]", mentions)
	assert.Equal(t, "bonjour l hopital", folded)

	r := ChatMessageRow{Room: 3, Seq: 12, Sender: 7, Kind: string(ChatText), Body: m.Body, Mentions: mentions,
		Attachments: attachments, Created: 1_700_000_000_000_000_001}
	got, err := r.Message()
	require.NoError(t, err)
	posted, change := PostedMessage(&m, 12, 1_700_000_000_000_000_001)
	assert.Equal(t, posted, got)
	assert.Equal(t, Change{Kind: ChangeChat, Room: 3, Seq: 12, Chat: ChatChangeEvent, Account: 7}, change)
	assert.True(t, got.Edited.IsZero() && got.Deleted.IsZero())

	// A deletion has no searchable text; nothing to encode gives "".
	del := NewChatMessage{Room: 3, Sender: 7, Kind: ChatDelete, Target: 12}
	mentions, attachments, folded, err = EncodePost(&del)
	require.NoError(t, err)
	assert.Equal(t, [3]string{}, [3]string{mentions, attachments, folded})
}

func TestChatMessageRowHidesBodies(t *testing.T) {
	for _, c := range []struct {
		name     string
		r        ChatMessageRow
		wantBody string
	}{
		{"live message", ChatMessageRow{Kind: "text", Body: "b"}, "b"},
		{"deleted message", ChatMessageRow{Kind: "text", Body: "b", Deleted: 5}, ""},
		{"edit of a deleted message", ChatMessageRow{Kind: "edit", Body: "b", Target: 1, TargetDeleted: 5}, ""},
		{"edit of a live message", ChatMessageRow{Kind: "edit", Body: "b", Target: 1}, "b"},
		{"reply to a deleted message", ChatMessageRow{Kind: "text", Body: "b", ReplyTo: 1, TargetDeleted: 5}, "b"},
	} {
		m, err := c.r.Message()
		require.NoError(t, err, c.name)
		assert.Equal(t, c.wantBody, m.Body, c.name)
	}
	_, err := (&ChatMessageRow{Kind: "text", Mentions: "[1,"}).Message()
	assert.Error(t, err)
	_, err = (&ChatMessageRow{Kind: "text", Attachments: "{"}).Message()
	assert.Error(t, err)
}

func TestPostTarget(t *testing.T) {
	targets := map[uint64]ChatTarget{
		1: {ID: 10, Sender: 7, Kind: ChatText},
		2: {ID: 20, Sender: 8, Kind: ChatText},
		3: {ID: 30, Sender: 7, Kind: ChatText, Deleted: true},
		4: {ID: 40, Sender: 0, Kind: ChatSystem},
	}
	lookup := func(seq uint64) (ChatTarget, error) {
		if t, ok := targets[seq]; ok {
			return t, nil
		}
		return ChatTarget{}, ErrNotFound
	}
	for _, c := range []struct {
		name string
		m    NewChatMessage
		role RoomRole
		want error
		id   int64
	}{
		{"plain message", NewChatMessage{Kind: ChatText, Sender: 7}, RoleMember, nil, 0},
		{"reply", NewChatMessage{Kind: ChatText, Sender: 7, ReplyTo: 2}, RoleMember, nil, 0},
		{"reply to nothing", NewChatMessage{Kind: ChatText, Sender: 7, ReplyTo: 9}, RoleMember, ErrNotFound, 0},
		{"own edit", NewChatMessage{Kind: ChatEdit, Sender: 7, Target: 1}, RoleMember, nil, 10},
		{"edit of another's", NewChatMessage{Kind: ChatEdit, Sender: 7, Target: 2}, RoleOwner, ErrForbidden, 0},
		{"edit of a system message", NewChatMessage{Kind: ChatEdit, Sender: 0, Target: 4}, RoleMember, ErrForbidden, 0},
		{"edit of a deleted message", NewChatMessage{Kind: ChatEdit, Sender: 7, Target: 3}, RoleMember, ErrForbidden, 0},
		{"member deletes another's", NewChatMessage{Kind: ChatDelete, Sender: 7, Target: 2}, RoleMember, ErrForbidden, 0},
		{"owner deletes another's", NewChatMessage{Kind: ChatDelete, Sender: 7, Target: 2}, RoleOwner, nil, 20},
	} {
		got, err := PostTarget(&c.m, c.role, lookup)
		if c.want != nil {
			assert.ErrorIs(t, err, c.want, c.name)
			continue
		}
		require.NoError(t, err, c.name)
		assert.Equal(t, c.id, got.ID, c.name)
	}
	_, err := NewChatTarget(1, 5, 50, 7, string(ChatEdit), 0)
	assert.ErrorIs(t, err, ErrNotFound, "an edit is no target")
	got, err := NewChatTarget(1, 5, 50, 7, string(ChatText), 99)
	require.NoError(t, err)
	assert.Equal(t, ChatTarget{ID: 50, Sender: 7, Kind: ChatText, Deleted: true}, got)
}

func TestCheckChatSearch(t *testing.T) {
	words, limit, err := CheckChatSearch("Compte-rendu OPÉRATOIRE", MaxChatPage+5)
	require.NoError(t, err)
	assert.Equal(t, []string{"compte", "rendu", "operatoire"}, words)
	assert.Equal(t, MaxChatPage, limit)
	_, _, err = CheckChatSearch(" ;, ", 10)
	assert.ErrorIs(t, err, ErrInvalid)
	_, _, err = CheckChatSearch("a", 0)
	assert.ErrorIs(t, err, ErrInvalid)
	_, _, err = CheckChatSearch(string(make([]byte, MaxChatBody+1)), 10)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Equal(t, uint64(MaxChatSeq), ChatBefore(0))
	assert.Equal(t, uint64(MaxChatSeq), ChatBefore(1<<63))
	assert.Equal(t, uint64(9), ChatBefore(9))
}

func TestMemberRules(t *testing.T) {
	assert.ErrorIs(t, CheckNewMember("admin", 3), ErrInvalid)
	assert.ErrorIs(t, CheckNewMember(RoleMember, 0), ErrInvalid)
	assert.NoError(t, CheckNewMember(RoleOwner, 3))
	assert.ErrorIs(t, CheckMembersChange(Room{ID: 1, Kind: RoomDirect}), ErrForbidden)
	assert.NoError(t, CheckMembersChange(Room{ID: 1, Kind: RoomTeam}))
	assert.ErrorIs(t, CheckRoomSize(1, MaxRoomMembers), ErrTooLarge)
	assert.NoError(t, CheckRoomSize(1, MaxRoomMembers-1))
}

func TestNotificationRowAndRevision(t *testing.T) {
	r := NotificationRow{ID: 4, Kind: string(NotificationDocument), Room: 0, Document: 9, Text: "CR", Created: 1e18, Read: true}
	assert.Equal(t, Notification{ID: 4, Account: 2, Kind: NotificationDocument, Document: 9, Text: "CR",
		Created: time.Unix(0, 1e18).UTC(), Read: true}, r.Notification(2))
	assert.Equal(t, ChatRevision{Seq: 3, Kind: ChatEdit, Sender: 5, Body: "b", Time: time.Unix(0, 7).UTC()},
		NewChatRevision(3, "edit", 5, "b", 7))
}

func TestFlagPlan(t *testing.T) {
	p := FlagPlan{Op: FlagsAdd, Flags: []string{FlagSeen}, UnchangedSince: 10}
	p.Add(1, 5, "")           // changes
	p.Add(2, 5, `\Seen`)      // already there
	p.Add(3, 11, "")          // modified since
	p.Add(4, 10, `\Answered`) // changes, keeps its flag
	updates, changes := p.Done(6, 12)
	assert.Equal(t, []uint32{3}, p.Failed)
	assert.Equal(t, []FlagUpdate{{UID: 1, ModSeq: 12, Flags: []string{FlagSeen}},
		{UID: 4, ModSeq: 12, Flags: []string{FlagAnswered, FlagSeen}}}, updates)
	require.Len(t, changes, 2)
	assert.Equal(t, Change{Kind: ChangeFlags, Mailbox: 6, UID: 4, ModSeq: 12, Flags: []string{FlagAnswered, FlagSeen}}, changes[1])

	_, err := CheckFlagOp(FlagOp(9), nil)
	assert.ErrorIs(t, err, ErrInvalid)
	flags, err := CheckFlagOp(FlagsSet, []string{`\seen`, "$Label", `\Recent`})
	require.NoError(t, err)
	assert.Equal(t, []string{FlagSeen, "$Label"}, flags)
}

func TestRenameRules(t *testing.T) {
	for _, c := range []struct {
		from, to         string
		wantFrom, wantTo string
		want             error
	}{
		{"a", "b/c", "a", "b/c", nil},
		{"inbox", "Old", "INBOX", "Old", nil},
		{"a", "INBOX", "", "", ErrExists},
		{"a", "a/b", "", "", ErrInvalid},
		{"", "b", "", "", ErrNotFound},
		{"a", "b//c", "", "", ErrInvalid},
	} {
		from, to, err := CheckRename(c.from, c.to)
		if c.want != nil {
			assert.ErrorIs(t, err, c.want, c.from+" -> "+c.to)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, [2]string{c.wantFrom, c.wantTo}, [2]string{from, to})
	}
	assert.Equal(t, "a/", ChildPrefix("a"))
	r := RenameChild("a", "b/c", 4, "a/x/y")
	assert.Equal(t, MailboxRename{ID: 4, Old: "a/x/y", New: "b/c/x/y"}, r)
	assert.Equal(t, Change{Kind: ChangeMailboxRenamed, Mailbox: 4, Name: "b/c/x/y"}, r.Change())

	taken := map[string]bool{"b/c/x": true}
	exists := func(name string) (bool, error) { return taken[name], nil }
	renames := []MailboxRename{{1, "a", "b/c"}, {2, "a/x", "b/c/x"}}
	assert.ErrorIs(t, CheckRenameTargets(renames, exists), ErrExists)
	assert.NoError(t, CheckRenameTargets(renames[:1], exists))
	boom := errors.New("read failed")
	assert.ErrorIs(t, CheckRenameTargets(renames, func(string) (bool, error) { return false, boom }), boom)
}

func TestPrepareLocal(t *testing.T) {
	raw := []byte("From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n")
	ld, err := PrepareLocal(raw, time.Time{}, []Recipient{{Account: 3, Mailbox: "inbox", Flags: []string{`\seen`}}}, 1<<20, discard)
	require.NoError(t, err)
	assert.Equal(t, []LocalTarget{{Mailbox: "INBOX", Flags: []string{FlagSeen}}}, ld.Targets)
	d, change := ld.Stored(0, Mailbox{ID: 5, UIDValidity: 77}, 9, 10)
	assert.Equal(t, Delivered{Account: 3, Mailbox: 5, UIDValidity: 77, UID: 9}, d)
	assert.Equal(t, Change{Kind: ChangeMessageAdded, Mailbox: 5, UID: 9, ModSeq: 10, Flags: []string{FlagSeen}}, change)

	_, err = PrepareLocal(raw, time.Time{}, nil, 1<<20, discard)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = PrepareLocal(raw, time.Time{}, []Recipient{{Account: 3, Mailbox: "a//b"}}, 1<<20, discard)
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = PrepareLocal(raw, time.Time{}, []Recipient{{Account: 3, Mailbox: "INBOX", Flags: []string{`\Bogus`}}}, 1<<20, discard)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = PrepareLocal(raw, time.Time{}, []Recipient{{Account: 3, Mailbox: "INBOX"}}, 8, discard)
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestQueueRows(t *testing.T) {
	e := QueueEntryRow{ID: 2, Account: 3, Sender: "a@example.org", Size: 10, Created: 5}
	entries := []QueueEntry{{ID: 1}, e.Entry(), {ID: 4}}
	assert.True(t, entries[1].Expires.IsZero() && entries[1].LeaseUntil.IsZero())
	assert.Equal(t, time.Unix(0, 5).UTC(), entries[1].Created)

	pending := QueueRecipientRow{Entry: 2, Address: "b@example.net", Notify: "SUCCESS,DELAY", State: string(QueuePending),
		NextAttempt: 9, LastAttempt: 8, Attempts: 1, DelayNotified: true}
	done := QueueRecipientRow{Entry: 2, Address: "c@example.net", State: string(QueueDelivered), NextAttempt: 9}
	AddQueueRecipient(entries, 2, pending.Recipient())
	AddQueueRecipient(entries, 2, done.Recipient())
	AddQueueRecipient(entries, 3, done.Recipient()) // no such entry: left out
	require.Len(t, entries[1].Recipients, 2)
	assert.Empty(t, entries[0].Recipients)
	assert.Empty(t, entries[2].Recipients)
	r := entries[1].Recipients[0]
	assert.Equal(t, []string{"SUCCESS", "DELAY"}, r.Notify)
	assert.Equal(t, time.Unix(0, 9).UTC(), r.NextAttempt)
	assert.True(t, r.DelayNotified)
	assert.True(t, entries[1].Recipients[1].NextAttempt.IsZero(), "only a pending recipient has a next attempt")

	at := time.Unix(100, 0)
	assert.Equal(t, at.UnixNano(), AttemptNextNanos(AttemptResult{State: QueuePending, NextAttempt: at}))
	assert.Zero(t, AttemptNextNanos(AttemptResult{State: QueueFailed, NextAttempt: at}))
}

func TestWalkQueue(t *testing.T) {
	all := []QueueEntry{{ID: 1}, {ID: 2}, {ID: 5}, {ID: 6}, {ID: 9}}
	read := func(after QueueID) ([]QueueEntry, error) {
		var out []QueueEntry
		for _, e := range all {
			if e.ID > after && len(out) < 2 {
				out = append(out, e)
			}
		}
		return out, nil
	}
	var seen []QueueID
	require.NoError(t, WalkQueue(read, func(e QueueEntry) error { seen = append(seen, e.ID); return nil }))
	assert.Equal(t, []QueueID{1, 2, 5, 6, 9}, seen)

	stop := errors.New("stop")
	seen = nil
	err := WalkQueue(read, func(e QueueEntry) error {
		seen = append(seen, e.ID)
		if e.ID == 5 {
			return stop
		}
		return nil
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, []QueueID{1, 2, 5}, seen)
}

func TestPrepareSubmission(t *testing.T) {
	raw := []byte("From: a@example.org\r\n\r\nx\r\n")
	sub := Submission{Raw: raw, Account: 3, MessageID: "m@example.org", LocalAddresses: []string{"b@Example.org"},
		Local:    []Recipient{{Account: 4, Mailbox: "INBOX"}},
		Outbound: &Outbound{Sender: "a@example.org", Raw: raw, Recipients: []OutboundRecipient{{Address: "c@example.net"}}}}
	now := time.Unix(1000, 0)
	p, err := PrepareSubmission(sub, 1<<20, now, discard)
	require.NoError(t, err)
	require.NotNil(t, p.Local)
	require.NotNil(t, p.Outbound)
	assert.True(t, p.WithStatus)
	assert.Equal(t, []DeliveryStatus{
		{MessageID: "m@example.org", Recipient: "b@example.org", State: StatusDelivered, Updated: now},
		{MessageID: "m@example.org", Recipient: "c@example.net", State: StatusQueued, Updated: now},
	}, p.Statuses)

	_, err = PrepareSubmission(Submission{Raw: raw}, 1<<20, now, discard)
	assert.ErrorIs(t, err, ErrInvalid)
	sub.Local = []Recipient{{Account: 4, Mailbox: "a//b"}}
	_, err = PrepareSubmission(sub, 1<<20, now, discard)
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestDocumentRows(t *testing.T) {
	r := DocumentRow{ID: 1, Account: 2, Mailbox: 3, UID: 4, Title: "CR", Valid: true, Received: 5, Metadata: []byte("{}")}
	assert.Equal(t, DocumentRecord{ID: 1, Account: 2, Mailbox: 3, UID: 4, Title: "CR", Valid: true,
		Received: time.Unix(0, 5).UTC(), Metadata: []byte("{}")}, r.Record())
	tr := APITokenRow{ID: 1, Account: 2, Address: "a@example.org", Hash: "h", Created: 5, Revoked: true}
	tok := tr.Token()
	assert.Equal(t, APIToken{ID: 1, Account: 2, Address: "a@example.org", Hash: "h", Created: time.Unix(0, 5).UTC(), Revoked: true}, tok)

	now := time.Unix(100, 0)
	TokenUsed(&tok, now)
	assert.Equal(t, now.UTC(), tok.LastUsed)
	TokenUsed(&tok, now.Add(-time.Hour))
	assert.Equal(t, now.UTC(), tok.LastUsed, "LastUsed only moves forward")

	assert.ErrorIs(t, CheckPatientQuery("", 5), ErrInvalid)
	assert.ErrorIs(t, CheckPatientQuery("1234", 0), ErrInvalid)
	assert.NoError(t, CheckPatientQuery("1234", 1))

	d := SentDocument{ID: "x"}
	require.NoError(t, DecodeSentDocument(&d, `["a@example.org"]`, 7))
	assert.Equal(t, SentDocument{ID: "x", Recipients: []string{"a@example.org"}, Created: time.Unix(0, 7).UTC()}, d)
	assert.Error(t, DecodeSentDocument(&d, `[`, 7))
}

var discard = slog.New(slog.DiscardHandler)

func TestPublishedChanges(t *testing.T) {
	for _, c := range []struct {
		seq, cur, last uint64
		to             uint64
		move           bool
	}{
		{seq: 5, cur: 2, last: 9, to: 5, move: true},
		{seq: 50, cur: 2, last: 9, to: 9, move: true}, // never past the last event
		{seq: 2, cur: 2, last: 9, to: 2, move: false},
		{seq: 1, cur: 2, last: 9, to: 1, move: false}, // never backwards
		{seq: 50, cur: 9, last: 9, to: 9, move: false},
	} {
		to, move := ReadMarkerTo(c.seq, c.cur, c.last)
		assert.Equal(t, [2]any{c.to, c.move}, [2]any{to, move}, "%+v", c)
	}
	assert.Equal(t, Change{Kind: ChangeChat, Room: 1, Seq: 2, Chat: ChatChangeRead, Account: 3}, ReadChange(1, 2, 3))
	assert.Equal(t, Change{Kind: ChangeChat, Room: 1, Seq: 2, Chat: ChatChangeMember, Account: 3}, MemberChange(1, 2, 3))
	assert.Equal(t, Change{Kind: ChangeChatNotification, Room: 1, Seq: 2, Notification: 4},
		NotificationChange(Notification{ID: 4, Account: 3, Room: 1, Seq: 2}))
	assert.Equal(t, Change{Kind: ChangeDocumentReceived, Mailbox: 5, UID: 6, Document: 7},
		DocumentChange(DocumentRecord{Account: 3, Mailbox: 5, UID: 6}, 7))
}
