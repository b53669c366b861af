package smtpd_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// FuzzSession sends arbitrary bytes as SMTP commands and data from an
// authenticated submission client, over a real TLS connection to the
// server on a real SQLite store (RFC 5321 commands, parsed by go-smtp; MAIL,
// RCPT, DATA and BDAT then run here, with the policy checks and the
// store). The invariants: every line the server writes is a reply line
// (RFC 5321 4.2: three digits, then a space or a hyphen); no panic is
// recovered; the server answers the next client.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<dr@demo.test>\r\nRCPT TO:<nurse@demo.test>\r\nDATA\r\nFrom: <dr@demo.test>\r\nSubject: x\r\n\r\nbonjour\r\n.\r\n",
		"MAIL FROM:<dr@demo.test> SIZE=100 BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<élise@demo.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2By@demo.test\r\nDATA\r\nFrom: dr@demo.test\r\n\r\né\r\n..\r\n.\r\n",
		"MAIL FROM:<dr@demo.test> RET=HDRS ENVID=abc+2B\r\nRCPT TO:<someone@operator.mssante.test>\r\nBDAT 30 LAST\r\nFrom: <dr@demo.test>\r\n\r\nxxxxxx",
		"MAIL FROM:<dr@demo.test>\r\nRCPT TO:<bob@demo.test>\r\nBDAT 5\r\nabcdeBDAT 0 LAST\r\n",
		"MAIL FROM:<>\r\nMAIL FROM:<nurse@demo.test>\r\nRCPT TO:<@relay.example:bob@demo.test>\r\nRSET\r\nNOOP\r\nVRFY bob\r\nHELP\r\n",
		"MAIL FROM:<dr@demo.test>\r\nRCPT TO:<x@elsewhere.example>\r\nRCPT TO:<\"quoted local\"@demo.test>\r\nDATA\r\n.\r\n",
		"EHLO again.example\r\nAUTH PLAIN AGRyQGRlbW8udGVzdABkci1zZWNyZXQ=\r\nSTARTTLS\r\n",
		"MAIL FROM:<dr@demo.test>\r\nRCPT TO:<nurse@demo.test>\r\nDATA\r\nFrom: <nurse@demo.test>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/zip; name=IHE_XDM.ZIP\r\n\r\nPK\x03\x04\r\n--b--\r\n.\r\n",
	} {
		f.Add([]byte(s))
	}
	addr, clientTLS, sub := fuzzServer(f, nil)

	f.Fuzz(func(t *testing.T, input []byte) {
		c, r := dialSubmission(t, addr, clientTLS)
		defer c.Close()
		// Bounded: the input may announce a BDAT chunk or leave DATA open;
		// the connection is closed at the deadline either way.
		_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		go func() {
			_, _ = c.Write(input)
			_, _ = io.WriteString(c, "\r\n.\r\nQUIT\r\n")
		}()
		for {
			line, err := r.ReadString('\n')
			if line != "" && !replyLine(line) {
				t.Fatalf("not an SMTP reply line: %q", line)
			}
			if err != nil {
				break
			}
		}
		if n := sub.Panics(); n != 0 {
			t.Fatalf("%d panics recovered", n)
		}
		c2, _ := dialSubmission(t, addr, clientTLS)
		c2.Close()
	})
}

// replyLine reports whether line is an RFC 5321 4.2 reply line (a last
// line may lack its CRLF when the connection ends).
func replyLine(line string) bool {
	if len(line) < 3 {
		return false
	}
	for i := range 3 {
		if line[i] < '0' || line[i] > '9' {
			return false
		}
	}
	if line[0] < '2' || line[0] > '5' {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '-' || line[3] == '\r'
}

// dialSubmission connects with implicit TLS (RFC 8314), says EHLO and
// authenticates as drAddr, requiring the expected replies.
func dialSubmission(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	expectReply := func(code string) {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, code) {
				t.Fatalf("want %s, got %q (%v)", code, line, err)
			}
			if line[3] == ' ' {
				return
			}
		}
	}
	expectReply("220")
	_, _ = io.WriteString(c, "EHLO fuzz.example\r\n")
	expectReply("250")
	_, _ = io.WriteString(c, "AUTH PLAIN "+plainIR("", drAddr, drPass)+"\r\n")
	expectReply("235")
	return c, r
}

// fuzzServer starts a submission server (implicit TLS) over a real SQLite
// store with the accounts (all with drPass) and trust space of newEnv, but
// quick to set up in every fuzz worker: an ECDSA certificate instead of
// newEnv's RSA CA, and no inbound listener. obs may be nil.
func fuzzServer(f testing.TB, obs smtpd.Observer) (addr string, client *tls.Config, sub *smtpd.Server) {
	serverTLS, client := quickTLS(f)
	store, err := sqlite.Open(filepath.Join(f.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(f, err)
	f.Cleanup(func() { store.Close() })
	ctx := context.Background()
	_, err = store.AddDomain(ctx, domain)
	require.NoError(f, err)
	cheap := authn.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
	for _, a := range []string{drAddr, nurse, bob, elise} {
		h, err := authn.HashPassword(drPass, cheap)
		require.NoError(f, err)
		_, err = store.CreateAccount(ctx, a, "Test "+a, h)
		require.NoError(f, err)
	}
	operatorKey, err := directory.CanonicalDN(operatorDN)
	require.NoError(f, err)
	require.NoError(f, store.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceTrustList, Trust: []storage.TrustEntry{{
		Domain: trustedDomain, Description: "Other operator", OperatorDN: operatorDN, OperatorKey: operatorKey,
	}}}))
	// The input may fail AUTH as drAddr: the throttle must not lock the
	// next input's login out.
	lenient := &authn.Throttle{Free: 1 << 30, Base: time.Millisecond, Max: time.Millisecond, Window: time.Second, Now: time.Now}
	sub = smtpd.NewSubmission(smtpd.Config{
		Hostname: hostname, TLS: serverTLS, MaxMessageBytes: 64 << 10, MaxRecipients: 10,
		Logger: slog.New(slog.DiscardHandler), Trust: directory.NewTrust(store), Relay: &kicks{}, Observer: obs,
	}, store, authn.New(store, lenient))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(f, err)
	done := make(chan error, 1)
	go func() { done <- sub.ServeTLS(ln) }()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sub.Shutdown(ctx); err != nil {
			f.Errorf("shutdown: %v", err)
		}
		<-done
	})
	return ln.Addr().String(), client, sub
}

// quickTLS makes a self-signed ECDSA P-256 certificate for localhost and
// 127.0.0.1, and the client configuration that trusts it.
func quickTLS(tb testing.TB) (server, client *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(tb, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(tb, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}, MinVersion: tls.VersionTLS12}
	return server, &tls.Config{RootCAs: pool, ServerName: "localhost"}
}
