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

const mailboxColumns = `id, account, name, special_use, uidvalidity, uidnext, highestmodseq, subscribed`

func scanMailbox(row pgx.Row) (storage.Mailbox, error) {
	var m storage.Mailbox
	var uidvalidity, uidnext, modseq int64
	if err := row.Scan(&m.ID, &m.Account, &m.Name, &m.SpecialUse, &uidvalidity, &uidnext, &modseq, &m.Subscribed); err != nil {
		return m, err
	}
	m.UIDValidity, m.UIDNext, m.HighestModSeq = uint32(uidvalidity), uint32(uidnext), uint64(modseq)
	return m, nil
}

// mailboxByName finds an account's mailbox; with lock, it also takes the
// mailbox's row lock (FOR NO KEY UPDATE: it leaves foreign-key checks
// alone), which every writer of the mailbox's messages holds until it
// commits.
func mailboxByName(ctx context.Context, tx pgx.Tx, acct storage.AccountID, name string, lock bool) (storage.Mailbox, error) {
	q := `SELECT ` + mailboxColumns + ` FROM mailboxes WHERE account = $1 AND name = $2`
	if lock {
		q += ` FOR NO KEY UPDATE`
	}
	m, err := scanMailbox(tx.QueryRow(ctx, q, acct, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("mailbox %q: %w", name, storage.ErrNotFound)
	}
	return m, err
}

// mailboxByID returns the mailbox if it belongs to acct, ErrNotFound
// otherwise: every message query goes through it. With lock, it takes the
// mailbox's row lock (see mailboxByName).
func mailboxByID(ctx context.Context, tx pgx.Tx, acct storage.AccountID, id storage.MailboxID, lock bool) (storage.Mailbox, error) {
	q := `SELECT ` + mailboxColumns + ` FROM mailboxes WHERE account = $1 AND id = $2`
	if lock {
		q += ` FOR NO KEY UPDATE`
	}
	m, err := scanMailbox(tx.QueryRow(ctx, q, acct, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("mailbox %d: %w", id, storage.ErrNotFound)
	}
	return m, err
}

// lockMailboxes takes the row locks of several mailboxes in id order, so
// that two transactions locking the same mailboxes never deadlock. A
// mailbox deleted meanwhile is ErrNotFound.
func lockMailboxes(ctx context.Context, tx pgx.Tx, ids []storage.MailboxID) error {
	want := make(map[storage.MailboxID]bool, len(ids))
	list := make([]int64, 0, len(ids))
	for _, id := range ids {
		if !want[id] {
			want[id] = true
			list = append(list, int64(id))
		}
	}
	rows, err := tx.Query(ctx, `SELECT id FROM mailboxes WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, list)
	if err != nil {
		return err
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if n != len(list) {
		return fmt.Errorf("mailbox: %w", storage.ErrNotFound)
	}
	return nil
}

func mailboxExists(ctx context.Context, tx pgx.Tx, acct storage.AccountID, name string) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE account = $1 AND name = $2)`, acct, name).Scan(&ok)
	return ok, err
}

// nextUIDValidity takes the next value of the global UIDVALIDITY counter:
// strictly increasing and at least the current time, so a mailbox recreated
// under an old name never gets an old value (RFC 9051 2.3.1.1). The upsert
// holds the counter's row lock until commit, so two nodes never take the
// same value.
func nextUIDValidity(ctx context.Context, tx pgx.Tx) (uint32, error) {
	var v int64
	err := tx.QueryRow(ctx, `INSERT INTO counters (name, value) VALUES ('uidvalidity', $1)
		ON CONFLICT (name) DO UPDATE SET value = greatest(counters.value + 1, $1) RETURNING value`, time.Now().Unix()).Scan(&v)
	if err != nil {
		return 0, err
	}
	if v <= 0 || v > math.MaxUint32 {
		return 0, fmt.Errorf("uidvalidity counter exhausted")
	}
	return uint32(v), nil
}

// insertMailbox creates a mailbox with the next UIDVALIDITY and the given
// counters (1, 1 for a new mailbox).
func insertMailbox(ctx context.Context, tx pgx.Tx, acct storage.AccountID, name, specialUse string, subscribed bool, uidNext uint32, modseq uint64) (storage.Mailbox, error) {
	uv, err := nextUIDValidity(ctx, tx)
	if err != nil {
		return storage.Mailbox{}, err
	}
	m := storage.Mailbox{Account: acct, Name: name, SpecialUse: specialUse, UIDValidity: uv, UIDNext: uidNext, HighestModSeq: modseq, Subscribed: subscribed}
	err = tx.QueryRow(ctx, `INSERT INTO mailboxes (account, name, special_use, uidvalidity, uidnext, highestmodseq, subscribed)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		acct, name, specialUse, int64(uv), int64(uidNext), int64(modseq), subscribed).Scan(&m.ID)
	if duplicateKey(err) {
		return m, fmt.Errorf("mailbox %q: %w", name, storage.ErrExists)
	}
	return m, err
}

// createParents creates the missing superior names of name (RFC 9051
// 6.3.4), recording their creation. The caller holds the account's lock.
func createParents(ctx context.Context, tx pgx.Tx, ch *changes, acct storage.AccountID, name string) error {
	for _, p := range storage.MailboxParents(name) {
		ok, err := mailboxExists(ctx, tx, acct, p)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		m, err := insertMailbox(ctx, tx, acct, p, storage.SpecialUseNone, false, 1, 1)
		if err != nil {
			return err
		}
		ch.add(acct, storage.Change{Kind: storage.ChangeMailboxCreated, Mailbox: m.ID, Name: m.Name})
	}
	return nil
}

// createMailboxTx creates a mailbox that does not exist yet, and its
// missing parents, recording the changes. The caller holds the account's
// lock.
func createMailboxTx(ctx context.Context, tx pgx.Tx, ch *changes, acct storage.AccountID, name, specialUse string) (storage.Mailbox, error) {
	if err := createParents(ctx, tx, ch, acct, name); err != nil {
		return storage.Mailbox{}, err
	}
	m, err := insertMailbox(ctx, tx, acct, name, specialUse, false, 1, 1)
	if err != nil {
		return m, err
	}
	ch.add(acct, storage.Change{Kind: storage.ChangeMailboxCreated, Mailbox: m.ID, Name: m.Name})
	return m, nil
}

// Mailboxes lists the account's mailboxes sorted by name (byte order).
func (s *Store) Mailboxes(ctx context.Context, acct storage.AccountID) ([]storage.Mailbox, error) {
	var out []storage.Mailbox
	err := s.read(ctx, "mailboxes", func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT `+mailboxColumns+` FROM mailboxes WHERE account = $1 ORDER BY name`, acct)
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
		return storage.Mailbox{}, fmt.Errorf("postgres: mailbox by name: %w", storage.ErrNotFound)
	}
	var m storage.Mailbox
	err = s.read(ctx, "mailbox by name", func(tx pgx.Tx) error {
		m, err = mailboxByName(ctx, tx, acct, name, false)
		return err
	})
	return m, err
}

// CreateMailbox creates a mailbox and its missing parents (RFC 9051 6.3.4).
// specialUse is one of the storage.SpecialUse constants (RFC 6154 2).
func (s *Store) CreateMailbox(ctx context.Context, acct storage.AccountID, name, specialUse string) (storage.Mailbox, error) {
	name, err := storage.NormMailboxName(name)
	if err != nil {
		return storage.Mailbox{}, fmt.Errorf("postgres: create mailbox: %w", err)
	}
	if !storage.ValidSpecialUse(specialUse) {
		return storage.Mailbox{}, fmt.Errorf("postgres: create mailbox: special use %q: %w", specialUse, storage.ErrInvalid)
	}
	var m storage.Mailbox
	err = s.write(ctx, "create mailbox", func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		if err := lockAccount(ctx, tx, acct); err != nil {
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

// DeleteMailbox deletes a mailbox and its messages. INBOX cannot be deleted
// (RFC 9051 6.3.9: ErrForbidden). A mailbox with children is deleted alone:
// its children stay, under their full names (RFC 9051 6.3.9 permits deleting
// a name that has inferior names; a LIST then shows the parent as
// \NonExistent, RFC 9051 7.3.1).
func (s *Store) DeleteMailbox(ctx context.Context, acct storage.AccountID, name string) error {
	name, err := storage.NormMailboxName(name)
	if err != nil {
		return fmt.Errorf("postgres: delete mailbox: %w", storage.ErrNotFound)
	}
	if name == "INBOX" {
		return fmt.Errorf("postgres: delete mailbox: INBOX: %w", storage.ErrForbidden)
	}
	return s.write(ctx, "delete mailbox", func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		if err := lockAccount(ctx, tx, acct); err != nil {
			return err
		}
		m, err := mailboxByName(ctx, tx, acct, name, true)
		if err != nil {
			return err
		}
		if err := deleteMailboxMessages(ctx, tx, m.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM mailboxes WHERE id = $1`, m.ID); err != nil {
			return err
		}
		ch.add(acct, storage.Change{Kind: storage.ChangeMailboxDeleted, Mailbox: m.ID, Name: m.Name})
		return nil
	})
}

func deleteMailboxMessages(ctx context.Context, tx pgx.Tx, mbox storage.MailboxID) error {
	rows, err := tx.Query(ctx, `DELETE FROM messages WHERE mailbox = $1 RETURNING blob`, mbox)
	if err != nil {
		return err
	}
	blobs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	return dropOrphanBlobs(ctx, tx, blobs)
}

// dropOrphanBlobs deletes the listed blobs that no mailbox references any
// more. A blob is referenced only by copies of one message; whoever removes
// a copy holds the lock of that copy's mailbox, and a copy is only made by
// a transaction holding the lock of its source's mailbox, so no reference
// appears behind this check's back.
func dropOrphanBlobs(ctx context.Context, tx pgx.Tx, blobs []int64) error {
	if len(blobs) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `DELETE FROM blobs WHERE id = ANY($1)
		AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.blob = blobs.id)`, blobs)
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
		return fmt.Errorf("postgres: rename mailbox: %w", err)
	}
	return s.write(ctx, "rename mailbox", func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		if err := lockAccount(ctx, tx, acct); err != nil {
			return err
		}
		src, err := mailboxByName(ctx, tx, acct, from, from == "INBOX")
		if err != nil {
			return err
		}
		if from == "INBOX" {
			return renameInbox(ctx, tx, ch, acct, src, to)
		}
		renames := []storage.MailboxRename{{ID: src.ID, Old: from, New: to}}
		rows, err := tx.Query(ctx, `SELECT id, name FROM mailboxes WHERE account = $1 AND starts_with(name, $2) ORDER BY name`,
			acct, storage.ChildPrefix(from))
		if err != nil {
			return err
		}
		var id storage.MailboxID
		var old string
		if _, err := pgx.ForEachRow(rows, []any{&id, &old}, func() error {
			renames = append(renames, storage.RenameChild(from, to, id, old))
			return nil
		}); err != nil {
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
			if _, err := tx.Exec(ctx, `UPDATE mailboxes SET name = $1 WHERE id = $2`, r.New, r.ID); err != nil {
				if duplicateKey(err) {
					return fmt.Errorf("mailbox %q: %w", r.New, storage.ErrExists)
				}
				return err
			}
			ch.add(acct, r.Change())
		}
		return nil
	})
}

// renameInbox implements RFC 9051 6.3.6 for INBOX: all its messages move to
// a new mailbox named to; INBOX stays, empty. The caller holds the
// account's and INBOX's locks.
func renameInbox(ctx context.Context, tx pgx.Tx, ch *changes, acct storage.AccountID, inbox storage.Mailbox, to string) error {
	if ok, err := mailboxExists(ctx, tx, acct, to); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("mailbox %q: %w", to, storage.ErrExists)
	}
	if err := createParents(ctx, tx, ch, acct, to); err != nil {
		return err
	}
	// The messages keep their UIDs and modseqs in the new mailbox (it has a
	// fresh UIDVALIDITY), so it continues from INBOX's counters.
	dst, err := insertMailbox(ctx, tx, acct, to, storage.SpecialUseNone, false, inbox.UIDNext, inbox.HighestModSeq)
	if err != nil {
		return err
	}
	ch.add(acct, storage.Change{Kind: storage.ChangeMailboxCreated, Mailbox: dst.ID, Name: to})
	rows, err := tx.Query(ctx, `UPDATE messages SET mailbox = $1 WHERE mailbox = $2 RETURNING uid`, dst.ID, inbox.ID)
	if err != nil {
		return err
	}
	moved, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if len(moved) > 0 {
		modseq, err := bumpModSeq(ctx, tx, inbox.ID)
		if err != nil {
			return err
		}
		for _, uid := range sortedUIDs(moved) {
			ch.add(acct, storage.Change{Kind: storage.ChangeExpunged, Mailbox: inbox.ID, UID: uid, ModSeq: modseq})
		}
	}
	return nil
}

// SetSubscribed changes the subscription of an existing mailbox (RFC 9051
// 6.3.7, 6.3.8).
func (s *Store) SetSubscribed(ctx context.Context, acct storage.AccountID, name string, subscribed bool) error {
	name, err := storage.NormMailboxName(name)
	if err != nil {
		return fmt.Errorf("postgres: set subscribed: %w", storage.ErrNotFound)
	}
	return s.write(ctx, "set subscribed", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		tag, err := tx.Exec(ctx, `UPDATE mailboxes SET subscribed = $1 WHERE account = $2 AND name = $3`, subscribed, acct, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("mailbox %q: %w", name, storage.ErrNotFound)
		}
		return nil
	})
}

// MailboxCounts is what STATUS reports (RFC 9051 6.3.11, RFC 8438 SIZE).
func (s *Store) MailboxCounts(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) (storage.MailboxCounts, error) {
	var c storage.MailboxCounts
	err := s.read(ctx, "mailbox counts", func(tx pgx.Tx) error {
		if _, err := mailboxByID(ctx, tx, acct, mbox, false); err != nil {
			return err
		}
		var n, unseen, deleted, size int64
		if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT seen), count(*) FILTER (WHERE deleted),
			coalesce(sum(size), 0)::bigint FROM messages WHERE mailbox = $1`, mbox).Scan(&n, &unseen, &deleted, &size); err != nil {
			return err
		}
		c = storage.MailboxCounts{Messages: uint32(n), Unseen: uint32(unseen), Deleted: uint32(deleted), Size: size}
		return nil
	})
	return c, err
}
