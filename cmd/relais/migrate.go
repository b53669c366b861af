package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/relais-mssante/relais/storage/migrate"
)

// runMigrate moves an embedded installation (SQLite in its data directory)
// to PostgreSQL. The server must be stopped; the target must be empty.
func runMigrate(e *env, args []string) error {
	fs := newFlags(e, "migrate", "--from sqlite:DIR --to postgres://...",
		"copy an embedded installation's database (SQLite in DIR) into an empty PostgreSQL database, in one transaction; then run relais serve --data DIR --database URL")
	from := fs.String("from", "", "the source, `sqlite:DIR` (the data directory of the stopped server)")
	to := fs.String("to", "", "the target PostgreSQL `URL` (postgres://...), empty")
	schema := fs.String("schema", "", "PostgreSQL `SCHEMA` to use (default: the URL's search_path)")
	pos, err := parseFlags(fs, args)
	if err != nil || len(pos) > 0 || *from == "" || *to == "" {
		if err == nil {
			fs.Usage()
			err = errUsage
		}
		return err
	}
	dir, ok := strings.CutPrefix(*from, "sqlite:")
	if !ok || dir == "" {
		return fmt.Errorf("--from %q: want sqlite:DIR, the data directory", *from)
	}
	path := filepath.Join(dir, DatabaseFile)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("--from: no database in %s: %w", dir, err)
	}
	if err := validDatabaseURL(*to); err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := migrate.Run(ctx, path, *to, migrate.Options{
		Logger: discardLogger(),
		Schema: *schema,
		Progress: func(table string) {
			fmt.Fprintf(e.stderr, "copying %s\n", table)
		},
	})
	if err != nil {
		if errors.Is(err, migrate.ErrNotEmpty) {
			return fmt.Errorf("%w: migrate copies into an empty database only", err)
		}
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS")
	var total int64
	for _, t := range res.Tables {
		fmt.Fprintf(tw, "%s\t%d\n", t.Name, t.Rows)
		total += t.Rows
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "%d rows in %d tables copied to %s and checked, in one transaction.\n", total, len(res.Tables), redactURL(*to))
	if len(res.Ignored) > 0 {
		fmt.Fprintf(e.stdout, "Not needed on PostgreSQL: %s.\n", strings.Join(res.Ignored, ", "))
	}
	fmt.Fprintf(e.stdout, "Start the server with: relais serve --data %s --database URL (the data directory keeps the certificate authority).\n", dir)
	return nil
}
