package imapd_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// subjects fetches every message's subject, in sequence order.
func subjects(t testing.TB, c *imapclient.Client) []string {
	t.Helper()
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%d:%s", m.SeqNum, m.Envelope.Subject))
	}
	return out
}

func TestTwoSessionsExpunge(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 5; i++ {
		e.deliver("INBOX", testMessage(i, fmt.Sprint("m", i), "x"))
	}
	w := newWatcher()
	c1 := e.dial(nil)
	c2 := e.dial(w.handler())
	e.selectBox(c1, "INBOX")
	e.selectBox(c2, "INBOX")

	if err := c1.Store(imap.SeqSetNum(2, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	data, err := c1.Expunge().Collect()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(data, []uint32{2, 3}) {
		t.Fatalf("first session EXPUNGE %v, want [2 3]", data)
	}
	// FETCH must not reveal expunges (RFC 9051 7.5.1): the second session's
	// numbering is unchanged, and the expunged messages answer nothing.
	got := subjects(t, c2)
	if want := []string{"1:m1", "3:m3", "5:m5"}; !slices.Equal(got, want) {
		t.Fatalf("second session FETCH before NOOP: %v, want %v", got, want)
	}
	if _, ex := w.state(); len(ex) != 0 {
		t.Fatalf("EXPUNGE sent during FETCH: %v", ex)
	}
	if err := c2.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, ex := w.state(); !slices.Equal(ex, []uint32{2, 3}) {
		t.Fatalf("second session EXPUNGEs %v, want [2 3]", ex)
	}
	if got, want := subjects(t, c2), []string{"1:m1", "2:m3", "3:m5"}; !slices.Equal(got, want) {
		t.Fatalf("second session after NOOP: %v, want %v", got, want)
	}
	// UID EXPUNGE only removes the listed message.
	if err := c1.Store(imap.SeqSetNum(1, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	data, err = c1.UIDExpunge(imap.UIDSetNum(5)).Collect()
	if err != nil || !slices.Equal(data, []uint32{3}) {
		t.Fatalf("UID EXPUNGE 5: %v %v", data, err)
	}
	if got, want := subjects(t, c1), []string{"1:m1", "2:m3"}; !slices.Equal(got, want) {
		t.Fatalf("after UID EXPUNGE: %v, want %v", got, want)
	}
}
