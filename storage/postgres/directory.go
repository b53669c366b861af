package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/dircodec"
	"github.com/relais-mssante/relais/storage/dirkey"
)

// The directory (storage.DirectoryStore) on the dir_* tables of migration
// 2 (directory_schema.go), with the SQLite store's rules:
//
// Ownership: an entry belongs to the source that first wrote its key. A
// batch of another source never overwrites nor deletes it (the upsert is
// ignored). Mailbox entries are keyed by (address, source) instead: a
// local account and the national extraction may both list an address.
//
// Concurrency: batches are applied one at a time across every node (a
// transaction-scoped advisory lock taken first), so concurrent batches end
// as if applied in the order they took the lock: an activity written by
// one batch always sees the name keys of a professional another batch
// committed before it, the first source to write a key owns it, and
// overlapping upserts never deadlock. Imports are batch jobs; mail
// delivery and searches never wait for that lock.

// dirLock is the first half of the advisory lock key that serialises
// ApplyDirectory ("rdir"); the second is the schema's hash.
const dirLock = 0x72646972

// ApplyDirectory writes a batch in one transaction: deletes first, then
// upserts (organisations, professionals, activities, mailboxes, trust).
func (s *Store) ApplyDirectory(ctx context.Context, b storage.DirectoryBatch) error {
	if err := storage.ValidateDirectoryBatch(&b); err != nil {
		return fmt.Errorf("postgres: apply directory: %w", err)
	}
	return s.write(ctx, "apply directory", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, int32(dirLock)); err != nil {
			return fmt.Errorf("directory lock: %w", err)
		}
		w := dirWriter{ctx: ctx, tx: tx, source: b.Source}
		if err := w.deletes(b.Delete); err != nil {
			return err
		}
		if err := w.organisations(b.Organisations); err != nil {
			return err
		}
		if err := w.professionals(b.Professionals); err != nil {
			return err
		}
		if err := w.activities(b.Activities); err != nil {
			return err
		}
		if err := w.mailboxes(b.Mailboxes); err != nil {
			return err
		}
		return w.trust(b.Trust)
	})
}

// dirWriter writes one batch, each kind as one multi-row statement whose
// rows come as arrays (unnest).
type dirWriter struct {
	ctx    context.Context
	tx     pgx.Tx
	source string
}

// dirLatest returns the indexes of the last element of each key, in the
// order of their first occurrence: an upsert statement may not change a
// row twice, and the last one wins, as when the rows are written one by
// one.
func dirLatest(n int, key func(i int) string) []int {
	at := make(map[string]int, n)
	out := make([]int, 0, n)
	for i := range n {
		k := key(i)
		if j, ok := at[k]; ok {
			out[j] = i
			continue
		}
		at[k] = len(out)
		out = append(out, i)
	}
	return out
}

// dirText checks the text columns of a statement: PostgreSQL text holds
// valid UTF-8 without NUL (the data column, BYTEA, holds anything), so
// another value is refused as ErrInvalid before it fails the statement.
func dirText(what string, cols ...[]string) error {
	for _, col := range cols {
		for i, v := range col {
			if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
				return fmt.Errorf("%s %d: %q is not text: %w", what, i, v, storage.ErrInvalid)
			}
		}
	}
	return nil
}

