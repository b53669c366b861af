package imapd_test

import (
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// watcher records a client's unilateral data and signals each arrival.
type watcher struct {
	mu       sync.Mutex
	exists   uint32
	expunges []uint32
	flags    map[uint32][]imap.Flag
	ch       chan struct{}
}

func newWatcher() *watcher {
	return &watcher{ch: make(chan struct{}, 100), flags: make(map[uint32][]imap.Flag)}
}

func (w *watcher) handler() *imapclient.UnilateralDataHandler {
	return &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				w.mu.Lock()
				w.exists = *d.NumMessages
				w.mu.Unlock()
				w.signal()
			}
		},
		Expunge: func(seq uint32) {
			w.mu.Lock()
			w.expunges = append(w.expunges, seq)
			w.mu.Unlock()
			w.signal()
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, err := msg.Collect()
			if err != nil {
				return
			}
			w.mu.Lock()
			w.flags[buf.SeqNum] = buf.Flags
			w.mu.Unlock()
			w.signal()
		},
	}
}

func (w *watcher) signal() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

func (w *watcher) state() (uint32, []uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.exists, append([]uint32(nil), w.expunges...)
}

func TestIdleWokenByDelivery(t *testing.T) {
	e := newEnv(t)
	w := newWatcher()
	c := e.dial(w.handler())
	e.selectBox(c, "INBOX")
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	go e.deliver("INBOX", testMessage(1, "Nouveau", "texte"))
	waitFor(t, time.Second, "EXISTS 1 during IDLE", w.ch, func() bool { n, _ := w.state(); return n == 1 })
	go e.deliver("INBOX", testMessage(2, "Encore", "texte"))
	waitFor(t, time.Second, "EXISTS 2 during IDLE", w.ch, func() bool { n, _ := w.state(); return n == 2 })
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "Encore" {
		t.Fatalf("fetch after idle: %+v %v", msgs, err)
	}
}

func TestNoopReportsFlagChanges(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMessage(1, "a", "b"))
	w := newWatcher()
	c1 := e.dial(nil)
	c2 := e.dial(w.handler())
	e.selectBox(c1, "INBOX")
	e.selectBox(c2, "INBOX")
	if err := c1.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	// imapclient runs the unilateral FETCH handler in a goroutine.
	waitFor(t, time.Second, "FETCH FLAGS (\\Seen) in the second session", w.ch, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		got := w.flags[1]
		return len(got) == 1 && got[0] == imap.FlagSeen
	})
}
