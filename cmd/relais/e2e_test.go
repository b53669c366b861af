package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	claire = "claire.martin@demo.mssante.test"
	lucas  = "lucas.bernard@demo.mssante.test"
)

// TestDemoPythonClients is a practitioner's first day: the demo starts,
// Python's smtplib sends over submission with STARTTLS, Python's imaplib
// reads over IMAP with STARTTLS, and the sender finds the copy in Sent.
func TestDemoPythonClients(t *testing.T) {
	in := startRelais(t, "")
	require.Len(t, in.passwords, len(demoUsers), "demo passwords printed at first start")
	smtpHost, smtpPort := splitAddr(t, in.addrs["submission"])
	imapHost, imapPort := splitAddr(t, in.addrs["imap"])

	script := `
import imaplib, smtplib, ssl, sys
from email.message import EmailMessage
ca, smtp_host, smtp_port, imap_host, imap_port, frm, frm_pw, to, to_pw = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
msg = EmailMessage()
msg["From"] = "Dr Claire Martin <%s>" % frm
msg["To"] = to
msg["Subject"] = "Suivi de Mme Élodie Durand"
msg["Message-ID"] = "<python-1@demo.mssante.test>"
msg.set_content("Bonjour,\nla patiente sort demain. Température 37,8 °C.\n")
with smtplib.SMTP(smtp_host, int(smtp_port), timeout=30) as s:
    s.starttls(context=ctx)
    s.login(frm, frm_pw)
    s.send_message(msg)
m = imaplib.IMAP4(imap_host, int(imap_port), timeout=30)
try:
    m.login(to, to_pw)
    print("LOGIN-BEFORE-STARTTLS-ACCEPTED")
except imaplib.IMAP4.error:
    print("login refused before STARTTLS")
m.starttls(ssl_context=ctx)
m.login(to, to_pw)
typ, data = m.select("INBOX")
assert typ == "OK", data
typ, data = m.search(None, "SUBJECT", "elodie")
assert typ == "OK", data
ids = data[0].split()
assert len(ids) == 1, ids
typ, data = m.fetch(ids[0], "(RFC822)")
sys.stdout.write(data[0][1].decode("utf-8"))
m.logout()
`
	out, err := runTool(t, "", "python3", "-c", script, in.caFile(), smtpHost, smtpPort, imapHost, imapPort,
		claire, in.passwords[claire], lucas, in.passwords[lucas])
	require.NoError(t, err, out)
	assert.Contains(t, out, "login refused before STARTTLS")
	assert.NotContains(t, out, "LOGIN-BEFORE-STARTTLS-ACCEPTED")
	assert.Contains(t, out, "Message-ID: <python-1@demo.mssante.test>")
	assert.Contains(t, out, "Température 37,8 °C")
	assert.Contains(t, out, "Return-Path: <"+claire+">")
	assert.Contains(t, out, "Received: from ")

	// The sender's copy is in Sent, already seen.
	c := in.imapLogin(claire, in.passwords[claire])
	sel, err := c.Select("Sent", nil).Wait()
	require.NoError(t, err)
	require.Equal(t, uint32(1), sel.NumMessages)
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Contains(t, msgs[0].Flags, imap.FlagSeen)
	assert.Equal(t, "Suivi de Mme Élodie Durand", msgs[0].Envelope.Subject)
}

