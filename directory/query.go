package directory

import (
	"strings"

	"github.com/relais-mssante/relais/storage"
)

// ParseQuery turns the free text of `relais directory search` and of the
// JSON API's q parameter into a structured query. Tokens are separated by
// white space and classified one by one:
//
//   - key:value sets a field explicitly: profession: (TRE_G15 code),
//     specialty: (savoir-faire code), city:, postcode: (or cp:), id: (or
//     identifier:), mail: (or address:), name:, kind: (professional,
//     organisation or mailbox; may repeat);
//   - a token with '@' is the beginning of an e-mail address;
//   - 5 digits are a postal code; 2 or 3 digits, or 2A/2B, a département
//     (a postal code prefix: Corsica's 2A and 2B are under "20", the
//     overseas départements 971 to 976 have three digits);
//   - 9 digits (FINESS, SIREN), 11 digits (RPPS), 12 digits starting with
//     8 or 0 (identification nationale PP: type digit + RPPS or ADELI) and
//     14 digits (SIRET) are identifiers;
//   - everything else is a word of the name, kept in order.
//
// When a field is given twice, the last one wins (name words accumulate).
// Unknown keys are name words: "dr:x" is searched as text. Nothing is
// lower-cased or folded here: the store folds case and accents.
func ParseQuery(text string) storage.DirectoryQuery {
	var q storage.DirectoryQuery
	var name []string
	for _, tok := range strings.Fields(text) {
		if key, value, ok := strings.Cut(tok, ":"); ok && value != "" {
			if applyField(&q, &name, strings.ToLower(key), value) {
				continue
			}
		}
		switch {
		case strings.Contains(tok, "@"):
			q.Address = tok
		case isPostalCode(tok):
			q.PostalCode = tok
		case isDepartement(tok):
			q.PostalCode = departementPrefix(tok)
		case isIdentifier(tok):
			q.Identifier = tok
		default:
			name = append(name, tok)
		}
	}
	q.Name = strings.Join(name, " ")
	return q
}

// applyField sets the field named by key; it reports false for an unknown key.
func applyField(q *storage.DirectoryQuery, name *[]string, key, value string) bool {
	switch key {
	case "profession":
		q.ProfessionCode = value
	case "specialty", "specialite", "savoirfaire":
		q.SpecialtyCode = value
	case "city", "ville":
		q.City = value
	case "postcode", "cp", "postalcode":
		if isDepartement(value) {
			value = departementPrefix(value)
		}
		q.PostalCode = value
	case "id", "identifier":
		q.Identifier = value
	case "mail", "address", "email":
		q.Address = value
	case "name", "nom":
		*name = append(*name, value)
	case "kind", "type":
		k, ok := ParseKind(value)
		if !ok {
			return false
		}
		q.Kinds = append(q.Kinds, k)
	default:
		return false
	}
	return true
}

// ParseKind reads a hit kind as the APIs and the CLI spell it (English or
// French, singular or plural).
func ParseKind(s string) (storage.EntryKind, bool) {
	switch strings.ToLower(s) {
	case "professional", "professionals", "pro", "ps", "professionnel":
		return storage.KindProfessional, true
	case "organisation", "organisations", "organization", "organizations", "org", "structure":
		return storage.KindOrganisation, true
	case "mailbox", "mailboxes", "address", "addresses", "bal":
		return storage.KindMailbox, true
	}
	return "", false
}

func onlyDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isPostalCode(s string) bool { return len(s) == 5 && onlyDigits(s) }

// isDepartement: 2 or 3 digits, or Corsica's 2A/2B (INSEE COG).
func isDepartement(s string) bool {
	switch {
	case (len(s) == 2 || len(s) == 3) && onlyDigits(s):
		return true
	case len(s) == 2 && s[0] == '2' && (s[1] == 'A' || s[1] == 'B' || s[1] == 'a' || s[1] == 'b'):
		return true
	}
	return false
}

// departementPrefix maps a département code to the prefix of its postal
// codes: Corsica (2A, 2B) uses 20xxx postal codes.
func departementPrefix(s string) string {
	if len(s) == 2 && (s[1] < '0' || s[1] > '9') {
		return "20"
	}
	return s
}

// isIdentifier recognises the national identifiers by their length:
// FINESS and SIREN (9), RPPS (11), identification nationale PP (12, type
// digit 8 RPPS or 0 ADELI first), SIRET (14).
func isIdentifier(s string) bool {
	if !onlyDigits(s) {
		return false
	}
	switch len(s) {
	case 9, 11, 14:
		return true
	case 12:
		return s[0] == '8' || s[0] == '0'
	}
	return false
}
