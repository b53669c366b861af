package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/relais-mssante/relais/storage/dircodec"
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
//
// Two more things make the load cheap, none at the cost of durability
// (every batch is still committed with synchronous=FULL):
//   - Organisations are appended to dir_organisations_pending (migration
//     5) rather than inserted at random places of dir_organisations, and
//     merged by one sorted upsert at the end (or at the next Open).
//     Meanwhile a lookup by key finds a new one there (a scan) and an
//     updated one as it was; searches may miss them.
//   - The write connection checkpoints the WAL every bulkCheckpointPages
//     instead of after each batch
//     (https://sqlite.org/pragma.html#pragma_wal_autocheckpoint): a page
//     that several batches change is copied to the database once per
//     checkpoint instead of once per batch, and the WAL stays bounded.

// deferredIndexes are the directory indexes whose keys arrive in random
// order (dircodec.DeferredIndexes, the same in both stores).
var deferredIndexes = dircodec.DeferredIndexes

// BeginDirectoryBulk prepares a large import (a first import of a national
// file, or one that rewrites much of it): it drops the search indexes
// until EndDirectoryBulk. Calling it twice is harmless.
func (s *Store) BeginDirectoryBulk(ctx context.Context) error {
	return s.write(ctx, "begin directory bulk", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		bulkPragmas(ctx, tx)
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
	err := s.write(ctx, "end directory bulk", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		bulkPragmas(ctx, tx)
		return mergePendingOrganisations(ctx, tx)
	})
	if err != nil {
		return err
	}
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
	err = s.write(ctx, "analyze directory", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		// A batch written while the indexes were being rebuilt was still
		// in bulk mode.
		if err := mergePendingOrganisations(ctx, tx); err != nil {
			return err
		}
		if err := analyzeDirectory(ctx, tx); err != nil {
			return err
		}
		// Back to normal: this commit checkpoints what the bulk import
		// left in the WAL.
		normalPragmas(ctx, tx)
		return nil
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
	bulkPragmas(ctx, tx)
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
	return dropDirectoryStat4(ctx, tx)
}

// dropDirectoryStat4 removes the directory's rows of sqlite_stat4 (ANALYZE
// writes them: the driver's SQLite has SQLITE_ENABLE_STAT4), keeping
// sqlite_stat1. With stat4 samples, a statement whose parameter is
// compared to an indexed column is compiled again each time that
// parameter's value changes (https://sqlite.org/c3ref/prepare.html), which
// would undo the search's statement cache; the search names its indexes
// (INDEXED BY) and the other directory queries are seeks on keys, so the
// samples never improve a plan there.
func dropDirectoryStat4(ctx context.Context, tx *sql.Tx) error {
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat4')`).Scan(&exists); err != nil || !exists {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM sqlite_stat4 WHERE tbl IN ('dir_professionals', 'dir_activities', 'dir_organisations', 'dir_mailboxes', 'dir_trust')`)
	return err
}

// rebuildDeferredIndexes recreates, at Open, indexes an unfinished bulk
// import left out.
func rebuildDeferredIndexes(ctx context.Context, tx *sql.Tx, log *slog.Logger) error {
	if err := mergePendingOrganisations(ctx, tx); err != nil {
		return err
	}
	// Databases analysed before dropDirectoryStat4 existed.
	if err := dropDirectoryStat4(ctx, tx); err != nil {
		return err
	}
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

// inBulk reports whether a bulk import is running (some indexes are out).
func inBulk(ctx context.Context, tx *sql.Tx) (bool, error) {
	var bulk bool
	err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM dir_deferred_indexes)`).Scan(&bulk)
	return bulk, err
}

// bulkPragmas sets the write connection up for a bulk import (the comment
// at the top of this file); normalPragmas undoes it. Both apply to the
// connection, so to the write jobs that follow. (temp_store = MEMORY was
// tried: the sorts of CREATE INDEX then allocate and free each record,
// which costs more than the temporary files save.)
func bulkPragmas(ctx context.Context, tx *sql.Tx) {
	_, _ = tx.ExecContext(ctx, `PRAGMA wal_autocheckpoint = `+fmt.Sprint(bulkCheckpointPages))
}

// bulkCheckpointPages is the WAL size, in pages, that triggers a
// checkpoint during a bulk import (256 MiB of 4 KiB pages).
const bulkCheckpointPages = 65536

func normalPragmas(ctx context.Context, tx *sql.Tx) {
	// The WAL grew during the import: once checkpointed, it is cut back
	// to this size when it restarts
	// (https://sqlite.org/pragma.html#pragma_journal_size_limit).
	_, _ = tx.ExecContext(ctx, `PRAGMA journal_size_limit = 67108864`)
	_, _ = tx.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 1000`)
}

// mergePendingOrganisations moves the organisations a bulk import held
// back (schema, migration 5) into dir_organisations, by key order (one
// sort, then appends) and, for a key written twice, in arrival order: the
// first source to write a key owns it, as in ApplyDirectory.
func mergePendingOrganisations(ctx context.Context, tx *sql.Tx) error {
	var some bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM dir_organisations_pending)`).Scan(&some); err != nil {
		return fmt.Errorf("merge pending organisations: %w", err)
	}
	if !some {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR FAIL INTO dir_organisations (`+orgColumns+`)
SELECT `+orgColumns+` FROM dir_organisations_pending WHERE true ORDER BY id, seq `+orgUpsert); err != nil {
		return fmt.Errorf("merge pending organisations: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM dir_organisations_pending`); err != nil {
		return fmt.Errorf("merge pending organisations: %w", err)
	}
	return nil
}
