package smtpd_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

const (
	domain   = "demo.test"
	hostname = "mx.demo.test"
	// trustedDomain is another operator's domain of the trust space.
	trustedDomain = "operator.mssante.test"
	drAddr        = "dr@demo.test"
	drPass        = "dr-secret"
	nurse         = "nurse@demo.test"
	bob           = "bob@demo.test"
	elise         = "élise@demo.test"
	userPass      = "user-secret"
)

// The test CA and server certificate are made once: RSA key generation is
// the slowest part of a test otherwise.
var (
	caOnce   sync.Once
	testCA   *pki.CA
	testCert tls.Certificate
	caErr    error
)

// The other operator: its own root and the client certificate its MTA
// presents on our port 25, with the DN the trust list names.
var (
	opOnce     sync.Once
	opRoot     *x509.Certificate
	opCert     tls.Certificate
	rogue      tls.Certificate // same DN, from a root nobody trusts
	opErr      error
	operatorDN = "CN=mx.operator.mssante.test,O=Other operator,C=FR"
)

func operator(t testing.TB) (*x509.Certificate, tls.Certificate, tls.Certificate) {
	opOnce.Do(func() {
		var rootKey *rsa.PrivateKey
		opRoot, rootKey, opErr = testRoot("Other operator test root")
		if opErr == nil {
			opCert, opErr = testLeaf(opRoot, rootKey)
		}
		if opErr == nil {
			var rogueRoot *x509.Certificate
			var rogueKey *rsa.PrivateKey
			rogueRoot, rogueKey, opErr = testRoot("Rogue root")
			if opErr == nil {
				rogue, opErr = testLeaf(rogueRoot, rogueKey)
			}
		}
	})
	require.NoError(t, opErr)
	return opRoot, opCert, rogue
}

