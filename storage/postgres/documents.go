package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/relais-mssante/relais/storage"
)

// Structured documents found in delivered messages, API tokens and the
// documents sent through the documents API (storage.DocumentStore).

var _ storage.DocumentStore = (*Store)(nil)

// schemaDocuments is migration 4. Tables, columns and encodings mirror
// SQLite's migration 4 (times are BIGINT unix nanoseconds, 0 for none;
// sent_documents.recipients is a JSON array as TEXT); documents.valid and
// api_tokens.revoked are BOOLEAN (0/1 INTEGER in SQLite). No foreign key to
// mailboxes: a record outlives its copy's mailbox (the history of what
// arrived). metadata comes last so that listing reads it only when asked.
const schemaDocuments = `
CREATE TABLE documents (
	id           BIGSERIAL PRIMARY KEY,
	account      BIGINT NOT NULL,
	mailbox      BIGINT NOT NULL,
	uid          BIGINT NOT NULL,
	message_id   TEXT NOT NULL,
	recipient    TEXT NOT NULL,
	patient_ins  TEXT NOT NULL,
	ins_kind     TEXT NOT NULL,
	patient_name TEXT NOT NULL,
	type_code    TEXT NOT NULL,
	type_display TEXT NOT NULL,
	title        TEXT NOT NULL,
	author_id    TEXT NOT NULL,
	author_name  TEXT NOT NULL,
	custodian    TEXT NOT NULL,
	valid        BOOLEAN NOT NULL,
	problems     TEXT NOT NULL,
	received     BIGINT NOT NULL,
	metadata     BYTEA NOT NULL
);
CREATE INDEX documents_copy ON documents(account, mailbox, uid);
-- DocumentsByPatient: newest first is a backwards walk of the index.
CREATE INDEX documents_patient ON documents(account, patient_ins, received, id) WHERE patient_ins <> '';

CREATE TABLE api_tokens (
	id        BIGSERIAL PRIMARY KEY,
	account   BIGINT NOT NULL,
	name      TEXT NOT NULL,
	hash      TEXT NOT NULL UNIQUE, -- hex SHA-256 of the secret
	created   BIGINT NOT NULL,
	expires   BIGINT NOT NULL, -- 0: never
	last_used BIGINT NOT NULL,
	revoked   BOOLEAN NOT NULL
);

CREATE TABLE sent_documents (
	id         TEXT PRIMARY KEY, -- public, opaque
	account    BIGINT NOT NULL,
	message_id TEXT NOT NULL,
	recipients TEXT NOT NULL, -- JSON array of addresses
	created    BIGINT NOT NULL
);
`

// insertDocument stores one record if its copy is in its account's mailbox,
// and returns no row otherwise.
const insertDocument = `INSERT INTO documents (account, mailbox, uid, message_id, recipient, patient_ins, ins_kind,
		patient_name, type_code, type_display, title, author_id, author_name, custodian, valid, problems, received, metadata)
	SELECT $1::bigint, $2::bigint, $3::bigint, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text, $10::text,
		$11::text, $12::text, $13::text, $14::text, $15::boolean, $16::text, $17::bigint, $18::bytea
	WHERE EXISTS (SELECT 1 FROM mailboxes b JOIN messages m ON m.mailbox = b.id
		WHERE b.id = $2 AND b.account = $1 AND m.uid = $3)
	RETURNING id`

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
		return nil, fmt.Errorf("postgres: add documents: %w", err)
	}
	var ids []storage.DocumentID
	err = s.write(ctx, "add documents", func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		ids = ids[:0]
		b := &pgx.Batch{}
		for _, d := range prepared {
			b.Queue(insertDocument, int64(d.Account), int64(d.Mailbox), int64(d.UID), d.MessageID, d.Recipient,
				d.PatientINS, d.INSKind, d.PatientName, d.TypeCode, d.TypeDisplay, d.Title, d.AuthorID, d.AuthorName,
				d.Custodian, d.Valid, d.Problems, d.Received.UnixNano(), d.Metadata)
		}
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		for _, d := range prepared {
			var id int64
			err := br.QueryRow().Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				// The copy must be the account's: a record never points
				// into another account's mailbox.
				return fmt.Errorf("message %d in mailbox %d of account %d: %w", d.UID, d.Mailbox, d.Account, storage.ErrNotFound)
			}
			if err != nil {
				return err
			}
			ids = append(ids, storage.DocumentID(id))
			ch.add(d.Account, storage.DocumentChange(d, storage.DocumentID(id)))
		}
		return br.Close()
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

