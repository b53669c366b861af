package storage

import (
	"context"
	"time"
)

// The directory: health professionals (RPPS/ADELI), organisations (FINESS,
// SIRET), their activities (who works where), MSSanté addresses, the
// certificates attached to an address, and the MSSanté trust list. The
// national files fill it (package directory imports them); local accounts
// are entries of it too (source SourceLocal, kept by CreateAccount).

// Sources of directory entries. A re-import of a source applies the
// differences to that source's entries only.
const (
	SourceRPPS      = "rpps"      // PS_LibreAcces_Personne_activite
	SourceMSSante   = "mssante"   // Extraction_Correspondance_MSSante
	SourceTrustList = "trustlist" // listeblanchemssante.xml
	SourceLocal     = "local"     // this installation's accounts
	SourceAdmin     = "admin"     // added by an administrator (certificates)
)

// Identifier types of a professional ("Type d'identifiant PP").
const (
	IDTypeADELI = "ADELI" // type 0
	IDTypeRPPS  = "RPPS"  // type 8
)

// MSSanté mailbox types ("Type de BAL"; TRE_R256 / as-ext-mailbox-mss-metadata).
const (
	MailboxPersonal       = "PER"
	MailboxOrganisational = "ORG"
	MailboxApplicative    = "APP"
	MailboxPractice       = "CAB" // a practice's shared mailbox
)

// EntryKind names a table of the directory, for imports, deletes and
// search results.
type EntryKind string

const (
	KindProfessional EntryKind = "professional"
	KindActivity     EntryKind = "activity"
	KindOrganisation EntryKind = "organisation"
	KindMailbox      EntryKind = "mailbox"
	KindTrust        EntryKind = "trust"
)

// Professional is a health professional of the national directory.
type Professional struct {
	// ID is the "Identification nationale PP": the identifier type digit
	// followed by the identifier ("8" + 11-digit RPPS, "0" + ADELI).
	ID             string
	IDType         string // IDTypeRPPS or IDTypeADELI
	Identifier     string // the RPPS or ADELI number alone
	CivilityCode   string // civilité d'exercice, code ("DR", "PR", "MC", "M")
	Civility       string // its label ("Docteur")
	FamilyName     string // nom d'exercice
	GivenName      string // prénom d'exercice
	ProfessionCode string // TRE_G15 ("10" médecin, "60" infirmier)
	Profession     string
	CategoryCode   string // catégorie professionnelle ("C" civil, "M" militaire, "E" étudiant)
	Category       string
	SpecialtyCode  string // savoir-faire ("SM54" médecine générale)
	Specialty      string
	Source         string // set from the batch
	// Hash is a digest of the content, computed by the importer: a
	// re-import compares it to decide whether the entry changed.
	Hash uint64
}

// PostalAddress is a French postal address as the national files give it
// (AFNOR XP Z10-011 lines).
type PostalAddress struct {
	Recipient    string // complément destinataire (L2)
	Location     string // complément point géographique (L3)
	Number       string // numéro de voie (L4)
	Repetition   string // indice de répétition ("B" bis)
	StreetType   string // libellé type de voie ("Rue")
	Street       string // libellé de voie
	Distribution string // mention de distribution, lieu-dit (L5)
	Cedex        string // bureau cedex, or the whole L6 line when only it is given
	PostalCode   string
	CityCode     string // INSEE code of the commune
	City         string
	Department   string
	Country      string
}

// Organisation is a place of activity or a legal entity (a hospital, a
// practice, a pharmacy).
type Organisation struct {
	// ID is the national file's identifier of the structure ("Identifiant
	// technique de la structure"); for structures known only by the
	// MSSanté extraction, its identifier type digit followed by the value.
	ID          string
	FINESS      string // FINESS of the site (établissement géographique)
	LegalFINESS string // FINESS of the legal entity (établissement juridique)
	SIRET       string
	SIREN       string
	Name        string // raison sociale
	TradeName   string // enseigne commerciale
	Address     PostalAddress
	Phone       string
	Fax         string
	Email       string
	SectorCode  string // secteur d'activité (TRE_R02)
	Sector      string
	Source      string
	Hash        uint64
}

// Activity is one professional's exercise at one place ("situation
// d'exercice"): a line of the RPPS extraction.
type Activity struct {
	Professional string // Professional.ID
	// Key identifies the activity among the professional's; the importer
	// derives it from the activity's content.
	Key          string
	Organisation string // Organisation.ID; "" when the activity has no structure
	ModeCode     string // mode d'exercice: "L" libéral, "S" salarié, "B" bénévole
	Mode         string
	SectionCode  string // section du tableau des pharmaciens
	Section      string
	Role         string // fonction, when given
	// PostalCode and City repeat the organisation's, for search.
	PostalCode string
	City       string
	Source     string
	Hash       uint64
}

// MailboxEntry is an MSSanté address published in the directory, or a
// local account's address.
type MailboxEntry struct {
	Address      string // as published; matched case-insensitively
	Type         string // MailboxPersonal, MailboxOrganisational, ...
	Professional string // Professional.ID of the owner (PER), if known
	Organisation string // Organisation.ID of the structure, if known
	Service      string // service de rattachement
	Description  string
	// The owner as the extraction names it, so that an address is
	// searchable even when its professional is not imported.
	Civility       string
	FamilyName     string
	GivenName      string
	ProfessionCode string
	Profession     string
	SpecialtyCode  string
	Specialty      string
	// OrganisationName is the structure's raison sociale (or the display
	// name of an organisational or applicative mailbox).
	OrganisationName string
	StructureAddress PostalAddress // the structure's address
	Digitization     bool          // accepts dematerialised documents ("Dématérialisation")
	Account          AccountID     // a local account (SourceLocal), 0 otherwise
	Source           string
	Hash             uint64
}

