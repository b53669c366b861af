package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/dircodec"
	"github.com/relais-mssante/relais/storage/dirkey"
)

// The directory (storage.DirectoryStore) on the dir_* tables of migration 2.
//
// Ownership: an entry belongs to the source that first wrote its key. A
// batch of another source never overwrites nor deletes it (the upsert is
// ignored), so that two national files naming the same structure do not
// fight over it and local entries stay local. Mailbox entries are keyed by
// (address, source) instead: a local account and the national extraction
// may both list an address.

// writeCacheKiB is the write connection's page cache while importing: the
// name indexes take random inserts, and a cache that holds them saves
// re-reading their pages for every batch.
const writeCacheKiB = 256 << 10

// ApplyDirectory writes a batch in one write job (one SAVEPOINT of a group
// commit): deletes first, then upserts.
func (s *Store) ApplyDirectory(ctx context.Context, b storage.DirectoryBatch) error {
	if err := storage.ValidateDirectoryBatch(&b); err != nil {
		return fmt.Errorf("sqlite: apply directory: %w", err)
	}
	return s.write(ctx, "apply directory", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, writeCacheKiB)); err != nil {
			return err
		}
		inBulkImport, err := inBulk(ctx, tx)
		if err != nil {
			return err
		}
		if inBulkImport {
			bulkPragmas(ctx, tx)
		}
		w := dirWriter{ctx: ctx, tx: tx, source: b.Source, bulkImport: inBulkImport}
		defer w.close()
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
		if err := w.trust(b.Trust); err != nil {
			return err
		}
		return maybeAnalyze(ctx, tx, &b)
	})
}

// dirWriter holds one batch's prepared statements.
type dirWriter struct {
	ctx        context.Context
	tx         *sql.Tx
	source     string
	bulkImport bool // a bulk import is running (directory_bulk.go)
	stmts      []*sql.Stmt
	buf        []byte
}

func (w *dirWriter) prepare(query string) (*sql.Stmt, error) {
	st, err := w.tx.PrepareContext(w.ctx, query)
	if err != nil {
		return nil, err
	}
	w.stmts = append(w.stmts, st)
	return st, nil
}

func (w *dirWriter) close() {
	for _, st := range w.stmts {
		st.Close()
	}
}

func (w *dirWriter) deletes(refs []storage.EntryRef) error {
	for _, d := range refs {
		var err error
		switch d.Kind {
		case storage.KindProfessional:
			if _, err = w.tx.ExecContext(w.ctx, `DELETE FROM dir_professionals WHERE id = ? AND source = ?`, d.Key, w.source); err == nil {
				_, err = w.tx.ExecContext(w.ctx, `DELETE FROM dir_activities WHERE professional = ? AND source = ?`, d.Key, w.source)
			}
		case storage.KindActivity:
			prof, key, ok := strings.Cut(d.Key, "/")
			if !ok {
				return fmt.Errorf("delete activity %q: %w", d.Key, storage.ErrInvalid)
			}
			_, err = w.tx.ExecContext(w.ctx, `DELETE FROM dir_activities WHERE professional = ? AND akey = ? AND source = ?`, prof, key, w.source)
		case storage.KindOrganisation:
			if w.bulkImport {
				// Organisations held back by the bulk import go to
				// their table first, so that the delete sees them.
				if err = mergePendingOrganisations(w.ctx, w.tx); err != nil {
					return fmt.Errorf("delete %s %q: %w", d.Kind, d.Key, err)
				}
				w.bulkImport = false
			}
			_, err = w.tx.ExecContext(w.ctx, `DELETE FROM dir_organisations WHERE id = ? AND source = ?`, d.Key, w.source)
		case storage.KindMailbox:
			_, err = w.tx.ExecContext(w.ctx, `DELETE FROM dir_mailboxes WHERE address_key = ? AND source = ?`, strings.ToLower(strings.TrimSpace(d.Key)), w.source)
		case storage.KindTrust:
			dom, op, ok := strings.Cut(d.Key, " ")
			if !ok {
				return fmt.Errorf("delete trust entry %q: %w", d.Key, storage.ErrInvalid)
			}
			_, err = w.tx.ExecContext(w.ctx, `DELETE FROM dir_trust WHERE domain = ? AND operator_key = ? AND source = ?`, strings.ToLower(dom), op, w.source)
		}
		if err != nil {
			return fmt.Errorf("delete %s %q: %w", d.Kind, d.Key, err)
		}
	}
	return nil
}

