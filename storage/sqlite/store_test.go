package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

func openStore(t *testing.T) (*Store, storage.Account) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "relais.db"), Options{Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ctx := context.Background()
	_, err = s.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	a, err := s.CreateAccount(ctx, "alice@example.org", "Alice", "h")
	require.NoError(t, err)
	return s, a
}

// Durability settings are what the contract promises: WAL, fsync on commit.
func TestPragmas(t *testing.T) {
	s, _ := openStore(t)
	var mode string
	var sync, fk int
	require.NoError(t, s.wdb.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	require.NoError(t, s.wdb.QueryRow(`PRAGMA synchronous`).Scan(&sync))
	require.NoError(t, s.wdb.QueryRow(`PRAGMA foreign_keys`).Scan(&fk))
	assert.Equal(t, "wal", mode)
	assert.Equal(t, 2, sync, "synchronous=FULL")
	assert.Equal(t, 1, fk)
	require.NoError(t, s.rdb.QueryRow(`PRAGMA synchronous`).Scan(&sync))
	assert.Equal(t, 2, sync)
}

// A batch where one job fails commits the others, and publishes only theirs.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s, a := openStore(t)
	sub := s.Subscribe(a.ID)
	defer sub.Close()
	ctx := context.Background()
	set := func(hash string, fail bool) *writeJob {
		return &writeJob{op: "test", ctx: ctx, done: make(chan struct{}), fn: func(ctx context.Context, tx *sql.Tx, ch *changes) error {
			if _, err := tx.ExecContext(ctx, `UPDATE accounts SET password_hash = password_hash || ? WHERE id = ?`, hash, a.ID); err != nil {
				return err
			}
			ch.add(a.ID, storage.Change{Kind: storage.ChangeMailboxCreated, Name: hash})
			if fail {
				return errors.New("boom")
			}
			return nil
		}}
	}
	panicky := &writeJob{op: "panic", ctx: ctx, done: make(chan struct{}), fn: func(context.Context, *sql.Tx, *changes) error {
		panic("test panic")
	}}
	batch := []*writeJob{set("1", false), set("2", true), panicky, set("3", false)}
	s.runBatch(batch)
	assert.NoError(t, batch[0].err)
	assert.ErrorContains(t, batch[1].err, "boom")
	assert.ErrorContains(t, batch[2].err, "panic")
	assert.NoError(t, batch[3].err)
	got, err := s.AccountByAddress(ctx, "alice@example.org")
	require.NoError(t, err)
	assert.Equal(t, "h13", got.PasswordHash)
	chs, _ := sub.Next()
	require.Len(t, chs, 2)
	assert.Equal(t, "1", chs[0].Name)
	assert.Equal(t, "3", chs[1].Name)

	// The committer is still alive.
	require.NoError(t, s.SetPasswordHash(ctx, a.ID, "h4"))
}

func TestCancelledContext(t *testing.T) {
	s, a := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Append(ctx, a.ID, "INBOX", storage.NewMessage{Raw: []byte("Subject: x\r\n\r\ny\r\n")})
	require.ErrorIs(t, err, context.Canceled)
	in, err := s.MailboxByName(context.Background(), a.ID, "INBOX")
	require.NoError(t, err)
	assert.Equal(t, uint32(1), in.UIDNext)
}

func TestTooLarge(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "relais.db"), Options{Logger: quietLogger(), MaxMessageSize: 100})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	_, err = s.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	a, err := s.CreateAccount(ctx, "alice@example.org", "Alice", "h")
	require.NoError(t, err)
	_, err = s.Deliver(ctx, make([]byte, 101), time.Time{}, []storage.Recipient{{Account: a.ID, Mailbox: "INBOX"}})
	require.ErrorIs(t, err, storage.ErrTooLarge)
}

// Blobs are shared by copies and dropped with the last reference.
func TestBlobRefcount(t *testing.T) {
	s, a := openStore(t)
	ctx := context.Background()
	count := func() int {
		var n int
		require.NoError(t, s.rdb.QueryRow(`SELECT count(*) FROM blobs`).Scan(&n))
		return n
	}
	ds, err := s.Deliver(ctx, []byte("Subject: x\r\n\r\ny\r\n"), time.Time{}, []storage.Recipient{
		{Account: a.ID, Mailbox: "INBOX"}, {Account: a.ID, Mailbox: "Sent"},
	})
	require.NoError(t, err)
	assert.Equal(t, 1, count())
	_, err = s.Copy(ctx, a.ID, ds[0].Mailbox, []uint32{ds[0].UID}, "Archive")
	require.NoError(t, err)
	assert.Equal(t, 1, count())
	for _, d := range ds {
		_, _, err = s.StoreFlags(ctx, a.ID, d.Mailbox, []uint32{d.UID}, storage.FlagsAdd, []string{storage.FlagDeleted}, 0)
		require.NoError(t, err)
		_, err = s.Expunge(ctx, a.ID, d.Mailbox, nil)
		require.NoError(t, err)
	}
	assert.Equal(t, 1, count(), "the Archive copy still refers to it")
	require.NoError(t, s.DeleteMailbox(ctx, a.ID, "Archive"))
	assert.Equal(t, 0, count())
}

func TestClosed(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "relais.db"), Options{Logger: quietLogger()})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = s.AddDomain(context.Background(), "example.org")
	require.Error(t, err)
}
