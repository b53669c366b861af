package main

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"
)

// The rules the crash checker applies to what it read back; the
// end-to-end run (bench/crash.sh) exercises the reading against a real
// server.

func TestCheckUIDs(t *testing.T) {
	prev := &mailboxState{uidValidity: 7, uidNext: 4, byUID: map[uint32]string{1: "a", 2: "b", 3: "c"}}
	msgs := func(uids ...any) []fetchedMessage { // uid, mid pairs in sequence order
		var out []fetchedMessage
		for i := 0; i < len(uids); i += 2 {
			out = append(out, fetchedMessage{seq: uint32(i/2 + 1), uid: uint32(uids[i].(int)), mid: uids[i+1].(string)})
		}
		return out
	}
	for _, tc := range []struct {
		name             string
		prev             *mailboxState
		uidValidity, uid uint32 // uid: UIDNEXT now
		msgs             []fetchedMessage
		want             []string // one problem each, by prefix
	}{
		{"first verification", nil, 7, 4, msgs(1, "a", 2, "b", 3, "c"), nil},
		{"new messages above the old UIDNEXT", prev, 7, 6, msgs(1, "a", 2, "b", 3, "c", 4, "d", 5, "e"), nil},
		{"empty mailbox, nothing seen before", &mailboxState{uidValidity: 7, uidNext: 1}, 7, 1, nil, nil},
		{"UID reused for another message", prev, 7, 4, msgs(1, "a", 2, "b", 3, "x"), []string{"UID REUSED"}},
		{"new message below the old UIDNEXT", &mailboxState{uidValidity: 7, uidNext: 5, byUID: map[uint32]string{1: "a", 2: "b", 3: "c"}},
			7, 5, msgs(1, "a", 2, "b", 3, "c", 4, "d"), []string{"UID WENT BACK"}},
		{"message gone", prev, 7, 4, msgs(1, "a", 3, "c"), []string{"VANISHED"}},
		{"UIDVALIDITY changed", prev, 8, 4, msgs(1, "a", 2, "b", 3, "c"), []string{"UIDVALIDITY CHANGED"}},
		{"UIDNEXT lower", prev, 7, 3, msgs(1, "a", 2, "b"), []string{"UIDNEXT WENT BACK", "VANISHED"}},
		{"UID not below UIDNEXT", nil, 7, 3, msgs(1, "a", 3, "c"), []string{"UIDNEXT:"}},
		{"UIDs out of sequence order", nil, 7, 4, msgs(2, "b", 1, "a"), []string{"UID ORDER"}},
		{"UID twice", nil, 7, 4, msgs(1, "a", 1, "b"), []string{"UID ORDER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v verdict
			mv := &mailboxView{uidValidity: tc.uidValidity, uidNext: tc.uid, byMID: map[string][]uint32{}, flags: map[uint32][]imap.Flag{}}
			next := checkUIDs("u@x", tc.prev, mv, tc.msgs, &v)
			require.Equal(t, len(tc.want), v.violations, "problems: %q", v.problems)
			require.Len(t, v.problems, len(tc.want))
			for _, w := range tc.want {
				require.True(t, hasPrefix(v.problems, w), "want a %q problem in %q", w, v.problems)
			}
			require.Equal(t, tc.uidValidity, next.uidValidity)
			require.Equal(t, tc.uid, next.uidNext)
			require.Len(t, next.byUID, len(mv.flags))
		})
	}
}

