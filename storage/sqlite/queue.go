package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// The outbound queue (RFC 5321 4.5.4.1: a message is kept and retried until
// it is delivered or fails for good) and the delivery status (tables in
// migration 3). Leasing runs inside a write job: the committer runs jobs one
// after the other, so a lease taken by one LeaseDue is seen by the next.

var _ storage.QueueStore = (*Store)(nil)

// queueListBatch is how many entries QueueEntries reads per snapshot.
const queueListBatch = 256

// nsOrZero and timeOrZero are the shared time encoding (chat.go and
// documents.go use them too).
var (
	nsOrZero   = storage.NanosOrZero
	timeOrZero = storage.TimeOrZero
)

// enqueueTx inserts the entry, its raw bytes and its recipients, all due
// at now.
func enqueueTx(ctx context.Context, tx *sql.Tx, p *storage.PreparedOutbound, now time.Time) (storage.QueueID, error) {
	if p.Outbound.Account != 0 {
		if err := accountExists(ctx, tx, p.Outbound.Account); err != nil {
			return 0, err
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO queue_entries (account, sender, message_id, ret, envid, size, created, expires)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, p.Outbound.Account, p.Outbound.Sender, p.Outbound.MessageID, p.Outbound.Ret, p.Outbound.EnvID,
		len(p.Outbound.Raw), unixNano(now), nsOrZero(p.Outbound.Expires))
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO queue_messages (entry, raw) VALUES (?, ?)`, id, p.Outbound.Raw); err != nil {
		return 0, err
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO queue_recipients (entry, seq, address, domain, notify, orcpt, state, next_attempt)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	for i, r := range p.Recipients {
		if _, err := stmt.ExecContext(ctx, id, i, r.Address, p.Domains[i], p.Notify[i], r.ORCPT,
			string(storage.QueuePending), unixNano(now)); err != nil {
			return 0, err
		}
	}
	return storage.QueueID(id), nil
}

// Submit stores a submission in one transaction: the local copies (as
// Deliver), the queue entry and the delivery status rows.
func (s *Store) Submit(ctx context.Context, sub storage.Submission) ([]storage.Delivered, storage.QueueID, error) {
	ps, err := storage.PrepareSubmission(sub, s.maxSize, time.Now(), s.log)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: submit: %w", err)
	}
	var (
		out []storage.Delivered
		id  storage.QueueID
	)
	err = s.write(ctx, "submit", func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		var err error
		out, id, err = ps.Write(ctx, submitTx{tx, ch}, sub.Account)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return out, id, nil
}

// submitTx runs Submit's steps (storage.SubmitTx, for
// storage.PreparedSubmission.Write) in a write transaction.
type submitTx struct {
	tx *sql.Tx
	ch *changes
}

func (t submitTx) DeliverLocal(ctx context.Context, ld *storage.LocalDelivery) ([]storage.Delivered, error) {
	return deliverTx(ctx, t.tx, t.ch, ld)
}

func (t submitTx) Enqueue(ctx context.Context, p *storage.PreparedOutbound) (storage.QueueID, error) {
	return enqueueTx(ctx, t.tx, p, time.Now())
}

func (t submitTx) AccountExists(ctx context.Context, acct storage.AccountID) error {
	return accountExists(ctx, t.tx, acct)
}

func (t submitTx) SetStatus(ctx context.Context, acct storage.AccountID, st storage.DeliveryStatus) error {
	return setStatusTx(ctx, t.tx, acct, st)
}

// Enqueue queues a message alone, durably; its recipients are due at once.
func (s *Store) Enqueue(ctx context.Context, out storage.Outbound) (storage.QueueID, error) {
	po, err := storage.PrepareOutbound(out, s.maxSize)
	if err != nil {
		return 0, fmt.Errorf("sqlite: enqueue: %w", err)
	}
	var id storage.QueueID
	err = s.write(ctx, "enqueue", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		q, err := enqueueTx(ctx, tx, po, time.Now())
		id = q
		return err
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// leaseDueQuery lists the due pending recipients of entries without a live
// lease (lease_until 0, or past), earliest first, walking the
// queue_recipients_due index in order: LeaseDue stops reading once it has
// limit distinct entries, so a large backlog costs no sort. Arguments: now,
// now.
const leaseDueQuery = `SELECT r.entry FROM queue_recipients r JOIN queue_entries e ON e.id = r.entry
	WHERE r.state = 'pending' AND r.next_attempt <= ? AND e.lease_until <= ?
	ORDER BY r.next_attempt, r.entry`

// LeaseDue leases up to limit entries with a due pending recipient whose
// lease is absent or expired, oldest due time first. The SELECT and the
// UPDATE run in one write job, so no two callers get the same entry.
func (s *Store) LeaseDue(ctx context.Context, now time.Time, limit int, leaseFor time.Duration) ([]storage.QueueEntry, error) {
	if limit <= 0 || leaseFor <= 0 {
		return nil, fmt.Errorf("sqlite: lease due: limit %d, lease %v: %w", limit, leaseFor, storage.ErrInvalid)
	}
	nowNs := unixNano(now)
	until := unixNano(now.Add(leaseFor))
	// Idle workers poll: look on a reader first, and take the writer (and
	// the committer's turn) only when something may be due.
	var due bool
	err := s.read(ctx, "lease due", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, leaseDueQuery, nowNs, nowNs)
		if err != nil {
			return err
		}
		defer rows.Close()
		due = rows.Next()
		return rows.Err()
	})
	if err != nil || !due {
		return nil, err
	}
	var out []storage.QueueEntry
	err = s.write(ctx, "lease due", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		out = nil
		rows, err := tx.QueryContext(ctx, leaseDueQuery, nowNs, nowNs)
		if err != nil {
			return err
		}
		var ids []int64
		seen := map[int64]bool{}
		for len(ids) < limit && rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE queue_entries SET lease_until = ? WHERE id IN (SELECT value FROM json_each(?))`,
			until, jsonInts(ids)); err != nil {
			return err
		}
		entries, err := loadEntries(ctx, tx, ids)
		if err != nil {
			return err
		}
		out = storage.EntriesInOrder(entries, ids) // the due order
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const queueEntryColumns = `id, account, sender, message_id, ret, envid, size, created, expires, lease_until`

// loadEntries reads entries and their recipients, in id order; missing ids
// are left out.
func loadEntries(ctx context.Context, q querier, ids []int64) ([]storage.QueueEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+queueEntryColumns+` FROM queue_entries
		WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`, jsonInts(ids))
	if err != nil {
		return nil, err
	}
	var out []storage.QueueEntry
	for rows.Next() {
		var r storage.QueueEntryRow
		if err := rows.Scan(r.Dest()...); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, r.Entry())
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	rows, err = q.QueryContext(ctx, `SELECT entry, address, domain, notify, orcpt, state, attempts, next_attempt, last_attempt, last_error, delay_notified
		FROM queue_recipients WHERE entry IN (SELECT value FROM json_each(?)) ORDER BY entry, seq`, jsonInts(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var r storage.QueueRecipientRow
		if err := rows.Scan(r.Dest()...); err != nil {
			return nil, err
		}
		storage.AddQueueRecipient(out, storage.QueueID(r.Entry), r.Recipient())
	}
	return out, rows.Err()
}

// QueueMessage returns an entry's raw bytes.
func (s *Store) QueueMessage(ctx context.Context, id storage.QueueID) ([]byte, error) {
	var raw []byte
	err := s.read(ctx, "queue message", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT raw FROM queue_messages WHERE entry = ?`, id).Scan(&raw)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("queue entry %d: %w", id, storage.ErrNotFound)
		}
		return err
	})
	return raw, err
}

// RecordAttempt stores attempt outcomes, releases the lease, and removes the
// entry once no recipient is pending.
func (s *Store) RecordAttempt(ctx context.Context, id storage.QueueID, results []storage.AttemptResult) error {
	ups, err := storage.PrepareAttempts(results, time.Now())
	if err != nil {
		return fmt.Errorf("sqlite: record attempt: %w", err)
	}
	return s.write(ctx, "record attempt", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq, address, state FROM queue_recipients WHERE entry = ?`, id)
		if err != nil {
			return err
		}
		seqs := map[string]int64{}
		states := map[string]storage.QueueState{}
		for rows.Next() {
			var seq int64
			var addr, state string
			if err := rows.Scan(&seq, &addr, &state); err != nil {
				rows.Close()
				return err
			}
			seqs[addr], states[addr] = seq, storage.QueueState(state)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(states) == 0 {
			return fmt.Errorf("queue entry %d: %w", id, storage.ErrNotFound)
		}
		apply, done, err := storage.PlanAttempts(states, ups, true)
		if err != nil {
			return fmt.Errorf("queue entry %d: %w", id, err)
		}
		for _, u := range apply {
			if _, err := tx.ExecContext(ctx, `UPDATE queue_recipients SET state = ?, attempts = attempts + 1, next_attempt = ?,
				last_attempt = ?, last_error = ?, delay_notified = max(delay_notified, ?) WHERE entry = ? AND seq = ?`,
				string(u.State), storage.AttemptNextNanos(u), unixNano(u.At), u.Error, boolInt(u.DelayNotified), id, seqs[u.Address]); err != nil {
				return err
			}
		}
		if done {
			// Recipients and raw bytes go with it (ON DELETE CASCADE).
			_, err := tx.ExecContext(ctx, `DELETE FROM queue_entries WHERE id = ?`, id)
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE queue_entries SET lease_until = 0 WHERE id = ?`, id)
		return err
	})
}

// QueueEntry returns one entry.
func (s *Store) QueueEntry(ctx context.Context, id storage.QueueID) (storage.QueueEntry, error) {
	var e storage.QueueEntry
	err := s.read(ctx, "queue entry", func(tx *sql.Tx) error {
		es, err := loadEntries(ctx, tx, []int64{int64(id)})
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return fmt.Errorf("queue entry %d: %w", id, storage.ErrNotFound)
		}
		e = es[0]
		return nil
	})
	return e, err
}

// QueueEntries calls fn for every entry in id order. Entries are read in
// batches, each from one snapshot, and fn runs outside any transaction (it
// may call the store); an error from fn stops the walk and is returned.
func (s *Store) QueueEntries(ctx context.Context, fn func(storage.QueueEntry) error) error {
	return storage.WalkQueue(func(after storage.QueueID) ([]storage.QueueEntry, error) {
		var batch []storage.QueueEntry
		err := s.read(ctx, "queue entries", func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT id FROM queue_entries WHERE id > ? ORDER BY id LIMIT ?`, after, queueListBatch)
			if err != nil {
				return err
			}
			var ids []int64
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			rows.Close()
			if err := rows.Err(); err != nil || len(ids) == 0 {
				return err
			}
			batch, err = loadEntries(ctx, tx, ids)
			return err
		})
		return batch, err
	}, fn)
}

