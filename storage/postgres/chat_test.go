package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/postgres/pgtest"
)

// What the conformance suite cannot see: two nodes (two Stores on one
// schema) posting into one room, the feed across nodes, the append-only
// audit table, and the search index's edges.

// twoNodes opens two Stores on one fresh schema and creates n accounts.
func twoNodes(t *testing.T, n int) (a, b *Store, accts []storage.AccountID) {
	t.Helper()
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, "chat")
	ctx := context.Background()
	open := func() *Store {
		s, err := Open(ctx, url, Options{Logger: quietLogger(), Schema: schema, MaxConns: 6})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b = open(), open()
	_, err := a.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	for i := range n {
		acct, err := a.CreateAccount(ctx, fmt.Sprintf("soignant%d@example.org", i), fmt.Sprintf("Soignant %d", i), "hash")
		require.NoError(t, err)
		accts = append(accts, acct.ID)
	}
	return a, b, accts
}

// waitChat collects the ChangeChat events of room from sub until it holds
// want of them or the deadline passes.
func waitChat(t *testing.T, sub *storage.Subscription, room storage.RoomID, want int) []uint64 {
	t.Helper()
	var got []uint64
	deadline := time.After(20 * time.Second)
	for len(got) < want {
		select {
		case <-sub.Ready():
			changes, overflowed := sub.Next()
			require.False(t, overflowed)
			for _, c := range changes {
				if c.Kind == storage.ChangeChat && c.Chat == storage.ChatChangeEvent && c.Room == room {
					got = append(got, c.Seq)
				}
			}
		case <-deadline:
			t.Fatalf("feed: %d of %d events after 20 s", len(got), want)
		}
	}
	return got
}

// TestChatSeqTwoNodes: 4 goroutines on each of two nodes post 50 messages
// each into one room: the room's events are 1..400, no gap, no duplicate,
// each sender's in the order it sent them; the subscription opened on node
// A sees every event, those posted through node B included.
func TestChatSeqTwoNodes(t *testing.T) {
	const perNode, each = 4, 50
	a, b, accts := twoNodes(t, 2*perNode)
	ctx := context.Background()
	room, err := a.CreateRoom(ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "Équipe", CreatedBy: accts[0], Members: accts[1:]})
	require.NoError(t, err)
	sub := a.Subscribe(accts[0])
	defer sub.Close()

	got := make([][]uint64, len(accts))
	var wg sync.WaitGroup
	errs := make(chan error, len(accts))
	for i, acct := range accts {
		node := a
		if i%2 == 1 {
			node = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				m, dup, err := node.Post(ctx, storage.NewChatMessage{Room: room.ID, Sender: acct, Kind: storage.ChatText,
					ClientID: fmt.Sprintf("c%d", j), Body: fmt.Sprintf("message %d de %d", j, i)})
				if err == nil && dup {
					err = errors.New("first post reported as a duplicate")
				}
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
	const n = 2 * perNode * each
	seen := map[uint64]bool{}
	for i := range got {
		require.Len(t, got[i], each)
		for j := 1; j < each; j++ {
			assert.Less(t, got[i][j-1], got[i][j], "sender %d out of order", i)
		}
		for _, s := range got[i] {
			assert.False(t, seen[s], "seq %d twice", s)
			seen[s] = true
		}
	}
	for s := uint64(1); s <= n; s++ {
		assert.True(t, seen[s], "seq %d missing", s)
	}
	r, err := b.Room(ctx, accts[1], room.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(n), r.LastSeq)
	page, err := b.MessagesAfter(ctx, room.ID, accts[1], 0, storage.MaxChatPage)
	require.NoError(t, err)
	require.Len(t, page, n)
	for i, m := range page {
		require.Equal(t, uint64(i+1), m.Seq)
	}

	// Node A's subscriber saw all 400, once each: its own node's at
	// commit, node B's through NOTIFY.
	feed := waitChat(t, sub, room.ID, n)
	fromFeed := map[uint64]bool{}
	for _, s := range feed {
		assert.False(t, fromFeed[s], "seq %d twice on the feed", s)
		fromFeed[s] = true
	}
	assert.Len(t, fromFeed, n)

	// A retry through the other node is still a duplicate.
	m, dup, err := a.Post(ctx, storage.NewChatMessage{Room: room.ID, Sender: accts[1], Kind: storage.ChatText, ClientID: "c0", Body: "x"})
	require.NoError(t, err)
	assert.True(t, dup)
	assert.Equal(t, got[1][0], m.Seq)
}

// TestChatFeedAcrossNodes: a message posted through node B reaches a
// subscription opened on node A as a ChangeChat, and so does a read marker.
func TestChatFeedAcrossNodes(t *testing.T) {
	a, b, accts := twoNodes(t, 2)
	ctx := context.Background()
	room, err := a.CreateRoom(ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "Équipe", CreatedBy: accts[0], Members: accts[1:]})
	require.NoError(t, err)
	sub := a.Subscribe(accts[0])
	defer sub.Close()

	m, _, err := b.Post(ctx, storage.NewChatMessage{Room: room.ID, Sender: accts[1], Kind: storage.ChatText, Body: "bonjour"})
	require.NoError(t, err)
	assert.Equal(t, []uint64{m.Seq}, waitChat(t, sub, room.ID, 1))
	_, err = b.SetReadMarker(ctx, room.ID, accts[1], m.Seq)
	require.NoError(t, err)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case <-sub.Ready():
		case <-deadline:
			t.Fatal("no read marker change from node B")
		}
		changes, _ := sub.Next()
		if len(changes) > 0 {
			assert.Equal(t, []storage.Change{{Kind: storage.ChangeChat, Room: room.ID, Seq: m.Seq, Chat: storage.ChatChangeRead,
				Account: accts[1]}}, changes)
			return
		}
	}
}

