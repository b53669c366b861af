package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/relais-mssante/relais/storage"
)

// DefaultAppendLimit is the APPEND size limit when Config.AppendLimit is 0.
const DefaultAppendLimit = 64 << 20

// Config configures a Server.
type Config struct {
	// TLS is used for STARTTLS (RFC 9051 6.2.1). Nil disables STARTTLS, and
	// then LOGIN is only possible on listeners already wrapped in TLS.
	TLS *tls.Config
	// Logger receives the server's logs (slog.Default when nil). Message
	// contents and passwords are never logged.
	Logger *slog.Logger
	// AppendLimit bounds an APPEND in bytes (RFC 7889); 0 means
	// DefaultAppendLimit.
	AppendLimit uint32
	// Observer is told how long each command took (metrics). Nil: nobody
	// is.
	Observer Observer
}

// Observer is told about commands, for metrics; cmd/relais wires
// internal/metrics. Calls must be cheap: they happen before the reply.
type Observer interface {
	// IMAPCommand: command is the lower-case command name ("fetch",
	// "select"...); IDLE is not reported (see Server.Idling).
	IMAPCommand(command string, elapsed time.Duration)
}

// Store is the part of storage.Store the IMAP server uses.
type Store interface {
	Mailboxes(ctx context.Context, acct storage.AccountID) ([]storage.Mailbox, error)
	MailboxByName(ctx context.Context, acct storage.AccountID, name string) (storage.Mailbox, error)
	CreateMailbox(ctx context.Context, acct storage.AccountID, name, specialUse string) (storage.Mailbox, error)
	DeleteMailbox(ctx context.Context, acct storage.AccountID, name string) error
	RenameMailbox(ctx context.Context, acct storage.AccountID, from, to string) error
	SetSubscribed(ctx context.Context, acct storage.AccountID, name string, subscribed bool) error
	MailboxCounts(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) (storage.MailboxCounts, error)

	Append(ctx context.Context, acct storage.AccountID, mailbox string, msg storage.NewMessage) (storage.Delivered, error)
	Messages(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) ([]storage.MessageInfo, error)
	MessageIndex(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) ([]storage.MessageInfo, error)
	MessagesByUID(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uids []uint32) ([]storage.MessageInfo, error)
	RawMessage(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uid uint32) ([]byte, error)
	SearchText(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uid uint32) (header, body string, err error)
	StoreFlags(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uids []uint32, op storage.FlagOp, flags []string, unchangedSince uint64) (updated []storage.FlagUpdate, failed []uint32, err error)
	Expunge(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uids []uint32) ([]uint32, error)
	Copy(ctx context.Context, acct storage.AccountID, from storage.MailboxID, uids []uint32, to string) (storage.CopyResult, error)
	Move(ctx context.Context, acct storage.AccountID, from storage.MailboxID, uids []uint32, to string) (storage.CopyResult, error)

	Subscribe(acct storage.AccountID) *storage.Subscription
}

// Authenticator checks a username and password (internal/authn).
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string, remote net.Addr) (storage.Account, error)
}

// Server is an IMAP server over a Store.
type Server struct {
	cfg    Config
	store  Store
	auth   Authenticator
	log    *slog.Logger
	imap   *imapserver.Server
	panics atomic.Int64
	connID atomic.Uint64
	idling atomic.Int64 // sessions in IDLE now

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	serving   sync.WaitGroup
	sessions  map[*session]struct{}
}

