package storagetest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

// Structured documents, API tokens and sent documents
// (storage.DocumentStore, part of every storage.Store).

func (e *env) documents(t *testing.T) storage.DocumentStore {
	t.Helper()
	return e.s
}

// docRecord is a synthetic discharge letter's record for a delivered copy
// (invented patient, test INS).
func docRecord(d storage.Delivered, ins, title string, received time.Time) storage.DocumentRecord {
	return storage.DocumentRecord{
		Account:     d.Account,
		Mailbox:     d.Mailbox,
		UID:         d.UID,
		MessageID:   "cr-" + title + "@hopital.example",
		Recipient:   "alice@example.org",
		PatientINS:  ins,
		INSKind:     "NIR-test",
		PatientName: "TESTUN Camille",
		TypeCode:    "11490-0",
		TypeDisplay: "Lettre de liaison à la sortie d'un établissement de soins",
		Title:       title,
		AuthorID:    "810000000001",
		AuthorName:  "Dr Exemple Interne",
		Custodian:   "CH Exemple",
		Valid:       true,
		Metadata:    []byte(`{"title":"` + title + `"}`),
		Received:    received,
	}
}

func tokenHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func testDocumentsAdd(t *testing.T, e *env) {
	ds := e.documents(t)
	sub := e.s.Subscribe(e.alice.ID)
	defer sub.Close()
	bobSub := e.s.Subscribe(e.bob.ID)
	defer bobSub.Close()
	d := e.append(t, e.alice.ID, "INBOX", textMessage("cr", "lettre de liaison"))
	at := time.Date(2026, 11, 23, 9, 0, 0, 123, time.UTC)
	in1 := docRecord(d, "255069912345678", "Lettre de sortie", at)
	in2 := docRecord(d, "255069912345678", "Compte rendu opératoire", at)
	in2.Valid, in2.Problems, in2.INSKind = false, "903 INS absent", ""
	in2.Metadata = nil
	drain(t, sub)

	ids, err := ds.AddDocuments(e.ctx, []storage.DocumentRecord{in1, in2})
	require.NoError(t, err)
	require.Len(t, ids, 2)
	assert.Less(t, ids[0], ids[1])

	// The feed: one change per document, on the owner's feed only, once
	// AddDocuments has returned (after the commit).
	chs := drain(t, sub)
	require.Len(t, chs, 2)
	for i, c := range chs {
		assert.Equal(t, storage.Change{Kind: storage.ChangeDocumentReceived, Mailbox: d.Mailbox, UID: d.UID, Document: ids[i]}, c)
	}
	assert.Empty(t, drain(t, bobSub))

	got, err := ds.Documents(e.ctx, e.alice.ID, d.Mailbox, d.UID)
	require.NoError(t, err)
	require.Len(t, got, 2)
	want1 := in1
	want1.ID = ids[0]
	assert.Equal(t, want1, got[0])
	assert.Equal(t, ids[1], got[1].ID)
	assert.False(t, got[1].Valid)
	assert.Equal(t, "903 INS absent", got[1].Problems)
	assert.Empty(t, got[1].Metadata)

	one, err := ds.Document(e.ctx, e.alice.ID, ids[0])
	require.NoError(t, err)
	assert.Equal(t, want1, one)
	_, err = ds.Document(e.ctx, e.alice.ID, ids[1]+100)
	require.ErrorIs(t, err, storage.ErrNotFound)

	// A copy without documents has none.
	d2 := e.append(t, e.alice.ID, "INBOX", textMessage("plain", "no document"))
	none, err := ds.Documents(e.ctx, e.alice.ID, d2.Mailbox, d2.UID)
	require.NoError(t, err)
	assert.Empty(t, none)

	// Nothing is recorded, nor published, when one record fails: a copy
	// that does not exist.
	drain(t, sub)
	bad := docRecord(storage.Delivered{Account: e.alice.ID, Mailbox: d.Mailbox, UID: d2.UID + 50}, "1", "x", at)
	_, err = ds.AddDocuments(e.ctx, []storage.DocumentRecord{docRecord(d2, "1", "ok", at), bad})
	require.ErrorIs(t, err, storage.ErrNotFound)
	assert.Empty(t, drain(t, sub))
	none, err = ds.Documents(e.ctx, e.alice.ID, d2.Mailbox, d2.UID)
	require.NoError(t, err)
	assert.Empty(t, none)

	// Metadata over 1 MiB.
	big := docRecord(d2, "1", "big", at)
	big.Metadata = []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	_, err = ds.AddDocuments(e.ctx, []storage.DocumentRecord{big})
	require.ErrorIs(t, err, storage.ErrTooLarge)
	big.Metadata = big.Metadata[:1<<20]
	_, err = ds.AddDocuments(e.ctx, []storage.DocumentRecord{big})
	require.NoError(t, err, "1 MiB exactly")
}

