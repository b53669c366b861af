package queue_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/smtp/queue"
	"github.com/relais-mssante/relais/smtp/report"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

const (
	localDomain  = "demo.test"
	hostname     = "mx.demo.test"
	sender       = "dr@demo.test"
	remoteDomain = "remote.test"
	rcpt         = "infirmiere@remote.test"
	rcpt2        = "kine@remote.test"
)

// Certificates are made once per test binary: RSA key generation is slow.
var (
	certsOnce sync.Once
	testCA    *pki.CA
	// remoteCert is the remote operator's server certificate (listed in
	// the trust list); rogueCert chains to the same root but is not
	// listed; ourCert is our operator certificate (TLS client).
	remoteCert, rogueCert, ourCert tls.Certificate
	certsErr                       error
)

func certs(t testing.TB) {
	certsOnce.Do(func() {
		if testCA, certsErr = pki.NewCA("Relais queue test CA"); certsErr != nil {
			return
		}
		if remoteCert, certsErr = testCA.IssueServer("mx.remote.test", "127.0.0.1"); certsErr != nil {
			return
		}
		if rogueCert, certsErr = testCA.IssueServer("rogue.remote.test", "127.0.0.1"); certsErr != nil {
			return
		}
		ourCert, certsErr = testCA.IssueServer(hostname, "127.0.0.1")
	})
	require.NoError(t, certsErr)
}

// clock is the worker's clock: tests move it forward to make entries due
// and leases run out, without sleeping.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// received is one message the remote operator accepted.
type received struct {
	from       string
	rcpts      []string
	notify     []smtp.DSNNotify
	orcpt      string
	ret        smtp.DSNReturn
	envID      string
	data       []byte
	tls        bool
	clientCert string // CN of the client certificate
}

// remote is the remote operator: a go-smtp server with STARTTLS that
// requires and verifies a client certificate.
type remote struct {
	t    *testing.T
	srv  *smtp.Server
	addr string

	mu    sync.Mutex
	msgs  []received
	mails int             // MAIL commands seen
	datas int             // DATA commands started
	conns map[string]bool // go-smtp makes a session per EHLO: count connections

	// rcptReply, when set, answers RCPT for that address.
	rcptReply map[string]*smtp.SMTPError
	// inData, when set, receives once the message was read during DATA,
	// and the reply waits for release.
	inData  chan struct{}
	release chan struct{}
}

type remoteOptions struct {
	noTLS bool
	cert  *tls.Certificate
	dsn   bool
	addr  string // listen here (default 127.0.0.1:0)
}

func startRemote(t *testing.T, o remoteOptions) *remote {
	t.Helper()
	certs(t)
	r := &remote{t: t, rcptReply: map[string]*smtp.SMTPError{}, conns: map[string]bool{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		r.mu.Lock()
		r.conns[c.Conn().RemoteAddr().String()] = true
		r.mu.Unlock()
		return &remoteSession{r: r, c: c}, nil
	}))
	srv.Domain = "mx.remote.test"
	srv.EnableDSN = o.dsn
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = discardLog{}
	if !o.noTLS {
		cert := remoteCert
		if o.cert != nil {
			cert = *o.cert
		}
		srv.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    testCA.Pool(),
			MinVersion:   tls.VersionTLS12,
		}
	}
	addr := o.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	r.srv, r.addr = srv, ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *remote) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.msgs...)
}

func (r *remote) counts() (conns, mails, datas int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns), r.mails, r.datas
}

type remoteSession struct {
	r   *remote
	c   *smtp.Conn
	cur received
}

func (s *remoteSession) Reset()        { s.cur = received{} }
func (s *remoteSession) Logout() error { return nil }

func (s *remoteSession) Mail(from string, opts *smtp.MailOptions) error {
	s.r.mu.Lock()
	s.r.mails++
	s.r.mu.Unlock()
	s.cur = received{from: from}
	if opts != nil {
		s.cur.ret, s.cur.envID = opts.Return, opts.EnvelopeID
	}
	if st, ok := s.c.TLSConnectionState(); ok {
		s.cur.tls = true
		if len(st.PeerCertificates) > 0 {
			s.cur.clientCert = st.PeerCertificates[0].Subject.CommonName
		}
	}
	return nil
}

