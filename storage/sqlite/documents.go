package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// Structured documents found in delivered messages, API tokens and the
// documents sent through the documents API (storage.DocumentStore, tables
// in migration 4).

var _ storage.DocumentStore = (*Store)(nil)

// MaxDocumentMetadata bounds DocumentRecord.Metadata (the contract's 1 MiB);
// larger is storage.ErrTooLarge.
const MaxDocumentMetadata = storage.MaxDocumentMetadata

// The bounds on a record's text fields (storage.PrepareDocument), under the
// names this package's tests use.
const (
	maxDocText     = storage.MaxDocumentText
	maxDocProblems = storage.MaxDocumentProblems
)

// AddDocuments records the documents of delivered message copies in one
// transaction and publishes a ChangeDocumentReceived on each owner's feed
// after the commit. Each copy must exist in its account's mailbox
// (ErrNotFound otherwise, and nothing is recorded).
func (s *Store) AddDocuments(ctx context.Context, docs []storage.DocumentRecord) ([]storage.DocumentID, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	prepared, err := storage.PrepareDocuments(docs, time.Now())
	if err != nil {
		return nil, fmt.Errorf("sqlite: add documents: %w", err)
	}
	var ids []storage.DocumentID
	err = s.write(ctx, "add documents", func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		ids = ids[:0]
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO documents (account, mailbox, uid, message_id, recipient,
			patient_ins, ins_kind, patient_name, type_code, type_display, title, author_id, author_name, custodian,
			valid, problems, received, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, d := range prepared {
			// The copy must be the account's: a record never points into
			// another account's mailbox.
			if _, err := mailboxByID(ctx, tx, d.Account, d.Mailbox); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE mailbox = ? AND uid = ?`, d.Mailbox, d.UID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("message %d in mailbox %d: %w", d.UID, d.Mailbox, storage.ErrNotFound)
			}
			res, err := stmt.ExecContext(ctx, d.Account, d.Mailbox, d.UID, d.MessageID, d.Recipient,
				d.PatientINS, d.INSKind, d.PatientName, d.TypeCode, d.TypeDisplay, d.Title, d.AuthorID, d.AuthorName,
				d.Custodian, boolInt(d.Valid), d.Problems, unixNano(d.Received), d.Metadata)
			if err != nil {
				return err
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			ids = append(ids, storage.DocumentID(id))
			ch.add(d.Account, storage.DocumentChange(d, storage.DocumentID(id)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

const documentColumns = `id, account, mailbox, uid, message_id, recipient, patient_ins, ins_kind, patient_name,
	type_code, type_display, title, author_id, author_name, custodian, valid, problems, received, metadata`

func scanDocument(row interface{ Scan(...any) error }) (storage.DocumentRecord, error) {
	var r storage.DocumentRow
	err := row.Scan(r.Dest()...)
	return r.Record(), err
}

func queryDocuments(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]storage.DocumentRecord, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []storage.DocumentRecord{}
	for rows.Next() {
		d, err := scanDocument(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Documents returns the documents of one message copy, in id order (empty
// when the copy has none; ErrNotFound when the mailbox is not the
// account's).
func (s *Store) Documents(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uid uint32) ([]storage.DocumentRecord, error) {
	var out []storage.DocumentRecord
	err := s.read(ctx, "documents", func(tx *sql.Tx) error {
		if _, err := mailboxByID(ctx, tx, acct, mbox); err != nil {
			return err
		}
		var err error
		out, err = queryDocuments(ctx, tx, `SELECT `+documentColumns+` FROM documents
			WHERE account = ? AND mailbox = ? AND uid = ? ORDER BY id`, acct, mbox, uid)
		return err
	})
	return out, err
}

// Document returns one document of the account.
func (s *Store) Document(ctx context.Context, acct storage.AccountID, id storage.DocumentID) (storage.DocumentRecord, error) {
	var d storage.DocumentRecord
	err := s.read(ctx, "document", func(tx *sql.Tx) error {
		var err error
		d, err = scanDocument(tx.QueryRowContext(ctx, `SELECT `+documentColumns+` FROM documents WHERE account = ? AND id = ?`, acct, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("document %d: %w", id, storage.ErrNotFound)
		}
		return err
	})
	return d, err
}

// DocumentsByPatient returns the account's documents about one INS, newest
// (Received) first, at most limit. An empty INS (documents without one) or
// a limit below 1 is ErrInvalid.
func (s *Store) DocumentsByPatient(ctx context.Context, acct storage.AccountID, ins string, limit int) ([]storage.DocumentRecord, error) {
	if err := storage.CheckPatientQuery(ins, limit); err != nil {
		return nil, fmt.Errorf("sqlite: documents by patient: %w", err)
	}
	var out []storage.DocumentRecord
	err := s.read(ctx, "documents by patient", func(tx *sql.Tx) error {
		var err error
		out, err = queryDocuments(ctx, tx, `SELECT `+documentColumns+` FROM documents
			WHERE account = ? AND patient_ins = ? AND patient_ins != '' ORDER BY received DESC, id DESC LIMIT ?`, acct, ins, limit)
		return err
	})
	return out, err
}

// CreateAPIToken stores a token; ID and Created are assigned. The account
// must exist (ErrNotFound), the hash be a lower-case hex SHA-256
// (ErrInvalid) not stored yet (ErrExists).
func (s *Store) CreateAPIToken(ctx context.Context, t storage.APIToken) (storage.APIToken, error) {
	if err := storage.CheckAPIToken(t); err != nil {
		return t, fmt.Errorf("sqlite: create api token: %w", err)
	}
	t.Created = time.Now().UTC()
	t.LastUsed = time.Time{}
	err := s.write(ctx, "create api token", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		err := tx.QueryRowContext(ctx, `SELECT address FROM accounts WHERE id = ?`, t.Account).Scan(&t.Address)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("account %d: %w", t.Account, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM api_tokens WHERE hash = ?`, t.Hash).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("api token hash: %w", storage.ErrExists)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (account, name, hash, created, expires, last_used, revoked)
			VALUES (?, ?, ?, ?, ?, 0, ?)`, t.Account, t.Name, t.Hash, unixNano(t.Created), nsOrZero(t.Expires), boolInt(t.Revoked))
		if err != nil {
			return err
		}
		t.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return storage.APIToken{}, err
	}
	return t, nil
}

// tokenSelect reads tokens with their account's address.
const tokenSelect = `SELECT t.id, t.account, a.address, t.name, t.hash, t.created, t.expires, t.last_used, t.revoked
	FROM api_tokens t JOIN accounts a ON a.id = t.account`

func scanToken(row interface{ Scan(...any) error }) (storage.APIToken, error) {
	var r storage.APITokenRow
	err := row.Scan(r.Dest()...)
	return r.Token(), err
}

// APITokenByHash finds a token neither revoked nor expired at now
// (ErrNotFound otherwise) and records its use (at most once per
// storage.TokenUseGranularity, to spare the disk).
func (s *Store) APITokenByHash(ctx context.Context, hash string, now time.Time) (storage.APIToken, error) {
	notFound := fmt.Errorf("sqlite: api token: %w", storage.ErrNotFound)
	if !storage.ValidTokenHash(hash) {
		return storage.APIToken{}, notFound
	}
	var t storage.APIToken
	err := s.read(ctx, "api token", func(tx *sql.Tx) error {
		var err error
		t, err = scanToken(tx.QueryRowContext(ctx, tokenSelect+` WHERE t.hash = ?`, hash))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return storage.APIToken{}, notFound
	}
	if err != nil {
		return storage.APIToken{}, err
	}
	if !storage.TokenUsable(t, now) {
		return storage.APIToken{}, notFound
	}
	if storage.TokenUseDue(t, now) {
		err := s.write(ctx, "api token use", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
			// Revoked meanwhile: the token is refused.
			res, err := tx.ExecContext(ctx, `UPDATE api_tokens SET last_used = max(last_used, ?) WHERE id = ? AND revoked = 0`, unixNano(now), t.ID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return notFound
			}
			return nil
		})
		if err != nil {
			return storage.APIToken{}, err
		}
		storage.TokenUsed(&t, now)
	}
	return t, nil
}

// APITokens lists every token, by id.
func (s *Store) APITokens(ctx context.Context) ([]storage.APIToken, error) {
	var out []storage.APIToken
	err := s.read(ctx, "api tokens", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, tokenSelect+` ORDER BY t.id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanToken(rows)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	return out, err
}

// RevokeAPIToken revokes a token for good (revoking twice is no error).
func (s *Store) RevokeAPIToken(ctx context.Context, id int64) error {
	return s.write(ctx, "revoke api token", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked = 1 WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("api token %d: %w", id, storage.ErrNotFound)
		}
		return nil
	})
}