func (w *dirWriter) deletes(refs []storage.EntryRef) error {
	var profs, actProfs, actKeys, orgs, addrs, doms, ops []string
	for _, d := range refs {
		switch d.Kind {
		case storage.KindProfessional:
			profs = append(profs, d.Key)
		case storage.KindActivity:
			prof, key, ok := strings.Cut(d.Key, "/")
			if !ok {
				return fmt.Errorf("delete activity %q: %w", d.Key, storage.ErrInvalid)
			}
			actProfs, actKeys = append(actProfs, prof), append(actKeys, key)
		case storage.KindOrganisation:
			orgs = append(orgs, d.Key)
		case storage.KindMailbox:
			addrs = append(addrs, strings.ToLower(strings.TrimSpace(d.Key)))
		case storage.KindTrust:
			dom, op, ok := strings.Cut(d.Key, " ")
			if !ok {
				return fmt.Errorf("delete trust entry %q: %w", d.Key, storage.ErrInvalid)
			}
			doms, ops = append(doms, strings.ToLower(dom)), append(ops, op)
		}
	}
	if err := dirText("delete", profs, actProfs, actKeys, orgs, addrs, doms, ops); err != nil {
		return err
	}
	type del struct {
		what  string
		n     int
		query string
		args  []any
	}
	for _, d := range []del{
		{"professionals", len(profs), `DELETE FROM dir_professionals WHERE id = ANY($1) AND source = $2`, []any{profs, w.source}},
		{"professionals' activities", len(profs), `DELETE FROM dir_activities WHERE professional = ANY($1) AND source = $2`, []any{profs, w.source}},
		{"activities", len(actProfs), `DELETE FROM dir_activities a USING unnest($1::text[], $2::text[]) AS d(professional, akey)
WHERE a.professional = d.professional AND a.akey = d.akey AND a.source = $3`, []any{actProfs, actKeys, w.source}},
		{"organisations", len(orgs), `DELETE FROM dir_organisations WHERE id = ANY($1) AND source = $2`, []any{orgs, w.source}},
		{"mailboxes", len(addrs), `DELETE FROM dir_mailboxes WHERE address_key = ANY($1) AND source = $2`, []any{addrs, w.source}},
		{"trust entries", len(doms), `DELETE FROM dir_trust t USING unnest($1::text[], $2::text[]) AS d(domain, operator_key)
WHERE t.domain = d.domain AND t.operator_key = d.operator_key AND t.source = $3`, []any{doms, ops, w.source}},
	} {
		if d.n == 0 {
			continue
		}
		if _, err := w.tx.Exec(w.ctx, d.query, d.args...); err != nil {
			return fmt.Errorf("delete %s: %w", d.what, err)
		}
	}
	return nil
}

func (w *dirWriter) professionals(ps []storage.Professional) error {
	if len(ps) == 0 {
		return nil
	}
	rows := dirLatest(len(ps), func(i int) string { return ps[i].ID })
	var (
		ids, fks, gks, pcs, scs = make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows))
		hashes                  = make([]int64, len(rows))
		data                    = make([][]byte, len(rows))
	)
	for j, i := range rows {
		p := &ps[i]
		ids[j], hashes[j], fks[j], gks[j] = p.ID, int64(p.Hash), dirkey.Name(p.FamilyName), dirkey.Name(p.GivenName)
		pcs[j], scs[j], data[j] = p.ProfessionCode, p.SpecialtyCode, dircodec.EncodeProfessional(nil, p)
	}
	if err := dirText("professional", ids, pcs, scs); err != nil {
		return err
	}
	_, err := w.tx.Exec(w.ctx, `INSERT INTO dir_professionals (id, source, hash, family_key, given_key, profession_code, specialty_code, data)
SELECT u.id, $1, u.hash, u.fk, u.gk, u.pc, u.sc, u.data
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[]) AS u(id, hash, fk, gk, pc, sc, data)
ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, family_key = excluded.family_key, given_key = excluded.given_key,
	profession_code = excluded.profession_code, specialty_code = excluded.specialty_code, data = excluded.data
WHERE dir_professionals.source = excluded.source`, w.source, ids, hashes, fks, gks, pcs, scs, data)
	if err != nil {
		return fmt.Errorf("professionals: %w", err)
	}
	return nil
}

