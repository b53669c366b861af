// Package postgres is the storage.Store for installations of several nodes:
// every node of a cluster opens the same PostgreSQL database (pgx), and the
// database is what they share: accounts, mailboxes and messages, the
// directory, the outbound queue, documents, the chat and the audit log.
//
// Writes run in READ COMMITTED transactions. Counters that must never go
// backwards or repeat (UIDNEXT, HIGHESTMODSEQ, a room's sequence) are taken
// with a row lock (UPDATE ... RETURNING) in the transaction that uses them,
// so two nodes delivering to one mailbox get distinct, increasing UIDs in
// commit order. A transaction that loses a serialization or deadlock race
// is retried whole.
//
// The change feed crosses nodes with LISTEN/NOTIFY: each write transaction
// NOTIFYs its changes on the store's channel before it commits, PostgreSQL
// delivers them to every listening node in commit order, and each node
// publishes on its own storage.Feed what it receives. A node's own writes
// are published when their notification comes back (write returns only
// then), so that one node's concurrent commits reach the feed in commit
// order too, as the SQLite store's single committer guarantees. When the
// listening connection is lost, every
// subscriber is told it overflowed (storage.Feed.Lost) and resynchronises
// from the database.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/relais-mssante/relais/storage"
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
	// Schema, when set, is the PostgreSQL schema that holds Relais's tables
	// (created if missing; the tests give each store its own). Empty means
	// the connection's default search_path.
	Schema string
	// MaxConns bounds the connection pool (pgxpool's default when <= 0).
	MaxConns int32
}

// Store is a storage.Store on a PostgreSQL database.
type Store struct {
	log     *slog.Logger
	maxSize int64
	feed    *storage.Feed
	pool    *pgxpool.Pool
	schema  string
	channel string // LISTEN/NOTIFY channel of this database (and schema)
	node    string // random id of this Store: its own notifications are skipped

	stopListen context.CancelFunc
	listenDone chan struct{}
	listening  chan struct{} // closed once the first LISTEN is in place

	// This node's writes whose changes wait for their own notification:
	// the listener publishes them when it comes back, so that the feed
	// follows commit order (PostgreSQL delivers notifications in commit
	// order; a local publish after COMMIT returns does not).
	ownMu    sync.Mutex
	own      map[uint64]*ownWrite
	ownSeq   uint64
	listenUp bool // the listener holds a LISTENing connection

	closeOnce sync.Once
}

// Open connects to the database at url (a postgres:// URL or a libpq
// keyword string), brings its schema up to date and starts listening for
// the changes other nodes commit.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if opts.Schema == "" {
		// A URL that names one schema (?search_path=relais) gets it
		// created, and its own notification channel.
		if sp := cfg.ConnConfig.RuntimeParams["search_path"]; validSchemaName(sp) {
			opts.Schema = sp
		}
	}
	if opts.Schema != "" {
		if !validSchemaName(opts.Schema) {
			return nil, fmt.Errorf("postgres: open: schema %q: want letters, digits and _", opts.Schema)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{
		log: log, maxSize: opts.MaxMessageSize, feed: storage.NewFeed(opts.Backlog), pool: pool,
		schema: opts.Schema, channel: channelName(opts.Schema), node: randomNode(),
		listenDone: make(chan struct{}), listening: make(chan struct{}),
		own: make(map[uint64]*ownWrite),
	}
	version, err := s.migrate(ctx)
	if err != nil {
		pool.Close()
		return nil, err
	}
	// A bulk directory import cut short (a crash) left its search indexes
	// out: put them back before serving searches.
	if err := s.RebuildDirectoryIndexes(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.stopListen = cancel
	go s.listen(lctx, cfg.ConnConfig.Copy())
	// Subscribers expect every change committed after Open returns: wait
	// (bounded) for the first LISTEN.
	select {
	case <-s.listening:
	case <-time.After(10 * time.Second):
		log.Warn("postgres: change listener not ready yet; other nodes' changes may be late")
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("postgres: open: %w", ctx.Err())
	}
	log.Info("postgres store opened", slog.String("schema", opts.Schema), slog.Int("version", version))
	return s, nil
}

// validSchemaName accepts plain lower-case identifiers, which need no
// quoting anywhere (search_path, channel names).
func validSchemaName(s string) bool {
	if s == "" || len(s) > 40 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func channelName(schema string) string {
	if schema == "" {
		return "relais_changes"
	}
	return "relais_changes_" + schema
}

func randomNode() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Close stops the listener and closes the pool. Subscriptions stay valid
// but receive nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopListen()
		<-s.listenDone
		s.pool.Close()
	})
	return nil
}

// Subscribe starts reading the account's change feed.
func (s *Store) Subscribe(acct storage.AccountID) *storage.Subscription {
	return s.feed.Subscribe(acct)
}

