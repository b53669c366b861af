package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/relais-mssante/relais/storage"
)

// The outbound queue (RFC 5321 4.5.4.1: a message is kept and retried until
// it is delivered or fails for good) and the delivery status, shared by
// every node of the cluster.
//
// Leases: LeaseDue selects due entries FOR UPDATE SKIP LOCKED and sets
// their lease in the same transaction, so two nodes never lease the same
// entry while its lease is valid. Each lease also records the node that
// took it (lease_owner): a RecordAttempt from another node while that lease
// is live comes from a worker whose own lease ran out; it keeps its final
// outcomes (a remote 250 or 5xx is a fact) but neither reschedules
// recipients nor releases the newer lease.

var _ storage.QueueStore = (*Store)(nil)

// schemaQueue is migration 3: the outbound queue and the delivery status.
// Tables, columns and encodings mirror SQLite's migration 3 (times are
// BIGINT unix nanoseconds, 0 for none); the differences are:
//
//   - queue_recipients.delay_notified is BOOLEAN (0/1 INTEGER in SQLite).
//   - queue_entries.lease_owner (PostgreSQL only, empty by default) names the
//     node holding the lease; migrate leaves it to its default.
//   - delivery_status.recipient is COLLATE "C", so that DeliveryStatuses
//     lists in byte order as SQLite's BINARY does.
//
// An entry's raw bytes live in their own table, read only by QueueMessage;
// recipients and raw bytes go with their entry (ON DELETE CASCADE).
const schemaQueue = `
CREATE TABLE queue_entries (
	id          BIGSERIAL PRIMARY KEY,
	account     BIGINT NOT NULL, -- 0: mail Relais itself sends
	sender      TEXT NOT NULL,
	message_id  TEXT NOT NULL,
	ret         TEXT NOT NULL,
	envid       TEXT NOT NULL,
	size        BIGINT NOT NULL,
	created     BIGINT NOT NULL,
	expires     BIGINT NOT NULL,
	lease_until BIGINT NOT NULL DEFAULT 0,
	lease_owner TEXT NOT NULL DEFAULT ''
);
CREATE TABLE queue_messages (
	entry BIGINT PRIMARY KEY REFERENCES queue_entries(id) ON DELETE CASCADE,
	raw   BYTEA NOT NULL
);
CREATE TABLE queue_recipients (
	entry          BIGINT NOT NULL REFERENCES queue_entries(id) ON DELETE CASCADE,
	seq            BIGINT NOT NULL, -- position in the envelope
	address        TEXT NOT NULL,   -- canonical, unique within an entry
	domain         TEXT NOT NULL,
	notify         TEXT NOT NULL,   -- comma-separated NOTIFY keywords, '' for the default
	orcpt          TEXT NOT NULL,
	state          TEXT NOT NULL,   -- pending, delivered, failed
	attempts       BIGINT NOT NULL DEFAULT 0,
	next_attempt   BIGINT NOT NULL,
	last_attempt   BIGINT NOT NULL DEFAULT 0,
	last_error     TEXT NOT NULL DEFAULT '',
	delay_notified BOOLEAN NOT NULL DEFAULT false,
	PRIMARY KEY (entry, seq)
);
-- LeaseDue: pending recipients by due time.
CREATE INDEX queue_recipients_due ON queue_recipients(next_attempt, entry) WHERE state = 'pending';

-- What a sender sees of each recipient of a message; the key serves
-- DeliveryStatuses (account, message_id) in recipient order.
CREATE TABLE delivery_status (
	account    BIGINT NOT NULL,
	message_id TEXT NOT NULL,
	recipient  TEXT COLLATE "C" NOT NULL,
	state      TEXT NOT NULL,
	detail     TEXT NOT NULL,
	updated    BIGINT NOT NULL,
	PRIMARY KEY (account, message_id, recipient)
);
`

// queueListBatch is how many entries QueueEntries reads per snapshot.
const queueListBatch = 256

