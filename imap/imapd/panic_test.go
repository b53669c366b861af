package imapd_test

import (
	"context"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/relais-mssante/relais/imap/imapd"
	"github.com/relais-mssante/relais/storage"
)

// panicky makes SearchText panic, like a parser on crafted input would.
type panicky struct{ imapd.Store }

func (panicky) SearchText(context.Context, storage.AccountID, storage.MailboxID, uint32) (string, string, error) {
	panic("crafted input")
}

func TestPanicRecoveredAndCounted(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMessage(1, "m", "x"))
	srv, c := e.serveOwn(t, imapd.Config{}, panicky{e.store})
	var err error
	_, err = c.Search(&imap.SearchCriteria{Body: []string{"x"}}, nil).Wait()
	if imapCode(err) != imap.ResponseCodeServerBug {
		t.Fatalf("SEARCH BODY with a panicking store: %v, want NO [SERVERBUG]", err)
	}
	if n := srv.Panics(); n != 1 {
		t.Fatalf("Panics() = %d, want 1", n)
	}
	// The session still works.
	if _, err := c.Search(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, nil).Wait(); err != nil {
		t.Fatalf("SEARCH after the panic: %v", err)
	}
}
