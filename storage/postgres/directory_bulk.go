package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/relais-mssante/relais/storage/dircodec"
)

// Bulk import (directory.BulkStore). A first import of the national RPPS
// file writes millions of rows whose search keys arrive in random order:
// each row costs a random btree insert (and its WAL) in every search
// index. Between BeginDirectoryBulk and EndDirectoryBulk those indexes
// (dircodec.DeferredIndexes) are dropped; End recreates each by one sort
// (CREATE INDEX), one transaction per index. Meanwhile every query still
// answers correctly on every node (the planner scans instead), and
// lookups by key keep their primary keys. Both take the directory lock
// (directory.go), so no batch is half-indexed. If the process dies in
// between, RebuildDirectoryIndexes (or the next EndDirectoryBulk) puts
// them back.

// BeginDirectoryBulk drops the directory's search indexes until
// EndDirectoryBulk. Calling it twice is harmless.
func (s *Store) BeginDirectoryBulk(ctx context.Context) error {
	return s.write(ctx, "begin directory bulk", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, int32(dirLock)); err != nil {
			return fmt.Errorf("directory lock: %w", err)
		}
		for _, name := range dircodec.DeferredIndexes {
			var ddl string
			err := tx.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1`, name).Scan(&ddl)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // already deferred
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO dir_deferred_indexes (name, sql) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET sql = excluded.sql`, name, ddl); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DROP INDEX `+pgx.Identifier{name}.Sanitize()); err != nil {
				return fmt.Errorf("drop index %s: %w", name, err)
			}
		}
		return nil
	})
}

// EndDirectoryBulk recreates the indexes BeginDirectoryBulk dropped, one
// transaction each (so that the directory's writers wait for one index at
// most; readers never wait), and refreshes the planner's statistics.
func (s *Store) EndDirectoryBulk(ctx context.Context) error {
	start := time.Now()
	if err := s.RebuildDirectoryIndexes(ctx); err != nil {
		return err
	}
	// https://www.postgresql.org/docs/15/sql-analyze.html
	err := s.write(ctx, "analyze directory", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		_, err := tx.Exec(ctx, `ANALYZE dir_professionals, dir_activities, dir_organisations, dir_mailboxes`)
		return err
	})
	s.log.Info("directory search indexes rebuilt", slog.Duration("elapsed", time.Since(start)))
	return err
}

// RebuildDirectoryIndexes recreates the search indexes an unfinished bulk
// import left out (none: nothing to do). Open-time callers use it after a
// crash.
func (s *Store) RebuildDirectoryIndexes(ctx context.Context) error {
	for {
		done := false
		err := s.write(ctx, "rebuild directory indexes", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, int32(dirLock)); err != nil {
				return fmt.Errorf("directory lock: %w", err)
			}
			var name, ddl string
			err := tx.QueryRow(ctx, `SELECT name, sql FROM dir_deferred_indexes ORDER BY name LIMIT 1`).Scan(&name, &ddl)
			if errors.Is(err, pgx.ErrNoRows) {
				done = true
				return nil
			}
			if err != nil {
				return err
			}
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1)`, name).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				if _, err := tx.Exec(ctx, ddl); err != nil {
					return fmt.Errorf("recreate index %s: %w", name, err)
				}
			}
			_, err = tx.Exec(ctx, `DELETE FROM dir_deferred_indexes WHERE name = $1`, name)
			return err
		})
		if err != nil || done {
			return err
		}
	}
}
