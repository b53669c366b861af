package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// migrations are applied in order, each once, in one transaction at Open;
// schema_version holds how many have been applied. Append, never edit a
// released one.
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
	// 2: the directory (storage.DirectoryStore). Each table keeps the
	// entry whole in data (directory_codec.go) and, as columns, what
	// lookups, filters and ranking use. Name keys are dirkey.Name of the
	// parts; the (family, given) and (given, family) pairs are indexed as
	// pairs so that "exact family name first" is an index seek.
	`
CREATE TABLE dir_professionals (
	id              TEXT NOT NULL PRIMARY KEY,
	source          TEXT NOT NULL,
	hash            INTEGER NOT NULL, -- uint64 bit pattern
	family_key      TEXT NOT NULL,
	given_key       TEXT NOT NULL,
	profession_code TEXT NOT NULL,
	specialty_code  TEXT NOT NULL,
	data            BLOB NOT NULL
) WITHOUT ROWID;
-- The pairs carry the codes, so that a name leg filtered by profession or
-- specialty reads the index alone. Codes alone: (code, id), appended in
-- import order, so cheap to maintain. The RPPS/ADELI number needs no index:
-- id is its type digit followed by it.
CREATE INDEX dir_professionals_name ON dir_professionals(family_key, given_key, profession_code, specialty_code);
CREATE INDEX dir_professionals_rev ON dir_professionals(given_key, family_key, profession_code, specialty_code);
CREATE INDEX dir_professionals_profession ON dir_professionals(profession_code);
CREATE INDEX dir_professionals_specialty ON dir_professionals(specialty_code);

-- An activity carries its professional's name keys (the triggers below
-- keep them), so that a search by place and name is one index range:
-- (postal_area, name pair) in both directions, postal_code last so that a
-- longer postcode prefix filters within the index. postal_area is the
-- postcode's first two characters (the département, or 20 for Corsica):
-- a postcode prefix of two or more characters is one area. It is a plain
-- column, not a generated one: SQLite never reads an index on a generated
-- column as covering.
CREATE TABLE dir_activities (
	professional TEXT NOT NULL,
	akey         TEXT NOT NULL,
	source       TEXT NOT NULL,
	hash         INTEGER NOT NULL,
	organisation TEXT NOT NULL,
	postal_code  TEXT NOT NULL,
	postal_area  TEXT NOT NULL, -- postalArea(postal_code)
	city_key     TEXT NOT NULL,
	family_key   TEXT NOT NULL DEFAULT '', -- the professional's, '' while absent
	given_key    TEXT NOT NULL DEFAULT '',
	data         BLOB NOT NULL,
	PRIMARY KEY (professional, akey)
) WITHOUT ROWID;
CREATE INDEX dir_activities_name ON dir_activities(postal_area, family_key, given_key, postal_code);
CREATE INDEX dir_activities_rev ON dir_activities(postal_area, given_key, family_key, postal_code);
CREATE INDEX dir_activities_city ON dir_activities(city_key);
-- ApplyDirectory writes a professional before its activities and an
-- activity takes the keys its professional has then; these cover the
-- rest (a professional renamed, or written after its activities, or
-- deleted: its remaining activities match no name).
CREATE TRIGGER dir_professionals_keys_insert AFTER INSERT ON dir_professionals BEGIN
	UPDATE dir_activities SET family_key = new.family_key, given_key = new.given_key
	WHERE professional = new.id AND (family_key != new.family_key OR given_key != new.given_key);
END;
CREATE TRIGGER dir_professionals_keys_update AFTER UPDATE OF family_key, given_key ON dir_professionals
WHEN old.family_key != new.family_key OR old.given_key != new.given_key BEGIN
	UPDATE dir_activities SET family_key = new.family_key, given_key = new.given_key WHERE professional = new.id;
END;
CREATE TRIGGER dir_professionals_keys_delete AFTER DELETE ON dir_professionals BEGIN
	UPDATE dir_activities SET family_key = '', given_key = '' WHERE professional = old.id;
END;

CREATE TABLE dir_organisations (
	id           TEXT NOT NULL PRIMARY KEY,
	source       TEXT NOT NULL,
	hash         INTEGER NOT NULL,
	finess       TEXT NOT NULL,
	legal_finess TEXT NOT NULL,
	siret        TEXT NOT NULL,
	siren        TEXT NOT NULL,
	name_key     TEXT NOT NULL,
	trade_key    TEXT NOT NULL,
	postal_code  TEXT NOT NULL,
	postal_area  TEXT NOT NULL, -- postalArea(postal_code)
	city_key     TEXT NOT NULL,
	data         BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX dir_organisations_finess ON dir_organisations(finess);
CREATE INDEX dir_organisations_legal_finess ON dir_organisations(legal_finess);
CREATE INDEX dir_organisations_siret ON dir_organisations(siret);
CREATE INDEX dir_organisations_siren ON dir_organisations(siren);
CREATE INDEX dir_organisations_name ON dir_organisations(name_key);
CREATE INDEX dir_organisations_trade ON dir_organisations(trade_key);
CREATE INDEX dir_organisations_place ON dir_organisations(postal_area, name_key, postal_code);
CREATE INDEX dir_organisations_place_trade ON dir_organisations(postal_area, trade_key, postal_code);
CREATE INDEX dir_organisations_city ON dir_organisations(city_key);

-- A local account and the national extraction may both list an address.
-- name_a/name_b: (family, given) of a named owner, else (organisation
-- name, ''); rev_a/rev_b: (given, family), or ('', '') without a given name.
-- The name pairs carry the codes and the owner (search legs read the index
-- alone); the place pairs lead with postal_area, as for the activities.
CREATE TABLE dir_mailboxes (
	address_key     TEXT NOT NULL, -- lower-case address
	source          TEXT NOT NULL,
	hash            INTEGER NOT NULL,
	professional    TEXT NOT NULL,
	organisation    TEXT NOT NULL,
	account         INTEGER NOT NULL,
	name_a          TEXT NOT NULL,
	name_b          TEXT NOT NULL,
	rev_a           TEXT NOT NULL,
	rev_b           TEXT NOT NULL,
	profession_code TEXT NOT NULL,
	specialty_code  TEXT NOT NULL,
	postal_code     TEXT NOT NULL,
	postal_area     TEXT NOT NULL, -- postalArea(postal_code)
	city_key        TEXT NOT NULL,
	data            BLOB NOT NULL,
	PRIMARY KEY (address_key, source)
) WITHOUT ROWID;
CREATE INDEX dir_mailboxes_professional ON dir_mailboxes(professional);
CREATE INDEX dir_mailboxes_organisation ON dir_mailboxes(organisation);
CREATE INDEX dir_mailboxes_name ON dir_mailboxes(name_a, name_b, profession_code, specialty_code, professional);
CREATE INDEX dir_mailboxes_rev ON dir_mailboxes(rev_a, rev_b, profession_code, specialty_code, professional);
CREATE INDEX dir_mailboxes_place ON dir_mailboxes(postal_area, name_a, name_b, postal_code, profession_code, specialty_code, professional);
CREATE INDEX dir_mailboxes_place_rev ON dir_mailboxes(postal_area, rev_a, rev_b, postal_code, profession_code, specialty_code, professional);
CREATE INDEX dir_mailboxes_city ON dir_mailboxes(city_key);
CREATE INDEX dir_mailboxes_account ON dir_mailboxes(account) WHERE account != 0;

CREATE TABLE dir_certificates (
	address_key TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	source      TEXT NOT NULL,
	not_before  INTEGER NOT NULL, -- unix nanoseconds
	not_after   INTEGER NOT NULL,
	added       INTEGER NOT NULL,
	address     TEXT NOT NULL,
	subject     TEXT NOT NULL,
	der         BLOB NOT NULL,
	PRIMARY KEY (address_key, fingerprint)
) WITHOUT ROWID;

CREATE TABLE dir_trust (
	domain       TEXT NOT NULL, -- lower-case
	operator_key TEXT NOT NULL,
	source       TEXT NOT NULL,
	hash         INTEGER NOT NULL,
	updated      INTEGER NOT NULL,
	data         BLOB NOT NULL,
	PRIMARY KEY (domain, operator_key)
) WITHOUT ROWID;
CREATE INDEX dir_trust_operator ON dir_trust(operator_key);

-- Search indexes dropped for a bulk import (directory_bulk.go), with the
-- statement that recreates each.
CREATE TABLE dir_deferred_indexes (
	name TEXT PRIMARY KEY,
	sql  TEXT NOT NULL
);
`,
	// 3: the outbound queue and delivery status (storage.QueueStore).
	// Times are unix nanoseconds, 0 for none. An entry's raw bytes live
	// in their own table, read only by QueueMessage, so that listing and
	// leasing never walk them; recipients and raw bytes go with their
	// entry (ON DELETE CASCADE). IF NOT EXISTS: a test that rewinds
	// schema_version to replay an earlier migration leaves these in place.
	`
CREATE TABLE IF NOT EXISTS queue_entries (
	id          INTEGER PRIMARY KEY,
	account     INTEGER NOT NULL, -- 0: mail Relais itself sends
	sender      TEXT NOT NULL,
	message_id  TEXT NOT NULL,
	ret         TEXT NOT NULL,
	envid       TEXT NOT NULL,
	size        INTEGER NOT NULL,
	created     INTEGER NOT NULL,
	expires     INTEGER NOT NULL,
	lease_until INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS queue_messages (
	entry INTEGER PRIMARY KEY REFERENCES queue_entries(id) ON DELETE CASCADE,
	raw   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_recipients (
	entry          INTEGER NOT NULL REFERENCES queue_entries(id) ON DELETE CASCADE,
	seq            INTEGER NOT NULL, -- position in the envelope
	address        TEXT NOT NULL,    -- canonical, unique within an entry
	domain         TEXT NOT NULL,
	notify         TEXT NOT NULL,    -- comma-separated NOTIFY keywords, '' for the default
	orcpt          TEXT NOT NULL,
	state          TEXT NOT NULL,    -- pending, delivered, failed
	attempts       INTEGER NOT NULL DEFAULT 0,
	next_attempt   INTEGER NOT NULL,
	last_attempt   INTEGER NOT NULL DEFAULT 0,
	last_error     TEXT NOT NULL DEFAULT '',
	delay_notified INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (entry, seq)
) WITHOUT ROWID;
-- LeaseDue: pending recipients by due time (the key carries entry).
CREATE INDEX IF NOT EXISTS queue_recipients_due ON queue_recipients(next_attempt) WHERE state = 'pending';

-- What a sender sees of each recipient of a message; the key serves
-- DeliveryStatuses (account, message_id) in recipient order.
CREATE TABLE IF NOT EXISTS delivery_status (
	account    INTEGER NOT NULL,
	message_id TEXT NOT NULL,
	recipient  TEXT NOT NULL,
	state      TEXT NOT NULL,
	detail     TEXT NOT NULL,
	updated    INTEGER NOT NULL,
	PRIMARY KEY (account, message_id, recipient)
) WITHOUT ROWID;
`,
	// 4: structured documents of delivered messages, API tokens, and the
	// documents sent through the documents API (storage.DocumentStore).
	// Times are unix nanoseconds, 0 for none. metadata comes last so that
	// listing never walks its overflow pages. No foreign key to mailboxes:
	// a record outlives its copy's mailbox (the history of what arrived).
	// IF NOT EXISTS, as migration 3.
	`
CREATE TABLE IF NOT EXISTS documents (
	id           INTEGER PRIMARY KEY,
	account      INTEGER NOT NULL,
	mailbox      INTEGER NOT NULL,
	uid          INTEGER NOT NULL,
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
	valid        INTEGER NOT NULL,
	problems     TEXT NOT NULL,
	received     INTEGER NOT NULL,
	metadata     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_copy ON documents(account, mailbox, uid);
-- DocumentsByPatient: newest first is a backwards walk of the index.
CREATE INDEX IF NOT EXISTS documents_patient ON documents(account, patient_ins, received, id) WHERE patient_ins != '';

CREATE TABLE IF NOT EXISTS api_tokens (
	id        INTEGER PRIMARY KEY,
	account   INTEGER NOT NULL,
	name      TEXT NOT NULL,
	hash      TEXT NOT NULL UNIQUE, -- hex SHA-256 of the secret
	created   INTEGER NOT NULL,
	expires   INTEGER NOT NULL, -- 0: never
	last_used INTEGER NOT NULL,
	revoked   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS sent_documents (
	id         TEXT NOT NULL PRIMARY KEY, -- public, opaque
	account    INTEGER NOT NULL,
	message_id TEXT NOT NULL,
	recipients TEXT NOT NULL, -- JSON array of addresses
	created    INTEGER NOT NULL
) WITHOUT ROWID;
`,
	// 5: organisations written during a bulk directory import
	// (directory_bulk.go). They arrive in file order, which is random
	// order for dir_organisations' key: inserted there, each batch would
	// rewrite most pages of the table. They are appended here instead
	// and merged into dir_organisations by one sorted insert when the
	// bulk import ends (or at the next Open, after a crash). Same
	// columns as dir_organisations; seq is the arrival order.
	`
CREATE TABLE IF NOT EXISTS dir_organisations_pending (
	seq          INTEGER PRIMARY KEY,
	id           TEXT NOT NULL,
	source       TEXT NOT NULL,
	hash         INTEGER NOT NULL,
	finess       TEXT NOT NULL,
	legal_finess TEXT NOT NULL,
	siret        TEXT NOT NULL,
	siren        TEXT NOT NULL,
	name_key     TEXT NOT NULL,
	trade_key    TEXT NOT NULL,
	postal_code  TEXT NOT NULL,
	postal_area  TEXT NOT NULL,
	city_key     TEXT NOT NULL,
	data         BLOB NOT NULL
);
`,
	// 6: the chat (storage.ChatStore, chat.go) and the audit log
	// (storage.AuditStore). A room's last_seq is its sequence counter,
	// bumped in the transaction that adds an event. Members carry their
	// read marker. A message row keeps its current body (orig_body holds
	// the original once it is edited); edit and delete events are rows of
	// their own pointing at it (target). chat_fts indexes the current body
	// of each message, folded by dirkey.Name, contentless (rowid = the
	// message row's id). The audit log refuses updates and deletions.
	// IF NOT EXISTS, as migration 3.
	`
CREATE TABLE IF NOT EXISTS chat_rooms (
	id           INTEGER PRIMARY KEY,
	kind         TEXT NOT NULL,
	name         TEXT NOT NULL,
	patient_ins  TEXT NOT NULL,
	patient_name TEXT NOT NULL,
	created      INTEGER NOT NULL,
	created_by   INTEGER NOT NULL,
	last_seq     INTEGER NOT NULL,
	last_active  INTEGER NOT NULL,
	direct_key   TEXT UNIQUE -- "low:high" account ids for direct rooms, NULL otherwise
);
CREATE INDEX IF NOT EXISTS chat_rooms_ins ON chat_rooms(patient_ins) WHERE patient_ins != '';

CREATE TABLE IF NOT EXISTS chat_members (
	room     INTEGER NOT NULL REFERENCES chat_rooms(id),
	account  INTEGER NOT NULL,
	role     TEXT NOT NULL,
	added_by INTEGER NOT NULL,
	added    INTEGER NOT NULL,
	read_seq INTEGER NOT NULL,
	read_at  INTEGER NOT NULL,
	PRIMARY KEY (room, account)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chat_members_account ON chat_members(account, room);

CREATE TABLE IF NOT EXISTS chat_messages (
	id          INTEGER PRIMARY KEY,
	room        INTEGER NOT NULL REFERENCES chat_rooms(id),
	seq         INTEGER NOT NULL,
	client_id   TEXT NOT NULL,
	sender      INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	reply_to    INTEGER NOT NULL,
	target      INTEGER NOT NULL,
	mentions    TEXT NOT NULL, -- JSON array, '' when none
	attachments TEXT NOT NULL, -- JSON array, '' when none
	created     INTEGER NOT NULL,
	edited      INTEGER NOT NULL,
	deleted     INTEGER NOT NULL,
	body        TEXT NOT NULL,
	orig_body   TEXT, -- the body as first posted, once edited
	UNIQUE (room, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS chat_messages_client ON chat_messages(room, sender, client_id) WHERE client_id != '';
CREATE INDEX IF NOT EXISTS chat_messages_target ON chat_messages(room, target, seq) WHERE target != 0;
CREATE VIRTUAL TABLE IF NOT EXISTS chat_fts USING fts5(body, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');

CREATE TABLE IF NOT EXISTS chat_notifications (
	id       INTEGER PRIMARY KEY,
	account  INTEGER NOT NULL,
	kind     TEXT NOT NULL,
	room     INTEGER NOT NULL,
	seq      INTEGER NOT NULL,
	document INTEGER NOT NULL,
	text     TEXT NOT NULL,
	created  INTEGER NOT NULL,
	read     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_notifications_account ON chat_notifications(account, id);
CREATE INDEX IF NOT EXISTS chat_notifications_unread ON chat_notifications(account, id) WHERE read = 0;

CREATE TABLE IF NOT EXISTS audit_log (
	id      INTEGER PRIMARY KEY,
	time    INTEGER NOT NULL,
	account INTEGER NOT NULL,
	action  TEXT NOT NULL,
	object  TEXT NOT NULL,
	outcome TEXT NOT NULL,
	detail  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_account ON audit_log(account, id);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log(time);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
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
			if i == 1 {
				// Accounts created before the directory become its local entries.
				if err := backfillLocalMailboxes(ctx, tx); err != nil {
					return fmt.Errorf("migration %d: %w", i+1, err)
				}
			}
			s.log.Info("sqlite schema migrated", "version", i+1)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
			return err
		}
		version = len(migrations)
		// A bulk import that never finished left search indexes out.
		return rebuildDeferredIndexes(ctx, tx, s.log)
	})
	return version, err
}
