package xdm

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"github.com/relais-mssante/relais/document/cda"
)

// XDS metadata identifiers, ITI TF-3 4.2.5 (Table 4.2.5.1-1, "XDS metadata
// UUIDs") and ebRIM 3.0 (OASIS regrep-rim-3.0) names used in METADATA.XML.
const (
	nsLCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
	nsRIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"

	// ITI TF-3 4.2.5.2: DocumentEntry objectType (stable / on-demand).
	uuidDocumentEntry         = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
	uuidDocumentEntryOnDemand = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"
	uuidDEAuthor              = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
	uuidDEClassCode           = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
	uuidDEConfidentiality     = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
	uuidDEEventCode           = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
	uuidDEFormatCode          = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
	uuidDEFacilityType        = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
	uuidDEPracticeSetting     = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
	uuidDETypeCode            = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
	uuidDEPatientID           = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
	uuidDEUniqueID            = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

	// ITI TF-3 4.2.5.3: SubmissionSet.
	uuidSubmissionSet = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
	uuidSSAuthor      = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
	uuidSSContentType = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
	uuidSSPatientID   = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
	uuidSSSourceID    = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
	uuidSSUniqueID    = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"

	// ITI TF-3 4.2.2: association and status types.
	assocHasMember  = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
	statusApproved  = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
	objClassif      = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
	objExtID        = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"
	objRegistryPkg  = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
	objAssociation  = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"
	dtmLayout       = "20060102150405" // ITI TF-3 4.2.3.1.5 DTM, always UTC
	maxMetadataSize = 10 << 20
)

// ---- writing ----

type xw struct {
	b   bytes.Buffer
	ids *idGen
}

func (w *xw) esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (w *xw) slot(name string, values ...string) {
	if len(values) == 0 {
		return
	}
	fmt.Fprintf(&w.b, `<rim:Slot name="%s"><rim:ValueList>`, w.esc(name))
	for _, v := range values {
		fmt.Fprintf(&w.b, `<rim:Value>%s</rim:Value>`, w.esc(v))
	}
	w.b.WriteString(`</rim:ValueList></rim:Slot>`)
}

func (w *xw) name(tag, v string) {
	if v == "" {
		return
	}
	fmt.Fprintf(&w.b, `<rim:%s><rim:LocalizedString xml:lang="fr-FR" charset="UTF-8" value="%s"/></rim:%s>`, tag, w.esc(v), tag)
}

// classification writes an external classification (ITI TF-3 4.2.3.1.2):
// a coded value with its coding scheme slot and display name.
func (w *xw) classification(scheme, object string, c cda.Code) {
	if c.Code == "" {
		return
	}
	fmt.Fprintf(&w.b, `<rim:Classification id="%s" objectType="%s" classificationScheme="%s" classifiedObject="%s" nodeRepresentation="%s">`,
		w.ids.next(), objClassif, scheme, w.esc(object), w.esc(c.Code))
	w.slot("codingScheme", c.System)
	w.name("Name", c.Display)
	w.b.WriteString(`</rim:Classification>`)
}

// author writes an author classification (ITI TF-3 4.2.3.1.4): empty
// nodeRepresentation, one slot per author attribute.
func (w *xw) author(scheme, object string, a XDSAuthor) {
	fmt.Fprintf(&w.b, `<rim:Classification id="%s" objectType="%s" classificationScheme="%s" classifiedObject="%s" nodeRepresentation="">`,
		w.ids.next(), objClassif, scheme, w.esc(object))
	if a.Person != "" {
		w.slot("authorPerson", a.Person)
	}
	w.slot("authorInstitution", a.Institution...)
	w.slot("authorRole", a.Role...)
	w.slot("authorSpecialty", a.Specialty...)
	w.slot("authorTelecommunication", a.Telecom...)
	w.b.WriteString(`</rim:Classification>`)
}

func (w *xw) extID(scheme, object, value, label string) {
	if value == "" {
		return
	}
	fmt.Fprintf(&w.b, `<rim:ExternalIdentifier id="%s" objectType="%s" identificationScheme="%s" registryObject="%s" value="%s">`,
		w.ids.next(), objExtID, scheme, w.esc(object), w.esc(value))
	w.name("Name", label)
	w.b.WriteString(`</rim:ExternalIdentifier>`)
}

