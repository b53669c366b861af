package imapd_test

import (
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/relais-mssante/relais/storage/sqlite"
)

func TestCloseEndsIdleSessions(t *testing.T) {
	e := newEnv(t)
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("client connection still open after Close")
	}
	_ = idle.Close()
	if err := e.srv.Serve(e.ln); !errors.Is(err, net.ErrClosed) {
		t.Error("Serve after Close succeeded")
	}
}

// TestOverflowResync fills a tiny feed backlog so that the session must
// resynchronise from storage, and checks what the client is told.
func TestOverflowResync(t *testing.T) {
	e := newEnv(t)
	// Reopen the store with a backlog of 2 changes.
	e.stop()
	st, err := sqlite.Open(filepath.Join(e.dir, "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler), Backlog: 2})
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	e.start()
	for i := 1; i <= 3; i++ {
		e.deliver("INBOX", testMessage(i, "m", "x"))
	}
	w := newWatcher()
	c := e.dial(w.handler())
	e.selectBox(c, "INBOX")
	other := e.dial(nil)
	e.selectBox(other, "INBOX")
	if err := other.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	for i := 4; i <= 8; i++ {
		e.deliver("INBOX", testMessage(i, "m", "x"))
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "EXPUNGE 2 and EXISTS 7", w.ch, func() bool {
		n, ex := w.state()
		return n == 7 && slices.Equal(ex, []uint32{2})
	})
	d, err := c.Search(&imap.SearchCriteria{}, nil).Wait()
	if err != nil || len(d.AllSeqNums()) != 7 {
		t.Fatalf("SEARCH ALL after resync: %v %v", d.AllSeqNums(), err)
	}
}

func TestUnauthenticate(t *testing.T) {
	e := newEnv(t)
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	if err := c.Unauthenticate().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err == nil {
		t.Fatal("SELECT accepted after UNAUTHENTICATE")
	}
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	e.selectBox(c, "INBOX")
}