func testRoot(cn string) (*x509.Certificate, *rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// testLeaf issues the operator's certificate: CN=mx.operator.mssante.test,
// O=Other operator, C=FR, for TLS client and server use.
func testLeaf(root *x509.Certificate, rootKey *rsa.PrivateKey) (tls.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "mx.operator.mssante.test", Organization: []string{"Other operator"}, Country: []string{"FR"}},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"mx.operator.mssante.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &key.PublicKey, rootKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// kicks counts Relay.Kick calls (the relay worker itself is smtp/queue's).
type kicks struct{ n atomic.Int64 }

func (k *kicks) Kick() { k.n.Add(1) }

func ca(t testing.TB) (*pki.CA, tls.Certificate) {
	caOnce.Do(func() {
		testCA, caErr = pki.NewCA("Relais test CA")
		if caErr == nil {
			testCert, caErr = testCA.IssueServer("localhost", "127.0.0.1")
		}
	})
	require.NoError(t, caErr)
	return testCA, testCert
}

type envOptions struct {
	maxBytes  int64
	maxRcpts  int
	wrap      func(smtpd.Store) smtpd.Store
	throttle  *authn.Throttle
	panicsOK  bool
	noCleanup bool
	noRelay   bool
	signer    smtpd.Signer
}

// env is a running submission server (STARTTLS and implicit TLS listeners)
// and inbound server over one sqlite store in t.TempDir().
type env struct {
	t        testing.TB
	store    *sqlite.Store
	sub, in  *smtpd.Server
	subAddr  string // 587-style, STARTTLS
	tlsAddr  string // 465-style, implicit TLS
	inAddr   string // 25-style
	caFile   string
	client   *tls.Config // trusts our CA, presents no certificate
	operator *tls.Config // the other operator's MTA: presents its client certificate
	rogue    *tls.Config // a client certificate with the listed DN from an untrusted root
	kicks    *kicks
	accounts map[string]storage.Account
	log      *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func newEnv(t testing.TB, opts envOptions) *env {
	t.Helper()
	c, cert := ca(t)
	dir := t.TempDir()
	store, err := sqlite.Open(filepath.Join(dir, "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	e := &env{t: t, store: store, accounts: map[string]storage.Account{}}
	ctx := context.Background()
	_, err = store.AddDomain(ctx, domain)
	require.NoError(t, err)
	cheap := authn.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
	for addr, pw := range map[string]string{drAddr: drPass, nurse: userPass, bob: userPass, elise: userPass} {
		h, err := authn.HashPassword(pw, cheap)
		require.NoError(t, err)
		a, err := store.CreateAccount(ctx, addr, "Test "+addr, h)
		require.NoError(t, err)
		e.accounts[addr] = a
	}
	e.caFile = filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(e.caFile, c.CertPEM(), 0o600))
	e.client = &tls.Config{RootCAs: c.Pool(), ServerName: "localhost"}
	opRoot, opCert, rogueCert := operator(t)
	e.operator = &tls.Config{RootCAs: c.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{opCert}}
	e.rogue = &tls.Config{RootCAs: c.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{rogueCert}}
	e.kicks = &kicks{}

	var logBuf syncBuffer
	logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := smtpd.Config{
		Hostname:        hostname,
		TLS:             pki.ServerTLSConfig(cert),
		MaxMessageBytes: opts.maxBytes,
		MaxRecipients:   opts.maxRcpts,
		Logger:          logger,
		Trust:           directory.NewTrust(store),
		Operators:       directory.NewTrust(store),
	}
	if !opts.noRelay {
		cfg.Relay = e.kicks
	}
	cfg.Signer = opts.signer
	// Port 25 verifies client certificates against the trust anchors (here
	// the other operator's root) when one is given.
	inTLS := pki.ServerTLSConfig(cert)
	inTLS.ClientAuth = tls.VerifyClientCertIfGiven
	inTLS.ClientCAs = x509.NewCertPool()
	inTLS.ClientCAs.AddCert(opRoot)
	inCfg := cfg
	inCfg.TLS = inTLS
	// The trust space: one other operator's domain, as an imported trust
	// list gives it.
	operatorKey, err := directory.CanonicalDN(operatorDN)
	require.NoError(t, err)
	require.NoError(t, store.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceTrustList, Trust: []storage.TrustEntry{{
		Domain: trustedDomain, Description: "Other operator", OperatorDN: operatorDN, OperatorKey: operatorKey,
	}}}))
	var st smtpd.Store = store
	if opts.wrap != nil {
		st = opts.wrap(store)
	}
	th := opts.throttle
	if th == nil {
		th = &authn.Throttle{Free: 2, Base: time.Minute, Max: time.Hour, Window: time.Hour, Now: time.Now}
	}
	e.sub = smtpd.NewSubmission(cfg, st, authn.New(store, th))
	e.in = smtpd.NewInbound(inCfg, st)

	serve := func(s *smtpd.Server, ln net.Listener) <-chan error {
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		return done
	}
	serveTLS := func(s *smtpd.Server, ln net.Listener) <-chan error {
		done := make(chan error, 1)
		go func() { done <- s.ServeTLS(ln) }()
		return done
	}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		return ln
	}
	lnSub, lnTLS, lnIn := listen(), listen(), listen()
	e.subAddr, e.tlsAddr, e.inAddr = lnSub.Addr().String(), lnTLS.Addr().String(), lnIn.Addr().String()
	dones := []<-chan error{
		serve(e.sub, lnSub),
		serveTLS(e.sub, lnTLS),
		serve(e.in, lnIn),
	}
	t.Cleanup(func() {
		if !opts.noCleanup {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.sub.Shutdown(ctx); err != nil {
				t.Errorf("submission shutdown: %v", err)
			}
			if err := e.in.Shutdown(ctx); err != nil {
				t.Errorf("inbound shutdown: %v", err)
			}
			for _, d := range dones {
				if err := <-d; err != nil {
					t.Errorf("serve: %v", err)
				}
			}
		}
		if !opts.panicsOK && (e.sub.Panics() != 0 || e.in.Panics() != 0) {
			t.Errorf("recovered panics: submission %d, inbound %d", e.sub.Panics(), e.in.Panics())
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logBuf.String())
		}
		store.Close()
	})
	e.log = &logBuf
	return e
}