// bulkRows is how many rows one INSERT statement carries: binding and
// stepping one statement per bulkRows rows instead of per row divides the
// per-statement cost of database/sql and the driver.
const bulkRows = 200

// bulk accumulates the rows of a multi-row upsert.
type bulk struct {
	w          *dirWriter
	head, tail string // INSERT ... and ON CONFLICT ...
	cols       int
	n          int
	args       []any
	full       *sql.Stmt // for bulkRows rows
	// During a bulk import, most rows are new: the rows are first
	// inserted by INSERT OR IGNORE (fastHead, fastTail), and the upsert
	// runs only when some were not (their key exists). An upsert's DO
	// UPDATE may abort, so a multi-row one keeps a statement journal
	// (a copy of each page it changes, https://sqlite.org/tempfiles.html
	// section 2.6); INSERT OR IGNORE never aborts and keeps none.
	fastHead, fastTail string
	fastFull           *sql.Stmt
}

func (w *dirWriter) bulk(head, tail string, cols int) *bulk {
	return &bulk{w: w, head: head, tail: tail, cols: cols, args: make([]any, 0, cols*bulkRows)}
}

// ignoreFirst sets the INSERT OR IGNORE of a bulk import (fastHead).
func (b *bulk) ignoreFirst(head, tail string) *bulk {
	if b.w.bulkImport {
		b.fastHead, b.fastTail = head, tail
	}
	return b
}

func (b *bulk) values(rows int) string {
	row := "(" + inList(b.cols) + "),"
	return " VALUES " + strings.TrimSuffix(strings.Repeat(row, rows), ",") + " "
}

// exec runs head VALUES ... tail on the accumulated rows, from *full
// (prepared once) for bulkRows rows.
func (b *bulk) exec(full **sql.Stmt, head, tail string) (sql.Result, error) {
	if b.n != bulkRows {
		return b.w.tx.ExecContext(b.w.ctx, head+b.values(b.n)+tail, b.args...)
	}
	if *full == nil {
		var err error
		if *full, err = b.w.prepare(head + b.values(bulkRows) + tail); err != nil {
			return nil, err
		}
	}
	return (*full).ExecContext(b.w.ctx, b.args...)
}

func (b *bulk) add(vals ...any) error {
	b.args = append(b.args, vals...)
	b.n++
	if b.n == bulkRows {
		return b.flush()
	}
	return nil
}

func (b *bulk) flush() error {
	if b.n == 0 {
		return nil
	}
	err := b.flushRows()
	clear(b.args)
	b.args = b.args[:0]
	b.n = 0
	return err
}

func (b *bulk) flushRows() error {
	if b.fastHead != "" {
		res, err := b.exec(&b.fastFull, b.fastHead, b.fastTail)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == int64(b.n) {
			return nil // all new
		}
		// Some keys exist: the upsert (the rows just inserted get their
		// own values again).
	}
	_, err := b.exec(&b.full, b.head, b.tail)
	return err
}

func (w *dirWriter) professionals(ps []storage.Professional) error {
	b := w.bulk(`INSERT OR FAIL INTO dir_professionals (id, source, hash, family_key, given_key, profession_code, specialty_code, data)`,
		`ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, family_key = excluded.family_key,
	given_key = excluded.given_key, profession_code = excluded.profession_code, specialty_code = excluded.specialty_code, data = excluded.data
WHERE dir_professionals.source = excluded.source`, 8).ignoreFirst(
		`INSERT OR IGNORE INTO dir_professionals (id, source, hash, family_key, given_key, profession_code, specialty_code, data)`, ``)
	for i := range ps {
		p := &ps[i]
		if err := b.add(p.ID, w.source, int64(p.Hash), dirkey.Name(p.FamilyName), dirkey.Name(p.GivenName),
			p.ProfessionCode, p.SpecialtyCode, dircodec.EncodeProfessional(nil, p)); err != nil {
			return fmt.Errorf("professionals: %w", err)
		}
	}
	if err := b.flush(); err != nil {
		return fmt.Errorf("professionals: %w", err)
	}
	return nil
}