func (w *dirWriter) activities(as []storage.Activity) error {
	if len(as) == 0 {
		return nil
	}
	rows := dirLatest(len(as), func(i int) string { return as[i].Professional + "/" + as[i].Key })
	n := len(rows)
	var (
		profs, keys, orgs, pcs, pas, cks = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		hashes                           = make([]int64, n)
		data                             = make([][]byte, n)
	)
	for j, i := range rows {
		a := &as[i]
		pc := strings.TrimSpace(a.PostalCode)
		profs[j], keys[j], hashes[j], orgs[j] = a.Professional, a.Key, int64(a.Hash), a.Organisation
		pcs[j], pas[j], cks[j], data[j] = pc, storage.PostalArea(pc), dirkey.Name(a.City), dircodec.EncodeActivity(nil, a)
	}
	if err := dirText("activity", profs, keys, orgs, pcs); err != nil {
		return err
	}
	// An activity takes its professional's name keys (schema), read by
	// the join: the batch's professionals are already written.
	_, err := w.tx.Exec(w.ctx, `INSERT INTO dir_activities (professional, akey, source, hash, organisation, postal_code, postal_area, city_key, data, family_key, given_key)
SELECT u.professional, u.akey, $1, u.hash, u.organisation, u.pc, u.pa, u.ck, u.data, coalesce(p.family_key, ''), coalesce(p.given_key, '')
FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[])
	AS u(professional, akey, hash, organisation, pc, pa, ck, data)
LEFT JOIN dir_professionals p ON p.id = u.professional
ON CONFLICT (professional, akey) DO UPDATE SET hash = excluded.hash, organisation = excluded.organisation,
	postal_code = excluded.postal_code, postal_area = excluded.postal_area, city_key = excluded.city_key, data = excluded.data
WHERE dir_activities.source = excluded.source`, w.source, profs, keys, hashes, orgs, pcs, pas, cks, data)
	if err != nil {
		return fmt.Errorf("activities: %w", err)
	}
	return nil
}

func (w *dirWriter) organisations(os []storage.Organisation) error {
	if len(os) == 0 {
		return nil
	}
	rows := dirLatest(len(os), func(i int) string { return os[i].ID })
	n := len(rows)
	cols := make([][]string, 10) // id, finess, legal_finess, siret, siren, name_key, trade_key, postal_code, postal_area, city_key
	for c := range cols {
		cols[c] = make([]string, n)
	}
	hashes, data := make([]int64, n), make([][]byte, n)
	for j, i := range rows {
		o := &os[i]
		pc := strings.TrimSpace(o.Address.PostalCode)
		for c, v := range []string{o.ID, o.FINESS, o.LegalFINESS, o.SIRET, o.SIREN, dirkey.Name(o.Name), dirkey.Name(o.TradeName),
			pc, storage.PostalArea(pc), dirkey.Name(o.Address.City)} {
			cols[c][j] = v
		}
		hashes[j], data[j] = int64(o.Hash), dircodec.EncodeOrganisation(nil, o)
	}
	if err := dirText("organisation", cols[:5]...); err != nil {
		return err
	}
	if err := dirText("organisation", cols[7]); err != nil {
		return err
	}
	_, err := w.tx.Exec(w.ctx, `INSERT INTO dir_organisations (id, source, hash, finess, legal_finess, siret, siren, name_key, trade_key, postal_code, postal_area, city_key, data)
SELECT u.id, $1, u.hash, u.finess, u.legal_finess, u.siret, u.siren, u.name_key, u.trade_key, u.postal_code, u.postal_area, u.city_key, u.data
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bytea[])
	AS u(id, hash, finess, legal_finess, siret, siren, name_key, trade_key, postal_code, postal_area, city_key, data)
ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, finess = excluded.finess, legal_finess = excluded.legal_finess,
	siret = excluded.siret, siren = excluded.siren, name_key = excluded.name_key, trade_key = excluded.trade_key,
	postal_code = excluded.postal_code, postal_area = excluded.postal_area, city_key = excluded.city_key, data = excluded.data
WHERE dir_organisations.source = excluded.source`,
		w.source, cols[0], hashes, cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], cols[9], data)
	if err != nil {
		return fmt.Errorf("organisations: %w", err)
	}
	return nil
}

// dirMailboxRows are the columns of mailbox entries, for dirUpsertMailboxes.
type dirMailboxRows struct {
	text    [13][]string // address_key, source, professional, organisation, name_a, name_b, rev_a, rev_b, profession_code, specialty_code, postal_code, postal_area, city_key
	hashes  []int64
	account []int64
	data    [][]byte
}

