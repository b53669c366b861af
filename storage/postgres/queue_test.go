package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/postgres/pgtest"
)

// queueNodes opens two Stores on one fresh schema, as two nodes of a
// cluster sharing the outbound queue.
func queueNodes(t *testing.T) (a, b *Store) {
	t.Helper()
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, "queue-nodes")
	open := func() *Store {
		s, err := Open(context.Background(), url, Options{Logger: quietLogger(), Schema: schema, MaxConns: 6})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(), open()
}

// dsn is a message Relais sends itself (account 0, null sender), so that
// the queue tests need no account.
func dsn(i int, rcpts ...string) storage.Outbound {
	out := storage.Outbound{
		MessageID: fmt.Sprintf("dsn-%d@example.org", i),
		Raw:       fmt.Appendf(nil, "From: postmaster@example.org\r\nSubject: report %d\r\n\r\nbody\r\n", i),
	}
	for _, r := range rcpts {
		out.Recipients = append(out.Recipients, storage.OutboundRecipient{Address: r})
	}
	return out
}

// leaseAll runs 4 goroutines per store calling LeaseDue(now) in a loop
// until it finds nothing, and counts how often each entry was handed out.
func leaseAll(t *testing.T, stores []*Store, now time.Time, lease time.Duration, entries int) map[storage.QueueID]int {
	t.Helper()
	const perStore, limit = 4, 3
	var (
		mu   sync.Mutex
		seen = map[storage.QueueID]int{}
		wg   sync.WaitGroup
		errs = make(chan error, perStore*len(stores))
	)
	for _, s := range stores {
		for range perStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range entries { // bounded: a store that never excludes fails, not hangs
					got, err := s.LeaseDue(context.Background(), now, limit, lease)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						// What is not leased yet is locked by a LeaseDue
						// in flight, which leases it.
						return
					}
					mu.Lock()
					for _, q := range got {
						seen[q.ID]++
					}
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
	return seen
}

// TestQueueLeaseTwoNodes: the issue's "the outbound queue is shared safely
// (leases with FOR UPDATE SKIP LOCKED)". Two nodes, four workers each,
// 200 due entries: every entry is leased exactly once while the leases are
// valid, and exactly once again once they have expired.
func TestQueueLeaseTwoNodes(t *testing.T) {
	a, b := queueNodes(t)
	ctx := context.Background()
	const entries = 200
	want := map[storage.QueueID]bool{}
	for i := range entries {
		s := a
		if i%2 == 1 {
			s = b
		}
		id, err := s.Enqueue(ctx, dsn(i, "carol@remote.example"))
		require.NoError(t, err)
		want[id] = true
	}
	require.Len(t, want, entries)
	now := time.Now().Add(time.Second)
	const lease = time.Hour

	check := func(seen map[storage.QueueID]int) {
		t.Helper()
		require.Len(t, seen, entries, "every due entry is leased")
		for id, n := range seen {
			assert.True(t, want[id], "entry %d", id)
			assert.Equal(t, 1, n, "entry %d leased %d times", id, n)
		}
	}
	check(leaseAll(t, []*Store{a, b}, now, lease, entries))

	// While the leases are valid, neither node gets anything more, and
	// every entry carries its lease.
	for _, s := range []*Store{a, b} {
		got, err := s.LeaseDue(ctx, now.Add(lease-time.Second), entries, lease)
		require.NoError(t, err)
		assert.Empty(t, got)
	}
	n := 0
	require.NoError(t, b.QueueEntries(ctx, func(q storage.QueueEntry) error {
		n++
		assert.True(t, q.LeaseUntil.Equal(now.Add(lease)), "entry %d leased until %v", q.ID, q.LeaseUntil)
		return nil
	}))
	assert.Equal(t, entries, n)

	// Workers that died lose nothing: once expired, every lease is taken
	// again, still once.
	check(leaseAll(t, []*Store{a, b}, now.Add(lease+time.Second), lease, entries))
}

// TestQueueStaleAttemptTwoNodes: a worker on node A whose lease ran out
// reports after node B leased the entry again. Its final outcome is kept
// (the remote server answered), its deferral is not, and B's lease stays;
// B's own report then applies and releases the lease.
func TestQueueStaleAttemptTwoNodes(t *testing.T) {
	a, b := queueNodes(t)
	ctx := context.Background()
	id, err := a.Enqueue(ctx, dsn(1, "carol@remote.example", "dave@remote.example", "erin@remote.example"))
	require.NoError(t, err)

	// A leases for a millisecond; B, a second later by its clock, finds
	// the lease expired and takes the entry for an hour.
	t0 := time.Now().Add(time.Second)
	got, err := a.LeaseDue(ctx, t0, 1, time.Millisecond)
	require.NoError(t, err)
	require.Len(t, got, 1)
	now := t0.Add(time.Second)
	got, err = b.LeaseDue(ctx, now, 1, time.Hour)
	require.NoError(t, err)
	require.Len(t, got, 1)
	leased, err := a.QueueEntry(ctx, id)
	require.NoError(t, err)
	require.True(t, leased.LeaseUntil.Equal(now.Add(time.Hour)))

	// A's late report.
	require.NoError(t, a.RecordAttempt(ctx, id, []storage.AttemptResult{
		{Address: "carol@remote.example", State: storage.QueueDelivered, Error: "250 2.0.0 ok"},
		{Address: "dave@remote.example", State: storage.QueueFailed, Error: "550 5.1.1 unknown"},
		{Address: "erin@remote.example", State: storage.QueuePending, NextAttempt: now.Add(time.Minute), Error: "451 later"},
	}))
	q, err := a.QueueEntry(ctx, id)
	require.NoError(t, err)
	assert.True(t, q.LeaseUntil.Equal(leased.LeaseUntil), "B's lease is kept")
	carol, dave, erin := q.Recipients[0], q.Recipients[1], q.Recipients[2]
	assert.Equal(t, storage.QueueDelivered, carol.State)
	assert.Equal(t, 1, carol.Attempts)
	assert.Equal(t, storage.QueueFailed, dave.State)
	assert.Equal(t, storage.QueuePending, erin.State)
	assert.Zero(t, erin.Attempts, "the stale deferral is not recorded")
	assert.Empty(t, erin.LastError)
	assert.True(t, leased.Recipients[2].NextAttempt.Equal(erin.NextAttempt))
	got, err = a.LeaseDue(ctx, now.Add(time.Minute), 10, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, got, "still leased to B")

	// B, the holder, records normally and releases its lease.
	require.NoError(t, b.RecordAttempt(ctx, id, []storage.AttemptResult{
		{Address: "carol@remote.example", State: storage.QueueFailed, Error: "stale"},
		{Address: "erin@remote.example", State: storage.QueuePending, NextAttempt: now.Add(10 * time.Minute), Error: "421 busy"},
	}))
	q, err = b.QueueEntry(ctx, id)
	require.NoError(t, err)
	assert.True(t, q.LeaseUntil.IsZero())
	assert.Equal(t, storage.QueueDelivered, q.Recipients[0].State, "final states stay")
	assert.Equal(t, 1, q.Recipients[2].Attempts)
	assert.Equal(t, "421 busy", q.Recipients[2].LastError)
	assert.True(t, q.Recipients[2].NextAttempt.Equal(now.Add(10*time.Minute)))

	// Without a live lease held elsewhere, any node records (a lease of
	// its own, or none at all), and the entry goes once all is final.
	require.NoError(t, a.RecordAttempt(ctx, id, []storage.AttemptResult{{Address: "erin@remote.example", State: storage.QueueDelivered}}))
	_, err = b.QueueEntry(ctx, id)
	require.ErrorIs(t, err, storage.ErrNotFound)
}

// TestDeliveryStatusTwoNodes: both nodes race to update the status of the
// same recipients in random order; each ends at the furthest state
// (storage.DeliveryState's order), and each row exists once.
func TestDeliveryStatusTwoNodes(t *testing.T) {
	a, b := queueNodes(t)
	ctx := context.Background()
	_, err := a.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	alice, err := a.CreateAccount(ctx, "alice@example.org", "Alice", "h")
	require.NoError(t, err)
	const rcpts = 10
	steps := []storage.DeliveryState{storage.StatusQueued, storage.StatusDelayed, storage.StatusRelayed,
		storage.StatusFailed, storage.StatusDelivered, storage.StatusRead}
	var (
		wg   sync.WaitGroup
		errs = make(chan error, 8)
	)
	for w := range 8 {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			order := rand.Perm(len(steps) * rcpts)
			for _, k := range order {
				st := storage.DeliveryStatus{MessageID: "race@example.org", Recipient: fmt.Sprintf("r%d@remote.example", k%rcpts),
					State: steps[k/rcpts], Detail: string(steps[k/rcpts])}
				if err := s.SetDeliveryStatus(ctx, alice.ID, st); err != nil {
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
	sts, err := b.DeliveryStatuses(ctx, alice.ID, "race@example.org")
	require.NoError(t, err)
	require.Len(t, sts, rcpts)
	for _, st := range sts {
		assert.Equal(t, storage.StatusRead, st.State, st.Recipient)
		assert.Equal(t, string(storage.StatusRead), st.Detail, st.Recipient)
	}
}
