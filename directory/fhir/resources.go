package fhir

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"

	"github.com/relais-mssante/relais/storage"
)

// Canonical URLs, identifier systems and code systems, as the Annuaire
// Santé implementation guide (ansforge/IG-fhir-annuaire, canonical
// https://interop.esante.gouv.fr/ig/fhir/annuaire) and the French core IG
// (hl7.fhir.fr.core) define them.
const (
	igBase = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
	// Profiles: AsPractitionerProfile (Id as-practitioner),
	// AsPractitionerRoleProfile (as-practitionerrole), AsOrganizationProfile
	// (as-organization).
	profilePractitioner     = igBase + "as-practitioner"
	profilePractitionerRole = igBase + "as-practitionerrole"
	profileOrganization     = igBase + "as-organization"

	// ASMailboxMetadataExtension (Id as-ext-mailbox-mss-metadata), context
	// ContactPoint; its sub-extensions are named by relative URLs.
	extMailboxMetadata = igBase + "as-ext-mailbox-mss-metadata"
	// fr-core: the e-mail type of a ContactPoint (MSSANTE for an MSSanté
	// mailbox); AsPractitionerProfile slices telecom on its presence.
	extEmailType = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"

	// fr-core-cs-v2-0203: identifier types (IDNPS, RPPS, ADELI, IDNST,
	// FINEG, FINEJ, SIRET, SIREN, INTRN).
	csIdentifierType = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"

	// Identifier systems. idNatPs: identification nationale PP (type digit
	// + RPPS or ADELI); idNatSt: identification nationale de structure
	// (0 + ADELI rang, 1 + FINESS, 2 + SIREN, 3 + SIRET, 4 + RPPS rang or
	// technical id: fr-core Organization, identifier:idNatSt.value).
	sysIDNatPS  = "urn:oid:1.2.250.1.71.4.2.1"
	sysIDNatSt  = "urn:oid:1.2.250.1.71.4.2.2"
	sysRPPS     = "https://rpps.esante.gouv.fr"
	sysADELI    = "https://adeli.esante.gouv.fr"
	sysFINESS   = "https://finess.esante.gouv.fr"
	sysSIRENE   = "https://sirene.fr"         // SIREN and SIRET (fr-core slices siren, siret)
	sysAnnuaire = "https://annuaire.sante.fr" // technical identifier of a structure (AsOrganizationProfile identifier.system)
	nosBase     = "https://mos.esante.gouv.fr/NOS/"

	// Nomenclatures of the MOS (TRE_*), as the IG's examples and profiles
	// spell their FHIR URLs.
	csProfession   = nosBase + "TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
	csCategory     = nosBase + "TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-CategorieProfessionnelle"
	csSpecialty    = nosBase + "TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
	csMode         = nosBase + "TRE_R23-ModeExercice/FHIR/TRE-R23-ModeExercice"
	csSection      = nosBase + "TRE_R06-SectionTableauCNOP/FHIR/TRE-R06-SectionTableauCNOP"
	csSector       = nosBase + "TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"
	csMessaging    = nosBase + "TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
	csMailboxType  = nosBase + "TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL"
	mailboxMSSante = "MSSANTE"
)

// The FHIR R4 data types and resources this package writes, with only the
// elements it fills.

type Meta struct {
	Profile []string `json:"profile,omitempty"`
}

type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

type Identifier struct {
	Use    string           `json:"use,omitempty"`
	Type   *CodeableConcept `json:"type,omitempty"`
	System string           `json:"system,omitempty"`
	Value  string           `json:"value,omitempty"`
}

type HumanName struct {
	Use    string   `json:"use,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
	Suffix []string `json:"suffix,omitempty"`
}

// Extension carries one value[x] or nested extensions (ext-1).
type Extension struct {
	URL                  string           `json:"url"`
	ValueString          string           `json:"valueString,omitempty"`
	ValueBoolean         *bool            `json:"valueBoolean,omitempty"`
	ValueCoding          *Coding          `json:"valueCoding,omitempty"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept,omitempty"`
	Extension            []Extension      `json:"extension,omitempty"`
}

type ContactPoint struct {
	Extension []Extension `json:"extension,omitempty"`
	System    string      `json:"system,omitempty"`
	Value     string      `json:"value,omitempty"`
	Use       string      `json:"use,omitempty"`
}

