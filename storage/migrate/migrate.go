// Package migrate moves an embedded installation's data from SQLite to
// PostgreSQL (relais migrate).
//
// The PostgreSQL schema mirrors SQLite's: the same tables, columns and
// value encodings (storage/postgres). So the move is a copy, table by
// table, of the columns both sides have, in foreign-key order, in ONE
// PostgreSQL transaction: either everything arrives or nothing does. Both
// schemas are first brought up to date by opening each store once. Tables
// only SQLite has (its FTS5 index, bulk-import staging) are rebuilt or not
// needed on PostgreSQL; PostgreSQL's generated columns compute themselves.
// After the copy, every sequence restarts above the largest id copied, and
// both sides are read back and compared (row counts and a digest of every
// row's values) before the commit.
package migrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/postgres"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// ErrNotEmpty is returned when the target database already holds data.
var ErrNotEmpty = errors.New("migrate: the PostgreSQL database already holds data")

// Table is what was copied of one table.
type Table struct {
	Name    string
	Rows    int64
	Columns int
	Skipped []string // SQLite columns PostgreSQL does not have
}

// Result is what Run did.
type Result struct {
	Tables  []Table
	Ignored []string // SQLite tables without a PostgreSQL counterpart
}

// Options configures Run.
type Options struct {
	Logger *slog.Logger
	// Schema is the PostgreSQL schema (empty: the URL's search_path).
	Schema string
	// Progress, when set, is told each table as it starts.
	Progress func(table string)
}

