package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// bearerAs authenticates every request as one account: the fuzz target is
// the REST surface, not the authentication.
type bearerAs struct{ a storage.Account }

func (b bearerAs) Account(*http.Request) (storage.Account, bool) { return b.a, true }

// FuzzREST sends arbitrary methods, paths, query strings and JSON bodies
// to the chat's REST surface (/api/v1/chat/), served by a real chat
// server over a real SQLite store where alice shares a room with bob and
// not with carol. The invariants: never a 5xx and never a recovered panic;
// every answer is JSON; and alice never obtains carol's room or its
// messages (a refusal is 403 or 404).
func FuzzREST(f *testing.F) {
	for _, s := range []struct{ method, path, body string }{
		{"GET", "me", ""},
		{"GET", "rooms", ""},
		{"POST", "rooms", `{"name":"Cercle de soins","kind":"patient","patientIns":"2 84 12 75 123 456 78","patientName":"PATIENT Deux","members":["bob@demo.relais.test"]}`},
		{"POST", "rooms", `{"name":"Equipe","kind":"team","members":["carol@demo.relais.test","nobody@demo.relais.test"]}`},
		{"POST", "direct", `{"address":"bob@demo.relais.test"}`},
		{"GET", "rooms/1", ""},
		{"GET", "rooms/2/messages?after=0&limit=50", ""},
		{"POST", "rooms/1/messages", `{"clientId":"c1","body":"bonjour @bob","mentions":[2]}`},
		{"POST", "rooms/1/members", `{"address":"carol@demo.relais.test"}`},
		{"DELETE", "rooms/1/members/2", ""},
		{"GET", "rooms/1/messages/1/history", ""},
		{"POST", "rooms/1/read", `{"seq":1}`},
		{"GET", "search?q=bonjour%20%22x%22%20OR%20*", ""},
		{"GET", "notifications?after=0", ""},
		{"POST", "notifications/read", `{"upTo":99}`},
		{"GET", "people?q=bob", ""},
		{"POST", "rooms/1/messages", `{"clientId":"` + strings.Repeat("x", 100) + `","body":""}`},
		{"POST", "rooms/-1/messages", `[]`},
	} {
		f.Add(s.method, s.path, s.body)
	}
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(f.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	if _, err := st.AddDomain(ctx, "demo.relais.test"); err != nil {
		f.Fatal(err)
	}
	acct := map[string]storage.Account{}
	for _, n := range []string{"alice", "bob", "carol"} {
		a, err := st.CreateAccount(ctx, n+"@demo.relais.test", n+" TEST", "x")
		if err != nil {
			f.Fatal(err)
		}
		acct[n] = a
	}
	if _, err := st.CreateRoom(ctx, storage.NewRoom{Kind: storage.RoomPatient, Name: "Cercle de soins test", PatientINS: "1 84 12 75 123 456 78",
		PatientName: "PATIENT Test", CreatedBy: acct["alice"].ID, Members: []storage.AccountID{acct["alice"].ID, acct["bob"].ID}}); err != nil {
		f.Fatal(err)
	}
	private, err := st.CreateRoom(ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: "Carol seule", CreatedBy: acct["carol"].ID,
		Members: []storage.AccountID{acct["carol"].ID}})
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := st.Post(ctx, storage.NewChatMessage{Room: private.ID, Sender: acct["carol"].ID, ClientID: "c", Kind: storage.ChatText, Body: "secret de carol"}); err != nil {
		f.Fatal(err)
	}
	srv, err := New(Config{Store: st, Tokens: bearerAs{acct["alice"]}, Directory: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	h := srv.Handler()

	f.Fuzz(func(t *testing.T, method, path, body string) {
		u, err := url.Parse(APIPrefix + path)
		if err != nil || !strings.HasPrefix(u.Path, APIPrefix) || !validMethod(method) {
			return // not a request that reaches the handler
		}
		req := httptest.NewRequest("GET", "http://relais.test/", bytes.NewReader([]byte(body)))
		req.Method, req.URL, req.RequestURI = method, u, u.RequestURI()
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, u, rec.Code, rec.Body)
		}
		if p := srv.Stats().Panics; p != 0 {
			t.Fatalf("%d panics recovered", p)
		}
		// net/http's own answers are not the API's: 405, and the
		// redirect of an unclean path ("/api/v1/chat/." to the clean one).
		mux := rec.Code == http.StatusMethodNotAllowed || rec.Code >= 300 && rec.Code < 400 && rec.Header().Get("Location") != ""
		if !mux && rec.Body.Len() > 0 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: %d, not JSON: %q", method, u, rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "secret de carol") {
			t.Fatalf("%s %s: carol's message leaked to alice: %s", method, u, rec.Body)
		}
	})
}

// validMethod: a method net/http would accept (RFC 9110 5.6.2 token).
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c > 0x7e || c <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", c) {
			return false
		}
	}
	return true
}