// TestCurlClients sends with curl over implicit-TLS submission and reads
// the message back with curl over IMAPS, byte for byte after the trace
// headers.
func TestCurlClients(t *testing.T) {
	in := startRelais(t, "")
	body := "From: " + claire + "\r\nTo: " + lucas + "\r\nSubject: curl\r\nMessage-ID: <curl-1@demo.mssante.test>\r\n\r\nEnvoyé avec curl.\r\n"
	msgFile := filepath.Join(t.TempDir(), "msg.eml")
	require.NoError(t, os.WriteFile(msgFile, []byte(body), 0o600))

	out, err := runTool(t, "", "curl", "--silent", "--show-error", "--cacert", in.caFile(),
		"--url", "smtps://"+in.addrs["submissions"], "--user", claire+":"+in.passwords[claire],
		"--mail-from", claire, "--mail-rcpt", lucas, "--upload-file", msgFile)
	require.NoError(t, err, out)

	out, err = runTool(t, "", "curl", "--silent", "--show-error", "--cacert", in.caFile(),
		"--url", "imaps://"+in.addrs["imaps"]+"/INBOX;UID=1", "--user", lucas+":"+in.passwords[lucas])
	require.NoError(t, err, out)
	require.True(t, strings.HasSuffix(out, body), "stored message ends with the bytes sent:\n%s", out)
	assert.True(t, strings.HasPrefix(out, "Return-Path: <"+claire+">\r\nReceived: "), out)

	// The HTTPS front page answers, and serves the CA clients must trust.
	out, err = runTool(t, "", "curl", "--silent", "--show-error", "--fail", "--cacert", in.caFile(), "https://"+in.addrs["http"]+"/healthz")
	require.NoError(t, err, out)
	assert.Equal(t, "ok\n", out)
	out, err = runTool(t, "", "curl", "--silent", "--show-error", "--fail", "--cacert", in.caFile(), "https://"+in.addrs["http"]+"/ca.pem")
	require.NoError(t, err, out)
	caPEM, err := os.ReadFile(in.caFile())
	require.NoError(t, err)
	assert.Equal(t, string(caPEM), out)

	// A wrong password is refused.
	out, err = runTool(t, "", "curl", "--silent", "--show-error", "--cacert", in.caFile(),
		"--url", "imaps://"+in.addrs["imaps"]+"/INBOX;UID=1", "--user", lucas+":wrong-password")
	require.Error(t, err, out)
}