// Run copies the SQLite database at sqlitePath into the PostgreSQL database
// at pgURL, which must hold no data yet.
func Run(ctx context.Context, sqlitePath, pgURL string, opts Options) (Result, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	// Open each store once: both schemas at this binary's version.
	ss, err := sqlite.Open(sqlitePath, sqlite.Options{Logger: log})
	if err != nil {
		return Result{}, fmt.Errorf("migrate: source: %w", err)
	}
	if err := ss.Close(); err != nil {
		return Result{}, fmt.Errorf("migrate: source: %w", err)
	}
	ps, err := postgres.Open(ctx, pgURL, postgres.Options{Logger: log, Schema: opts.Schema})
	if err != nil {
		return Result{}, fmt.Errorf("migrate: target: %w", err)
	}
	if err := ps.Close(); err != nil {
		return Result{}, fmt.Errorf("migrate: target: %w", err)
	}

	src, err := sql.Open("sqlite", (&url.URL{Scheme: "file", OmitHost: true, Path: sqlitePath}).String()+
		"?_pragma=query_only(1)&_pragma=busy_timeout(30000)")
	if err != nil {
		return Result{}, fmt.Errorf("migrate: source: %w", err)
	}
	defer src.Close()
	src.SetMaxOpenConns(1)

	cfg, err := pgx.ParseConfig(pgURL)
	if err != nil {
		return Result{}, fmt.Errorf("migrate: target: %w", err)
	}
	if opts.Schema != "" {
		cfg.RuntimeParams["search_path"] = opts.Schema
	}
	dst, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return Result{}, fmt.Errorf("migrate: target: %w", err)
	}
	defer dst.Close(context.Background())

	// One read transaction on SQLite: a consistent snapshot even if a
	// server still writes (it should be stopped).
	stx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Result{}, fmt.Errorf("migrate: source: %w", err)
	}
	defer stx.Rollback()

	var res Result
	err = pgx.BeginFunc(ctx, dst, func(tx pgx.Tx) error {
		var r error
		res, r = copyAll(ctx, stx, tx, opts.Progress)
		return r
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

func copyAll(ctx context.Context, src *sql.Tx, dst pgx.Tx, progress func(string)) (Result, error) {
	var res Result
	srcTables, err := sqliteTables(ctx, src)
	if err != nil {
		return res, err
	}
	dstTables, err := pgTables(ctx, dst)
	if err != nil {
		return res, err
	}
	for _, t := range srcTables {
		if _, ok := dstTables[t]; !ok || sqliteOnly[t] {
			res.Ignored = append(res.Ignored, t)
			delete(dstTables, t)
		}
	}
	order, err := pgTableOrder(ctx, dst, dstTables)
	if err != nil {
		return res, err
	}
	// The target must be empty: a second run, or a run into a live
	// cluster, must not mix two installations.
	for _, t := range order {
		if !slices.Contains(srcTables, t) {
			continue
		}
		var n int64
		if err := dst.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
			return res, fmt.Errorf("migrate: counting %s: %w", t, err)
		}
		if n > 0 {
			return res, fmt.Errorf("%w (table %s has %d rows)", ErrNotEmpty, t, n)
		}
	}
	for _, t := range order {
		if !slices.Contains(srcTables, t) {
			continue
		}
		if progress != nil {
			progress(t)
		}
		tr, err := copyTable(ctx, src, dst, t, dstTables[t])
		if err != nil {
			return res, err
		}
		res.Tables = append(res.Tables, tr)
	}
	if err := resetSequences(ctx, dst); err != nil {
		return res, err
	}
	if slices.ContainsFunc(res.Tables, func(t Table) bool { return t.Name == "chat_messages" }) {
		if err := fillChatSearch(ctx, dst); err != nil {
			return res, err
		}
	}
	// Read both sides back and compare them, inside the transaction: a
	// difference rolls everything back.
	for _, tr := range res.Tables {
		if err := verifyTable(ctx, src, dst, tr, dstTables[tr.Name]); err != nil {
			return res, err
		}
	}
	return res, nil
}

// verifyTable compares a copied table's rows on both sides: their number
// and an order-independent digest of their values (the sum of each row's
// SHA-256, as PostgreSQL holds it and as the copy converted SQLite's).
func verifyTable(ctx context.Context, src *sql.Tx, dst pgx.Tx, tr Table, pgCols []column) error {
	srcCols, err := sqliteColumns(ctx, src, tr.Name)
	if err != nil {
		return err
	}
	cols := slices.DeleteFunc(slices.Clone(pgCols), func(c column) bool { return !slices.Contains(srcCols, c.name) })
	quoted := make([]string, len(cols))
	pgQuoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = quoteSQLite(c.name)
		pgQuoted[i] = pgx.Identifier{c.name}.Sanitize()
	}
	var srcDigest, dstDigest rowDigest
	rows, err := src.QueryContext(ctx, "SELECT "+strings.Join(quoted, ", ")+" FROM "+quoteSQLite(tr.Name))
	if err != nil {
		return fmt.Errorf("migrate: verifying %s: %w", tr.Name, err)
	}
	in := &rowSource{rows: rows, cols: cols, table: tr.Name}
	for in.Next() {
		srcDigest.add(in.vals)
	}
	rows.Close()
	if in.err != nil {
		return fmt.Errorf("migrate: verifying %s: %w", tr.Name, in.err)
	}
	prows, err := dst.Query(ctx, "SELECT "+strings.Join(pgQuoted, ", ")+" FROM "+pgx.Identifier{tr.Name}.Sanitize())
	if err != nil {
		return fmt.Errorf("migrate: verifying %s: %w", tr.Name, err)
	}
	for prows.Next() {
		vals, err := prows.Values()
		if err != nil {
			prows.Close()
			return fmt.Errorf("migrate: verifying %s: %w", tr.Name, err)
		}
		dstDigest.add(vals)
	}
	prows.Close()
	if err := prows.Err(); err != nil {
		return fmt.Errorf("migrate: verifying %s: %w", tr.Name, err)
	}
	if srcDigest != dstDigest {
		return fmt.Errorf("migrate: %s: %d rows in SQLite, %d in PostgreSQL after the copy, and their contents differ", tr.Name, srcDigest.rows, dstDigest.rows)
	}
	return nil
}