type Address struct {
	Use        string   `json:"use,omitempty"`
	Type       string   `json:"type,omitempty"`
	Line       []string `json:"line,omitempty"`
	City       string   `json:"city,omitempty"`
	District   string   `json:"district,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	Country    string   `json:"country,omitempty"`
}

type Reference struct {
	Reference string `json:"reference,omitempty"`
	Display   string `json:"display,omitempty"`
}

type Qualification struct {
	Code CodeableConcept `json:"code"`
}

type Practitioner struct {
	ResourceType  string          `json:"resourceType"`
	ID            string          `json:"id"`
	Meta          *Meta           `json:"meta,omitempty"`
	Active        bool            `json:"active"`
	Identifier    []Identifier    `json:"identifier,omitempty"`
	Name          []HumanName     `json:"name,omitempty"`
	Telecom       []ContactPoint  `json:"telecom,omitempty"`
	Qualification []Qualification `json:"qualification,omitempty"`
}

type PractitionerRole struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id"`
	Meta         *Meta             `json:"meta,omitempty"`
	Active       bool              `json:"active"`
	Practitioner *Reference        `json:"practitioner,omitempty"`
	Organization *Reference        `json:"organization,omitempty"`
	Code         []CodeableConcept `json:"code,omitempty"`
	Specialty    []CodeableConcept `json:"specialty,omitempty"`
	Telecom      []ContactPoint    `json:"telecom,omitempty"`
}

type Organization struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id"`
	Meta         *Meta             `json:"meta,omitempty"`
	Active       bool              `json:"active"`
	Identifier   []Identifier      `json:"identifier,omitempty"`
	Type         []CodeableConcept `json:"type,omitempty"`
	Name         string            `json:"name,omitempty"`
	Alias        []string          `json:"alias,omitempty"`
	Telecom      []ContactPoint    `json:"telecom,omitempty"`
	Address      []Address         `json:"address,omitempty"`
}

// ---- logical ids

var idEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// validID: FHIR R4 datatypes id, [A-Za-z0-9\-\.]{1,64}.
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// resourceID maps a directory identifier to a FHIR id: itself when it is
// one, else "z." and its base32hex form (reversible; "" when too long).
func resourceID(raw string) string {
	if validID(raw) && !strings.HasPrefix(raw, "z.") {
		return raw
	}
	enc := "z." + strings.ToLower(idEncoding.EncodeToString([]byte(raw)))
	if len(enc) > 64 {
		return ""
	}
	return enc
}

// directoryID reverses resourceID.
func directoryID(id string) (string, bool) {
	if !validID(id) {
		return "", false
	}
	if rest, ok := strings.CutPrefix(id, "z."); ok {
		b, err := idEncoding.DecodeString(strings.ToUpper(rest))
		if err != nil {
			return "", false
		}
		return string(b), true
	}
	return id, true
}

// roleID names an activity: "<practitioner id>-<activity key>", or with
// "h" and a digest of the key when the key is not id-safe or too long.
// Reads recompute it for each of the professional's activities.
func roleID(pid string, key string) string {
	p := resourceID(pid)
	if id := p + "-" + key; validID(id) {
		return id
	}
	sum := sha256.Sum256([]byte(key))
	return p + "-h" + hex.EncodeToString(sum[:10])
}

// ---- builders

func idType(code string) *CodeableConcept {
	return &CodeableConcept{Coding: []Coding{{System: csIdentifierType, Code: code}}}
}

func coding(system, code, display string) []Coding {
	if code == "" {
		return nil
	}
	return []Coding{{System: system, Code: code, Display: display}}
}

func boolPtr(b bool) *bool { return &b }

// mailboxTelecom is an MSSanté mailbox as the IG's as-mailbox-mss
// ContactPoint profile gives it: system email, the fr-core e-mail type
// MSSANTE (TRE_R256), and the as-ext-mailbox-mss-metadata extension (type
// from TRE_R257, description, service, digitization, listeRouge).
func mailboxTelecom(m storage.MailboxEntry) ContactPoint {
	meta := []Extension{}
	if m.Type != "" {
		meta = append(meta, Extension{URL: "type", ValueCodeableConcept: &CodeableConcept{Coding: []Coding{{System: csMailboxType, Code: m.Type}}}})
	}
	if m.Description != "" {
		meta = append(meta, Extension{URL: "description", ValueString: m.Description})
	}
	if m.Service != "" {
		meta = append(meta, Extension{URL: "service", ValueString: m.Service})
	}
	meta = append(meta,
		Extension{URL: "digitization", ValueBoolean: boolPtr(m.Digitization)},
		// The extraction publishes only mailboxes outside the red list.
		Extension{URL: "listeRouge", ValueBoolean: boolPtr(false)})
	return ContactPoint{
		Extension: []Extension{
			{URL: extEmailType, ValueCoding: &Coding{System: csMessaging, Code: mailboxMSSante}},
			{URL: extMailboxMetadata, Extension: meta},
		},
		System: "email",
		Value:  m.Address,
		Use:    "work",
	}
}