const documentColumns = `id, account, mailbox, uid, message_id, recipient, patient_ins, ins_kind, patient_name,
	type_code, type_display, title, author_id, author_name, custodian, valid, problems, received, metadata`

// scanDocuments reads documentColumns rows.
func scanDocuments(rows pgx.Rows) ([]storage.DocumentRecord, error) {
	out := []storage.DocumentRecord{}
	var r storage.DocumentRow
	_, err := pgx.ForEachRow(rows, r.Dest(), func() error {
		out = append(out, r.Record())
		r.Metadata = nil // the next row gets its own bytes
		return nil
	})
	return out, err
}

// Documents returns the documents of one message copy, in id order (empty
// when the copy has none; ErrNotFound when the mailbox is not the
// account's).
func (s *Store) Documents(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uid uint32) ([]storage.DocumentRecord, error) {
	var out []storage.DocumentRecord
	err := s.read(ctx, "documents", func(tx pgx.Tx) error {
		if _, err := mailboxByID(ctx, tx, acct, mbox, false); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+documentColumns+` FROM documents
			WHERE account = $1 AND mailbox = $2 AND uid = $3 ORDER BY id`, acct, mbox, int64(uid))
		if err != nil {
			return err
		}
		out, err = scanDocuments(rows)
		return err
	})
	return out, err
}

// Document returns one document of the account.
func (s *Store) Document(ctx context.Context, acct storage.AccountID, id storage.DocumentID) (storage.DocumentRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+documentColumns+` FROM documents WHERE account = $1 AND id = $2`, acct, id)
	if err != nil {
		return storage.DocumentRecord{}, fmt.Errorf("postgres: document: %w", err)
	}
	ds, err := scanDocuments(rows)
	if err != nil {
		return storage.DocumentRecord{}, fmt.Errorf("postgres: document: %w", err)
	}
	if len(ds) == 0 {
		return storage.DocumentRecord{}, fmt.Errorf("postgres: document %d: %w", id, storage.ErrNotFound)
	}
	return ds[0], nil
}

