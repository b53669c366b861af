package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// TokenStore is what BearerTokens needs of storage.
type TokenStore interface {
	APITokenByHash(ctx context.Context, hash string, now time.Time) (storage.APIToken, error)
	AccountByAddress(ctx context.Context, address string) (storage.Account, error)
}

// BearerTokens authenticates non-browser clients with the API tokens of
// the documents API ("Authorization: Bearer <secret>", RFC 6750 2.1).
type BearerTokens struct {
	Store TokenStore
	Now   func() time.Time // time.Now when nil
}

// Account implements Authenticator.
func (b BearerTokens) Account(r *http.Request) (storage.Account, bool) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	// The scheme is case-insensitive (RFC 9110 11.1).
	if !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > 512 {
		return storage.Account{}, false
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	sum := sha256.Sum256([]byte(token))
	tok, err := b.Store.APITokenByHash(r.Context(), hex.EncodeToString(sum[:]), now())
	if err != nil {
		return storage.Account{}, false
	}
	acct, err := b.Store.AccountByAddress(r.Context(), tok.Address)
	if err != nil || acct.ID != tok.Account {
		return storage.Account{}, false
	}
	return acct, true
}
