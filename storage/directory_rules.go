package storage

import (
	"fmt"
	"strings"

	"github.com/relais-mssante/relais/storage/dirkey"
)

// Rules of the directory that every DirectoryStore applies the same way
// (the SQLite and PostgreSQL stores call these).

// DirectoryAddressKey is the lookup key of an address: trimmed,
// lower-case, and with a local part and a domain (ErrInvalid otherwise).
func DirectoryAddressKey(address string) (string, error) {
	a := strings.ToLower(strings.TrimSpace(address))
	local, dom, ok := strings.Cut(a, "@")
	if !ok || local == "" || dom == "" || strings.ContainsAny(a, " \t\r\n<>") {
		return "", fmt.Errorf("address %q: %w", address, ErrInvalid)
	}
	return a, nil
}

// ValidDirectoryKind reports ErrInvalid for a kind that names no
// directory table.
func ValidDirectoryKind(kind EntryKind) error {
	switch kind {
	case KindProfessional, KindActivity, KindOrganisation, KindMailbox, KindTrust:
		return nil
	}
	return fmt.Errorf("directory kind %q: %w", kind, ErrInvalid)
}

// ValidateDirectoryBatch checks a batch before anything is written: a
// source other than SourceLocal (kept by the accounts), keys present and
// well formed, known kinds in Delete. Errors wrap ErrInvalid.
func ValidateDirectoryBatch(b *DirectoryBatch) error {
	if b.Source == "" {
		return fmt.Errorf("batch without source: %w", ErrInvalid)
	}
	if b.Source == SourceLocal {
		return fmt.Errorf("source %q is kept by the accounts: %w", b.Source, ErrInvalid)
	}
	for i := range b.Professionals {
		if b.Professionals[i].ID == "" {
			return fmt.Errorf("professional %d: empty id: %w", i, ErrInvalid)
		}
	}
	for i := range b.Activities {
		a := &b.Activities[i]
		if a.Professional == "" || a.Key == "" || strings.Contains(a.Professional, "/") {
			return fmt.Errorf("activity %d: bad key %q/%q: %w", i, a.Professional, a.Key, ErrInvalid)
		}
	}
	for i := range b.Organisations {
		if b.Organisations[i].ID == "" {
			return fmt.Errorf("organisation %d: empty id: %w", i, ErrInvalid)
		}
	}
	for i := range b.Mailboxes {
		if _, err := DirectoryAddressKey(b.Mailboxes[i].Address); err != nil {
			return fmt.Errorf("mailbox %d: %w", i, err)
		}
	}
	for i := range b.Trust {
		t := &b.Trust[i]
		if strings.TrimSpace(t.Domain) == "" || t.OperatorKey == "" || strings.Contains(t.Domain, " ") {
			return fmt.Errorf("trust entry %d: bad key %q %q: %w", i, t.Domain, t.OperatorKey, ErrInvalid)
		}
	}
	for i, d := range b.Delete {
		if err := ValidDirectoryKind(d.Kind); err != nil {
			return fmt.Errorf("delete %d: %w", i, err)
		}
		if d.Key == "" {
			return fmt.Errorf("delete %d: empty key: %w", i, ErrInvalid)
		}
	}
	return nil
}

// MailboxNameKeys gives a mailbox entry's search name pair and reversed
// pair (dirkey.Name of each part): (family, given) and (given, family) of
// a named owner; (the one name, "") and ("", "") with one name only; the
// organisation's name and "" for an unnamed owner.
func MailboxNameKeys(m *MailboxEntry) (na, nb, ra, rb string) {
	f, g := dirkey.Name(m.FamilyName), dirkey.Name(m.GivenName)
	if f == "" && g == "" {
		return dirkey.Name(m.OrganisationName), "", "", ""
	}
	if f == "" {
		return g, "", "", ""
	}
	if g == "" {
		return f, "", "", ""
	}
	return f, g, g, f
}

// PostalArea is the area of a postcode (its first two characters: the
// département, or 20 for Corsica), the leading column of the directory's
// place indexes.
func PostalArea(postalCode string) string {
	r := []rune(postalCode)
	return string(r[:min(2, len(r))])
}

// LocalMailboxEntry is the directory entry of a local account: a personal
// mailbox named after the display name ("Claire Martin": given name
// Claire, family name Martin; one word: the family name).
func LocalMailboxEntry(acct Account) MailboxEntry {
	m := MailboxEntry{Address: acct.Address, Type: MailboxPersonal, Account: acct.ID, Source: SourceLocal}
	words := strings.Fields(acct.Name)
	switch len(words) {
	case 0:
	case 1:
		m.FamilyName = words[0]
	default:
		m.GivenName = words[0]
		m.FamilyName = strings.Join(words[1:], " ")
	}
	return m
}