// accountKnown is ErrNotFound when the account does not exist.
func accountKnown(ctx context.Context, tx pgx.Tx, acct storage.AccountID) error {
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1)`, acct).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("account %d: %w", acct, storage.ErrNotFound)
	}
	return nil
}

// enqueueTx inserts the entry, its raw bytes and its recipients (all due at
// now) in one statement.
func enqueueTx(ctx context.Context, tx pgx.Tx, p *storage.PreparedOutbound, now time.Time) (storage.QueueID, error) {
	out := p.Outbound
	if out.Account != 0 {
		if err := accountKnown(ctx, tx, out.Account); err != nil {
			return 0, err
		}
	}
	addrs := make([]string, len(p.Recipients))
	orcpts := make([]string, len(p.Recipients))
	for i, r := range p.Recipients {
		addrs[i], orcpts[i] = r.Address, r.ORCPT
	}
	var id int64
	err := tx.QueryRow(ctx, `WITH e AS (
			INSERT INTO queue_entries (account, sender, message_id, ret, envid, size, created, expires)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id),
		m AS (INSERT INTO queue_messages (entry, raw) SELECT id, $9::bytea FROM e),
		r AS (INSERT INTO queue_recipients (entry, seq, address, domain, notify, orcpt, state, next_attempt)
			SELECT e.id, u.n - 1, u.address, u.domain, u.notify, u.orcpt, 'pending', $7::bigint
			FROM e, unnest($10::text[], $11::text[], $12::text[], $13::text[]) WITH ORDINALITY AS u(address, domain, notify, orcpt, n))
		SELECT id FROM e`,
		int64(out.Account), out.Sender, out.MessageID, out.Ret, out.EnvID, int64(len(out.Raw)), now.UnixNano(),
		storage.NanosOrZero(out.Expires), out.Raw, addrs, p.Domains, p.Notify, orcpts).Scan(&id)
	if err != nil {
		return 0, err
	}
	return storage.QueueID(id), nil
}

// Submit stores a submission in one transaction: the local copies (as
// Deliver), the queue entry and the delivery status rows.
func (s *Store) Submit(ctx context.Context, sub storage.Submission) ([]storage.Delivered, storage.QueueID, error) {
	ps, err := storage.PrepareSubmission(sub, s.maxSize, time.Now(), s.log)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: submit: %w", err)
	}
	var (
		out []storage.Delivered
		id  storage.QueueID
	)
	err = s.write(ctx, "submit", func(ctx context.Context, tx pgx.Tx, ch *changes) error {
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
	tx pgx.Tx
	ch *changes
}

func (t submitTx) DeliverLocal(ctx context.Context, ld *storage.LocalDelivery) ([]storage.Delivered, error) {
	return deliverTx(ctx, t.tx, t.ch, ld)
}

func (t submitTx) Enqueue(ctx context.Context, p *storage.PreparedOutbound) (storage.QueueID, error) {
	return enqueueTx(ctx, t.tx, p, time.Now())
}

func (t submitTx) AccountExists(ctx context.Context, acct storage.AccountID) error {
	return accountKnown(ctx, t.tx, acct)
}

func (t submitTx) SetStatus(ctx context.Context, acct storage.AccountID, st storage.DeliveryStatus) error {
	return setStatusTx(ctx, t.tx, acct, st)
}

// Enqueue queues a message alone, durably; its recipients are due at once.
func (s *Store) Enqueue(ctx context.Context, out storage.Outbound) (storage.QueueID, error) {
	po, err := storage.PrepareOutbound(out, s.maxSize)
	if err != nil {
		return 0, fmt.Errorf("postgres: enqueue: %w", err)
	}
	var id storage.QueueID
	err = s.write(ctx, "enqueue", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		q, err := enqueueTx(ctx, tx, po, time.Now())
		id = q
		return err
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// leaseDueQuery picks and locks up to $2 entries without a live lease
// (lease_until 0, or at or before $1) that have a pending recipient due at
// $1, oldest due time first. It walks only the due recipients (the
// queue_recipients_due index). SKIP LOCKED passes over entries another
// transaction is leasing right now, and LIMIT counts only the rows locked:
// concurrent callers get disjoint sets. An entry leased and committed by
// another node after this statement's snapshot is re-checked on its newest
// version once locked (READ COMMITTED), and dropped since its lease is
// live.
const leaseDueQuery = `SELECT e.id FROM queue_entries e
	JOIN (SELECT entry, min(next_attempt) AS due FROM queue_recipients
		WHERE state = 'pending' AND next_attempt <= $1 GROUP BY entry) d ON d.entry = e.id
	WHERE e.lease_until <= $1
	ORDER BY d.due, e.id
	LIMIT $2
	FOR UPDATE OF e SKIP LOCKED`

// LeaseDue leases up to limit due entries whose lease is absent or
// expired, oldest due time first, to this node.
func (s *Store) LeaseDue(ctx context.Context, now time.Time, limit int, leaseFor time.Duration) ([]storage.QueueEntry, error) {
	if limit <= 0 || leaseFor <= 0 {
		return nil, fmt.Errorf("postgres: lease due: limit %d, lease %v: %w", limit, leaseFor, storage.ErrInvalid)
	}
	nowNs, until := now.UnixNano(), now.Add(leaseFor).UnixNano()
	var out []storage.QueueEntry
	err := s.write(ctx, "lease due", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		out = nil
		rows, err := tx.Query(ctx, leaseDueQuery, nowNs, limit)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(ids) == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE queue_entries SET lease_until = $1, lease_owner = $2 WHERE id = ANY($3)`,
			until, s.node, ids); err != nil {
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

// loadEntries reads entries and their recipients, in id order; missing ids
// are left out.
func loadEntries(ctx context.Context, tx pgx.Tx, ids []int64) ([]storage.QueueEntry, error) {
	rows, err := tx.Query(ctx, `SELECT id, account, sender, message_id, ret, envid, size, created, expires, lease_until
		FROM queue_entries WHERE id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return nil, err
	}
	var out []storage.QueueEntry
	var e storage.QueueEntryRow
	_, err = pgx.ForEachRow(rows, e.Dest(), func() error {
		out = append(out, e.Entry())
		return nil
	})
	if err != nil || len(out) == 0 {
		return nil, err
	}
	rows, err = tx.Query(ctx, `SELECT entry, address, domain, notify, orcpt, state, attempts, next_attempt, last_attempt, last_error, delay_notified
		FROM queue_recipients WHERE entry = ANY($1) ORDER BY entry, seq`, ids)
	if err != nil {
		return nil, err
	}
	var r storage.QueueRecipientRow
	_, err = pgx.ForEachRow(rows, r.Dest(), func() error {
		storage.AddQueueRecipient(out, storage.QueueID(r.Entry), r.Recipient())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// QueueMessage returns an entry's raw bytes.
func (s *Store) QueueMessage(ctx context.Context, id storage.QueueID) ([]byte, error) {
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT raw FROM queue_messages WHERE entry = $1`, id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: queue message: queue entry %d: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: queue message: %w", err)
	}
	return raw, nil
}

// RecordAttempt stores attempt outcomes, releases the lease, and removes the
// entry once no recipient is pending. The entry's row lock orders it with
// LeaseDue, RetryQueue, DropQueue and other RecordAttempts on any node.
//
// When another node holds a live lease on the entry, the caller's lease ran
// out and the entry was leased again: its delivered and failed outcomes are
// still recorded (the remote server's answer is a fact, and forgetting it
// would send the message again), but its deferrals are not (the newer
// holder's attempt decides the next one), and the newer lease is kept.
func (s *Store) RecordAttempt(ctx context.Context, id storage.QueueID, results []storage.AttemptResult) error {
	ups, err := storage.PrepareAttempts(results, time.Now())
	if err != nil {
		return fmt.Errorf("postgres: record attempt: %w", err)
	}
	return s.write(ctx, "record attempt", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		var leaseUntil int64
		var owner string
		err := tx.QueryRow(ctx, `SELECT lease_until, lease_owner FROM queue_entries WHERE id = $1 FOR UPDATE`, id).Scan(&leaseUntil, &owner)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("queue entry %d: %w", id, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		stale := owner != "" && owner != s.node && leaseUntil > time.Now().UnixNano()
		seqs := map[string]int64{}
		states := map[string]storage.QueueState{}
		rows, err := tx.Query(ctx, `SELECT seq, address, state FROM queue_recipients WHERE entry = $1`, id)
		if err != nil {
			return err
		}
		var seq int64
		var addr, state string
		if _, err := pgx.ForEachRow(rows, []any{&seq, &addr, &state}, func() error {
			seqs[addr], states[addr] = seq, storage.QueueState(state)
			return nil
		}); err != nil {
			return err
		}
		apply, done, err := storage.PlanAttempts(states, ups, !stale)
		if err != nil {
			return fmt.Errorf("queue entry %d: %w", id, err)
		}
		for _, u := range apply {
			if _, err := tx.Exec(ctx, `UPDATE queue_recipients SET state = $1, attempts = attempts + 1, next_attempt = $2,
				last_attempt = $3, last_error = $4, delay_notified = delay_notified OR $5 WHERE entry = $6 AND seq = $7`,
				string(u.State), storage.AttemptNextNanos(u), u.At.UnixNano(), u.Error, u.DelayNotified, id, seqs[u.Address]); err != nil {
				return err
			}
		}
		if done {
			// Recipients and raw bytes go with it (ON DELETE CASCADE).
			_, err := tx.Exec(ctx, `DELETE FROM queue_entries WHERE id = $1`, id)
			return err
		}
		if stale {
			s.log.Warn("postgres: attempt recorded after its lease ran out; the entry is leased by another node",
				slog.Int64("entry", int64(id)))
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE queue_entries SET lease_until = 0, lease_owner = '' WHERE id = $1`, id)
		return err
	})
}

// QueueEntry returns one entry.
func (s *Store) QueueEntry(ctx context.Context, id storage.QueueID) (storage.QueueEntry, error) {
	var e storage.QueueEntry
	err := s.read(ctx, "queue entry", func(tx pgx.Tx) error {
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
		err := s.read(ctx, "queue entries", func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT id FROM queue_entries WHERE id > $1 ORDER BY id LIMIT $2`, after, queueListBatch)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil || len(ids) == 0 {
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
	return s.write(ctx, "retry queue", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		tag, err := tx.Exec(ctx, `UPDATE queue_entries SET lease_until = 0, lease_owner = '' WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("queue entry %d: %w", id, storage.ErrNotFound)
		}
		_, err = tx.Exec(ctx, `UPDATE queue_recipients SET next_attempt = $1 WHERE entry = $2 AND state = 'pending'`, now.UnixNano(), id)
		return err
	})
}

// DropQueue removes an entry, its recipients and its raw bytes.
func (s *Store) DropQueue(ctx context.Context, id storage.QueueID) error {
	return s.write(ctx, "drop queue", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		tag, err := tx.Exec(ctx, `DELETE FROM queue_entries WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("queue entry %d: %w", id, storage.ErrNotFound)
		}
		return nil
	})
}

// setStatusTx writes one status row unless it would go backwards
// (storage.DeliveryStateAdvances). A new row is inserted; an existing one
// is locked, so that two nodes updating one recipient apply the order one
// after the other.
func setStatusTx(ctx context.Context, tx pgx.Tx, acct storage.AccountID, st storage.DeliveryStatus) error {
	tag, err := tx.Exec(ctx, `INSERT INTO delivery_status (account, message_id, recipient, state, detail, updated)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
		acct, st.MessageID, st.Recipient, string(st.State), st.Detail, st.Updated.UnixNano())
	if err != nil || tag.RowsAffected() == 1 {
		return err
	}
	var cur string
	if err := tx.QueryRow(ctx, `SELECT state FROM delivery_status WHERE account = $1 AND message_id = $2 AND recipient = $3 FOR UPDATE`,
		acct, st.MessageID, st.Recipient).Scan(&cur); err != nil {
		return err
	}
	if !storage.DeliveryStateAdvances(storage.DeliveryState(cur), st.State) {
		return nil
	}
	_, err = tx.Exec(ctx, `UPDATE delivery_status SET state = $1, detail = $2, updated = $3
		WHERE account = $4 AND message_id = $5 AND recipient = $6`,
		string(st.State), st.Detail, st.Updated.UnixNano(), acct, st.MessageID, st.Recipient)
	return err
}

// SetDeliveryStatus records a recipient's status for a message acct sent.
func (s *Store) SetDeliveryStatus(ctx context.Context, acct storage.AccountID, st storage.DeliveryStatus) error {
	if err := storage.NormDeliveryStatus(&st, time.Now()); err != nil {
		return fmt.Errorf("postgres: set delivery status: %w", err)
	}
	return s.write(ctx, "set delivery status", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		if err := accountKnown(ctx, tx, acct); err != nil {
			return err
		}
		return setStatusTx(ctx, tx, acct, st)
	})
}

// DeliveryStatuses returns the status of each recipient of a message acct
// sent, by recipient (byte order).
func (s *Store) DeliveryStatuses(ctx context.Context, acct storage.AccountID, messageID string) ([]storage.DeliveryStatus, error) {
	rows, err := s.pool.Query(ctx, `SELECT recipient, state, detail, updated FROM delivery_status
		WHERE account = $1 AND message_id = $2 ORDER BY recipient`, acct, messageID)
	if err != nil {
		return nil, fmt.Errorf("postgres: delivery statuses: %w", err)
	}
	var out []storage.DeliveryStatus
	st := storage.DeliveryStatus{MessageID: messageID}
	var updated int64
	_, err = pgx.ForEachRow(rows, []any{&st.Recipient, &st.State, &st.Detail, &updated}, func() error {
		st.Updated = time.Unix(0, updated).UTC()
		out = append(out, st)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: delivery statuses: %w", err)
	}
	return out, nil
}