// deliverInbound sends one message to rcpt over the inbound SMTP listener,
// as the MTA of another operator of the trust space does: STARTTLS with its
// client certificate. It returns the server's error, if any.
func deliverInbound(in *instance, rcpt, messageID, subject string) error {
	c, err := smtp.DialStartTLS(in.addrs["smtp"], in.otherOperator())
	if err != nil {
		return err
	}
	defer c.Close()
	msg := fmt.Sprintf("From: <secretariat@other-operator.test>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n\r\nCorps du message %s.\r\n", rcpt, subject, messageID, messageID)
	if err := c.SendMail("secretariat@other-operator.test", []string{rcpt}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

type mailboxState struct {
	uidValidity uint32
	ids         map[string]imap.UID // Message-ID -> UID
}

func readMailbox(t *testing.T, in *instance, address, password, mailbox string) mailboxState {
	t.Helper()
	c := in.imapLogin(address, password)
	sel, err := c.Select(mailbox, nil).Wait()
	require.NoError(t, err)
	st := mailboxState{uidValidity: sel.UIDValidity, ids: map[string]imap.UID{}}
	if sel.NumMessages == 0 {
		return st
	}
	var all imap.SeqSet
	all.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	require.NoError(t, err)
	require.Len(t, msgs, int(sel.NumMessages))
	for _, m := range msgs {
		st.ids[m.Envelope.MessageID] = m.UID
	}
	require.NoError(t, c.Logout().Wait())
	return st
}

// TestRestartKeepsMail stops the server gracefully and starts it again on
// the same data: messages, UIDs and UIDVALIDITY are unchanged, and the demo
// passwords are not printed (nor changed) a second time.
func TestRestartKeepsMail(t *testing.T) {
	dir := t.TempDir()
	in := startRelais(t, dir)
	pw := in.passwords[lucas]
	for i := range 3 {
		require.NoError(t, deliverInbound(in, lucas, fmt.Sprintf("restart-%d@other-operator.test", i), "avant redémarrage"))
	}
	before := readMailbox(t, in, lucas, pw, "INBOX")
	require.Len(t, before.ids, 3)
	in.stop()

	again := startRelais(t, dir)
	assert.Empty(t, again.passwords, "passwords are shown only at first start")
	after := readMailbox(t, again, lucas, pw, "INBOX")
	assert.Equal(t, before, after)

	// New mail after the restart gets a higher UID, same UIDVALIDITY.
	require.NoError(t, deliverInbound(again, lucas, "restart-after@other-operator.test", "après"))
	final := readMailbox(t, again, lucas, pw, "INBOX")
	assert.Equal(t, before.uidValidity, final.uidValidity)
	for _, uid := range before.ids {
		assert.Greater(t, final.ids["restart-after@other-operator.test"], uid)
	}
	again.stop()
}

// TestKill9LosesNoAcknowledgedMessage kills the server with SIGKILL while
// clients deliver, three from another operator over inbound SMTP and one
// practitioner over authenticated submission: every message that got its
// 250 is in the recipient's INBOX after a restart, and each submitted one
// also in the sender's Sent (the copies are one transaction).
func TestKill9LosesNoAcknowledgedMessage(t *testing.T) {
	dir := t.TempDir()
	in := startRelais(t, dir)

	var mu sync.Mutex
	acked := map[string]bool{}     // every acknowledged Message-ID
	submitted := map[string]bool{} // those sent by claire through submission
	record := func(id string, sub bool) {
		mu.Lock()
		defer mu.Unlock()
		acked[id] = true
		if sub {
			submitted[id] = true
		}
	}
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; !stopped(); i++ {
				id := fmt.Sprintf("crash-%d-%d@other-operator.test", w, i)
				if err := deliverInbound(in, lucas, id, "crash"); err != nil {
					return // the server died under us: this one was not acknowledged
				}
				record(id, false)
			}
		})
	}
	wg.Go(func() {
		c, err := smtp.DialStartTLS(in.addrs["submission"], in.tlsConfig())
		if err != nil {
			return
		}
		defer c.Close()
		if err := c.Auth(sasl.NewPlainClient("", claire, in.passwords[claire])); err != nil {
			return
		}
		for i := 0; !stopped(); i++ {
			id := fmt.Sprintf("crash-sub-%d@demo.mssante.test", i)
			msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: crash\r\nMessage-ID: <%s>\r\n\r\nsoumis\r\n", claire, lucas, id)
			if err := c.SendMail(claire, []string{lucas}, strings.NewReader(msg)); err != nil {
				return
			}
			record(id, true)
		}
	})
	// Kill once a good number of messages were acknowledged, with the
	// clients still sending.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n, ns := len(acked), len(submitted)
		mu.Unlock()
		if (n >= 150 && ns >= 20) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	in.kill()
	close(stop)
	wg.Wait()
	require.NotEmpty(t, submitted)

	again := startRelais(t, dir)
	inbox := readMailbox(t, again, lucas, in.passwords[lucas], "INBOX")
	sent := readMailbox(t, again, claire, in.passwords[claire], "Sent")
	for id := range acked {
		assert.Contains(t, inbox.ids, id, "acknowledged message lost")
	}
	for id := range submitted {
		assert.Contains(t, sent.ids, id, "acknowledged submission missing from Sent")
	}
	for id := range sent.ids {
		assert.Contains(t, inbox.ids, id, "a Sent copy without its INBOX copy: the delivery was not atomic")
	}
	t.Logf("%d messages acknowledged before SIGKILL (%d by submission); after restart %d in INBOX, %d in Sent",
		len(acked), len(submitted), len(inbox.ids), len(sent.ids))
	again.stop()
}