func (w *dirWriter) activities(as []storage.Activity) error {
	// An activity takes its professional's name keys (schema, migration 2),
	// read by the join: the batch's professionals are already written.
	b := w.bulk(`INSERT OR FAIL INTO dir_activities (professional, akey, source, hash, organisation, postal_code, postal_area, city_key, data, family_key, given_key)
SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9, coalesce(p.family_key, ''), coalesce(p.given_key, '') FROM (`,
		`) v LEFT JOIN dir_professionals p ON p.id = v.column1 WHERE true
ON CONFLICT (professional, akey) DO UPDATE SET hash = excluded.hash, organisation = excluded.organisation,
	postal_code = excluded.postal_code, postal_area = excluded.postal_area, city_key = excluded.city_key, data = excluded.data
WHERE dir_activities.source = excluded.source`, 9).ignoreFirst(
		`INSERT OR IGNORE INTO dir_activities (professional, akey, source, hash, organisation, postal_code, postal_area, city_key, data, family_key, given_key)
SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9, coalesce(p.family_key, ''), coalesce(p.given_key, '') FROM (`,
		`) v LEFT JOIN dir_professionals p ON p.id = v.column1`)
	for i := range as {
		a := &as[i]
		pc := strings.TrimSpace(a.PostalCode)
		if err := b.add(a.Professional, a.Key, w.source, int64(a.Hash), a.Organisation,
			pc, storage.PostalArea(pc), dirkey.Name(a.City), dircodec.EncodeActivity(nil, a)); err != nil {
			return fmt.Errorf("activities: %w", err)
		}
	}
	if err := b.flush(); err != nil {
		return fmt.Errorf("activities: %w", err)
	}
	return nil
}

// pendingOrganisations is what dir_organisations_pending adds to
// dir_organisations while a bulk import runs, as the merge will
// (mergePendingOrganisations): for each key the table does not have, the
// latest row of the first source that wrote it. One sort, no correlated
// scan: the table has no index.
const pendingOrganisations = `(SELECT id, source, hash, data FROM (
	SELECT id, source, hash, data, first_value(source) OVER (PARTITION BY id ORDER BY seq) AS owner,
		row_number() OVER (PARTITION BY id, source ORDER BY seq DESC) AS latest
	FROM dir_organisations_pending) p
WHERE latest = 1 AND source = owner AND NOT EXISTS (SELECT 1 FROM dir_organisations o WHERE o.id = p.id))`

const (
	orgColumns = `id, source, hash, finess, legal_finess, siret, siren, name_key, trade_key, postal_code, postal_area, city_key, data`
	orgUpsert  = `ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, finess = excluded.finess, legal_finess = excluded.legal_finess,
	siret = excluded.siret, siren = excluded.siren, name_key = excluded.name_key, trade_key = excluded.trade_key,
	postal_code = excluded.postal_code, postal_area = excluded.postal_area, city_key = excluded.city_key, data = excluded.data
WHERE dir_organisations.source = excluded.source`
)

func (w *dirWriter) organisations(os []storage.Organisation) error {
	b := w.bulk(`INSERT OR FAIL INTO dir_organisations (`+orgColumns+`)`, orgUpsert, 13)
	if w.bulkImport {
		// During a bulk import, organisations are appended to
		// dir_organisations_pending (schema, migration 5), merged with
		// the same upsert at the end.
		b = w.bulk(`INSERT INTO dir_organisations_pending (`+orgColumns+`)`, ``, 13)
	}
	for i := range os {
		o := &os[i]
		pc := strings.TrimSpace(o.Address.PostalCode)
		if err := b.add(o.ID, w.source, int64(o.Hash), o.FINESS, o.LegalFINESS, o.SIRET, o.SIREN,
			dirkey.Name(o.Name), dirkey.Name(o.TradeName), pc, storage.PostalArea(pc), dirkey.Name(o.Address.City),
			dircodec.EncodeOrganisation(nil, o)); err != nil {
			return fmt.Errorf("organisations: %w", err)
		}
	}
	if err := b.flush(); err != nil {
		return fmt.Errorf("organisations: %w", err)
	}
	return nil
}

