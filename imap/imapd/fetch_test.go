package imapd_test

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestFetchEnvelopeAndSeen(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.deliver("INBOX", testMessage(i, "Sortie d'hospitalisation", "Texte"))
	}
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{Envelope: true, Flags: true, BodyStructure: &imap.FetchItemBodyStructure{}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("got %d messages", len(msgs))
	}
	for _, m := range msgs {
		if m.Envelope == nil || m.Envelope.Subject != "Sortie d'hospitalisation" || len(m.Envelope.From) != 1 || m.Envelope.From[0].Addr() != "bob@example.test" {
			t.Errorf("envelope %+v", m.Envelope)
		}
		if m.BodyStructure == nil || !strings.EqualFold(m.BodyStructure.MediaType(), "text/plain") {
			t.Errorf("body structure %+v", m.BodyStructure)
		}
		if len(m.Flags) != 0 {
			t.Errorf("flags %v", m.Flags)
		}
	}
	// Out of range: nothing, no panic.
	if msgs, err := c.Fetch(imap.SeqSetNum(99), &imap.FetchOptions{Flags: true}).Collect(); err != nil || len(msgs) != 0 {
		t.Errorf("FETCH 99: %v %v", msgs, err)
	}
	// BODY[] without PEEK sets \Seen (RFC 9051 6.4.5).
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || string(msgs[0].FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})) != "Texte\r\n" {
		t.Fatalf("BODY[TEXT] = %+v", msgs)
	}
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 || len(msgs[0].Flags) != 1 || msgs[0].Flags[0] != imap.FlagSeen {
		t.Fatalf("flags after BODY[]: %+v %v", msgs, err)
	}
}

func TestStoreFlags(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMessage(1, "a", "b"))
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	msgs, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered, "$Label1"}}, nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || len(msgs[0].Flags) != 2 {
		t.Fatalf("STORE answer %+v", msgs)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true, UIDValidity: true, Size: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 1 || *st.NumUnseen != 1 || st.UIDNext != 2 || *st.Size == 0 {
		t.Errorf("status %+v", st)
	}
}

// A FETCH of every message in the view must not set \Seen on a message
// delivered since the view was last updated: the client has not seen it.
func TestFetchSeenOnlyAddressed(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMessage(1, "a", "x"))
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	e.deliver("INBOX", testMessage(2, "b", "y")) // not in the view until the next poll
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].SeqNum != 1 {
		t.Fatalf("FETCH 1:* BODY[] = %+v", msgs)
	}
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH 2 FLAGS: %+v %v", msgs, err)
	}
	if len(msgs[0].Flags) != 0 {
		t.Errorf("message 2 flags %v: \\Seen set by a FETCH that did not address it", msgs[0].Flags)
	}
}
