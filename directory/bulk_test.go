package directory_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/directory/synth"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// A first import past the threshold loads in bulk mode and leaves a
// searchable directory; a differential re-import does not enter it.
func TestImportBulkMode(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })

	var file bytes.Buffer
	require.NoError(t, synth.RPPS(&file, synth.Options{Rows: 3000, Seed: 7}))
	raw := file.Bytes()
	var phases []string
	opts := directory.Options{BatchSize: 500, BulkThreshold: 1000, Progress: func(p directory.Progress) {
		if p.Phase != "" {
			phases = append(phases, p.Phase)
		}
	}}
	sum, err := directory.Import(ctx, st, directory.FormatRPPS, bytes.NewReader(raw), opts)
	require.NoError(t, err)
	assert.True(t, sum.Bulk, "a first import of many entries loads in bulk")
	assert.Equal(t, []string{"rebuilding the search indexes"}, phases)
	assert.Zero(t, sum.Rejected)

	// The indexes are back: a name search finds a professional of the file.
	var any storage.Professional
	require.NoError(t, st.DirectoryHashes(ctx, storage.KindProfessional, storage.SourceRPPS, func(key string, _ uint64) error {
		if any.ID == "" {
			any, err = st.Professional(ctx, key)
		}
		return err
	}))
	page, err := st.SearchDirectory(ctx, storage.DirectoryQuery{Name: any.FamilyName + " " + any.GivenName, Limit: 200})
	require.NoError(t, err)
	found := false
	for _, h := range page.Hits {
		found = found || (h.Professional != nil && h.Professional.ID == any.ID)
	}
	assert.True(t, found, "%s %s not found after the bulk load", any.FamilyName, any.GivenName)

	// Re-import: nothing to write, no bulk mode.
	sum, err = directory.Import(ctx, st, directory.FormatRPPS, bytes.NewReader(raw), opts)
	require.NoError(t, err)
	assert.False(t, sum.Bulk)
	assert.Zero(t, sum.Batches)
}