func (s *remoteSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.r.mu.Lock()
	reply := s.r.rcptReply[to]
	s.r.mu.Unlock()
	if reply != nil {
		return reply
	}
	s.cur.rcpts = append(s.cur.rcpts, to)
	if opts != nil {
		s.cur.notify = opts.Notify
		if opts.OriginalRecipient != "" {
			s.cur.orcpt = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	return nil
}

func (s *remoteSession) Data(r io.Reader) error {
	s.r.mu.Lock()
	s.r.datas++
	inData, release := s.r.inData, s.r.release
	s.r.mu.Unlock()
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if inData != nil {
		s.r.mu.Lock()
		s.r.inData = nil // once
		s.r.mu.Unlock()
		close(inData)
		<-release
		return &smtp.SMTPError{Code: 451, Message: "too late"}
	}
	s.cur.data = data
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, s.cur)
	s.r.mu.Unlock()
	return nil
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

// env is a store with the sender's account and the trust list, and a
// worker configuration routed to a remote.
type env struct {
	t         *testing.T
	store     *sqlite.Store
	storePath string
	acct      storage.Account
	clock     *clock
	cfg       queue.Config
}

func newEnv(t *testing.T, route string) *env {
	t.Helper()
	certs(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relais.db")
	st, err := sqlite.Open(path, sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	_, err = st.AddDomain(ctx, localDomain)
	require.NoError(t, err)
	acct, err := st.CreateAccount(ctx, sender, "Dr Test", "x")
	require.NoError(t, err)
	// The remote operator in the trust list, by the DN of its certificate.
	dn, err := directory.SubjectDN(remoteCert.Leaf)
	require.NoError(t, err)
	key, err := directory.CanonicalSubject(remoteCert.Leaf)
	require.NoError(t, err)
	require.NoError(t, st.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceTrustList, Trust: []storage.TrustEntry{{
		Domain: remoteDomain, Description: "synthetic remote operator", OperatorDN: dn, OperatorKey: key,
	}}}))
	// A second ahead: entries queued during the test (stamped with the
	// real time) are due at once.
	c := &clock{now: time.Now().Add(time.Second)}
	return &env{t: t, store: st, storePath: path, acct: acct, clock: c, cfg: queue.Config{
		Hostname:    hostname,
		Store:       st,
		Routes:      map[string]string{remoteDomain: route},
		ClientCert:  func() (*tls.Certificate, error) { return &ourCert, nil },
		RootCAs:     testCA.Pool(),
		Operators:   directory.NewTrust(st),
		Backoff:     []time.Duration{time.Minute},
		DelayNotice: -1,
		Workers:     2,
		LeaseFor:    time.Minute,
		Poll:        20 * time.Millisecond,
		Logger:      testLogger(),
		Now:         c.Now,
	}}
}

// start runs a worker until the test ends; stop ends it and waits.
func (e *env) start() (w *queue.Worker, stop func()) {
	e.t.Helper()
	w, err := queue.New(e.cfg)
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(e.t, err)
			case <-time.After(20 * time.Second):
				e.t.Error("worker did not stop")
			}
		})
	}
	e.t.Cleanup(stop)
	return w, stop
}

const messageID = "msg-1@demo.test"

func message(body string) []byte {
	return []byte("From: Dr Test <" + sender + ">\r\nTo: <" + rcpt + ">\r\nSubject: Compte rendu\r\nMessage-ID: <" + messageID + ">\r\n\r\n" + body + "\r\n")
}

// enqueue queues a message from the sender to rcpts.
func (e *env) enqueue(out storage.Outbound) storage.QueueID {
	e.t.Helper()
	if out.Raw == nil {
		out.Raw = message("Synthetic body.")
	}
	if out.Expires.IsZero() {
		out.Expires = e.clock.Now().Add(5 * 24 * time.Hour)
	}
	id, err := e.store.Enqueue(context.Background(), out)
	require.NoError(e.t, err)
	return id
}

func (e *env) outbound(rcpts ...storage.OutboundRecipient) storage.Outbound {
	return storage.Outbound{Account: e.acct.ID, Sender: sender, MessageID: messageID, Recipients: rcpts}
}

// waitFor polls cond until it holds (10 s at most).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gone waits until the entry left the queue.
func (e *env) waitGone(id storage.QueueID) {
	e.t.Helper()
	waitFor(e.t, "the entry to leave the queue", func() bool {
		_, err := e.store.QueueEntry(context.Background(), id)
		return errors.Is(err, storage.ErrNotFound)
	})
}

// waitAttempts waits until every pending recipient of the entry has had n
// attempts, and returns the entry.
func (e *env) waitAttempts(id storage.QueueID, n int) storage.QueueEntry {
	e.t.Helper()
	var entry storage.QueueEntry
	waitFor(e.t, "the attempt to be recorded", func() bool {
		var err error
		entry, err = e.store.QueueEntry(context.Background(), id)
		require.NoError(e.t, err)
		for _, r := range entry.Recipients {
			if r.Attempts < n {
				return false
			}
		}
		return entry.LeaseUntil.IsZero()
	})
	return entry
}

// inbox returns the messages in the sender's INBOX.
func (e *env) inbox() [][]byte {
	e.t.Helper()
	ctx := context.Background()
	mb, err := e.store.MailboxByName(ctx, e.acct.ID, "INBOX")
	require.NoError(e.t, err)
	infos, err := e.store.Messages(ctx, e.acct.ID, mb.ID)
	require.NoError(e.t, err)
	var out [][]byte
	for _, m := range infos {
		raw, err := e.store.RawMessage(ctx, e.acct.ID, mb.ID, m.UID)
		require.NoError(e.t, err)
		out = append(out, raw)
	}
	return out
}

// dsn waits for exactly one report in the INBOX and parses it.
func (e *env) dsn() report.Report {
	e.t.Helper()
	var msgs [][]byte
	waitFor(e.t, "a report in the INBOX", func() bool { msgs = e.inbox(); return len(msgs) > 0 })
	require.Len(e.t, msgs, 1)
	rep, err := report.Parse(msgs[0])
	require.NoError(e.t, err)
	return rep
}

func (e *env) status(addr string) storage.DeliveryStatus {
	e.t.Helper()
	sts, err := e.store.DeliveryStatuses(context.Background(), e.acct.ID, messageID)
	require.NoError(e.t, err)
	for _, s := range sts {
		if strings.EqualFold(s.Recipient, addr) {
			return s
		}
	}
	return storage.DeliveryStatus{}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// testLogger logs to stderr with RELAIS_TEST_LOG=1.
func testLogger() *slog.Logger {
	if os.Getenv("RELAIS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