// New returns a Server; start it with Serve.
func New(cfg Config, store Store, auth Authenticator) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AppendLimit == 0 {
		cfg.AppendLimit = DefaultAppendLimit
	}
	s := &Server{cfg: cfg, store: store, auth: auth, log: cfg.Logger.With("proto", "imap"), sessions: make(map[*session]struct{}), listeners: make(map[net.Listener]struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps: imap.CapSet{
			imap.CapIMAP4rev1:        {},
			imap.CapIMAP4rev2:        {},
			imap.CapNamespace:        {}, // RFC 2342
			imap.CapUIDPlus:          {}, // RFC 4315
			imap.CapESearch:          {}, // RFC 4731
			imap.CapSearchRes:        {}, // RFC 5182
			imap.CapListExtended:     {}, // RFC 5258
			imap.CapListStatus:       {}, // RFC 5819
			imap.CapMove:             {}, // RFC 6851
			imap.CapStatusSize:       {}, // RFC 8438
			imap.CapBinary:           {}, // RFC 3516
			imap.CapChildren:         {}, // RFC 3348
			imap.CapSpecialUse:       {}, // RFC 6154
			imap.CapCreateSpecialUse: {}, // RFC 6154 3
			imap.CapLiteralPlus:      {}, // RFC 7888
			imap.CapUnauthenticate:   {}, // RFC 8437
		},
		Logger:    printfLogger{s},
		TLSConfig: cfg.TLS,
		// RFC 9051 6.2.3: no LOGIN before TLS (LOGINDISABLED).
		InsecureAuth: false,
	})
	return s
}

// Serve accepts connections on ln until Close. ln may be a plain listener
// (STARTTLS is offered) or a tls.NewListener (IMAPS, RFC 8314).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("imapd: serve %s: %w", ln.Addr(), net.ErrClosed)
	}
	s.listeners[ln] = struct{}{}
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()
	if err := s.imap.Serve(ln); err != nil {
		return fmt.Errorf("imapd: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Close stops the listeners, ends sessions waiting in IDLE, says BYE to
// every client and closes the connections.
func (s *Server) Close() error {
	s.cancel() // wakes sessions in IDLE
	// Close our listeners and wait for every Serve to return before
	// imapserver.Close, whose WaitGroup must not race with a starting Serve.
	s.mu.Lock()
	s.closed = true
	var lnErr error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) && lnErr == nil {
			lnErr = err
		}
	}
	clear(s.listeners)
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	s.serving.Wait()
	// RFC 9051 7.1.5: say BYE before closing, with a short write deadline so
	// that a client that does not read cannot hold the shutdown.
	var byes sync.WaitGroup
	for _, sess := range sessions {
		byes.Go(func() {
			_ = sess.conn.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
			_ = sess.conn.Bye("Server shutting down")
		})
	}
	byes.Wait()
	err := s.imap.Close()
	if err == nil {
		err = lnErr
	}
	if err != nil && strings.Contains(err.Error(), "server closed") {
		err = nil // closed twice
	}
	if err != nil {
		return fmt.Errorf("imapd: close: %w", err)
	}
	return nil
}

// Panics returns how many panics were recovered in sessions.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Sessions returns how many connections are open (metrics).
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Idling returns how many sessions are in IDLE now (metrics).
func (s *Server) Idling() int64 { return s.idling.Load() }

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	id := s.connID.Add(1)
	remote := c.NetConn().RemoteAddr()
	sess := &session{
		srv:    s,
		conn:   c,
		remote: remote,
		log:    s.log.With("conn", id, "remote", remote.String()),
	}
	_, isTLS := c.NetConn().(*tls.Conn)
	sess.log.Debug("connected", "tls", isTLS)
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	return sess, nil, nil
}

func (s *Server) forget(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// printfLogger adapts slog to imapserver.Logger. go-imap reports the panics
// it recovers itself with a "panic" prefix: they are counted too.
type printfLogger struct{ s *Server }

func (l printfLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(format, "panic") {
		l.s.panics.Add(1)
		l.s.log.Error("imapserver panic", "detail", msg)
		return
	}
	if strings.HasPrefix(format, "handling") {
		l.s.log.Warn("imapserver", "detail", msg) // a session method's non-IMAP error
		return
	}
	l.s.log.Info("imapserver", "detail", msg) // e.g. a client gone mid-command
}
