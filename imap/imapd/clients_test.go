package imapd_test

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPythonImaplib drives the server with Python's imaplib, through
// STARTTLS on the plain port and through implicit TLS.
func TestPythonImaplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	e := newEnv(t)
	e.deliver("INBOX", testMessage(1, "Bonjour Élodie", "Texte du message."))
	_, plainPort, _ := net.SplitHostPort(e.ln.Addr().String())
	_, tlsPort, _ := net.SplitHostPort(e.tlsLn.Addr().String())
	script := `
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.check_hostname = False
user, pw = sys.argv[4], sys.argv[5]

m = imaplib.IMAP4("127.0.0.1", int(sys.argv[2]))
assert "LOGINDISABLED" in m.capabilities, m.capabilities
m.starttls(ssl_context=ctx)
m.login(user, pw)
typ, data = m.select("INBOX")
assert typ == "OK" and data[0] == b"1", (typ, data)
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert typ == "OK", typ
typ, data = m.search(None, "ALL")
assert data[0] == b"1", data
m.append("Drafts", "(\\Draft)", None, b"Subject: brouillon\r\n\r\ntexte\r\n")
typ, data = m.status("Drafts", "(MESSAGES)")
assert b"MESSAGES 1" in data[0], data
m.logout()

m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[3]), ssl_context=ctx)
m.login(user, pw)
typ, data = m.list()
assert typ == "OK" and any(b"\\Sent" in d for d in data), data
m.select("INBOX")
typ, data = m.uid("fetch", "1", "(RFC822)")
assert b"Texte du message." in data[0][1], data
m.logout()
print("ok")
`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", script, e.caFile, plainPort, tlsPort, testUser, testPassword).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
}

// TestCurl lists INBOX with curl over IMAPS.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	e := newEnv(t)
	e.deliver("INBOX", testMessage(1, "curl", "Corps pour curl."))
	_, port, _ := net.SplitHostPort(e.tlsLn.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "--cacert", e.caFile,
		"--url", "imaps://127.0.0.1:"+port+"/INBOX;UID=1", "-u", testUser+":"+testPassword).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "Unsupported protocol") || strings.Contains(string(out), "not supported") {
			t.Skipf("curl without IMAP: %s", out)
		}
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Corps pour curl.") {
		t.Fatalf("curl output:\n%s", out)
	}
}
