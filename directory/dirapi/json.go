package dirapi

import (
	"time"

	"github.com/relais-mssante/relais/storage"
)

// The JSON shapes of the API: stable, lowerCamelCase, empty fields left out.

// Coded is a code of a national nomenclature with its label.
type Coded struct {
	Code  string `json:"code,omitempty"`
	Label string `json:"label,omitempty"`
}

func coded(code, label string) *Coded {
	if code == "" && label == "" {
		return nil
	}
	return &Coded{Code: code, Label: label}
}

// Entry is a search result or an entry read by identifier.
type Entry struct {
	Kind         string         `json:"kind"`
	Professional *Professional  `json:"professional,omitempty"`
	Organisation *Organisation  `json:"organisation,omitempty"`
	Mailbox      *Mailbox       `json:"mailbox,omitempty"`
	Activities   []Activity     `json:"activities,omitempty"`
	Sites        []Organisation `json:"sites,omitempty"`
	Addresses    []Mailbox      `json:"addresses,omitempty"`
}

// Professional is a health professional.
type Professional struct {
	ID         string `json:"id"`
	IDType     string `json:"idType,omitempty"`
	Identifier string `json:"identifier,omitempty"`
	Civility   *Coded `json:"civility,omitempty"`
	FamilyName string `json:"familyName,omitempty"`
	GivenName  string `json:"givenName,omitempty"`
	Profession *Coded `json:"profession,omitempty"`
	Category   *Coded `json:"category,omitempty"`
	Specialty  *Coded `json:"specialty,omitempty"`
	Source     string `json:"source,omitempty"`
}

// Address is a postal address (AFNOR XP Z10-011 lines).
type Address struct {
	Recipient    string `json:"recipient,omitempty"`
	Location     string `json:"location,omitempty"`
	Number       string `json:"number,omitempty"`
	Repetition   string `json:"repetition,omitempty"`
	StreetType   string `json:"streetType,omitempty"`
	Street       string `json:"street,omitempty"`
	Distribution string `json:"distribution,omitempty"`
	Cedex        string `json:"cedex,omitempty"`
	PostalCode   string `json:"postalCode,omitempty"`
	CityCode     string `json:"cityCode,omitempty"`
	City         string `json:"city,omitempty"`
	Department   string `json:"department,omitempty"`
	Country      string `json:"country,omitempty"`
}

// Organisation is a structure (site or legal entity).
type Organisation struct {
	ID          string   `json:"id"`
	FINESS      string   `json:"finess,omitempty"`
	LegalFINESS string   `json:"legalFiness,omitempty"`
	SIRET       string   `json:"siret,omitempty"`
	SIREN       string   `json:"siren,omitempty"`
	Name        string   `json:"name,omitempty"`
	TradeName   string   `json:"tradeName,omitempty"`
	Address     *Address `json:"address,omitempty"`
	Phone       string   `json:"phone,omitempty"`
	Fax         string   `json:"fax,omitempty"`
	Email       string   `json:"email,omitempty"`
	Sector      *Coded   `json:"sector,omitempty"`
	Source      string   `json:"source,omitempty"`
}

// Activity is a professional's exercise at a place.
type Activity struct {
	Key          string `json:"key"`
	Organisation string `json:"organisation,omitempty"`
	Mode         *Coded `json:"mode,omitempty"`
	Section      *Coded `json:"section,omitempty"`
	Role         string `json:"role,omitempty"`
	PostalCode   string `json:"postalCode,omitempty"`
	City         string `json:"city,omitempty"`
}

// Mailbox is an MSSanté address.
type Mailbox struct {
	Address          string   `json:"address"`
	Type             string   `json:"type,omitempty"`
	Professional     string   `json:"professional,omitempty"`
	Organisation     string   `json:"organisation,omitempty"`
	Service          string   `json:"service,omitempty"`
	Description      string   `json:"description,omitempty"`
	Civility         string   `json:"civility,omitempty"`
	FamilyName       string   `json:"familyName,omitempty"`
	GivenName        string   `json:"givenName,omitempty"`
	Profession       *Coded   `json:"profession,omitempty"`
	Specialty        *Coded   `json:"specialty,omitempty"`
	OrganisationName string   `json:"organisationName,omitempty"`
	StructureAddress *Address `json:"structureAddress,omitempty"`
	Digitization     bool     `json:"digitization"`
	Local            bool     `json:"local"`
	Source           string   `json:"source,omitempty"`
}