// TestAdminWhileServing runs the admin commands against the data directory
// of a running server, then uses what they made.
func TestAdminWhileServing(t *testing.T) {
	in := startRelais(t, "")
	admin := func(stdin string, args ...string) string {
		cmd := exec.Command(relaisBin, append(args, "--data", in.dir)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "relais %v: %s", args, out)
		return string(out)
	}
	assert.Contains(t, admin("", "admin", "domain", "add", "Hopital-Demo.test"), "domain hopital-demo.test added")
	assert.Contains(t, admin("", "admin", "domain", "list"), "hopital-demo.test")
	assert.Contains(t, admin("motdepasse-initial\n", "admin", "user", "add", "dpi@hopital-demo.test", "--name", "DPI de démonstration", "--password-stdin"), "account dpi@hopital-demo.test created")
	list := admin("", "admin", "user", "list")
	assert.Contains(t, list, "dpi@hopital-demo.test")
	assert.Contains(t, list, "DPI de démonstration")
	assert.Contains(t, list, claire)

	c := in.imapLogin("dpi@hopital-demo.test", "motdepasse-initial")
	require.NoError(t, c.Logout().Wait())

	assert.Contains(t, admin("nouveau-motdepasse\n", "admin", "user", "passwd", "dpi@hopital-demo.test", "--password-stdin"), "changed")
	in.imapLogin("dpi@hopital-demo.test", "nouveau-motdepasse")

	// A generated password is printed once.
	out := admin("", "admin", "user", "add", "accueil@hopital-demo.test")
	assert.Regexp(t, `password: [A-Za-z0-9]{16}`, out)

	// Errors are clear and exit non-zero.
	cmd := exec.Command(relaisBin, "admin", "user", "add", "x@unknown-domain.test", "--data", in.dir)
	out2, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out2), "not served here")
}

// TestHelp checks that every command answers --help with its usage, on
// stdout, with exit status 0, and that a wrong command exits 2.
func TestHelp(t *testing.T) {
	for _, c := range commands() {
		args := append(strings.Fields(c.path), "--help")
		out, err := exec.Command(relaisBin, args...).Output()
		require.NoError(t, err, "relais %s", strings.Join(args, " "))
		assert.Contains(t, string(out), "Usage: relais "+c.path, c.path)
	}
	out, err := exec.Command(relaisBin, "--help").Output()
	require.NoError(t, err)
	for _, c := range commands() {
		assert.Contains(t, string(out), c.path)
	}
	err = exec.Command(relaisBin, "no-such-command").Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 2, exit.ExitCode())

	out, err = exec.Command(relaisBin, "version").Output()
	require.NoError(t, err)
	assert.Regexp(t, `^relais \S+ \(go1\.`, string(out))
}

// TestLargeMessageRoundTrip sends 10 MiB through submission with go-smtp and
// reads it back through IMAPS with go-imap: after the trace headers the
// bytes are exactly those sent (binary-looking base64 lines, long lines,
// 8-bit text, a lone dot line that SMTP dot-stuffs).
func TestLargeMessageRoundTrip(t *testing.T) {
	in := startRelais(t, "")
	var b strings.Builder
	b.WriteString("From: <" + claire + ">\r\nTo: <" + lucas + ">\r\nSubject: imagerie\r\n")
	b.WriteString("Message-ID: <large-1@demo.mssante.test>\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString("Compte rendu d'échographie.\r\n.\r\n..deux points\r\n" + strings.Repeat("x", 990) + "\r\n")
	b.WriteString("--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := strings.Repeat("QUJDRA==", 10)[:76] + "\r\n"
	for b.Len() < 10<<20 {
		b.WriteString(line)
	}
	b.WriteString("--b--\r\n")
	msg := b.String()

	c, err := smtp.DialTLS(in.addrs["submissions"], in.tlsConfig())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Auth(sasl.NewPlainClient("", claire, in.passwords[claire])))
	require.NoError(t, c.SendMail(claire, []string{lucas}, strings.NewReader(msg)))
	require.NoError(t, c.Quit())

	ic := in.imapLogin(lucas, in.passwords[lucas])
	_, err = ic.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := ic.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}, RFC822Size: true}).Collect()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	got := string(msgs[0].FindBodySection(section))
	require.True(t, strings.HasSuffix(got, msg), "stored message (%d bytes) does not end with the %d bytes sent", len(got), len(msg))
	assert.Equal(t, int64(len(got)), msgs[0].RFC822Size)
	header := got[:len(got)-len(msg)]
	assert.True(t, strings.HasPrefix(header, "Return-Path: <"+claire+">\r\nReceived: "), header)
}
