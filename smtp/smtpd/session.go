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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/relais-mssante/relais/directory"
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
	// operator is, inbound, the operator of the trust space whose verified
	// client certificate the peer presented; nil otherwise.
	operator *directory.Operator

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
	utf8    bool   // SMTPUTF8 given on MAIL, RFC 6531 3.4
	size    int64  // SIZE= announced on MAIL, RFC 1870
	ret     string // RFC 3461 4.3
	envID   string // RFC 3461 4.4
	rcpts   []recipient
}

// recipient is one accepted RCPT TO.
type recipient struct {
	addr    string
	account storage.AccountID // 0 for a remote recipient
	remote  bool
	notify  []string // RFC 3461 4.1
	orcpt   string   // RFC 3461 4.2, "type;address"
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
	if isTLS && s.mode == modeInbound {
		sess.operator = s.peerOperator(sess.log, state)
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
	if sess.srv.mode == modeInbound {
		if err := checkOperator(sess.tls != nil, sess.operator, from); err != nil {
			return sess.reply(err, stageMail)
		}
	}
	sess.tx = transaction{from: from, hasFrom: true, utf8: utf8}
	if opts != nil {
		sess.tx.size = opts.Size
		sess.tx.ret = string(opts.Return)
		sess.tx.envID = opts.EnvelopeID
	}
	sess.setBusy(true)
	return nil
}

// Rcpt is RCPT TO (RFC 5321 4.1.1.3). go-smtp enforces MaxRecipients.
func (sess *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	defer sess.recoverPanic("RCPT")
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	relay := sess.srv.cfg.Relay != nil
	acct, remote, err := resolveRecipient(ctx, sess.srv.store, sess.srv.cfg.Trust, relay, sess.srv.mode, sess.srv.cfg.Hostname, to, sess.tx.utf8)
	if err != nil {
		return sess.reply(err, stageRcpt)
	}
	rc := recipient{addr: to, account: acct.ID, remote: remote}
	if opts != nil {
		for _, n := range opts.Notify {
			rc.notify = append(rc.notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			rc.orcpt = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	sess.tx.rcpts = append(sess.tx.rcpts, rc)
	return nil
}

// Data receives the message (DATA or BDAT), checks it, adds the trace
// headers and stores every copy in one transaction. go-smtp answers 250 only
// when Data returns nil, that is after the store committed.
func (sess *session) Data(r io.Reader) (err error) {
	defer sess.recoverPanic("DATA")
	now := time.Now()
	id := newID()
	tx := sess.tx // a copy: with BDAT, Data runs beside the command loop (RSET)
	defer func() { sess.srv.observe(sess.srv.mode.String(), tx.rcpts, err, now) }()

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
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if sess.srv.mode == modeSubmission {
		return sess.submit(ctx, tx, trace, raw[len(trace):], now, id)
	}
	return sess.deliverInbound(ctx, tx, trace, raw[len(trace):], now, id)
}

// submit stores a submission: a copy for each local recipient and the
// sender's Sent copy as submitted, and, for recipients of other operators,
// one outbound entry signed as the sender; all in one transaction, with
// the delivery status of every recipient.
func (sess *session) submit(ctx context.Context, tx transaction, trace string, msg []byte, now time.Time, id string) error {
	if err := checkFromHeader(*sess.acct, msg); err != nil {
		return sess.reply(err, stageData)
	}
	if err := sess.srv.submitMessage(ctx, *sess.acct, tx, trace, msg, now, id, sess.log); err != nil {
		return sess.reply(err, stageData)
	}
	return nil
}

// submitMessage is the submission pipeline after the checks, shared by SMTP and
// Send (the documents API).
func (s *Server) submitMessage(ctx context.Context, acct storage.Account, tx transaction, trace string, msg []byte, now time.Time, id string, log *slog.Logger) error {
	var local []storage.AccountID
	var localAddrs []string
	var remote []storage.OutboundRecipient
	for _, rc := range tx.rcpts {
		if rc.remote {
			remote = append(remote, storage.OutboundRecipient{Address: rc.addr, Notify: rc.notify, ORCPT: rc.orcpt})
			continue
		}
		local = append(local, rc.account)
		localAddrs = append(localAddrs, rc.addr)
	}
	// The delivery status is keyed by Message-ID. RFC 6409 8.3: the MSA
	// may add a missing one; it does so only for mail that leaves (reports
	// from the other operator need it), and keeps local mail as submitted.
	msgID := messageID(msg)
	if msgID == "" && len(remote) > 0 {
		msgID, msg = addMessageID(msg, s.cfg.Hostname, id, now)
	}
	// The local copies carry the verdict on their structured documents;
	// the copy that leaves does not (the other operator reads them itself).
	localMsg := msg
	var recordDocs func(context.Context, []DeliveredCopy)
	if d := s.cfg.Documents; d != nil && len(local) > 0 {
		localMsg, recordDocs = d.Inspect(ctx, tx.from, msg)
	}
	sub := storage.Submission{
		Raw:            append([]byte(trace), localMsg...),
		InternalDate:   now,
		Local:          deliveries(modeSubmission, &acct, local),
		Account:        acct.ID,
		MessageID:      msgID,
		LocalAddresses: localAddrs,
	}
	if len(remote) > 0 {
		out := msg
		if s.cfg.Signer != nil {
			signed, err := s.cfg.Signer.Sign(ctx, tx.from, msg)
			if err != nil {
				return fmt.Errorf("signing message %s: %w", id, err)
			}
			out = signed
		}
		// RFC 5321 4.4: the relayed copy keeps our Received field, not the
		// Return-Path, which only final delivery adds.
		received := trace[strings.Index(trace, "\r\n")+2:]
		sub.Outbound = &storage.Outbound{
			Account:    acct.ID,
			Sender:     tx.from,
			MessageID:  msgID,
			Raw:        append([]byte(received), out...),
			Recipients: remote,
			Ret:        tx.ret,
			EnvID:      tx.envID,
			Expires:    now.Add(s.cfg.QueueExpiry),
		}
	}
	copies, qid, err := s.store.Submit(ctx, sub)
	if err != nil {
		return fmt.Errorf("storing message %s: %w", id, err)
	}
	if recordDocs != nil {
		// The Sent copy, last, is the sender's own: not a reception.
		recordDocs(ctx, deliveredCopies(copies[:len(copies)-1], tx.rcpts))
	}
	if qid != 0 {
		s.cfg.Relay.Kick()
	}
	if rep := s.cfg.Reports; rep != nil && len(local) > 0 {
		// A read receipt (MDN) or a report from one local user to another
		// updates the status as one from another operator does.
		rep.Incoming(ctx, msg, local)
	}
	log.Info("message submitted", "id", id, "size", len(msg), "local", len(local), "remote", len(remote), "queue", int64(qid))
	return nil
}

// deliverInbound delivers mail from another operator: decrypted and
// verified when it is S/MIME (the result in a header), then stored for every
// local recipient in one transaction; a delivery report updates the status
// of the message it is about, and NOTIFY=SUCCESS gets its DSN.
func (sess *session) deliverInbound(ctx context.Context, tx transaction, trace string, msg []byte, now time.Time, id string) error {
	accounts := make([]storage.AccountID, 0, len(tx.rcpts))
	addrs := make([]string, 0, len(tx.rcpts))
	for _, rc := range tx.rcpts {
		accounts = append(accounts, rc.account)
		addrs = append(addrs, rc.addr)
	}
	if sess.srv.cfg.Opener != nil {
		msg = sess.srv.cfg.Opener.Open(ctx, msg, addrs)
	}
	var recordDocs func(context.Context, []DeliveredCopy)
	if d := sess.srv.cfg.Documents; d != nil {
		msg, recordDocs = d.Inspect(ctx, tx.from, msg)
	}
	raw := append([]byte(trace), msg...)
	copies, err := sess.srv.store.Deliver(ctx, raw, now, deliveries(sess.srv.mode, nil, accounts))
	if err != nil {
		return sess.reply(fmt.Errorf("delivering message %s: %w", id, err), stageData)
	}
	if recordDocs != nil {
		recordDocs(ctx, deliveredCopies(copies, tx.rcpts))
	}
	sess.log.Info("message delivered", "id", id, "size", len(raw), "recipients", len(tx.rcpts))
	if rep := sess.srv.cfg.Reports; rep != nil {
		// After the commit: a failure here must not turn the 250 into an
		// error, the message is safe.
		rep.Incoming(ctx, msg, accounts)
		var notify []storage.OutboundRecipient
		for _, rc := range tx.rcpts {
			if slices.Contains(rc.notify, storage.NotifySuccess) {
				notify = append(notify, storage.OutboundRecipient{Address: rc.addr, Notify: rc.notify, ORCPT: rc.orcpt})
			}
		}
		if len(notify) > 0 && tx.from != "" {
			err := rep.Delivered(ctx, DeliveredReport{Sender: tx.from, EnvID: tx.envID, Ret: tx.ret, Recipients: notify, Message: raw, Arrival: now})
			if err != nil {
				sess.log.Warn("success DSN not sent", "id", id, "err", err)
			}
		}
	}
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

// peerOperator returns the operator of the trust space behind the client
// certificate of an inbound TLS connection, or nil. The certificate must
// have been verified by the TLS handshake against the configured anchors
// (Config.TLS with ClientAuth VerifyClientCertIfGiven): a self-made
// certificate that merely copies a listed DN is not enough.
func (s *Server) peerOperator(log *slog.Logger, state tls.ConnectionState) *directory.Operator {
	if len(state.PeerCertificates) == 0 {
		return nil
	}
	if len(state.VerifiedChains) == 0 || s.cfg.Operators == nil {
		log.Info("client certificate not verified", "subject", state.PeerCertificates[0].Subject.String())
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	op, err := s.cfg.Operators.PeerOperator(ctx, state.PeerCertificates[0])
	if err != nil {
		log.Info("client certificate not of a listed operator", "subject", state.PeerCertificates[0].Subject.String(), "err", err)
		return nil
	}
	log.Debug("operator authenticated", "dn", op.DN)
	return &op
}

// deliveredCopies pairs the copies Deliver returned (one per distinct
// account, in the order of the recipients) with the address each account
// was reached at.
func deliveredCopies(copies []storage.Delivered, rcpts []recipient) []DeliveredCopy {
	addr := make(map[storage.AccountID]string, len(rcpts))
	for _, rc := range rcpts {
		if _, ok := addr[rc.account]; !ok && !rc.remote {
			addr[rc.account] = rc.addr
		}
	}
	out := make([]DeliveredCopy, 0, len(copies))
	for _, c := range copies {
		out = append(out, DeliveredCopy{Delivered: c, Address: addr[c.Account]})
	}
	return out
}