func testDocumentsIsolation(t *testing.T, e *env) {
	ds := e.documents(t)
	d := e.append(t, e.alice.ID, "INBOX", textMessage("cr", "pour alice"))
	ids, err := ds.AddDocuments(e.ctx, []storage.DocumentRecord{docRecord(d, "255069912345678", "Lettre", time.Now())})
	require.NoError(t, err)
	bob := e.bob.ID

	_, err = ds.Document(e.ctx, bob, ids[0])
	require.ErrorIs(t, err, storage.ErrNotFound)
	_, err = ds.Documents(e.ctx, bob, d.Mailbox, d.UID)
	require.ErrorIs(t, err, storage.ErrNotFound)
	byPatient, err := ds.DocumentsByPatient(e.ctx, bob, "255069912345678", 10)
	require.NoError(t, err)
	assert.Empty(t, byPatient)

	// A record naming Bob cannot point into Alice's mailbox.
	forged := docRecord(d, "255069912345678", "Forged", time.Now())
	forged.Account = bob
	_, err = ds.AddDocuments(e.ctx, []storage.DocumentRecord{forged})
	require.ErrorIs(t, err, storage.ErrNotFound)
	got, err := ds.Documents(e.ctx, e.alice.ID, d.Mailbox, d.UID)
	require.NoError(t, err)
	assert.Len(t, got, 1)
}

func testDocumentsByPatient(t *testing.T, e *env) {
	ds := e.documents(t)
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	var recs []storage.DocumentRecord
	for i, title := range []string{"first", "third", "second"} {
		d := e.append(t, e.alice.ID, "INBOX", textMessage("cr "+title, title))
		at := base.Add(map[string]time.Duration{"first": 0, "second": time.Hour, "third": 2 * time.Hour}[title])
		recs = append(recs, docRecord(d, "255069912345678", title, at))
		if i == 0 {
			recs = append(recs, docRecord(d, "155069912345679", "other patient", base.Add(5*time.Hour)))
			recs = append(recs, docRecord(d, "", "no INS", base.Add(6*time.Hour)))
		}
	}
	// Bob has a document about the same patient: not Alice's.
	bd := e.append(t, e.bob.ID, "INBOX", textMessage("cr bob", "bob"))
	recs = append(recs, docRecord(bd, "255069912345678", "bob's", base.Add(9*time.Hour)))
	_, err := ds.AddDocuments(e.ctx, recs)
	require.NoError(t, err)

	titles := func(ins string, limit int) []string {
		t.Helper()
		got, err := ds.DocumentsByPatient(e.ctx, e.alice.ID, ins, limit)
		require.NoError(t, err)
		out := []string{}
		for _, g := range got {
			assert.Equal(t, e.alice.ID, g.Account)
			out = append(out, g.Title)
		}
		return out
	}
	assert.Equal(t, []string{"third", "second", "first"}, titles("255069912345678", 10))
	assert.Equal(t, []string{"third", "second"}, titles("255069912345678", 2))
	assert.Equal(t, []string{"other patient"}, titles("155069912345679", 10))
	assert.Empty(t, titles("299999999999999", 10))
	_, err = ds.DocumentsByPatient(e.ctx, e.alice.ID, "", 10)
	require.ErrorIs(t, err, storage.ErrInvalid)
	_, err = ds.DocumentsByPatient(e.ctx, e.alice.ID, "255069912345678", 0)
	require.ErrorIs(t, err, storage.ErrInvalid)
}

