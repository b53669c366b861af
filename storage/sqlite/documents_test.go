package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

// A database at schema 3 (before documents) gets the tables at Open, and
// its data stays.
func TestDocumentsMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relais.db")
	s, err := Open(path, Options{Logger: quietLogger()})
	require.NoError(t, err)
	_, err = s.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	a, err := s.CreateAccount(ctx, "alice@example.org", "Alice", "h")
	require.NoError(t, err)
	require.NoError(t, s.write(ctx, "downgrade", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		for _, table := range []string{"documents", "api_tokens", "sent_documents"} {
			if _, err := tx.ExecContext(ctx, `DROP TABLE `+table); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = 3`)
		return err
	}))
	require.NoError(t, s.Close())

	s, err = Open(path, Options{Logger: quietLogger()})
	require.NoError(t, err)
	defer s.Close()
	var version int
	require.NoError(t, s.rdb.QueryRow(`SELECT version FROM schema_version`).Scan(&version))
	assert.Equal(t, len(migrations), version)
	got, err := s.AccountByAddress(ctx, "alice@example.org")
	require.NoError(t, err)
	assert.Equal(t, a.ID, got.ID)
	h := sha256.Sum256([]byte("rls_x"))
	_, err = s.CreateAPIToken(ctx, storage.APIToken{Account: a.ID, Name: "DPI", Hash: hex.EncodeToString(h[:])})
	require.NoError(t, err)
}

// A token used again within a minute costs no write; LastUsed moves on
// after that.
func TestAPITokenUseGranularity(t *testing.T) {
	s, a := openStore(t)
	ctx := context.Background()
	h := sha256.Sum256([]byte("rls_granular"))
	hash := hex.EncodeToString(h[:])
	_, err := s.CreateAPIToken(ctx, storage.APIToken{Account: a.ID, Name: "DPI", Hash: hash})
	require.NoError(t, err)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	lastUsed := func() time.Time {
		ts, err := s.APITokens(ctx)
		require.NoError(t, err)
		return ts[0].LastUsed
	}
	_, err = s.APITokenByHash(ctx, hash, now)
	require.NoError(t, err)
	assert.True(t, lastUsed().Equal(now))
	tok, err := s.APITokenByHash(ctx, hash, now.Add(30*time.Second))
	require.NoError(t, err)
	assert.True(t, tok.LastUsed.Equal(now))
	assert.True(t, lastUsed().Equal(now), "not written again within a minute")
	_, err = s.APITokenByHash(ctx, hash, now.Add(2*time.Minute))
	require.NoError(t, err)
	assert.True(t, lastUsed().Equal(now.Add(2*time.Minute)))
}

// DocumentsByPatient walks its index backwards: no sort.
func TestDocumentsByPatientPlan(t *testing.T) {
	s, _ := openStore(t)
	rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN SELECT `+documentColumns+` FROM documents
		WHERE account = ? AND patient_ins = ? AND patient_ins != '' ORDER BY received DESC, id DESC LIMIT ?`, 1, "x", 10)
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	joined := strings.Join(plan, "\n")
	assert.Contains(t, joined, "documents_patient", "plan: %v", plan)
	assert.NotContains(t, joined, "TEMP B-TREE", "plan: %v", plan)
}

// Text fields from an untrusted CDA header are bounded and made valid
// UTF-8.
func TestDocumentFieldsBounded(t *testing.T) {
	s, a := openStore(t)
	ctx := context.Background()
	d, err := s.Append(ctx, a.ID, "INBOX", storage.NewMessage{Raw: []byte("Subject: x\r\n\r\ny\r\n")})
	require.NoError(t, err)
	ids, err := s.AddDocuments(ctx, []storage.DocumentRecord{{Account: a.ID, Mailbox: d.Mailbox, UID: d.UID,
		Title: strings.Repeat("é", 2000), AuthorName: "bad \xff byte", Problems: strings.Repeat("p", 20000)}})
	require.NoError(t, err)
	got, err := s.Document(ctx, a.ID, ids[0])
	require.NoError(t, err)
	assert.LessOrEqual(t, len(got.Title), maxDocText)
	assert.True(t, strings.HasPrefix(got.Title, "éé"))
	assert.Equal(t, "bad \uFFFD byte", got.AuthorName)
	assert.Len(t, got.Problems, maxDocProblems)
	assert.False(t, got.Received.IsZero())
}
