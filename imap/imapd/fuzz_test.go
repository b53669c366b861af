package imapd_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relais-mssante/relais/imap/imapd"
	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// FuzzSession sends arbitrary bytes as IMAP commands from a logged-in
// client with INBOX selected, over a real TLS connection to a server on a
// real SQLite store (the RFC 9051 grammar is parsed by go-imap; the
// commands then run here). The invariants: no panic is recovered (a
// recovered one is a bug turned into NO [SERVERBUG]); the server answers
// the next client normally; and INBOX's UIDNEXT never goes backwards while
// its UIDVALIDITY stays (RFC 9051 2.3.1.1).
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"a1 NOOP\r\n",
		"a1 FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
		"a1 UID FETCH 1:* (BINARY.PEEK[1]<0.10> BODY.PEEK[TEXT])\r\n",
		"a1 SEARCH CHARSET UTF-8 OR SUBJECT réunion BODY \"x\" SINCE 1-Jan-2020\r\n",
		"a1 UID SEARCH RETURN (MIN MAX COUNT SAVE) NOT DELETED\r\na2 FETCH $ FLAGS\r\n",
		"a1 STORE 1:2 +FLAGS.SILENT (\\Seen $Label1)\r\na2 UID STORE 1 (UNCHANGEDSINCE 1) -FLAGS (\\Seen)\r\n",
		"a1 CREATE \"Dossiers/Patients\"\r\na2 COPY 1 Dossiers/Patients\r\na3 MOVE 2 Trash\r\na4 LIST \"\" * RETURN (STATUS (MESSAGES UNSEEN SIZE))\r\n",
		"a1 RENAME Drafts Brouillons\r\na2 DELETE Brouillons\r\na3 STATUS INBOX (UIDNEXT UIDVALIDITY HIGHESTMODSEQ)\r\n",
		"a1 APPEND INBOX (\\Seen) {12+}\r\nSubject: x\r\n\r\na2 STORE 1 +FLAGS (\\Deleted)\r\na3 EXPUNGE\r\n",
		"a1 IDLE\r\nDONE\r\na2 UNSELECT\r\na3 NAMESPACE\r\n",
		"a1 SELECT \"&AOk-t&AOk-\"\r\na2 EXAMINE INBOX (CONDSTORE)\r\n",
		"a1 FETCH 4294967295:* (BODY[1.2.3.MIME])\r\na2 SEARCH UID 1:*,2:3 LARGER 4294967295\r\n",
		"a1 UNAUTHENTICATE\r\na2 LOGIN x y\r\n",
	} {
		f.Add([]byte(s))
	}
	addr, clientTLS, srv := fuzzServer(f)
	var last inboxStatus

	f.Fuzz(func(t *testing.T, input []byte) {
		c, r := dialLogin(t, addr, clientTLS)
		defer c.Close()
		if _, err := io.WriteString(c, "l2 SELECT INBOX\r\n"); err != nil {
			t.Fatal(err)
		}
		waitTagged(t, r, "l2 ")
		// Bounded: the input may open a literal the server waits for, or
		// IDLE; the connection is closed at the deadline either way.
		_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		go func() {
			_, _ = c.Write(input)
			_, _ = io.WriteString(c, "\r\nzz9 LOGOUT\r\n")
		}()
		_, _ = io.Copy(io.Discard, r)
		if n := srv.Panics(); n != 0 {
			t.Fatalf("%d panics recovered", n)
		}
		// The server still serves others, and INBOX's counters moved
		// forward only.
		c2, r2 := dialLogin(t, addr, clientTLS)
		defer c2.Close()
		st := statusInbox(t, c2, r2)
		if st.uidValidity == last.uidValidity && st.uidNext < last.uidNext {
			t.Fatalf("INBOX went backwards: %+v after %+v", st, last)
		}
		last = st
	})
}

type inboxStatus struct{ uidValidity, uidNext uint64 }

// statusInbox asks STATUS INBOX (RFC 9051 6.3.11) for the counters.
func statusInbox(t *testing.T, c net.Conn, r *bufio.Reader) inboxStatus {
	t.Helper()
	if _, err := io.WriteString(c, "s1 STATUS INBOX (UIDVALIDITY UIDNEXT)\r\n"); err != nil {
		t.Fatal(err)
	}
	var st inboxStatus
	for _, l := range waitTagged(t, r, "s1 ") {
		if !strings.HasPrefix(l, "* STATUS ") {
			continue
		}
		i := strings.LastIndexByte(l, '(')
		f := strings.Fields(strings.Trim(l[i+1:], ")\r\n"))
		for j := 0; j+1 < len(f); j += 2 {
			n, err := strconv.ParseUint(f[j+1], 10, 64)
			if err != nil {
				t.Fatalf("STATUS %q: %v", l, err)
			}
			switch f[j] {
			case "UIDVALIDITY":
				st.uidValidity = n
			case "UIDNEXT":
				st.uidNext = n
			}
		}
	}
	if st.uidValidity == 0 || st.uidNext == 0 {
		t.Fatalf("STATUS INBOX gave no counters")
	}
	return st
}

// dialLogin opens an IMAPS connection and logs in.
func dialLogin(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	greeting, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting %q: %v", greeting, err)
	}
	fmt.Fprintf(c, "l1 LOGIN %q %q\r\n", testUser, testPassword)
	waitTagged(t, r, "l1 ")
	return c, r
}

// waitTagged reads up to the completion of tag, requires OK, and returns
// the untagged lines before it.
func waitTagged(t *testing.T, r *bufio.Reader, tag string) []string {
	t.Helper()
	var untagged []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %s: %v", tag, err)
		}
		if strings.HasPrefix(line, tag) {
			if !strings.HasPrefix(line, tag+"OK") {
				t.Fatalf("%s: %q", tag, line)
			}
			return untagged
		}
		untagged = append(untagged, line)
	}
}

// fuzzServer starts an IMAPS server over a real SQLite store holding
// testUser with three messages in INBOX. It is quick to set up in every
// fuzz worker (an ECDSA certificate, not newEnv's RSA CA), and logs
// nowhere: a test's logger may not be called from the fuzz function.
func fuzzServer(f *testing.F) (addr string, client *tls.Config, srv *imapd.Server) {
	serverTLS, client := quickTLS(f)
	st, err := sqlite.Open(filepath.Join(f.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.AddDomain(ctx, testDomain); err != nil {
		f.Fatal(err)
	}
	h, err := authn.HashPassword(testPassword, cheap)
	if err != nil {
		f.Fatal(err)
	}
	acct, err := st.CreateAccount(ctx, testUser, "Alice", h)
	if err != nil {
		f.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		raw := testMessage(i, fmt.Sprintf("réunion %d", i), "compte rendu")
		if _, err := st.Deliver(ctx, []byte(raw), time.Now(), []storage.Recipient{{Account: acct.ID, Mailbox: "INBOX"}}); err != nil {
			f.Fatal(err)
		}
	}
	srv = imapd.New(imapd.Config{TLS: serverTLS, Logger: slog.New(slog.DiscardHandler), AppendLimit: 1 << 20}, st, authn.New(st, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go func() { _ = srv.Serve(tls.NewListener(ln, serverTLS)) }()
	f.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), client, srv
}

// quickTLS makes a self-signed ECDSA P-256 certificate for localhost and
// 127.0.0.1, and the client configuration that trusts it.
func quickTLS(tb testing.TB) (server, client *tls.Config) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}, MinVersion: tls.VersionTLS12}
	return server, &tls.Config{RootCAs: pool, ServerName: "localhost"}
}
