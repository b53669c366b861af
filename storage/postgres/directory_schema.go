package postgres

// schemaDirectory is migration 2: the directory (storage.DirectoryStore).
// Tables, columns and encodings mirror SQLite's migration 2 (relais migrate
// copies them as they are): each table keeps the entry whole in data
// (storage/dircodec) and, as columns, what lookups, filters and ranking
// use; hashes are uint64 bit patterns in BIGINT, times unix nanoseconds.
//
// Every text column is COLLATE "C": comparisons and orders are bytewise,
// as SQLite's BINARY, so that a prefix is one btree range (key >= prefix
// AND key < dirkey.PrefixEnd(prefix)) and both stores rank alike. Indexes
// mirror SQLite's; where SQLite's index implicitly ends with the primary
// key and the search orders by it, the key is named here.
const schemaDirectory = `
CREATE TABLE dir_professionals (
	id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	source          TEXT COLLATE "C" NOT NULL,
	hash            BIGINT NOT NULL, -- uint64 bit pattern
	family_key      TEXT COLLATE "C" NOT NULL,
	given_key       TEXT COLLATE "C" NOT NULL,
	profession_code TEXT COLLATE "C" NOT NULL,
	specialty_code  TEXT COLLATE "C" NOT NULL,
	data            BYTEA NOT NULL
);
CREATE INDEX dir_professionals_name ON dir_professionals(family_key, given_key, profession_code, specialty_code);
CREATE INDEX dir_professionals_rev ON dir_professionals(given_key, family_key, profession_code, specialty_code);
CREATE INDEX dir_professionals_profession ON dir_professionals(profession_code, id);
CREATE INDEX dir_professionals_specialty ON dir_professionals(specialty_code, id);

-- An activity carries its professional's name keys (kept by the triggers
-- below), so that a search by place and name is one index range.
-- postal_area is the postcode's first two characters
-- (storage.PostalArea).
CREATE TABLE dir_activities (
	professional TEXT COLLATE "C" NOT NULL,
	akey         TEXT COLLATE "C" NOT NULL,
	source       TEXT COLLATE "C" NOT NULL,
	hash         BIGINT NOT NULL,
	organisation TEXT COLLATE "C" NOT NULL,
	postal_code  TEXT COLLATE "C" NOT NULL,
	postal_area  TEXT COLLATE "C" NOT NULL,
	city_key     TEXT COLLATE "C" NOT NULL,
	family_key   TEXT COLLATE "C" NOT NULL DEFAULT '', -- the professional's, '' while absent
	given_key    TEXT COLLATE "C" NOT NULL DEFAULT '',
	data         BYTEA NOT NULL,
	PRIMARY KEY (professional, akey)
);
CREATE INDEX dir_activities_name ON dir_activities(postal_area, family_key, given_key, postal_code);
CREATE INDEX dir_activities_rev ON dir_activities(postal_area, given_key, family_key, postal_code);
CREATE INDEX dir_activities_city ON dir_activities(city_key, professional);

-- ApplyDirectory writes a professional before its activities and an
-- activity takes the keys its professional has then; these cover the
-- rest (a professional renamed, or written after its activities, or
-- deleted: its remaining activities match no name).
CREATE FUNCTION dir_professionals_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		UPDATE dir_activities SET family_key = '', given_key = '' WHERE professional = OLD.id;
		RETURN NULL;
	END IF;
	UPDATE dir_activities SET family_key = NEW.family_key, given_key = NEW.given_key
	WHERE professional = NEW.id AND (family_key <> NEW.family_key OR given_key <> NEW.given_key);
	RETURN NULL;
END $$;
CREATE TRIGGER dir_professionals_keys_insert AFTER INSERT ON dir_professionals
	FOR EACH ROW EXECUTE FUNCTION dir_professionals_keys();
CREATE TRIGGER dir_professionals_keys_update AFTER UPDATE OF family_key, given_key ON dir_professionals
	FOR EACH ROW WHEN (OLD.family_key <> NEW.family_key OR OLD.given_key <> NEW.given_key)
	EXECUTE FUNCTION dir_professionals_keys();
CREATE TRIGGER dir_professionals_keys_delete AFTER DELETE ON dir_professionals
	FOR EACH ROW EXECUTE FUNCTION dir_professionals_keys();

CREATE TABLE dir_organisations (
	id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	source       TEXT COLLATE "C" NOT NULL,
	hash         BIGINT NOT NULL,
	finess       TEXT COLLATE "C" NOT NULL,
	legal_finess TEXT COLLATE "C" NOT NULL,
	siret        TEXT COLLATE "C" NOT NULL,
	siren        TEXT COLLATE "C" NOT NULL,
	name_key     TEXT COLLATE "C" NOT NULL,
	trade_key    TEXT COLLATE "C" NOT NULL,
	postal_code  TEXT COLLATE "C" NOT NULL,
	postal_area  TEXT COLLATE "C" NOT NULL,
	city_key     TEXT COLLATE "C" NOT NULL,
	data         BYTEA NOT NULL
);
CREATE INDEX dir_organisations_finess ON dir_organisations(finess, id);
CREATE INDEX dir_organisations_legal_finess ON dir_organisations(legal_finess, id);
CREATE INDEX dir_organisations_siret ON dir_organisations(siret, id);
CREATE INDEX dir_organisations_siren ON dir_organisations(siren, id);
CREATE INDEX dir_organisations_name ON dir_organisations(name_key);
CREATE INDEX dir_organisations_trade ON dir_organisations(trade_key);
CREATE INDEX dir_organisations_place ON dir_organisations(postal_area, name_key, postal_code);
CREATE INDEX dir_organisations_place_trade ON dir_organisations(postal_area, trade_key, postal_code);
CREATE INDEX dir_organisations_city ON dir_organisations(city_key, id);

-- A local account and the national extraction may both list an address.
-- name_a/name_b, rev_a/rev_b: storage.MailboxNameKeys.
CREATE TABLE dir_mailboxes (
	address_key     TEXT COLLATE "C" NOT NULL, -- lower-case address
	source          TEXT COLLATE "C" NOT NULL,
	hash            BIGINT NOT NULL,
	professional    TEXT COLLATE "C" NOT NULL,
	organisation    TEXT COLLATE "C" NOT NULL,
	account         BIGINT NOT NULL,
	name_a          TEXT COLLATE "C" NOT NULL,
	name_b          TEXT COLLATE "C" NOT NULL,
	rev_a           TEXT COLLATE "C" NOT NULL,
	rev_b           TEXT COLLATE "C" NOT NULL,
	profession_code TEXT COLLATE "C" NOT NULL,
	specialty_code  TEXT COLLATE "C" NOT NULL,
	postal_code     TEXT COLLATE "C" NOT NULL,
	postal_area     TEXT COLLATE "C" NOT NULL,
	city_key        TEXT COLLATE "C" NOT NULL,
	data            BYTEA NOT NULL,
	PRIMARY KEY (address_key, source)
);
CREATE INDEX dir_mailboxes_professional ON dir_mailboxes(professional);
CREATE INDEX dir_mailboxes_organisation ON dir_mailboxes(organisation);
CREATE INDEX dir_mailboxes_name ON dir_mailboxes(name_a, name_b, profession_code, specialty_code, professional);
CREATE INDEX dir_mailboxes_rev ON dir_mailboxes(rev_a, rev_b, profession_code, specialty_code, professional);
CREATE INDEX dir_mailboxes_place ON dir_mailboxes(postal_area, name_a, name_b, postal_code, profession_code, specialty_code, professional);
CREATE INDEX dir_mailboxes_place_rev ON dir_mailboxes(postal_area, rev_a, rev_b, postal_code, profession_code, specialty_code, professional);
CREATE INDEX dir_mailboxes_city ON dir_mailboxes(city_key, address_key);
CREATE INDEX dir_mailboxes_account ON dir_mailboxes(account) WHERE account <> 0;

CREATE TABLE dir_certificates (
	address_key TEXT COLLATE "C" NOT NULL,
	fingerprint TEXT COLLATE "C" NOT NULL,
	source      TEXT COLLATE "C" NOT NULL,
	not_before  BIGINT NOT NULL, -- unix nanoseconds
	not_after   BIGINT NOT NULL,
	added       BIGINT NOT NULL,
	address     TEXT COLLATE "C" NOT NULL,
	subject     TEXT COLLATE "C" NOT NULL,
	der         BYTEA NOT NULL,
	PRIMARY KEY (address_key, fingerprint)
);

CREATE TABLE dir_trust (
	domain       TEXT COLLATE "C" NOT NULL, -- lower-case
	operator_key TEXT COLLATE "C" NOT NULL,
	source       TEXT COLLATE "C" NOT NULL,
	hash         BIGINT NOT NULL,
	updated      BIGINT NOT NULL,
	data         BYTEA NOT NULL,
	PRIMARY KEY (domain, operator_key)
);
CREATE INDEX dir_trust_operator ON dir_trust(operator_key, domain);

-- Search indexes dropped for a bulk import (directory_bulk.go), with the
-- statement that recreates each (SQLite's table, PostgreSQL statements).
CREATE TABLE dir_deferred_indexes (
	name TEXT PRIMARY KEY,
	sql  TEXT NOT NULL
);
`
