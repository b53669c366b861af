package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/relais-mssante/relais/storage"
)

// uidArgs turns UIDs into a bigint[] argument.
func uidArgs(uids []uint32) []int64 {
	out := make([]int64, len(uids))
	for i, u := range uids {
		out[i] = int64(u)
	}
	return out
}

// sortedUIDs turns UIDs read as bigint into sorted uint32s.
func sortedUIDs(in []int64) []uint32 {
	out := make([]uint32, len(in))
	for i, u := range in {
		out[i] = uint32(u)
	}
	slices.Sort(out)
	return out
}

const messageColumns = `m.uid, m.modseq, m.flags, m.internaldate, m.size, b.summary`

func scanMessages(rows pgx.Rows) ([]storage.MessageInfo, error) {
	var out []storage.MessageInfo
	var r storage.MessageInfoRow
	_, err := pgx.ForEachRow(rows, r.Dest(), func() error {
		out = append(out, r.Info())
		r.Summary = nil // the next row gets its own bytes
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// indexColumns are messageColumns without the summary (scanned as nil),
// read from the messages table alone.
const indexColumns = `m.uid, m.modseq, m.flags, m.internaldate, m.size, NULL::bytea`

// Messages lists a mailbox in UID order.
func (s *Store) Messages(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) ([]storage.MessageInfo, error) {
	return s.listMessages(ctx, "messages", acct, mbox, `SELECT `+messageColumns+` FROM messages m JOIN blobs b ON b.id = m.blob
			WHERE m.mailbox = $1 ORDER BY m.uid`)
}

// MessageIndex lists a mailbox in UID order like Messages, without the
// summaries: it reads the messages table only (no join to blobs).
func (s *Store) MessageIndex(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) ([]storage.MessageInfo, error) {
	return s.listMessages(ctx, "message index", acct, mbox, `SELECT `+indexColumns+` FROM messages m
			WHERE m.mailbox = $1 ORDER BY m.uid`)
}

// listMessages runs query, which lists one mailbox ($1), once the mailbox
// is known to be acct's.
func (s *Store) listMessages(ctx context.Context, op string, acct storage.AccountID, mbox storage.MailboxID, query string) ([]storage.MessageInfo, error) {
	var out []storage.MessageInfo
	err := s.read(ctx, op, func(tx pgx.Tx) error {
		if _, err := mailboxByID(ctx, tx, acct, mbox, false); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, query, mbox)
		if err != nil {
			return err
		}
		out, err = scanMessages(rows)
		return err
	})
	return out, err
}

// MessagesByUID returns the listed UIDs that exist, in UID order.
func (s *Store) MessagesByUID(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uids []uint32) ([]storage.MessageInfo, error) {
	var out []storage.MessageInfo
	err := s.read(ctx, "messages by uid", func(tx pgx.Tx) error {
		out = nil
		if _, err := mailboxByID(ctx, tx, acct, mbox, false); err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT `+messageColumns+` FROM messages m JOIN blobs b ON b.id = m.blob
			WHERE m.mailbox = $1 AND m.uid = ANY($2) ORDER BY m.uid`, mbox, uidArgs(uids))
		if err != nil {
			return err
		}
		out, err = scanMessages(rows)
		return err
	})
	return out, err
}

// RawMessage returns the message bytes exactly as received.
func (s *Store) RawMessage(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uid uint32) ([]byte, error) {
	var raw []byte
	err := s.read(ctx, "raw message", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT b.raw FROM messages m JOIN mailboxes x ON x.id = m.mailbox JOIN blobs b ON b.id = m.blob
			WHERE x.account = $1 AND m.mailbox = $2 AND m.uid = $3`, acct, mbox, int64(uid)).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("message %d: %w", uid, storage.ErrNotFound)
		}
		return err
	})
	return raw, err
}

