package xdm

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"math/big"
	"path"
	"strings"
	"time"

	"github.com/relais-mssante/relais/document/cda"
)

// DefaultSubset is the folder Build writes to (ITI TF-2b 3.32.4.1.2.2: one
// folder per submission set under IHE_XDM).
const DefaultSubset = "IHE_XDM/SUBSET01"

// NewUUID returns a random (version 4) "urn:uuid:..." identifier.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return "urn:uuid:" + formatUUID(b[:])
}

func formatUUID(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// UUIDToOID turns "urn:uuid:..." into the OID 2.25.<decimal> (ITU-T X.667,
// ISO/IEC 9834-8 6.3), a valid XDS uniqueId for a submission set (ITI TF-3
// 4.2.3.3.12 requires an OID).
func UUIDToOID(u string) string {
	h := strings.ReplaceAll(strings.TrimPrefix(u, "urn:uuid:"), "-", "")
	n, ok := new(big.Int).SetString(h, 16)
	if !ok {
		return ""
	}
	return "2.25." + n.String()
}

type idGen struct{ f func() string }

func (g *idGen) next() string { return g.f() }

// CX formats an HL7 v2 CX patient identifier as XDS wants it (ITI TF-3
// 4.2.3.1.7 / Table 4.2.3.1.7-2): id^^^&root&ISO^type. The CI-SIS uses type
// NH for an INS and PI for a local identifier (IPP).
func CX(id cda.ID, typ string) string {
	if id.Extension == "" {
		return ""
	}
	s := id.Extension + "^^^&" + id.Root + "&ISO"
	if typ != "" {
		s += "^" + typ
	}
	return s
}

// ParseCX returns the identifier and assigning authority OID of a CX value.
func ParseCX(s string) cda.ID {
	f := strings.Split(s, "^")
	id := cda.ID{Extension: f[0]}
	if len(f) > 3 {
		if sub := strings.Split(f[3], "&"); len(sub) > 1 {
			id.Root = sub[1]
		}
	}
	return id
}

// v2 escapes the HL7 v2 delimiters in a component value (HL7 v2.5 2.7.4).
func v2(s string) string {
	r := strings.NewReplacer(`\`, `\E\`, "|", `\F\`, "^", `\S\`, "&", `\T\`, "~", `\R\`)
	return r.Replace(s)
}

// PatientID returns the XDS patientId of a CDA header: the INS as
// "NIR^^^&1.2.250.1.213.1.4.x&ISO^NH" (CI-SIS, volet Partage de documents
// de santé; NH = national health number), "" without an INS.
func PatientID(h cda.Header) string {
	if h.Patient.INS == nil {
		return ""
	}
	return CX(*h.Patient.INS, "NH")
}

// XCN formats a person (RPPS or other id) as an XDS XCN (ITI TF-3 Table
// 4.2.3.1.7-2): id^Family^Given^^^Prefix^^^&root&ISO^D^^^IDNPS.
func XCN(id cda.ID, family, given, prefix string) string {
	typ := "IDNPS" // CI-SIS: identifiant national de professionnel de santé
	if id.Root != cda.OIDRPPS {
		typ = "EI"
	}
	s := v2(id.Extension) + "^" + v2(family) + "^" + v2(given) + "^^^" + v2(prefix) + "^^^&" + id.Root + "&ISO^D^^^" + typ
	if id.Extension == "" {
		s = "^" + v2(family) + "^" + v2(given) + "^^^" + v2(prefix)
	}
	return s
}

// XON formats an organisation as an XDS XON (ITI TF-3 Table 4.2.3.1.7-2):
// Name^^^^^&root&ISO^IDNST^^^id.
func XON(id cda.ID, name string) string {
	if id.Extension == "" {
		return v2(name)
	}
	return v2(name) + "^^^^^&" + id.Root + "&ISO^IDNST^^^" + v2(id.Extension)
}

func ce(c cda.Code) string {
	if c.Code == "" {
		return ""
	}
	return v2(c.Code) + "^" + v2(c.Display) + "^" + c.System
}

// AuthorFromCDA maps a CDA author to an XDS author (CI-SIS mapping table
// "Lien entre l'en-tête CDA et les métadonnées XDS").
func AuthorFromCDA(a cda.Author) XDSAuthor {
	var x XDSAuthor
	if a.Device {
		x.Person = v2(a.ID.Extension) + "^" + v2(a.Family) + "^" + v2(a.Given) + "^^^^^^&" + a.ID.Root + "&ISO^U^^^RI"
	} else {
		x.Person = XCN(a.ID, a.Family, a.Given, a.Prefix)
	}
	if a.Organisation != "" || a.OrgID.Extension != "" {
		x.Institution = []string{XON(a.OrgID, a.Organisation)}
	}
	if s := ce(a.Role); s != "" {
		x.Role = []string{s}
	}
	if s := ce(a.Specialty); s != "" {
		x.Specialty = []string{s}
	}
	return x
}

// EntryFromCDA derives the document entry metadata of a CDA document from its
// header, as the CI-SIS maps them (ITI TF-3 4.2.3.2 attributes; CI-SIS
// "Lien entre l'en-tête CDA et les métadonnées XDS"). Identity, hash, size,
// URI and mime type are filled by Build.
func EntryFromCDA(h cda.Header) Entry {
	e := Entry{
		UniqueID:                   h.ID.Root,
		Title:                      h.Title,
		CreationTime:               h.EffectiveTime,
		ServiceStart:               h.ServiceStart,
		ServiceStop:                h.ServiceStop,
		TypeCode:                   h.Type,
		FormatCode:                 h.Format,
		HealthcareFacilityTypeCode: h.FacilityType,
		PracticeSettingCode:        h.PracticeSetting,
		EventCodes:                 h.Events,
		LanguageCode:               h.Language,
		PatientID:                  PatientID(h),
		ClassCode:                  ClassCodeFor(h.Type),
		Availability:               statusApproved,
	}
	if h.ID.Extension != "" {
		e.UniqueID += "^" + h.ID.Extension
	}
	if e.ServiceStart.IsZero() {
		e.ServiceStart, e.ServiceStop = h.EncounterStart, h.EncounterEnd
	}
	if h.Confidentiality.Code != "" {
		e.ConfidentialityCode = []cda.Code{h.Confidentiality}
	}
	if e.TypeCode.Display == "" {
		e.TypeCode.Display = h.Title
	}
	for _, a := range h.Authors {
		e.Authors = append(e.Authors, AuthorFromCDA(a))
	}
	if la := h.LegalAuth; la != nil {
		e.LegalAuthenticator = XCN(la.ID, la.Family, la.Given, la.Prefix)
	}
	// sourcePatientId: the local identifier (IPP) if any, else the INS.
	for _, id := range h.Patient.IDs {
		if cda.INSKind(id.Root) == "" && id.Extension != "" {
			e.SourcePatientID = CX(id, "PI")
			break
		}
	}
	if e.SourcePatientID == "" {
		e.SourcePatientID = e.PatientID
	}
	// ITI TF-3 4.2.3.2.24 sourcePatientInfo (PID-5 birth name L and used
	// name D, PID-7 birth date, PID-8 sex).
	p := h.Patient
	given := p.FirstGiven
	if given == "" && len(p.Given) > 0 {
		given = p.Given[0]
	}
	if p.BirthName != "" {
		e.SourcePatientInfo = append(e.SourcePatientInfo, "PID-5|"+v2(p.BirthName)+"^"+v2(given)+"^^^^^L")
	}
	if p.Family != "" {
		used := p.UsedGiven
		if used == "" {
			used = given
		}
		e.SourcePatientInfo = append(e.SourcePatientInfo, "PID-5|"+v2(p.Family)+"^"+v2(used)+"^^^^^D")
	}
	if p.BirthDate != "" {
		e.SourcePatientInfo = append(e.SourcePatientInfo, "PID-7|"+v2(p.BirthDate))
	}
	if p.Gender != "" {
		e.SourcePatientInfo = append(e.SourcePatientInfo, "PID-8|"+v2(p.Gender))
	}
	return e
}

// ClassCodes maps a LOINC document type to its XDS classCode
// (ASS_X04-CorrespondanceType-Classe-CISIS, codes of JDV_J57-ClassCode-DMP).
// Relais ships no copy of that table yet: fill it at start-up from the NOS
// file, or set Document.ClassCode. Keyed by LOINC code.
var ClassCodes = map[string]cda.Code{}

// ClassCodeFor returns ClassCodes[type], or a zero Code.
func ClassCodeFor(typ cda.Code) cda.Code { return ClassCodes[typ.Code] }

var errBuild = errors.New("xdm: build")

func validName(n string) bool {
	if n == "" || len(n) > 64 || n == "METADATA.XML" {
		return false
	}
	for _, r := range n {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return !strings.HasPrefix(n, ".")
}

// Build writes an XDM package (ITI TF-2b 3.32, Distribute Document Set on
// Media, ZIP option as MSSanté uses it): README.TXT and INDEX.HTM at the
// root, IHE_XDM/SUBSET01/METADATA.XML and the documents beside it, with
// metadata derived from the CDA headers and in.Sender.
//
// Decision (CI-SIS MSSanté, client rules): the PDF rendering of a CDA travels
// as a separate attachment of the mail, not in the ZIP; Build packs exactly
// the documents it is given, so a caller that wants a PDF entry passes it as
// a Document with MimeType application/pdf and no Header: its metadata then
// comes from the first CDA document (same patient, authors, dates) with the
// XDS-SD PDF formatCode.
func Build(in BuildInput) ([]byte, *Package, error) {
	if len(in.Documents) == 0 {
		return nil, nil, fmt.Errorf("%w: no document", errBuild)
	}
	uuid := in.UUID
	if uuid == nil {
		uuid = NewUUID
	}
	ids := &idGen{f: uuid}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)

	var base *cda.Header
	for i := range in.Documents {
		if in.Documents[i].Header.Type.Code != "" {
			base = &in.Documents[i].Header
			break
		}
	}
	if base == nil {
		return nil, nil, fmt.Errorf("%w: no CDA document (a Document with a parsed Header)", errBuild)
	}
	pkg := &Package{Subset: DefaultSubset, Files: map[string][]byte{}}
	for i, d := range in.Documents {
		name := d.Name
		isCDA := d.Header.Type.Code != ""
		mime := d.MimeType
		if mime == "" && isCDA {
			mime = "text/xml" // CI-SIS: mimeType text/xml for a CDA document
		}
		if mime == "" {
			return nil, nil, fmt.Errorf("%w: document %d: no mime type", errBuild, i+1)
		}
		if name == "" {
			ext := ".XML"
			if mime == "application/pdf" {
				ext = ".PDF"
			}
			name = fmt.Sprintf("DOC%04d%s", i+1, ext) // ISO 9660 8.3 names, ITI TF-2b 3.32.4.1.2.2
		}
		if !validName(name) {
			return nil, nil, fmt.Errorf("%w: document %d: file name %q not allowed", errBuild, i+1, name)
		}
		if _, dup := pkg.Files[name]; dup {
			return nil, nil, fmt.Errorf("%w: duplicate file name %q", errBuild, name)
		}
		var e Entry
		if isCDA {
			e = EntryFromCDA(d.Header)
		} else {
			e = EntryFromCDA(*base)
			e.UniqueID = UUIDToOID(uuid())
			e.FormatCode = cda.FormatForMedia(mime)
			e.Title = base.Title + " (" + mime + ")"
		}
		if d.ClassCode.Code != "" {
			e.ClassCode = d.ClassCode
		}
		sum := sha1.Sum(d.Data)
		e.EntryUUID = uuid()
		e.URI = name
		e.MimeType = mime
		e.Hash = hex.EncodeToString(sum[:]) // ITI TF-3 4.2.3.2.12
		e.Size = int64(len(d.Data))         // ITI TF-3 4.2.3.2.23
		if e.PatientID != PatientID(*base) {
			return nil, nil, fmt.Errorf("%w: documents are about different patients (MSSanté: one patient per message)", errBuild)
		}
		pkg.Entries = append(pkg.Entries, e)
		pkg.Files[name] = d.Data
	}

	ssUUID := uuid()
	sourceID := in.SourceID
	if sourceID == "" {
		// As ANS's own XDM generator does: the custodian's identifier as OID.
		c := base.Custodian.ID
		if c.Extension != "" && strings.Trim(c.Extension, "0123456789") == "" {
			sourceID = c.Root + "." + strings.TrimLeft(c.Extension, "0")
		}
	}
	if sourceID == "" {
		return nil, nil, fmt.Errorf("%w: no sourceId (set BuildInput.SourceID)", errBuild)
	}
	content := in.ContentType
	if content.Code == "" {
		content = base.FacilityType // as ANS's XDM generator does
	}
	ss := SubmissionSet{
		UniqueID:        UUIDToOID(ssUUID),
		SourceID:        sourceID,
		EntryUUID:       ssUUID,
		SubmissionTime:  now,
		ContentTypeCode: content,
		PatientID:       PatientID(*base),
		Title:           in.Title,
	}
	if in.Sender.Person != "" || len(in.Sender.Institution) > 0 {
		ss.Authors = []XDSAuthor{in.Sender}
	} else if len(pkg.Entries[0].Authors) > 0 {
		ss.Authors = pkg.Entries[0].Authors[:1]
	}
	for _, r := range in.Recipients {
		if !strings.Contains(r, "^") && strings.Contains(r, "@") {
			// ITI TF-3 4.2.3.3.7 intendedRecipient: XON|XCN|XTN; here an
			// e-mail address only.
			r = "|^^Internet^" + r
		}
		ss.IntendedRecipients = append(ss.IntendedRecipients, r)
	}
	pkg.SubmissionSet = ss
	pkg.Metadata = encodeMetadata(pkg, ids)
	pkg.Readme = readme(in, now)
	pkg.Index = index(pkg)

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: now})
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	files := []struct {
		name string
		data []byte
	}{{"README.TXT", pkg.Readme}, {"INDEX.HTM", pkg.Index}, {path.Join(pkg.Subset, "METADATA.XML"), pkg.Metadata}}
	for _, e := range pkg.Entries {
		files = append(files, struct {
			name string
			data []byte
		}{path.Join(pkg.Subset, e.URI), pkg.Files[e.URI]})
	}
	for _, f := range files {
		if err := add(f.name, f.data); err != nil {
			return nil, nil, fmt.Errorf("%w: zip %s: %w", errBuild, f.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, nil, fmt.Errorf("%w: zip: %w", errBuild, err)
	}
	return buf.Bytes(), pkg, nil
}

// readme is README.TXT (ITI TF-2b 3.32.4.1.2.2: the sending application and
// its vendor, and the package's purpose). Pure ASCII, CRLF.
func readme(in BuildInput, now time.Time) []byte {
	prod := in.Product
	if prod == "" {
		prod = "Relais"
	}
	lines := []string{
		"IHE XDM package (IHE ITI Cross-Enterprise Document Media Interchange)",
		"",
		"Created by: " + prod,
		"Created on: " + now.Format(time.RFC3339),
		"",
		"IHE_XDM/SUBSET01/METADATA.XML describes the submission set and its documents.",
		"INDEX.HTM lists the documents.",
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

// index is INDEX.HTM: a readable list of the documents (ITI TF-2b
// 3.32.4.1.2.2). No patient identifier in it beyond document titles.
func index(p *Package) []byte {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><title>IHE XDM</title></head><body>\r\n")
	b.WriteString("<h1>Documents</h1>\r\n<ul>\r\n")
	b.WriteString("<li><a href=\"README.TXT\">README.TXT</a></li>\r\n")
	for _, e := range p.Entries {
		fmt.Fprintf(&b, "<li><a href=\"%s\">%s</a> (%s)</li>\r\n",
			html.EscapeString(path.Join(p.Subset, e.URI)), html.EscapeString(e.Title), html.EscapeString(e.MimeType))
	}
	b.WriteString("</ul>\r\n</body></html>\r\n")
	return []byte(b.String())
}
