package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// operator is one Relais of the two-operator test, set up as its
// administrator would with the CLI, before it starts.
type operator struct {
	name, domain, hostname string
	dir, config            string
	smtpPort, httpPort     string
	user, password         string
	serverCert, userCert   string // PEM files
	in                     *instance
}

// freePort returns a free port below the kernel's ephemeral range (32768
// and up on Linux), so that no listener on ":0" of a test running beside
// this one can take it between now and the moment relais binds it. The
// ports must be known before the servers start: they go in each other's
// routes and in the CRL URLs of the certificates.
func freePort(t *testing.T) string {
	t.Helper()
	for range 100 {
		port := fmt.Sprint(20000 + rand.IntN(12000))
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port in 20000-32000")
	return ""
}

func (o *operator) run(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(relaisBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "relais %v: %s", args, out)
	return string(out)
}

func newOperator(t *testing.T, name string) *operator {
	o := &operator{name: name, domain: name + ".mssante.test", hostname: "mx." + name + ".mssante.test",
		dir: t.TempDir(), smtpPort: freePort(t), httpPort: freePort(t)}
	o.user, o.password = "dr.test@"+o.domain, "secret-"+name
	o.config = filepath.Join(o.dir, "relais.toml")
	o.writeConfig(t, nil)
	o.run(t, "", "admin", "domain", "add", o.domain, "--data", o.dir)
	o.run(t, o.password+"\n", "admin", "user", "add", o.user, "--name", "Dr Test "+name, "--password-stdin", "--data", o.dir)
	o.run(t, "", "pki", "init", "--name", "Operateur "+strings.ToUpper(name), "--config", o.config)
	// The operator's server certificate, for its listeners and as its TLS
	// client certificate towards the other operator.
	o.serverCert = filepath.Join(o.dir, "server.pem")
	o.run(t, "", "pki", "issue", "--kind", "server", "--dns", o.hostname, "--dns", "localhost", "--dns", "127.0.0.1", "--dns", "::1",
		"--out-cert", o.serverCert, "--config", o.config)
	// The practitioner's S/MIME certificate, published in its own directory.
	o.userCert = filepath.Join(o.dir, "user.pem")
	o.run(t, "", "pki", "issue", "--kind", "person", "--email", o.user, "--given", "Test", "--surname", strings.ToUpper(name),
		"--rpps", "1000000009"+fmt.Sprint(len(name)), "--publish", "--out-cert", o.userCert, "--config", o.config)
	return o
}

func (o *operator) writeConfig(t *testing.T, routes map[string]string) {
	t.Helper()
	var r strings.Builder
	for d, a := range routes {
		fmt.Fprintf(&r, "%q = %q\n", d, a)
	}
	cfg := fmt.Sprintf(`data = %q
hostname = %q
log = "debug"
[listen]
smtp = "127.0.0.1:%s"
submission = "127.0.0.1:0"
submissions = "127.0.0.1:0"
imap = ""
imaps = "127.0.0.1:0"
http = "127.0.0.1:%s"
ldap = ""
ldaps = ""
[pki]
base_url = "https://127.0.0.1:%s"
[relay]
expiry = "1h"
delay_notice = "30m"
[relay.routes]
%s`, o.dir, o.hostname, o.smtpPort, o.httpPort, o.httpPort, r.String())
	require.NoError(t, os.WriteFile(o.config, []byte(cfg), 0o600))
}

func leafOf(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block, file)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c
}

