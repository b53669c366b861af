// Package chat is the care-coordination chat server of issue 6: a
// WebSocket protocol (RFC 6455, JSON text frames, versioned; described in
// PROTOCOL.md beside this file), a small JSON REST surface for what is not
// realtime, the per-node fan-out, and the notifications that documents,
// mentions and direct messages produce.
//
// Delivery follows the storage change feed: every committed room event is
// announced (storage.ChangeChat) on the feed of each member, and each
// connection pulls the events it has not sent yet from the store, scoped to
// its account. So a connection sends a room's events in sequence order,
// never twice and without gaps, whoever committed them (a WebSocket send, a
// REST call, a document notification, later another node), and a member
// removed from a room stops receiving at once (the store refuses the read).
// Typing and presence, which are not stored, go through the in-memory hub.
package chat

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// Store is what the chat needs of storage.
type Store interface {
	storage.ChatStore
	AccountByAddress(ctx context.Context, address string) (storage.Account, error)
	Accounts(ctx context.Context) ([]storage.Account, error)
	// Subscribe reads the account's change feed (storage.Store.Subscribe).
	Subscribe(acct storage.AccountID) *storage.Subscription
	// Document and MessagesByUID check that a sender owns what it attaches.
	Document(ctx context.Context, acct storage.AccountID, id storage.DocumentID) (storage.DocumentRecord, error)
	MessagesByUID(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uids []uint32) ([]storage.MessageInfo, error)
}

// Directory is the directory search the people endpoint uses (optional).
type Directory interface {
	SearchDirectory(ctx context.Context, q storage.DirectoryQuery) (storage.DirectoryPage, error)
}

// Authenticator tells which account a request comes from: the web session
// cookie (package chat/web's Sessions), or a bearer token (BearerTokens).
type Authenticator interface {
	Account(r *http.Request) (storage.Account, bool)
}

// Limits bound what one client may do. Zero fields take the defaults.
type Limits struct {
	MaxFrame       int64         // bytes of one WebSocket message (read limit); 64 KiB
	MaxBody        int           // bytes of a message body; storage.MaxChatBody
	RatePerSecond  float64       // sends (send, edit, delete) per user per second; 5
	Burst          int           // token bucket size; 20
	Replay         int           // events replayed on subscribe before a resync; 500
	Queue          int           // frames waiting per connection; 256
	WriteTimeout   time.Duration // one frame write; a slower consumer is disconnected; 10 s
	PingInterval   time.Duration // WebSocket pings; 30 s
	PongTimeout    time.Duration // wait for a pong; 30 s
	HelloTimeout   time.Duration // wait for the hello frame; 10 s
	Heartbeat      time.Duration // advertised app-level ping interval; 25 s
	RoomsPerSub    int           // rooms in one subscribe; 1000
	ConnsPerUser   int           // simultaneous connections of one account; 20
	TypingInterval time.Duration // at most one typing frame per room per connection; 2 s
	StoreReads     int           // fan-out store reads running at once on this node; 16
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxFrame <= 0 {
		l.MaxFrame = 64 << 10
	}
	if l.RatePerSecond <= 0 {
		l.RatePerSecond = 5
	}
	def(&l.MaxBody, storage.MaxChatBody)
	def(&l.Burst, 20)
	def(&l.Replay, 500)
	def(&l.Queue, 256)
	def(&l.RoomsPerSub, 1000)
	def(&l.ConnsPerUser, 20)
	def(&l.StoreReads, 16)
	defd(&l.WriteTimeout, 10*time.Second)
	defd(&l.PingInterval, 30*time.Second)
	defd(&l.PongTimeout, 30*time.Second)
	defd(&l.HelloTimeout, 10*time.Second)
	defd(&l.Heartbeat, 25*time.Second)
	defd(&l.TypingInterval, 2*time.Second)
	return l
}

// Config is the chat server's configuration.
type Config struct {
	Store Store
	// Sessions authenticates browsers (the relais_session cookie).
	Sessions Authenticator
	// Tokens authenticates other clients (Authorization: Bearer); may be nil.
	Tokens Authenticator
	// Directory serves GET /api/v1/chat/people; may be nil (local accounts
	// only then).
	Directory Directory
	// Origins are extra allowed Origin host patterns for the WebSocket and
	// the REST surface ("relais.example:8443"), matched like
	// websocket.AcceptOptions.OriginPatterns; the request's own Host is
	// always allowed. Never "*".
	Origins []string
	Logger  *slog.Logger
	Limits  Limits
	Now     func() time.Time
}

// Paths served by Handler.
const (
	WebSocketPath = "/chat/ws"
	APIPrefix     = "/api/v1/chat/"
)

// Server is the chat of one node.
type Server struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	limits Limits
	hub    *hub
	recent *recent
	rate   *rateLimiter
	names  *names

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	statsMu sync.Mutex
	stats   Stats
}

// Stats counts what happened since New (for metrics and tests).
type Stats struct {
	Connections   int // open now
	Accepted      int
	SlowConsumers int // connections closed because they did not keep up
	Panics        int // recovered
	Refusals      int // authorization refusals (also in the audit log)
	DroppedFrames int // typing/presence frames dropped from full queues
}

// New returns a chat server; Close stops its connections.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("chat: Config.Store is required")
	}
	if cfg.Sessions == nil && cfg.Tokens == nil {
		return nil, errors.New("chat: Config.Sessions or Config.Tokens is required")
	}
	for _, o := range cfg.Origins {
		if o == "*" || o == "" {
			return nil, errors.New("chat: an Origins pattern may not be empty or *")
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := cfg.Limits.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, store: limitedStore{cfg.Store, make(chan struct{}, l.StoreReads)}, log: cfg.Logger, limits: l,
		hub:   newHub(),
		rate:  newRateLimiter(l.RatePerSecond, l.Burst, cfg.Now),
		names: &names{store: cfg.Store},
		ctx:   ctx, cancel: cancel,
	}
	s.recent = newRecent()
	s.hub.onEmpty = s.recent.forget
	return s, nil
}

// Close disconnects every WebSocket client (1001, going away) and waits for
// their goroutines.
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

func (s *Server) count(f func(*Stats)) {
	s.statsMu.Lock()
	f(&s.stats)
	s.statsMu.Unlock()
}

// Handler serves GET /chat/ws and /api/v1/chat/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+WebSocketPath, s.serveWS)
	s.routes(mux)
	return mux
}

// authenticate finds the request's account: the session cookie first, then
// a bearer token.
func (s *Server) authenticate(r *http.Request) (storage.Account, bool) {
	if s.cfg.Sessions != nil {
		if a, ok := s.cfg.Sessions.Account(r); ok {
			return a, true
		}
	}
	if s.cfg.Tokens != nil {
		if a, ok := s.cfg.Tokens.Account(r); ok {
			return a, true
		}
	}
	return storage.Account{}, false
}

// audit appends to the audit log; a failure is logged, never fatal.
func (s *Server) audit(ctx context.Context, acct storage.AccountID, action, object, outcome, detail string) {
	if outcome == storage.AuditDenied {
		s.count(func(st *Stats) { st.Refusals++ })
	}
	ctx = context.WithoutCancel(ctx)
	if _, err := s.store.AppendAudit(ctx, storage.AuditEntry{
		Time: s.cfg.Now(), Account: acct, Action: action, Object: object, Outcome: outcome, Detail: detail,
	}); err != nil {
		s.log.Error("chat: audit log", "err", err, "action", action)
	}
}
