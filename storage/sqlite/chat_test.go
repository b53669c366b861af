package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

// What the conformance suite (storagetest, Chat* cases) cannot see: the
// SQLite schema, query plans, the append-only audit table, and group commit
// with failing jobs.

func chatStore(t testing.TB, path string, accounts int) (*Store, []storage.AccountID) {
	t.Helper()
	s, err := Open(path, Options{Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	_, err = s.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	var ids []storage.AccountID
	for i := range accounts {
		a, err := s.CreateAccount(ctx, fmt.Sprintf("user%d@example.org", i), fmt.Sprintf("User %d", i), "h")
		require.NoError(t, err)
		ids = append(ids, a.ID)
	}
	return s, ids
}

// queryPlan returns SQLite's plan for a query, one line per step.
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN `+query, args...)
	require.NoError(t, err)
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		lines = append(lines, detail)
	}
	require.NoError(t, rows.Err())
	return strings.Join(lines, "\n")
}

// args binds every ? of a query to 1.
func args(query string) []any {
	out := make([]any, strings.Count(query, "?"))
	for i := range out {
		out[i] = 1
	}
	return out
}

// TestChatQueryPlans: the hot reads are index seeks, never table scans.
func TestChatQueryPlans(t *testing.T) {
	s, _ := chatStore(t, filepath.Join(t.TempDir(), "relais.db"), 0)
	for _, c := range []struct {
		name, query string
		want        string
	}{
		{"is member", `SELECT 1 FROM chat_members WHERE room = 1 AND account = 2`, "USING PRIMARY KEY (room=? AND account=?)"},
		{"rooms of an account", `SELECT room FROM chat_members WHERE account = 2`, "USING COVERING INDEX chat_members_account (account=?)"},
		{"unread", `SELECT mb.room, ` + unreadExpr + ` FROM chat_members mb WHERE mb.account = 2`, "(room=? AND seq>?)"},
		{"replay", `SELECT ` + msgCols + ` FROM chat_messages m` + msgJoin + ` WHERE m.room = 1 AND m.seq > 5 ORDER BY m.seq LIMIT 10`, "(room=? AND seq>?)"},
		{"client id", `SELECT id FROM chat_messages WHERE room = ? AND sender = ? AND client_id = ? AND client_id != ''`, "chat_messages_client (room=? AND sender=? AND client_id=?)"},
		{"history", `SELECT seq FROM chat_messages WHERE room = ? AND target = ? AND target != 0 ORDER BY seq`, "chat_messages_target (room=? AND target=?)"},
		{"rooms by INS", `SELECT r.id FROM chat_rooms r JOIN chat_members mb ON mb.room = r.id AND mb.account = 2 WHERE r.patient_ins = 'x' AND r.kind = 'patient'`, "SEARCH"},
		{"search", `SELECT m.id FROM chat_fts f JOIN chat_messages m ON m.id = f.rowid WHERE chat_fts MATCH '"a"*'`, "VIRTUAL TABLE INDEX"},
	} {
		plan := queryPlan(t, s, c.query, args(c.query)...)
		assert.Contains(t, plan, c.want, "%s:\n%s", c.name, plan)
		assert.NotRegexp(t, `SCAN (chat_messages|chat_members|m|mb)\b`, plan, "%s:\n%s", c.name, plan)
	}
}

// TestAuditAppendOnly: the table itself refuses updates and deletions.
func TestAuditAppendOnly(t *testing.T) {
	s, ids := chatStore(t, filepath.Join(t.TempDir(), "relais.db"), 1)
	ctx := context.Background()
	id, err := s.AppendAudit(ctx, storage.AuditEntry{Account: ids[0], Action: "chat.read", Outcome: storage.AuditDenied})
	require.NoError(t, err)
	err = s.write(ctx, "tamper", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		_, err := tx.ExecContext(ctx, `UPDATE audit_log SET outcome = 'ok' WHERE id = ?`, id)
		return err
	})
	assert.ErrorContains(t, err, "append-only")
	err = s.write(ctx, "tamper", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM audit_log`)
		return err
	})
	assert.ErrorContains(t, err, "append-only")
	got, err := s.Audit(ctx, storage.AuditFilter{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, storage.AuditDenied, got[0].Outcome)
}

// TestChatGroupCommitFailures: posts refused inside the write transaction
// (editing another member's message) share batches with good ones; the
// good ones still get 1..n with no gap.
func TestChatGroupCommitFailures(t *testing.T) {
	s, ids := chatStore(t, filepath.Join(t.TempDir(), "relais.db"), 4)
	ctx := context.Background()
	room, err := s.CreateRoom(ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "Équipe", CreatedBy: ids[0], Members: ids[1:]})
	require.NoError(t, err)
	first, _, err := s.Post(ctx, storage.NewChatMessage{Room: room.ID, Sender: ids[0], Kind: storage.ChatText, Body: "premier"})
	require.NoError(t, err)
	const each = 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[uint64]bool{first.Seq: true}
	for _, a := range ids[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i%2 == 1 {
					_, _, err := s.Post(ctx, storage.NewChatMessage{Room: room.ID, Sender: a, Kind: storage.ChatEdit, Target: first.Seq, Body: "non"})
					assert.ErrorIs(t, err, storage.ErrForbidden)
					continue
				}
				m, _, err := s.Post(ctx, storage.NewChatMessage{Room: room.ID, Sender: a, Kind: storage.ChatText, Body: "ok"})
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				got[m.Seq] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	n := uint64(1 + 3*each/2)
	assert.Len(t, got, int(n))
	for seq := uint64(1); seq <= n; seq++ {
		assert.True(t, got[seq], "seq %d missing", seq)
	}
	r, err := s.Room(ctx, ids[0], room.ID)
	require.NoError(t, err)
	assert.Equal(t, n, r.LastSeq)
}