// TestTwoOperators is the HISP at work: two Relais, each in the other's
// trust list and trusting the other's root, on loopback. A practitioner of
// A writes with Python's smtplib to a practitioner of B; A signs as the
// sender and encrypts to the recipient's certificate from its directory,
// relays over mutual TLS; B decrypts, verifies (chain, revocation through
// A's CRL) and delivers plain mail with a header saying so; B's success
// DSN (NOTIFY=SUCCESS) comes back and A's status API says delivered.
func TestTwoOperators(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed (make test-deps installs it)")
	}
	a, b := newOperator(t, "a"), newOperator(t, "b")
	for _, p := range [][2]*operator{{a, b}, {b, a}} {
		self, other := p[0], p[1]
		self.writeConfig(t, map[string]string{other.domain: "127.0.0.1:" + other.smtpPort})
		self.run(t, "", "pki", "anchor", "add", filepath.Join(other.dir, "ca.pem"), "--config", self.config)
		self.run(t, "", "directory", "cert", "add", other.user, other.userCert, "--data", self.dir)
	}
	trust := []trustDomain{{a.domain, leafOf(t, a.serverCert)}, {b.domain, leafOf(t, b.serverCert)}}
	for _, o := range []*operator{a, b} {
		o.in = startServe(t, o.dir, "--config", o.config)
		o.in.importTrustList(trust...)
	}

	// Python's smtplib, as a practitioner's client at A.
	host, port := splitAddr(t, a.in.addrs["submissions"])
	script := `
import smtplib, ssl, sys
cafile, host, port, user, password, rcpt = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
msg = ("From: Dr Test A <%s>\r\nTo: <%s>\r\nSubject: Sortie de M. Test\r\n"
       "Message-ID: <two-operators-1@a.mssante.test>\r\nMIME-Version: 1.0\r\n"
       "Content-Type: text/plain; charset=utf-8\r\n\r\nLe patient est sorti ce matin. Traitement inchangé.\r\n") % (user, rcpt)
with smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=30) as s:
    s.login(user, password)
    s.sendmail(user, [rcpt], msg.encode("utf-8"), rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
print("sent")
`
	out, err := runTool(t, "", "python3", "-c", script, a.in.caFile(), host, port, a.user, a.password, b.user)
	require.NoError(t, err, out)

	// B's practitioner reads plain, verified mail over IMAP.
	var body string
	require.Eventually(t, func() bool {
		c := b.in.imapLogin(b.user, b.password)
		defer c.Logout()
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil || sel.NumMessages == 0 {
			return false
		}
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil || len(msgs) != 1 {
			return false
		}
		for _, v := range msgs[0].BodySection {
			body = string(v.Bytes)
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "the message never reached B\nA:\n%s\nB:\n%s", a.in.stderr.String(), b.in.stderr.String())
	assert.Contains(t, body, "Authentication-Results: "+b.hostname+"; smime=pass")
	assert.Contains(t, body, "body.smime-identifier="+`"`+a.user+`"`)
	assert.Contains(t, body, "X-Relais-SMIME: ")
	// RFC 5322 2.2.3: unfold.
	header := strings.NewReplacer("\r\n\t", " ", "\r\n ", " ").Replace(body[:strings.Index(body, "\r\n\r\n")])
	assert.Regexp(t, `X-Relais-SMIME: [^\r\n]*signature valid`, header)
	assert.Regexp(t, `X-Relais-SMIME: [^\r\n]*not revoked`, header, "B checked A's CRL")
	assert.Regexp(t, `X-Relais-SMIME: [^\r\n]*was encrypted`, header, "what crossed between A and B was enveloped-data")
	assert.Contains(t, body, "Subject: Sortie de M. Test")
	assert.Contains(t, body, "Le patient est sorti ce matin. Traitement inchangé.")
	assert.NotContains(t, body, "application/pkcs7", "the client sees plain mail")

	// B's success DSN came back: A's status API says delivered.
	var state string
	require.Eventually(t, func() bool {
		out, err := exec.Command("curl", "--silent", "--cacert", a.in.caFile(), "--user", a.user+":"+a.password,
			"https://"+a.in.addrs["http"]+"/api/v1/messages/"+url.PathEscape("two-operators-1@a.mssante.test")+"/status").Output()
		if err != nil {
			return false
		}
		var ans struct {
			Recipients []struct{ Recipient, State, Detail string }
		}
		if json.Unmarshal(out, &ans) != nil || len(ans.Recipients) != 1 {
			return false
		}
		state = ans.Recipients[0].State
		return state == "delivered"
	}, 60*time.Second, 200*time.Millisecond, "status at A: %q\nA:\n%s", state, a.in.stderr.String())

	// B's practitioner opens it and her client sends the read receipt
	// (RFC 8098), through B, to A: A's status becomes read.
	mdn := "From: <" + b.user + ">\r\nTo: <" + a.user + ">\r\nSubject: Lu : Sortie de M. Test\r\n" +
		"Message-ID: <mdn-1@b.mssante.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=disposition-notification; boundary=\"mdn\"\r\n\r\n" +
		"--mdn\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nLe message a été affiché.\r\n" +
		"--mdn\r\nContent-Type: message/disposition-notification\r\n\r\n" +
		"Reporting-UA: test-client\r\nFinal-Recipient: rfc822;" + b.user + "\r\n" +
		"Original-Message-ID: <two-operators-1@a.mssante.test>\r\n" +
		"Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--mdn--\r\n"
	c, err := smtp.DialTLS(b.in.addrs["submissions"], b.in.tlsConfig())
	require.NoError(t, err)
	require.NoError(t, c.Auth(sasl.NewPlainClient("", b.user, b.password)))
	require.NoError(t, c.SendMail(b.user, []string{a.user}, strings.NewReader(mdn)))
	require.NoError(t, c.Quit())
	require.Eventually(t, func() bool {
		out, err := exec.Command("curl", "--silent", "--cacert", a.in.caFile(), "--user", a.user+":"+a.password,
			"https://"+a.in.addrs["http"]+"/api/v1/messages/two-operators-1@a.mssante.test/status").Output()
		state = string(out)
		return err == nil && strings.Contains(state, `"state":"read"`)
	}, 60*time.Second, 200*time.Millisecond, "status at A: %s\nA:\n%s\nB:\n%s", state, a.in.stderr.String(), b.in.stderr.String())
	a.in.stop()
	b.in.stop()
}
