package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/storage"
)

// target is one address to connect to for a domain.
type target struct {
	host string // the MX host name (TLS server name, Remote-MTA)
	addr string // ip:port or host:port
}

// relayError is a failure before or around a transaction, with the RFC
// 3463 status a report gives it.
type relayError struct {
	status    string // "4.4.1"...
	permanent bool
	msg       string
}

func (e *relayError) Error() string { return e.msg }

func tempErr(status, format string, a ...any) *relayError {
	return &relayError{status: status, msg: fmt.Sprintf(format, a...)}
}

// targets locates the hosts of a domain (RFC 5321 5.1): a configured
// route, else its MX records by preference, else the domain itself
// (implicit MX); a null MX (RFC 7505) is a permanent failure.
func (w *Worker) targets(ctx context.Context, domain string) ([]target, error) {
	if r, ok := w.cfg.Routes[domain]; ok {
		host, _, _ := net.SplitHostPort(r)
		return []target{{host: host, addr: r}}, nil
	}
	var hosts []string
	mxs, err := w.cfg.Resolver.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == ""):
		return nil, &relayError{status: "5.1.10", permanent: true, msg: fmt.Sprintf("domain %s accepts no mail (null MX, RFC 7505)", domain)}
	case err == nil && len(mxs) > 0:
		// net.LookupMX sorts by preference, randomising equal ones.
		for _, mx := range mxs {
			hosts = append(hosts, strings.TrimSuffix(mx.Host, "."))
		}
	case err == nil || errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		hosts = []string{domain} // RFC 5321 5.1: the implicit MX
	default:
		return nil, tempErr("4.4.3", "looking up the MX of %s: %v", domain, err)
	}
	var out []target
	var lastErr error
	for _, h := range hosts {
		addrs, err := w.cfg.Resolver.LookupHost(ctx, h)
		if err != nil {
			lastErr = err
			continue
		}
		for _, a := range addrs {
			out = append(out, target{host: h, addr: net.JoinHostPort(a, "25")})
			if len(out) == maxTargets {
				return out, nil
			}
		}
	}
	if len(out) == 0 {
		if lastErr == nil {
			lastErr = errors.New("no address")
		}
		return nil, tempErr("4.4.3", "looking up the mail hosts of %s: %v", domain, lastErr)
	}
	return out, nil
}

// deliverDomain delivers an entry's recipients of one domain over one
// connection: the first host that accepts a verified TLS session gets all
// the transactions.
func (w *Worker) deliverDomain(ctx context.Context, log *slog.Logger, e storage.QueueEntry, raw []byte, domain string, rcpts []storage.QueueRecipient) []outcome {
	all := func(err error, host string) []outcome {
		out := make([]outcome, len(rcpts))
		for i, r := range rcpts {
			out[i] = errOutcome(r, err, host)
		}
		return out
	}
	log = log.With("domain", domain)
	targets, err := w.targets(ctx, domain)
	if err != nil {
		log.Warn("no route", "err", err)
		return all(err, "")
	}
	var lastErr error
	var lastHost string
	for _, t := range targets {
		s, err := w.connect(ctx, t, domain)
		if err != nil {
			log.Warn("connection failed", "host", t.host, "addr", t.addr, "err", err)
			lastErr, lastHost = err, t.host
			if ctx.Err() != nil {
				break
			}
			continue
		}
		defer s.close()
		return w.transactions(ctx, log.With("host", t.host), s, e, raw, rcpts)
	}
	return all(lastErr, lastHost)
}

// session is a verified connection to a remote operator.
type session struct {
	c    *smtp.Client
	host string
	stop func() bool // stops closing the connection on ctx end
	dsn  bool        // the server offers DSN (RFC 3461 4)
	utf8 bool
}

func (s *session) close() {
	s.stop()
	_ = s.c.Quit() // closes the connection on success
	_ = s.c.Close()
}

