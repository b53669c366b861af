package statusapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/internal/httpauth"
	"github.com/relais-mssante/relais/smtp/statusapi"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// TestStatusAPI: a sender reads the status of each recipient of a message
// it sent, over HTTPS with its credentials; nobody else can.
func TestStatusAPI(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	_, err = st.AddDomain(ctx, "demo.test")
	require.NoError(t, err)
	cheap := authn.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
	accts := map[string]storage.Account{}
	for _, a := range []string{"dr@demo.test", "other@demo.test"} {
		h, err := authn.HashPassword("secret-"+a, cheap)
		require.NoError(t, err)
		accts[a], err = st.CreateAccount(ctx, a, a, h)
		require.NoError(t, err)
	}
	dr := accts["dr@demo.test"]
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, s := range []storage.DeliveryStatus{
		{MessageID: "m1@demo.test", Recipient: "gp@b.test", State: storage.StatusQueued, Updated: at},
		{MessageID: "m1@demo.test", Recipient: "gp@b.test", State: storage.StatusRelayed, Detail: "250 2.0.0 OK", Updated: at.Add(time.Minute)},
		{MessageID: "m1@demo.test", Recipient: "nurse@b.test", State: storage.StatusFailed, Detail: "550 5.1.1 no such user", Updated: at.Add(time.Minute)},
	} {
		require.NoError(t, st.SetDeliveryStatus(ctx, dr.ID, s))
	}

	srv := httptest.NewUnstartedServer(httpauth.New(authn.New(st, nil), httpauth.Options{}).Wrap(statusapi.Handler(st, slog.New(slog.DiscardHandler))))
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv.Listener = ln
	srv.StartTLS()
	t.Cleanup(srv.Close)
	get := func(user, id string) (*http.Response, []byte) {
		req, err := http.NewRequest("GET", srv.URL+statusapi.Prefix+url.PathEscape(id)+"/status", nil)
		require.NoError(t, err)
		req.SetBasicAuth(user, "secret-"+user)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b json.RawMessage
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
		return resp, b
	}

	resp, body := get("dr@demo.test", "<m1@demo.test>")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var ans statusapi.Answer
	require.NoError(t, json.Unmarshal(body, &ans))
	assert.Equal(t, "m1@demo.test", ans.MessageID)
	require.Len(t, ans.Recipients, 2)
	assert.Equal(t, statusapi.Recipient{Recipient: "gp@b.test", State: "relayed", Detail: "250 2.0.0 OK", Updated: at.Add(time.Minute)}, ans.Recipients[0])
	assert.Equal(t, "failed", ans.Recipients[1].State)
	assert.Equal(t, "550 5.1.1 no such user", ans.Recipients[1].Detail)

	// Another account, an unknown message: the same 404.
	resp, _ = get("other@demo.test", "m1@demo.test")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = get("dr@demo.test", "unknown@demo.test")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}