const upsertMailbox = `INSERT INTO dir_mailboxes (address_key, source, hash, professional, organisation, account, name_a, name_b, rev_a, rev_b,
	profession_code, specialty_code, postal_code, postal_area, city_key, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (address_key, source) DO UPDATE SET hash = excluded.hash, professional = excluded.professional,
	organisation = excluded.organisation, account = excluded.account, name_a = excluded.name_a, name_b = excluded.name_b,
	rev_a = excluded.rev_a, rev_b = excluded.rev_b, profession_code = excluded.profession_code,
	specialty_code = excluded.specialty_code, postal_code = excluded.postal_code, postal_area = excluded.postal_area,
	city_key = excluded.city_key, data = excluded.data`

type execer interface {
	ExecContext(ctx context.Context, args ...any) (sql.Result, error)
}

func putMailbox(ctx context.Context, st execer, buf []byte, m *storage.MailboxEntry) ([]byte, error) {
	key, err := storage.DirectoryAddressKey(m.Address)
	if err != nil {
		return buf, err
	}
	na, nb, ra, rb := storage.MailboxNameKeys(m)
	buf = dircodec.EncodeMailbox(buf[:0], m)
	pc := strings.TrimSpace(m.StructureAddress.PostalCode)
	_, err = st.ExecContext(ctx, key, m.Source, int64(m.Hash), m.Professional, m.Organisation, int64(m.Account),
		na, nb, ra, rb, m.ProfessionCode, m.SpecialtyCode, pc, storage.PostalArea(pc), dirkey.Name(m.StructureAddress.City), buf)
	if err != nil {
		return buf, fmt.Errorf("mailbox %q: %w", m.Address, err)
	}
	return buf, nil
}

func (w *dirWriter) mailboxes(ms []storage.MailboxEntry) error {
	if len(ms) == 0 {
		return nil
	}
	st, err := w.prepare(upsertMailbox)
	if err != nil {
		return err
	}
	for i := range ms {
		m := ms[i]
		m.Source = w.source
		m.Account = 0
		if w.buf, err = putMailbox(w.ctx, st, w.buf, &m); err != nil {
			return err
		}
	}
	return nil
}

func (w *dirWriter) trust(ts []storage.TrustEntry) error {
	if len(ts) == 0 {
		return nil
	}
	st, err := w.prepare(`INSERT INTO dir_trust (domain, operator_key, source, hash, updated, data) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (domain, operator_key) DO UPDATE SET hash = excluded.hash, updated = excluded.updated, data = excluded.data
WHERE dir_trust.source = excluded.source`)
	if err != nil {
		return err
	}
	for i := range ts {
		t := ts[i]
		t.Domain = strings.ToLower(strings.TrimSpace(t.Domain))
		var updated int64
		if !t.Updated.IsZero() {
			updated = unixNano(t.Updated)
		}
		w.buf = dircodec.EncodeTrust(w.buf[:0], &t)
		if _, err := st.ExecContext(w.ctx, t.Domain, t.OperatorKey, w.source, int64(t.Hash), updated, w.buf); err != nil {
			return fmt.Errorf("trust entry %q: %w", t.Domain, err)
		}
	}
	return nil
}

