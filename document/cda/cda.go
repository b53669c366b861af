// Package cda reads the header of an HL7 CDA Release 2 document (ANSI/HL7
// CDA R2-2005) as the French CI-SIS profiles it ("volet Structuration
// minimale des documents de santé", "modèles de contenus CDA"): patient
// identity with the INS, document type (LOINC), title, authors (RPPS),
// custodian (FINESS), encounter dates and confidentiality.
//
// Parsing is defensive: a DOCTYPE is refused outright (so no entity, internal
// or external, is ever declared), and size, nesting depth and token count are
// bounded. The whole document is checked to be well-formed within the limits,
// not only the header.
package cda

import (
	"errors"
	"time"
)

// OIDs used in French CDA headers.
const (
	// CDA R2 2.1: LOINC is the code system of ClinicalDocument/code.
	OIDLOINC = "2.16.840.1.113883.6.1"
	// HL7 Confidentiality code system (ClinicalDocument/confidentialityCode).
	OIDConfidentiality = "2.16.840.1.113883.5.25"

	// INS (Identifiant national de santé) roots, CI-SIS "volet Structuration
	// minimale" 2.3 / référentiel INS: 1.2.250.1.213.1.4.x.
	OIDINSNIR     = "1.2.250.1.213.1.4.8"  // INS-NIR
	OIDINSNIA     = "1.2.250.1.213.1.4.9"  // INS-NIA (provisional)
	OIDINSNIRTest = "1.2.250.1.213.1.4.10" // INS-NIR, test
	OIDINSNIRDemo = "1.2.250.1.213.1.4.11" // INS-NIR, demonstration

	// Health professionals by national identifier (RPPS: "8"+number) and
	// organisations by FINESS (CI-SIS, "volet Structuration minimale" 2.4).
	OIDRPPS   = "1.2.250.1.71.4.2.1"
	OIDFINESS = "1.2.250.1.71.4.2.2"

	// HL7 CDA namespace.
	NamespaceHL7 = "urn:hl7-org:v3"
)

// ID is the HL7 v3 II datatype (instance identifier).
type ID struct{ Root, Extension string }

// String returns "root^extension" or root alone.
func (id ID) String() string {
	if id.Extension == "" {
		return id.Root
	}
	return id.Root + "^" + id.Extension
}

// IsZero reports whether the identifier is empty.
func (id ID) IsZero() bool { return id.Root == "" && id.Extension == "" }

// Code is the HL7 v3 CE/CD datatype.
type Code struct{ Code, System, Display string }

// Patient is recordTarget/patientRole.
type Patient struct {
	IDs        []ID     // every patientRole/id
	INS        *ID      // the INS-NIR/NIA (root among the INS OIDs), nil if none
	INSKind    string   // "NIR", "NIA", "NIR-test", "NIR-demo" (from the OID)
	Given      []string // given names without qualifier (prénoms de l'acte de naissance), else FirstGiven
	FirstGiven string   // given qualifier BR (premier prénom de naissance)
	UsedGiven  string   // given qualifier CL (prénom utilisé)
	Family     string   // used family name (qualifier CL/SP, else unqualified, else BirthName)
	BirthName  string   // family qualifier BR (nom de naissance)
	BirthDate  string   // birthTime/@value as written, YYYYMMDD
	Gender     string   // administrativeGenderCode/@code: M, F, U
}

// Author is ClinicalDocument/author/assignedAuthor.
type Author struct {
	ID           ID // RPPS: root 1.2.250.1.71.4.2.1, extension "8"+RPPS
	Given        string
	Family       string
	Prefix       string
	Time         time.Time
	Specialty    Code // assignedAuthor/code (profession/spécialité, TRE_G15/R38...)
	Role         Code // author/functionCode (XDS authorRole)
	Organisation string
	OrgID        ID   // representedOrganization/id (FINESS or SIRET...)
	Device       bool // assignedAuthoringDevice rather than assignedPerson
}

// Custodian is custodian/assignedCustodian/representedCustodianOrganization.
type Custodian struct {
	ID   ID
	Name string
}

// LegalAuthenticator is ClinicalDocument/legalAuthenticator/assignedEntity.
type LegalAuthenticator struct {
	ID     ID
	Given  string
	Family string
	Prefix string
	Time   time.Time
}

// Header is the CDA header as Relais needs it for XDS metadata and
// notifications.
type Header struct {
	ID, SetID       ID
	Version         string // versionNumber/@value
	Type            Code   // LOINC document type (code, codeSystem 2.16.840.1.113883.6.1)
	Title           string
	EffectiveTime   time.Time
	Confidentiality Code
	Language        string // languageCode/@code, e.g. fr-FR
	Patient         Patient
	Authors         []Author
	Custodian       Custodian
	LegalAuth       *LegalAuthenticator
	// componentOf/encompassingEncounter/effectiveTime low/high.
	EncounterStart, EncounterEnd time.Time
	// documentationOf/serviceEvent/effectiveTime low/high (XDS
	// serviceStartTime/serviceStopTime come from here when present).
	ServiceStart, ServiceStop time.Time
	// documentationOf/serviceEvent/code (XDS eventCodeList).
	Events []Code
	// componentOf/encompassingEncounter/location/healthCareFacility/code
	// (XDS healthcareFacilityTypeCode).
	FacilityType Code
	// legalAuthenticator or author representedOrganization/
	// standardIndustryClassCode (XDS practiceSettingCode).
	PracticeSetting Code
	TemplateIDs     []string // ClinicalDocument/templateId/@root (realm and profile)
	Format          Code     // the IHE/ANS format code if derivable, for XDS formatCode
	StructuredBody  bool     // component/structuredBody (else nonXMLBody)
	BodyMediaType   string   // component/nonXMLBody/text/@mediaType, e.g. application/pdf
}

// Limits bound the parser. Zero fields take the defaults.
type Limits struct {
	MaxBytes  int64 // default 20 MiB
	MaxDepth  int   // default 256
	MaxTokens int   // default 2_000_000
}

// Default limits.
const (
	DefaultMaxBytes  = 20 << 20
	DefaultMaxDepth  = 256
	DefaultMaxTokens = 2_000_000
)

// Errors returned by Parse (wrapped with detail; test with errors.Is).
var (
	ErrDoctype   = errors.New("cda: DOCTYPE declarations are not allowed")
	ErrTooLarge  = errors.New("cda: document too large")
	ErrTooDeep   = errors.New("cda: document nested too deeply")
	ErrTooMany   = errors.New("cda: too many XML tokens")
	ErrNotCDA    = errors.New("cda: not a CDA R2 ClinicalDocument")
	ErrMalformed = errors.New("cda: malformed XML")
)
