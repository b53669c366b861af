package smtpd

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/relais-mssante/relais/storage"
)

// session is one go-smtp Session: created at EHLO (again after STARTTLS),
// it holds the connection's identity and the current transaction only.
type session struct {
	srv    *Server
	conn   *smtp.Conn
	id     string   // connection id, kept across STARTTLS
	raw    net.Conn // the connection when the session began
	log    *slog.Logger
	remote net.Addr
	tls    *tlsInfo
	acct   *storage.Account // submission: set by AUTH, kept across RSET

	mu   sync.Mutex
	busy bool // a transaction is open (MAIL accepted, not yet reset)

	tx transaction
}

type tlsInfo struct {
	version, cipher uint16
}

// transaction is the state between MAIL and the end of DATA or RSET.
type transaction struct {
	from    string
	hasFrom bool
	utf8    bool  // SMTPUTF8 given on MAIL, RFC 6531 3.4
	size    int64 // SIZE= announced on MAIL, RFC 1870
	rcpts   []recipient
}

// recipient is one accepted RCPT TO.
type recipient struct {
	addr    string
	account storage.AccountID
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newSession is go-smtp's Backend: called at EHLO/HELO.
func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{srv: s, conn: c, raw: c.Conn(), remote: c.Conn().RemoteAddr()}
	sess.id = s.connID(sess.remote)
	sess.log = s.log.With("conn", sess.id, "remote", sess.remote.String())
	state, isTLS := c.TLSConnectionState()
	if isTLS {
		sess.tls = &tlsInfo{version: state.Version, cipher: state.CipherSuite}
	}
	// Inbound: the place where the trust-space check on the peer's
	// certificate will go (mutual TLS, a later issue).
	var st *tls.ConnectionState
	if isTLS {
		st = &state
	}
	if err := checkPeer(s.mode, st); err != nil {
		return nil, sess.reply(err, stageConnect)
	}
	if s.draining.Load() {
		return nil, sess.reply(errShuttingDown, stageConnect)
	}
	s.track(sess)
	sess.log.Debug("session started", "helo", c.Hostname(), "tls", isTLS)
	if s.mode == modeSubmission {
		return &submissionSession{sess}, nil
	}
	return sess, nil
}

// recoveredMarker is the value re-panicked after a recovered panic, so that
// go-smtp answers 421 and closes the connection, and errorLog does not count
// the panic twice.
const recoveredMarker = "smtpd: panic recovered and logged"

