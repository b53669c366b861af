package storagetest

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

// The outbound queue (RFC 5321 4.5.4.1) and delivery status cases
// (storage.QueueStore).

// queue returns the store's queue (every storage.Store has one).
func (e *env) queue(t *testing.T) storage.QueueStore {
	t.Helper()
	return e.s
}

// outbound is a message from alice to remote recipients.
func (e *env) outbound(msgID string, rcpts ...string) storage.Outbound {
	out := storage.Outbound{
		Account:   e.alice.ID,
		Sender:    "alice@example.org",
		MessageID: msgID,
		Raw:       textMessage("remote "+msgID, "signed body for "+msgID),
		Ret:       "HDRS",
		EnvID:     "env-" + msgID,
		Expires:   time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC),
	}
	for _, r := range rcpts {
		out.Recipients = append(out.Recipients, storage.OutboundRecipient{Address: r})
	}
	return out
}

func (e *env) enqueue(t *testing.T, qs storage.QueueStore, msgID string, rcpts ...string) storage.QueueID {
	t.Helper()
	id, err := qs.Enqueue(e.ctx, e.outbound(msgID, rcpts...))
	require.NoError(t, err)
	require.NotZero(t, id)
	return id
}

func queueIDs(t *testing.T, e *env, qs storage.QueueStore) []storage.QueueID {
	t.Helper()
	ids := []storage.QueueID{}
	require.NoError(t, qs.QueueEntries(e.ctx, func(q storage.QueueEntry) error {
		ids = append(ids, q.ID)
		return nil
	}))
	return ids
}

func leasedIDs(es []storage.QueueEntry) []storage.QueueID {
	ids := []storage.QueueID{}
	for _, q := range es {
		ids = append(ids, q.ID)
	}
	return ids
}

func statusStates(t *testing.T, e *env, qs storage.QueueStore, acct storage.AccountID, msgID string) map[string]storage.DeliveryState {
	t.Helper()
	sts, err := qs.DeliveryStatuses(e.ctx, acct, msgID)
	require.NoError(t, err)
	out := map[string]storage.DeliveryState{}
	for _, st := range sts {
		out[st.Recipient] = st.State
	}
	return out
}