// rowDigest sums row hashes: equal for the same multiset of rows in any
// order.
type rowDigest struct {
	rows int64
	sum  [4]uint64
}

func (d *rowDigest) add(vals []any) {
	h := sha256.New()
	var buf [8]byte
	for _, v := range vals {
		switch x := v.(type) {
		case nil:
			h.Write([]byte{0})
		case bool:
			h.Write([]byte{1})
			if x {
				h.Write([]byte{1})
			} else {
				h.Write([]byte{0})
			}
		case int64:
			h.Write([]byte{2})
			binary.BigEndian.PutUint64(buf[:], uint64(x))
			h.Write(buf[:])
		case int32:
			h.Write([]byte{2})
			binary.BigEndian.PutUint64(buf[:], uint64(int64(x)))
			h.Write(buf[:])
		case int16:
			h.Write([]byte{2})
			binary.BigEndian.PutUint64(buf[:], uint64(int64(x)))
			h.Write(buf[:])
		case float64:
			h.Write([]byte{3})
			binary.BigEndian.PutUint64(buf[:], math.Float64bits(x))
			h.Write(buf[:])
		case string:
			h.Write([]byte{4})
			binary.BigEndian.PutUint64(buf[:], uint64(len(x)))
			h.Write(buf[:])
			h.Write([]byte(x))
		case []byte:
			h.Write([]byte{4}) // text and bytes compare alike
			binary.BigEndian.PutUint64(buf[:], uint64(len(x)))
			h.Write(buf[:])
			h.Write(x)
		default:
			fmt.Fprintf(h, "\x05%T:%v", x, x)
		}
	}
	sum := h.Sum(nil)
	d.rows++
	for i := range d.sum {
		d.sum[i] += binary.BigEndian.Uint64(sum[8*i:])
	}
}

// sqliteOnly are tables both schemas have that only matter to the SQLite
// store's own bookkeeping: the bulk import's staging of organisations
// (merged when the SQLite store opens) and its deferred indexes (the
// PostgreSQL store rebuilds its own at open).
var sqliteOnly = map[string]bool{"dir_organisations_pending": true, "dir_deferred_indexes": true}

// sqliteTables lists the ordinary tables (not SQLite's own, not virtual
// tables or their shadow tables).
func sqliteTables(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("migrate: listing SQLite tables: %w", err)
	}
	defer rows.Close()
	var out, virtual []string
	for rows.Next() {
		var name string
		var ddl sql.NullString
		if err := rows.Scan(&name, &ddl); err != nil {
			return nil, fmt.Errorf("migrate: listing SQLite tables: %w", err)
		}
		if strings.HasPrefix(strings.ToUpper(ddl.String), "CREATE VIRTUAL TABLE") {
			virtual = append(virtual, name)
			continue
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: listing SQLite tables: %w", err)
	}
	// Shadow tables of a virtual table are named after it (chat_fts_data).
	return slices.DeleteFunc(out, func(name string) bool {
		for _, v := range virtual {
			if strings.HasPrefix(name, v+"_") {
				return true
			}
		}
		return false
	}), nil
}

// column is a PostgreSQL column the copy may write.
type column struct {
	name string
	typ  string // information_schema data_type
}

