package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

func TestQueueTooLarge(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "relais.db"), Options{Logger: quietLogger(), MaxMessageSize: 100})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	_, err = s.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	a, err := s.CreateAccount(ctx, "alice@example.org", "Alice", "h")
	require.NoError(t, err)
	out := storage.Outbound{Account: a.ID, Sender: a.Address, Raw: make([]byte, 101),
		Recipients: []storage.OutboundRecipient{{Address: "carol@remote.example"}}}
	_, err = s.Enqueue(ctx, out)
	require.ErrorIs(t, err, storage.ErrTooLarge)
	_, _, err = s.Submit(ctx, storage.Submission{Raw: []byte("Subject: x\r\n\r\ny\r\n"),
		Local: []storage.Recipient{{Account: a.ID, Mailbox: "Sent"}}, Outbound: &out, Account: a.ID, MessageID: "m@example.org"})
	require.ErrorIs(t, err, storage.ErrTooLarge)
	_, _, err = s.Submit(ctx, storage.Submission{Raw: make([]byte, 101), Local: []storage.Recipient{{Account: a.ID, Mailbox: "Sent"}}})
	require.ErrorIs(t, err, storage.ErrTooLarge)
	out.Raw = make([]byte, 100)
	_, err = s.Enqueue(ctx, out)
	require.NoError(t, err, "at the limit")
}

// An entry's raw bytes are stored once, whatever the number of recipients,
// and go with the entry.
func TestQueueRawOncePerEntry(t *testing.T) {
	s, a := openStore(t)
	ctx := context.Background()
	count := func(table string) int {
		var n int
		require.NoError(t, s.rdb.QueryRow(`SELECT count(*) FROM `+table).Scan(&n))
		return n
	}
	var rcpts []storage.OutboundRecipient
	for _, r := range []string{"a", "b", "c", "d"} {
		rcpts = append(rcpts, storage.OutboundRecipient{Address: r + "@remote.example"})
	}
	id, err := s.Enqueue(ctx, storage.Outbound{Account: a.ID, Sender: a.Address, Raw: []byte(strings.Repeat("x", 10000)), Recipients: rcpts})
	require.NoError(t, err)
	assert.Equal(t, 1, count("queue_messages"))
	assert.Equal(t, 4, count("queue_recipients"))
	var stored int
	require.NoError(t, s.rdb.QueryRow(`SELECT sum(length(raw)) FROM queue_messages`).Scan(&stored))
	assert.Equal(t, 10000, stored)

	var results []storage.AttemptResult
	for _, r := range rcpts {
		results = append(results, storage.AttemptResult{Address: r.Address, State: storage.QueueFailed, Error: "550 no"})
	}
	require.NoError(t, s.RecordAttempt(ctx, id, results))
	for _, table := range []string{"queue_entries", "queue_messages", "queue_recipients"} {
		assert.Zero(t, count(table), table)
	}
}

// LeaseDue reads the due-time index, not every recipient.
func TestQueueLeasePlan(t *testing.T) {
	s, _ := openStore(t)
	now := time.Now().UnixNano()
	rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN `+leaseDueQuery, now, now)
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	joined := strings.Join(plan, "\n")
	assert.Contains(t, joined, "queue_recipients_due", "plan: %v", plan)
	assert.NotContains(t, joined, "TEMP B-TREE", "walks the index in order, no sort: %v", plan)
}