// TestChatDirectTwoNodes: first calls for one pair on both nodes at once
// make one room.
func TestChatDirectTwoNodes(t *testing.T) {
	a, b, accts := twoNodes(t, 2)
	ctx := context.Background()
	ids := make([]storage.RoomID, 8)
	var wg sync.WaitGroup
	for i := range ids {
		node, x, y := a, accts[0], accts[1]
		if i%2 == 1 {
			node, x, y = b, y, x
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := node.DirectRoom(ctx, x, y)
			assert.NoError(t, err)
			ids[i] = r.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		assert.Equal(t, ids[0], id)
	}
	members, err := b.Members(ctx, ids[0], accts[0])
	require.NoError(t, err)
	assert.Len(t, members, 2)
}

// TestAuditAppendOnly: the database itself refuses to change or remove an
// audit entry.
func TestAuditAppendOnly(t *testing.T) {
	a, _, _ := twoNodes(t, 0)
	ctx := context.Background()
	id, err := a.AppendAudit(ctx, storage.AuditEntry{Action: "chat.read", Object: "room:1", Outcome: storage.AuditOK})
	require.NoError(t, err)
	for _, q := range []string{
		`UPDATE audit_log SET outcome = 'denied' WHERE id = $1`,
		`DELETE FROM audit_log WHERE id = $1`,
		`TRUNCATE audit_log`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, id)
		}
		_, err := a.pool.Exec(ctx, q, args...)
		var pe *pgconn.PgError
		require.ErrorAs(t, err, &pe, q)
		assert.Contains(t, pe.Message, "append-only", q)
	}
	all, err := a.Audit(ctx, storage.AuditFilter{})
	require.NoError(t, err)
	require.Len(t, all, 1)
	assert.Equal(t, storage.AuditOK, all[0].Outcome)
}

// TestChatSearchWords: the index keeps words of any length and script, and
// queries match word prefixes exactly as the SQLite store's FTS5 does.
func TestChatSearchWords(t *testing.T) {
	a, b, accts := twoNodes(t, 2)
	ctx := context.Background()
	room, err := a.CreateRoom(ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "Équipe", CreatedBy: accts[0], Members: accts[1:]})
	require.NoError(t, err)
	long := strings.Repeat("é", 300) + "x"
	bodies := []string{
		"Κρασί και ψωμί", // another script
		"INR 2,5 ce matin; contrôle J+3",
		"mot " + long + " fin",
		"apostrophe: l'œdème régresse",
	}
	var seqs []uint64
	for _, body := range bodies {
		m, _, err := a.Post(ctx, storage.NewChatMessage{Room: room.ID, Sender: accts[0], Kind: storage.ChatText, Body: body})
		require.NoError(t, err)
		seqs = append(seqs, m.Seq)
	}
	find := func(q string) []uint64 {
		t.Helper()
		ms, err := b.SearchMessages(ctx, accts[1], q, 10)
		require.NoError(t, err)
		out := []uint64{}
		for _, m := range ms {
			out = append(out, m.Seq)
		}
		return out
	}
	assert.Equal(t, []uint64{seqs[0]}, find("κρα ΨΩΜ"))
	assert.Equal(t, []uint64{seqs[1]}, find("inr 2 5 j"))
	assert.Equal(t, []uint64{seqs[1]}, find("controle"))
	assert.Empty(t, find("ontrole"), "a word's middle is no prefix")
	assert.Equal(t, []uint64{seqs[2]}, find(strings.Repeat("e", 250)))
	assert.Equal(t, []uint64{seqs[2]}, find(long))
	// The index keeps 200 characters: the recheck tells these apart.
	assert.Empty(t, find(strings.Repeat("e", 300)+"y"))
	assert.Empty(t, find(strings.Repeat("e", 301)))
	assert.Equal(t, []uint64{seqs[3]}, find("ŒDÈME l"))
	// tsquery syntax is no query syntax: "!" negates nothing.
	assert.Equal(t, []uint64{seqs[2]}, find(`'fin':* & !mot`))
	assert.Empty(t, find(`fin | κρασί`))
}
