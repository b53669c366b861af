package postgres

// schemaMail is migration 1: domains, accounts, mailboxes and messages.
// Messages are stored once per delivery (blobs) and referenced by one row
// per mailbox copy (messages), as in the SQLite store. Tables, columns and
// value encodings mirror SQLite's, so that relais migrate copies table to
// table; the differences are listed here.
//
//   - Names and keys that are sorted (domains.name, accounts.addr_key,
//     mailboxes.name) use COLLATE "C": byte order, as SQLite's BINARY, so
//     that Mailboxes and Accounts list in the same order on both stores.
//   - counters holds the same 'uidvalidity' row as SQLite's, but created
//     by the first mailbox rather than by the migration, so that a fresh
//     schema holds no rows (relais migrate copies into empty tables).
//   - 0/1 INTEGER flags (mailboxes.subscribed, messages.seen,
//     messages.deleted) are BOOLEAN.
const schemaMail = `
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value BIGINT NOT NULL
);
CREATE TABLE domains (
	name    TEXT COLLATE "C" PRIMARY KEY,
	created BIGINT NOT NULL -- unix nanoseconds, as in SQLite
);
CREATE TABLE accounts (
	id            BIGSERIAL PRIMARY KEY,
	address       TEXT NOT NULL,
	addr_key      TEXT COLLATE "C" NOT NULL UNIQUE, -- lower-case address
	domain        TEXT COLLATE "C" NOT NULL REFERENCES domains(name),
	name          TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	created       BIGINT NOT NULL
);
CREATE TABLE mailboxes (
	id            BIGSERIAL PRIMARY KEY,
	account       BIGINT NOT NULL REFERENCES accounts(id),
	name          TEXT COLLATE "C" NOT NULL,
	special_use   TEXT NOT NULL DEFAULT '',
	uidvalidity   BIGINT NOT NULL,
	uidnext       BIGINT NOT NULL,
	highestmodseq BIGINT NOT NULL,
	subscribed    BOOLEAN NOT NULL DEFAULT false,
	UNIQUE (account, name)
);
CREATE TABLE blobs (
	id            BIGSERIAL PRIMARY KEY,
	size          BIGINT NOT NULL,
	summary       BYTEA NOT NULL,
	search_header TEXT NOT NULL,
	search_body   TEXT NOT NULL,
	raw           BYTEA NOT NULL
);
CREATE TABLE messages (
	mailbox      BIGINT NOT NULL REFERENCES mailboxes(id),
	uid          BIGINT NOT NULL,
	modseq       BIGINT NOT NULL,
	flags        TEXT NOT NULL, -- space-separated, as in SQLite
	seen         BOOLEAN NOT NULL,
	deleted      BOOLEAN NOT NULL,
	internaldate BIGINT NOT NULL, -- unix nanoseconds
	size         BIGINT NOT NULL,
	blob         BIGINT NOT NULL REFERENCES blobs(id),
	PRIMARY KEY (mailbox, uid)
);
CREATE INDEX messages_blob ON messages(blob);
`
