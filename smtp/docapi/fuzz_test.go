package docapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/relais-mssante/relais/document"
	"github.com/relais-mssante/relais/storage"
)

// fuzzStore knows one token and one account; the fuzz target exercises the
// request parsing, not the store (the other tests use the real one).
type fuzzStore struct{}

var fuzzAcct = storage.Account{ID: 1, Address: "dpi@hopital.test", Name: "DPI"}

func (fuzzStore) APITokenByHash(_ context.Context, hash string, _ time.Time) (storage.APIToken, error) {
	sum := sha256.Sum256([]byte("rls_fuzz"))
	if hash != hex.EncodeToString(sum[:]) {
		return storage.APIToken{}, storage.ErrNotFound
	}
	return storage.APIToken{ID: 1, Account: 1, Address: fuzzAcct.Address}, nil
}

func (fuzzStore) AccountByAddress(_ context.Context, a string) (storage.Account, error) {
	if a != fuzzAcct.Address {
		return storage.Account{}, storage.ErrNotFound
	}
	return fuzzAcct, nil
}

func (fuzzStore) AddSentDocument(context.Context, storage.SentDocument) error { return nil }

func (fuzzStore) SentDocument(context.Context, storage.AccountID, string) (storage.SentDocument, error) {
	return storage.SentDocument{}, storage.ErrNotFound
}

func (fuzzStore) DeliveryStatuses(context.Context, storage.AccountID, string) ([]storage.DeliveryStatus, error) {
	return nil, nil
}

type discardSender struct{}

func (discardSender) Send(context.Context, storage.Account, []string, []byte) error { return nil }

// FuzzSubmit: whatever the body, the handler answers a JSON reply with a
// known status and never panics.
func FuzzSubmit(f *testing.F) {
	const boundary = "xYzZY"
	f.Add(false, []byte(`{"recipients": ["gp@cabinet.example"], "cda": "PD94bWwgdmVyc2lvbj0iMS4wIj8+PENsaW5pY2FsRG9jdW1lbnQvPg=="}`))
	f.Add(false, []byte(`{"recipients": [], "cda": "*"}`))
	f.Add(false, []byte(`{"recipients": ["<a@b>", "a@b..c", "@b", "a@"], "cda": "AA==", "nil": "x", "noReply": true}`))
	f.Add(true, []byte("--"+boundary+"\r\nContent-Disposition: form-data; name=\"recipients\"\r\n\r\ngp@cabinet.example, b@c.example\r\n"+
		"--"+boundary+"\r\nContent-Disposition: form-data; name=\"cda\"; filename=\"l.xml\"\r\nContent-Type: application/hl7-cda+xml\r\n\r\n<?xml version=\"1.0\"?><ClinicalDocument/>\r\n"+
		"--"+boundary+"--\r\n"))
	f.Add(true, []byte("--"+boundary+"\r\nContent-Disposition: form-data; name=\"noReply\"\r\n\r\nmaybe\r\n--"+boundary+"--\r\n"))
	h := Handler(Config{Store: fuzzStore{}, Sender: discardSender{}, Build: document.Build, Hostname: "relais.test",
		Logger: slog.New(slog.DiscardHandler), MaxBody: 1 << 20})
	known := map[int]bool{201: true, 400: true, 413: true, 415: true, 422: true}
	f.Fuzz(func(t *testing.T, multipart bool, body []byte) {
		req := httptest.NewRequest("POST", Prefix, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer rls_fuzz")
		if multipart {
			req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !known[rec.Code] {
			t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("reply is not JSON: %q", rec.Body.Bytes())
		}
		if rec.Code == http.StatusCreated && rec.Header().Get("Location") == "" {
			t.Fatal("201 without Location")
		}
	})
}