// Feed returns the store's feed.
func (s *Store) Feed() *storage.Feed { return s.feed }

// Pool returns the connection pool, for the tools that need the database
// itself (relais migrate).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

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

// maxAttempts bounds how often a transaction that lost a serialization or
// deadlock race is run again.
const maxAttempts = 8

// write runs fn in a write transaction, NOTIFYs the changes fn recorded,
// commits, then publishes them on this node's feed. fn may run more than
// once (a lost race is retried), each time with fresh changes: it must not
// keep effects outside the transaction.
//
// Once started, the transaction runs to its end whatever happens to ctx, so
// that nil always means committed and an error means not committed, except
// for a connection lost during COMMIT itself, after which PostgreSQL may or
// may not have committed (if it did, the other nodes see its changes, but
// this node's subscribers only at their next resynchronisation).
func (s *Store) write(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx, ch *changes) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	ctx = context.WithoutCancel(ctx)
	for attempt := 1; ; attempt++ {
		var ch changes
		var w *ownWrite
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := s.runFn(ctx, op, tx, &ch, fn); err != nil {
				return err
			}
			if len(ch) == 0 {
				return nil
			}
			w = s.expectOwn(ch)
			return s.notify(ctx, tx, ch, w.token)
		})
		if err != nil {
			s.forgetOwn(w)
			if retryable(err) && attempt < maxAttempts {
				time.Sleep(time.Duration(attempt*attempt) * time.Millisecond)
				continue
			}
			return fmt.Errorf("postgres: %s: %w", op, err)
		}
		s.publishOwn(w, ch)
		return nil
	}
}

// ownWrite is one of this node's committed (or committing) writes whose
// changes the listener publishes when their notification arrives.
type ownWrite struct {
	token uint64 // 0: the listener was down, publish at once
	ch    changes
	done  chan struct{}
}

// ownWait bounds how long a write waits for the listener to publish its
// changes; past it the write returns and the listener publishes them late.
const ownWait = 5 * time.Second

// expectOwn registers a write's changes before its COMMIT.
func (s *Store) expectOwn(ch changes) *ownWrite {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	w := &ownWrite{ch: ch, done: make(chan struct{})}
	if s.listenUp {
		s.ownSeq++
		w.token = s.ownSeq
		s.own[w.token] = w
	}
	return w
}

// forgetOwn drops a write that did not commit.
func (s *Store) forgetOwn(w *ownWrite) {
	if w == nil || w.token == 0 {
		return
	}
	s.ownMu.Lock()
	delete(s.own, w.token)
	s.ownMu.Unlock()
}

// publishOwn returns once a committed write's changes are on the feed, in
// commit order (or, when the listener is down, publishes them at once: the
// subscribers are told to resynchronise when it comes back).
func (s *Store) publishOwn(w *ownWrite, ch changes) {
	if w == nil {
		return
	}
	if w.token == 0 {
		for _, p := range ch {
			s.feed.Publish(p.acct, p.changes...)
		}
		return
	}
	select {
	case <-w.done:
	case <-time.After(ownWait):
		s.log.Warn("postgres: change listener slow to confirm a commit; its changes will be late")
	}
}

// ownArrived publishes a write of this node when its last notification
// comes back, in the listener's (commit) order.
func (s *Store) ownArrived(token uint64) {
	s.ownMu.Lock()
	w := s.own[token]
	delete(s.own, token)
	s.ownMu.Unlock()
	if w == nil {
		return
	}
	for _, p := range w.ch {
		s.feed.Publish(p.acct, p.changes...)
	}
	close(w.done)
}

// setListening records whether the listener is connected. When it is not,
// the notifications of writes in flight may be lost: their writers are
// released (the feed's Lost tells the subscribers to resynchronise).
func (s *Store) setListening(up bool) {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	s.listenUp = up
	if !up {
		for t, w := range s.own {
			delete(s.own, t)
			close(w.done)
		}
	}
}

// runFn runs a transaction body; a panic fails that call alone (STYLE 7).
func (s *Store) runFn(ctx context.Context, op string, tx pgx.Tx, ch *changes, fn func(context.Context, pgx.Tx, *changes) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("postgres: panic in write transaction", slog.String("op", op), slog.Any("panic", r),
				slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("internal error: panic: %v", r)
		}
	}()
	return fn(ctx, tx, ch)
}

// retryable reports a transaction that lost a race and may simply run
// again: serialization_failure, deadlock_detected.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// read runs fn in a read-only REPEATABLE READ transaction: one consistent
// snapshot for everything fn reads.
func (s *Store) read(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return nil
}

// notification is the payload of one NOTIFY: some changes of one account,
// from one node.
type notification struct {
	Node    string       `json:"n"`
	Account int64        `json:"a"`
	Changes []wireChange `json:"c"`
	// Write numbers the writes of one node; End marks a write's last
	// notification.
	Write uint64 `json:"w,omitempty"`
	End   bool   `json:"e,omitempty"`
}

