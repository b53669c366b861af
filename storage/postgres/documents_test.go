package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

// docNodes opens two nodes with alice@example.org and one message in her
// INBOX.
func docNodes(t *testing.T) (a, b *Store, alice storage.Account, msg storage.Delivered) {
	t.Helper()
	a, b = queueNodes(t)
	ctx := context.Background()
	_, err := a.AddDomain(ctx, "example.org")
	require.NoError(t, err)
	alice, err = a.CreateAccount(ctx, "alice@example.org", "Alice", "h")
	require.NoError(t, err)
	msg, err = a.Append(ctx, alice.ID, "INBOX", storage.NewMessage{
		Raw: []byte("From: dpi@hopital.example\r\nTo: alice@example.org\r\nSubject: lettre de liaison\r\n\r\nCR\r\n")})
	require.NoError(t, err)
	return a, b, alice, msg
}

// TestDocumentsFeedTwoNodes: documents recorded on node A reach a
// subscriber of node B (LISTEN/NOTIFY), in order, and B reads them.
func TestDocumentsFeedTwoNodes(t *testing.T) {
	a, b, alice, d := docNodes(t)
	ctx := context.Background()
	sub := b.Subscribe(alice.ID)
	defer sub.Close()
	rec := storage.DocumentRecord{Account: alice.ID, Mailbox: d.Mailbox, UID: d.UID, MessageID: "cr@hopital.example",
		PatientINS: "255069912345678", INSKind: "NIR-test", Title: "Lettre de sortie\x00", Valid: true,
		Metadata: []byte(`{}`), Received: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	ids, err := a.AddDocuments(ctx, []storage.DocumentRecord{rec, rec})
	require.NoError(t, err)
	require.Len(t, ids, 2)

	var got []storage.Change
	timeout := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case <-sub.Ready():
			cs, lost := sub.Next()
			require.False(t, lost)
			for _, c := range cs {
				if c.Kind == storage.ChangeDocumentReceived {
					got = append(got, c)
				}
			}
		case <-timeout:
			t.Fatalf("node B saw %d of 2 document changes", len(got))
		}
	}
	for i, c := range got {
		assert.Equal(t, storage.Change{Kind: storage.ChangeDocumentReceived, Mailbox: d.Mailbox, UID: d.UID, Document: ids[i]}, c)
	}
	doc, err := b.Document(ctx, alice.ID, ids[1])
	require.NoError(t, err)
	assert.Equal(t, "Lettre de sortie", doc.Title, "NUL dropped: PostgreSQL text cannot hold it")
	byPatient, err := b.DocumentsByPatient(ctx, alice.ID, "255069912345678", 10)
	require.NoError(t, err)
	assert.Len(t, byPatient, 2)
}

// TestDocumentsUniqueTwoNodes: the same API token hash, or the same sent
// document id, created at once on two nodes: exactly one creation wins,
// the others get ErrExists.
func TestDocumentsUniqueTwoNodes(t *testing.T) {
	a, b, alice, _ := docNodes(t)
	ctx := context.Background()
	sum := sha256.Sum256([]byte("rls_shared"))
	hash := hex.EncodeToString(sum[:])
	const workers = 8
	race := func(create func(s *Store, w int) error) (ok, exists int) {
		t.Helper()
		var (
			mu sync.Mutex
			wg sync.WaitGroup
		)
		for w := range workers {
			s := a
			if w%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := create(s, w)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, storage.ErrExists):
					exists++
				default:
					t.Errorf("worker %d: %v", w, err)
				}
			}()
		}
		wg.Wait()
		return ok, exists
	}

	ok, exists := race(func(s *Store, w int) error {
		_, err := s.CreateAPIToken(ctx, storage.APIToken{Account: alice.ID, Name: fmt.Sprintf("DPI %d", w), Hash: hash})
		return err
	})
	assert.Equal(t, 1, ok)
	assert.Equal(t, workers-1, exists)
	toks, err := b.APITokens(ctx)
	require.NoError(t, err)
	require.Len(t, toks, 1)
	found, err := a.APITokenByHash(ctx, hash, time.Now())
	require.NoError(t, err)
	assert.Equal(t, toks[0].ID, found.ID)

	ok, exists = race(func(s *Store, w int) error {
		return s.AddSentDocument(ctx, storage.SentDocument{ID: "doc_shared", Account: alice.ID,
			MessageID: fmt.Sprintf("m%d@example.org", w), Recipients: []string{"gp@remote.example"}})
	})
	assert.Equal(t, 1, ok)
	assert.Equal(t, workers-1, exists)
	sd, err := b.SentDocument(ctx, alice.ID, "doc_shared")
	require.NoError(t, err)
	assert.Equal(t, []string{"gp@remote.example"}, sd.Recipients)
}