// recoverPanic counts and logs a panic with the session's context, then
// hands it on to go-smtp's own recovery (421 4.0.0, connection closed; the
// server keeps serving).
func (sess *session) recoverPanic(cmd string) {
	if v := recover(); v != nil {
		sess.srv.panics.Add(1)
		sess.log.Error("panic in smtp command", "cmd", cmd, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		panic(recoveredMarker)
	}
}

func (sess *session) closeIfIdle() {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if !sess.busy {
		sess.conn.Conn().SetReadDeadline(time.Now())
	}
}

func (sess *session) setBusy(b bool) {
	sess.mu.Lock()
	sess.busy = b
	sess.mu.Unlock()
	if !b && sess.srv.draining.Load() {
		sess.closeIfIdle()
	}
}

// Mail is MAIL FROM (RFC 5321 4.1.1.2).
func (sess *session) Mail(from string, opts *smtp.MailOptions) error {
	defer sess.recoverPanic("MAIL")
	if sess.srv.draining.Load() {
		return sess.reply(errShuttingDown, stageMail)
	}
	if sess.tx.hasFrom {
		return sess.reply(errNestedMail, stageMail)
	}
	utf8 := opts != nil && opts.UTF8
	if err := checkReversePath(sess.srv.mode, sess.acct, from, utf8); err != nil {
		return sess.reply(err, stageMail)
	}
	sess.tx = transaction{from: from, hasFrom: true, utf8: utf8}
	if opts != nil {
		sess.tx.size = opts.Size
	}
	sess.setBusy(true)
	return nil
}

// Rcpt is RCPT TO (RFC 5321 4.1.1.3). go-smtp enforces MaxRecipients.
func (sess *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	defer sess.recoverPanic("RCPT")
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	acct, err := resolveRecipient(ctx, sess.srv.store, sess.srv.cfg.Trust, sess.srv.mode, sess.srv.cfg.Hostname, to, sess.tx.utf8)
	if err != nil {
		return sess.reply(err, stageRcpt)
	}
	sess.tx.rcpts = append(sess.tx.rcpts, recipient{addr: to, account: acct.ID})
	return nil
}

// Data receives the message (DATA or BDAT), checks it, adds the trace
// headers and stores every copy in one transaction. go-smtp answers 250 only
// when Data returns nil, that is after the store committed.
func (sess *session) Data(r io.Reader) error {
	defer sess.recoverPanic("DATA")
	now := time.Now()
	id := newID()
	tx := sess.tx // a copy: with BDAT, Data runs beside the command loop (RSET)

	var buf bytes.Buffer
	trace := traceHeaders(traceInfo{
		from:     tx.from,
		helo:     sess.conn.Hostname(),
		remote:   sess.remote,
		hostname: sess.srv.cfg.Hostname,
		tls:      sess.tls,
		auth:     sess.acct != nil,
		utf8:     tx.utf8,
		id:       id,
		rcpt:     singleRecipient(tx.rcpts),
		date:     now,
	})
	if tx.size > 0 && tx.size <= sess.srv.cfg.MaxMessageBytes {
		buf.Grow(len(trace) + int(tx.size) + 512)
	}
	buf.WriteString(trace)
	// go-smtp already stops at MaxMessageBytes (552 5.3.4); the extra limit
	// guards against a change there.
	lr := io.LimitReader(&deadlineReader{r: r, conn: sess.conn.Conn()}, sess.srv.cfg.MaxMessageBytes+1)
	if _, err := buf.ReadFrom(lr); err != nil {
		return sess.reply(fmt.Errorf("reading message: %w", err), stageData)
	}
	if int64(buf.Len()-len(trace)) > sess.srv.cfg.MaxMessageBytes {
		return sess.reply(smtp.ErrDataTooLarge, stageData)
	}
	raw := buf.Bytes()
	if sess.srv.mode == modeSubmission {
		if err := checkFromHeader(*sess.acct, raw[len(trace):]); err != nil {
			return sess.reply(err, stageData)
		}
	}
	accounts := make([]storage.AccountID, 0, len(tx.rcpts))
	for _, rc := range tx.rcpts {
		accounts = append(accounts, rc.account)
	}
	rcpts := deliveries(sess.srv.mode, sess.acct, accounts)

	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, err := sess.srv.store.Deliver(ctx, raw, now, rcpts); err != nil {
		return sess.reply(fmt.Errorf("delivering message %s: %w", id, err), stageData)
	}
	sess.log.Info("message delivered", "id", id, "size", len(raw), "recipients", len(tx.rcpts), "copies", len(rcpts))
	return nil
}

// Reset ends the transaction (RSET, end of DATA, new EHLO).
func (sess *session) Reset() {
	sess.tx = transaction{}
	sess.setBusy(false)
}

// Logout is called when the connection closes or STARTTLS replaces the
// session.
func (sess *session) Logout() error {
	sess.srv.untrack(sess)
	if sess.conn.Conn() != sess.raw {
		// STARTTLS: go-smtp swapped in the TLS connection; the next session
		// on it keeps this connection id.
		sess.srv.keepConnID(sess.remote, sess.id)
	}
	sess.log.Debug("session ended")
	return nil
}

// singleRecipient returns the recipient address for Received's "for"
// clause when the transaction has exactly one distinct recipient (RFC 5321
// 4.4: never disclose the others, which may be Bcc).
func singleRecipient(rcpts []recipient) string {
	if len(rcpts) == 0 {
		return ""
	}
	for _, r := range rcpts[1:] {
		if r.addr != rcpts[0].addr {
			return ""
		}
	}
	return rcpts[0].addr
}

// deadlineReader re-arms the connection's read deadline before each read
// while a message is transferred: go-smtp sets it once per command, which
// would bound the whole transfer of a large message.
type deadlineReader struct {
	r    io.Reader
	conn net.Conn
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.conn.SetReadDeadline(time.Now().Add(dataBlockTimeout))
	return d.r.Read(p)
}
