package imapd_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/imap/imapd"
	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

const (
	testDomain   = "example.test"
	testUser     = "alice@example.test"
	testPassword = "correct horse battery"
)

var cheap = authn.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// env is a running server over a real SQLite store, with TLS from a test CA.
type env struct {
	t       testing.TB
	dir     string
	store   *sqlite.Store
	srv     *imapd.Server
	ln      net.Listener // plain, STARTTLS
	tlsLn   net.Listener // implicit TLS
	ca      *pki.CA
	caFile  string
	acct    storage.Account
	tlsConf *tls.Config // server side
}

var (
	testCA     *pki.CA
	testCert   tls.Certificate
	testCAErr  error
	testCAOnce = make(chan struct{})
)

func init() {
	go func() {
		defer close(testCAOnce)
		testCA, testCAErr = pki.NewCA("Relais test CA")
		if testCAErr == nil {
			testCert, testCAErr = testCA.IssueServer("localhost", "127.0.0.1")
		}
	}()
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir}
	e.openStore()
	ctx := context.Background()
	if _, err := e.store.AddDomain(ctx, testDomain); err != nil {
		t.Fatal(err)
	}
	h, err := authn.HashPassword(testPassword, cheap)
	if err != nil {
		t.Fatal(err)
	}
	if e.acct, err = e.store.CreateAccount(ctx, testUser, "Alice", h); err != nil {
		t.Fatal(err)
	}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) openStore() {
	st, err := sqlite.Open(filepath.Join(e.dir, "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = st
}

func (e *env) start() {
	<-testCAOnce
	if testCAErr != nil {
		e.t.Fatal(testCAErr)
	}
	e.ca = testCA
	e.caFile = filepath.Join(e.dir, "ca.pem")
	if err := os.WriteFile(e.caFile, testCA.CertPEM(), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.tlsConf = pki.ServerTLSConfig(testCert)
	logger := slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e.srv = imapd.New(imapd.Config{TLS: e.tlsConf, Logger: logger}, e.store, authn.New(e.store, nil))
	var err error
	if e.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		e.t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.tlsLn = tls.NewListener(ln2, e.tlsConf)
	srv, ln, tlsLn := e.srv, e.ln, e.tlsLn
	go func() { _ = srv.Serve(ln) }()
	go func() { _ = srv.Serve(tlsLn) }()
}

// stop closes server and store, and fails the test if a panic was
// recovered (STYLE.md 7).
func (e *env) stop() {
	if e.srv == nil {
		return
	}
	if n := e.srv.Panics(); n != 0 {
		e.t.Errorf("%d panics recovered in sessions", n)
	}
	_ = e.srv.Close()
	_ = e.store.Close()
	e.srv = nil
}

// restart closes server and store and reopens both on the same file.
func (e *env) restart() {
	e.stop()
	e.openStore()
	e.start()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *env) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: e.ca.Pool(), ServerName: "localhost"}
}

// dial connects with implicit TLS and logs in.
func (e *env) dial(h *imapclient.UnilateralDataHandler) *imapclient.Client {
	e.t.Helper()
	c, err := imapclient.DialTLS(e.tlsLn.Addr().String(), &imapclient.Options{TLSConfig: e.clientTLS(), UnilateralDataHandler: h})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		e.t.Fatalf("login: %v", err)
	}
	return c
}

func (e *env) selectBox(c *imapclient.Client, name string) *imap.SelectData {
	e.t.Helper()
	d, err := c.Select(name, nil).Wait()
	if err != nil {
		e.t.Fatalf("select %s: %v", name, err)
	}
	return d
}

// deliver stores a message in the account's mailbox directly, as SMTP would.
func (e *env) deliver(mailbox, raw string) storage.Delivered {
	e.t.Helper()
	d, err := e.store.Deliver(context.Background(), []byte(raw), time.Now(), []storage.Recipient{{Account: e.acct.ID, Mailbox: mailbox}})
	if err != nil {
		e.t.Fatal(err)
	}
	return d[0]
}

func testMessage(i int, subject, body string) string {
	return fmt.Sprintf("From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\nSubject: %s\r\nDate: Mon, 23 Nov 2026 08:00:%02d +0000\r\nMessage-ID: <m%d@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", subject, i%60, i, body)
}

// waitFor waits until cond is true or fails after d.
func waitFor(t testing.TB, d time.Duration, what string, ch <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

func imapSeq(nums ...uint32) imap.SeqSet { return imap.SeqSetNum(nums...) }

func deleted() *imap.StoreFlags {
	return &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
}

// serveOwn starts a second server on st (the env's store wrapped, e.g. to
// count or fail calls) with cfg's TLS and logger filled in, and returns it
// with a client logged in as the test user, INBOX selected.
func (e *env) serveOwn(t *testing.T, cfg imapd.Config, st imapd.Store) (*imapd.Server, *imapclient.Client) {
	t.Helper()
	cfg.TLS = e.tlsConf
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv := imapd.New(cfg, st, authn.New(e.store, nil))
	t.Cleanup(func() { srv.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	c, err := imapclient.DialStartTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: e.clientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	return srv, c
}