func testAPITokens(t *testing.T, e *env) {
	ds := e.documents(t)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tok, err := ds.CreateAPIToken(e.ctx, storage.APIToken{Account: e.alice.ID, Name: "DPI CH Exemple", Hash: tokenHash("rls_one")})
	require.NoError(t, err)
	assert.NotZero(t, tok.ID)
	assert.WithinDuration(t, time.Now(), tok.Created, time.Minute)
	assert.True(t, tok.LastUsed.IsZero())
	assert.Equal(t, "alice@example.org", tok.Address)

	_, err = ds.CreateAPIToken(e.ctx, storage.APIToken{Account: e.bob.ID, Name: "again", Hash: tokenHash("rls_one")})
	require.ErrorIs(t, err, storage.ErrExists, "duplicate hash")
	_, err = ds.CreateAPIToken(e.ctx, storage.APIToken{Account: e.alice.ID + e.bob.ID + 100, Name: "x", Hash: tokenHash("rls_ghost")})
	require.ErrorIs(t, err, storage.ErrNotFound, "unknown account")
	_, err = ds.CreateAPIToken(e.ctx, storage.APIToken{Account: e.alice.ID, Name: "x", Hash: "not-hex"})
	require.ErrorIs(t, err, storage.ErrInvalid)

	expiring, err := ds.CreateAPIToken(e.ctx, storage.APIToken{Account: e.bob.ID, Name: "short", Hash: tokenHash("rls_two"), Expires: now.Add(time.Hour)})
	require.NoError(t, err)
	assert.True(t, expiring.Expires.Equal(now.Add(time.Hour)))

	found, err := ds.APITokenByHash(e.ctx, tokenHash("rls_one"), now)
	require.NoError(t, err)
	assert.Equal(t, tok.ID, found.ID)
	assert.Equal(t, e.alice.ID, found.Account)
	assert.Equal(t, "DPI CH Exemple", found.Name)
	assert.Equal(t, "alice@example.org", found.Address)
	assert.True(t, found.LastUsed.Equal(now), "use recorded: %v", found.LastUsed)
	_, err = ds.APITokenByHash(e.ctx, tokenHash("rls_unknown"), now)
	require.ErrorIs(t, err, storage.ErrNotFound)

	// Expiry: valid just before, not at the instant.
	_, err = ds.APITokenByHash(e.ctx, tokenHash("rls_two"), now.Add(time.Hour-time.Second))
	require.NoError(t, err)
	_, err = ds.APITokenByHash(e.ctx, tokenHash("rls_two"), now.Add(time.Hour))
	require.ErrorIs(t, err, storage.ErrNotFound)

	list, err := ds.APITokens(e.ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, tok.ID, list[0].ID)
	assert.Equal(t, expiring.ID, list[1].ID)
	assert.True(t, list[0].LastUsed.Equal(now), "LastUsed stored: %v", list[0].LastUsed)
	assert.Equal(t, tokenHash("rls_one"), list[0].Hash)
	assert.Equal(t, "bob@example.org", list[1].Address)

	require.NoError(t, ds.RevokeAPIToken(e.ctx, tok.ID))
	require.NoError(t, ds.RevokeAPIToken(e.ctx, tok.ID), "twice")
	_, err = ds.APITokenByHash(e.ctx, tokenHash("rls_one"), now.Add(time.Hour))
	require.ErrorIs(t, err, storage.ErrNotFound, "revoked")
	require.ErrorIs(t, ds.RevokeAPIToken(e.ctx, expiring.ID+100), storage.ErrNotFound)
	list, err = ds.APITokens(e.ctx)
	require.NoError(t, err)
	assert.True(t, list[0].Revoked)
	assert.False(t, list[1].Revoked)
}