func testSubmitAtomic(t *testing.T, e *env) {
	qs := e.queue(t)
	sub := e.s.Subscribe(e.bob.ID)
	defer sub.Close()
	raw := textMessage("submitted", "to bob and two remote")
	out := e.outbound("m1@example.org", "carol@remote.example", "Dave@Remote.Example")
	out.Recipients[0].Notify = []string{"success", storage.NotifyFailure}
	out.Recipients[0].ORCPT = "rfc822;carol@remote.example"
	out.Recipients = append(out.Recipients, storage.OutboundRecipient{Address: "carol@REMOTE.example"}) // RCPT given twice
	ds, id, err := qs.Submit(e.ctx, storage.Submission{
		Raw:      raw,
		Local:    []storage.Recipient{{Account: e.bob.ID, Mailbox: "INBOX"}, {Account: e.alice.ID, Mailbox: "Sent", SpecialUse: storage.SpecialUseSent, Flags: []string{storage.FlagSeen}}},
		Outbound: &out, Account: e.alice.ID, MessageID: "m1@example.org", LocalAddresses: []string{"bob@example.org"},
	})
	require.NoError(t, err)
	require.NotZero(t, id)
	require.Len(t, ds, 2)
	for _, d := range ds {
		got, err := e.s.RawMessage(e.ctx, d.Account, d.Mailbox, d.UID)
		require.NoError(t, err)
		assert.Equal(t, raw, got)
	}
	chs := drain(t, sub)
	require.Len(t, chs, 1, "the local copy is published like Deliver's")
	assert.Equal(t, storage.ChangeMessageAdded, chs[0].Kind)
	assert.Equal(t, ds[0].UID, chs[0].UID)

	q, err := qs.QueueEntry(e.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, id, q.ID)
	assert.Equal(t, e.alice.ID, q.Account)
	assert.Equal(t, "alice@example.org", q.Sender)
	assert.Equal(t, "m1@example.org", q.MessageID)
	assert.Equal(t, "HDRS", q.Ret)
	assert.Equal(t, "env-m1@example.org", q.EnvID)
	assert.Equal(t, int64(len(out.Raw)), q.Size)
	assert.True(t, q.Expires.Equal(out.Expires))
	assert.WithinDuration(t, time.Now(), q.Created, time.Minute)
	assert.True(t, q.LeaseUntil.IsZero())
	require.Len(t, q.Recipients, 2, "a recipient given twice is queued once")
	c, d := q.Recipients[0], q.Recipients[1]
	assert.Equal(t, "carol@remote.example", c.Address)
	assert.Equal(t, "remote.example", c.Domain)
	assert.Equal(t, []string{storage.NotifySuccess, storage.NotifyFailure}, c.Notify)
	assert.Equal(t, "rfc822;carol@remote.example", c.ORCPT)
	assert.Equal(t, "Dave@remote.example", d.Address, "local part as given, domain lower-case")
	assert.Empty(t, d.Notify)
	for _, r := range q.Recipients {
		assert.Equal(t, storage.QueuePending, r.State)
		assert.Zero(t, r.Attempts)
		assert.WithinDuration(t, time.Now(), r.NextAttempt, time.Minute, "due at once")
		assert.True(t, r.LastAttempt.IsZero())
	}
	wire, err := qs.QueueMessage(e.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, out.Raw, wire)

	sts, err := qs.DeliveryStatuses(e.ctx, e.alice.ID, "m1@example.org")
	require.NoError(t, err)
	require.Len(t, sts, 3)
	assert.Equal(t, []string{"Dave@remote.example", "bob@example.org", "carol@remote.example"},
		[]string{sts[0].Recipient, sts[1].Recipient, sts[2].Recipient}, "ordered by recipient")
	assert.Equal(t, storage.StatusQueued, sts[0].State)
	assert.Equal(t, storage.StatusDelivered, sts[1].State)
	assert.Equal(t, storage.StatusQueued, sts[2].State)
	for _, st := range sts {
		assert.Equal(t, "m1@example.org", st.MessageID)
		assert.WithinDuration(t, time.Now(), st.Updated, time.Minute)
	}

	// A local recipient whose account does not exist fails everything:
	// no copy, no queue entry, no status, no change.
	bobIn := e.mailbox(t, e.bob.ID, "INBOX")
	before := queueIDs(t, e, qs)
	out2 := e.outbound("m2@example.org", "carol@remote.example")
	_, _, err = qs.Submit(e.ctx, storage.Submission{
		Raw:      raw,
		Local:    []storage.Recipient{{Account: e.bob.ID, Mailbox: "INBOX"}, {Account: e.bob.ID + 1000, Mailbox: "INBOX"}},
		Outbound: &out2, Account: e.alice.ID, MessageID: "m2@example.org", LocalAddresses: []string{"bob@example.org"},
	})
	require.ErrorIs(t, err, storage.ErrNotFound)
	assert.Equal(t, before, queueIDs(t, e, qs))
	assert.Empty(t, statusStates(t, e, qs, e.alice.ID, "m2@example.org"))
	assert.Equal(t, bobIn, e.mailbox(t, e.bob.ID, "INBOX"), "no UID or modseq used")
	assert.Empty(t, drain(t, sub))

	// So does a bad outbound part, after valid local copies.
	bad := e.outbound("m3@example.org", "not an address")
	_, _, err = qs.Submit(e.ctx, storage.Submission{
		Raw: raw, Local: []storage.Recipient{{Account: e.bob.ID, Mailbox: "INBOX"}},
		Outbound: &bad, Account: e.alice.ID, MessageID: "m3@example.org", LocalAddresses: []string{"bob@example.org"},
	})
	require.ErrorIs(t, err, storage.ErrInvalid)
	// And an unknown status account, with a valid outbound part.
	out4 := e.outbound("m4@example.org", "carol@remote.example")
	_, _, err = qs.Submit(e.ctx, storage.Submission{
		Raw: raw, Local: []storage.Recipient{{Account: e.bob.ID, Mailbox: "INBOX"}},
		Outbound: &out4, Account: e.bob.ID + 1000, MessageID: "m4@example.org", LocalAddresses: []string{"bob@example.org"},
	})
	require.ErrorIs(t, err, storage.ErrNotFound)
	assert.Equal(t, before, queueIDs(t, e, qs))
	assert.Equal(t, bobIn, e.mailbox(t, e.bob.ID, "INBOX"))
	assert.Empty(t, drain(t, sub))
}

