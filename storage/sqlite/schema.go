package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// migrations are applied in order, each once, in one transaction at Open;
// schema_version holds how many have been applied. Append, never edit.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
CREATE TABLE domains (
	name    TEXT PRIMARY KEY,
	created INTEGER NOT NULL
);
CREATE TABLE accounts (
	id            INTEGER PRIMARY KEY,
	address       TEXT NOT NULL,
	addr_key      TEXT NOT NULL UNIQUE, -- lower-case address
	domain        TEXT NOT NULL REFERENCES domains(name),
	name          TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	created       INTEGER NOT NULL
);
CREATE TABLE mailboxes (
	id            INTEGER PRIMARY KEY,
	account       INTEGER NOT NULL REFERENCES accounts(id),
	name          TEXT NOT NULL,
	special_use   TEXT NOT NULL DEFAULT '',
	uidvalidity   INTEGER NOT NULL,
	uidnext       INTEGER NOT NULL,
	highestmodseq INTEGER NOT NULL,
	subscribed    INTEGER NOT NULL DEFAULT 0,
	UNIQUE (account, name)
);
-- Column order matters: raw comes last so that reading the summary never
-- walks the raw bytes' overflow pages.
CREATE TABLE blobs (
	id            INTEGER PRIMARY KEY,
	size          INTEGER NOT NULL,
	summary       BLOB NOT NULL,
	search_header TEXT NOT NULL,
	search_body   TEXT NOT NULL,
	raw           BLOB NOT NULL
);
CREATE TABLE messages (
	mailbox      INTEGER NOT NULL REFERENCES mailboxes(id),
	uid          INTEGER NOT NULL,
	modseq       INTEGER NOT NULL,
	flags        TEXT NOT NULL, -- space-separated
	seen         INTEGER NOT NULL,
	deleted      INTEGER NOT NULL,
	internaldate INTEGER NOT NULL, -- unix nanoseconds
	size         INTEGER NOT NULL,
	blob         INTEGER NOT NULL REFERENCES blobs(id),
	PRIMARY KEY (mailbox, uid)
) WITHOUT ROWID;
CREATE INDEX messages_blob ON messages(blob);
`,
}

func (s *Store) migrate(ctx context.Context) (int, error) {
	var version int
	err := s.write(ctx, "migrate", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
				return err
			}
			version = 0
		case err != nil:
			return err
		}
		if version > len(migrations) {
			return fmt.Errorf("database schema %d is newer than this binary (%d)", version, len(migrations))
		}
		for i := version; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
			if i == 0 {
				// RFC 9051 2.3.1.1: UIDVALIDITY values start from the clock
				// and only ever grow, so no name sees one twice.
				if _, err := tx.ExecContext(ctx, `INSERT INTO counters (name, value) VALUES ('uidvalidity', ?)`, time.Now().Unix()); err != nil {
					return err
				}
			}
			s.log.Info("sqlite schema migrated", "version", i+1)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
			return err
		}
		version = len(migrations)
		return nil
	})
	return version, err
}
