package imapd_test

import (
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/relais-mssante/relais/imap/imapd"
	"github.com/relais-mssante/relais/internal/authn"
)

// commands records what the server tells its Observer.
type commands struct {
	mu    sync.Mutex
	names []string
}

func (c *commands) IMAPCommand(name string, elapsed time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if elapsed > 0 {
		c.names = append(c.names, name)
	}
}

func (c *commands) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.names)
}

// TestObserverAndGauges: each command is reported with its duration, IDLE
// is not (it lasts as long as the client wants) but counts in Idling while
// it lasts, and Sessions counts the open connections.
func TestObserverAndGauges(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMessage(1, "m", "x"))
	obs := &commands{}
	srv := imapd.New(imapd.Config{TLS: e.tlsConf, Logger: slog.New(slog.DiscardHandler), Observer: obs}, e.store, authn.New(e.store, nil))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	if n := srv.Sessions(); n != 0 {
		t.Fatalf("Sessions() = %d before any client", n)
	}
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
	if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect(); err != nil {
		t.Fatal(err)
	}
	if n := srv.Sessions(); n != 1 {
		t.Fatalf("Sessions() = %d, want 1", n)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "IDLE to count", func() bool { return srv.Idling() == 1 })
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	poll(t, "IDLE to end", func() bool { return srv.Idling() == 0 })
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	got := obs.list()
	for _, want := range []string{"login", "select", "fetch"} {
		if !slices.Contains(got, want) {
			t.Errorf("observed %v, want %s in it", got, want)
		}
	}
	if slices.Contains(got, "idle") {
		t.Errorf("observed %v: IDLE is not a timed command", got)
	}
	c.Close()
	poll(t, "the session to close", func() bool { return srv.Sessions() == 0 })
}

// poll waits until cond holds, checking every 10 ms, for 5 s at most.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