// maybeAnalyze refreshes the planner's statistics (ANALYZE, sampled with
// analysis_limit so it costs milliseconds) when a table has grown past
// twice its size at the last analysis. Growth is counted from the batch
// sizes in counters (updates count as growth: at worst an extra cheap
// ANALYZE), so no batch ever counts a table.
func maybeAnalyze(ctx context.Context, tx *sql.Tx, b *storage.DirectoryBatch) error {
	for _, t := range []struct {
		table string
		n     int
	}{
		{"dir_professionals", len(b.Professionals)},
		{"dir_activities", len(b.Activities)},
		{"dir_organisations", len(b.Organisations)},
		{"dir_mailboxes", len(b.Mailboxes)},
		{"dir_trust", len(b.Trust)},
	} {
		if t.n == 0 {
			continue
		}
		grownName, analyzedName := "grown_"+t.table, "analyzed_"+t.table
		var grown int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO counters (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value`, grownName, t.n).Scan(&grown); err != nil {
			return fmt.Errorf("analyze counters: %w", err)
		}
		var analyzed int64
		err := tx.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = ?`, analyzedName).Scan(&analyzed)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("analyze counters: %w", err)
		}
		if grown < 2*analyzed || grown < 64 && analyzed > 0 {
			continue
		}
		// https://sqlite.org/lang_analyze.html#approx: analysis_limit
		// samples each index instead of reading it all.
		if _, err := tx.ExecContext(ctx, `PRAGMA analysis_limit = 1000`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `ANALYZE `+t.table); err != nil {
			return fmt.Errorf("analyze %s: %w", t.table, err)
		}
		if err := dropDirectoryStat4(ctx, tx); err != nil {
			return fmt.Errorf("analyze %s: %w", t.table, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO counters (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value`, analyzedName, grown); err != nil {
			return fmt.Errorf("analyze counters: %w", err)
		}
	}
	return nil
}

// DirectoryHashes calls fn with the key and hash of every entry of a kind
// and source (keys as storage.DirectoryStore documents).
func (s *Store) DirectoryHashes(ctx context.Context, kind storage.EntryKind, source string, fn func(key string, hash uint64) error) error {
	var query string
	switch kind {
	case storage.KindProfessional:
		query = `SELECT id, hash FROM dir_professionals WHERE source = ?`
	case storage.KindActivity:
		query = `SELECT professional || '/' || akey, hash FROM dir_activities WHERE source = ?`
	case storage.KindOrganisation:
		// With those a bulk import holds back.
		query = `SELECT id, hash FROM dir_organisations WHERE source = ?1
UNION ALL SELECT id, hash FROM ` + pendingOrganisations + ` WHERE source = ?1`
	case storage.KindMailbox:
		query = `SELECT address_key, hash FROM dir_mailboxes WHERE source = ?`
	case storage.KindTrust:
		query = `SELECT domain || ' ' || operator_key, hash FROM dir_trust WHERE source = ?`
	default:
		return fmt.Errorf("sqlite: directory hashes: kind %q: %w", kind, storage.ErrInvalid)
	}
	return s.read(ctx, "directory hashes", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, source)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var key string
			var h int64
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
		return 0, fmt.Errorf("sqlite: directory count: %w", err)
	}
	var n int
	err = s.read(ctx, "directory count", func(tx *sql.Tx) error {
		if kind == storage.KindOrganisation {
			// With those a bulk import holds back.
			return tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM dir_organisations WHERE ?1 IN ('', source))
	+ (SELECT count(*) FROM `+pendingOrganisations+` WHERE ?1 IN ('', source))`, source).Scan(&n)
		}
		if source == "" {
			return tx.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n)
		}
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE source = ?`, source).Scan(&n)
	})
	return n, err
}

func scanProfessional(row interface{ Scan(...any) error }) (storage.Professional, error) {
	var p storage.Professional
	var h int64
	var data []byte
	if err := row.Scan(&p.Source, &h, &data); err != nil {
		return p, err
	}
	p.Hash = uint64(h)
	return p, dircodec.DecodeProfessional(data, &p)
}

func scanOrganisation(row interface{ Scan(...any) error }) (storage.Organisation, error) {
	var o storage.Organisation
	var h int64
	var data []byte
	if err := row.Scan(&o.Source, &h, &data); err != nil {
		return o, err
	}
	o.Hash = uint64(h)
	return o, dircodec.DecodeOrganisation(data, &o)
}

func scanActivity(row interface{ Scan(...any) error }) (storage.Activity, error) {
	var a storage.Activity
	var h int64
	var data []byte
	if err := row.Scan(&a.Source, &h, &data); err != nil {
		return a, err
	}
	a.Hash = uint64(h)
	return a, dircodec.DecodeActivity(data, &a)
}

func scanMailboxEntry(row interface{ Scan(...any) error }) (storage.MailboxEntry, error) {
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

func scanTrust(row interface{ Scan(...any) error }) (storage.TrustEntry, error) {
	var t storage.TrustEntry
	var h, updated int64
	var data []byte
	if err := row.Scan(&h, &updated, &data); err != nil {
		return t, err
	}
	t.Hash = uint64(h)
	if updated != 0 {
		t.Updated = fromUnixNano(updated)
	}
	return t, dircodec.DecodeTrust(data, &t)
}

// Professional finds a professional by national id, else by RPPS/ADELI
// number (the national id is the type digit, 8 or 0, then the number).
func (s *Store) Professional(ctx context.Context, id string) (storage.Professional, error) {
	var p storage.Professional
	err := s.read(ctx, "professional", func(tx *sql.Tx) error {
		var err error
		p, err = scanProfessional(tx.QueryRowContext(ctx, `SELECT source, hash, data FROM dir_professionals WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			p, err = scanProfessional(tx.QueryRowContext(ctx,
				`SELECT source, hash, data FROM dir_professionals WHERE id IN ('8' || ?, '0' || ?) ORDER BY id LIMIT 1`, id, id))
		}
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("professional %q: %w", id, storage.ErrNotFound)
		}
		return err
	})
	return p, err
}