// pgTables maps each table of the current schema to its writable columns
// (not generated), in ordinal order.
func pgTables(ctx context.Context, tx pgx.Tx) (map[string][]column, error) {
	rows, err := tx.Query(ctx, `SELECT c.table_name, c.column_name, c.data_type
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
		  AND c.is_generated = 'NEVER' AND c.table_name <> 'schema_migrations'
		ORDER BY c.table_name, c.ordinal_position`)
	if err != nil {
		return nil, fmt.Errorf("migrate: listing PostgreSQL tables: %w", err)
	}
	defer rows.Close()
	out := map[string][]column{}
	for rows.Next() {
		var t string
		var c column
		if err := rows.Scan(&t, &c.name, &c.typ); err != nil {
			return nil, fmt.Errorf("migrate: listing PostgreSQL tables: %w", err)
		}
		out[t] = append(out[t], c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: listing PostgreSQL tables: %w", err)
	}
	return out, nil
}

// pgTableOrder sorts the tables so that each comes after the tables its
// foreign keys reference.
func pgTableOrder(ctx context.Context, tx pgx.Tx, tables map[string][]column) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT cl.relname, ref.relname
		FROM pg_constraint co
		JOIN pg_class cl ON cl.oid = co.conrelid
		JOIN pg_class ref ON ref.oid = co.confrelid
		WHERE co.contype = 'f' AND cl.relnamespace = current_schema()::regnamespace`)
	if err != nil {
		return nil, fmt.Errorf("migrate: reading foreign keys: %w", err)
	}
	defer rows.Close()
	deps := map[string][]string{}
	for rows.Next() {
		var t, ref string
		if err := rows.Scan(&t, &ref); err != nil {
			return nil, fmt.Errorf("migrate: reading foreign keys: %w", err)
		}
		if t != ref {
			deps[t] = append(deps[t], ref)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: reading foreign keys: %w", err)
	}
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	sort.Strings(names)
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(t string) error {
		switch state[t] {
		case 1:
			return fmt.Errorf("migrate: foreign keys form a cycle through %s", t)
		case 2:
			return nil
		}
		state[t] = 1
		for _, d := range deps[t] {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[t] = 2
		order = append(order, t)
		return nil
	}
	for _, t := range names {
		if err := visit(t); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// copyTable streams one table with COPY.
func copyTable(ctx context.Context, src *sql.Tx, dst pgx.Tx, table string, pgCols []column) (Table, error) {
	srcCols, err := sqliteColumns(ctx, src, table)
	if err != nil {
		return Table{}, err
	}
	tr := Table{Name: table}
	var cols []column
	for _, sc := range srcCols {
		i := slices.IndexFunc(pgCols, func(c column) bool { return c.name == sc })
		if i < 0 {
			tr.Skipped = append(tr.Skipped, sc)
			continue
		}
		cols = append(cols, pgCols[i])
	}
	tr.Columns = len(cols)
	if len(cols) == 0 {
		return tr, fmt.Errorf("migrate: %s: no column in common", table)
	}
	names := make([]string, len(cols))
	quoted := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
		quoted[i] = quoteSQLite(c.name)
	}
	rows, err := src.QueryContext(ctx, "SELECT "+strings.Join(quoted, ", ")+" FROM "+quoteSQLite(table))
	if err != nil {
		return tr, fmt.Errorf("migrate: reading %s: %w", table, err)
	}
	defer rows.Close()
	in := &rowSource{rows: rows, cols: cols, table: table}
	n, err := dst.CopyFrom(ctx, pgx.Identifier{table}, names, in)
	if err != nil {
		if in.err != nil {
			err = in.err
		}
		return tr, fmt.Errorf("migrate: copying %s: %w", table, err)
	}
	if in.err != nil {
		return tr, in.err
	}
	tr.Rows = n
	return tr, nil
}

func sqliteColumns(ctx context.Context, tx *sql.Tx, table string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT name FROM pragma_table_info(?) ORDER BY cid", table)
	if err != nil {
		return nil, fmt.Errorf("migrate: columns of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("migrate: columns of %s: %w", table, err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// rowSource feeds SQLite rows to COPY, converting SQLite's storage classes
// to the PostgreSQL column types.
type rowSource struct {
	rows  *sql.Rows
	cols  []column
	table string
	vals  []any
	err   error
}

func (r *rowSource) Next() bool {
	if r.err != nil || !r.rows.Next() {
		if r.err == nil {
			if err := r.rows.Err(); err != nil {
				r.err = fmt.Errorf("migrate: reading %s: %w", r.table, err)
			}
		}
		return false
	}
	raw := make([]any, len(r.cols))
	ptrs := make([]any, len(r.cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		r.err = fmt.Errorf("migrate: reading %s: %w", r.table, err)
		return false
	}
	for i, c := range r.cols {
		v, err := convert(raw[i], c.typ)
		if err != nil {
			r.err = fmt.Errorf("migrate: %s.%s: %w", r.table, c.name, err)
			return false
		}
		raw[i] = v
	}
	r.vals = raw
	return true
}

func (r *rowSource) Values() ([]any, error) { return r.vals, nil }

func (r *rowSource) Err() error { return r.err }

// convert maps a value as SQLite returned it to what pgx encodes for the
// column's type.
func convert(v any, pgType string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch pgType {
	case "boolean":
		switch x := v.(type) {
		case int64:
			return x != 0, nil
		case bool:
			return x, nil
		}
	case "bytea":
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case "text", "character varying":
		switch x := v.(type) {
		case string:
			return pgText(x), nil
		case []byte:
			return pgText(string(x)), nil
		case int64:
			return fmt.Sprint(x), nil
		}
	case "bigint", "integer", "smallint":
		switch x := v.(type) {
		case int64:
			return x, nil
		}
	case "double precision", "real", "numeric":
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		}
	default:
		return v, nil
	}
	return nil, fmt.Errorf("a %T value for a %s column", v, pgType)
}

// pgText makes a string PostgreSQL's TEXT can hold: SQLite accepts NUL
// bytes and invalid UTF-8, which the stores refuse today but older rows may
// hold; they become U+FFFD.
func pgText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// resetSequences restarts every sequence owned by a column above the
// column's largest value.
func resetSequences(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT s.relname, t.relname, a.attname
		FROM pg_class s
		JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')
		JOIN pg_class t ON t.oid = d.refobjid
		JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
		WHERE s.relkind = 'S' AND s.relnamespace = current_schema()::regnamespace`)
	if err != nil {
		return fmt.Errorf("migrate: listing sequences: %w", err)
	}
	type seq struct{ seq, table, col string }
	var seqs []seq
	for rows.Next() {
		var s seq
		if err := rows.Scan(&s.seq, &s.table, &s.col); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: listing sequences: %w", err)
		}
		seqs = append(seqs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: listing sequences: %w", err)
	}
	for _, s := range seqs {
		q := fmt.Sprintf(`SELECT setval(%s, coalesce((SELECT max(%s) FROM %s), 0) + 1, false)`,
			quoteLiteral(pgx.Identifier{s.seq}.Sanitize()), pgx.Identifier{s.col}.Sanitize(), pgx.Identifier{s.table}.Sanitize())
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("migrate: restarting %s: %w", s.seq, err)
		}
	}
	return nil
}

// fillChatSearch computes chat_messages.search_key, which only the
// PostgreSQL store has (SQLite keeps the same folded words in its FTS5
// index): the current body of every live message, folded as the store
// folds it when a message is posted or edited.
func fillChatSearch(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT id, body FROM chat_messages
		WHERE kind IN ('text', 'system', 'document') AND deleted = 0`)
	if err != nil {
		return fmt.Errorf("migrate: chat search: %w", err)
	}
	var ids []int64
	var keys []string
	for rows.Next() {
		var id int64
		var body string
		if err := rows.Scan(&id, &body); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: chat search: %w", err)
		}
		ids = append(ids, id)
		keys = append(keys, storage.ChatSearchText(body))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: chat search: %w", err)
	}
	for len(ids) > 0 {
		n := min(len(ids), 5000)
		if _, err := tx.Exec(ctx, `UPDATE chat_messages m SET search_key = u.key
			FROM unnest($1::bigint[], $2::text[]) AS u(id, key) WHERE m.id = u.id`, ids[:n], keys[:n]); err != nil {
			return fmt.Errorf("migrate: chat search: %w", err)
		}
		ids, keys = ids[n:], keys[n:]
	}
	return nil
}

func quoteSQLite(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