// SearchText returns the folded header and body text of a message
// (summary.SearchText, computed at delivery).
func (s *Store) SearchText(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uid uint32) (header, body string, err error) {
	err = s.read(ctx, "search text", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT b.search_header, b.search_body FROM messages m JOIN mailboxes x ON x.id = m.mailbox JOIN blobs b ON b.id = m.blob
			WHERE x.account = $1 AND m.mailbox = $2 AND m.uid = $3`, acct, mbox, int64(uid)).Scan(&header, &body)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("message %d: %w", uid, storage.ErrNotFound)
		}
		return err
	})
	return header, body, err
}

// StoreFlags changes flags (RFC 9051 6.4.6). All messages changed by one
// call share one new modseq; messages whose flags do not change keep their
// modseq and are not reported. With unchangedSince > 0 (RFC 7162 3.1.3
// UNCHANGEDSINCE), messages whose modseq is higher are left alone and
// returned in failed. The mailbox's lock is taken first, so the flags read
// are the ones the update replaces, whatever other nodes do meanwhile.
func (s *Store) StoreFlags(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uids []uint32, op storage.FlagOp, flags []string, unchangedSince uint64) (updated []storage.FlagUpdate, failed []uint32, err error) {
	nflags, err := storage.CheckFlagOp(op, flags)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: store flags: %w", err)
	}
	err = s.write(ctx, "store flags", func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		updated, failed = nil, nil
		if _, err := mailboxByID(ctx, tx, acct, mbox, true); err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT uid, modseq, flags FROM messages
			WHERE mailbox = $1 AND uid = ANY($2) ORDER BY uid`, mbox, uidArgs(uids))
		if err != nil {
			return err
		}
		plan := storage.FlagPlan{Op: op, Flags: nflags, UnchangedSince: unchangedSince}
		var uid, rowModSeq int64
		var cur string
		if _, err := pgx.ForEachRow(rows, []any{&uid, &rowModSeq, &cur}, func() error {
			plan.Add(uint32(uid), uint64(rowModSeq), cur)
			return nil
		}); err != nil {
			return err
		}
		failed = plan.Failed
		if len(plan.Updates) == 0 {
			return nil
		}
		modseq, err := bumpModSeq(ctx, tx, mbox)
		if err != nil {
			return err
		}
		n := len(plan.Updates)
		us, fs, seen, deleted := make([]int64, n), make([]string, n), make([]bool, n), make([]bool, n)
		for i, c := range plan.Updates {
			us[i], fs[i] = int64(c.UID), storage.JoinFlags(c.Flags)
			seen[i], deleted[i] = storage.HasFlag(c.Flags, storage.FlagSeen), storage.HasFlag(c.Flags, storage.FlagDeleted)
		}
		if _, err := tx.Exec(ctx, `UPDATE messages m SET flags = u.flags, seen = u.seen, deleted = u.deleted, modseq = $2
			FROM unnest($3::bigint[], $4::text[], $5::boolean[], $6::boolean[]) AS u(uid, flags, seen, deleted)
			WHERE m.mailbox = $1 AND m.uid = u.uid`, mbox, int64(modseq), us, fs, seen, deleted); err != nil {
			return err
		}
		var changes []storage.Change
		updated, changes = plan.Done(mbox, modseq)
		ch.add(acct, changes...)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return updated, failed, nil
}

