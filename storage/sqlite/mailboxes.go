package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/relais-mssante/relais/storage"
)

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

const mailboxColumns = `id, account, name, special_use, uidvalidity, uidnext, highestmodseq, subscribed`

func scanMailbox(row interface{ Scan(...any) error }) (storage.Mailbox, error) {
	var m storage.Mailbox
	var uidvalidity, uidnext int64
	var modseq int64
	var sub int
	if err := row.Scan(&m.ID, &m.Account, &m.Name, &m.SpecialUse, &uidvalidity, &uidnext, &modseq, &sub); err != nil {
		return m, err
	}
	m.UIDValidity, m.UIDNext, m.HighestModSeq, m.Subscribed = uint32(uidvalidity), uint32(uidnext), uint64(modseq), sub != 0
	return m, nil
}

func mailboxByName(ctx context.Context, q querier, acct storage.AccountID, name string) (storage.Mailbox, error) {
	m, err := scanMailbox(q.QueryRowContext(ctx, `SELECT `+mailboxColumns+` FROM mailboxes WHERE account = ? AND name = ?`, acct, name))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("mailbox %q: %w", name, storage.ErrNotFound)
	}
	return m, err
}

// mailboxByID returns the mailbox if it belongs to acct, ErrNotFound
// otherwise: every message query goes through it.
func mailboxByID(ctx context.Context, q querier, acct storage.AccountID, id storage.MailboxID) (storage.Mailbox, error) {
	m, err := scanMailbox(q.QueryRowContext(ctx, `SELECT `+mailboxColumns+` FROM mailboxes WHERE account = ? AND id = ?`, acct, id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("mailbox %d: %w", id, storage.ErrNotFound)
	}
	return m, err
}

func mailboxExists(ctx context.Context, q querier, acct storage.AccountID, name string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE account = ? AND name = ?`, acct, name).Scan(&n)
	return n > 0, err
}

func accountExists(ctx context.Context, q querier, acct storage.AccountID) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE id = ?`, acct).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("account %d: %w", acct, storage.ErrNotFound)
	}
	return nil
}

// nextUIDValidity takes the next value of the global UIDVALIDITY counter:
// strictly increasing and at least the current time, so a mailbox recreated
// under an old name never gets an old value (RFC 9051 2.3.1.1).
func nextUIDValidity(ctx context.Context, q querier) (uint32, error) {
	var v int64
	if err := q.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'uidvalidity'`).Scan(&v); err != nil {
		return 0, err
	}
	next := v + 1
	if now := time.Now().Unix(); now > next {
		next = now
	}
	if next > math.MaxUint32 {
		return 0, fmt.Errorf("uidvalidity counter exhausted")
	}
	if _, err := q.ExecContext(ctx, `UPDATE counters SET value = ? WHERE name = 'uidvalidity'`, next); err != nil {
		return 0, err
	}
	return uint32(next), nil
}

func insertMailbox(ctx context.Context, q querier, acct storage.AccountID, name, specialUse string, subscribed bool) (storage.Mailbox, error) {
	uv, err := nextUIDValidity(ctx, q)
	if err != nil {
		return storage.Mailbox{}, err
	}
	m := storage.Mailbox{Account: acct, Name: name, SpecialUse: specialUse, UIDValidity: uv, UIDNext: 1, HighestModSeq: 1, Subscribed: subscribed}
	res, err := q.ExecContext(ctx, `INSERT INTO mailboxes (account, name, special_use, uidvalidity, uidnext, highestmodseq, subscribed) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		acct, name, specialUse, m.UIDValidity, m.UIDNext, m.HighestModSeq, boolInt(subscribed))
	if err != nil {
		return m, err
	}
	id, err := res.LastInsertId()
	m.ID = storage.MailboxID(id)
	return m, err
}

