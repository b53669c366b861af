// Package xdm reads and writes IHE XDM packages (IHE ITI TF-1 16, ITI TF-3
// 4.2 for the XDS metadata): a ZIP holding README.TXT, INDEX.HTM and
// IHE_XDM/<subset>/METADATA.XML (an ebRIM lcm:SubmitObjectsRequest with one
// submission set and its document entries) beside the documents themselves,
// as the French CI-SIS "volet Transmission de documents CDA en HL7 v2 /
// par messagerie sécurisée de santé" (MSSanté) profiles it.
//
// Reading is defensive: limits on entry count, per-entry and total
// uncompressed size and compression ratio; no absolute paths, no "..", no
// symlinks; METADATA.XML parsed with the same bounds as CDA documents
// (no DOCTYPE). The subset folder is found, never assumed to be SUBSET01.
package xdm

import (
	"errors"
	"time"

	"github.com/relais-mssante/relais/document/cda"
)

// File is a document inside the subset folder.
type File struct {
	Name string // relative to the subset folder, e.g. "DOC0001.XML"
	Data []byte
}

// XDSAuthor is an XDS author (ITI TF-3 4.2.3.1.4): each slot holds HL7 v2
// XCN/XON/CE-like strings as they appear in METADATA.XML.
type XDSAuthor struct {
	Person      string   // authorPerson, XCN: "8RPPS^FAMILY^Given^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
	Institution []string // authorInstitution, XON: "Name^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^FINESS"
	Role        []string // authorRole
	Specialty   []string // authorSpecialty
	Telecom     []string // authorTelecommunication (XTN), e.g. "^^Internet^x@y.mssante.fr"
}

// Entry is an XDS DocumentEntry (ITI TF-3 4.2.3.2, Table 4.2.3.2-1) with the
// attributes the CI-SIS requires for a CDA document in an XDM package.
type Entry struct {
	UniqueID  string // XDSDocumentEntry.uniqueId: the CDA id, "root^extension" or root
	EntryUUID string // ExtrinsicObject/@id, "urn:uuid:..."
	URI       string // path relative to the subset folder (ITI TF-3 4.2.3.2.26), e.g. "DOC0001.XML"
	MimeType  string
	Hash      string // SHA-1, lower-case hex (ITI TF-3 4.2.3.2.12)
	Size      int64  // -1 when METADATA.XML has no size slot

	Title                      string
	CreationTime               time.Time
	ServiceStart, ServiceStop  time.Time
	ClassCode                  cda.Code
	TypeCode                   cda.Code
	FormatCode                 cda.Code
	HealthcareFacilityTypeCode cda.Code
	PracticeSettingCode        cda.Code
	ConfidentialityCode        []cda.Code
	EventCodes                 []cda.Code
	LanguageCode               string
	PatientID                  string   // CX: "INS^^^&1.2.250.1.213.1.4.8&ISO^NH"
	SourcePatientID            string   // CX
	SourcePatientInfo          []string // PID-5, PID-7, PID-8 ...
	Authors                    []XDSAuthor
	LegalAuthenticator         string // XCN
	Comments                   string
	Availability               string // urn:oasis:names:tc:ebxml-regrep:StatusType:Approved
}

// SubmissionSet is the XDS SubmissionSet (ITI TF-3 4.2.3.3).
type SubmissionSet struct {
	UniqueID           string
	SourceID           string
	EntryUUID          string
	SubmissionTime     time.Time
	ContentTypeCode    cda.Code
	PatientID          string
	Authors            []XDSAuthor
	IntendedRecipients []string // XON|XCN|XTN, e.g. "|^^Internet^dr@hopital.mssante.fr"
	Title              string
	Comments           string
}

// Package is a read or built XDM package.
type Package struct {
	Subset        string // the folder actually used, e.g. "IHE_XDM/SUBSET01"
	SubmissionSet SubmissionSet
	Entries       []Entry
	Files         map[string][]byte // by Entry.URI
	Readme, Index []byte
	Metadata      []byte // METADATA.XML as stored
}

// Limits bound Read. Zero fields take the defaults.
type Limits struct {
	MaxEntries int   // default 1000
	MaxTotal   int64 // total uncompressed bytes, default 200 MiB
	MaxFile    int64 // per entry, default 50 MiB
	MaxRatio   int   // uncompressed/compressed per entry, default 100
}

// Default limits.
const (
	DefaultMaxEntries = 1000
	DefaultMaxTotal   = 200 << 20
	DefaultMaxFile    = 50 << 20
	DefaultMaxRatio   = 100
)

// Errors (wrapped with detail; test with errors.Is).
var (
	ErrZipBomb     = errors.New("xdm: entry exceeds size or compression limits")
	ErrTooMany     = errors.New("xdm: too many entries")
	ErrPathEscape  = errors.New("xdm: entry path escapes the archive")
	ErrSymlink     = errors.New("xdm: symbolic link entry")
	ErrNoMetadata  = errors.New("xdm: no IHE_XDM/<subset>/METADATA.XML")
	ErrMetadata    = errors.New("xdm: invalid METADATA.XML")
	ErrHash        = errors.New("xdm: document hash or size does not match its metadata")
	ErrMissingFile = errors.New("xdm: document referenced by METADATA.XML is missing")
	ErrNotZip      = errors.New("xdm: not a ZIP archive")
)

// Document is one document to pack.
type Document struct {
	Name     string // file name in the subset folder; generated when empty (DOC0001.XML)
	Data     []byte
	Header   cda.Header // parsed header for a CDA; zero for a non-CDA document (e.g. its PDF rendering)
	MimeType string     // "text/xml" for CDA (CI-SIS), "application/pdf"...
	// ClassCode overrides ClassCodeFor(Header.Type) (XDS classCode is
	// required by the CI-SIS; see ClassCodes).
	ClassCode cda.Code
}

// BuildInput is what Build needs.
type BuildInput struct {
	Documents  []Document
	Sender     XDSAuthor // submission set author (the sending professional or organisation)
	Recipients []string  // intendedRecipient values (XTN form "|^^Internet^addr", or plain addresses)
	SourceID   string    // sourceId OID of the sending system; default: custodian root.FINESS
	// ContentType is the submission set contentTypeCode (JDV_J59); default:
	// the first CDA's healthcare facility type, as ANS's XDM tool does.
	ContentType cda.Code
	Title       string // submission set title (optional)
	Product     string // sending product named in README.TXT; default "Relais"
	Now         time.Time
	// UUID returns a fresh "urn:uuid:..." (tests inject a deterministic one);
	// nil uses crypto/rand.
	UUID func() string
}

// Problem is a disagreement between METADATA.XML and a CDA document.
type Problem struct {
	Entry  string // Entry.URI
	Field  string // XDS attribute, e.g. "patientId", "typeCode", "hash"
	Detail string // what differs (no patient data)
}

func (p Problem) String() string { return p.Entry + ": " + p.Field + ": " + p.Detail }