func practitionerOf(p storage.Professional, mailboxes []storage.MailboxEntry) Practitioner {
	res := Practitioner{
		ResourceType: "Practitioner",
		ID:           resourceID(p.ID),
		Meta:         &Meta{Profile: []string{profilePractitioner}},
		Active:       true,
		Identifier:   []Identifier{{Use: "official", Type: idType("IDNPS"), System: sysIDNatPS, Value: p.ID}},
	}
	switch p.IDType {
	case storage.IDTypeRPPS:
		res.Identifier = append(res.Identifier, Identifier{Use: "official", Type: idType("RPPS"), System: sysRPPS, Value: p.Identifier})
	case storage.IDTypeADELI:
		res.Identifier = append(res.Identifier, Identifier{Use: "official", Type: idType("ADELI"), System: sysADELI, Value: p.Identifier})
	}
	if p.FamilyName != "" || p.GivenName != "" {
		n := HumanName{Use: "usual", Family: p.FamilyName}
		if p.GivenName != "" {
			n.Given = []string{p.GivenName}
		}
		if p.CivilityCode != "" {
			// AsPractitionerProfile: name.suffix is the civilité d'exercice.
			n.Suffix = []string{p.CivilityCode}
		}
		res.Name = []HumanName{n}
	}
	for _, m := range mailboxes {
		res.Telecom = append(res.Telecom, mailboxTelecom(m))
	}
	// qualification[exercicePro]: profession (TRE_G15) and category (TRE_R09).
	if c := append(coding(csProfession, p.ProfessionCode, p.Profession), coding(csCategory, p.CategoryCode, p.Category)...); len(c) > 0 {
		res.Qualification = append(res.Qualification, Qualification{Code: CodeableConcept{Coding: c}})
	}
	// qualification[savoirFaire]
	if sf := specialtyCoding(p.SpecialtyCode, p.Specialty); sf != nil {
		res.Qualification = append(res.Qualification, Qualification{Code: CodeableConcept{Coding: sf}})
	}
	return res
}

// specialtyCoding: the SM codes are the spécialités ordinales (TRE_R38);
// other savoir-faire codes belong to nomenclatures the national files do
// not name (TRE_R39 compétences, TRE_R43 capacités...): they keep their
// code and label without a system rather than a guessed one.
func specialtyCoding(code, label string) []Coding {
	if code == "" {
		return nil
	}
	if strings.HasPrefix(code, "SM") {
		return coding(csSpecialty, code, label)
	}
	return []Coding{{Code: code, Display: label}}
}

func roleOf(p storage.Professional, a storage.Activity, site *storage.Organisation, mailboxes []storage.MailboxEntry) PractitionerRole {
	res := PractitionerRole{
		ResourceType: "PractitionerRole",
		ID:           roleID(p.ID, a.Key),
		Meta:         &Meta{Profile: []string{profilePractitionerRole}},
		Active:       true,
		Practitioner: &Reference{Reference: "Practitioner/" + resourceID(p.ID), Display: strings.TrimSpace(p.GivenName + " " + p.FamilyName)},
	}
	if a.Organisation != "" {
		ref := &Reference{Reference: "Organization/" + resourceID(a.Organisation)}
		if site != nil {
			ref.Display = site.Name
		}
		res.Organization = ref
	}
	// code slices of AsPractitionerRoleProfile: professionG15,
	// CategorieProfession (TRE_R09), modeExercice (TRE_R23),
	// metierPharmacienR06 (section of the pharmacists' table).
	for _, c := range [][]Coding{
		coding(csProfession, p.ProfessionCode, p.Profession),
		coding(csCategory, p.CategoryCode, p.Category),
		coding(csMode, a.ModeCode, a.Mode),
		coding(csSection, a.SectionCode, a.Section),
	} {
		if c != nil {
			res.Code = append(res.Code, CodeableConcept{Coding: c})
		}
	}
	if a.Role != "" {
		res.Code = append(res.Code, CodeableConcept{Text: a.Role})
	}
	if sf := specialtyCoding(p.SpecialtyCode, p.Specialty); sf != nil {
		res.Specialty = []CodeableConcept{{Coding: sf}}
	}
	// The mailboxes of this professional at this structure (the MSS
	// capability statement of the IG carries PER mailboxes of a situation
	// d'exercice in PractitionerRole.telecom[mailbox-mss]).
	for _, m := range mailboxes {
		if a.Organisation != "" && m.Organisation == a.Organisation {
			res.Telecom = append(res.Telecom, mailboxTelecom(m))
		}
	}
	return res
}