// Expunge removes the listed messages that carry \Deleted (all of them when
// uids is nil: RFC 9051 6.4.3 EXPUNGE, 6.4.9 UID EXPUNGE).
func (s *Store) Expunge(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uids []uint32) ([]uint32, error) {
	var removed []uint32
	err := s.write(ctx, "expunge", func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		removed = nil
		if _, err := mailboxByID(ctx, tx, acct, mbox, true); err != nil {
			return err
		}
		if uids != nil && len(uids) == 0 {
			return nil
		}
		q := `DELETE FROM messages WHERE mailbox = $1 AND deleted RETURNING uid, blob`
		args := []any{mbox}
		if uids != nil {
			q = `DELETE FROM messages WHERE mailbox = $1 AND deleted AND uid = ANY($2) RETURNING uid, blob`
			args = append(args, uidArgs(uids))
		}
		var err error
		removed, err = expungeWhere(ctx, tx, ch, acct, mbox, q, args...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// expungeWhere runs a DELETE ... RETURNING uid, blob on one mailbox's
// messages, drops the blobs no copy references any more and records the
// expunges under one new modseq. It returns the removed UIDs in order.
func expungeWhere(ctx context.Context, tx pgx.Tx, ch *changes, acct storage.AccountID, mbox storage.MailboxID, q string, args ...any) ([]uint32, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var uids, blobs []int64
	var uid, blob int64
	if _, err := pgx.ForEachRow(rows, []any{&uid, &blob}, func() error {
		uids, blobs = append(uids, uid), append(blobs, blob)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(uids) == 0 {
		return nil, nil
	}
	if err := dropOrphanBlobs(ctx, tx, blobs); err != nil {
		return nil, err
	}
	modseq, err := bumpModSeq(ctx, tx, mbox)
	if err != nil {
		return nil, err
	}
	removed := sortedUIDs(uids)
	for _, u := range removed {
		ch.add(acct, storage.Change{Kind: storage.ChangeExpunged, Mailbox: mbox, UID: u, ModSeq: modseq})
	}
	return removed, nil
}

// Copy copies messages to another mailbox of the same account (RFC 9051
// 6.4.7) and reports COPYUID data (RFC 4315 3). The copies share the stored
// blob and keep flags and internal date.
func (s *Store) Copy(ctx context.Context, acct storage.AccountID, from storage.MailboxID, uids []uint32, to string) (storage.CopyResult, error) {
	return s.copyMove(ctx, "copy", acct, from, uids, to, false)
}

// Move moves messages atomically: copy then expunge, one transaction (RFC
// 6851 3.3).
func (s *Store) Move(ctx context.Context, acct storage.AccountID, from storage.MailboxID, uids []uint32, to string) (storage.CopyResult, error) {
	return s.copyMove(ctx, "move", acct, from, uids, to, true)
}

func (s *Store) copyMove(ctx context.Context, op string, acct storage.AccountID, from storage.MailboxID, uids []uint32, to string, move bool) (storage.CopyResult, error) {
	to, err := storage.NormMailboxName(to)
	if err != nil {
		return storage.CopyResult{}, fmt.Errorf("postgres: %s: %w", op, storage.ErrNotFound)
	}
	var res storage.CopyResult
	err = s.write(ctx, op, func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		res = storage.CopyResult{}
		if _, err := mailboxByID(ctx, tx, acct, from, false); err != nil {
			return err
		}
		dst, err := mailboxByName(ctx, tx, acct, to, false)
		if err != nil {
			return err
		}
		res.UIDValidity = dst.UIDValidity
		if len(uids) == 0 {
			return nil
		}
		// Both mailboxes locked, in id order: the source's messages cannot
		// change or go before the commit.
		if err := lockMailboxes(ctx, tx, []storage.MailboxID{from, dst.ID}); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT uid, flags, internaldate, size, blob FROM messages
			WHERE mailbox = $1 AND uid = ANY($2) ORDER BY uid`, from, uidArgs(uids))
		if err != nil {
			return err
		}
		var srcUIDs, dates, sizes, blobs []int64
		var srcFlags []string
		var uid, date, size, blob int64
		var flags string
		if _, err := pgx.ForEachRow(rows, []any{&uid, &flags, &date, &size, &blob}, func() error {
			srcUIDs, srcFlags, dates, sizes, blobs = append(srcUIDs, uid), append(srcFlags, flags), append(dates, date), append(sizes, size), append(blobs, blob)
			return nil
		}); err != nil {
			return err
		}
		n := len(srcUIDs)
		if n == 0 {
			return nil
		}
		// One UPDATE takes n UIDs and n modseqs, one INSERT adds the copies:
		// the same values as n single copies.
		first, modseq, err := allocUIDs(ctx, tx, dst.ID, n)
		if err != nil {
			return err
		}
		dstUIDs, modseqs, seen, deleted := make([]int64, n), make([]int64, n), make([]bool, n), make([]bool, n)
		for i := range n {
			dstUIDs[i], modseqs[i] = int64(first)+int64(i), int64(modseq)+int64(i)
			f := storage.SplitFlags(srcFlags[i])
			seen[i], deleted[i] = storage.HasFlag(f, storage.FlagSeen), storage.HasFlag(f, storage.FlagDeleted)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO messages (mailbox, uid, modseq, flags, seen, deleted, internaldate, size, blob)
			SELECT $1, u.uid, u.modseq, u.flags, u.seen, u.deleted, u.internaldate, u.size, u.blob
			FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::boolean[], $6::boolean[], $7::bigint[], $8::bigint[], $9::bigint[])
				AS u(uid, modseq, flags, seen, deleted, internaldate, size, blob)`,
			dst.ID, dstUIDs, modseqs, srcFlags, seen, deleted, dates, sizes, blobs); err != nil {
			return err
		}
		for i := range n {
			res.SourceUIDs = append(res.SourceUIDs, uint32(srcUIDs[i]))
			res.DestUIDs = append(res.DestUIDs, uint32(dstUIDs[i]))
			ch.add(acct, storage.Change{Kind: storage.ChangeMessageAdded, Mailbox: dst.ID, UID: uint32(dstUIDs[i]),
				ModSeq: uint64(modseqs[i]), Flags: storage.SplitFlags(srcFlags[i])})
		}
		if move {
			_, err := expungeWhere(ctx, tx, ch, acct, from,
				`DELETE FROM messages WHERE mailbox = $1 AND uid = ANY($2) RETURNING uid, blob`, from, srcUIDs)
			return err
		}
		return nil
	})
	if err != nil {
		return storage.CopyResult{}, err
	}
	return res, nil
}