const dirUpsertMailboxes = `INSERT INTO dir_mailboxes (address_key, source, hash, professional, organisation, account, name_a, name_b, rev_a, rev_b,
	profession_code, specialty_code, postal_code, postal_area, city_key, data)
SELECT u.address_key, u.source, u.hash, u.professional, u.organisation, u.account, u.name_a, u.name_b, u.rev_a, u.rev_b,
	u.profession_code, u.specialty_code, u.postal_code, u.postal_area, u.city_key, u.data
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[],
	$11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::bytea[])
	AS u(address_key, source, hash, professional, organisation, account, name_a, name_b, rev_a, rev_b,
	profession_code, specialty_code, postal_code, postal_area, city_key, data)
ON CONFLICT (address_key, source) DO UPDATE SET hash = excluded.hash, professional = excluded.professional,
	organisation = excluded.organisation, account = excluded.account, name_a = excluded.name_a, name_b = excluded.name_b,
	rev_a = excluded.rev_a, rev_b = excluded.rev_b, profession_code = excluded.profession_code,
	specialty_code = excluded.specialty_code, postal_code = excluded.postal_code, postal_area = excluded.postal_area,
	city_key = excluded.city_key, data = excluded.data`

// putDirMailboxes upserts mailbox entries (each with its Source and Account).
func putDirMailboxes(ctx context.Context, tx pgx.Tx, ms []storage.MailboxEntry) error {
	rows := dirLatest(len(ms), func(i int) string {
		k, _ := storage.DirectoryAddressKey(ms[i].Address)
		return k + " " + ms[i].Source
	})
	n := len(rows)
	var r dirMailboxRows
	for c := range r.text {
		r.text[c] = make([]string, n)
	}
	r.hashes, r.account, r.data = make([]int64, n), make([]int64, n), make([][]byte, n)
	for j, i := range rows {
		m := &ms[i]
		key, err := storage.DirectoryAddressKey(m.Address)
		if err != nil {
			return err
		}
		na, nb, ra, rb := storage.MailboxNameKeys(m)
		pc := strings.TrimSpace(m.StructureAddress.PostalCode)
		for c, v := range []string{key, m.Source, m.Professional, m.Organisation, na, nb, ra, rb, m.ProfessionCode, m.SpecialtyCode,
			pc, storage.PostalArea(pc), dirkey.Name(m.StructureAddress.City)} {
			r.text[c][j] = v
		}
		r.hashes[j], r.account[j], r.data[j] = int64(m.Hash), int64(m.Account), dircodec.EncodeMailbox(nil, m)
	}
	t := &r.text
	if err := dirText("mailbox", t[0], t[1], t[2], t[3], t[8], t[9], t[10]); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, dirUpsertMailboxes, t[0], t[1], r.hashes, t[2], t[3], r.account, t[4], t[5], t[6], t[7],
		t[8], t[9], t[10], t[11], t[12], r.data)
	return err
}

func (w *dirWriter) mailboxes(ms []storage.MailboxEntry) error {
	if len(ms) == 0 {
		return nil
	}
	entries := make([]storage.MailboxEntry, len(ms))
	for i := range ms {
		entries[i] = ms[i]
		entries[i].Source = w.source
		entries[i].Account = 0
	}
	if err := putDirMailboxes(w.ctx, w.tx, entries); err != nil {
		return fmt.Errorf("mailboxes: %w", err)
	}
	return nil
}

// insertLocalMailbox writes the directory entry of a local account
// (storage.LocalMailboxEntry), in the transaction that creates it.
func insertLocalMailbox(ctx context.Context, tx pgx.Tx, acct storage.Account) error {
	if err := putDirMailboxes(ctx, tx, []storage.MailboxEntry{storage.LocalMailboxEntry(acct)}); err != nil {
		return fmt.Errorf("local directory entry: %w", err)
	}
	return nil
}