// AddSentDocument records a document sent through the API.
func (s *Store) AddSentDocument(ctx context.Context, d storage.SentDocument) error {
	d, rcpts, err := storage.PrepareSentDocument(d, time.Now())
	if err != nil {
		return fmt.Errorf("sqlite: add sent document: %w", err)
	}
	return s.write(ctx, "add sent document", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		if err := accountExists(ctx, tx, d.Account); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sent_documents WHERE id = ?`, d.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("sent document %q: %w", d.ID, storage.ErrExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sent_documents (id, account, message_id, recipients, created) VALUES (?, ?, ?, ?, ?)`,
			d.ID, d.Account, d.MessageID, rcpts, unixNano(d.Created))
		return err
	})
}

// SentDocument reads a sent document back for its account only.
func (s *Store) SentDocument(ctx context.Context, acct storage.AccountID, id string) (storage.SentDocument, error) {
	d := storage.SentDocument{ID: id, Account: acct}
	err := s.read(ctx, "sent document", func(tx *sql.Tx) error {
		var rcpts string
		var created int64
		err := tx.QueryRowContext(ctx, `SELECT message_id, recipients, created FROM sent_documents WHERE id = ? AND account = ?`,
			id, acct).Scan(&d.MessageID, &rcpts, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sent document: %w", storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		return storage.DecodeSentDocument(&d, rcpts, created)
	})
	if err != nil {
		return storage.SentDocument{}, err
	}
	return d, nil
}
