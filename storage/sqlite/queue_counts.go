package sqlite

import (
	"context"
	"database/sql"
)

// QueueCounts returns how many messages the queue holds and how many of
// their recipients are still pending (the metrics' queue depth): two
// COUNTs, the second on the partial index queue_recipients_due.
func (s *Store) QueueCounts(ctx context.Context) (entries, pending int64, err error) {
	err = s.read(ctx, "queue counts", func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM queue_entries`).Scan(&entries); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM queue_recipients WHERE state = 'pending'`).Scan(&pending)
	})
	return entries, pending, err
}
