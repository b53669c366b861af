package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/relais-mssante/relais/storage"
)

// The audit log (storage.AuditStore), in migration 5 with the chat. It is
// append-only in the database itself: a trigger refuses every UPDATE,
// DELETE and TRUNCATE, whoever runs them.
//
// Ids come from the table's sequence: increasing in the order the entries
// are inserted. Two nodes appending at once may commit in the other order,
// so a reader paging with AfterID while entries are being written could
// pass over an entry that commits a moment later; an export that must be
// complete pages up to an id older than the transactions still running.
const schemaAudit = `
CREATE TABLE audit_log (
	id      BIGSERIAL PRIMARY KEY,
	time    BIGINT NOT NULL, -- unix nanoseconds
	account BIGINT NOT NULL,
	action  TEXT NOT NULL,
	object  TEXT NOT NULL,
	outcome TEXT NOT NULL,
	detail  TEXT NOT NULL
);
CREATE INDEX audit_log_account ON audit_log(account, id);
CREATE INDEX audit_log_time ON audit_log(time);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
`

// AppendAudit appends an entry to the audit log.
func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEntry) (storage.AuditID, error) {
	if err := storage.CheckAuditEntry(&e); err != nil {
		return 0, fmt.Errorf("postgres: append audit: %w", err)
	}
	var id storage.AuditID
	err := s.write(ctx, "append audit", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		return tx.QueryRow(ctx, `INSERT INTO audit_log (time, account, action, object, outcome, detail)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			e.Time.UnixNano(), e.Account, e.Action, e.Object, e.Outcome, e.Detail).Scan(&id)
	})
	return id, err
}

// Audit reads the audit log.
func (s *Store) Audit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEntry, error) {
	var where []string
	var args []any
	cond := func(expr string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(expr, len(args)))
	}
	if f.Account != 0 {
		cond("account = $%d", f.Account)
	}
	if f.Action != "" {
		cond("action = $%d", f.Action)
	}
	if f.Outcome != "" {
		cond("outcome = $%d", f.Outcome)
	}
	if !f.Since.IsZero() {
		cond("time >= $%d", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		cond("time < $%d", f.Until.UnixNano())
	}
	if f.AfterID > 0 {
		cond("id > $%d", f.AfterID)
	}
	q := `SELECT id, time, account, action, object, outcome, detail FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, storage.AuditLimit(f.Limit))
	q += fmt.Sprintf(" ORDER BY id LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.AuditEntry, error) {
		var e storage.AuditEntry
		var id, at, acct int64
		err := row.Scan(&id, &at, &acct, &e.Action, &e.Object, &e.Outcome, &e.Detail)
		e.ID, e.Time, e.Account = storage.AuditID(id), unixTime(at), storage.AccountID(acct)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: audit: %w", err)
	}
	return out, nil
}
