package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migration is one step of the schema. Append, never edit a released one.
// Each area of the store keeps its steps beside its code (schema_*.go).
type migration struct {
	version int
	name    string
	sql     string
}

// migrations in order; versions are 1, 2, 3, ... without gaps.
var migrations = []migration{
	{1, "mail", schemaMail},
	{2, "directory", schemaDirectory},
	{3, "queue", schemaQueue},
	{4, "documents", schemaDocuments},
	{5, "chat", schemaChat},
}

// migrationLock is the first half of the advisory lock key that serialises
// migrations between nodes starting together ("rlis"); the second is the
// schema's hash.
const migrationLock = 0x726c6973

// migrate applies the missing migrations in one transaction and returns the
// schema version. Nodes starting at once take turns (an advisory lock per
// schema).
func (s *Store) migrate(ctx context.Context) (int, error) {
	if s.schema != "" {
		if _, err := s.pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{s.schema}.Sanitize()); err != nil {
			return 0, fmt.Errorf("postgres: create schema: %w", err)
		}
	}
	version := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(migrationLock), s.schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			name    TEXT NOT NULL,
			applied TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
			return err
		}
		if version > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this binary's (%d)", version, len(migrations))
		}
		for _, m := range migrations[version:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return err
			}
			version = m.version
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: migrate: %w", err)
	}
	return version, nil
}
