// Package ldapd is the read-only LDAP server that mail clients' address
// books (Thunderbird, Outlook, Apple Mail) query for autocomplete and for
// the certificates to encrypt to.
//
// Specifications: RFC 4511 (protocol: bind, search, unbind, StartTLS,
// Notice of Disconnection), RFC 4512 5.1 (root DSE), RFC 4513 (simple
// bind, confidentiality), RFC 4514 (DN strings), RFC 4515/4511 4.5.1.7
// (filters), RFC 4519 and RFC 2798 (person, inetOrgPerson), RFC 4522 and
// RFC 4523 (userCertificate;binary), RFC 2696 (paged results, answered
// with a single page).
//
// The BER layer is github.com/go-asn1-ber/asn1-ber (the one go-ldap uses);
// DN parsing and escaping are go-ldap's. Requests of one connection are
// handled in order, one at a time (RFC 4511 4.14.1 requires it around
// StartTLS anyway; address-book clients send one search at a time).
//
// Access: the root DSE is readable by anyone; everything else needs TLS
// (StartTLS or LDAPS) and a simple bind with a Relais account (the address,
// or a DN whose first RDN is mail= or uid= the address). A throttled bind
// gets invalidCredentials, like a wrong password, as internal/authn asks.
// Searches are translated to directory queries and the whole filter is
// then evaluated on the entries built; a filter without a usable criterion
// is refused (unwillingToPerform) rather than listing the directory.
package ldapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
)

// Defaults of Config.
const (
	DefaultMaxResults  = 100
	DefaultIdleTimeout = 10 * time.Minute
	requestTimeout     = 15 * time.Second // one bind or search, store included
	writeTimeout       = 30 * time.Second
)

// Config configures a Server.
type Config struct {
	// TLS serves StartTLS (RFC 4511 4.14) and ServeTLS (LDAPS). Nil
	// disables both; then, with RequireTLS, only the root DSE is readable.
	TLS *tls.Config
	// BaseDN is the naming context, e.g. "dc=demo,dc=mssante,dc=test".
	// Empty: derived from the host name ("dc=" per label).
	BaseDN string
	// Logger receives the server's logs (slog.Default when nil). Passwords
	// and filters are never logged above Debug.
	Logger *slog.Logger
	// MaxResults bounds the entries of one search (DefaultMaxResults when
	// 0); the client's sizeLimit can only lower it.
	MaxResults int
	// AllowPlaintext lets binds and searches run before StartTLS. By
	// default (false) they are refused with confidentialityRequired (RFC
	// 4513 5.1.3 and 6.3.1, RFC 4511 Appendix A); the root DSE stays readable.
	AllowPlaintext bool
	// IdleTimeout closes a connection silent for that long
	// (DefaultIdleTimeout when 0).
	IdleTimeout time.Duration
}

// Directory is the part of the directory store the server reads
// (storage.DirectoryStore).
type Directory interface {
	SearchDirectory(ctx context.Context, q storage.DirectoryQuery) (storage.DirectoryPage, error)
	MailboxEntries(ctx context.Context, address string) ([]storage.MailboxEntry, error)
	Certificates(ctx context.Context, address string) ([]storage.Certificate, error)
}

// Authenticator checks a username and password (internal/authn).
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string, remote net.Addr) (storage.Account, error)
}

// Server is a read-only LDAP server over a Directory.
type Server struct {
	cfg      Config
	dir      Directory
	auth     Authenticator
	log      *slog.Logger
	base     *ldap.DN
	people   *ldap.DN
	peopleDN string

	panics atomic.Int64
	connID atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // Serve loops and connections
}