// RetryQueue makes every pending recipient of an entry due at now and drops
// its lease.
func (s *Store) RetryQueue(ctx context.Context, id storage.QueueID, now time.Time) error {
	return s.write(ctx, "retry queue", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		res, err := tx.ExecContext(ctx, `UPDATE queue_entries SET lease_until = 0 WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("queue entry %d: %w", id, storage.ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `UPDATE queue_recipients SET next_attempt = ? WHERE entry = ? AND state = 'pending'`, unixNano(now), id)
		return err
	})
}

// DropQueue removes an entry, its recipients and its raw bytes.
func (s *Store) DropQueue(ctx context.Context, id storage.QueueID) error {
	return s.write(ctx, "drop queue", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM queue_entries WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("queue entry %d: %w", id, storage.ErrNotFound)
		}
		return nil
	})
}

// setStatusTx writes one status row unless it would go backwards.
func setStatusTx(ctx context.Context, tx *sql.Tx, acct storage.AccountID, st storage.DeliveryStatus) error {
	var cur string
	err := tx.QueryRowContext(ctx, `SELECT state FROM delivery_status WHERE account = ? AND message_id = ? AND recipient = ?`,
		acct, st.MessageID, st.Recipient).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, `INSERT INTO delivery_status (account, message_id, recipient, state, detail, updated)
			VALUES (?, ?, ?, ?, ?, ?)`, acct, st.MessageID, st.Recipient, string(st.State), st.Detail, unixNano(st.Updated))
		return err
	case err != nil:
		return err
	}
	if !storage.DeliveryStateAdvances(storage.DeliveryState(cur), st.State) {
		return nil
	}
	_, err = tx.ExecContext(ctx, `UPDATE delivery_status SET state = ?, detail = ?, updated = ?
		WHERE account = ? AND message_id = ? AND recipient = ?`,
		string(st.State), st.Detail, unixNano(st.Updated), acct, st.MessageID, st.Recipient)
	return err
}

// SetDeliveryStatus records a recipient's status for a message acct sent.
func (s *Store) SetDeliveryStatus(ctx context.Context, acct storage.AccountID, st storage.DeliveryStatus) error {
	if err := storage.NormDeliveryStatus(&st, time.Now()); err != nil {
		return fmt.Errorf("sqlite: set delivery status: %w", err)
	}
	return s.write(ctx, "set delivery status", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		if err := accountExists(ctx, tx, acct); err != nil {
			return err
		}
		return setStatusTx(ctx, tx, acct, st)
	})
}

// DeliveryStatuses returns the status of each recipient of a message acct
// sent, by recipient.
func (s *Store) DeliveryStatuses(ctx context.Context, acct storage.AccountID, messageID string) ([]storage.DeliveryStatus, error) {
	var out []storage.DeliveryStatus
	err := s.read(ctx, "delivery statuses", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT recipient, state, detail, updated FROM delivery_status
			WHERE account = ? AND message_id = ? ORDER BY recipient`, acct, messageID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			st := storage.DeliveryStatus{MessageID: messageID}
			var updated int64
			if err := rows.Scan(&st.Recipient, &st.State, &st.Detail, &updated); err != nil {
				return err
			}
			st.Updated = fromUnixNano(updated)
			out = append(out, st)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
