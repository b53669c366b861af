package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/relais-mssante/relais/storage"
)

// Append stores one message in one mailbox (IMAP APPEND, RFC 9051 6.3.12).
// A missing mailbox is ErrNotFound (the IMAP layer answers TRYCREATE).
func (s *Store) Append(ctx context.Context, acct storage.AccountID, mailbox string, msg storage.NewMessage) (storage.Delivered, error) {
	d, err := s.deliver(ctx, "append", msg.Raw, msg.InternalDate, []storage.Recipient{{Account: acct, Mailbox: mailbox, Flags: msg.Flags}})
	if err != nil {
		return storage.Delivered{}, err
	}
	return d[0], nil
}

// Deliver stores one message for every recipient in one transaction: all
// copies share one stored blob. An unknown account or mailbox fails the
// whole delivery with ErrNotFound; nothing is stored.
func (s *Store) Deliver(ctx context.Context, raw []byte, internalDate time.Time, rcpts []storage.Recipient) ([]storage.Delivered, error) {
	return s.deliver(ctx, "deliver", raw, internalDate, rcpts)
}

func (s *Store) deliver(ctx context.Context, op string, raw []byte, internalDate time.Time, rcpts []storage.Recipient) ([]storage.Delivered, error) {
	ld, err := storage.PrepareLocal(raw, internalDate, rcpts, s.maxSize, s.log)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	var out []storage.Delivered
	err = s.write(ctx, op, func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		d, err := deliverTx(ctx, tx, ch, ld)
		out = d
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deliverTx stores the copies in tx, all sharing one blob, and records the
// changes to publish after commit, in the SQLite store's order. An unknown
// account or mailbox is ErrNotFound (the caller's transaction then rolls
// back: nothing is stored). It may run again on a retried transaction.
//
// The target mailboxes are found first (creating a missing special-use
// one, under the account's lock), then locked in id order, then each copy
// takes its UID with UPDATE ... RETURNING: the locks are held until commit,
// so UIDs of one mailbox increase in commit order across nodes, and two
// deliveries to the same mailboxes in different orders do not deadlock.
func deliverTx(ctx context.Context, tx pgx.Tx, ch *changes, ld *storage.LocalDelivery) ([]storage.Delivered, error) {
	boxes := make([]storage.Mailbox, len(ld.Recipients))
	ids := make([]storage.MailboxID, len(ld.Recipients))
	created := make([]changes, len(ld.Recipients))
	for i, r := range ld.Recipients {
		m, err := deliveryMailbox(ctx, tx, &created[i], r.Account, ld.Targets[i].Mailbox, r.SpecialUse)
		if err != nil {
			return nil, fmt.Errorf("account %d: %w", r.Account, err)
		}
		boxes[i], ids[i] = m, m.ID
	}
	if len(ids) > 1 {
		if err := lockMailboxes(ctx, tx, ids); err != nil {
			return nil, err
		}
	}
	p := ld.Parsed
	var blob int64
	err := tx.QueryRow(ctx, `INSERT INTO blobs (size, summary, search_header, search_body, raw) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		len(p.Raw), p.Summary, p.SearchHeader, p.SearchBody, p.Raw).Scan(&blob)
	if err != nil {
		return nil, err
	}
	date, size := p.InternalDate.UnixNano(), int64(len(p.Raw))
	out := make([]storage.Delivered, 0, len(ld.Recipients))
	for i, r := range ld.Recipients {
		uid, modseq, err := insertMessage(ctx, tx, boxes[i].ID, blob, ld.Targets[i].Flags, date, size)
		if err != nil {
			return nil, err
		}
		for _, p := range created[i] {
			ch.add(p.acct, p.changes...)
		}
		d, change := ld.Stored(i, boxes[i], uid, modseq)
		out = append(out, d)
		ch.add(r.Account, change)
	}
	return out, nil
}

// deliveryMailbox finds where a Recipient's copy goes: the mailbox with
// its special use if any, else the named one, created with that special use
// when it is missing (a user who deleted Sent still gets a Sent copy).
func deliveryMailbox(ctx context.Context, tx pgx.Tx, ch *changes, acct storage.AccountID, name, specialUse string) (storage.Mailbox, error) {
	if specialUse == "" {
		return mailboxByName(ctx, tx, acct, name, false)
	}
	bySpecialUse := func() (storage.Mailbox, error) {
		return scanMailbox(tx.QueryRow(ctx, `SELECT `+mailboxColumns+` FROM mailboxes
			WHERE account = $1 AND special_use = $2 ORDER BY id LIMIT 1`, acct, specialUse))
	}
	m, err := bySpecialUse()
	if err == nil || !errors.Is(err, pgx.ErrNoRows) {
		return m, err
	}
	m, err = mailboxByName(ctx, tx, acct, name, false)
	if !errors.Is(err, storage.ErrNotFound) {
		return m, err
	}
	// Create it under the account's lock, unless another transaction did
	// while we waited for the lock.
	if err := lockAccount(ctx, tx, acct); err != nil {
		return m, err
	}
	if m, err = bySpecialUse(); err == nil || !errors.Is(err, pgx.ErrNoRows) {
		return m, err
	}
	if m, err = mailboxByName(ctx, tx, acct, name, false); !errors.Is(err, storage.ErrNotFound) {
		return m, err
	}
	return createMailboxTx(ctx, tx, ch, acct, name, specialUse)
}

// allocUIDs takes the next n UIDs of a mailbox and n new modseqs (the i-th
// UID gets first modseq + i): UIDs strictly ascend (RFC 9051 2.3.1.1) and
// every change gets a higher modseq (RFC 7162 3.1.1). The UPDATE takes the
// mailbox's row lock, held until commit.
func allocUIDs(ctx context.Context, tx pgx.Tx, mbox storage.MailboxID, n int) (uid uint32, modseq uint64, err error) {
	var u, m int64
	err = tx.QueryRow(ctx, `UPDATE mailboxes SET uidnext = uidnext + $2, highestmodseq = highestmodseq + $2
		WHERE id = $1 RETURNING uidnext - $2, highestmodseq - $2 + 1`, mbox, n).Scan(&u, &m)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, fmt.Errorf("mailbox %d: %w", mbox, storage.ErrNotFound)
	}
	if err != nil {
		return 0, 0, err
	}
	if u <= 0 || u+int64(n)-1 >= math.MaxUint32 {
		return 0, 0, fmt.Errorf("mailbox %d: UIDs exhausted: %w", mbox, storage.ErrTooLarge)
	}
	return uint32(u), uint64(m), nil
}

// bumpModSeq gives a mailbox a new highest modseq and returns it.
func bumpModSeq(ctx context.Context, tx pgx.Tx, mbox storage.MailboxID) (uint64, error) {
	var m int64
	err := tx.QueryRow(ctx, `UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq`, mbox).Scan(&m)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("mailbox %d: %w", mbox, storage.ErrNotFound)
	}
	return uint64(m), err
}

// insertMessage adds one copy with the mailbox's next UID and a new modseq
// (as allocUIDs, in the same statement).
func insertMessage(ctx context.Context, tx pgx.Tx, mbox storage.MailboxID, blob int64, flags []string, internalDateNs, size int64) (uint32, uint64, error) {
	var u, m int64
	err := tx.QueryRow(ctx, `WITH a AS (
			UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
			WHERE id = $1 RETURNING uidnext - 1 AS uid, highestmodseq AS modseq)
		INSERT INTO messages (mailbox, uid, modseq, flags, seen, deleted, internaldate, size, blob)
		SELECT $1, a.uid, a.modseq, $2, $3, $4, $5, $6, $7 FROM a
		RETURNING uid, modseq`,
		mbox, storage.JoinFlags(flags), storage.HasFlag(flags, storage.FlagSeen), storage.HasFlag(flags, storage.FlagDeleted),
		internalDateNs, size, blob).Scan(&u, &m)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, fmt.Errorf("mailbox %d: %w", mbox, storage.ErrNotFound)
	}
	if err != nil {
		return 0, 0, err
	}
	if u <= 0 || u >= math.MaxUint32 {
		return 0, 0, fmt.Errorf("mailbox %d: UIDs exhausted: %w", mbox, storage.ErrTooLarge)
	}
	return uint32(u), uint64(m), nil
}
