package smtpd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/storage"
)

// Defaults applied by NewInbound and NewSubmission when Config leaves a
// field zero.
const (
	DefaultMaxMessageBytes = 64 << 20
	DefaultMaxRecipients   = 100
	DefaultQueueExpiry     = 5 * 24 * time.Hour // RFC 5321 4.5.4.1: give up after 4-5 days
)

const (
	// maxLineLength bounds a command or message line, CRLF included. RFC
	// 5321 4.5.3.1.6 says 1000, but 4.5.3.1 asks servers to be tolerant, and
	// real clients (HTML mail from some webmails and hospital software)
	// exceed it; Postfix accepts 2048 and wraps. 4096 keeps us tolerant
	// while still bounding memory per line. BDAT chunks (RFC 3030) are not
	// line-limited.
	maxLineLength = 4096
	// readTimeout is how long we wait for the next command: RFC 5321
	// 4.5.3.2.7 asks the server to wait at least 5 minutes.
	readTimeout = 5 * time.Minute
	// writeTimeout bounds a reply write to a client that does not read.
	writeTimeout = time.Minute
	// dataBlockTimeout bounds each read while a message is transferred (RFC
	// 5321 4.5.3.2.5 gives the client 3 minutes per block; we allow 5).
	dataBlockTimeout = 5 * time.Minute
	// storeTimeout bounds one storage call made on behalf of a command.
	storeTimeout = 2 * time.Minute
	// drainInterval is how often Shutdown looks for sessions that went idle.
	drainInterval = 50 * time.Millisecond
)

// Config configures a listener.
type Config struct {
	Hostname        string      // used in greeting and Received
	TLS             *tls.Config // STARTTLS; the caller wraps the listener with tls.NewListener for implicit TLS (465)
	MaxMessageBytes int64       // default 64 MiB
	MaxRecipients   int         // default 100
	Logger          *slog.Logger
	// Trust is the MSSanté trust space: a submission's remote recipient
	// must be in one of its domains. Nil: no trust list is known, so no
	// remote domain is.
	Trust TrustSpace
	// Operators names the operator of the trust space behind an inbound
	// client certificate (directory.Trust). Inbound accepts MAIL only from
	// a listed operator, over TLS with its certificate; nil refuses every
	// inbound sender.
	Operators Operators
	// Relay enables remote recipients on submission: their copy is queued
	// in the same transaction as the local ones, then Relay is kicked.
	// Nil: remote recipients are refused.
	Relay Relay
	// QueueExpiry is how long a queued message is tried before it fails
	// for good (default 5 days, RFC 5321 4.5.4.1).
	QueueExpiry time.Duration
	// Signer signs what leaves for another operator (crypto/smime, wired
	// by cmd/relais). Nil: sent as submitted.
	Signer Signer
	// Opener decrypts and verifies S/MIME mail arriving inbound. Nil:
	// delivered as received.
	Opener Opener
	// Documents reads the structured documents (CDA, IHE XDM) of mail
	// delivered here, inbound or local, and records them after the
	// commit. Nil: not read.
	Documents Documents
	// Reports turns DSNs and MDNs delivered here (inbound, or submitted
	// by one local user to another) into delivery status, and answers
	// NOTIFY=SUCCESS on inbound deliveries. Nil: neither.
	Reports Reports
	// Observer is told how each message transaction ended (metrics).
	// Nil: nobody is.
	Observer Observer
}

// Observer is told the outcome of each message transaction (DATA, BDAT or
// Send), for metrics; cmd/relais wires internal/metrics. Calls must be
// cheap: they happen before the reply is sent.
type Observer interface {
	// MessageDone: listener is "inbound", "submission" or "api" (Send);
	// outcome "accepted" (committed), "rejected" (a 5xx reply) or "failed"
	// (a 4xx reply: the client retries); local and remote count the
	// recipients stored here and those queued for relay (0 unless
	// accepted); elapsed runs from DATA (or Send) to the reply.
	MessageDone(listener, outcome string, local, remote int, elapsed time.Duration)
}

// Operators identifies the operator behind a TLS client certificate.
type Operators interface {
	PeerOperator(ctx context.Context, cert *x509.Certificate) (directory.Operator, error)
}

// Relay is the outbound queue's worker: told when an entry was queued.
type Relay interface {
	Kick()
}

// Signer signs an outgoing message as its sender, or the sender's
// organisation. A message that is already S/MIME comes back untouched. An
// error wrapping ErrNoSigningIdentity means no certificate is available.
type Signer interface {
	Sign(ctx context.Context, sender string, msg []byte) ([]byte, error)
}

// ErrNoSigningIdentity is what a Signer returns when neither the sender nor
// its organisation has a usable certificate.
var ErrNoSigningIdentity = errNoSigningIdentity

// Opener decrypts and verifies an inbound S/MIME message for its local
// recipients. It never fails the delivery: a message it cannot open comes
// back as received, with a header that says why; a plain message comes back
// as is.
type Opener interface {
	Open(ctx context.Context, msg []byte, rcpts []string) []byte
}

