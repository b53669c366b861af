// Package sqlite is the embedded default implementation of storage.Store,
// on SQLite (modernc.org/sqlite, pure Go) in WAL mode with synchronous=FULL:
// a mutating method returns nil only once its transaction is on disk.
//
// Writes go through one committer goroutine and one write connection, with
// group commit: jobs that arrive while a commit is in flight share the next
// transaction (each in its own SAVEPOINT, so one failing job does not fail
// the others) and its single fsync. Readers use a separate pool and see
// committed snapshots (WAL). After each commit the committer publishes the
// changes on the store's storage.Feed, so subscribers see them in commit
// order.
//
// Messages are stored once per delivery (table blobs: raw bytes, encoded
// summary, folded search text) and referenced by one row per mailbox copy
// (table messages); COPY, MOVE and multi-recipient delivery add references,
// and a blob goes when its last reference is expunged.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/relais-mssante/relais/storage"
	_ "modernc.org/sqlite" // driver "sqlite"
)

// DefaultMaxMessageSize bounds Append and Deliver when Options leaves it 0.
const DefaultMaxMessageSize = 64 << 20

// Options configures Open.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	// Backlog is how many unread changes a feed subscriber may accumulate
	// before it overflows (storage.DefaultBacklog when <= 0).
	Backlog int
	// MaxMessageSize bounds a stored message (DefaultMaxMessageSize when
	// <= 0); larger ones get storage.ErrTooLarge.
	MaxMessageSize int64
}

// Store is a storage.Store on one SQLite database file.
type Store struct {
	log     *slog.Logger
	maxSize int64
	feed    *storage.Feed

	jobs          chan *writeJob // to the committer goroutine
	committerDone chan struct{}
	cmu           sync.RWMutex // guards closed and sending on jobs
	closed        bool
	wdb           *sql.DB // one connection, BEGIN IMMEDIATE
	rdb           *sql.DB // readers

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if absent) the database at path and brings its schema
// up to date.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite: open: empty path: %w", storage.ErrInvalid)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: open: %w", err)
		}
	}
	base := (&url.URL{Scheme: "file", OmitHost: true, Path: path}).String()
	common := "_pragma=busy_timeout(30000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"
	wdb, err := sql.Open("sqlite", base+"?"+common+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s := &Store{log: log, maxSize: opts.MaxMessageSize, feed: storage.NewFeed(opts.Backlog), wdb: wdb,
		jobs: make(chan *writeJob, maxBatch), committerDone: make(chan struct{})}
	go s.committer()
	// Migrate through the write connection first: it also switches the file
	// to WAL before any reader opens it.
	version, err := s.migrate(context.Background())
	if err != nil {
		s.stopCommitter()
		wdb.Close()
		return nil, err
	}
	rdb, err := sql.Open("sqlite", base+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		s.stopCommitter()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	rdb.SetMaxIdleConns(8)
	rdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := rdb.Ping(); err != nil {
		s.stopCommitter()
		wdb.Close()
		rdb.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	s.rdb = rdb
	log.Info("sqlite store opened", slog.String("path", path), slog.Int("schema", version))
	return s, nil
}

// Close closes the database. Subscriptions stay valid but receive nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopCommitter()
		err1 := s.rdb.Close()
		err2 := s.wdb.Close()
		if err := errors.Join(err1, err2); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return s.closeErr
}

func (s *Store) stopCommitter() {
	s.cmu.Lock()
	s.closed = true
	close(s.jobs)
	s.cmu.Unlock()
	<-s.committerDone
}

// Subscribe starts reading the account's change feed.
func (s *Store) Subscribe(acct storage.AccountID) *storage.Subscription {
	return s.feed.Subscribe(acct)
}

// Feed returns the store's feed, for a bridge to other nodes.
func (s *Store) Feed() *storage.Feed { return s.feed }

// published is what a write transaction hands to the feed after commit.
type published struct {
	acct    storage.AccountID
	changes []storage.Change
}

type changes []published

func (c *changes) add(acct storage.AccountID, ch ...storage.Change) {
	if n := len(*c); n > 0 && (*c)[n-1].acct == acct {
		(*c)[n-1].changes = append((*c)[n-1].changes, ch...)
		return
	}
	*c = append(*c, published{acct: acct, changes: ch})
}

// maxBatch bounds how many write jobs share one commit.
const maxBatch = 64

// writeJob is one mutating method's transaction body, waiting for a commit.
type writeJob struct {
	op   string
	ctx  context.Context // the caller's values, never cancelled
	fn   func(ctx context.Context, tx *sql.Tx, ch *changes) error
	err  error
	ch   changes
	done chan struct{}
}

// write runs fn in a write transaction, commits it durably, then publishes
// the changes fn recorded, in commit order.
//
// Group commit: one committer goroutine takes every job queued while it was
// busy and runs them in one transaction, each inside its own SAVEPOINT so
// that a failing job is rolled back alone, then commits once (one fsync for
// the batch) and publishes each successful job's changes in order. Every
// caller still returns only after the commit holding its job is on disk; a
// caller whose context ends keeps waiting, so that nil never means "maybe".
func (s *Store) write(ctx context.Context, op string, fn func(ctx context.Context, tx *sql.Tx, ch *changes) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	// Once queued, a job is committed or not whatever happens to ctx: an
	// interrupted statement would roll back the whole shared transaction
	// (sqlite3_interrupt), failing the other jobs of the batch.
	j := &writeJob{op: op, ctx: context.WithoutCancel(ctx), fn: fn, done: make(chan struct{})}
	s.cmu.RLock()
	if s.closed {
		s.cmu.RUnlock()
		return fmt.Errorf("sqlite: %s: store closed", op)
	}
	s.jobs <- j
	s.cmu.RUnlock()
	<-j.done
	return j.err
}

// committer runs write jobs in batches until jobs is closed.
func (s *Store) committer() {
	defer close(s.committerDone)
	batch := make([]*writeJob, 0, maxBatch)
	for j := range s.jobs {
		batch = append(batch[:0], j)
	more:
		for len(batch) < maxBatch {
			select {
			case j, ok := <-s.jobs:
				if !ok {
					break more
				}
				batch = append(batch, j)
			default:
				break more
			}
		}
		s.runBatch(batch)
	}
}

// runJob runs one job's body; a panic fails that job alone (STYLE 7: the
// committer, and so the server, survives).
func (s *Store) runJob(tx *sql.Tx, j *writeJob) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("sqlite: panic in write transaction", slog.String("op", j.op), slog.Any("panic", r),
				slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("internal error: panic: %v", r)
		}
	}()
	return j.fn(j.ctx, tx, &j.ch)
}

