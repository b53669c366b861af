package imapd_test

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/relais-mssante/relais/imap/imapd"
	"github.com/relais-mssante/relais/internal/authn"
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
	srv := imapd.New(imapd.Config{TLS: e.tlsConf, Logger: slog.New(slog.DiscardHandler)}, panicky{e.store}, authn.New(e.store, nil))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	c, err := imapclient.DialStartTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: e.clientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
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