type wireChange struct {
	Kind         int      `json:"k"`
	Mailbox      int64    `json:"m,omitempty"`
	UID          uint32   `json:"u,omitempty"`
	ModSeq       uint64   `json:"s,omitempty"`
	Flags        []string `json:"f,omitempty"`
	Name         string   `json:"x,omitempty"`
	Document     int64    `json:"d,omitempty"`
	Room         int64    `json:"r,omitempty"`
	Seq          uint64   `json:"q,omitempty"`
	Chat         int      `json:"h,omitempty"`
	Account      int64    `json:"ac,omitempty"`
	Notification int64    `json:"no,omitempty"`
}

func toWire(c storage.Change) wireChange {
	return wireChange{Kind: int(c.Kind), Mailbox: int64(c.Mailbox), UID: c.UID, ModSeq: c.ModSeq, Flags: c.Flags,
		Name: c.Name, Document: int64(c.Document), Room: int64(c.Room), Seq: c.Seq, Chat: int(c.Chat),
		Account: int64(c.Account), Notification: int64(c.Notification)}
}

func fromWire(w wireChange) storage.Change {
	return storage.Change{Kind: storage.ChangeKind(w.Kind), Mailbox: storage.MailboxID(w.Mailbox), UID: w.UID,
		ModSeq: w.ModSeq, Flags: w.Flags, Name: w.Name, Document: storage.DocumentID(w.Document),
		Room: storage.RoomID(w.Room), Seq: w.Seq, Chat: storage.ChatChange(w.Chat),
		Account: storage.AccountID(w.Account), Notification: storage.NotificationID(w.Notification)}
}

// maxPayload keeps a NOTIFY under PostgreSQL's 8000-byte limit.
const maxPayload = 7000

// notify queues the transaction's changes as NOTIFYs, delivered to the
// listeners at commit, in commit order. An account's changes too large for
// one payload are split into several, in order. Each carries the write's
// token; the last is marked End.
func (s *Store) notify(ctx context.Context, tx pgx.Tx, ch changes, token uint64) error {
	var ns []notification
	for _, p := range ch {
		if err := s.notifyChunk(p.acct, p.changes, token, &ns); err != nil {
			return err
		}
	}
	if len(ns) == 0 {
		return nil
	}
	ns[len(ns)-1].End = true
	for _, n := range ns {
		payload, err := json.Marshal(n)
		if err != nil {
			return fmt.Errorf("notify: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, string(payload)); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	return nil
}

// notifyChunk appends the notifications that carry cs, each under
// maxPayload.
func (s *Store) notifyChunk(acct storage.AccountID, cs []storage.Change, token uint64, out *[]notification) error {
	if len(cs) == 0 {
		return nil
	}
	n := notification{Node: s.node, Account: int64(acct), Changes: make([]wireChange, len(cs)), Write: token}
	for i, c := range cs {
		n.Changes[i] = toWire(c)
	}
	payload, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	if len(payload) > maxPayload {
		if len(cs) > 1 {
			half := len(cs) / 2
			if err := s.notifyChunk(acct, cs[:half], token, out); err != nil {
				return err
			}
			return s.notifyChunk(acct, cs[half:], token, out)
		}
		// One change too large to carry (a flag list of thousands of
		// keywords): tell the other nodes something changed, and let
		// them read the rest.
		n.Changes[0].Flags = nil
	}
	*out = append(*out, n)
	return nil
}

// listen keeps one connection LISTENing on the store's channel and
// publishes the changes other nodes commit. After a lost connection it
// reconnects (backing off up to 5 s) and marks every subscriber overflowed,
// since notifications sent meanwhile are gone.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	defer close(s.listenDone)
	first := true
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, cfg, func() {
			if first {
				first = false
				close(s.listening)
			} else {
				s.feed.Lost()
			}
			backoff = 100 * time.Millisecond
		})
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("postgres: change listener lost its connection; reconnecting", slog.Any("err", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, ready func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	s.setListening(true)
	defer s.setListening(false)
	ready()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var msg notification
		if err := json.Unmarshal([]byte(n.Payload), &msg); err != nil {
			s.log.Warn("postgres: unreadable change notification", slog.Any("err", err))
			continue
		}
		if msg.Node == s.node {
			// Ours: publish the write's own changes (complete, even where
			// the payload had to drop flags) in this, commit, order.
			if msg.End {
				s.ownArrived(msg.Write)
			}
			continue
		}
		cs := make([]storage.Change, len(msg.Changes))
		for i, w := range msg.Changes {
			cs[i] = fromWire(w)
		}
		s.feed.Publish(storage.AccountID(msg.Account), cs...)
	}
}
