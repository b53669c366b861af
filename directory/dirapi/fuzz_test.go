package dirapi

import (
	"net/url"
	"testing"
)

// FuzzSearchParams feeds arbitrary query strings to the search parameters
// of GET /api/v1/directory/search and arbitrary cursors to the pager. The
// invariants: an accepted search has a limit within 1..MaxLimit and at
// least one criterion; a cursor made for a query decodes to its offset for
// that query only, and a decoded cursor is always within 0..maxOffset.
func FuzzSearchParams(f *testing.F) {
	for _, s := range []struct {
		query, cursor string
		offset        int
	}{
		{"q=berthier+paris", "", 20},
		{"name=Camille&profession=10&specialty=SM54&postcode=75014&limit=50", "MjAuYWJj", 0},
		{"identifier=810200000001&kind=professional,mailbox", "", maxOffset},
		{"address=camille01.berthier%40glycines.mssante.test&city=Paris", "", 1},
		{"q=%22m%C3%A9decin+g%C3%A9n%C3%A9raliste%22&kind=organisation&limit=0", "!!", -1},
		{"q=a&q=b&unknown=1&limit=99999999999999999999", "MTAwMDAwMDAwMC4=", 7},
	} {
		f.Add(s.query, s.cursor, s.offset)
	}
	f.Fuzz(func(t *testing.T, query, cursor string, offset int) {
		vals, _ := url.ParseQuery(query) // partial on error, as net/http reads it
		q, limit, err := parseSearch(vals)
		if err == nil {
			if limit < 1 || limit > MaxLimit {
				t.Fatalf("%q: limit %d", query, limit)
			}
			if q.Name == "" && q.ProfessionCode == "" && q.SpecialtyCode == "" && q.PostalCode == "" &&
				q.City == "" && q.Identifier == "" && q.Address == "" {
				t.Fatalf("%q accepted without a criterion: %+v", query, q)
			}
		}
		fp := fingerprint(q)
		if n, ok := decodeCursor(cursor, fp); ok && (n < 0 || n > maxOffset) {
			t.Fatalf("cursor %q decoded to %d", cursor, n)
		}
		if offset < 0 || offset > maxOffset {
			return
		}
		c := encodeCursor(offset, fp)
		if n, ok := decodeCursor(c, fp); !ok || n != offset {
			t.Fatalf("cursor for %d came back as %d, %v", offset, n, ok)
		}
		if _, ok := decodeCursor(c, fp+"x"); ok {
			t.Fatalf("cursor %q accepted for another query", c)
		}
	})
}