// DocumentsByPatient returns the account's documents about one INS, newest
// (Received) first, at most limit. An empty INS (documents without one) or
// a limit below 1 is ErrInvalid.
func (s *Store) DocumentsByPatient(ctx context.Context, acct storage.AccountID, ins string, limit int) ([]storage.DocumentRecord, error) {
	if err := storage.CheckPatientQuery(ins, limit); err != nil {
		return nil, fmt.Errorf("postgres: documents by patient: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+documentColumns+` FROM documents
		WHERE account = $1 AND patient_ins = $2 AND patient_ins <> '' ORDER BY received DESC, id DESC LIMIT $3`, acct, ins, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: documents by patient: %w", err)
	}
	out, err := scanDocuments(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: documents by patient: %w", err)
	}
	return out, nil
}

// CreateAPIToken stores a token; ID and Created are assigned. The account
// must exist (ErrNotFound), the hash be a lower-case hex SHA-256
// (ErrInvalid) not stored yet (ErrExists).
func (s *Store) CreateAPIToken(ctx context.Context, t storage.APIToken) (storage.APIToken, error) {
	if err := storage.CheckAPIToken(t); err != nil {
		return t, fmt.Errorf("postgres: create api token: %w", err)
	}
	t.Created = time.Now().UTC()
	t.LastUsed = time.Time{}
	err := s.write(ctx, "create api token", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		err := tx.QueryRow(ctx, `SELECT address FROM accounts WHERE id = $1`, t.Account).Scan(&t.Address)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("account %d: %w", t.Account, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO api_tokens (account, name, hash, created, expires, last_used, revoked)
			VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (hash) DO NOTHING RETURNING id`,
			t.Account, t.Name, t.Hash, t.Created.UnixNano(), storage.NanosOrZero(t.Expires), t.Revoked).Scan(&t.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("api token hash: %w", storage.ErrExists)
		}
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

func scanTokens(rows pgx.Rows) ([]storage.APIToken, error) {
	var out []storage.APIToken
	var r storage.APITokenRow
	_, err := pgx.ForEachRow(rows, r.Dest(), func() error {
		out = append(out, r.Token())
		return nil
	})
	return out, err
}

// APITokenByHash finds a token neither revoked nor expired at now
// (ErrNotFound otherwise) and records its use (at most once per
// storage.TokenUseGranularity, to spare the writes).
func (s *Store) APITokenByHash(ctx context.Context, hash string, now time.Time) (storage.APIToken, error) {
	notFound := fmt.Errorf("postgres: api token: %w", storage.ErrNotFound)
	if !storage.ValidTokenHash(hash) {
		return storage.APIToken{}, notFound
	}
	rows, err := s.pool.Query(ctx, tokenSelect+` WHERE t.hash = $1`, hash)
	if err != nil {
		return storage.APIToken{}, fmt.Errorf("postgres: api token: %w", err)
	}
	ts, err := scanTokens(rows)
	if err != nil {
		return storage.APIToken{}, fmt.Errorf("postgres: api token: %w", err)
	}
	if len(ts) == 0 {
		return storage.APIToken{}, notFound
	}
	t := ts[0]
	if !storage.TokenUsable(t, now) {
		return storage.APIToken{}, notFound
	}
	if storage.TokenUseDue(t, now) {
		err := s.write(ctx, "api token use", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
			// Revoked meanwhile: the token is refused.
			tag, err := tx.Exec(ctx, `UPDATE api_tokens SET last_used = greatest(last_used, $1) WHERE id = $2 AND NOT revoked`,
				now.UnixNano(), t.ID)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
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
	rows, err := s.pool.Query(ctx, tokenSelect+` ORDER BY t.id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: api tokens: %w", err)
	}
	out, err := scanTokens(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: api tokens: %w", err)
	}
	return out, nil
}

// RevokeAPIToken revokes a token for good (revoking twice is no error).
func (s *Store) RevokeAPIToken(ctx context.Context, id int64) error {
	return s.write(ctx, "revoke api token", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		tag, err := tx.Exec(ctx, `UPDATE api_tokens SET revoked = true WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("api token %d: %w", id, storage.ErrNotFound)
		}
		return nil
	})
}

// AddSentDocument records a document sent through the API.
func (s *Store) AddSentDocument(ctx context.Context, d storage.SentDocument) error {
	d, rcpts, err := storage.PrepareSentDocument(d, time.Now())
	if err != nil {
		return fmt.Errorf("postgres: add sent document: %w", err)
	}
	return s.write(ctx, "add sent document", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		if err := accountKnown(ctx, tx, d.Account); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO sent_documents (id, account, message_id, recipients, created)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
			d.ID, d.Account, d.MessageID, rcpts, d.Created.UnixNano())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("sent document %q: %w", d.ID, storage.ErrExists)
		}
		return nil
	})
}

// SentDocument reads a sent document back for its account only.
func (s *Store) SentDocument(ctx context.Context, acct storage.AccountID, id string) (storage.SentDocument, error) {
	d := storage.SentDocument{ID: id, Account: acct}
	var rcpts string
	var created int64
	err := s.pool.QueryRow(ctx, `SELECT message_id, recipients, created FROM sent_documents WHERE id = $1 AND account = $2`,
		id, acct).Scan(&d.MessageID, &rcpts, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.SentDocument{}, fmt.Errorf("postgres: sent document: %w", storage.ErrNotFound)
	}
	if err != nil {
		return storage.SentDocument{}, fmt.Errorf("postgres: sent document: %w", err)
	}
	if err := storage.DecodeSentDocument(&d, rcpts, created); err != nil {
		return storage.SentDocument{}, fmt.Errorf("postgres: sent document: %w", err)
	}
	return d, nil
}