// Activities lists a professional's activities by key.
func (s *Store) Activities(ctx context.Context, professionalID string) ([]storage.Activity, error) {
	var out []storage.Activity
	err := s.read(ctx, "activities", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT source, hash, data FROM dir_activities WHERE professional = ? ORDER BY akey`, professionalID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := scanActivity(rows)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	return out, err
}

// Organisation finds an organisation by id, else by FINESS (site, then
// legal entity), else by SIRET.
func (s *Store) Organisation(ctx context.Context, id string) (storage.Organisation, error) {
	var o storage.Organisation
	err := s.read(ctx, "organisation", func(tx *sql.Tx) error {
		var err error
		for _, col := range []string{"id", "finess", "legal_finess", "siret"} {
			o, err = scanOrganisation(tx.QueryRowContext(ctx, `SELECT source, hash, data FROM dir_organisations WHERE `+col+` = ? ORDER BY id LIMIT 1`, id))
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		// Held back by a bulk import (a scan: only while one runs): the
		// latest row of the first source that wrote the id.
		for _, col := range []string{"id", "finess", "legal_finess", "siret"} {
			o, err = scanOrganisation(tx.QueryRowContext(ctx, `SELECT p.source, p.hash, p.data FROM dir_organisations_pending p
WHERE p.`+col+` = ?1 AND p.source = (SELECT q.source FROM dir_organisations_pending q WHERE q.id = p.id ORDER BY q.seq LIMIT 1)
ORDER BY p.id, p.seq DESC LIMIT 1`, id))
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		return fmt.Errorf("organisation %q: %w", id, storage.ErrNotFound)
	})
	return o, err
}

// mailboxOrder puts local entries first, then the others by source.
const mailboxOrder = `address_key, source != 'local', source`

// MailboxEntries returns the entries of an address, local first
// (ErrNotFound when there is none).
func (s *Store) MailboxEntries(ctx context.Context, address string) ([]storage.MailboxEntry, error) {
	key, err := storage.DirectoryAddressKey(address)
	if err != nil {
		return nil, fmt.Errorf("sqlite: mailbox entries: %w", err)
	}
	var out []storage.MailboxEntry
	err = s.read(ctx, "mailbox entries", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT source, hash, account, data FROM dir_mailboxes WHERE address_key = ? ORDER BY `+mailboxOrder, key)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMailboxEntry(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return fmt.Errorf("address %q: %w", address, storage.ErrNotFound)
		}
		return nil
	})
	return out, err
}

func insertLocalMailbox(ctx context.Context, tx *sql.Tx, acct storage.Account) error {
	m := storage.LocalMailboxEntry(acct)
	_, err := putMailbox(ctx, txExec{tx: tx, query: upsertMailbox}, nil, &m)
	return err
}

// txExec runs one statement on a transaction without preparing it.
type txExec struct {
	tx    *sql.Tx
	query string
}

func (e txExec) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	return e.tx.ExecContext(ctx, e.query, args...)
}

