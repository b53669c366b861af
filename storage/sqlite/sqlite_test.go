package sqlite

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/storagetest"
)

var _ storage.Store = (*Store)(nil)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t *testing.T, dir string) storage.Store {
	t.Helper()
	s, err := Open(filepath.Join(dir, "relais.db"), Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, openTest)
}