func dtm(t time.Time) []string {
	if t.IsZero() {
		return nil
	}
	return []string{t.UTC().Format(dtmLayout)}
}

func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// encodeMetadata writes METADATA.XML: an ebRIM lcm:SubmitObjectsRequest
// (ITI TF-3 4.2.5; ITI TF-2b 3.32.4.1.2 for its use on XDM media).
func encodeMetadata(p *Package, ids *idGen) []byte {
	w := &xw{ids: ids}
	ss := p.SubmissionSet
	w.b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&w.b, `<lcm:SubmitObjectsRequest xmlns:lcm="%s" xmlns:rim="%s">`+"\n", nsLCM, nsRIM)
	w.b.WriteString("<rim:RegistryObjectList>\n")

	// ITI TF-3 4.2.3.3: the submission set.
	fmt.Fprintf(&w.b, `<rim:RegistryPackage id="%s" objectType="%s" status="%s">`, w.esc(ss.EntryUUID), objRegistryPkg, statusApproved)
	w.slot("submissionTime", dtm(ss.SubmissionTime)...)
	w.slot("intendedRecipient", ss.IntendedRecipients...)
	w.name("Name", ss.Title)
	w.name("Description", ss.Comments)
	for _, a := range ss.Authors {
		w.author(uuidSSAuthor, ss.EntryUUID, a)
	}
	w.classification(uuidSSContentType, ss.EntryUUID, ss.ContentTypeCode)
	w.extID(uuidSSUniqueID, ss.EntryUUID, ss.UniqueID, "XDSSubmissionSet.uniqueId")
	w.extID(uuidSSSourceID, ss.EntryUUID, ss.SourceID, "XDSSubmissionSet.sourceId")
	w.extID(uuidSSPatientID, ss.EntryUUID, ss.PatientID, "XDSSubmissionSet.patientId")
	w.b.WriteString("</rim:RegistryPackage>\n")
	// ITI TF-3 4.2.3.3 (4.2.5.3): the package is a submission set by this
	// classification.
	fmt.Fprintf(&w.b, `<rim:Classification id="%s" objectType="%s" classificationNode="%s" classifiedObject="%s"/>`+"\n",
		ids.next(), objClassif, uuidSubmissionSet, w.esc(ss.EntryUUID))

	// ITI TF-3 4.2.3.2: one ExtrinsicObject per document entry.
	for _, e := range p.Entries {
		id := e.EntryUUID
		fmt.Fprintf(&w.b, `<rim:ExtrinsicObject id="%s" mimeType="%s" objectType="%s" status="%s">`,
			w.esc(id), w.esc(e.MimeType), uuidDocumentEntry, statusApproved)
		w.slot("creationTime", dtm(e.CreationTime)...)
		w.slot("hash", e.Hash)
		w.slot("languageCode", nonEmpty(e.LanguageCode)...)
		w.slot("legalAuthenticator", nonEmpty(e.LegalAuthenticator)...)
		w.slot("serviceStartTime", dtm(e.ServiceStart)...)
		w.slot("serviceStopTime", dtm(e.ServiceStop)...)
		w.slot("size", fmt.Sprint(e.Size))
		w.slot("sourcePatientId", nonEmpty(e.SourcePatientID)...)
		w.slot("sourcePatientInfo", e.SourcePatientInfo...)
		w.slot("URI", e.URI)
		w.name("Name", e.Title)
		w.name("Description", e.Comments)
		for _, a := range e.Authors {
			w.author(uuidDEAuthor, id, a)
		}
		w.classification(uuidDEClassCode, id, e.ClassCode)
		for _, c := range e.ConfidentialityCode {
			w.classification(uuidDEConfidentiality, id, c)
		}
		for _, c := range e.EventCodes {
			w.classification(uuidDEEventCode, id, c)
		}
		w.classification(uuidDEFormatCode, id, e.FormatCode)
		w.classification(uuidDEFacilityType, id, e.HealthcareFacilityTypeCode)
		w.classification(uuidDEPracticeSetting, id, e.PracticeSettingCode)
		w.classification(uuidDETypeCode, id, e.TypeCode)
		w.extID(uuidDEPatientID, id, e.PatientID, "XDSDocumentEntry.patientId")
		w.extID(uuidDEUniqueID, id, e.UniqueID, "XDSDocumentEntry.uniqueId")
		w.b.WriteString("</rim:ExtrinsicObject>\n")
	}
	// ITI TF-3 4.2.2.1.1: HasMember from the submission set to each entry,
	// SubmissionSetStatus Original.
	for _, e := range p.Entries {
		fmt.Fprintf(&w.b, `<rim:Association id="%s" objectType="%s" associationType="%s" sourceObject="%s" targetObject="%s">`,
			ids.next(), objAssociation, assocHasMember, w.esc(ss.EntryUUID), w.esc(e.EntryUUID))
		w.slot("SubmissionSetStatus", "Original")
		w.b.WriteString("</rim:Association>\n")
	}
	w.b.WriteString("</rim:RegistryObjectList>\n</lcm:SubmitObjectsRequest>\n")
	return w.b.Bytes()
}

