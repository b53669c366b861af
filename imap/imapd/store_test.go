package imapd_test

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func storeFlags(t testing.TB, silent bool, op imap.StoreFlagsOp, flags ...imap.Flag) *imap.StoreFlags {
	t.Helper()
	return &imap.StoreFlags{Op: op, Silent: silent, Flags: flags}
}

// TestStoreSilentStillReportsOthersChanges: .SILENT hides only the
// command's own change (RFC 9051 6.4.6). A change another session made
// earlier, not yet reported, still reaches the client with the full flags;
// a change nobody else made is not echoed.
func TestStoreSilentStillReportsOthersChanges(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMessage(1, "one", "x"))
	e.deliver("INBOX", testMessage(2, "two", "x"))
	w := newWatcher()
	a := e.dial(w.handler())
	b := e.dial(nil)
	e.selectBox(a, "INBOX")
	e.selectBox(b, "INBOX")

	if err := b.Store(imapSeq(1), storeFlags(t, false, imap.StoreFlagsAdd, imap.FlagFlagged), nil).Close(); err != nil {
		t.Fatal(err)
	}
	// The report may come with the STORE's own responses (the server polls
	// after each command) or at the NOOP: gather both.
	told := map[uint32][]imap.Flag{}
	for _, seq := range []uint32{1, 2} {
		flag := imap.FlagSeen
		if seq == 2 {
			flag = imap.FlagAnswered
		}
		msgs, err := a.Store(imapSeq(seq), storeFlags(t, true, imap.StoreFlagsAdd, flag), nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			told[m.SeqNum] = m.Flags
		}
	}
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	for seq, f := range w.flags {
		told[seq] = f
	}
	w.mu.Unlock()
	got := told[1]
	if !slices.Contains(got, imap.FlagFlagged) || !slices.Contains(got, imap.FlagSeen) {
		t.Fatalf("session A was told flags %v for message 1, want \\Flagged (by B) and \\Seen", got)
	}
	if f, ok := told[2]; ok {
		t.Fatalf("session A's own .SILENT change to message 2 was echoed: %v", f)
	}
}