// New returns a Server; start it with Serve or ServeTLS.
func New(cfg Config, dir Directory, auth Authenticator) (*Server, error) {
	if dir == nil || auth == nil {
		return nil, errors.New("ldapd: a directory and an authenticator are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxResults <= 0 {
		cfg.MaxResults = DefaultMaxResults
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.BaseDN == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("ldapd: deriving the base DN: %w", err)
		}
		cfg.BaseDN = baseFromHost(host)
	}
	base, err := ldap.ParseDN(cfg.BaseDN)
	if err != nil || len(base.RDNs) == 0 {
		return nil, fmt.Errorf("ldapd: base DN %q: invalid (RFC 4514)", cfg.BaseDN)
	}
	peopleDN := "ou=people," + cfg.BaseDN
	people, err := ldap.ParseDN(peopleDN)
	if err != nil {
		return nil, fmt.Errorf("ldapd: base DN %q: %w", cfg.BaseDN, err)
	}
	s := &Server{
		cfg: cfg, dir: dir, auth: auth,
		log:  cfg.Logger.With("proto", "ldap"),
		base: base, people: people, peopleDN: peopleDN,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// baseFromHost turns "ldap.demo.mssante.test" into
// "dc=ldap,dc=demo,dc=mssante,dc=test" (RFC 2247).
func baseFromHost(host string) string {
	var rdns []string
	for _, label := range strings.Split(strings.Trim(host, "."), ".") {
		if label != "" {
			rdns = append(rdns, "dc="+ldap.EscapeDN(strings.ToLower(label)))
		}
	}
	if len(rdns) == 0 {
		return "dc=localhost"
	}
	return strings.Join(rdns, ",")
}

// BaseDN returns the naming context served.
func (s *Server) BaseDN() string { return s.cfg.BaseDN }

// Panics returns how many panics were recovered while handling requests.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Serve accepts connections on ln until Close or Shutdown. ln may be a
// plain listener (StartTLS is offered when Config.TLS is set) or a
// tls.NewListener (LDAPS).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return fmt.Errorf("ldapd: serve %s: %w", ln.Addr(), net.ErrClosed)
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay) // backoff on EMFILE and the like, as net/http does
				continue
			}
			return fmt.Errorf("ldapd: accept on %s: %w", ln.Addr(), err)
		}
		delay = 0
		c := s.newConn(nc)
		if c == nil {
			_ = nc.Close()
			continue
		}
		go c.serve()
	}
}

// ServeTLS serves LDAPS on ln (TLS from the first byte) with Config.TLS.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.cfg.TLS == nil {
		return errors.New("ldapd: ServeTLS needs Config.TLS")
	}
	return s.Serve(tls.NewListener(ln, s.cfg.TLS))
}

// Shutdown stops accepting, lets requests in progress finish, then sends
// each client a Notice of Disconnection (RFC 4511 4.4.1) and closes it.
// When ctx ends first, the remaining connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	lnErr := s.stopListening()
	s.mu.Lock()
	for c := range s.conns {
		c.stop()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.closeConns()
		<-done
	}
	s.cancel()
	return lnErr
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	lnErr := s.stopListening()
	s.cancel()
	s.closeConns()
	s.wg.Wait()
	return lnErr
}

func (s *Server) stopListening() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	var err error
	for ln := range s.listeners {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = fmt.Errorf("ldapd: close %s: %w", ln.Addr(), cerr)
		}
	}
	clear(s.listeners)
	return err
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
}

// conn is one client connection. Its fields other than the stop flag are
// used by its own goroutine only.
type conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	log    *slog.Logger
	remote net.Addr
	tls    bool
	bound  string // the bound account's address; "" anonymous

	mu       sync.Mutex
	busy     bool // a request is being handled
	stopping bool // Shutdown asked to stop after the current request
}

func (s *Server) newConn(nc net.Conn) *conn {
	id := s.connID.Add(1)
	_, isTLS := nc.(*tls.Conn)
	c := &conn{
		s: s, nc: nc, remote: nc.RemoteAddr(), tls: isTLS,
		br:  bufio.NewReader(nc),
		bw:  bufio.NewWriter(nc),
		log: s.log.With("conn", id, "remote", nc.RemoteAddr().String()),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

// stop asks the connection to end: at once when idle, after the current
// request otherwise.
func (c *conn) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
	if !c.busy {
		c.notifyDisconnect()
		_ = c.nc.Close()
	}
}

// notifyDisconnect sends the unsolicited Notice of Disconnection, RFC 4511
// 4.4.1 (messageID 0, resultCode unavailable).
func (c *conn) notifyDisconnect() {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if c.write(0, extendedResponse(resultUnavailable, "server shutting down", oidNoticeOfDisconnection)) == nil {
		_ = c.bw.Flush()
	}
}

func (c *conn) serve() {
	defer func() {
		_ = c.nc.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.wg.Done()
		c.log.Debug("closed")
	}()
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(writeTimeout))
		if err := tc.HandshakeContext(c.s.ctx); err != nil {
			c.log.Info("TLS handshake failed", "err", err)
			return
		}
	}
	c.log.Debug("connected", "tls", c.tls)
	for {
		_ = c.nc.SetDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		m, err := readMessage(c.br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) {
				c.log.Info("reading request", "err", err)
				if errors.Is(err, errProtocol) {
					// RFC 4511 4.1.1: a PDU that cannot be parsed ends the
					// session after a Notice of Disconnection.
					if c.write(0, extendedResponse(resultProtocolError, "malformed request", oidNoticeOfDisconnection)) == nil {
						_ = c.bw.Flush()
					}
				}
			}
			return
		}
		c.mu.Lock()
		if c.stopping {
			c.mu.Unlock()
			return
		}
		c.busy = true
		c.mu.Unlock()
		_ = c.nc.SetDeadline(time.Now().Add(writeTimeout + requestTimeout))
		keep := c.handleSafely(m)
		flushErr := c.bw.Flush()
		c.mu.Lock()
		c.busy = false
		stopping := c.stopping
		c.mu.Unlock()
		if flushErr != nil {
			c.log.Info("writing response", "err", flushErr)
			return
		}
		if stopping {
			c.notifyDisconnect()
			return
		}
		if !keep {
			return
		}
	}
}