// Certificate is the metadata of a certificate attached to an address.
type Certificate struct {
	Fingerprint string     `json:"fingerprint"` // lower-case hex SHA-256 of the DER
	Subject     string     `json:"subject"`
	NotBefore   time.Time  `json:"notBefore"`
	NotAfter    time.Time  `json:"notAfter"`
	Source      string     `json:"source,omitempty"`
	Added       *time.Time `json:"added,omitempty"`
}

// Trust is one (domain, operator certificate) pair of the trust list.
type Trust struct {
	Domain             string     `json:"domain"`
	Description        string     `json:"description,omitempty"`
	OperatorDN         string     `json:"operatorDN"`
	ResponsibleContact string     `json:"responsibleContact,omitempty"`
	SupportContact     string     `json:"supportContact,omitempty"`
	Updated            *time.Time `json:"updated,omitempty"`
}

func entryOf(h storage.DirectoryHit) Entry {
	e := Entry{Kind: string(h.Kind)}
	if h.Professional != nil {
		p := professionalOf(*h.Professional)
		e.Professional = &p
	}
	if h.Organisation != nil {
		o := organisationOf(*h.Organisation)
		e.Organisation = &o
	}
	if h.Mailbox != nil {
		m := mailboxOf(*h.Mailbox)
		e.Mailbox = &m
	}
	for _, a := range h.Activities {
		e.Activities = append(e.Activities, Activity{
			Key: a.Key, Organisation: a.Organisation, Mode: coded(a.ModeCode, a.Mode),
			Section: coded(a.SectionCode, a.Section), Role: a.Role, PostalCode: a.PostalCode, City: a.City,
		})
	}
	for _, o := range h.Sites {
		e.Sites = append(e.Sites, organisationOf(o))
	}
	for _, m := range h.Mailboxes {
		e.Addresses = append(e.Addresses, mailboxOf(m))
	}
	return e
}

func professionalOf(p storage.Professional) Professional {
	return Professional{
		ID: p.ID, IDType: p.IDType, Identifier: p.Identifier, Civility: coded(p.CivilityCode, p.Civility),
		FamilyName: p.FamilyName, GivenName: p.GivenName, Profession: coded(p.ProfessionCode, p.Profession),
		Category: coded(p.CategoryCode, p.Category), Specialty: coded(p.SpecialtyCode, p.Specialty), Source: p.Source,
	}
}

func addressOf(a storage.PostalAddress) *Address {
	if a == (storage.PostalAddress{}) {
		return nil
	}
	return &Address{
		Recipient: a.Recipient, Location: a.Location, Number: a.Number, Repetition: a.Repetition,
		StreetType: a.StreetType, Street: a.Street, Distribution: a.Distribution, Cedex: a.Cedex,
		PostalCode: a.PostalCode, CityCode: a.CityCode, City: a.City, Department: a.Department, Country: a.Country,
	}
}

func organisationOf(o storage.Organisation) Organisation {
	return Organisation{
		ID: o.ID, FINESS: o.FINESS, LegalFINESS: o.LegalFINESS, SIRET: o.SIRET, SIREN: o.SIREN,
		Name: o.Name, TradeName: o.TradeName, Address: addressOf(o.Address), Phone: o.Phone, Fax: o.Fax,
		Email: o.Email, Sector: coded(o.SectorCode, o.Sector), Source: o.Source,
	}
}

func mailboxOf(m storage.MailboxEntry) Mailbox {
	return Mailbox{
		Address: m.Address, Type: m.Type, Professional: m.Professional, Organisation: m.Organisation,
		Service: m.Service, Description: m.Description, Civility: m.Civility, FamilyName: m.FamilyName,
		GivenName: m.GivenName, Profession: coded(m.ProfessionCode, m.Profession),
		Specialty: coded(m.SpecialtyCode, m.Specialty), OrganisationName: m.OrganisationName,
		StructureAddress: addressOf(m.StructureAddress), Digitization: m.Digitization,
		Local: m.Account != 0, Source: m.Source,
	}
}

func certificateOf(c storage.Certificate) Certificate {
	out := Certificate{Fingerprint: c.Fingerprint, Subject: c.Subject, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), Source: c.Source}
	if !c.Added.IsZero() {
		t := c.Added.UTC()
		out.Added = &t
	}
	return out
}

func trustOf(t storage.TrustEntry) Trust {
	out := Trust{Domain: t.Domain, Description: t.Description, OperatorDN: t.OperatorDN,
		ResponsibleContact: t.ResponsibleContact, SupportContact: t.SupportContact}
	if !t.Updated.IsZero() {
		u := t.Updated.UTC()
		out.Updated = &u
	}
	return out
}