// connect dials t, says EHLO, requires STARTTLS (RFC 3207), verifies the
// server certificate against the roots and the trust list, and returns a
// client past the TLS EHLO. Nothing of the message is sent before.
func (w *Worker) connect(ctx context.Context, t target, domain string) (_ *session, err error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, tempErr("4.4.1", "connecting to %s (%s): %v", t.host, t.addr, err) // RFC 3463 4.4.1 no answer
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() {
		if err != nil {
			stop()
			conn.Close()
		}
	}()
	_ = conn.SetDeadline(time.Now().Add(commandTimeout))

	// Clear-text part: greeting, EHLO, STARTTLS, read with textproto
	// because go-smtp's client cannot say EHLO with our name before
	// STARTTLS.
	tp := textproto.NewConn(conn)
	if _, msg, err := tp.ReadResponse(220); err != nil {
		return nil, tempErr("4.4.2", "greeting from %s: %v", t.host, oneLineErr(err, msg))
	}
	if err := tp.PrintfLine("EHLO %s", w.cfg.Hostname); err != nil {
		return nil, tempErr("4.4.2", "EHLO to %s: %v", t.host, err)
	}
	_, msg, err := tp.ReadResponse(250)
	if err != nil {
		return nil, tempErr("4.4.2", "EHLO to %s: %v", t.host, oneLineErr(err, msg))
	}
	if !hasExtension(msg, "STARTTLS") {
		// MSSanté: never in clear. Deferred: the remote may fix it.
		return nil, tempErr("4.7.10", "%s does not offer STARTTLS; mail is never sent in clear", t.host) // RFC 5248 X.7.10 encryption needed
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, tempErr("4.4.2", "STARTTLS to %s: %v", t.host, err)
	}
	if _, msg, err := tp.ReadResponse(220); err != nil {
		return nil, tempErr("4.7.5", "STARTTLS to %s: %v", t.host, oneLineErr(err, msg))
	}
	if tp.R.Buffered() > 0 {
		// Data after the 220 would be read as if it came over TLS (the
		// STARTTLS injection of CVE-2011-0411).
		return nil, tempErr("4.7.5", "%s sent data after its STARTTLS reply", t.host)
	}
	cfg := &tls.Config{
		ServerName:   t.host,
		RootCAs:      w.cfg.RootCAs,
		MinVersion:   tls.VersionTLS12,
		CipherSuites: w.cfg.TLSSuites,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return w.cfg.ClientCert()
		},
	}
	tconn := tls.Client(conn, cfg)
	if err := tconn.HandshakeContext(ctx); err != nil {
		return nil, tempErr("4.7.5", "TLS with %s: %v", t.host, err) // RFC 3463 X.7.5 cryptographic failure
	}
	state := tconn.ConnectionState()
	if len(state.PeerCertificates) == 0 {
		return nil, tempErr("4.7.5", "TLS with %s: no server certificate", t.host)
	}
	leaf := state.PeerCertificates[0]
	op, err := w.cfg.Operators.PeerOperator(ctx, leaf)
	if err != nil {
		dn, _ := directory.SubjectDN(leaf)
		if errors.Is(err, directory.ErrNotTrusted) {
			return nil, tempErr("4.7.0", "%s presents certificate %q, not an operator of the trust list", t.host, dn)
		}
		return nil, tempErr("4.7.0", "checking %s against the trust list: %v", t.host, err)
	}
	if !op.Serves(domain) {
		return nil, tempErr("4.7.0", "%s is operator %q, which the trust list does not give domain %s", t.host, op.DN, domain)
	}

	// The TLS part goes to go-smtp's client, which expects a greeting: give
	// it the one already received (RFC 3207 4.2: the session restarts
	// with EHLO, no new greeting).
	c := smtp.NewClient(&greetedConn{Conn: tconn, r: io.MultiReader(strings.NewReader("220 "+t.host+" ready\r\n"), tconn)})
	c.CommandTimeout = commandTimeout
	c.SubmissionTimeout = submissionTimeout
	if err := c.Hello(w.cfg.Hostname); err != nil {
		c.Close()
		return nil, tempErr("4.4.2", "EHLO over TLS to %s: %v", t.host, err)
	}
	_ = conn.SetDeadline(time.Time{})
	s := &session{c: c, host: t.host, stop: stop}
	s.dsn, _ = c.Extension("DSN")
	s.utf8, _ = c.Extension("SMTPUTF8")
	return s, nil
}