// handleSafely handles one request, recovering a panic (counted, logged,
// answered with "other"); it returns false when the connection must end.
func (c *conn) handleSafely(m *message) (keep bool) {
	defer func() {
		if r := recover(); r != nil {
			c.s.panics.Add(1)
			c.log.Error("panic handling request", "msgid", m.id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			if tag, ok := responseTag(m.op.Tag); ok {
				_ = c.write(m.id, ldapResult(tag, resultOther, "", "internal error"))
			}
			keep = true
		}
	}()
	return c.handle(m)
}

// responseTag is the response operation of a request, RFC 4511 4.2 to 4.14.
func responseTag(req ber.Tag) (ber.Tag, bool) {
	switch req {
	case appBindRequest, appSearchRequest, appModifyRequest, appAddRequest, appDelRequest, appModDNRequest, appCompareRequest:
		if req == appSearchRequest {
			return appSearchResDone, true
		}
		return req + 1, true
	case appExtendedRequest:
		return appExtendedResponse, true
	}
	return 0, false
}

func (c *conn) write(id int64, op *ber.Packet, controls ...*ber.Packet) error {
	if _, err := c.bw.Write(envelope(id, op, controls...).Bytes()); err != nil {
		return fmt.Errorf("ldapd: write: %w", err)
	}
	return nil
}

func (c *conn) handle(m *message) bool {
	ctx, cancel := context.WithTimeout(c.s.ctx, requestTimeout)
	defer cancel()
	// RFC 4511 4.1.11: an unrecognised critical control fails the
	// operation with unavailableCriticalExtension.
	for _, ctl := range m.controls {
		if ctl.critical && ctl.oid != oidPagedResults {
			if tag, ok := responseTag(m.op.Tag); ok {
				_ = c.write(m.id, ldapResult(tag, resultUnavailableCriticalExt, "", "unsupported critical control "+ctl.oid))
			}
			return true
		}
	}
	switch m.op.Tag {
	case appBindRequest:
		req, err := decodeBind(m.op)
		if err != nil {
			_ = c.write(m.id, ldapResult(appBindResponse, resultProtocolError, "", "malformed bind request"))
			return false
		}
		code, diag := c.bind(ctx, req)
		_ = c.write(m.id, ldapResult(appBindResponse, code, "", diag))
	case appUnbindRequest: // RFC 4511 4.3: no response, close
		return false
	case appSearchRequest:
		req, err := decodeSearch(m.op)
		if err != nil {
			c.log.Info("bad search request", "err", err)
			_ = c.write(m.id, ldapResult(appSearchResDone, resultProtocolError, "", "malformed search request"))
			return true
		}
		paged := false
		for _, ctl := range m.controls {
			paged = paged || ctl.oid == oidPagedResults
		}
		c.search(ctx, m.id, req, paged)
	case appExtendedRequest:
		req, err := decodeExtended(m.op)
		if err != nil {
			_ = c.write(m.id, extendedResponse(resultProtocolError, "malformed extended request", ""))
			return false
		}
		return c.extended(m.id, req)
	case appAbandonRequest: // RFC 4511 4.11: no response; nothing runs concurrently
	default:
		if tag, ok := responseTag(m.op.Tag); ok {
			// RFC 4511 4.1.9: the directory is read-only here.
			_ = c.write(m.id, ldapResult(tag, resultUnwillingToPerform, "", "read-only directory"))
			return true
		}
		c.log.Info("unknown LDAP operation", "tag", int(m.op.Tag))
		_ = c.write(0, extendedResponse(resultProtocolError, "unknown operation", oidNoticeOfDisconnection))
		return false
	}
	return true
}

// extended handles ExtendedRequest, RFC 4511 4.12; only StartTLS (4.14).
func (c *conn) extended(id int64, req extendedRequest) bool {
	if req.name != oidStartTLS {
		// RFC 4511 4.12: an unrecognised requestName is a protocolError.
		_ = c.write(id, extendedResponse(resultProtocolError, "unsupported extended operation", ""))
		return true
	}
	switch {
	case c.s.cfg.TLS == nil: // RFC 4511 4.14.2
		_ = c.write(id, extendedResponse(resultProtocolError, "TLS is not available", oidStartTLS))
		return true
	case c.tls:
		_ = c.write(id, extendedResponse(resultOperationsError, "TLS already established", oidStartTLS))
		return true
	case c.br.Buffered() > 0: // the client must wait for the response, RFC 4511 4.14.1
		_ = c.write(id, extendedResponse(resultOperationsError, "requests pending after StartTLS", oidStartTLS))
		return false
	}
	if err := c.write(id, extendedResponse(resultSuccess, "", oidStartTLS)); err != nil {
		return false
	}
	if err := c.bw.Flush(); err != nil {
		return false
	}
	tc := tls.Server(c.nc, c.s.cfg.TLS)
	if err := tc.HandshakeContext(c.s.ctx); err != nil {
		c.log.Info("StartTLS handshake failed", "err", err)
		return false
	}
	c.s.mu.Lock()
	c.nc = tc
	c.s.mu.Unlock()
	c.br = bufio.NewReader(tc)
	c.bw = bufio.NewWriter(tc)
	c.tls = true
	c.log.Debug("StartTLS done")
	return true
}

// bind handles a BindRequest, RFC 4511 4.2 and RFC 4513 5.
func (c *conn) bind(ctx context.Context, req bindRequest) (int, string) {
	c.bound = "" // RFC 4511 4.2.1: a bind first resets the authentication state
	if req.version != 3 {
		return resultProtocolError, "only LDAPv3 is supported"
	}
	if !req.simple {
		return resultAuthMethodNotSupported, "only simple bind is supported"
	}
	if req.name == "" && req.password == "" {
		return resultSuccess, "" // anonymous, RFC 4513 5.1.1
	}
	if req.password == "" {
		// RFC 4513 5.1.2: unauthenticated binds are refused.
		return resultUnwillingToPerform, "unauthenticated bind (name without password) is not allowed"
	}
	if !c.tls && !c.s.cfg.AllowPlaintext {
		// RFC 4513 5.1.3 and 6.3.1: no password over a plaintext connection.
		return resultConfidentialityRequired, "use StartTLS or LDAPS before binding"
	}
	user, ok := bindAddress(req.name)
	if !ok {
		return resultInvalidCredentials, "invalid credentials"
	}
	acct, err := c.s.auth.Authenticate(ctx, user, req.password, c.remote)
	if err != nil {
		// ErrThrottled gets the same answer as a bad password (the
		// authenticator's contract: do not tell which happened); the
		// client retries later like after a typo.
		if errors.Is(err, authn.ErrBadCredentials) || errors.Is(err, authn.ErrThrottled) {
			c.log.Info("bind failed", "user", user, "throttled", errors.Is(err, authn.ErrThrottled))
			return resultInvalidCredentials, "invalid credentials"
		}
		c.log.Error("bind", "err", err)
		return resultOther, "authentication unavailable"
	}
	c.bound = acct.Address
	c.log.Info("bound", "account", acct.ID)
	return resultSuccess, ""
}

// bindAddress extracts the mail address from a bind name: the address
// itself, or a DN whose first RDN is mail=ADDR or uid=ADDR.
func bindAddress(name string) (string, bool) {
	name = strings.TrimSpace(name)
	if !strings.Contains(name, "=") {
		if !strings.Contains(name, "@") {
			return "", false
		}
		return name, true
	}
	dn, err := ldap.ParseDN(name)
	if err != nil || len(dn.RDNs) == 0 {
		return "", false
	}
	for _, a := range dn.RDNs[0].Attributes {
		switch attrKey(a.Type) {
		case "mail", "uid":
			if strings.Contains(a.Value, "@") {
				return a.Value, true
			}
		}
	}
	return "", false
}
