package postgres

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/postgres/pgtest"
	"github.com/relais-mssante/relais/storage/storagetest"
)

var _ storage.Store = (*Store)(nil)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// schemas maps a conformance test's directory to its schema, so that a
// reopen finds the same data; the schema is dropped when the test ends.
var schemas sync.Map

func openTest(t *testing.T, dir string) storage.Store {
	t.Helper()
	url := pgtest.URL(t)
	name, ok := schemas.Load(dir)
	if !ok {
		name, _ = schemas.LoadOrStore(dir, pgtest.Schema(t, dir))
	}
	s, err := Open(context.Background(), url, Options{Logger: quietLogger(), Schema: name.(string), MaxConns: 8})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, openTest)
}
