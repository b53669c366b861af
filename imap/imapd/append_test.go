package imapd_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func appendMsg(t testing.TB, c *imapclient.Client, mailbox string, raw []byte, opts *imap.AppendOptions) *imap.AppendData {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(raw)), opts)
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := cmd.Wait()
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return d
}

func TestAppendFetchByteForByte(t *testing.T) {
	e := newEnv(t)
	c := e.dial(nil)
	small := []byte(testMessage(1, "Compte rendu", "Bonjour Élodie,\r\nvoici le compte rendu."))
	var big bytes.Buffer
	big.WriteString("From: bob@example.test\r\nTo: alice@example.test\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	for big.Len() < 10<<20 {
		big.WriteString(line)
	}
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, raw := range [][]byte{small, big.Bytes()} {
		d := appendMsg(t, c, "INBOX", raw, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagFlagged}, Time: date})
		if d.UID == 0 || d.UIDValidity == 0 {
			t.Fatalf("no APPENDUID: %+v", d)
		}
		e.selectBox(c, "INBOX")
		msgs, err := c.Fetch(imap.UIDSetNum(d.UID), &imap.FetchOptions{
			UID: true, Flags: true, RFC822Size: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 {
			t.Fatalf("got %d messages", len(msgs))
		}
		m := msgs[0]
		if got := m.FindBodySection(&imap.FetchItemBodySection{}); !bytes.Equal(got, raw) {
			t.Fatalf("BODY[] differs: %d bytes, want %d", len(got), len(raw))
		}
		if m.RFC822Size != int64(len(raw)) || !m.InternalDate.Equal(date) {
			t.Errorf("size %d date %v", m.RFC822Size, m.InternalDate)
		}
		if len(m.Flags) != 1 || m.Flags[0] != imap.FlagFlagged {
			t.Errorf("flags %v, want \\Flagged only (PEEK)", m.Flags)
		}
	}
}

func TestAppendTooBigAndTryCreate(t *testing.T) {
	e := newEnv(t)
	c := e.dial(nil)
	cmd := c.Append("INBOX", 65<<20, nil)
	if _, err := cmd.Wait(); imapCode(err) != imap.ResponseCodeTooBig {
		t.Errorf("APPEND over the limit: %v, want NO [TOOBIG]", err)
	}
	c = e.dial(nil)
	raw := []byte(testMessage(1, "x", "y"))
	cmd = c.Append("Nowhere", int64(len(raw)), nil)
	_, _ = cmd.Write(raw)
	_ = cmd.Close()
	if _, err := cmd.Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("APPEND to a missing mailbox: %v, want NO [TRYCREATE]", err)
	}
}
