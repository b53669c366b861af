// Package dircodec is the encoding of the data column of the directory
// tables (storage.DirectoryStore), shared by the SQLite and PostgreSQL
// stores so that both hold the same bytes and relais migrate copies the
// column as is.
//
// The data column holds the entry's text fields, each as a uvarint length
// and its bytes, in a fixed order per type. One blob instead of a column
// per field keeps an insert to a handful of bound parameters; the fields
// that lookups and search use are columns too. Fields appended later must
// go at the end (older rows decode them as "").
package dircodec

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/relais-mssante/relais/storage"
)

var errCodec = errors.New("directory entry: corrupt data")

// DeferredIndexes are the directory's search indexes whose keys arrive in
// random order during an import (the others, primary keys and indexes led
// by a code then the id, grow at a few insertion points): both stores
// drop them during a bulk import (directory.BulkStore) and rebuild each
// by one sort at the end. Both stores give them these names.
var DeferredIndexes = []string{
	"dir_professionals_name", "dir_professionals_rev",
	"dir_activities_name", "dir_activities_rev", "dir_activities_city",
	"dir_organisations_finess", "dir_organisations_legal_finess", "dir_organisations_siret", "dir_organisations_siren",
	"dir_organisations_name", "dir_organisations_trade", "dir_organisations_place", "dir_organisations_place_trade", "dir_organisations_city",
	"dir_mailboxes_professional", "dir_mailboxes_organisation", "dir_mailboxes_name", "dir_mailboxes_rev",
	"dir_mailboxes_place", "dir_mailboxes_place_rev", "dir_mailboxes_city",
}

// Table is the table of a kind of entry, the same in both SQL stores
// (ErrInvalid for an unknown kind).
func Table(kind storage.EntryKind) (string, error) {
	switch kind {
	case storage.KindProfessional:
		return "dir_professionals", nil
	case storage.KindActivity:
		return "dir_activities", nil
	case storage.KindOrganisation:
		return "dir_organisations", nil
	case storage.KindMailbox:
		return "dir_mailboxes", nil
	case storage.KindTrust:
		return "dir_trust", nil
	}
	return "", fmt.Errorf("directory kind %q: %w", kind, storage.ErrInvalid)
}

func putStrings(b []byte, ss ...string) []byte {
	for _, s := range ss {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// getStrings fills ps from b; missing trailing fields are left "".
func getStrings(b []byte, ps ...*string) ([]byte, error) {
	for _, p := range ps {
		if len(b) == 0 {
			*p = ""
			continue
		}
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errCodec
		}
		*p = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	return b, nil
}

func appendAddress(b []byte, a *storage.PostalAddress) []byte {
	return putStrings(b, a.Recipient, a.Location, a.Number, a.Repetition, a.StreetType, a.Street,
		a.Distribution, a.Cedex, a.PostalCode, a.CityCode, a.City, a.Department, a.Country)
}

func getAddress(b []byte, a *storage.PostalAddress) ([]byte, error) {
	return getStrings(b, &a.Recipient, &a.Location, &a.Number, &a.Repetition, &a.StreetType, &a.Street,
		&a.Distribution, &a.Cedex, &a.PostalCode, &a.CityCode, &a.City, &a.Department, &a.Country)
}

// EncodeProfessional appends p's data column to b.
func EncodeProfessional(b []byte, p *storage.Professional) []byte {
	return putStrings(b, p.ID, p.IDType, p.Identifier, p.CivilityCode, p.Civility, p.FamilyName, p.GivenName,
		p.ProfessionCode, p.Profession, p.CategoryCode, p.Category, p.SpecialtyCode, p.Specialty)
}

// DecodeProfessional fills p from its data column.
func DecodeProfessional(b []byte, p *storage.Professional) error {
	_, err := getStrings(b, &p.ID, &p.IDType, &p.Identifier, &p.CivilityCode, &p.Civility, &p.FamilyName, &p.GivenName,
		&p.ProfessionCode, &p.Profession, &p.CategoryCode, &p.Category, &p.SpecialtyCode, &p.Specialty)
	return err
}

// EncodeActivity appends a's data column to b.
func EncodeActivity(b []byte, a *storage.Activity) []byte {
	return putStrings(b, a.Professional, a.Key, a.Organisation, a.ModeCode, a.Mode, a.SectionCode, a.Section,
		a.Role, a.PostalCode, a.City)
}

// DecodeActivity fills a from its data column.
func DecodeActivity(b []byte, a *storage.Activity) error {
	_, err := getStrings(b, &a.Professional, &a.Key, &a.Organisation, &a.ModeCode, &a.Mode, &a.SectionCode, &a.Section,
		&a.Role, &a.PostalCode, &a.City)
	return err
}

// EncodeOrganisation appends o's data column to b.
func EncodeOrganisation(b []byte, o *storage.Organisation) []byte {
	b = putStrings(b, o.ID, o.FINESS, o.LegalFINESS, o.SIRET, o.SIREN, o.Name, o.TradeName)
	b = appendAddress(b, &o.Address)
	return putStrings(b, o.Phone, o.Fax, o.Email, o.SectorCode, o.Sector)
}

// DecodeOrganisation fills o from its data column.
func DecodeOrganisation(b []byte, o *storage.Organisation) error {
	b, err := getStrings(b, &o.ID, &o.FINESS, &o.LegalFINESS, &o.SIRET, &o.SIREN, &o.Name, &o.TradeName)
	if err != nil {
		return err
	}
	if b, err = getAddress(b, &o.Address); err != nil {
		return err
	}
	_, err = getStrings(b, &o.Phone, &o.Fax, &o.Email, &o.SectorCode, &o.Sector)
	return err
}

// EncodeMailbox appends m's data column to b (Source, Hash and Account are columns).
func EncodeMailbox(b []byte, m *storage.MailboxEntry) []byte {
	digit := ""
	if m.Digitization {
		digit = "1"
	}
	b = putStrings(b, m.Address, m.Type, m.Professional, m.Organisation, m.Service, m.Description, m.Civility,
		m.FamilyName, m.GivenName, m.ProfessionCode, m.Profession, m.SpecialtyCode, m.Specialty, m.OrganisationName, digit)
	return appendAddress(b, &m.StructureAddress)
}

// DecodeMailbox fills m from its data column.
func DecodeMailbox(b []byte, m *storage.MailboxEntry) error {
	var digit string
	b, err := getStrings(b, &m.Address, &m.Type, &m.Professional, &m.Organisation, &m.Service, &m.Description, &m.Civility,
		&m.FamilyName, &m.GivenName, &m.ProfessionCode, &m.Profession, &m.SpecialtyCode, &m.Specialty, &m.OrganisationName, &digit)
	if err != nil {
		return err
	}
	m.Digitization = digit != ""
	_, err = getAddress(b, &m.StructureAddress)
	return err
}

// EncodeTrust appends t's data column to b (Hash and Updated are columns).
func EncodeTrust(b []byte, t *storage.TrustEntry) []byte {
	return putStrings(b, t.Domain, t.Description, t.OperatorDN, t.OperatorKey, t.ResponsibleContact, t.SupportContact)
}

// DecodeTrust fills t from its data column.
func DecodeTrust(b []byte, t *storage.TrustEntry) error {
	_, err := getStrings(b, &t.Domain, &t.Description, &t.OperatorDN, &t.OperatorKey, &t.ResponsibleContact, &t.SupportContact)
	return err
}
