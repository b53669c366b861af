package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// jsonInts renders ids as a JSON array for json_each().
func jsonInts[T int64 | uint32](ids []T) string {
	var b strings.Builder
	b.Grow(len(ids)*8 + 2)
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(id), 10))
	}
	b.WriteByte(']')
	return b.String()
}

func insertBlob(ctx context.Context, tx *sql.Tx, p *storage.ParsedMessage) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO blobs (size, summary, search_header, search_body, raw) VALUES (?, ?, ?, ?, ?)`,
		len(p.Raw), p.Summary, p.SearchHeader, p.SearchBody, p.Raw)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// allocUID takes the next UID of a mailbox and a new modseq: UIDs strictly
// ascend (RFC 9051 2.3.1.1) and every change gets a higher modseq (RFC 7162
// 3.1.1).
func allocUID(ctx context.Context, tx *sql.Tx, mbox storage.MailboxID) (uid uint32, modseq uint64, err error) {
	var u, m int64
	err = tx.QueryRowContext(ctx, `UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
		WHERE id = ? RETURNING uidnext - 1, highestmodseq`, mbox).Scan(&u, &m)
	if err != nil {
		return 0, 0, err
	}
	if u <= 0 || u >= math.MaxUint32 {
		return 0, 0, fmt.Errorf("mailbox %d: UIDs exhausted: %w", mbox, storage.ErrTooLarge)
	}
	return uint32(u), uint64(m), nil
}

// bumpModSeq gives a mailbox a new highest modseq and returns it.
func bumpModSeq(ctx context.Context, tx *sql.Tx, mbox storage.MailboxID) (uint64, error) {
	var m int64
	err := tx.QueryRowContext(ctx, `UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq`, mbox).Scan(&m)
	return uint64(m), err
}

func insertMessage(ctx context.Context, tx *sql.Tx, mbox storage.MailboxID, blob int64, flags []string, internalDateNs, size int64) (uint32, uint64, error) {
	uid, modseq, err := allocUID(ctx, tx, mbox)
	if err != nil {
		return 0, 0, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO messages (mailbox, uid, modseq, flags, seen, deleted, internaldate, size, blob)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		mbox, uid, modseq, storage.JoinFlags(flags), boolInt(storage.HasFlag(flags, storage.FlagSeen)), boolInt(storage.HasFlag(flags, storage.FlagDeleted)),
		internalDateNs, size, blob)
	return uid, modseq, err
}

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
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var out []storage.Delivered
	err = s.write(ctx, op, func(ctx context.Context, tx *sql.Tx, ch *changes) error {
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
// changes to publish after commit. An unknown account or mailbox is
// ErrNotFound (the caller's job then rolls back: nothing is stored).
func deliverTx(ctx context.Context, tx *sql.Tx, ch *changes, ld *storage.LocalDelivery) ([]storage.Delivered, error) {
	out := make([]storage.Delivered, 0, len(ld.Recipients))
	blob, err := insertBlob(ctx, tx, ld.Parsed)
	if err != nil {
		return nil, err
	}
	for i, r := range ld.Recipients {
		m, err := deliveryMailbox(ctx, tx, ch, r.Account, ld.Targets[i].Mailbox, r.SpecialUse)
		if err != nil {
			return nil, fmt.Errorf("account %d: %w", r.Account, err)
		}
		uid, modseq, err := insertMessage(ctx, tx, m.ID, blob, ld.Targets[i].Flags, unixNano(ld.Parsed.InternalDate), int64(len(ld.Parsed.Raw)))
		if err != nil {
			return nil, err
		}
		d, change := ld.Stored(i, m, uid, modseq)
		out = append(out, d)
		ch.add(r.Account, change)
	}
	return out, nil
}

// deliveryMailbox finds where a Recipient's copy goes: the mailbox with
// its special use if any, else the named one, created with that special use
// when it is missing (a user who deleted Sent still gets a Sent copy).
func deliveryMailbox(ctx context.Context, tx *sql.Tx, ch *changes, acct storage.AccountID, name, specialUse string) (storage.Mailbox, error) {
	if specialUse == "" {
		return mailboxByName(ctx, tx, acct, name)
	}
	m, err := scanMailbox(tx.QueryRowContext(ctx, `SELECT `+mailboxColumns+` FROM mailboxes
		WHERE account = ? AND special_use = ? ORDER BY id LIMIT 1`, acct, specialUse))
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return m, err
	}
	m, err = mailboxByName(ctx, tx, acct, name)
	if !errors.Is(err, storage.ErrNotFound) {
		return m, err
	}
	if err := accountExists(ctx, tx, acct); err != nil {
		return m, err
	}
	return createMailboxTx(ctx, tx, ch, acct, name, specialUse)
}

const messageColumns = `m.uid, m.modseq, m.flags, m.internaldate, m.size, b.summary`

func scanMessages(rows *sql.Rows) ([]storage.MessageInfo, error) {
	defer rows.Close()
	var out []storage.MessageInfo
	for rows.Next() {
		var r storage.MessageInfoRow
		if err := rows.Scan(r.Dest()...); err != nil {
			return nil, err
		}
		out = append(out, r.Info())
	}
	return out, rows.Err()
}

// indexColumns are messageColumns without the summary (scanned as nil),
// read from the messages table alone.
const indexColumns = `m.uid, m.modseq, m.flags, m.internaldate, m.size, NULL`

// Messages lists a mailbox in UID order.
func (s *Store) Messages(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) ([]storage.MessageInfo, error) {
	return s.listMessages(ctx, "messages", acct, mbox, `SELECT `+messageColumns+` FROM messages m JOIN blobs b ON b.id = m.blob
			WHERE m.mailbox = ? ORDER BY m.uid`)
}

// MessageIndex lists a mailbox in UID order like Messages, without the
// summaries: it reads the messages table only (no join to blobs).
func (s *Store) MessageIndex(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) ([]storage.MessageInfo, error) {
	return s.listMessages(ctx, "message index", acct, mbox, `SELECT `+indexColumns+` FROM messages m
			WHERE m.mailbox = ? ORDER BY m.uid`)
}

// listMessages runs query, which lists one mailbox (its one argument), once
// the mailbox is known to be acct's.
func (s *Store) listMessages(ctx context.Context, op string, acct storage.AccountID, mbox storage.MailboxID, query string) ([]storage.MessageInfo, error) {
	var out []storage.MessageInfo
	err := s.read(ctx, op, func(tx *sql.Tx) error {
		if _, err := mailboxByID(ctx, tx, acct, mbox); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, query, mbox)
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
	err := s.read(ctx, "messages by uid", func(tx *sql.Tx) error {
		if _, err := mailboxByID(ctx, tx, acct, mbox); err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages m JOIN blobs b ON b.id = m.blob
			WHERE m.mailbox = ? AND m.uid IN (SELECT value FROM json_each(?)) ORDER BY m.uid`, mbox, jsonInts(uids))
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
	err := s.read(ctx, "raw message", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT b.raw FROM messages m JOIN mailboxes x ON x.id = m.mailbox JOIN blobs b ON b.id = m.blob
			WHERE x.account = ? AND m.mailbox = ? AND m.uid = ?`, acct, mbox, uid).Scan(&raw)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("message %d: %w", uid, storage.ErrNotFound)
		}
		return err
	})
	return raw, err
}

// SearchText returns the folded header and body text of a message
// (summary.SearchText, computed at delivery).
func (s *Store) SearchText(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uid uint32) (header, body string, err error) {
	err = s.read(ctx, "search text", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT b.search_header, b.search_body FROM messages m JOIN mailboxes x ON x.id = m.mailbox JOIN blobs b ON b.id = m.blob
			WHERE x.account = ? AND m.mailbox = ? AND m.uid = ?`, acct, mbox, uid).Scan(&header, &body)
		if errors.Is(err, sql.ErrNoRows) {
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
// returned in failed.
func (s *Store) StoreFlags(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uids []uint32, op storage.FlagOp, flags []string, unchangedSince uint64) (updated []storage.FlagUpdate, failed []uint32, err error) {
	nflags, err := storage.CheckFlagOp(op, flags)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: store flags: %w", err)
	}
	err = s.write(ctx, "store flags", func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		updated, failed = nil, nil
		if _, err := mailboxByID(ctx, tx, acct, mbox); err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT uid, modseq, flags FROM messages
			WHERE mailbox = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`, mbox, jsonInts(uids))
		if err != nil {
			return err
		}
		plan := storage.FlagPlan{Op: op, Flags: nflags, UnchangedSince: unchangedSince}
		for rows.Next() {
			var uid, modseq int64
			var cur string
			if err := rows.Scan(&uid, &modseq, &cur); err != nil {
				rows.Close()
				return err
			}
			plan.Add(uint32(uid), uint64(modseq), cur)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
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
		stmt, err := tx.PrepareContext(ctx, `UPDATE messages SET flags = ?, seen = ?, deleted = ?, modseq = ? WHERE mailbox = ? AND uid = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, c := range plan.Updates {
			if _, err := stmt.ExecContext(ctx, storage.JoinFlags(c.Flags), boolInt(storage.HasFlag(c.Flags, storage.FlagSeen)),
				boolInt(storage.HasFlag(c.Flags, storage.FlagDeleted)), modseq, mbox, c.UID); err != nil {
				return err
			}
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
	err := s.write(ctx, "expunge", func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		removed = nil
		if _, err := mailboxByID(ctx, tx, acct, mbox); err != nil {
			return err
		}
		if uids != nil && len(uids) == 0 {
			return nil
		}
		q := `SELECT uid, blob FROM messages WHERE mailbox = ? AND deleted = 1 ORDER BY uid`
		args := []any{mbox}
		if uids != nil {
			q = `SELECT uid, blob FROM messages WHERE mailbox = ? AND deleted = 1 AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`
			args = append(args, jsonInts(uids))
		}
		var blobs []int64
		var err error
		removed, blobs, err = uidsAndBlobs(ctx, tx, q, args...)
		if err != nil || len(removed) == 0 {
			return err
		}
		return expungeUIDs(ctx, tx, ch, acct, mbox, removed, blobs)
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

func uidsAndBlobs(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]uint32, []int64, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var uids []uint32
	var blobs []int64
	for rows.Next() {
		var uid, blob int64
		if err := rows.Scan(&uid, &blob); err != nil {
			return nil, nil, err
		}
		uids = append(uids, uint32(uid))
		blobs = append(blobs, blob)
	}
	return uids, blobs, rows.Err()
}

// expungeUIDs deletes messages, drops their unreferenced blobs and records
// the expunges under one new modseq.
func expungeUIDs(ctx context.Context, tx *sql.Tx, ch *changes, acct storage.AccountID, mbox storage.MailboxID, uids []uint32, blobs []int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE mailbox = ? AND uid IN (SELECT value FROM json_each(?))`, mbox, jsonInts(uids)); err != nil {
		return err
	}
	if err := dropOrphanBlobs(ctx, tx, blobs); err != nil {
		return err
	}
	modseq, err := bumpModSeq(ctx, tx, mbox)
	if err != nil {
		return err
	}
	for _, uid := range uids {
		ch.add(acct, storage.Change{Kind: storage.ChangeExpunged, Mailbox: mbox, UID: uid, ModSeq: modseq})
	}
	return nil
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
		return storage.CopyResult{}, fmt.Errorf("sqlite: %s: %w", op, storage.ErrNotFound)
	}
	var res storage.CopyResult
	err = s.write(ctx, op, func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		res = storage.CopyResult{}
		if _, err := mailboxByID(ctx, tx, acct, from); err != nil {
			return err
		}
		dst, err := mailboxByName(ctx, tx, acct, to)
		if err != nil {
			return err
		}
		res.UIDValidity = dst.UIDValidity
		if len(uids) == 0 {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT uid, flags, internaldate, size, blob FROM messages
			WHERE mailbox = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`, from, jsonInts(uids))
		if err != nil {
			return err
		}
		type src struct {
			uid        int64
			flags      string
			date, size int64
			blob       int64
		}
		var srcs []src
		for rows.Next() {
			var m src
			if err := rows.Scan(&m.uid, &m.flags, &m.date, &m.size, &m.blob); err != nil {
				rows.Close()
				return err
			}
			srcs = append(srcs, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var blobs []int64
		for _, m := range srcs {
			flags := storage.SplitFlags(m.flags)
			uid, modseq, err := insertMessage(ctx, tx, dst.ID, m.blob, flags, m.date, m.size)
			if err != nil {
				return err
			}
			res.SourceUIDs = append(res.SourceUIDs, uint32(m.uid))
			res.DestUIDs = append(res.DestUIDs, uid)
			blobs = append(blobs, m.blob)
			ch.add(acct, storage.Change{Kind: storage.ChangeMessageAdded, Mailbox: dst.ID, UID: uid, ModSeq: modseq, Flags: flags})
		}
		if move && len(srcs) > 0 {
			return expungeUIDs(ctx, tx, ch, acct, from, res.SourceUIDs, blobs)
		}
		return nil
	})
	if err != nil {
		return storage.CopyResult{}, err
	}
	return res, nil
}