// createParents creates the missing superior names of name (RFC 9051
// 6.3.4), recording their creation.
func createParents(ctx context.Context, tx *sql.Tx, ch *changes, acct storage.AccountID, name string) error {
	for _, p := range storage.MailboxParents(name) {
		ok, err := mailboxExists(ctx, tx, acct, p)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		m, err := insertMailbox(ctx, tx, acct, p, storage.SpecialUseNone, false)
		if err != nil {
			return err
		}
		ch.add(acct, storage.Change{Kind: storage.ChangeMailboxCreated, Mailbox: m.ID, Name: m.Name})
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Mailboxes lists the account's mailboxes sorted by name.
func (s *Store) Mailboxes(ctx context.Context, acct storage.AccountID) ([]storage.Mailbox, error) {
	var out []storage.Mailbox
	err := s.read(ctx, "mailboxes", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+mailboxColumns+` FROM mailboxes WHERE account = ? ORDER BY name`, acct)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMailbox(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}

// MailboxByName finds a mailbox (INBOX case-insensitively).
func (s *Store) MailboxByName(ctx context.Context, acct storage.AccountID, name string) (storage.Mailbox, error) {
	name, err := storage.NormMailboxName(name)
	if err != nil {
		return storage.Mailbox{}, fmt.Errorf("sqlite: mailbox by name: %w", storage.ErrNotFound)
	}
	var m storage.Mailbox
	err = s.read(ctx, "mailbox by name", func(tx *sql.Tx) error {
		m, err = mailboxByName(ctx, tx, acct, name)
		return err
	})
	return m, err
}

// CreateMailbox creates a mailbox and its missing parents (RFC 9051 6.3.4).
// specialUse is one of the storage.SpecialUse constants (RFC 6154 2).
func (s *Store) CreateMailbox(ctx context.Context, acct storage.AccountID, name, specialUse string) (storage.Mailbox, error) {
	name, err := storage.NormMailboxName(name)
	if err != nil {
		return storage.Mailbox{}, fmt.Errorf("sqlite: create mailbox: %w", err)
	}
	if !storage.ValidSpecialUse(specialUse) {
		return storage.Mailbox{}, fmt.Errorf("sqlite: create mailbox: special use %q: %w", specialUse, storage.ErrInvalid)
	}
	var m storage.Mailbox
	err = s.write(ctx, "create mailbox", func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		if err := accountExists(ctx, tx, acct); err != nil {
			return err
		}
		if ok, err := mailboxExists(ctx, tx, acct, name); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("mailbox %q: %w", name, storage.ErrExists)
		}
		m, err = createMailboxTx(ctx, tx, ch, acct, name, specialUse)
		return err
	})
	return m, err
}

// createMailboxTx creates a mailbox that does not exist yet, and its
// missing parents, recording the changes.
func createMailboxTx(ctx context.Context, tx *sql.Tx, ch *changes, acct storage.AccountID, name, specialUse string) (storage.Mailbox, error) {
	if err := createParents(ctx, tx, ch, acct, name); err != nil {
		return storage.Mailbox{}, err
	}
	m, err := insertMailbox(ctx, tx, acct, name, specialUse, false)
	if err != nil {
		return m, err
	}
	ch.add(acct, storage.Change{Kind: storage.ChangeMailboxCreated, Mailbox: m.ID, Name: m.Name})
	return m, nil
}

// DeleteMailbox deletes a mailbox and its messages. INBOX cannot be deleted
// (RFC 9051 6.3.9: ErrForbidden). A mailbox with children is deleted alone:
// its children stay, under their full names (RFC 9051 6.3.9 permits deleting
// a name that has inferior names; a LIST then shows the parent as
// \NonExistent, RFC 9051 7.3.1).
func (s *Store) DeleteMailbox(ctx context.Context, acct storage.AccountID, name string) error {
	name, err := storage.NormMailboxName(name)
	if err != nil {
		return fmt.Errorf("sqlite: delete mailbox: %w", storage.ErrNotFound)
	}
	if name == "INBOX" {
		return fmt.Errorf("sqlite: delete mailbox: INBOX: %w", storage.ErrForbidden)
	}
	return s.write(ctx, "delete mailbox", func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		m, err := mailboxByName(ctx, tx, acct, name)
		if err != nil {
			return err
		}
		if err := deleteMailboxMessages(ctx, tx, m.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM mailboxes WHERE id = ?`, m.ID); err != nil {
			return err
		}
		ch.add(acct, storage.Change{Kind: storage.ChangeMailboxDeleted, Mailbox: m.ID, Name: m.Name})
		return nil
	})
}

func deleteMailboxMessages(ctx context.Context, tx *sql.Tx, mbox storage.MailboxID) error {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT blob FROM messages WHERE mailbox = ?`, mbox)
	if err != nil {
		return err
	}
	var blobs []int64
	for rows.Next() {
		var b int64
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return err
		}
		blobs = append(blobs, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE mailbox = ?`, mbox); err != nil {
		return err
	}
	return dropOrphanBlobs(ctx, tx, blobs)
}

// dropOrphanBlobs deletes the listed blobs that no mailbox references any more.
func dropOrphanBlobs(ctx context.Context, tx *sql.Tx, blobs []int64) error {
	if len(blobs) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM blobs WHERE id IN (SELECT value FROM json_each(?))
		AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.blob = blobs.id)`, jsonInts(blobs))
	return err
}

// RenameMailbox renames a mailbox and its children (RFC 9051 6.3.6:
// "a" -> "b" also renames "a/x" to "b/x"), creating missing superior names
// of the target. Renamed mailboxes keep their UIDVALIDITY (values are
// globally unique, so no name ever sees one twice). Renaming INBOX moves
// its messages (UIDs kept) to a new mailbox and leaves INBOX empty; INBOX's
// children are not renamed.
func (s *Store) RenameMailbox(ctx context.Context, acct storage.AccountID, from, to string) error {
	from, to, err := storage.CheckRename(from, to)
	if err != nil {
		return fmt.Errorf("sqlite: rename mailbox: %w", err)
	}
	return s.write(ctx, "rename mailbox", func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		src, err := mailboxByName(ctx, tx, acct, from)
		if err != nil {
			return err
		}
		if from == "INBOX" {
			return renameInbox(ctx, tx, ch, acct, src, to)
		}
		renames := []storage.MailboxRename{{ID: src.ID, Old: from, New: to}}
		// substr counts characters, not bytes.
		rows, err := tx.QueryContext(ctx, `SELECT id, name FROM mailboxes WHERE account = ? AND substr(name, 1, ?) = ? ORDER BY name`,
			acct, utf8.RuneCountInString(storage.ChildPrefix(from)), storage.ChildPrefix(from))
		if err != nil {
			return err
		}
		for rows.Next() {
			var id storage.MailboxID
			var old string
			if err := rows.Scan(&id, &old); err != nil {
				rows.Close()
				return err
			}
			renames = append(renames, storage.RenameChild(from, to, id, old))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if err := storage.CheckRenameTargets(renames, func(name string) (bool, error) {
			return mailboxExists(ctx, tx, acct, name)
		}); err != nil {
			return err
		}
		if err := createParents(ctx, tx, ch, acct, to); err != nil {
			return err
		}
		for _, r := range renames {
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET name = ? WHERE id = ?`, r.New, r.ID); err != nil {
				return err
			}
			ch.add(acct, r.Change())
		}
		return nil
	})
}

// renameInbox implements RFC 9051 6.3.6 for INBOX: all its messages move to
// a new mailbox named to; INBOX stays, empty.
func renameInbox(ctx context.Context, tx *sql.Tx, ch *changes, acct storage.AccountID, inbox storage.Mailbox, to string) error {
	if ok, err := mailboxExists(ctx, tx, acct, to); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("mailbox %q: %w", to, storage.ErrExists)
	}
	if err := createParents(ctx, tx, ch, acct, to); err != nil {
		return err
	}
	dst, err := insertMailbox(ctx, tx, acct, to, storage.SpecialUseNone, false)
	if err != nil {
		return err
	}
	// The messages keep their UIDs and modseqs in the new mailbox (it has a
	// fresh UIDVALIDITY), so it continues from INBOX's counters.
	if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?`,
		inbox.UIDNext, inbox.HighestModSeq, dst.ID); err != nil {
		return err
	}
	ch.add(acct, storage.Change{Kind: storage.ChangeMailboxCreated, Mailbox: dst.ID, Name: to})
	uids, err := listUIDs(ctx, tx, inbox.ID)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE messages SET mailbox = ? WHERE mailbox = ?`, dst.ID, inbox.ID); err != nil {
		return err
	}
	if len(uids) > 0 {
		modseq, err := bumpModSeq(ctx, tx, inbox.ID)
		if err != nil {
			return err
		}
		for _, uid := range uids {
			ch.add(acct, storage.Change{Kind: storage.ChangeExpunged, Mailbox: inbox.ID, UID: uid, ModSeq: modseq})
		}
	}
	return nil
}

func listUIDs(ctx context.Context, q querier, mbox storage.MailboxID) ([]uint32, error) {
	rows, err := q.QueryContext(ctx, `SELECT uid FROM messages WHERE mailbox = ? ORDER BY uid`, mbox)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var u int64
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, uint32(u))
	}
	return out, rows.Err()
}

// SetSubscribed changes the subscription of an existing mailbox (RFC 9051
// 6.3.7, 6.3.8).
func (s *Store) SetSubscribed(ctx context.Context, acct storage.AccountID, name string, subscribed bool) error {
	name, err := storage.NormMailboxName(name)
	if err != nil {
		return fmt.Errorf("sqlite: set subscribed: %w", storage.ErrNotFound)
	}
	return s.write(ctx, "set subscribed", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		res, err := tx.ExecContext(ctx, `UPDATE mailboxes SET subscribed = ? WHERE account = ? AND name = ?`, boolInt(subscribed), acct, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("mailbox %q: %w", name, storage.ErrNotFound)
		}
		return nil
	})
}

// MailboxCounts is what STATUS reports (RFC 9051 6.3.11, RFC 8438 SIZE).
func (s *Store) MailboxCounts(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) (storage.MailboxCounts, error) {
	var c storage.MailboxCounts
	err := s.read(ctx, "mailbox counts", func(tx *sql.Tx) error {
		if _, err := mailboxByID(ctx, tx, acct, mbox); err != nil {
			return err
		}
		var n, seen, deleted, size int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(seen), 0), coalesce(sum(deleted), 0), coalesce(sum(size), 0)
			FROM messages WHERE mailbox = ?`, mbox).Scan(&n, &seen, &deleted, &size); err != nil {
			return err
		}
		c = storage.MailboxCounts{Messages: uint32(n), Unseen: uint32(n - seen), Deleted: uint32(deleted), Size: size}
		return nil
	})
	return c, err
}