// transactions sends one transaction per recipient (each gets its own
// sealed copy), RSET between them (RFC 5321 4.1.1.5). A broken connection
// defers the recipients left.
func (w *Worker) transactions(ctx context.Context, log *slog.Logger, s *session, e storage.QueueEntry, raw []byte, rcpts []storage.QueueRecipient) []outcome {
	var out []outcome
	for i, r := range rcpts {
		if i > 0 {
			if err := s.c.Reset(); err != nil {
				err = connErr(s.host, "RSET", err)
				for _, r := range rcpts[i:] {
					out = append(out, errOutcome(r, err, s.host))
				}
				return out
			}
		}
		o, broken := w.transaction(ctx, s, e, raw, r)
		log.Info("delivery attempt", "outcome", o.kindName(), "code", replyCode(o.reply), "status", o.status)
		out = append(out, o)
		if broken {
			for _, r := range rcpts[i+1:] {
				out = append(out, outcome{rcpt: r, kind: deferred, reply: o.reply, status: o.status, host: s.host})
			}
			return out
		}
	}
	return out
}

// transaction sends the message to one recipient; broken reports a
// connection that cannot carry another transaction.
func (w *Worker) transaction(ctx context.Context, s *session, e storage.QueueEntry, raw []byte, r storage.QueueRecipient) (o outcome, broken bool) {
	o = outcome{rcpt: r, host: s.host, remoteDSN: s.dsn}
	body := raw
	if w.cfg.Sealer != nil {
		sealed, err := w.cfg.Sealer.Seal(ctx, raw, r.Address)
		if err != nil {
			o.reply = "encrypting for the recipient: " + err.Error()
			if errors.Is(err, ErrPermanent) {
				o.kind, o.status = failed, "5.7.0"
			} else {
				o.kind, o.status = deferred, "4.7.0"
			}
			return o, false
		}
		body = sealed
	}
	needUTF8 := !isASCII(e.Sender) || !isASCII(r.Address)
	if needUTF8 && !s.utf8 {
		// RFC 6531 3.2: a non-ASCII address cannot go to a server without
		// SMTPUTF8.
		o.kind, o.status, o.reply = failed, "5.6.7", s.host+" does not offer SMTPUTF8, needed for a non-ASCII address"
		return o, false
	}
	mopts := &smtp.MailOptions{Size: int64(len(body)), UTF8: needUTF8}
	if ret := strings.ToUpper(e.Ret); ret == "FULL" || ret == "HDRS" {
		mopts.Return = smtp.DSNReturn(ret) // RFC 3461 4.3, sent only if DSN is offered
	}
	if isXtextSafe(e.EnvID) {
		mopts.EnvelopeID = e.EnvID // 4.4
	}
	if err := s.c.Mail(e.Sender, mopts); err != nil {
		return replyOutcome(o, "MAIL", err)
	}
	if err := s.c.Rcpt(r.Address, rcptOptions(r, s.utf8)); err != nil {
		return replyOutcome(o, "RCPT", err)
	}
	wc, err := s.c.Data()
	if err != nil {
		return replyOutcome(o, "DATA", err)
	}
	if _, err := wc.Write(body); err != nil {
		return replyOutcome(o, "DATA", err)
	}
	resp, err := wc.CloseWithResponse()
	if err != nil {
		return replyOutcome(o, "end of DATA", err)
	}
	o.kind, o.status, o.reply = relayed, "2.0.0", oneLine("250 "+resp.StatusText)
	return o, false
}