func testSentDocuments(t *testing.T, e *env) {
	ds := e.documents(t)
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	sd := storage.SentDocument{ID: "doc_Ab3", Account: e.alice.ID, MessageID: "m1@example.org",
		Recipients: []string{"gp@remote.example", "bob@example.org"}, Created: at}
	require.NoError(t, ds.AddSentDocument(e.ctx, sd))
	err := ds.AddSentDocument(e.ctx, storage.SentDocument{ID: "doc_Ab3", Account: e.bob.ID, MessageID: "m2@example.org", Recipients: []string{"a@b.example"}})
	require.ErrorIs(t, err, storage.ErrExists)

	got, err := ds.SentDocument(e.ctx, e.alice.ID, "doc_Ab3")
	require.NoError(t, err)
	assert.Equal(t, sd.ID, got.ID)
	assert.Equal(t, e.alice.ID, got.Account)
	assert.Equal(t, sd.MessageID, got.MessageID)
	assert.Equal(t, sd.Recipients, got.Recipients)
	assert.True(t, got.Created.Equal(at))

	_, err = ds.SentDocument(e.ctx, e.bob.ID, "doc_Ab3")
	require.ErrorIs(t, err, storage.ErrNotFound, "another account's")
	_, err = ds.SentDocument(e.ctx, e.alice.ID, "doc_ab3")
	require.ErrorIs(t, err, storage.ErrNotFound, "ids are case-sensitive")
	err = ds.AddSentDocument(e.ctx, storage.SentDocument{ID: "x", Account: e.alice.ID + e.bob.ID + 100, MessageID: "m@x", Recipients: []string{"a@b.example"}})
	require.ErrorIs(t, err, storage.ErrNotFound)
	err = ds.AddSentDocument(e.ctx, storage.SentDocument{ID: "", Account: e.alice.ID, MessageID: "m@x", Recipients: []string{"a@b.example"}})
	require.ErrorIs(t, err, storage.ErrInvalid)
}

func testDocumentsPersistence(t *testing.T, e *env) {
	ds := e.documents(t)
	d := e.append(t, e.alice.ID, "INBOX", textMessage("cr", "persist"))
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	rec := docRecord(d, "255069912345678", "Lettre", at)
	ids, err := ds.AddDocuments(e.ctx, []storage.DocumentRecord{rec})
	require.NoError(t, err)
	tok, err := ds.CreateAPIToken(e.ctx, storage.APIToken{Account: e.alice.ID, Name: "DPI", Hash: tokenHash("rls_p")})
	require.NoError(t, err)
	require.NoError(t, ds.AddSentDocument(e.ctx, storage.SentDocument{ID: "doc_p", Account: e.alice.ID, MessageID: "m@example.org", Recipients: []string{"gp@remote.example"}}))

	e.reopen(t)
	ds = e.documents(t)
	got, err := ds.Document(e.ctx, e.alice.ID, ids[0])
	require.NoError(t, err)
	rec.ID = ids[0]
	assert.Equal(t, rec, got)
	found, err := ds.APITokenByHash(e.ctx, tokenHash("rls_p"), time.Now())
	require.NoError(t, err)
	assert.Equal(t, tok.ID, found.ID)
	sd, err := ds.SentDocument(e.ctx, e.alice.ID, "doc_p")
	require.NoError(t, err)
	assert.Equal(t, []string{"gp@remote.example"}, sd.Recipients)

	// Ids keep growing after a reopen.
	more, err := ds.AddDocuments(e.ctx, []storage.DocumentRecord{docRecord(d, "255069912345678", "Deuxième", at)})
	require.NoError(t, err)
	assert.Greater(t, more[0], ids[0])
}