// ---- reading ----

func slotsOf(n *cda.Node) map[string][]string {
	m := map[string][]string{}
	for _, s := range n.All("Slot") {
		name := s.Get("name")
		for _, v := range s.Path("ValueList").All("Value") {
			m[name] = append(m[name], strings.TrimSpace(v.Text))
		}
	}
	return m
}

func localized(n *cda.Node, tag string) string {
	return n.Path(tag, "LocalizedString").Get("value")
}

// joinURI undoes the "1|part" splitting of long slot values (ITI TF-3
// 4.2.3.2.26, URI).
func joinURI(vals []string) string {
	if len(vals) == 1 {
		return vals[0]
	}
	parts := make([]string, len(vals))
	for _, v := range vals {
		i := strings.IndexByte(v, '|')
		var k int
		if i < 1 || func() error { _, err := fmt.Sscanf(v[:i], "%d", &k); return err }() != nil || k < 1 || k > len(vals) {
			return strings.Join(vals, "")
		}
		parts[k-1] = v[i+1:]
	}
	return strings.Join(parts, "")
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func parseDTM(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	t, err := cda.ParseTS(v)
	if err != nil {
		return time.Time{}
	}
	return t
}

// collect walks the tree (bounded depth, see cda.Walk) for ebRIM objects,
// whatever the prefix or wrapper (ebRIM 3.0 RegistryObjectList or 2.1
// LeafRegistryObjectList).
func collect(n *cda.Node, out map[string][]*cda.Node) {
	switch n.Name.Local {
	case "RegistryPackage", "ExtrinsicObject", "Association", "Classification":
		// Nested classifications are read from their object; only
		// standalone ones are collected here.
		out[n.Name.Local] = append(out[n.Name.Local], n)
		return
	}
	for _, c := range n.Children {
		collect(c, out)
	}
}

func codeFrom(c *cda.Node) cda.Code {
	return cda.Code{Code: c.Get("nodeRepresentation"), System: first(slotsOf(c)["codingScheme"]), Display: localized(c, "Name")}
}

func authorFrom(c *cda.Node) XDSAuthor {
	s := slotsOf(c)
	return XDSAuthor{
		Person:      first(s["authorPerson"]),
		Institution: s["authorInstitution"],
		Role:        s["authorRole"],
		Specialty:   s["authorSpecialty"],
		Telecom:     s["authorTelecommunication"],
	}
}

// decodeMetadata parses METADATA.XML into the submission set and its entries.
func decodeMetadata(data []byte) (SubmissionSet, []Entry, error) {
	root, err := cda.Tree(bytes.NewReader(data), cda.Limits{MaxBytes: maxMetadataSize}, nil)
	if err != nil {
		return SubmissionSet{}, nil, fmt.Errorf("%w: %w", ErrMetadata, err)
	}
	if root.Name.Local != "SubmitObjectsRequest" && root.Name.Local != "ProvideAndRegisterDocumentSetRequest" {
		return SubmissionSet{}, nil, fmt.Errorf("%w: root element %s", ErrMetadata, root.Name.Local)
	}
	objs := map[string][]*cda.Node{}
	collect(root, objs)

	// Classifications may be nested in their object or standalone.
	byObject := map[string][]*cda.Node{}
	for _, c := range objs["Classification"] {
		byObject[c.Get("classifiedObject")] = append(byObject[c.Get("classifiedObject")], c)
	}
	var ss SubmissionSet
	var ssNode *cda.Node
	for _, rp := range objs["RegistryPackage"] {
		id := rp.Get("id")
		for _, c := range append(rp.All("Classification"), byObject[id]...) {
			if c.Get("classificationNode") == uuidSubmissionSet {
				ssNode = rp
			}
		}
		if ssNode != nil {
			break
		}
	}
	if ssNode == nil {
		return SubmissionSet{}, nil, fmt.Errorf("%w: no submission set (RegistryPackage classified %s)", ErrMetadata, uuidSubmissionSet)
	}
	ss.EntryUUID = ssNode.Get("id")
	s := slotsOf(ssNode)
	ss.SubmissionTime = parseDTM(first(s["submissionTime"]))
	ss.IntendedRecipients = s["intendedRecipient"]
	ss.Title = localized(ssNode, "Name")
	ss.Comments = localized(ssNode, "Description")
	for _, c := range append(ssNode.All("Classification"), byObject[ss.EntryUUID]...) {
		switch c.Get("classificationScheme") {
		case uuidSSAuthor:
			ss.Authors = append(ss.Authors, authorFrom(c))
		case uuidSSContentType:
			ss.ContentTypeCode = codeFrom(c)
		}
	}
	for _, x := range ssNode.All("ExternalIdentifier") {
		switch x.Get("identificationScheme") {
		case uuidSSUniqueID:
			ss.UniqueID = x.Get("value")
		case uuidSSSourceID:
			ss.SourceID = x.Get("value")
		case uuidSSPatientID:
			ss.PatientID = x.Get("value")
		}
	}

	var entries []Entry
	for _, eo := range objs["ExtrinsicObject"] {
		ot := eo.Get("objectType")
		if ot != uuidDocumentEntry && ot != uuidDocumentEntryOnDemand {
			continue
		}
		e := Entry{EntryUUID: eo.Get("id"), MimeType: eo.Get("mimeType"), Availability: eo.Get("status")}
		s := slotsOf(eo)
		e.CreationTime = parseDTM(first(s["creationTime"]))
		e.Hash = strings.ToLower(first(s["hash"]))
		if v := first(s["size"]); v != "" {
			if _, err := fmt.Sscanf(v, "%d", &e.Size); err != nil || e.Size < 0 {
				return SubmissionSet{}, nil, fmt.Errorf("%w: entry %s: size %q", ErrMetadata, e.EntryUUID, v)
			}
		} else {
			e.Size = -1
		}
		e.LanguageCode = first(s["languageCode"])
		e.LegalAuthenticator = first(s["legalAuthenticator"])
		e.ServiceStart = parseDTM(first(s["serviceStartTime"]))
		e.ServiceStop = parseDTM(first(s["serviceStopTime"]))
		e.SourcePatientID = first(s["sourcePatientId"])
		e.SourcePatientInfo = s["sourcePatientInfo"]
		if v := s["URI"]; len(v) > 0 {
			e.URI = joinURI(v)
		}
		e.Title = localized(eo, "Name")
		e.Comments = localized(eo, "Description")
		for _, c := range append(eo.All("Classification"), byObject[e.EntryUUID]...) {
			switch c.Get("classificationScheme") {
			case uuidDEAuthor:
				e.Authors = append(e.Authors, authorFrom(c))
			case uuidDEClassCode:
				e.ClassCode = codeFrom(c)
			case uuidDEConfidentiality:
				e.ConfidentialityCode = append(e.ConfidentialityCode, codeFrom(c))
			case uuidDEEventCode:
				e.EventCodes = append(e.EventCodes, codeFrom(c))
			case uuidDEFormatCode:
				e.FormatCode = codeFrom(c)
			case uuidDEFacilityType:
				e.HealthcareFacilityTypeCode = codeFrom(c)
			case uuidDEPracticeSetting:
				e.PracticeSettingCode = codeFrom(c)
			case uuidDETypeCode:
				e.TypeCode = codeFrom(c)
			}
		}
		for _, x := range eo.All("ExternalIdentifier") {
			switch x.Get("identificationScheme") {
			case uuidDEUniqueID:
				e.UniqueID = x.Get("value")
			case uuidDEPatientID:
				e.PatientID = x.Get("value")
			}
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return SubmissionSet{}, nil, fmt.Errorf("%w: no document entry", ErrMetadata)
	}
	return ss, entries, nil
}
