package main

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/smtp/report"
	"github.com/relais-mssante/relais/storage"
)

// queueFixture is a data directory with an account and two queued messages.
func queueFixture(t *testing.T) (dir string, acct storage.Account, ids []storage.QueueID) {
	t.Helper()
	dir = t.TempDir()
	st, err := openStore(storeLocation{Data: dir}, discardLogger(), 0)
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	_, err = st.AddDomain(ctx, "demo.test")
	require.NoError(t, err)
	acct, err = st.CreateAccount(ctx, "dr@demo.test", "Dr Test", "x")
	require.NoError(t, err)
	for i, rcpts := range [][]string{{"a@remote.test", "b@remote.test"}, {"c@other.test"}} {
		out := storage.Outbound{
			Account:   acct.ID,
			Sender:    "dr@demo.test",
			MessageID: "m" + strconv.Itoa(i) + "@demo.test",
			Raw:       []byte("From: dr@demo.test\r\nSubject: x\r\nMessage-ID: <m" + strconv.Itoa(i) + "@demo.test>\r\n\r\nbody\r\n"),
			Expires:   time.Now().Add(120 * time.Hour),
		}
		for _, r := range rcpts {
			out.Recipients = append(out.Recipients, storage.OutboundRecipient{Address: r})
		}
		id, err := st.Enqueue(ctx, out)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	// The first entry had a failed attempt.
	leased, err := st.LeaseDue(ctx, time.Now().Add(time.Second), 10, time.Minute)
	require.NoError(t, err)
	require.NotEmpty(t, leased)
	require.NoError(t, st.RecordAttempt(ctx, ids[0], []storage.AttemptResult{
		{Address: "a@remote.test", State: storage.QueuePending, NextAttempt: time.Now().Add(time.Hour), Error: "451 4.3.0 try later"},
		{Address: "b@remote.test", State: storage.QueueDelivered},
	}))
	return dir, acct, ids
}

func runQueue(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &out}
	path := "queue " + args[0]
	for _, c := range queueCommands() {
		if c.path == path {
			err := c.run(e, args[1:])
			return out.String(), err
		}
	}
	t.Fatalf("no command %q", path)
	return "", nil
}

func TestQueueList(t *testing.T) {
	dir, _, ids := queueFixture(t)
	out, err := runQueue(t, "list", "--data", dir)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	assert.Regexp(t, `^ID\s+AGE\s+SENDER\s+RECIPIENT\s+STATE\s+ATTEMPTS\s+NEXT ATTEMPT\s+LAST ERROR$`, lines[0])
	assert.Regexp(t, `^`+strconv.FormatInt(int64(ids[0]), 10)+`\s+\d+s\s+dr@demo.test\s+a@remote.test\s+pending\s+1\s+in 59m\s+451 4.3.0 try later$`, lines[1])
	assert.Regexp(t, `^\s+b@remote.test\s+delivered\s+1\s+-\s*$`, lines[2])
	assert.Regexp(t, `^`+strconv.FormatInt(int64(ids[1]), 10)+`\s+\d+s\s+dr@demo.test\s+c@other.test\s+pending\s+0\s+(now|in progress)\s*$`, lines[3])
	// Aligned columns: RECIPIENT starts at the same offset on every line.
	col := strings.Index(lines[0], "RECIPIENT")
	assert.Equal(t, col, strings.Index(lines[1], "a@remote.test"))
	assert.Equal(t, col, strings.Index(lines[2], "b@remote.test"))

	empty := t.TempDir()
	out, err = runQueue(t, "list", "--data", empty)
	require.NoError(t, err)
	assert.Equal(t, "the queue is empty\n", out)
}

func TestQueueRetry(t *testing.T) {
	dir, _, ids := queueFixture(t)
	out, err := runQueue(t, "retry", strconv.FormatInt(int64(ids[0]), 10), "--data", dir)
	require.NoError(t, err)
	assert.Equal(t, "1 entry due now\n", out)
	out, err = runQueue(t, "list", "--data", dir)
	require.NoError(t, err)
	assert.Regexp(t, `a@remote.test\s+pending\s+1\s+now`, out)

	out, err = runQueue(t, "retry", "--all", "--data", dir)
	require.NoError(t, err)
	assert.Equal(t, "2 entries due now\n", out)

	_, err = runQueue(t, "retry", "999", "--data", dir)
	assert.ErrorContains(t, err, "no queue entry 999")
	_, err = runQueue(t, "retry", "abc", "--data", dir)
	assert.ErrorContains(t, err, "not a queue id")
	_, err = runQueue(t, "retry", "--data", dir)
	assert.True(t, errors.Is(err, errUsage))
}

func TestQueueDrop(t *testing.T) {
	dir, acct, ids := queueFixture(t)
	out, err := runQueue(t, "drop", strconv.FormatInt(int64(ids[0]), 10), "--data", dir, "--reason", "operator closed")
	require.NoError(t, err)
	assert.Contains(t, out, "dropped")

	st, err := openStore(storeLocation{Data: dir}, discardLogger(), 0)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = st.QueueEntry(ctx, ids[0])
	assert.ErrorIs(t, err, storage.ErrNotFound)
	// The sender has a DSN for the pending recipient only, and its status.
	mb, err := st.MailboxByName(ctx, acct.ID, "INBOX")
	require.NoError(t, err)
	msgs, err := st.Messages(ctx, acct.ID, mb.ID)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	raw, err := st.RawMessage(ctx, acct.ID, mb.ID, msgs[0].UID)
	require.NoError(t, err)
	rep, err := report.Parse(raw)
	require.NoError(t, err)
	require.Len(t, rep.Recipients, 1)
	assert.Equal(t, "a@remote.test", rep.Recipients[0].FinalRecipient)
	assert.Equal(t, report.ActionFailed, rep.Recipients[0].Action)
	assert.Contains(t, rep.Recipients[0].Diagnostic, "operator closed")
	sts, err := st.DeliveryStatuses(ctx, acct.ID, "m0@demo.test")
	require.NoError(t, err)
	require.Len(t, sts, 1)
	assert.Equal(t, storage.StatusFailed, sts[0].State)
	st.Close()

	_, err = runQueue(t, "drop", strconv.FormatInt(int64(ids[1]), 10), "--no-dsn", "--data", dir)
	require.NoError(t, err)
	st, err = openStore(storeLocation{Data: dir}, discardLogger(), 0)
	require.NoError(t, err)
	defer st.Close()
	msgs, err = st.Messages(ctx, acct.ID, mb.ID)
	require.NoError(t, err)
	assert.Len(t, msgs, 1, "no DSN with --no-dsn")

	_, err = runQueue(t, "drop", strconv.FormatInt(int64(ids[1]), 10), "--data", dir)
	assert.ErrorContains(t, err, "no queue entry")
}