func testSubmitLocal(t *testing.T, e *env) {
	qs := e.queue(t)
	raw := textMessage("local only", "to bob")
	ds, id, err := qs.Submit(e.ctx, storage.Submission{
		Raw: raw, Local: []storage.Recipient{{Account: e.bob.ID, Mailbox: "INBOX"}},
		Account: e.alice.ID, MessageID: "local@example.org", LocalAddresses: []string{"bob@example.org"},
	})
	require.NoError(t, err)
	assert.Zero(t, id)
	require.Len(t, ds, 1)
	assert.Equal(t, e.mailbox(t, e.bob.ID, "INBOX").ID, ds[0].Mailbox)
	assert.Empty(t, queueIDs(t, e, qs))
	assert.Equal(t, map[string]storage.DeliveryState{"bob@example.org": storage.StatusDelivered},
		statusStates(t, e, qs, e.alice.ID, "local@example.org"))

	// Without a message id, no status is kept.
	_, _, err = qs.Submit(e.ctx, storage.Submission{Raw: raw, Local: []storage.Recipient{{Account: e.bob.ID, Mailbox: "INBOX"}},
		Account: e.alice.ID, LocalAddresses: []string{"bob@example.org"}})
	require.NoError(t, err)
	assert.Empty(t, statusStates(t, e, qs, e.alice.ID, ""))

	// Outbound only (the documents API).
	out := e.outbound("api@example.org", "carol@remote.example")
	ds, id, err = qs.Submit(e.ctx, storage.Submission{Outbound: &out, Account: e.alice.ID, MessageID: "api@example.org"})
	require.NoError(t, err)
	assert.Empty(t, ds)
	assert.NotZero(t, id)
	assert.Equal(t, map[string]storage.DeliveryState{"carol@remote.example": storage.StatusQueued},
		statusStates(t, e, qs, e.alice.ID, "api@example.org"))

	_, _, err = qs.Submit(e.ctx, storage.Submission{Raw: raw, Account: e.alice.ID, MessageID: "none@example.org"})
	require.ErrorIs(t, err, storage.ErrInvalid, "no recipient at all")
}

func testEnqueueValidation(t *testing.T, e *env) {
	qs := e.queue(t)
	for name, mod := range map[string]func(o *storage.Outbound){
		"no recipients":  func(o *storage.Outbound) { o.Recipients = nil },
		"empty raw":      func(o *storage.Outbound) { o.Raw = nil },
		"bad address":    func(o *storage.Outbound) { o.Recipients[0].Address = "carol" },
		"bad notify":     func(o *storage.Outbound) { o.Recipients[0].Notify = []string{"SOMETIMES"} },
		"never and more": func(o *storage.Outbound) { o.Recipients[0].Notify = []string{"NEVER", "DELAY"} },
		"bad ret":        func(o *storage.Outbound) { o.Ret = "BODY" },
		"newline sender": func(o *storage.Outbound) { o.Sender = "a@example.org\r\nRCPT TO:<x@y>" },
	} {
		o := e.outbound("v@example.org", "carol@remote.example")
		mod(&o)
		_, err := qs.Enqueue(e.ctx, o)
		require.ErrorIs(t, err, storage.ErrInvalid, name)
	}
	o := e.outbound("v@example.org", "carol@remote.example")
	o.Account = e.bob.ID + 1000
	_, err := qs.Enqueue(e.ctx, o)
	require.ErrorIs(t, err, storage.ErrNotFound, "unknown account")
	assert.Empty(t, queueIDs(t, e, qs))

	// Mail Relais sends itself (a DSN): account 0, null sender.
	o = e.outbound("dsn@example.org", "carol@remote.example")
	o.Account, o.Sender, o.Ret, o.EnvID, o.Expires = 0, "", "", "", time.Time{}
	id, err := qs.Enqueue(e.ctx, o)
	require.NoError(t, err)
	q, err := qs.QueueEntry(e.ctx, id)
	require.NoError(t, err)
	assert.Zero(t, q.Account)
	assert.Empty(t, q.Sender)
	assert.True(t, q.Expires.IsZero())
}