// runBatch commits a batch of jobs; only the committer calls it.
func (s *Store) runBatch(batch []*writeJob) {
	finish := func() {
		for _, j := range batch {
			close(j.done)
		}
	}
	defer finish()
	failAll := func(err error) {
		for _, j := range batch {
			if j.err == nil {
				j.err = fmt.Errorf("sqlite: %s: %w", j.op, err)
			}
		}
	}
	// The transaction must not die with one caller's context: each job's
	// statements use their own.
	tx, err := s.wdb.BeginTx(context.Background(), nil)
	if err != nil {
		failAll(fmt.Errorf("begin: %w", err))
		return
	}
	if len(batch) == 1 {
		// Alone in its transaction, a job needs no savepoint: its failure
		// rolls the whole transaction back. This matters for big jobs (a
		// directory import's batches): a savepoint journals the original
		// of every page the job changes.
		j := batch[0]
		if err := s.runJob(tx, j); err != nil {
			_ = tx.Rollback()
			j.err = fmt.Errorf("sqlite: %s: %w", j.op, err)
			j.ch = nil
			return
		}
		if err := tx.Commit(); err != nil {
			failAll(fmt.Errorf("commit: %w", err))
			return
		}
		for _, p := range j.ch {
			s.feed.Publish(p.acct, p.changes...)
		}
		return
	}
	ok := 0
	for _, j := range batch {
		if _, err := tx.Exec(`SAVEPOINT job`); err != nil {
			_ = tx.Rollback()
			failAll(fmt.Errorf("savepoint: %w", err))
			return
		}
		if err := s.runJob(tx, j); err != nil {
			j.err = fmt.Errorf("sqlite: %s: %w", j.op, err)
			j.ch = nil
			if _, rerr := tx.Exec(`ROLLBACK TO job`); rerr != nil {
				_ = tx.Rollback()
				failAll(fmt.Errorf("rollback to savepoint: %w", rerr))
				return
			}
		} else {
			ok++
		}
		if _, err := tx.Exec(`RELEASE job`); err != nil {
			_ = tx.Rollback()
			failAll(fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	if ok == 0 {
		_ = tx.Rollback()
		return
	}
	if err := tx.Commit(); err != nil {
		failAll(fmt.Errorf("commit: %w", err))
		return
	}
	if len(batch) > 1 {
		s.log.Debug("sqlite group commit", slog.Int("jobs", len(batch)))
	}
	for _, j := range batch {
		if j.err != nil {
			continue
		}
		for _, p := range j.ch {
			s.feed.Publish(p.acct, p.changes...)
		}
	}
}

// read runs fn in a read-only transaction (one consistent snapshot).
func (s *Store) read(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: %s: begin: %w", op, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return nil
}

func unixNano(t time.Time) int64 { return t.UnixNano() }

func fromUnixNano(n int64) time.Time { return time.Unix(0, n).UTC() }
