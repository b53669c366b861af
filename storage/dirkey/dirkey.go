// Package dirkey computes the search keys of the directory (storage
// DirectoryStore): names folded for case and accents (summary.Fold) with
// every run of characters that are neither letters nor digits turned into
// one space, so that "Jean-Pierre DE L'ÉTANG" and "jean pierre de l etang"
// are the same key. The SQLite and PostgreSQL stores share it, so that both
// index and search with the same keys.
package dirkey

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/relais-mssante/relais/storage/summary"
)

// Name folds s into a search key: lower case, no accents, words separated
// by single spaces, no leading or trailing space.
func Name(s string) string {
	f := summary.Fold(s)
	var b strings.Builder
	b.Grow(len(f))
	space := false
	for i := 0; i < len(f); {
		c := f[i]
		if c < utf8.RuneSelf {
			i++
			if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
				if space && b.Len() > 0 {
					b.WriteByte(' ')
				}
				space = false
				b.WriteByte(c)
				continue
			}
			space = true
			continue
		}
		r, n := utf8.DecodeRuneInString(f[i:])
		i += n
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
			continue
		}
		space = true
	}
	return b.String()
}

// PrefixEnd returns the smallest string greater than every string that
// starts with prefix, for a range scan key >= prefix AND key < PrefixEnd
// under binary collation; "" when there is none (prefix empty or all 0xff).
func PrefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}
