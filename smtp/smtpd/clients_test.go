package smtpd_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Real clients: Python's smtplib and curl, each against both submission
// ports. They skip when the client is not installed (make test-deps).

const pythonSubmit = `
import smtplib, ssl, sys
mode, host, port, cafile, user, password, sender, rcpt, path = sys.argv[1:]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False  # we connect to 127.0.0.1; the chain is still verified
msg = open(path, "rb").read()
if mode == "starttls":
    s = smtplib.SMTP(host, int(port), local_hostname="python.test", timeout=30)
    s.ehlo()
    if s.has_extn("auth"):
        sys.exit("AUTH offered before STARTTLS")
    s.starttls(context=ctx)
else:
    s = smtplib.SMTP_SSL(host, int(port), local_hostname="python.test", context=ctx, timeout=30)
s.login(user, password)
refused = s.sendmail(sender, [rcpt], msg, mail_options=["SMTPUTF8"] if not (sender + rcpt).isascii() else [])
if refused:
    sys.exit("refused: %r" % refused)
try:
    s.sendmail(sender, ["nobody@demo.test"], msg)
    sys.exit("unknown recipient accepted")
except smtplib.SMTPRecipientsRefused as e:
    code, text = e.recipients["nobody@demo.test"]
    if code != 550 or not text.startswith(b"5.1.1"):
        sys.exit("unexpected refusal %r %r" % (code, text))
s.quit()
`

func TestPythonSmtplib(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	e := newEnv(t, envOptions{})
	dir := t.TempDir()
	script := filepath.Join(dir, "submit.py")
	require.NoError(t, os.WriteFile(script, []byte(pythonSubmit), 0o600))
	// The second goes to an accented address (SMTPUTF8); smtplib cannot
	// log in with a non-ASCII username, so the sender is ASCII.
	for _, tc := range []struct{ mode, addr, user, rcpt, subject string }{
		{"starttls", e.subAddr, drAddr, nurse, "python-587"},
		{"ssl", e.tlsAddr, bob, elise, "python-465"},
	} {
		msg := message(tc.user, tc.rcpt, tc.subject, "Envoyé par smtplib.\r\n")
		path := filepath.Join(dir, tc.subject+".eml")
		require.NoError(t, os.WriteFile(path, []byte(msg), 0o600))
		host, port, _ := net.SplitHostPort(tc.addr)
		pass := userPass
		if tc.user == drAddr {
			pass = drPass
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, py, script, tc.mode, host, port, e.caFile, tc.user, pass, tc.user, tc.rcpt, path).CombinedOutput()
		cancel()
		require.NoError(t, err, "%s: %s", tc.mode, out)
	}
	for who, want := range map[string]string{nurse: "python-587", elise: "python-465"} {
		raw, _ := e.only(who, "INBOX")
		trace, rest := splitTrace(t, raw)
		assert.Contains(t, string(rest), "Subject: "+want+"\r\n")
		assert.Contains(t, trace, "from python.test ([127.0.0.1])")
	}
	assert.Len(t, e.mailbox(drAddr, "Sent"), 1)
	assert.Len(t, e.mailbox(bob, "Sent"), 1)
}

func TestCurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	e := newEnv(t, envOptions{})
	dir := t.TempDir()
	msg := message(drAddr, nurse+", "+bob, "curl", "Sent with curl.\r\n")
	path := filepath.Join(dir, "msg.eml")
	require.NoError(t, os.WriteFile(path, []byte(msg), 0o600))
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"--silent", "--show-error"}, args...)...).CombinedOutput()
		require.NoError(t, err, "curl %v: %s", args, out)
	}
	// Implicit TLS (465).
	run("--url", "smtps://127.0.0.1:"+port(e.tlsAddr), "--mail-from", drAddr, "--mail-rcpt", nurse, "--mail-rcpt", bob,
		"--upload-file", path, "--user", drAddr+":"+drPass, "--cacert", e.caFile)
	// STARTTLS (587), TLS required.
	run("--url", "smtp://127.0.0.1:"+port(e.subAddr), "--ssl-reqd", "--mail-from", drAddr, "--mail-rcpt", nurse,
		"--upload-file", path, "--user", drAddr+":"+drPass, "--cacert", e.caFile)
	assert.Len(t, e.mailbox(nurse, "INBOX"), 2)
	raw, _ := e.only(bob, "INBOX")
	_, rest := splitTrace(t, raw)
	assert.Equal(t, msg, string(rest))
	assert.Len(t, e.mailbox(drAddr, "Sent"), 2)
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