func hasPrefix(problems []string, prefix string) bool {
	for _, p := range problems {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

func TestCheck(t *testing.T) {
	const u1, u2 = "user1@x", "user2@x"
	snap := snapshot{
		views: map[string]*mailboxView{
			u1: {uidValidity: 7, uidNext: 4, byMID: map[string][]uint32{"m1": {1}, "dup": {2, 3}},
				flags: map[uint32][]imap.Flag{1: {imap.FlagFlagged}}},
			u2: {uidValidity: 9, uidNext: 2, byMID: map[string][]uint32{"m1": {1}}, flags: map[uint32][]imap.Flag{1: nil}},
		},
		chat: map[int64]chatMessage{5: {Seq: 5, Body: "hello", SenderAddress: u1}},
	}
	for _, tc := range []struct {
		name      string
		rec       record
		lost      int
		violation int
	}{
		{"delivered to both", record{Kind: kindSubmit, To: []string{u1, u2}, MessageID: "m1"}, 0, 0},
		{"twice at one recipient, missing at the other", record{Kind: kindSubmit, To: []string{u1, u2}, MessageID: "dup"}, 1, 1},
		{"not delivered", record{Kind: kindSubmit, To: []string{u2}, MessageID: "m2"}, 1, 0},
		{"unknown recipient", record{Kind: kindSubmit, To: []string{"nobody@x"}, MessageID: "m1"}, 1, 0},
		{"appended at its UID", record{Kind: kindAppend, User: u1, MessageID: "m1", UID: 1, UIDValidity: 7}, 0, 0},
		{"appended, now at another UID", record{Kind: kindAppend, User: u1, MessageID: "m1", UID: 2, UIDValidity: 7}, 0, 1},
		{"appended under another UIDVALIDITY", record{Kind: kindAppend, User: u1, MessageID: "m1", UID: 1, UIDValidity: 6}, 0, 1},
		{"append lost", record{Kind: kindAppend, User: u1, MessageID: "m9", UID: 3, UIDValidity: 7}, 1, 0},
		{"flag kept", record{Kind: kindFlag, User: u1, UID: 1, Flag: string(imap.FlagFlagged)}, 0, 0},
		{"flag lost", record{Kind: kindFlag, User: u1, UID: 1, Flag: string(imap.FlagSeen)}, 1, 0},
		{"flag on a message gone", record{Kind: kindFlag, User: u2, UID: 3, Flag: string(imap.FlagSeen)}, 1, 0},
		{"chat message kept", record{Kind: kindChat, User: u1, Seq: 5, Body: "hello"}, 0, 0},
		{"chat seq holds another body", record{Kind: kindChat, User: u1, Seq: 5, Body: "other"}, 1, 0},
		{"chat seq holds another sender", record{Kind: kindChat, User: u2, Seq: 5, Body: "hello"}, 1, 0},
		{"chat seq gone", record{Kind: kindChat, User: u1, Seq: 6, Body: "hello"}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v verdict
			check(snap, []record{tc.rec}, &v)
			require.Equal(t, tc.lost, v.lost(), "lost; problems %q", v.problems)
			require.Equal(t, tc.violation, v.violations, "violations; problems %q", v.problems)
		})
	}
}

func TestCanaries(t *testing.T) {
	users := []user{{addr: "user1@x"}}
	ck := &checker{t: &target{room: 3}, users: users}
	snap := snapshot{
		views: map[string]*mailboxView{"user1@x": {uidValidity: 7, uidNext: 2, byMID: map[string][]uint32{"m1": {1}},
			flags: map[uint32][]imap.Flag{1: {imap.FlagFlagged}}}},
		chat: map[int64]chatMessage{1: {Seq: 1, Body: "hello", SenderAddress: "user1@x"}},
	}
	require.NoError(t, ck.checkCanaries(snap))
	require.Error(t, ck.checkCanaries(snapshot{views: snap.views}), "no chat read: the canaries cannot be checked")
}

func TestJournalRoundTrip(t *testing.T) {
	path := t.TempDir() + "/journal.jsonl"
	j, err := openJournal(path)
	require.NoError(t, err)
	recs := []record{
		{Kind: kindSubmit, Round: 1, User: "a@x", To: []string{"a@x", "b@x"}, MessageID: "m1@x"},
		{Kind: kindAppend, Round: 1, User: "a@x", Mailbox: "INBOX", MessageID: "m2@x", UID: 4, UIDValidity: 9},
		{Kind: kindChat, Round: 2, User: "a@x", Room: 3, Seq: 17, ClientID: "r2-c1-1", Body: "crash x"},
	}
	for _, r := range recs {
		require.NoError(t, j.add(r))
	}
	require.NoError(t, j.close())
	got, err := readJournal(path)
	require.NoError(t, err)
	require.Equal(t, recs, got)
}
