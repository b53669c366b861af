package storage

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relais-mssante/relais/storage/summary"
)

// The rules below are shared by every Store implementation, so that names,
// addresses, flags and stored summaries are the same bytes whichever
// database holds them.

// NormDomain lower-cases a domain name and checks it is a plausible A-label
// host name (RFC 5321 4.1.2 Domain; IDNA conversion is the caller's).
func NormDomain(name string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if d == "" || len(d) > 253 {
		return "", fmt.Errorf("domain %q: %w", name, ErrInvalid)
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", fmt.Errorf("domain %q: %w", name, ErrInvalid)
		}
	}
	return d, nil
}

// NormAddress splits an address into its canonical form (local part as
// given, domain lower-case), its lookup key (all lower-case) and its domain.
func NormAddress(address string) (canon, key, domain string, err error) {
	local, dom, ok := strings.Cut(strings.TrimSpace(address), "@")
	if !ok || local == "" || strings.ContainsAny(local, " \t\r\n<>@\x00") || len(local) > 64 || !utf8.ValidString(local) {
		return "", "", "", fmt.Errorf("address %q: %w", address, ErrInvalid)
	}
	if dom, err = NormDomain(dom); err != nil {
		return "", "", "", err
	}
	canon = local + "@" + dom
	return canon, strings.ToLower(canon), dom, nil
}

const mailboxDelim = string(MailboxDelimiter)

// NormMailboxName validates a mailbox name and spells INBOX (and the INBOX
// prefix of its children) in upper case: RFC 9051 5.1, INBOX is
// case-insensitive, every other name is case-sensitive.
func NormMailboxName(name string) (string, error) {
	if name == "" || len(name) > 1000 || !utf8.ValidString(name) {
		return "", fmt.Errorf("mailbox name %q: %w", name, ErrInvalid)
	}
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX"+mailboxDelim) {
		name = "INBOX" + name[5:]
	}
	for _, level := range strings.Split(name, mailboxDelim) {
		if level == "" {
			return "", fmt.Errorf("mailbox name %q: empty level: %w", name, ErrInvalid)
		}
	}
	for _, r := range name {
		// RFC 9051 5.1: no wildcards (list-wildcards) nor controls in names.
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' {
			return "", fmt.Errorf("mailbox name %q: %w", name, ErrInvalid)
		}
	}
	return name, nil
}

// ValidSpecialUse reports whether su is one of the SpecialUse constants
// (RFC 6154 2).
func ValidSpecialUse(su string) bool {
	switch su {
	case SpecialUseNone, SpecialUseSent, SpecialUseDrafts, SpecialUseTrash,
		SpecialUseJunk, SpecialUseArchive, SpecialUseAll, SpecialUseFlagged:
		return true
	}
	return false
}

// MailboxParents returns the superior names of name, shortest first
// ("a/b/c" -> "a", "a/b").
func MailboxParents(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == MailboxDelimiter {
			out = append(out, name[:i])
		}
	}
	return out
}

// systemFlags maps the lower-case spelling of each system flag (RFC 9051
// 2.3.2) to its canonical case, which is what we store and return.
var systemFlags = map[string]string{
	`\seen`:     FlagSeen,
	`\answered`: FlagAnswered,
	`\flagged`:  FlagFlagged,
	`\deleted`:  FlagDeleted,
	`\draft`:    FlagDraft,
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

// NormFlags canonicalises system flags, checks keywords and removes
// duplicates (compared case-insensitively), keeping the first spelling.
// \Recent cannot be stored (RFC 9051 2.3.2 removed it) and is dropped.
func NormFlags(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, f := range in {
		if strings.HasPrefix(f, `\`) {
			lf := strings.ToLower(f)
			canon, ok := systemFlags[lf]
			if !ok {
				if lf == `\recent` {
					continue
				}
				return nil, fmt.Errorf("flag %q: %w", f, ErrInvalid)
			}
			f = canon
		} else if !validKeyword(f) {
			return nil, fmt.Errorf("keyword %q: %w", f, ErrInvalid)
		}
		if !HasFlag(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// HasFlag reports whether flags holds f, compared case-insensitively.
func HasFlag(flags []string, f string) bool {
	for _, g := range flags {
		if strings.EqualFold(g, f) {
			return true
		}
	}
	return false
}

// ApplyFlags computes the new flag list of one message (RFC 9051 6.4.6) and
// whether it differs (as a set) from cur. flags must be normalised
// (NormFlags).
func ApplyFlags(cur []string, op FlagOp, flags []string) ([]string, bool) {
	var next []string
	switch op {
	case FlagsSet:
		next = append([]string{}, flags...)
	case FlagsAdd:
		next = append([]string{}, cur...)
		for _, f := range flags {
			if !HasFlag(next, f) {
				next = append(next, f)
			}
		}
	case FlagsRemove:
		next = make([]string, 0, len(cur))
		for _, f := range cur {
			if !HasFlag(flags, f) {
				next = append(next, f)
			}
		}
	}
	if len(next) != len(cur) {
		return next, true
	}
	for _, f := range next {
		if !HasFlag(cur, f) {
			return next, true
		}
	}
	return next, false
}

// JoinFlags encodes a flag list as stored in the messages table: the flags
// separated by single spaces.
func JoinFlags(flags []string) string { return strings.Join(flags, " ") }

// SplitFlags decodes a stored flag list (JoinFlags); never nil.
func SplitFlags(s string) []string {
	f := strings.Fields(s)
	if f == nil {
		f = []string{}
	}
	return f
}

// ParsedMessage is a message ready to store: parsed once, whatever the
// number of copies.
type ParsedMessage struct {
	Raw []byte
	// Summary is the encoded summary.Message (summary.Encode).
	Summary []byte
	// SearchHeader and SearchBody are summary.SearchText's folded text.
	SearchHeader, SearchBody string
	InternalDate             time.Time // never zero
}

// ParseMessage checks a message's size (ErrInvalid when empty, ErrTooLarge
// above maxSize) and computes what the stores keep beside the raw bytes. A
// message the parser rejects is still stored, with summary.Minimal (logged
// without its content). A zero internalDate means now.
func ParseMessage(raw []byte, internalDate time.Time, maxSize int64, log *slog.Logger) (*ParsedMessage, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("empty message: %w", ErrInvalid)
	}
	if int64(len(raw)) > maxSize {
		return nil, fmt.Errorf("message of %d bytes: %w", len(raw), ErrTooLarge)
	}
	sum, err := summary.Parse(raw)
	if err != nil {
		log.Warn("storage: message summary: unparsable message, storing a minimal summary", "err", err, "size", len(raw))
		sum = summary.Minimal(raw)
	}
	enc, err := summary.Encode(sum)
	if err != nil {
		if enc, err = summary.Encode(summary.Minimal(raw)); err != nil {
			return nil, err
		}
	}
	header, body := summary.SearchText(raw)
	if internalDate.IsZero() {
		internalDate = time.Now()
	}
	return &ParsedMessage{Raw: raw, Summary: enc, SearchHeader: header, SearchBody: body, InternalDate: internalDate}, nil
}