// rcptOptions passes NOTIFY and ORCPT on (RFC 3461 4.1, 4.2); go-smtp
// sends them only when the server offers DSN.
func rcptOptions(r storage.QueueRecipient, utf8 bool) *smtp.RcptOptions {
	opts := &smtp.RcptOptions{}
	var notify []smtp.DSNNotify
	for _, n := range r.Notify {
		switch k := smtp.DSNNotify(strings.ToUpper(n)); k {
		case smtp.DSNNotifyNever:
			notify = []smtp.DSNNotify{k}
		case smtp.DSNNotifySuccess, smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed:
			if !slices.Contains(notify, smtp.DSNNotifyNever) && !slices.Contains(notify, k) {
				notify = append(notify, k)
			}
		}
	}
	opts.Notify = notify
	if typ, addr, ok := strings.Cut(r.ORCPT, ";"); ok && addr != "" {
		switch strings.ToUpper(strings.TrimSpace(typ)) {
		case "RFC822":
			if isXtextSafe(addr) {
				opts.OriginalRecipientType, opts.OriginalRecipient = smtp.DSNAddressTypeRFC822, addr
			}
		case "UTF-8":
			opts.OriginalRecipientType, opts.OriginalRecipient = smtp.DSNAddressTypeUTF8, addr
		}
	}
	return opts
}

// replyOutcome maps an error of a command: an SMTP reply decides by its
// class (RFC 5321 4.2.1: 5yz permanent, 4yz transient); anything else is
// a broken connection, deferred.
func replyOutcome(o outcome, stage string, err error) (outcome, bool) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		o.reply = oneLine(formatReply(se))
		o.status = enhanced(se)
		switch se.Code / 100 {
		case 5:
			o.kind = failed
		default:
			o.kind = deferred
		}
		// A 421 closes the session (RFC 5321 3.8).
		return o, se.Code == 421
	}
	ce := connErr(o.host, stage, err)
	o.kind, o.reply, o.status = deferred, ce.msg, ce.status
	return o, true
}

func connErr(host, stage string, err error) *relayError {
	return tempErr("4.4.2", "%s with %s: %v", stage, host, err) // RFC 3463 4.4.2 bad connection
}

func errOutcome(r storage.QueueRecipient, err error, host string) outcome {
	o := outcome{rcpt: r, kind: deferred, reply: oneLine(err.Error()), status: "4.0.0", host: host}
	var re *relayError
	if errors.As(err, &re) {
		o.status = re.status
		if re.permanent {
			o.kind = failed
		}
	}
	return o
}

func formatReply(se *smtp.SMTPError) string {
	if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
		c := se.EnhancedCode
		return fmt.Sprintf("%d %d.%d.%d %s", se.Code, c[0], c[1], c[2], se.Message)
	}
	return fmt.Sprintf("%d %s", se.Code, se.Message)
}

// enhanced returns the reply's RFC 3463 code, or the class's X.0.0.
func enhanced(se *smtp.SMTPError) string {
	c := se.EnhancedCode
	if c != (smtp.EnhancedCode{}) && c != smtp.NoEnhancedCode && (c[0] == 4 || c[0] == 5) {
		return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
	}
	if se.Code/100 == 5 {
		return "5.0.0"
	}
	return "4.0.0"
}

func (o outcome) kindName() string {
	switch o.kind {
	case relayed:
		return "relayed"
	case failed:
		return "failed"
	}
	return "deferred"
}

// replyCode is the reply code at the start of a reply, 0 for a local
// error: logs carry the code, not the text (which may name the recipient).
func replyCode(reply string) int {
	if len(reply) >= 3 && reply[0] >= '2' && reply[0] <= '5' {
		n := 0
		for i := 0; i < 3; i++ {
			if reply[i] < '0' || reply[i] > '9' {
				return 0
			}
			n = n*10 + int(reply[i]-'0')
		}
		return n
	}
	return 0
}

func hasExtension(ehlo, ext string) bool {
	lines := strings.Split(ehlo, "\n")
	for _, l := range lines[min(1, len(lines)):] {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], ext) {
			return true
		}
	}
	return false
}

func oneLineErr(err error, msg string) string {
	if msg != "" {
		return oneLine(msg)
	}
	return err.Error()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isXtextSafe: printable ASCII, which go-smtp encodes as xtext (RFC 3461 4).
func isXtextSafe(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// greetedConn replays the greeting in front of the TLS stream.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.r.Read(p) }