// Documents inspects a message about to be delivered to local recipients.
type Documents interface {
	// Inspect returns the message to store (a verdict header added when it
	// carries structured documents, forged ones removed) and, when it
	// does, a function to call after the commit with the recipients'
	// copies, which records the documents and answers the sender of a
	// document that cannot be integrated.
	Inspect(ctx context.Context, sender string, msg []byte) (out []byte, after func(ctx context.Context, copies []DeliveredCopy))
}

// DeliveredCopy is one recipient's stored copy of a message.
type DeliveredCopy struct {
	storage.Delivered
	Address string // the recipient's address as given in RCPT
}

// Reports handles delivery reports around inbound delivery.
type Reports interface {
	// Incoming is called after msg was delivered to the local recipients:
	// a DSN or MDN about a message they sent updates its status.
	Incoming(ctx context.Context, msg []byte, rcpts []storage.AccountID)
	// Delivered is called after an inbound delivery for the recipients
	// whose NOTIFY asked for SUCCESS (RFC 3461 4.1): it sends the
	// "delivered" DSN to the sender.
	Delivered(ctx context.Context, d DeliveredReport) error
}

// DeliveredReport is what a success DSN needs about an inbound delivery.
type DeliveredReport struct {
	Sender     string // reverse-path, never empty
	EnvID      string
	Ret        string
	Recipients []storage.OutboundRecipient
	Message    []byte // as delivered
	Arrival    time.Time
}

// Deliverer stores a message for local recipients: every copy in one
// transaction, committed durably before it returns nil.
type Deliverer interface {
	Deliver(ctx context.Context, raw []byte, internalDate time.Time, rcpts []storage.Recipient) ([]storage.Delivered, error)
}

// Accounts tells which domains are local and which accounts exist.
type Accounts interface {
	AccountByAddress(ctx context.Context, address string) (storage.Account, error)
	HasDomain(ctx context.Context, name string) (bool, error)
}

// Submitter stores a submission: local copies, outbound entry and
// delivery status in one transaction (storage.QueueStore).
type Submitter interface {
	Submit(ctx context.Context, s storage.Submission) ([]storage.Delivered, storage.QueueID, error)
}

// Store is what the listeners need from storage.
type Store interface {
	Deliverer
	Submitter
	Accounts
}

// TrustSpace tells whether a domain belongs to an operator of the MSSanté
// trust space (directory.Trust).
type TrustSpace interface {
	DomainTrusted(ctx context.Context, domain string) (bool, error)
}

// Authenticator checks a username and password (internal/authn satisfies
// it); it returns authn.ErrBadCredentials or authn.ErrThrottled on refusal.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string, remote net.Addr) (storage.Account, error)
}

// mode is which listener a session belongs to.
type mode int

const (
	modeInbound mode = iota
	modeSubmission
)

func (m mode) String() string {
	if m == modeSubmission {
		return "submission"
	}
	return "inbound"
}

// Server is one SMTP listener (inbound or submission). Serve may be called
// on several listeners (587 and 465 share a submission Server).
type Server struct {
	mode  mode
	cfg   Config
	store Store
	auth  Authenticator
	log   *slog.Logger
	smtp  *smtp.Server

	panics   atomic.Int64
	draining atomic.Bool

	mu       sync.Mutex
	sessions map[*session]struct{}
	conns    map[net.Conn]struct{} // accepted, not yet closed
	upgraded map[string]string     // remote address -> connection id, between STARTTLS and EHLO
}

// NewInbound returns the port 25 listener: mail from other operators, no
// AUTH, local recipients only, null reverse-path accepted (bounces).
func NewInbound(cfg Config, store Store) *Server {
	return newServer(modeInbound, cfg, store, nil)
}

// NewSubmission returns the submission listener (587 with STARTTLS, 465
// behind tls.NewListener): AUTH PLAIN or LOGIN over TLS before MAIL, the
// account must own the envelope sender and every From address (RFC 6409).
func NewSubmission(cfg Config, store Store, auth Authenticator) *Server {
	return newServer(modeSubmission, cfg, store, auth)
}

func newServer(m mode, cfg Config, store Store, auth Authenticator) *Server {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.QueueExpiry <= 0 {
		cfg.QueueExpiry = DefaultQueueExpiry
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		mode:     m,
		cfg:      cfg,
		store:    store,
		auth:     auth,
		log:      log.With("listener", m.String()),
		sessions: make(map[*session]struct{}),
		conns:    make(map[net.Conn]struct{}),
		upgraded: make(map[string]string),
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = cfg.Hostname
	srv.TLSConfig = cfg.TLS
	srv.MaxMessageBytes = cfg.MaxMessageBytes // SIZE, RFC 1870
	srv.MaxRecipients = cfg.MaxRecipients     // 452 4.5.3, RFC 5321 4.5.3.1.8
	srv.MaxLineLength = maxLineLength
	srv.AllowInsecureAuth = false // RFC 4954 4, RFC 3207 4: no AUTH in clear
	srv.ReadTimeout = readTimeout
	srv.WriteTimeout = writeTimeout
	srv.EnableSMTPUTF8 = true   // RFC 6531
	srv.EnableBINARYMIME = true // RFC 3030; CHUNKING is always on in go-smtp
	srv.EnableDSN = true        // RFC 3461: NOTIFY, ORCPT, RET, ENVID
	srv.ErrorLog = errorLog{s}
	s.smtp = srv
	return s
}

// Serve accepts connections on ln (plain TCP, STARTTLS offered) until
// Shutdown. It returns nil after Shutdown, the accept error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(&trackingListener{Listener: ln, srv: s})
}