func organizationOf(o storage.Organisation, mailboxes []storage.MailboxEntry) Organization {
	res := Organization{
		ResourceType: "Organization",
		ID:           resourceID(o.ID),
		Meta:         &Meta{Profile: []string{profileOrganization}},
		Active:       true,
		Name:         o.Name,
	}
	if nat := idNatStruct(o); nat != "" {
		res.Identifier = append(res.Identifier, Identifier{Use: "official", Type: idType("IDNST"), System: sysIDNatSt, Value: nat})
	}
	if o.FINESS != "" {
		res.Identifier = append(res.Identifier, Identifier{Use: "official", Type: idType("FINEG"), System: sysFINESS, Value: o.FINESS})
	}
	if o.LegalFINESS != "" {
		res.Identifier = append(res.Identifier, Identifier{Use: "official", Type: idType("FINEJ"), System: sysFINESS, Value: o.LegalFINESS})
	}
	if o.SIRET != "" {
		res.Identifier = append(res.Identifier, Identifier{Use: "official", Type: idType("SIRET"), System: sysSIRENE, Value: o.SIRET})
	}
	if o.SIREN != "" {
		res.Identifier = append(res.Identifier, Identifier{Use: "official", Type: idType("SIREN"), System: sysSIRENE, Value: o.SIREN})
	}
	res.Identifier = append(res.Identifier, Identifier{Use: "official", Type: idType("INTRN"), System: sysAnnuaire, Value: o.ID})
	if o.TradeName != "" {
		res.Alias = []string{o.TradeName}
	}
	if c := coding(csSector, o.SectorCode, o.Sector); c != nil {
		res.Type = []CodeableConcept{{Coding: c}}
	}
	for _, t := range []struct{ system, value string }{{"phone", o.Phone}, {"fax", o.Fax}, {"email", o.Email}} {
		if t.value != "" {
			res.Telecom = append(res.Telecom, ContactPoint{System: t.system, Value: t.value, Use: "work"})
		}
	}
	// The structure's own mailboxes: organisational and applicative ones
	// (PER and CAB mailboxes are their professionals').
	for _, m := range mailboxes {
		if m.Type == storage.MailboxOrganisational || m.Type == storage.MailboxApplicative || m.Type == "" && m.Professional == "" {
			res.Telecom = append(res.Telecom, mailboxTelecom(m))
		}
	}
	if a := addressOf(o.Address); a != nil {
		res.Address = []Address{*a}
	}
	return res
}

// idNatStruct builds the identification nationale de structure from the
// identifiers the national files give: 1 + FINESS, 3 + SIRET, 2 + SIREN;
// an ID already in that form (type digit 0-4 then digits) is kept.
func idNatStruct(o storage.Organisation) string {
	switch {
	case o.FINESS != "":
		return "1" + o.FINESS
	case o.SIRET != "":
		return "3" + o.SIRET
	case o.SIREN != "":
		return "2" + o.SIREN
	}
	if len(o.ID) > 1 && o.ID[0] >= '0' && o.ID[0] <= '4' && strings.Trim(o.ID, "0123456789") == "" {
		return o.ID
	}
	return ""
}

// addressOf writes the AFNOR lines as Address.line, in order: L2
// recipient, L3 location, L4 number and street, L5 distribution, then the
// cedex office when given.
func addressOf(a storage.PostalAddress) *Address {
	if a == (storage.PostalAddress{}) {
		return nil
	}
	var lines []string
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" {
			lines = append(lines, s)
		}
	}
	add(a.Recipient)
	add(a.Location)
	add(strings.Join(strings.Fields(strings.Join([]string{a.Number, a.Repetition, a.StreetType, a.Street}, " ")), " "))
	add(a.Distribution)
	add(a.Cedex)
	return &Address{Use: "work", Type: "both", Line: lines, City: a.City, District: a.Department, PostalCode: a.PostalCode, Country: a.Country}
}
