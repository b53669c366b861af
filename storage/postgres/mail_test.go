package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/postgres/pgtest"
)

// openNodes opens n Stores on one fresh schema, as n nodes of a cluster.
func openNodes(t *testing.T, n int) []*Store {
	t.Helper()
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, "nodes")
	var out []*Store
	for range n {
		s, err := Open(context.Background(), url, Options{Logger: quietLogger(), Schema: schema, MaxConns: 6})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

func testMessage(i int) []byte {
	return fmt.Appendf(nil, "From: a@example.org\r\nTo: b@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@example.org>\r\n\r\nbody %d\r\n", i, i, i)
}

// waitChanges reads sub until cond holds on everything read so far, or
// fails after the deadline.
func waitChanges(t *testing.T, sub *storage.Subscription, deadline time.Duration, cond func([]storage.Change) bool) []storage.Change {
	t.Helper()
	var got []storage.Change
	timeout := time.After(deadline)
	for !cond(got) {
		select {
		case <-sub.Ready():
			cs, lost := sub.Next()
			require.False(t, lost, "subscription overflowed")
			got = append(got, cs...)
		case <-timeout:
			t.Fatalf("changes not seen within %v; got %d", deadline, len(got))
		}
	}
	return got
}

// TestMailConcurrentDelivery: two nodes, four goroutines each, delivering
// 50 messages each into one INBOX. UIDs are all distinct, nothing is lost,
// and a third node that only hears the others through NOTIFY (delivered in
// commit order) sees UIDs and modseqs strictly increasing: UIDs increase in
// commit order.
func TestMailConcurrentDelivery(t *testing.T) {
	nodes := openNodes(t, 3)
	a, b, observer := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	_, err := a.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	acct, err := a.CreateAccount(ctx, "bob@example.org", "Bob", "hash")
	require.NoError(t, err)
	inbox, err := b.MailboxByName(ctx, acct.ID, "INBOX")
	require.NoError(t, err)
	sub := observer.Subscribe(acct.ID)
	defer sub.Close()

	const workers, each = 4, 50
	total := 2 * workers * each
	var mu sync.Mutex
	delivered := map[uint32]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for n, s := range []*Store{a, b} {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := uint32(0)
				for i := range each {
					d, err := s.Deliver(ctx, testMessage((n*workers+w)*each+i), time.Time{},
						[]storage.Recipient{{Account: acct.ID, Mailbox: "INBOX"}})
					if err != nil {
						errs <- err
						return
					}
					if d[0].UID <= last {
						errs <- fmt.Errorf("worker's UIDs went back: %d after %d", d[0].UID, last)
						return
					}
					last = d[0].UID
					mu.Lock()
					if delivered[d[0].UID] {
						errs <- fmt.Errorf("UID %d handed out twice", d[0].UID)
					}
					delivered[d[0].UID] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, delivered, total)

	msgs, err := a.Messages(ctx, acct.ID, inbox.ID)
	require.NoError(t, err)
	require.Len(t, msgs, total)
	for i, m := range msgs {
		require.Equal(t, uint32(i+1), m.UID, "UIDs are 1..n without gaps")
		require.True(t, delivered[m.UID])
	}
	after, err := b.MailboxByName(ctx, acct.ID, "INBOX")
	require.NoError(t, err)
	require.Equal(t, uint32(total+1), after.UIDNext)
	require.Equal(t, inbox.HighestModSeq+uint64(total), after.HighestModSeq)

	// Commit order, as NOTIFY delivers it to a third node.
	changes := waitChanges(t, sub, 10*time.Second, func(cs []storage.Change) bool { return len(cs) >= total })
	require.Len(t, changes, total)
	for i, c := range changes {
		require.Equal(t, storage.ChangeMessageAdded, c.Kind)
		require.Equal(t, inbox.ID, c.Mailbox)
		if i > 0 {
			require.Greater(t, c.UID, changes[i-1].UID, "UIDs increase in commit order")
			require.Greater(t, c.ModSeq, changes[i-1].ModSeq, "modseqs increase in commit order")
		}
	}
}

// TestMailFeedAcrossNodes: what one node commits reaches a subscription on
// the other, with the right mailbox, UID and flags; a flag change and an
// expunge follow in order.
func TestMailFeedAcrossNodes(t *testing.T) {
	nodes := openNodes(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	_, err := a.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	acct, err := a.CreateAccount(ctx, "carol@example.org", "Carol", "hash")
	require.NoError(t, err)
	sub := b.Subscribe(acct.ID)
	defer sub.Close()

	d, err := a.Append(ctx, acct.ID, "inbox", storage.NewMessage{Raw: testMessage(1), Flags: []string{`\seen`, "urgent"}})
	require.NoError(t, err)
	got := waitChanges(t, sub, 5*time.Second, func(cs []storage.Change) bool { return len(cs) >= 1 })
	require.Equal(t, storage.Change{Kind: storage.ChangeMessageAdded, Mailbox: d.Mailbox, UID: d.UID, ModSeq: got[0].ModSeq,
		Flags: []string{storage.FlagSeen, "urgent"}}, got[0])
	require.NotZero(t, got[0].ModSeq)

	up, _, err := a.StoreFlags(ctx, acct.ID, d.Mailbox, []uint32{d.UID}, storage.FlagsAdd, []string{`\Deleted`}, 0)
	require.NoError(t, err)
	require.Len(t, up, 1)
	removed, err := a.Expunge(ctx, acct.ID, d.Mailbox, nil)
	require.NoError(t, err)
	require.Equal(t, []uint32{d.UID}, removed)
	got = waitChanges(t, sub, 5*time.Second, func(cs []storage.Change) bool { return len(cs) >= 2 })
	require.Len(t, got, 2)
	require.Equal(t, storage.ChangeFlags, got[0].Kind)
	require.Equal(t, up[0].ModSeq, got[0].ModSeq)
	require.Equal(t, []string{storage.FlagSeen, "urgent", storage.FlagDeleted}, got[0].Flags)
	require.Equal(t, storage.ChangeExpunged, got[1].Kind)
	require.Equal(t, d.UID, got[1].UID)
	require.Greater(t, got[1].ModSeq, got[0].ModSeq)

	// And the other node reads the same state.
	msgs, err := b.Messages(ctx, acct.ID, d.Mailbox)
	require.NoError(t, err)
	require.Empty(t, msgs)
}

// TestMailConcurrentFlags: two nodes adding different keywords to the same
// messages at once lose none of them (each STORE reads the flags under the
// mailbox's lock).
func TestMailConcurrentFlags(t *testing.T) {
	nodes := openNodes(t, 2)
	ctx := context.Background()
	_, err := nodes[0].AddDomain(ctx, "example.org")
	require.NoError(t, err)
	acct, err := nodes[0].CreateAccount(ctx, "dan@example.org", "Dan", "hash")
	require.NoError(t, err)
	var uids []uint32
	var mbox storage.MailboxID
	for i := range 5 {
		d, err := nodes[0].Append(ctx, acct.ID, "INBOX", storage.NewMessage{Raw: testMessage(i)})
		require.NoError(t, err)
		uids, mbox = append(uids, d.UID), d.Mailbox
	}
	const rounds = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for n, s := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if _, _, err := s.StoreFlags(ctx, acct.ID, mbox, uids, storage.FlagsAdd, []string{fmt.Sprintf("k%d-%d", n, r)}, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	msgs, err := nodes[1].Messages(ctx, acct.ID, mbox)
	require.NoError(t, err)
	require.Len(t, msgs, len(uids))
	for _, m := range msgs {
		require.Len(t, m.Flags, 2*rounds, "uid %d: %v", m.UID, m.Flags)
		for n := range 2 {
			for r := range rounds {
				require.True(t, slices.Contains(m.Flags, fmt.Sprintf("k%d-%d", n, r)))
			}
		}
	}
	mb, err := nodes[1].MailboxByName(ctx, acct.ID, "INBOX")
	require.NoError(t, err)
	require.Equal(t, uint64(1+len(uids)+2*rounds), mb.HighestModSeq)
}

// TestMailConcurrentMailboxes: two nodes creating mailboxes at once never
// hand out one UIDVALIDITY twice, and of two creations of one name exactly
// one succeeds while the other gets ErrExists.
func TestMailConcurrentMailboxes(t *testing.T) {
	nodes := openNodes(t, 2)
	ctx := context.Background()
	_, err := nodes[0].AddDomain(ctx, "example.org")
	require.NoError(t, err)
	acct, err := nodes[0].CreateAccount(ctx, "erin@example.org", "Erin", "hash")
	require.NoError(t, err)
	const perNode = 20
	var mu sync.Mutex
	validity := map[uint32]string{}
	created, exists := 0, 0
	var wg sync.WaitGroup
	errs := make(chan error, 2*perNode)
	for n, s := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perNode {
				// Own names, and one shared name per round.
				for _, name := range []string{fmt.Sprintf("n%d/box%d", n, i), fmt.Sprintf("shared%d", i)} {
					m, err := s.CreateMailbox(ctx, acct.ID, name, storage.SpecialUseNone)
					mu.Lock()
					switch {
					case errors.Is(err, storage.ErrExists):
						exists++
					case err != nil:
						errs <- err
					default:
						created++
						if prev, dup := validity[m.UIDValidity]; dup {
							errs <- fmt.Errorf("UIDVALIDITY %d given to %s and %s", m.UIDValidity, prev, name)
						}
						validity[m.UIDValidity] = name
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, perNode, exists, "each shared name created once")
	require.Equal(t, 3*perNode, created)
	boxes, err := nodes[1].Mailboxes(ctx, acct.ID)
	require.NoError(t, err)
	// Defaults, the two parents n0 and n1, the own and shared names.
	require.Len(t, boxes, len(storage.DefaultMailboxes)+2+3*perNode)
	all := map[uint32]bool{}
	for _, b := range boxes {
		require.False(t, all[b.UIDValidity], "UIDVALIDITY %d twice", b.UIDValidity)
		all[b.UIDValidity] = true
	}
}
