package imapd_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"
)

// rawConn speaks IMAP line by line, for what imapclient cannot express.
type rawConn struct {
	t   testing.TB
	c   *tls.Conn
	r   *bufio.Reader
	tag int
}

func (e *env) raw() *rawConn {
	e.t.Helper()
	c, err := tls.Dial("tcp", e.tlsLn.Addr().String(), e.clientTLS())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	rc := &rawConn{t: e.t, c: c, r: bufio.NewReader(c)}
	rc.line() // greeting
	rc.cmd(fmt.Sprintf("LOGIN %q %q", testUser, testPassword))
	return rc
}

func (rc *rawConn) line() string {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

// cmd sends a command and returns the untagged lines and the tagged status.
func (rc *rawConn) cmd(s string) (untagged []string, status string) {
	rc.t.Helper()
	rc.tag++
	tag := fmt.Sprintf("x%d", rc.tag)
	if _, err := fmt.Fprintf(rc.c, "%s %s\r\n", tag, s); err != nil {
		rc.t.Fatal(err)
	}
	for {
		l := rc.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		untagged = append(untagged, l)
	}
}

func TestSearchResAndPendingExpunge(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 4; i++ {
		e.deliver("INBOX", testMessage(i, "m", "x"))
	}
	rc := e.raw()
	rc.cmd("SELECT INBOX")
	rc.cmd("STORE 1,3 +FLAGS.SILENT (\\Flagged)")
	// RFC 5182: SEARCH RETURN (SAVE), then use $.
	if _, st := rc.cmd("SEARCH RETURN (SAVE) FLAGGED"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("SEARCH RETURN (SAVE): %s", st)
	}
	got, st := rc.cmd("FETCH $ (UID)")
	if !strings.HasPrefix(st, "OK") || strings.Join(got, "|") != "* 1 FETCH (UID 1)|* 3 FETCH (UID 3)" {
		t.Fatalf("FETCH $: %q %s", got, st)
	}

	// Another session expunges message 2: FETCH keeps the numbering and
	// says nothing about it; NOOP then reports EXPUNGE 2.
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	if err := c.Store(imapSeq(2), deleted(), nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	got, _ = rc.cmd("FETCH 1:* (UID)")
	if strings.Join(got, "|") != "* 1 FETCH (UID 1)|* 3 FETCH (UID 3)|* 4 FETCH (UID 4)" {
		t.Fatalf("FETCH with a pending expunge: %q", got)
	}
	got, _ = rc.cmd("NOOP")
	if strings.Join(got, "|") != "* 2 EXPUNGE" {
		t.Fatalf("NOOP: %q", got)
	}
	got, _ = rc.cmd("FETCH 1:* (UID)")
	if strings.Join(got, "|") != "* 1 FETCH (UID 1)|* 2 FETCH (UID 3)|* 3 FETCH (UID 4)" {
		t.Fatalf("FETCH after EXPUNGE: %q", got)
	}
	// Nonsense numbers never break the session. (go-imap itself answers
	// "FETCH 0" with NO [SERVERBUG]: its parser rejects 0 with a plain error.)
	rc.cmd("FETCH 0 (UID)")
	for _, cmd := range []string{"FETCH 4294967295 (FLAGS)", "UID FETCH 99:* (FLAGS)", "STORE 7:9 +FLAGS (\\Seen)", "COPY 50 Trash", "MOVE 50 Trash", "UID EXPUNGE 1000"} {
		_, st := rc.cmd(cmd)
		if strings.HasPrefix(st, "NO [SERVERBUG]") {
			t.Errorf("%s: %s", cmd, st)
		}
	}
	if _, st := rc.cmd("NOOP"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("session broken: %s", st)
	}
}

// TestCloseExpunges checks CLOSE: \Deleted messages are removed without
// EXPUNGE responses (RFC 9051 6.4.1), and not at all after EXAMINE.
func TestCloseExpunges(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.deliver("INBOX", testMessage(i, "m", "x"))
	}
	rc := e.raw()
	rc.cmd("SELECT INBOX")
	rc.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
	rc.cmd("EXAMINE INBOX")
	if got, st := rc.cmd("CLOSE"); len(got) != 0 || !strings.HasPrefix(st, "OK") {
		t.Fatalf("CLOSE after EXAMINE: %q %s", got, st)
	}
	got, _ := rc.cmd("STATUS INBOX (MESSAGES)")
	if len(got) != 1 || !strings.Contains(got[0], "MESSAGES 3") {
		t.Fatalf("after CLOSE of EXAMINE: %q", got)
	}
	rc.cmd("SELECT INBOX")
	if got, st := rc.cmd("CLOSE"); len(got) != 0 || !strings.HasPrefix(st, "OK") {
		t.Fatalf("CLOSE: %q %s", got, st)
	}
	got, _ = rc.cmd("STATUS INBOX (MESSAGES)")
	if len(got) != 1 || !strings.Contains(got[0], "MESSAGES 2") {
		t.Fatalf("after CLOSE: %q", got)
	}
}

func TestCloseSaysBye(t *testing.T) {
	e := newEnv(t)
	rc := e.raw()
	rc.cmd("SELECT INBOX")
	go func() { _ = e.srv.Close() }()
	if l := rc.line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("got %q, want * BYE", l)
	}
}
