package imapd_test

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestListAndMailboxes(t *testing.T) {
	e := newEnv(t)
	c := e.dial(nil)
	if err := c.Create("Patients/Dupont", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Tout", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrFlagged}}).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Patients", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Fatalf("CREATE existing: %v", err)
	}
	list, err := c.List("", "*", &imap.ListOptions{ReturnSubscribed: true, ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		attrs[l.Mailbox] = l.Attrs
		if l.Delim != '/' {
			t.Errorf("delimiter %q", l.Delim)
		}
		if l.Status == nil || l.Status.NumMessages == nil {
			t.Errorf("no LIST-STATUS for %s", l.Mailbox)
		}
	}
	want := map[string][]imap.MailboxAttr{
		"INBOX":           {imap.MailboxAttrHasNoChildren, imap.MailboxAttrSubscribed},
		"Sent":            {imap.MailboxAttrHasNoChildren, imap.MailboxAttrSubscribed, imap.MailboxAttrSent},
		"Drafts":          {imap.MailboxAttrHasNoChildren, imap.MailboxAttrSubscribed, imap.MailboxAttrDrafts},
		"Trash":           {imap.MailboxAttrHasNoChildren, imap.MailboxAttrSubscribed, imap.MailboxAttrTrash},
		"Junk":            {imap.MailboxAttrHasNoChildren, imap.MailboxAttrSubscribed, imap.MailboxAttrJunk},
		"Archive":         {imap.MailboxAttrHasNoChildren, imap.MailboxAttrSubscribed, imap.MailboxAttrArchive},
		"Patients":        {imap.MailboxAttrHasChildren},
		"Patients/Dupont": {imap.MailboxAttrHasNoChildren},
		"Tout":            {imap.MailboxAttrHasNoChildren, imap.MailboxAttrFlagged},
	}
	for name, w := range want {
		got := attrs[name]
		if !slices.Equal(got, w) {
			t.Errorf("%s: attrs %v, want %v", name, got, w)
		}
	}
	if len(attrs) != len(want) {
		t.Errorf("LIST %v", attrs)
	}
	// LSUB, subscribe, rename, delete.
	if err := c.Subscribe("Patients/Dupont").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("Patients/Dupont", "Patients/Durand", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("INBOX").Wait(); err == nil {
		t.Error("DELETE INBOX accepted")
	}
	if err := c.Delete("Patients/Durand").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Patients/Durand", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("SELECT deleted: %v", err)
	}
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' {
		t.Errorf("NAMESPACE %+v %v", ns, err)
	}
	sub, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil || len(sub) != 6 {
		t.Errorf("LIST (SUBSCRIBED): %d %v", len(sub), err)
	}
}
