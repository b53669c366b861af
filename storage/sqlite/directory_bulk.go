package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// Bulk import. Maintaining the search indexes row by row costs a random
// B-tree insert per index and per row, and with one durable transaction per
// batch every batch rewrites most pages of every such index (in the WAL,
// then at checkpoint): a first import of the national RPPS file spends
// nearly all its time there. Between BeginDirectoryBulk and
// EndDirectoryBulk those indexes are dropped; End recreates them, each by
// one sort (CREATE INDEX), one write job per index. Meanwhile every query
// still answers correctly, only searches are slow (table scans), and
// lookups by key are unaffected. If the process dies in between, the next
// Open recreates the indexes.

// deferredIndexes are the directory indexes whose keys arrive in random
// order; the others (primary keys, indexes led by a code and followed by
// the id) grow at a few insertion points and stay.
var deferredIndexes = []string{
	"dir_professionals_name", "dir_professionals_rev",
	"dir_activities_name", "dir_activities_rev", "dir_activities_city",
	"dir_organisations_finess", "dir_organisations_legal_finess", "dir_organisations_siret", "dir_organisations_siren",
	"dir_organisations_name", "dir_organisations_trade", "dir_organisations_place", "dir_organisations_place_trade", "dir_organisations_city",
	"dir_mailboxes_professional", "dir_mailboxes_organisation", "dir_mailboxes_name", "dir_mailboxes_rev",
	"dir_mailboxes_place", "dir_mailboxes_place_rev", "dir_mailboxes_city",
}

// BeginDirectoryBulk prepares a large import (a first import of a national
// file, or one that rewrites much of it): it drops the search indexes
// until EndDirectoryBulk. Calling it twice is harmless.
func (s *Store) BeginDirectoryBulk(ctx context.Context) error {
	return s.write(ctx, "begin directory bulk", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		for _, name := range deferredIndexes {
			var ddl string
			err := tx.QueryRowContext(ctx, `SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?`, name).Scan(&ddl)
			if err == sql.ErrNoRows {
				continue // already deferred
			}
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO dir_deferred_indexes (name, sql) VALUES (?, ?)`, name, ddl); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DROP INDEX `+name); err != nil {
				return err
			}
		}
		return nil
	})
}

// EndDirectoryBulk recreates the indexes BeginDirectoryBulk dropped, one
// write job each (so that mail delivery waits for one index at most), and
// refreshes the planner's statistics.
func (s *Store) EndDirectoryBulk(ctx context.Context) error {
	start := time.Now()
	for {
		done := false
		err := s.write(ctx, "end directory bulk", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
			var name, ddl string
			err := tx.QueryRowContext(ctx, `SELECT name, sql FROM dir_deferred_indexes ORDER BY name LIMIT 1`).Scan(&name, &ddl)
			if err == sql.ErrNoRows {
				done = true
				return nil
			}
			if err != nil {
				return err
			}
			return recreateIndex(ctx, tx, name, ddl)
		})
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	err := s.write(ctx, "analyze directory", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		return analyzeDirectory(ctx, tx)
	})
	s.log.Info("directory search indexes rebuilt", slog.Duration("elapsed", time.Since(start)))
	return err
}

func recreateIndex(ctx context.Context, tx *sql.Tx, name, ddl string) error {
	// The sort of CREATE INDEX may use helper threads
	// (https://sqlite.org/pragma.html#pragma_threads).
	if _, err := tx.ExecContext(ctx, `PRAGMA cache_size = -`+fmt.Sprint(writeCacheKiB)+`; PRAGMA threads = 2`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("recreate index %s: %w", name, err)
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM dir_deferred_indexes WHERE name = ?`, name)
	return err
}

// analyzeDirectory refreshes the statistics of the directory tables
// (sampled: https://sqlite.org/lang_analyze.html#approx).
func analyzeDirectory(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `PRAGMA analysis_limit = 1000`); err != nil {
		return err
	}
	for _, t := range []string{"dir_professionals", "dir_activities", "dir_organisations", "dir_mailboxes"} {
		if _, err := tx.ExecContext(ctx, `ANALYZE `+t); err != nil {
			return fmt.Errorf("analyze %s: %w", t, err)
		}
	}
	return nil
}

// rebuildDeferredIndexes recreates, at Open, indexes an unfinished bulk
// import left out.
func rebuildDeferredIndexes(ctx context.Context, tx *sql.Tx, log *slog.Logger) error {
	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM dir_deferred_indexes ORDER BY name`)
	if err != nil {
		return err
	}
	var pending [][2]string
	for rows.Next() {
		var n, d string
		if err := rows.Scan(&n, &d); err != nil {
			rows.Close()
			return err
		}
		pending = append(pending, [2]string{n, d})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range pending {
		if err := recreateIndex(ctx, tx, p[0], p[1]); err != nil {
			return err
		}
		log.Warn("directory index recreated after an unfinished bulk import", slog.String("index", p[0]))
	}
	return nil
}

// searchIndexes reports which directory indexes exist (all of them except
// during a bulk import), so that search names them with INDEXED BY only
// when they do.
func searchIndexes(ctx context.Context, tx *sql.Tx) (map[string]bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM dir_deferred_indexes`).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT name FROM dir_deferred_indexes`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	missing := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		missing[name] = true
	}
	return missing, rows.Err()
}
