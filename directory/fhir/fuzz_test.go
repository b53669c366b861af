package fhir

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/relais-mssante/relais/storage/sqlite"
)

// FuzzSearch sends arbitrary query strings (FHIR R4 search parameters,
// search.html) and ids to every endpoint of the handler, over a real SQLite
// directory filled with the synthetic professionals of fill. The
// invariants: never a 5xx; every answer is FHIR JSON that the structural
// validator accepts (a Bundle or a resource on success, an
// OperationOutcome on error); a search's Bundle never holds more entries
// than the _count asked for, nor more than MaxCount.
func FuzzSearch(f *testing.F) {
	for _, s := range []struct {
		path, query string
		strict      bool
	}{
		{"/fhir/Practitioner", "name=berthier&_count=5", false},
		{"/fhir/Practitioner", "family=BERTHIER&given=Camille0&identifier=http://rpps.fr|" + proID(1)[1:], false},
		{"/fhir/Practitioner", "mailbox-mss:exact=" + url.QueryEscape(proMail(3)), true},
		{"/fhir/Practitioner", "identifier=urn:oid:1.2.250.1.71.4.2.1|" + proID(2) + "&_offset=20&_count=1", false},
		{"/fhir/PractitionerRole", "practitioner=Practitioner/" + proID(1) + "&organization=" + chID + "&_cursor=0.1", false},
		{"/fhir/PractitionerRole", "role=10&specialty=SM54&_count=2", true},
		{"/fhir/Organization", "name=glycines&identifier=" + chFINESS + "&address-postalcode=75014", false},
		{"/fhir/Organization", "_count=0&name:contains=x,y&unknown=1", true},
		{"/fhir/Practitioner/" + proID(1), "", false},
		{"/fhir/Organization/" + chID, "", false},
		{"/fhir/PractitionerRole/" + proID(1) + "-s1", "", false},
		{"/fhir/metadata", "_format=json", false},
		{"/fhir/Practitioner", "name=%ff%fe&_count=99999999999999999999", false},
	} {
		f.Add(s.path, s.query, s.strict)
	}
	dir, err := os.MkdirTemp("", "relais-fhir-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	st, err := sqlite.Open(filepath.Join(dir, "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	h := Handler(st, slog.New(slog.DiscardHandler))
	var fillOnce sync.Once

	f.Fuzz(func(t *testing.T, path, query string, strict bool) {
		fillOnce.Do(func() { fill(t, st) }) // fill wants a *testing.T
		u, err := url.Parse("https://relais.test" + path)
		if err != nil || u.Path == "" {
			return // not a request a client can send
		}
		u.RawQuery = query
		req := httptest.NewRequest("GET", "https://relais.test/", nil)
		req.URL, req.RequestURI = u, u.RequestURI()
		if strict {
			req.Header.Set("Prefer", "handling=strict")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("GET %s: %d\n%s", u, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusMovedPermanently || rec.Code == http.StatusTemporaryRedirect || rec.Code == http.StatusPermanentRedirect {
			return // the mux cleaning a path ("/fhir/./x"): no FHIR yet
		}
		var res map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatalf("GET %s: %d, not JSON: %v\n%s", u, rec.Code, err, rec.Body)
		}
		if errs := validate(res); len(errs) > 0 {
			t.Fatalf("GET %s: %d, invalid FHIR: %v\n%s", u, rec.Code, errs, rec.Body)
		}
		rt, _ := res["resourceType"].(string)
		if rec.Code != http.StatusOK && rt != "OperationOutcome" {
			t.Fatalf("GET %s: %d with a %s", u, rec.Code, rt)
		}
		if rt == "Bundle" {
			entries, _ := res["entry"].([]any)
			limit := DefaultCount
			if q, _ := url.ParseQuery(query); q.Has("_count") { // partial on error, as the server reads it
				if n, err := strconv.Atoi(q.Get("_count")); err == nil && n > 0 {
					limit = min(n, MaxCount)
				}
			}
			if len(entries) > limit {
				t.Fatalf("GET %s: %d entries, at most %d expected", u, len(entries), limit)
			}
		}
	})
}
