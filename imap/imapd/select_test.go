package imapd_test

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestRestartKeepsUIDs(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.deliver("INBOX", testMessage(i, "m", "x"))
	}
	c := e.dial(nil)
	before := e.selectBox(c, "INBOX")
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()

	e.restart()
	c = e.dial(nil)
	after := e.selectBox(c, "INBOX")
	if after.UIDValidity != before.UIDValidity || after.UIDNext != 4 || after.NumMessages != 2 {
		t.Fatalf("after restart: %+v, before %+v", after, before)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var uids []imap.UID
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	if !slices.Equal(uids, []imap.UID{1, 3}) {
		t.Fatalf("UIDs after restart %v, want [1 3]", uids)
	}
}

func TestExamineIsReadOnly(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMessage(1, "m", "x"))
	c := e.dial(nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err == nil {
		t.Fatal("STORE accepted in EXAMINE")
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Archive").Wait(); err == nil {
		t.Fatal("MOVE accepted in EXAMINE")
	}
	// BODY[] does not set \Seen in a read-only mailbox.
	if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumUnseen: true}).Wait()
	if err != nil || *st.NumUnseen != 1 {
		t.Fatalf("unseen after EXAMINE fetch: %+v %v", st, err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
}