// Certificate is a certificate attached to an address (S/MIME, for the
// address book and for encryption).
type Certificate struct {
	Address     string
	DER         []byte
	Fingerprint string // lower-case hex SHA-256 of DER, computed by the caller
	Subject     string
	NotBefore   time.Time
	NotAfter    time.Time
	Source      string
	Added       time.Time // set by the store
}

// TrustEntry is one (domain, operator certificate) pair of the MSSanté
// trust list: a domain of the trust space and the DN of the server
// certificate its operator presents.
type TrustEntry struct {
	Domain      string // lower-case A-label
	Description string
	OperatorDN  string // as published
	// OperatorKey is OperatorDN in canonical form (directory.CanonicalDN):
	// lookups compare DNs by their parsed attributes, never as raw strings.
	OperatorKey        string
	ResponsibleContact string
	SupportContact     string
	Updated            time.Time
	Hash               uint64
}

// EntryRef names one directory entry for deletion. Key is what
// DirectoryHashes reports for that kind.
type EntryRef struct {
	Kind EntryKind
	Key  string
}

// DirectoryBatch is a set of upserts and deletes applied in one
// transaction, all for Source (which every entry takes).
type DirectoryBatch struct {
	Source        string
	Professionals []Professional
	Organisations []Organisation
	Activities    []Activity
	Mailboxes     []MailboxEntry
	Trust         []TrustEntry
	Delete        []EntryRef
}

// DirectoryQuery is a directory search. Every field given must match
// (AND); text is folded for case and accents by the store.
type DirectoryQuery struct {
	// Name: the words must be the beginning of "family given", of "given
	// family", of an organisation's name or of a mailbox's display name
	// ("mart cl" finds Claire MARTIN; "claire m" too).
	Name           string
	Identifier     string // exact: national id, RPPS, ADELI, FINESS, SIRET, SIREN, organisation id
	Address        string // prefix of an e-mail address
	ProfessionCode string
	SpecialtyCode  string
	PostalCode     string      // prefix ("75" for Paris, "75011")
	City           string      // prefix of the city name
	Kinds          []EntryKind // restrict to these hit kinds; empty: all
	Offset         int
	Limit          int // 0: 20; at most 200
}

// DirectoryHit is one search result: a professional with their activities
// and addresses, an organisation with its addresses, or an address whose
// owner is not in the directory itself (organisational and applicative
// mailboxes, local accounts, personal addresses of unimported
// professionals).
type DirectoryHit struct {
	Kind         EntryKind // KindProfessional, KindOrganisation or KindMailbox
	Professional *Professional
	Organisation *Organisation
	Mailbox      *MailboxEntry
	Activities   []Activity     // the professional's
	Sites        []Organisation // the organisations of Activities
	Mailboxes    []MailboxEntry // the professional's or organisation's addresses
}

// DirectoryPage is a page of results, best first: exact name matches, then
// prefix matches, each in alphabetical order.
type DirectoryPage struct {
	Hits []DirectoryHit
	More bool // another page follows
}

// DirectoryStore is the directory part of the persistence contract.
type DirectoryStore interface {
	// ApplyDirectory writes a batch in one transaction. Upserts replace
	// the entry with the same key; deleting a professional deletes its
	// activities; deleting what is absent is not an error.
	ApplyDirectory(ctx context.Context, b DirectoryBatch) error
	// DirectoryHashes calls fn with the key and Hash of every entry of a
	// kind and source: the importer's starting point for a differential
	// re-import. Keys: Professional.ID; Activity.Professional + "/" +
	// Activity.Key; Organisation.ID; lower-cased MailboxEntry.Address;
	// TrustEntry.Domain + " " + TrustEntry.OperatorKey.
	DirectoryHashes(ctx context.Context, kind EntryKind, source string, fn func(key string, hash uint64) error) error
	// DirectoryCount counts the entries of a kind ("" source: every source).
	DirectoryCount(ctx context.Context, kind EntryKind, source string) (int, error)

	Professional(ctx context.Context, id string) (Professional, error) // by ID, or by RPPS/ADELI number
	Activities(ctx context.Context, professionalID string) ([]Activity, error)
	Organisation(ctx context.Context, id string) (Organisation, error) // by ID, FINESS or SIRET
	// MailboxEntries returns the entries of an address, local first.
	MailboxEntries(ctx context.Context, address string) ([]MailboxEntry, error)
	SearchDirectory(ctx context.Context, q DirectoryQuery) (DirectoryPage, error)

	// Certificates attached to addresses. PutCertificate replaces the
	// certificate with the same address and fingerprint.
	PutCertificate(ctx context.Context, c Certificate) error
	Certificates(ctx context.Context, address string) ([]Certificate, error)  // newest NotBefore first
	DeleteCertificate(ctx context.Context, address, fingerprint string) error // ErrNotFound

	// The trust list.
	TrustByDomain(ctx context.Context, domain string) ([]TrustEntry, error)
	TrustByOperator(ctx context.Context, operatorKey string) ([]TrustEntry, error)
	TrustEntries(ctx context.Context, fn func(TrustEntry) error) error // ordered by domain
}
