package sqlite

import (
	"encoding/binary"
	"errors"

	"github.com/relais-mssante/relais/storage"
)

// The data column of the directory tables: the entry's text fields, each
// as a uvarint length and its bytes, in a fixed order per type. One blob
// instead of a column per field keeps an insert to a handful of bound
// parameters; the fields that lookups and search use are columns too.
// Fields appended later must go at the end (older rows decode them as "").

var errCodec = errors.New("directory entry: corrupt data")

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

func encodeProfessional(b []byte, p *storage.Professional) []byte {
	return putStrings(b, p.ID, p.IDType, p.Identifier, p.CivilityCode, p.Civility, p.FamilyName, p.GivenName,
		p.ProfessionCode, p.Profession, p.CategoryCode, p.Category, p.SpecialtyCode, p.Specialty)
}

func decodeProfessional(b []byte, p *storage.Professional) error {
	_, err := getStrings(b, &p.ID, &p.IDType, &p.Identifier, &p.CivilityCode, &p.Civility, &p.FamilyName, &p.GivenName,
		&p.ProfessionCode, &p.Profession, &p.CategoryCode, &p.Category, &p.SpecialtyCode, &p.Specialty)
	return err
}

func encodeActivity(b []byte, a *storage.Activity) []byte {
	return putStrings(b, a.Professional, a.Key, a.Organisation, a.ModeCode, a.Mode, a.SectionCode, a.Section,
		a.Role, a.PostalCode, a.City)
}

func decodeActivity(b []byte, a *storage.Activity) error {
	_, err := getStrings(b, &a.Professional, &a.Key, &a.Organisation, &a.ModeCode, &a.Mode, &a.SectionCode, &a.Section,
		&a.Role, &a.PostalCode, &a.City)
	return err
}

func encodeOrganisation(b []byte, o *storage.Organisation) []byte {
	b = putStrings(b, o.ID, o.FINESS, o.LegalFINESS, o.SIRET, o.SIREN, o.Name, o.TradeName)
	b = appendAddress(b, &o.Address)
	return putStrings(b, o.Phone, o.Fax, o.Email, o.SectorCode, o.Sector)
}

func decodeOrganisation(b []byte, o *storage.Organisation) error {
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

func encodeMailbox(b []byte, m *storage.MailboxEntry) []byte {
	digit := ""
	if m.Digitization {
		digit = "1"
	}
	b = putStrings(b, m.Address, m.Type, m.Professional, m.Organisation, m.Service, m.Description, m.Civility,
		m.FamilyName, m.GivenName, m.ProfessionCode, m.Profession, m.SpecialtyCode, m.Specialty, m.OrganisationName, digit)
	return appendAddress(b, &m.StructureAddress)
}

func decodeMailbox(b []byte, m *storage.MailboxEntry) error {
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

func encodeTrust(b []byte, t *storage.TrustEntry) []byte {
	return putStrings(b, t.Domain, t.Description, t.OperatorDN, t.OperatorKey, t.ResponsibleContact, t.SupportContact)
}

func decodeTrust(b []byte, t *storage.TrustEntry) error {
	_, err := getStrings(b, &t.Domain, &t.Description, &t.OperatorDN, &t.OperatorKey, &t.ResponsibleContact, &t.SupportContact)
	return err
}