func (w *dirWriter) trust(ts []storage.TrustEntry) error {
	if len(ts) == 0 {
		return nil
	}
	norm := make([]storage.TrustEntry, len(ts))
	for i := range ts {
		norm[i] = ts[i]
		norm[i].Domain = strings.ToLower(strings.TrimSpace(ts[i].Domain))
	}
	rows := dirLatest(len(norm), func(i int) string { return norm[i].Domain + " " + norm[i].OperatorKey })
	n := len(rows)
	doms, ops := make([]string, n), make([]string, n)
	hashes, updated, data := make([]int64, n), make([]int64, n), make([][]byte, n)
	for j, i := range rows {
		t := &norm[i]
		doms[j], ops[j], hashes[j] = t.Domain, t.OperatorKey, int64(t.Hash)
		if !t.Updated.IsZero() {
			updated[j] = t.Updated.UnixNano()
		}
		data[j] = dircodec.EncodeTrust(nil, t)
	}
	if err := dirText("trust entry", doms, ops); err != nil {
		return err
	}
	_, err := w.tx.Exec(w.ctx, `INSERT INTO dir_trust (domain, operator_key, source, hash, updated, data)
SELECT u.domain, u.operator_key, $1, u.hash, u.updated, u.data
FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bytea[]) AS u(domain, operator_key, hash, updated, data)
ON CONFLICT (domain, operator_key) DO UPDATE SET hash = excluded.hash, updated = excluded.updated, data = excluded.data
WHERE dir_trust.source = excluded.source`, w.source, doms, ops, hashes, updated, data)
	if err != nil {
		return fmt.Errorf("trust entries: %w", err)
	}
	return nil
}

