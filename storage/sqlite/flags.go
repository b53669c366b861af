package sqlite

import (
	"fmt"
	"strings"

	"github.com/relais-mssante/relais/storage"
)

// systemFlags maps the lower-case spelling of each system flag (RFC 9051
// 2.3.2) to its canonical case, which is what we store and return.
var systemFlags = map[string]string{
	`\seen`:     storage.FlagSeen,
	`\answered`: storage.FlagAnswered,
	`\flagged`:  storage.FlagFlagged,
	`\deleted`:  storage.FlagDeleted,
	`\draft`:    storage.FlagDraft,
}

// validKeyword reports whether k is an atom (RFC 9051 9: flag-keyword = atom;
// atom-char excludes "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]").
func validKeyword(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// normFlags canonicalises system flags, checks keywords and removes
// duplicates (compared case-insensitively), keeping the first spelling.
// \Recent cannot be stored (RFC 9051 2.3.2 removed it) and is dropped.
func normFlags(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, f := range in {
		if strings.HasPrefix(f, `\`) {
			lf := strings.ToLower(f)
			canon, ok := systemFlags[lf]
			if !ok {
				if lf == `\recent` {
					continue
				}
				return nil, fmt.Errorf("flag %q: %w", f, storage.ErrInvalid)
			}
			f = canon
		} else if !validKeyword(f) {
			return nil, fmt.Errorf("keyword %q: %w", f, storage.ErrInvalid)
		}
		if !hasFlag(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

func hasFlag(flags []string, f string) bool {
	for _, g := range flags {
		if strings.EqualFold(g, f) {
			return true
		}
	}
	return false
}

// applyFlags computes the new flag list of one message (RFC 9051 6.4.6) and
// whether it differs (as a set) from cur.
func applyFlags(cur []string, op storage.FlagOp, flags []string) ([]string, bool) {
	var next []string
	switch op {
	case storage.FlagsSet:
		next = append([]string{}, flags...)
	case storage.FlagsAdd:
		next = append([]string{}, cur...)
		for _, f := range flags {
			if !hasFlag(next, f) {
				next = append(next, f)
			}
		}
	case storage.FlagsRemove:
		next = make([]string, 0, len(cur))
		for _, f := range cur {
			if !hasFlag(flags, f) {
				next = append(next, f)
			}
		}
	}
	if len(next) != len(cur) {
		return next, true
	}
	for _, f := range next {
		if !hasFlag(cur, f) {
			return next, true
		}
	}
	return next, false
}

func joinFlags(flags []string) string { return strings.Join(flags, " ") }

func splitFlags(s string) []string {
	f := strings.Fields(s)
	if f == nil {
		f = []string{}
	}
	return f
}