// backfillLocalMailboxes gives every account without one its local
// directory entry (databases created before the directory).
func backfillLocalMailboxes(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts a
WHERE NOT EXISTS (SELECT 1 FROM dir_mailboxes m WHERE m.address_key = a.addr_key AND m.source = 'local') ORDER BY id`)
	if err != nil {
		return err
	}
	var accts []storage.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			rows.Close()
			return err
		}
		accts = append(accts, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, a := range accts {
		if err := insertLocalMailbox(ctx, tx, a); err != nil {
			return fmt.Errorf("account %d: %w", a.ID, err)
		}
	}
	return nil
}

// PutCertificate stores a certificate, replacing the one with the same
// address and fingerprint.
func (s *Store) PutCertificate(ctx context.Context, c storage.Certificate) error {
	key, err := storage.DirectoryAddressKey(c.Address)
	if err != nil {
		return fmt.Errorf("sqlite: put certificate: %w", err)
	}
	fp := strings.ToLower(strings.TrimSpace(c.Fingerprint))
	if fp == "" || len(c.DER) == 0 {
		return fmt.Errorf("sqlite: put certificate: empty fingerprint or certificate: %w", storage.ErrInvalid)
	}
	if c.Source == "" {
		c.Source = storage.SourceAdmin
	}
	now := time.Now().UTC()
	return s.write(ctx, "put certificate", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO dir_certificates
(address_key, fingerprint, source, not_before, not_after, added, address, subject, der) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			key, fp, c.Source, unixNano(c.NotBefore), unixNano(c.NotAfter), unixNano(now), strings.TrimSpace(c.Address), c.Subject, c.DER)
		return err
	})
}

// Certificates lists an address's certificates, newest NotBefore first.
func (s *Store) Certificates(ctx context.Context, address string) ([]storage.Certificate, error) {
	key, err := storage.DirectoryAddressKey(address)
	if err != nil {
		return nil, fmt.Errorf("sqlite: certificates: %w", err)
	}
	var out []storage.Certificate
	err = s.read(ctx, "certificates", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT fingerprint, source, not_before, not_after, added, address, subject, der
FROM dir_certificates WHERE address_key = ? ORDER BY not_before DESC, fingerprint`, key)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c storage.Certificate
			var nb, na, added int64
			if err := rows.Scan(&c.Fingerprint, &c.Source, &nb, &na, &added, &c.Address, &c.Subject, &c.DER); err != nil {
				return err
			}
			c.NotBefore, c.NotAfter, c.Added = fromUnixNano(nb), fromUnixNano(na), fromUnixNano(added)
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

// DeleteCertificate removes one certificate (ErrNotFound when absent).
func (s *Store) DeleteCertificate(ctx context.Context, address, fingerprint string) error {
	key, err := storage.DirectoryAddressKey(address)
	if err != nil {
		return fmt.Errorf("sqlite: delete certificate: %w", err)
	}
	fp := strings.ToLower(strings.TrimSpace(fingerprint))
	return s.write(ctx, "delete certificate", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM dir_certificates WHERE address_key = ? AND fingerprint = ?`, key, fp)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("certificate %s of %q: %w", fp, address, storage.ErrNotFound)
		}
		return nil
	})
}

func (s *Store) trustQuery(ctx context.Context, op, what, query string, args ...any) ([]storage.TrustEntry, error) {
	var out []storage.TrustEntry
	err := s.read(ctx, op, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTrust(rows)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return fmt.Errorf("%s: %w", what, storage.ErrNotFound)
		}
		return nil
	})
	return out, err
}

// TrustByDomain returns the trust entries of a domain (ErrNotFound when the
// domain is not in the trust space).
func (s *Store) TrustByDomain(ctx context.Context, domain string) ([]storage.TrustEntry, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	return s.trustQuery(ctx, "trust by domain", fmt.Sprintf("domain %q", d),
		`SELECT hash, updated, data FROM dir_trust WHERE domain = ? ORDER BY operator_key`, d)
}

// TrustByOperator returns the entries whose operator certificate DN has
// this canonical key, by domain (ErrNotFound when there is none).
func (s *Store) TrustByOperator(ctx context.Context, operatorKey string) ([]storage.TrustEntry, error) {
	return s.trustQuery(ctx, "trust by operator", "operator", // the DN stays out of the error text
		`SELECT hash, updated, data FROM dir_trust WHERE operator_key = ? ORDER BY domain`, operatorKey)
}

// TrustEntries calls fn with every trust entry, by domain.
func (s *Store) TrustEntries(ctx context.Context, fn func(storage.TrustEntry) error) error {
	return s.read(ctx, "trust entries", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT hash, updated, data FROM dir_trust ORDER BY domain, operator_key`)
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