func testQueueLease(t *testing.T, e *env) {
	qs := e.queue(t)
	start := time.Now()
	a := e.enqueue(t, qs, "a@example.org", "carol@remote.example")
	b := e.enqueue(t, qs, "b@example.org", "carol@remote.example")
	c := e.enqueue(t, qs, "c@example.org", "dave@remote.example", "erin@other.example")
	now := time.Now().Add(time.Second)
	const lease = 5 * time.Minute

	got, err := qs.LeaseDue(e.ctx, start.Add(-time.Hour), 10, lease)
	require.NoError(t, err)
	assert.Empty(t, got, "nothing due an hour ago")

	got, err = qs.LeaseDue(e.ctx, now, 2, lease)
	require.NoError(t, err)
	require.Equal(t, []storage.QueueID{a, b}, leasedIDs(got), "limit, oldest first")
	for _, q := range got {
		assert.True(t, q.LeaseUntil.Equal(now.Add(lease)), "leased until now+leaseFor: %v", q.LeaseUntil)
		require.Len(t, q.Recipients, 1)
	}
	got, err = qs.LeaseDue(e.ctx, now, 10, lease)
	require.NoError(t, err)
	require.Equal(t, []storage.QueueID{c}, leasedIDs(got), "leased entries are excluded")
	assert.Len(t, got[0].Recipients, 2)
	got, err = qs.LeaseDue(e.ctx, now.Add(lease-time.Second), 10, lease)
	require.NoError(t, err)
	assert.Empty(t, got, "all leased")
	q, err := qs.QueueEntry(e.ctx, a)
	require.NoError(t, err)
	assert.True(t, q.LeaseUntil.Equal(now.Add(lease)))

	// A worker killed while holding the leases loses nothing.
	later := now.Add(lease + time.Second)
	got, err = qs.LeaseDue(e.ctx, later, 10, lease)
	require.NoError(t, err)
	assert.Equal(t, []storage.QueueID{a, b, c}, leasedIDs(got), "expired leases are taken again")

	// Deferred entries come back oldest next attempt first.
	base := later.Add(lease + time.Second)
	require.NoError(t, qs.RecordAttempt(e.ctx, a, []storage.AttemptResult{{Address: "carol@remote.example", State: storage.QueuePending, NextAttempt: base.Add(30 * time.Minute), Error: "451 4.3.0 try later"}}))
	require.NoError(t, qs.RecordAttempt(e.ctx, b, []storage.AttemptResult{{Address: "carol@remote.example", State: storage.QueuePending, NextAttempt: base.Add(10 * time.Minute)}}))
	require.NoError(t, qs.RecordAttempt(e.ctx, c, []storage.AttemptResult{
		{Address: "dave@remote.example", State: storage.QueuePending, NextAttempt: base.Add(20 * time.Minute)},
		{Address: "erin@other.example", State: storage.QueuePending, NextAttempt: base.Add(40 * time.Minute)},
	}))
	got, err = qs.LeaseDue(e.ctx, base, 10, lease)
	require.NoError(t, err)
	assert.Empty(t, got, "not yet due")
	got, err = qs.LeaseDue(e.ctx, base.Add(20*time.Minute), 10, 2*time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []storage.QueueID{b, c}, leasedIDs(got), "due ones only, by next attempt")
	got, err = qs.LeaseDue(e.ctx, base.Add(time.Hour), 10, lease)
	require.NoError(t, err)
	assert.Equal(t, []storage.QueueID{a}, leasedIDs(got), "the others are still leased")

	_, err = qs.LeaseDue(e.ctx, now, 0, lease)
	require.ErrorIs(t, err, storage.ErrInvalid)
	_, err = qs.LeaseDue(e.ctx, now, 1, 0)
	require.ErrorIs(t, err, storage.ErrInvalid)
}