// submit opens an authenticated submission connection over STARTTLS.
func (e *env) submit(user, pass string) *smtp.Client {
	e.t.Helper()
	c, err := smtp.DialStartTLS(e.subAddr, e.client)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { c.Close() })
	require.NoError(e.t, c.Auth(sasl.NewPlainClient("", user, pass)))
	return c
}

// inbound opens a port 25 connection as the other operator: STARTTLS with
// its client certificate.
func (e *env) inbound() *smtp.Client {
	e.t.Helper()
	c, err := smtp.DialStartTLS(e.inAddr, e.operator)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { c.Close() })
	return c
}

// inbox returns the raw messages of addr's mailbox, in UID order.
func (e *env) mailbox(addr, name string) []storage.MessageInfo {
	e.t.Helper()
	ctx := context.Background()
	mb, err := e.store.MailboxByName(ctx, e.accounts[addr].ID, name)
	require.NoError(e.t, err)
	msgs, err := e.store.Messages(ctx, e.accounts[addr].ID, mb.ID)
	require.NoError(e.t, err)
	return msgs
}

func (e *env) raw(addr, name string, uid uint32) []byte {
	e.t.Helper()
	ctx := context.Background()
	mb, err := e.store.MailboxByName(ctx, e.accounts[addr].ID, name)
	require.NoError(e.t, err)
	raw, err := e.store.RawMessage(ctx, e.accounts[addr].ID, mb.ID, uid)
	require.NoError(e.t, err)
	return raw
}

// only returns the single message in addr's mailbox.
func (e *env) only(addr, name string) ([]byte, storage.MessageInfo) {
	e.t.Helper()
	msgs := e.mailbox(addr, name)
	require.Len(e.t, msgs, 1, "%s %s", addr, name)
	return e.raw(addr, name, msgs[0].UID), msgs[0]
}

// splitTrace separates the trace headers we prepend from the message as
// sent: everything up to the end of the Received field.
func splitTrace(t testing.TB, raw []byte) (trace string, rest []byte) {
	t.Helper()
	s := string(raw)
	require.True(t, strings.HasPrefix(s, "Return-Path: <"), "starts with Return-Path: %.80q", s)
	i := strings.Index(s, "\r\nReceived: ")
	require.Positive(t, i)
	j := i + 2
	for {
		k := strings.Index(s[j:], "\r\n")
		require.GreaterOrEqual(t, k, 0)
		j += k + 2
		if j >= len(s) || (s[j] != ' ' && s[j] != '\t') {
			break
		}
	}
	return s[:j], raw[j:]
}

func message(from, to, subject, body string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@test>\r\nDate: Mon, 23 Nov 2026 08:00:00 +0100\r\n\r\n" + body
}

// smtpCode returns the reply code and enhanced code of a go-smtp client error.
func smtpCode(t testing.TB, err error) (int, smtp.EnhancedCode, string) {
	t.Helper()
	require.Error(t, err)
	var se *smtp.SMTPError
	require.True(t, errors.As(err, &se), "not an SMTP error: %v", err)
	return se.Code, se.EnhancedCode, se.Message
}

func requireReply(t testing.TB, err error, wantCode int, wantEnh smtp.EnhancedCode) string {
	t.Helper()
	c, enh, msg := smtpCode(t, err)
	require.Equal(t, wantCode, c, "reply %d %v %s", c, enh, msg)
	require.Equal(t, wantEnh, enh, "reply %d %v %s", c, enh, msg)
	return msg
}

func send(c *smtp.Client, msg string) error {
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	return w.Close()
}