// TestChatMigrationRerun: migration 6 uses IF NOT EXISTS, so a database
// whose schema_version lags (a crash between the DDL and the version, an
// older binary's concurrent migration) migrates again without losing rows.
func TestChatMigrationRerun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relais.db")
	s, ids := chatStore(t, path, 2)
	ctx := context.Background()
	d, err := s.DirectRoom(ctx, ids[0], ids[1])
	require.NoError(t, err)
	_, _, err = s.Post(ctx, storage.NewChatMessage{Room: d.ID, Sender: ids[0], Kind: storage.ChatText, Body: "bonjour"})
	require.NoError(t, err)
	require.NoError(t, s.write(ctx, "lag", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		_, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = 5`)
		return err
	}))
	require.NoError(t, s.Close())
	s, err = Open(path, Options{Logger: quietLogger()})
	require.NoError(t, err)
	defer s.Close()
	ms, err := s.SearchMessages(ctx, ids[1], "BONJOUR", 10)
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, d.ID, ms[0].Room)
}

func TestFTSQuery(t *testing.T) {
	for in, want := range map[string]string{
		"Hôpital":             `"hopital"*`,
		`l'HÔPITAL "de" jour`: `"l"* AND "hopital"* AND "de"* AND "jour"*`,
		"NEAR(a b) OR c*":     `"near"* AND "a"* AND "b"* AND "or"* AND "c"*`,
		" ;, ":                "",
	} {
		assert.Equal(t, want, ftsQuery(in), in)
	}
	assert.Len(t, strings.Split(ftsQuery(strings.Repeat("mot ", 50)), " AND "), maxSearchWords)
}

// BenchmarkChatPost: posts by 8 senders into one room (group commit).
func BenchmarkChatPost(b *testing.B) {
	s, ids := chatStore(b, filepath.Join(b.TempDir(), "relais.db"), 8)
	ctx := context.Background()
	room, err := s.CreateRoom(ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "bench", CreatedBy: ids[0], Members: ids[1:]})
	require.NoError(b, err)
	var next sync.Mutex
	i := 0
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		next.Lock()
		a := ids[i%len(ids)]
		i++
		next.Unlock()
		for pb.Next() {
			if _, _, err := s.Post(ctx, storage.NewChatMessage{Room: room.ID, Sender: a, Kind: storage.ChatText,
				Body: "Passage infirmier à 18 h, pansement refait"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkChatIsMember: the fan-out check.
func BenchmarkChatIsMember(b *testing.B) {
	s, ids := chatStore(b, filepath.Join(b.TempDir(), "relais.db"), 2)
	ctx := context.Background()
	d, err := s.DirectRoom(ctx, ids[0], ids[1])
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		ok, err := s.IsMember(ctx, d.ID, ids[1])
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// FuzzSearchMessages: whatever the user types, the FTS5 query is valid:
// the search answers or refuses with ErrInvalid/ErrTooLarge, never an FTS
// syntax error, and only from the account's rooms.
func FuzzSearchMessages(f *testing.F) {
	for _, seed := range []string{"hôpital", `"a" OR b*`, "NEAR(x y, 3)", "col:term", "^début", "a AND NOT b", "-x +y",
		"\x00", "\xff\xfe", "l'infirmière", "()", `""`, "*", "日本語 テキスト"} {
		f.Add(seed)
	}
	s, ids := chatStore(f, filepath.Join(f.TempDir(), "relais.db"), 2)
	ctx := context.Background()
	mine, err := s.CreateRoom(ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "mine", CreatedBy: ids[0]})
	require.NoError(f, err)
	other, err := s.CreateRoom(ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "other", CreatedBy: ids[1]})
	require.NoError(f, err)
	for _, r := range []storage.RoomID{mine.ID, other.ID} {
		for _, body := range []string{"Hôpital de jour", "l'infirmière passe", "NEAR the end", "a b c"} {
			_, _, err := s.Post(ctx, storage.NewChatMessage{Room: r, Sender: ids[int(r-mine.ID)], Kind: storage.ChatText, Body: body})
			require.NoError(f, err)
		}
	}
	f.Fuzz(func(t *testing.T, q string) {
		ms, err := s.SearchMessages(ctx, ids[0], q, 10)
		if err != nil {
			if !errors.Is(err, storage.ErrInvalid) && !errors.Is(err, storage.ErrTooLarge) {
				t.Fatalf("query %q: %v", q, err)
			}
			return
		}
		for _, m := range ms {
			if m.Room != mine.ID {
				t.Fatalf("query %q found room %d", q, m.Room)
			}
		}
	})
}