// ServeTLS is Serve with implicit TLS on every connection (submissions,
// RFC 8314 3.3), with Config.TLS.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.cfg.TLS == nil {
		ln.Close()
		return fmt.Errorf("smtpd: %s: implicit TLS on %s needs Config.TLS", s.mode, ln.Addr())
	}
	return s.serve(tls.NewListener(&trackingListener{Listener: ln, srv: s}, s.cfg.TLS))
}

func (s *Server) serve(ln net.Listener) error {
	if s.draining.Load() {
		ln.Close()
		return nil
	}
	if err := s.smtp.Serve(ln); err != nil {
		return fmt.Errorf("smtpd: %s: serving %s: %w", s.mode, ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections, closes the idle ones (clients see
// 421) and lets transactions in flight finish. When ctx ends first, it closes
// the remaining sessions' connections and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.smtp.Shutdown(context.Background()) }()
	tick := time.NewTicker(drainInterval)
	defer tick.Stop()
	for {
		s.closeIdle()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, smtp.ErrServerClosed) {
				return fmt.Errorf("smtpd: %s: shutdown: %w", s.mode, err)
			}
			return nil
		case <-ctx.Done():
			s.mu.Lock()
			for sess := range s.sessions {
				sess.conn.Conn().Close()
			}
			s.mu.Unlock()
			return fmt.Errorf("smtpd: %s: shutdown: %w", s.mode, ctx.Err())
		case <-tick.C:
		}
	}
}

// closeIdle makes every session outside a transaction end: its pending read
// times out and go-smtp answers 421 and closes. It is repeated while
// draining because go-smtp re-arms the deadline before each command.
func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	busy := make(map[net.Conn]bool, len(s.sessions))
	for sess := range s.sessions {
		sess.closeIfIdle()
		busy[rootConn(sess.conn.Conn())] = true
	}
	// Connections that have no session yet (no EHLO, or between STARTTLS
	// and EHLO) are idle too.
	for c := range s.conns {
		if !busy[c] {
			c.SetReadDeadline(time.Now())
		}
	}
}

// trackingListener records the connections it accepts until they close, so
// that Shutdown also reaches those that never sent EHLO.
type trackingListener struct {
	net.Listener
	srv *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, isTLS := c.(*tls.Conn); isTLS {
		// Wrapping would hide the TLS state from go-smtp; ServeTLS adds TLS
		// above the tracking instead.
		return c, nil
	}
	tc := &trackedConn{Conn: c, srv: l.srv}
	l.srv.mu.Lock()
	l.srv.conns[tc] = struct{}{}
	l.srv.mu.Unlock()
	if l.srv.draining.Load() {
		tc.SetReadDeadline(time.Now())
	}
	return tc, nil
}

type trackedConn struct {
	net.Conn
	srv  *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.srv.mu.Lock()
		delete(c.srv.conns, c)
		c.srv.mu.Unlock()
	})
	return c.Conn.Close()
}

// rootConn is the accepted connection under any TLS layers.
func rootConn(c net.Conn) net.Conn {
	for {
		tc, ok := c.(*tls.Conn)
		if !ok {
			return c
		}
		c = tc.NetConn()
	}
}

// Panics returns how many panics were recovered while serving.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Connections returns how many connections are open (metrics).
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) track(sess *session) {
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) untrack(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// connID returns the id of the connection from remote: the one kept at
// STARTTLS, or a new one.
func (s *Server) connID(remote net.Addr) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.upgraded[remote.String()]; ok {
		delete(s.upgraded, remote.String())
		return id
	}
	return newID()
}

// keepConnID remembers a connection id across STARTTLS. A client that
// leaves between STARTTLS and EHLO leaves an entry behind: the map is
// bounded and simply forgotten when full.
func (s *Server) keepConnID(remote net.Addr, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.upgraded) >= 4096 {
		clear(s.upgraded)
	}
	s.upgraded[remote.String()] = id
}

// errorLog receives go-smtp's internal error reports. A "panic serving"
// report that our own recovery did not see first (a panic inside go-smtp)
// is counted here.
type errorLog struct{ s *Server }

func (l errorLog) Printf(format string, v ...any) { l.report(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.report(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (l errorLog) report(msg string) {
	switch {
	case strings.Contains(msg, recoveredMarker):
		// Already counted and logged with the session's context.
	case strings.HasPrefix(msg, "panic serving"):
		l.s.panics.Add(1)
		l.s.log.Error("smtp panic recovered by go-smtp", "detail", msg)
	default:
		l.s.log.Debug("smtp connection error", "detail", msg)
	}
}
