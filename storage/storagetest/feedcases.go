package storagetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

type kindUID struct {
	Kind storage.ChangeKind
	UID  uint32
	Name string
}

func summarise(chs []storage.Change) []kindUID {
	out := []kindUID{}
	for _, c := range chs {
		out = append(out, kindUID{c.Kind, c.UID, c.Name})
	}
	return out
}

func testFeed(t *testing.T, e *env) {
	sub := e.s.Subscribe(e.alice.ID)
	defer sub.Close()
	bobSub := e.s.Subscribe(e.bob.ID)
	defer bobSub.Close()
	in := e.mailbox(t, e.alice.ID, "INBOX")

	d1 := e.append(t, e.alice.ID, "INBOX", textMessage("1", "1"), storage.FlagSeen)
	select {
	case <-sub.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Ready not signalled after commit")
	}
	chs := drain(t, sub)
	require.Len(t, chs, 1)
	assert.Equal(t, storage.Change{Kind: storage.ChangeMessageAdded, Mailbox: in.ID, UID: d1.UID,
		ModSeq: e.message(t, e.alice.ID, in.ID, d1.UID).ModSeq, Flags: []string{storage.FlagSeen}}, chs[0])

	up, _, err := e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, []uint32{d1.UID}, storage.FlagsAdd, []string{storage.FlagDeleted}, 0)
	require.NoError(t, err)
	_, err = e.s.Expunge(e.ctx, e.alice.ID, in.ID, nil)
	require.NoError(t, err)
	mb, err := e.s.CreateMailbox(e.ctx, e.alice.ID, "Equipe", "")
	require.NoError(t, err)
	require.NoError(t, e.s.RenameMailbox(e.ctx, e.alice.ID, "Equipe", "Team"))
	require.NoError(t, e.s.DeleteMailbox(e.ctx, e.alice.ID, "Team"))
	ds, err := e.s.Deliver(e.ctx, textMessage("2", "2"), time.Time{}, []storage.Recipient{
		{Account: e.alice.ID, Mailbox: "INBOX"}, {Account: e.bob.ID, Mailbox: "INBOX"}, {Account: e.alice.ID, Mailbox: "Sent"},
	})
	require.NoError(t, err)

	chs = drain(t, sub)
	assert.Equal(t, []kindUID{
		{storage.ChangeFlags, d1.UID, ""},
		{storage.ChangeExpunged, d1.UID, ""},
		{storage.ChangeMailboxCreated, 0, "Equipe"},
		{storage.ChangeMailboxRenamed, 0, "Team"},
		{storage.ChangeMailboxDeleted, 0, "Team"},
		{storage.ChangeMessageAdded, ds[0].UID, ""},
		{storage.ChangeMessageAdded, ds[2].UID, ""},
	}, summarise(chs))
	require.Len(t, chs, 7)
	assert.Equal(t, up[0].ModSeq, chs[0].ModSeq)
	assert.ElementsMatch(t, []string{storage.FlagSeen, storage.FlagDeleted}, chs[0].Flags)
	assert.Greater(t, chs[1].ModSeq, chs[0].ModSeq)
	for _, c := range chs[2:5] {
		assert.Equal(t, mb.ID, c.Mailbox)
	}
	assert.Equal(t, ds[2].Mailbox, chs[6].Mailbox)

	bobChs := drain(t, bobSub)
	assert.Equal(t, []kindUID{{storage.ChangeMessageAdded, ds[1].UID, ""}}, summarise(bobChs), "accounts do not see each other's changes")

	// Failed operations publish nothing.
	_, err = e.s.Deliver(e.ctx, textMessage("3", "3"), time.Time{}, []storage.Recipient{{Account: e.alice.ID, Mailbox: "INBOX"}, {Account: e.alice.ID, Mailbox: "Nope"}})
	require.Error(t, err)
	assert.Empty(t, drain(t, sub))

	sub.Close()
	e.append(t, e.alice.ID, "INBOX", textMessage("4", "4"))
	assert.Empty(t, drain(t, sub), "closed subscriptions receive nothing")
}