// DirectoryHashes calls fn with the key and hash of every entry of a kind
// and source (keys as storage.DirectoryStore documents).
func (s *Store) DirectoryHashes(ctx context.Context, kind storage.EntryKind, source string, fn func(key string, hash uint64) error) error {
	var query string
	switch kind {
	case storage.KindProfessional:
		query = `SELECT id, hash FROM dir_professionals WHERE source = $1`
	case storage.KindActivity:
		query = `SELECT professional || '/' || akey, hash FROM dir_activities WHERE source = $1`
	case storage.KindOrganisation:
		query = `SELECT id, hash FROM dir_organisations WHERE source = $1`
	case storage.KindMailbox:
		query = `SELECT address_key, hash FROM dir_mailboxes WHERE source = $1`
	case storage.KindTrust:
		query = `SELECT domain || ' ' || operator_key, hash FROM dir_trust WHERE source = $1`
	default:
		return fmt.Errorf("postgres: directory hashes: kind %q: %w", kind, storage.ErrInvalid)
	}
	return s.read(ctx, "directory hashes", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, query, source)
		if err != nil {
			return err
		}
		defer rows.Close()
		var key string
		var h int64
		for rows.Next() {
			if err := rows.Scan(&key, &h); err != nil {
				return err
			}
			if err := fn(key, uint64(h)); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// DirectoryCount counts the entries of a kind and source ("" for all).
func (s *Store) DirectoryCount(ctx context.Context, kind storage.EntryKind, source string) (int, error) {
	table, err := dircodec.Table(kind)
	if err != nil {
		return 0, fmt.Errorf("postgres: directory count: %w", err)
	}
	var n int
	err = s.read(ctx, "directory count", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE $1 IN ('', source)`, source).Scan(&n)
	})
	return n, err
}

func scanProfessional(row pgx.Row) (storage.Professional, error) {
	var p storage.Professional
	var h int64
	var data []byte
	if err := row.Scan(&p.Source, &h, &data); err != nil {
		return p, err
	}
	p.Hash = uint64(h)
	return p, dircodec.DecodeProfessional(data, &p)
}

func scanOrganisation(row pgx.Row) (storage.Organisation, error) {
	var o storage.Organisation
	var h int64
	var data []byte
	if err := row.Scan(&o.Source, &h, &data); err != nil {
		return o, err
	}
	o.Hash = uint64(h)
	return o, dircodec.DecodeOrganisation(data, &o)
}

func scanActivity(row pgx.Row) (storage.Activity, error) {
	var a storage.Activity
	var h int64
	var data []byte
	if err := row.Scan(&a.Source, &h, &data); err != nil {
		return a, err
	}
	a.Hash = uint64(h)
	return a, dircodec.DecodeActivity(data, &a)
}

func scanMailboxEntry(row pgx.Row) (storage.MailboxEntry, error) {
	var m storage.MailboxEntry
	var h, acct int64
	var data []byte
	if err := row.Scan(&m.Source, &h, &acct, &data); err != nil {
		return m, err
	}
	m.Hash = uint64(h)
	m.Account = storage.AccountID(acct)
	return m, dircodec.DecodeMailbox(data, &m)
}

func scanTrust(row pgx.Row) (storage.TrustEntry, error) {
	var t storage.TrustEntry
	var h, updated int64
	var data []byte
	if err := row.Scan(&h, &updated, &data); err != nil {
		return t, err
	}
	t.Hash = uint64(h)
	if updated != 0 {
		t.Updated = time.Unix(0, updated).UTC()
	}
	return t, dircodec.DecodeTrust(data, &t)
}

// Professional finds a professional by national id, else by RPPS/ADELI
// number (the national id is the type digit, 8 or 0, then the number).
func (s *Store) Professional(ctx context.Context, id string) (storage.Professional, error) {
	var p storage.Professional
	err := s.read(ctx, "professional", func(tx pgx.Tx) error {
		var err error
		p, err = scanProfessional(tx.QueryRow(ctx, `SELECT source, hash, data FROM dir_professionals WHERE id = $1`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			p, err = scanProfessional(tx.QueryRow(ctx,
				`SELECT source, hash, data FROM dir_professionals WHERE id IN ('8' || $1::text, '0' || $1::text) ORDER BY id LIMIT 1`, id))
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("professional %q: %w", id, storage.ErrNotFound)
		}
		return err
	})
	return p, err
}

// dirRows reads every row of a query with scan.
func dirRows[T any](ctx context.Context, tx pgx.Tx, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Activities lists a professional's activities by key.
func (s *Store) Activities(ctx context.Context, professionalID string) ([]storage.Activity, error) {
	var out []storage.Activity
	err := s.read(ctx, "activities", func(tx pgx.Tx) error {
		var err error
		out, err = dirRows(ctx, tx, scanActivity, `SELECT source, hash, data FROM dir_activities WHERE professional = $1 ORDER BY akey`, professionalID)
		return err
	})
	return out, err
}

// Organisation finds an organisation by id, else by FINESS (site, then
// legal entity), else by SIRET.
func (s *Store) Organisation(ctx context.Context, id string) (storage.Organisation, error) {
	var o storage.Organisation
	err := s.read(ctx, "organisation", func(tx pgx.Tx) error {
		var err error
		for _, col := range []string{"id", "finess", "legal_finess", "siret"} {
			o, err = scanOrganisation(tx.QueryRow(ctx, `SELECT source, hash, data FROM dir_organisations WHERE `+col+` = $1 ORDER BY id LIMIT 1`, id))
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		return fmt.Errorf("organisation %q: %w", id, storage.ErrNotFound)
	})
	return o, err
}

// dirMailboxOrder puts local entries first, then the others by source.
const dirMailboxOrder = `address_key, source <> 'local', source`

// MailboxEntries returns the entries of an address, local first
// (ErrNotFound when there is none).
func (s *Store) MailboxEntries(ctx context.Context, address string) ([]storage.MailboxEntry, error) {
	key, err := storage.DirectoryAddressKey(address)
	if err != nil {
		return nil, fmt.Errorf("postgres: mailbox entries: %w", err)
	}
	var out []storage.MailboxEntry
	err = s.read(ctx, "mailbox entries", func(tx pgx.Tx) error {
		var err error
		out, err = dirRows(ctx, tx, scanMailboxEntry, `SELECT source, hash, account, data FROM dir_mailboxes WHERE address_key = $1 ORDER BY `+dirMailboxOrder, key)
		if err == nil && len(out) == 0 {
			err = fmt.Errorf("address %q: %w", address, storage.ErrNotFound)
		}
		return err
	})
	return out, err
}

// PutCertificate stores a certificate, replacing the one with the same
// address and fingerprint.
func (s *Store) PutCertificate(ctx context.Context, c storage.Certificate) error {
	key, err := storage.DirectoryAddressKey(c.Address)
	if err != nil {
		return fmt.Errorf("postgres: put certificate: %w", err)
	}
	fp := strings.ToLower(strings.TrimSpace(c.Fingerprint))
	if fp == "" || len(c.DER) == 0 {
		return fmt.Errorf("postgres: put certificate: empty fingerprint or certificate: %w", storage.ErrInvalid)
	}
	if c.Source == "" {
		c.Source = storage.SourceAdmin
	}
	now := time.Now().UTC()
	return s.write(ctx, "put certificate", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		_, err := tx.Exec(ctx, `INSERT INTO dir_certificates
(address_key, fingerprint, source, not_before, not_after, added, address, subject, der) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (address_key, fingerprint) DO UPDATE SET source = excluded.source, not_before = excluded.not_before,
	not_after = excluded.not_after, added = excluded.added, address = excluded.address, subject = excluded.subject, der = excluded.der`,
			key, fp, c.Source, c.NotBefore.UnixNano(), c.NotAfter.UnixNano(), now.UnixNano(), strings.TrimSpace(c.Address), c.Subject, c.DER)
		return err
	})
}

// Certificates lists an address's certificates, newest NotBefore first.
func (s *Store) Certificates(ctx context.Context, address string) ([]storage.Certificate, error) {
	key, err := storage.DirectoryAddressKey(address)
	if err != nil {
		return nil, fmt.Errorf("postgres: certificates: %w", err)
	}
	var out []storage.Certificate
	err = s.read(ctx, "certificates", func(tx pgx.Tx) error {
		var err error
		out, err = dirRows(ctx, tx, func(r pgx.Row) (storage.Certificate, error) {
			var c storage.Certificate
			var nb, na, added int64
			err := r.Scan(&c.Fingerprint, &c.Source, &nb, &na, &added, &c.Address, &c.Subject, &c.DER)
			c.NotBefore, c.NotAfter, c.Added = time.Unix(0, nb).UTC(), time.Unix(0, na).UTC(), time.Unix(0, added).UTC()
			return c, err
		}, `SELECT fingerprint, source, not_before, not_after, added, address, subject, der
FROM dir_certificates WHERE address_key = $1 ORDER BY not_before DESC, fingerprint`, key)
		return err
	})
	return out, err
}

// DeleteCertificate removes one certificate (ErrNotFound when absent).
func (s *Store) DeleteCertificate(ctx context.Context, address, fingerprint string) error {
	key, err := storage.DirectoryAddressKey(address)
	if err != nil {
		return fmt.Errorf("postgres: delete certificate: %w", err)
	}
	fp := strings.ToLower(strings.TrimSpace(fingerprint))
	return s.write(ctx, "delete certificate", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		tag, err := tx.Exec(ctx, `DELETE FROM dir_certificates WHERE address_key = $1 AND fingerprint = $2`, key, fp)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("certificate %s of %q: %w", fp, address, storage.ErrNotFound)
		}
		return nil
	})
}

func (s *Store) trustQuery(ctx context.Context, op, what, query string, args ...any) ([]storage.TrustEntry, error) {
	var out []storage.TrustEntry
	err := s.read(ctx, op, func(tx pgx.Tx) error {
		var err error
		out, err = dirRows(ctx, tx, scanTrust, query, args...)
		if err == nil && len(out) == 0 {
			err = fmt.Errorf("%s: %w", what, storage.ErrNotFound)
		}
		return err
	})
	return out, err
}

// TrustByDomain returns the trust entries of a domain (ErrNotFound when the
// domain is not in the trust space).
func (s *Store) TrustByDomain(ctx context.Context, domain string) ([]storage.TrustEntry, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	return s.trustQuery(ctx, "trust by domain", fmt.Sprintf("domain %q", d),
		`SELECT hash, updated, data FROM dir_trust WHERE domain = $1 ORDER BY operator_key`, d)
}

// TrustByOperator returns the entries whose operator certificate DN has
// this canonical key, by domain (ErrNotFound when there is none).
func (s *Store) TrustByOperator(ctx context.Context, operatorKey string) ([]storage.TrustEntry, error) {
	return s.trustQuery(ctx, "trust by operator", "operator", // the DN stays out of the error text
		`SELECT hash, updated, data FROM dir_trust WHERE operator_key = $1 ORDER BY domain`, operatorKey)
}

// TrustEntries calls fn with every trust entry, by domain.
func (s *Store) TrustEntries(ctx context.Context, fn func(storage.TrustEntry) error) error {
	return s.read(ctx, "trust entries", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT hash, updated, data FROM dir_trust ORDER BY domain, operator_key`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTrust(rows)
			if err != nil {
				return err
			}
			if err := fn(t); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}