func testQueueLeaseConcurrent(t *testing.T, e *env) {
	qs := e.queue(t)
	const entries, workers = 60, 8
	want := map[storage.QueueID]bool{}
	for i := 0; i < entries; i++ {
		want[e.enqueue(t, qs, fmt.Sprintf("c%d@example.org", i), "carol@remote.example")] = true
	}
	now := time.Now().Add(time.Second)
	var (
		mu   sync.Mutex
		seen = map[storage.QueueID]int{}
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range entries { // bounded: a store that never excludes fails, not hangs
				got, err := qs.LeaseDue(e.ctx, now, 3, time.Hour)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
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
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, entries)
	for id, n := range seen {
		assert.True(t, want[id], "entry %d", id)
		assert.Equal(t, 1, n, "entry %d leased %d times", id, n)
	}
}

func testRecordAttempt(t *testing.T, e *env) {
	qs := e.queue(t)
	id := e.enqueue(t, qs, "r@example.org", "carol@remote.example", "dave@remote.example", "erin@other.example")
	now := time.Now().Add(time.Second)
	_, err := qs.LeaseDue(e.ctx, now, 10, time.Hour)
	require.NoError(t, err)

	at := now.Add(time.Minute).Truncate(time.Millisecond)
	next := at.Add(15 * time.Minute)
	require.NoError(t, qs.RecordAttempt(e.ctx, id, []storage.AttemptResult{
		{Address: "carol@remote.example", State: storage.QueueDelivered, Error: "250 2.0.0 ok", At: at},
		{Address: "dave@REMOTE.example", State: storage.QueuePending, NextAttempt: next, Error: "451 4.4.1 no answer", At: at, DelayNotified: true},
		{Address: "erin@other.example", State: storage.QueuePending, NextAttempt: next, Error: "421 4.7.0 busy", At: at},
	}))
	q, err := qs.QueueEntry(e.ctx, id)
	require.NoError(t, err)
	assert.True(t, q.LeaseUntil.IsZero(), "lease released")
	require.Len(t, q.Recipients, 3)
	carol, dave, erin := q.Recipients[0], q.Recipients[1], q.Recipients[2]
	assert.Equal(t, storage.QueueDelivered, carol.State)
	assert.Equal(t, 1, carol.Attempts)
	assert.True(t, carol.LastAttempt.Equal(at))
	assert.Equal(t, "250 2.0.0 ok", carol.LastError)
	assert.Equal(t, storage.QueuePending, dave.State)
	assert.True(t, dave.NextAttempt.Equal(next))
	assert.Equal(t, "451 4.4.1 no answer", dave.LastError)
	assert.True(t, dave.DelayNotified)
	assert.False(t, erin.DelayNotified)

	got, err := qs.LeaseDue(e.ctx, next.Add(-time.Second), 10, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, got, "deferred until next")

	// Bad results record nothing.
	require.ErrorIs(t, qs.RecordAttempt(e.ctx, id, []storage.AttemptResult{
		{Address: "erin@other.example", State: storage.QueueFailed, Error: "550 no"},
		{Address: "zoe@remote.example", State: storage.QueueFailed},
	}), storage.ErrInvalid)
	require.ErrorIs(t, qs.RecordAttempt(e.ctx, id, []storage.AttemptResult{{Address: "erin@other.example", State: storage.QueuePending}}), storage.ErrInvalid)
	require.ErrorIs(t, qs.RecordAttempt(e.ctx, id, []storage.AttemptResult{{Address: "erin@other.example", State: "lost"}}), storage.ErrInvalid)
	q2, err := qs.QueueEntry(e.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, q, q2)

	// Second round: dave fails for good, the delay flag stays; a stale
	// report on carol changes nothing.
	at2 := next.Add(time.Minute).Truncate(time.Millisecond)
	require.NoError(t, qs.RecordAttempt(e.ctx, id, []storage.AttemptResult{
		{Address: "dave@remote.example", State: storage.QueueFailed, Error: "550 5.1.1 unknown user", At: at2},
		{Address: "carol@remote.example", State: storage.QueueFailed, Error: "stale", At: at2},
		{Address: "erin@other.example", State: storage.QueuePending, NextAttempt: at2.Add(time.Hour), Error: "421 again", At: at2},
	}))
	q, err = qs.QueueEntry(e.ctx, id)
	require.NoError(t, err)
	carol, dave, erin = q.Recipients[0], q.Recipients[1], q.Recipients[2]
	assert.Equal(t, storage.QueueDelivered, carol.State)
	assert.Equal(t, "250 2.0.0 ok", carol.LastError)
	assert.Equal(t, 1, carol.Attempts)
	assert.Equal(t, storage.QueueFailed, dave.State)
	assert.Equal(t, 2, dave.Attempts)
	assert.True(t, dave.DelayNotified, "never cleared")
	assert.Equal(t, "550 5.1.1 unknown user", dave.LastError)
	assert.Equal(t, 2, erin.Attempts)

	// The last pending recipient delivered: the entry goes.
	require.NoError(t, qs.RecordAttempt(e.ctx, id, []storage.AttemptResult{{Address: "erin@other.example", State: storage.QueueDelivered}}))
	_, err = qs.QueueEntry(e.ctx, id)
	require.ErrorIs(t, err, storage.ErrNotFound)
	_, err = qs.QueueMessage(e.ctx, id)
	require.ErrorIs(t, err, storage.ErrNotFound)
	require.ErrorIs(t, qs.RecordAttempt(e.ctx, id, []storage.AttemptResult{{Address: "erin@other.example", State: storage.QueueDelivered}}), storage.ErrNotFound)
	assert.Empty(t, queueIDs(t, e, qs))

	// Long remote replies are bounded, and still valid text.
	id = e.enqueue(t, qs, "long@example.org", "carol@remote.example")
	long := strings.Repeat("451 4.3.0 é trop long ", 5000)
	require.NoError(t, qs.RecordAttempt(e.ctx, id, []storage.AttemptResult{{Address: "carol@remote.example", State: storage.QueuePending, NextAttempt: now, Error: long}}))
	q, err = qs.QueueEntry(e.ctx, id)
	require.NoError(t, err)
	assert.NotEmpty(t, q.Recipients[0].LastError)
	assert.Less(t, len(q.Recipients[0].LastError), 10<<10)
	assert.Equal(t, long[:len(q.Recipients[0].LastError)], q.Recipients[0].LastError)
}

func testRetryDropQueue(t *testing.T, e *env) {
	qs := e.queue(t)
	a := e.enqueue(t, qs, "a@example.org", "carol@remote.example", "dave@remote.example")
	b := e.enqueue(t, qs, "b@example.org", "carol@remote.example")
	now := time.Now().Add(time.Second)
	_, err := qs.LeaseDue(e.ctx, now, 10, time.Hour)
	require.NoError(t, err)
	require.NoError(t, qs.RecordAttempt(e.ctx, a, []storage.AttemptResult{
		{Address: "carol@remote.example", State: storage.QueueDelivered},
		{Address: "dave@remote.example", State: storage.QueuePending, NextAttempt: now.Add(24 * time.Hour)},
	}))

	// Retry: due at once, lease dropped; final recipients untouched.
	require.NoError(t, qs.RetryQueue(e.ctx, a, now))
	require.NoError(t, qs.RetryQueue(e.ctx, b, now))
	got, err := qs.LeaseDue(e.ctx, now, 10, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []storage.QueueID{a, b}, leasedIDs(got))
	q, err := qs.QueueEntry(e.ctx, a)
	require.NoError(t, err)
	assert.Equal(t, storage.QueueDelivered, q.Recipients[0].State)
	assert.True(t, q.Recipients[1].NextAttempt.Equal(now))
	require.ErrorIs(t, qs.RetryQueue(e.ctx, 999999, now), storage.ErrNotFound)

	// Drop, leased or not.
	require.NoError(t, qs.DropQueue(e.ctx, a))
	_, err = qs.QueueEntry(e.ctx, a)
	require.ErrorIs(t, err, storage.ErrNotFound)
	_, err = qs.QueueMessage(e.ctx, a)
	require.ErrorIs(t, err, storage.ErrNotFound)
	require.ErrorIs(t, qs.DropQueue(e.ctx, a), storage.ErrNotFound)
	require.ErrorIs(t, qs.RetryQueue(e.ctx, a, now), storage.ErrNotFound)
	assert.Equal(t, []storage.QueueID{b}, queueIDs(t, e, qs))
	raw, err := qs.QueueMessage(e.ctx, b)
	require.NoError(t, err)
	assert.Equal(t, e.outbound("b@example.org").Raw, raw)
}

func testQueueEntries(t *testing.T, e *env) {
	qs := e.queue(t)
	// More than one read batch, enqueued concurrently (group commit).
	const workers, each = 6, 50
	var (
		mu   sync.Mutex
		want []storage.QueueID
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				id, err := qs.Enqueue(e.ctx, e.outbound(fmt.Sprintf("l%d-%d@example.org", w, i), "carol@remote.example"))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want = append(want, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	require.NoError(t, qs.DropQueue(e.ctx, want[5]))
	want = append(want[:5], want[6:]...)
	got := []storage.QueueID{}
	require.NoError(t, qs.QueueEntries(e.ctx, func(q storage.QueueEntry) error {
		require.Len(t, q.Recipients, 1)
		got = append(got, q.ID)
		return nil
	}))
	assert.True(t, sort.SliceIsSorted(got, func(i, j int) bool { return got[i] < got[j] }))
	assert.Equal(t, want, got)

	stop := errors.New("enough")
	n := 0
	err := qs.QueueEntries(e.ctx, func(storage.QueueEntry) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	assert.Equal(t, 3, n)
}

func testQueuePersistence(t *testing.T, e *env) {
	qs := e.queue(t)
	out := e.outbound("p@example.org", "carol@remote.example", "dave@remote.example")
	out.Raw = bigMessage(3 << 20)
	id, err := qs.Enqueue(e.ctx, out)
	require.NoError(t, err)
	now := time.Now().Add(time.Second).Truncate(time.Millisecond)
	_, err = qs.LeaseDue(e.ctx, now, 1, time.Hour)
	require.NoError(t, err)
	require.NoError(t, qs.RecordAttempt(e.ctx, id, []storage.AttemptResult{
		{Address: "carol@remote.example", State: storage.QueueDelivered, At: now},
		{Address: "dave@remote.example", State: storage.QueuePending, NextAttempt: now.Add(time.Hour), Error: "451 later", At: now, DelayNotified: true},
	}))
	_, err = qs.LeaseDue(e.ctx, now.Add(2*time.Hour), 1, time.Hour)
	require.NoError(t, err)
	require.NoError(t, qs.SetDeliveryStatus(e.ctx, e.alice.ID, storage.DeliveryStatus{MessageID: "p@example.org", Recipient: "carol@remote.example", State: storage.StatusRelayed, Detail: "250 ok"}))
	before, err := qs.QueueEntry(e.ctx, id)
	require.NoError(t, err)
	statuses, err := qs.DeliveryStatuses(e.ctx, e.alice.ID, "p@example.org")
	require.NoError(t, err)

	e.reopen(t)
	qs = e.queue(t)
	after, err := qs.QueueEntry(e.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, before, after)
	assert.True(t, after.LeaseUntil.Equal(now.Add(3*time.Hour)), "the lease survives a restart")
	raw, err := qs.QueueMessage(e.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, out.Raw, raw, "raw round-trips byte for byte")
	sts, err := qs.DeliveryStatuses(e.ctx, e.alice.ID, "p@example.org")
	require.NoError(t, err)
	assert.Equal(t, statuses, sts)
	id2 := e.enqueue(t, qs, "p2@example.org", "carol@remote.example")
	assert.Greater(t, id2, id, "ids are not reused")
}

func testQueueLargeRaw(t *testing.T, e *env) {
	qs := e.queue(t)
	wire := bigMessage(4 << 20)
	local := bigMessage(3 << 20)
	out := e.outbound("big@example.org", "carol@remote.example")
	out.Raw = wire
	ds, id, err := qs.Submit(e.ctx, storage.Submission{Raw: local, Local: []storage.Recipient{{Account: e.alice.ID, Mailbox: "Sent"}}, Outbound: &out})
	require.NoError(t, err)
	got, err := qs.QueueMessage(e.ctx, id)
	require.NoError(t, err)
	assert.True(t, string(wire) == string(got), "queued raw differs (len %d, want %d)", len(got), len(wire))
	got, err = e.s.RawMessage(e.ctx, e.alice.ID, ds[0].Mailbox, ds[0].UID)
	require.NoError(t, err)
	assert.True(t, string(local) == string(got), "local copy differs")
	q, err := qs.QueueEntry(e.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, int64(len(wire)), q.Size)
}

func testDeliveryStatusOrder(t *testing.T, e *env) {
	qs := e.queue(t)
	const (
		queued    = storage.StatusQueued
		delayed   = storage.StatusDelayed
		relayed   = storage.StatusRelayed
		delivered = storage.StatusDelivered
		read      = storage.StatusRead
		failed    = storage.StatusFailed
	)
	for i, tc := range []struct {
		steps []storage.DeliveryState
		want  storage.DeliveryState
	}{
		{[]storage.DeliveryState{queued, relayed, delivered, read}, read},
		{[]storage.DeliveryState{queued, delayed, relayed}, relayed},
		{[]storage.DeliveryState{relayed, queued}, relayed},
		{[]storage.DeliveryState{relayed, delayed}, relayed},
		{[]storage.DeliveryState{delivered, relayed}, delivered},
		{[]storage.DeliveryState{queued, failed}, failed},
		{[]storage.DeliveryState{delayed, failed}, failed},
		{[]storage.DeliveryState{relayed, failed}, failed},
		{[]storage.DeliveryState{failed, queued}, failed},
		{[]storage.DeliveryState{failed, delayed}, failed},
		{[]storage.DeliveryState{failed, relayed}, failed},
		{[]storage.DeliveryState{failed, delivered}, delivered},
		{[]storage.DeliveryState{failed, read}, read},
		{[]storage.DeliveryState{delivered, failed}, delivered},
		{[]storage.DeliveryState{read, failed}, read},
		{[]storage.DeliveryState{read, delivered, relayed, queued}, read},
		{[]storage.DeliveryState{read, read}, read},
	} {
		msgID := fmt.Sprintf("o%d@example.org", i)
		for _, st := range tc.steps {
			require.NoError(t, qs.SetDeliveryStatus(e.ctx, e.alice.ID, storage.DeliveryStatus{MessageID: msgID, Recipient: "carol@remote.example", State: st, Detail: string(st)}))
		}
		sts, err := qs.DeliveryStatuses(e.ctx, e.alice.ID, msgID)
		require.NoError(t, err)
		require.Len(t, sts, 1)
		assert.Equal(t, tc.want, sts[0].State, "%v", tc.steps)
		assert.Equal(t, string(tc.want), sts[0].Detail, "%v: the detail is the winning update's", tc.steps)
	}

	// The same state refreshes the detail and time; a later update keeps
	// its own time.
	t1 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	set := func(st storage.DeliveryState, detail string, at time.Time) {
		t.Helper()
		require.NoError(t, qs.SetDeliveryStatus(e.ctx, e.alice.ID, storage.DeliveryStatus{MessageID: "d@example.org", Recipient: "Carol@Remote.Example", State: st, Detail: detail, Updated: at}))
	}
	set(delayed, "451 first", t1)
	set(delayed, "451 second", t1.Add(time.Hour))
	set(queued, "ignored", t1.Add(2*time.Hour))
	sts, err := qs.DeliveryStatuses(e.ctx, e.alice.ID, "d@example.org")
	require.NoError(t, err)
	require.Equal(t, []storage.DeliveryStatus{{MessageID: "d@example.org", Recipient: "Carol@remote.example", State: delayed, Detail: "451 second", Updated: t1.Add(time.Hour)}}, sts)

	// Unknown message: empty, no error. Bad input: ErrInvalid.
	sts, err = qs.DeliveryStatuses(e.ctx, e.alice.ID, "unknown@example.org")
	require.NoError(t, err)
	assert.Empty(t, sts)
	require.ErrorIs(t, qs.SetDeliveryStatus(e.ctx, e.alice.ID, storage.DeliveryStatus{MessageID: "x@example.org", Recipient: "carol@remote.example", State: "lost"}), storage.ErrInvalid)
	require.ErrorIs(t, qs.SetDeliveryStatus(e.ctx, e.alice.ID, storage.DeliveryStatus{Recipient: "carol@remote.example", State: queued}), storage.ErrInvalid)
	require.ErrorIs(t, qs.SetDeliveryStatus(e.ctx, e.alice.ID, storage.DeliveryStatus{MessageID: "x@example.org", Recipient: "carol", State: queued}), storage.ErrInvalid)
	require.ErrorIs(t, qs.SetDeliveryStatus(e.ctx, e.bob.ID+1000, storage.DeliveryStatus{MessageID: "x@example.org", Recipient: "carol@remote.example", State: queued}), storage.ErrNotFound)
}

func testDeliveryStatusIsolation(t *testing.T, e *env) {
	qs := e.queue(t)
	out := e.outbound("secret@example.org", "carol@remote.example")
	_, _, err := qs.Submit(e.ctx, storage.Submission{Outbound: &out, Account: e.alice.ID, MessageID: "secret@example.org"})
	require.NoError(t, err)
	sts, err := qs.DeliveryStatuses(e.ctx, e.bob.ID, "secret@example.org")
	require.NoError(t, err)
	assert.Empty(t, sts, "bob sees nothing of alice's message")

	// Bob's update with the same message id is his own row.
	require.NoError(t, qs.SetDeliveryStatus(e.ctx, e.bob.ID, storage.DeliveryStatus{MessageID: "secret@example.org", Recipient: "carol@remote.example", State: storage.StatusRead}))
	assert.Equal(t, map[string]storage.DeliveryState{"carol@remote.example": storage.StatusQueued}, statusStates(t, e, qs, e.alice.ID, "secret@example.org"))
	assert.Equal(t, map[string]storage.DeliveryState{"carol@remote.example": storage.StatusRead}, statusStates(t, e, qs, e.bob.ID, "secret@example.org"))
}