func testFeedOverflow(t *testing.T, e *env) {
	in := e.mailbox(t, e.alice.ID, "INBOX")
	rcpts := make([]storage.Recipient, 100)
	for i := range rcpts {
		rcpts[i] = storage.Recipient{Account: e.alice.ID, Mailbox: "INBOX"}
	}
	ds, err := e.s.Deliver(e.ctx, textMessage("o", "o"), time.Time{}, rcpts)
	require.NoError(t, err)
	uids := make([]uint32, len(ds))
	for i, d := range ds {
		uids[i] = d.UID
	}

	sub := e.s.Subscribe(e.alice.ID)
	defer sub.Close()
	// 101 x 100 flag changes > storage.DefaultBacklog unread changes.
	for i := 0; i <= storage.DefaultBacklog/len(uids); i++ {
		op := storage.FlagsAdd
		if i%2 == 1 {
			op = storage.FlagsRemove
		}
		up, _, err := e.s.StoreFlags(e.ctx, e.alice.ID, in.ID, uids, op, []string{storage.FlagSeen}, 0)
		require.NoError(t, err)
		require.Len(t, up, len(uids))
	}
	chs, overflowed := sub.Next()
	assert.True(t, overflowed)
	assert.Empty(t, chs)

	// After resynchronising, the subscription carries on.
	d := e.append(t, e.alice.ID, "INBOX", textMessage("after", "after"))
	chs, overflowed = sub.Next()
	assert.False(t, overflowed)
	assert.Equal(t, []kindUID{{storage.ChangeMessageAdded, d.UID, ""}}, summarise(chs))
}

// testConcurrency delivers from 8 goroutines into one mailbox: UIDs are
// unique, strictly increasing per writer and in feed (commit) order, with
// no gap.
func testConcurrency(t *testing.T, e *env) {
	const writers, each = 8, 50
	in := e.mailbox(t, e.alice.ID, "INBOX")
	sub := e.s.Subscribe(e.alice.ID)
	defer sub.Close()

	var wg sync.WaitGroup
	got := make([][]uint32, writers)
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ds, err := e.s.Deliver(e.ctx, textMessage("c", "concurrent"), time.Time{}, []storage.Recipient{{Account: e.alice.ID, Mailbox: "INBOX"}})
				if err != nil {
					errs <- err
					return
				}
				got[w] = append(got[w], ds[0].UID)
				if i%10 == 0 {
					// A failing delivery in the middle of concurrent ones
					// leaves no trace (no UID, no gap, no change).
					_, err := e.s.Deliver(e.ctx, textMessage("bad", "bad"), time.Time{}, []storage.Recipient{
						{Account: e.alice.ID, Mailbox: "INBOX"}, {Account: e.alice.ID, Mailbox: "Nope"},
					})
					if !errors.Is(err, storage.ErrNotFound) {
						errs <- fmt.Errorf("bad delivery: got %v, want ErrNotFound", err)
						return
					}
				}
			}
		}()
	}
	// Readers run alongside the writers.
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for r := 0; r < 2; r++ {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ms, err := e.s.Messages(e.ctx, e.alice.ID, in.ID)
				if err != nil {
					errs <- err
					return
				}
				for i := 1; i < len(ms); i++ {
					if ms[i].UID <= ms[i-1].UID {
						t.Errorf("Messages not in UID order")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	seen := map[uint32]bool{}
	for _, uids := range got {
		require.Len(t, uids, each)
		for i, u := range uids {
			if i > 0 {
				assert.Greater(t, u, uids[i-1])
			}
			assert.False(t, seen[u], "UID %d given twice", u)
			seen[u] = true
		}
	}
	all := e.uids(t, e.alice.ID, in.ID)
	require.Len(t, all, writers*each)
	for i, u := range all {
		assert.Equal(t, uint32(i+1), u, "no gap")
	}
	assert.Equal(t, uint32(writers*each+1), e.mailbox(t, e.alice.ID, "INBOX").UIDNext)
	c, err := e.s.MailboxCounts(e.ctx, e.alice.ID, in.ID)
	require.NoError(t, err)
	assert.Equal(t, uint32(writers*each), c.Messages)

	chs := drain(t, sub)
	require.Len(t, chs, writers*each)
	var last uint64
	for i, ch := range chs {
		assert.Equal(t, uint32(i+1), ch.UID, "feed in commit order")
		assert.Greater(t, ch.ModSeq, last)
		last = ch.ModSeq
	}
}
