package cda

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Parse reads a CDA R2 document from r and returns its header. It validates
// that the whole document is well-formed XML within lim (see Walk: no
// DOCTYPE, bounded size, depth and token count), and fails with ErrNotCDA
// when the root is not {urn:hl7-org:v3}ClinicalDocument. Only the header
// (everything but ClinicalDocument/component) is kept in memory.
func Parse(r io.Reader, lim Limits) (Header, error) {
	var h Header
	keep := func(stack []string, el xml.StartElement) bool {
		switch len(stack) {
		case 0:
			return true
		case 1:
			// CDA R2 4.3: the body is ClinicalDocument/component; not
			// needed for the header.
			return el.Name.Local != "component"
		case 2:
			if stack[1] == "component" {
				h.StructuredBody = el.Name.Local == "structuredBody"
			}
		case 3:
			// CDA R2 4.3.2: nonXMLBody/text carries the media type of an
			// unstructured body (PDF...), from which the XDS formatCode
			// follows.
			if stack[1] == "component" && stack[2] == "nonXMLBody" && el.Name.Local == "text" {
				for _, a := range el.Attr {
					if a.Name.Local == "mediaType" {
						h.BodyMediaType = a.Value
					}
				}
			}
		}
		return true
	}
	root, err := Tree(r, lim, keep)
	if err != nil {
		return Header{}, fmt.Errorf("cda: parse: %w", err)
	}
	if root.Name.Space != NamespaceHL7 || root.Name.Local != "ClinicalDocument" {
		return Header{}, fmt.Errorf("cda: parse: root {%s}%s: %w", root.Name.Space, root.Name.Local, ErrNotCDA)
	}
	structured, media := h.StructuredBody, h.BodyMediaType
	h = headerFrom(root)
	h.StructuredBody, h.BodyMediaType = structured, media
	h.Format = formatCode(h.TemplateIDs, h.StructuredBody, h.BodyMediaType)
	return h, nil
}

// child returns the first child in the HL7 namespace with that local name.
func child(n *Node, local string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name.Local == local && c.Name.Space == NamespaceHL7 {
			return c
		}
	}
	return nil
}

func children(n *Node, local string) []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.Children {
		if c.Name.Local == local && c.Name.Space == NamespaceHL7 {
			out = append(out, c)
		}
	}
	return out
}

func path(n *Node, locals ...string) *Node {
	for _, l := range locals {
		n = child(n, l)
	}
	return n
}

func idOf(n *Node) ID {
	if n == nil {
		return ID{}
	}
	return ID{Root: strings.TrimSpace(n.Get("root")), Extension: strings.TrimSpace(n.Get("extension"))}
}

func codeOf(n *Node) Code {
	if n == nil {
		return Code{}
	}
	return Code{Code: n.Get("code"), System: n.Get("codeSystem"), Display: n.Get("displayName")}
}

func text(n *Node) string {
	if n == nil {
		return ""
	}
	return strings.Join(strings.Fields(n.Text), " ")
}

func tsOf(n *Node) time.Time {
	if n == nil {
		return time.Time{}
	}
	t, _ := ParseTS(n.Get("value"))
	return t
}

func headerFrom(root *Node) Header {
	var h Header
	// CDA R2 4.2.1: header attributes of ClinicalDocument.
	for _, t := range children(root, "templateId") {
		if r := t.Get("root"); r != "" {
			h.TemplateIDs = append(h.TemplateIDs, r)
		}
	}
	h.ID = idOf(child(root, "id"))
	h.Type = codeOf(child(root, "code"))
	h.Title = text(child(root, "title"))
	h.EffectiveTime = tsOf(child(root, "effectiveTime"))
	h.Confidentiality = codeOf(child(root, "confidentialityCode"))
	h.Language = child(root, "languageCode").Get("code")
	h.SetID = idOf(child(root, "setId"))
	h.Version = child(root, "versionNumber").Get("value")

	// CDA R2 4.2.2.1 recordTarget; CI-SIS Structuration minimale: the INS
	// is a patientRole/id whose root is one of the INS OIDs.
	pr := path(root, "recordTarget", "patientRole")
	for _, id := range children(pr, "id") {
		h.Patient.IDs = append(h.Patient.IDs, idOf(id))
	}
	h.Patient.INS, h.Patient.INSKind = findINS(h.Patient.IDs)
	pat := child(pr, "patient")
	if name := child(pat, "name"); name != nil {
		for _, f := range children(name, "family") {
			switch f.Get("qualifier") {
			case "BR":
				h.Patient.BirthName = text(f)
			case "CL", "SP":
				h.Patient.Family = text(f)
			default:
				if h.Patient.Family == "" {
					h.Patient.Family = text(f)
				}
			}
		}
		for _, g := range children(name, "given") {
			switch g.Get("qualifier") {
			case "BR":
				h.Patient.FirstGiven = text(g)
			case "CL":
				h.Patient.UsedGiven = text(g)
			default:
				h.Patient.Given = append(h.Patient.Given, text(g))
			}
		}
		if h.Patient.Family == "" {
			h.Patient.Family = h.Patient.BirthName
		}
		if len(h.Patient.Given) == 0 && h.Patient.FirstGiven != "" {
			h.Patient.Given = []string{h.Patient.FirstGiven}
		}
	}
	h.Patient.BirthDate = child(pat, "birthTime").Get("value")
	h.Patient.Gender = child(pat, "administrativeGenderCode").Get("code")

	// CDA R2 4.2.2.2 author.
	for _, a := range children(root, "author") {
		aa := child(a, "assignedAuthor")
		au := Author{Time: tsOf(child(a, "time")), Specialty: codeOf(child(aa, "code")), Role: codeOf(child(a, "functionCode"))}
		au.ID = preferID(children(aa, "id"), OIDRPPS)
		if p := child(aa, "assignedPerson"); p != nil {
			n := child(p, "name")
			au.Given = text(child(n, "given"))
			au.Family = text(child(n, "family"))
			au.Prefix = text(child(n, "prefix"))
		} else if d := child(aa, "assignedAuthoringDevice"); d != nil {
			au.Device = true
			au.Family = text(child(d, "softwareName"))
			au.Given = text(child(d, "manufacturerModelName"))
		}
		org := child(aa, "representedOrganization")
		au.Organisation = text(child(org, "name"))
		au.OrgID = idOf(child(org, "id"))
		h.Authors = append(h.Authors, au)
	}

	// CDA R2 4.2.2.3 custodian.
	co := path(root, "custodian", "assignedCustodian", "representedCustodianOrganization")
	h.Custodian = Custodian{ID: idOf(child(co, "id")), Name: text(child(co, "name"))}

	// CDA R2 4.2.2.6 legalAuthenticator.
	if la := child(root, "legalAuthenticator"); la != nil {
		ae := child(la, "assignedEntity")
		n := path(ae, "assignedPerson", "name")
		h.LegalAuth = &LegalAuthenticator{
			ID:     preferID(children(ae, "id"), OIDRPPS),
			Given:  text(child(n, "given")),
			Family: text(child(n, "family")),
			Prefix: text(child(n, "prefix")),
			Time:   tsOf(child(la, "time")),
		}
		if h.PracticeSetting.Code == "" {
			h.PracticeSetting = codeOf(path(ae, "representedOrganization", "standardIndustryClassCode"))
		}
	}

	// CDA R2 4.2.3.1 documentationOf/serviceEvent. The CI-SIS takes XDS
	// serviceStartTime/StopTime and eventCodeList from here, and
	// practiceSettingCode from the performer's organisation.
	for i, d := range children(root, "documentationOf") {
		se := child(d, "serviceEvent")
		if c := codeOf(child(se, "code")); c.Code != "" {
			h.Events = append(h.Events, c)
		}
		if i == 0 {
			et := child(se, "effectiveTime")
			h.ServiceStart = tsOf(child(et, "low"))
			h.ServiceStop = tsOf(child(et, "high"))
			ps := codeOf(path(se, "performer", "assignedEntity", "representedOrganization", "standardIndustryClassCode"))
			if ps.Code != "" {
				h.PracticeSetting = ps
			}
		}
	}

	// CDA R2 4.2.3.3 componentOf/encompassingEncounter.
	ee := path(root, "componentOf", "encompassingEncounter")
	et := child(ee, "effectiveTime")
	h.EncounterStart = tsOf(child(et, "low"))
	h.EncounterEnd = tsOf(child(et, "high"))
	if h.EncounterStart.IsZero() {
		h.EncounterStart = tsOf(et)
	}
	h.FacilityType = codeOf(path(ee, "location", "healthCareFacility", "code"))
	return h
}

// preferID returns the first id with the preferred root, else the first id.
func preferID(ids []*Node, root string) ID {
	for _, n := range ids {
		if n.Get("root") == root {
			return idOf(n)
		}
	}
	if len(ids) > 0 {
		return idOf(ids[0])
	}
	return ID{}
}

// insOIDs in order of preference (a NIR before a provisional NIA).
var insOIDs = []struct{ oid, kind string }{
	{OIDINSNIR, "NIR"},
	{OIDINSNIRTest, "NIR-test"},
	{OIDINSNIRDemo, "NIR-demo"},
	{OIDINSNIA, "NIA"},
}

// INSKind returns "NIR", "NIA", "NIR-test" or "NIR-demo" for an INS OID,
// "" for any other root.
func INSKind(root string) string {
	for _, o := range insOIDs {
		if o.oid == root {
			return o.kind
		}
	}
	return ""
}

func findINS(ids []ID) (*ID, string) {
	for _, o := range insOIDs {
		for _, id := range ids {
			if id.Root == o.oid && id.Extension != "" {
				id := id
				return &id, o.kind
			}
		}
	}
	return nil, ""
}

// ParseTS parses an HL7 v3 TS value (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]).
// A value without a zone offset is taken as UTC.
func ParseTS(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, fmt.Errorf("cda: empty timestamp")
	}
	loc := time.UTC
	if i := strings.IndexAny(v, "+-"); i >= 0 {
		z := v[i:]
		v = v[:i]
		if len(z) != 5 {
			return time.Time{}, fmt.Errorf("cda: timestamp zone %q", z)
		}
		hh, err1 := strconv.Atoi(z[1:3])
		mm, err2 := strconv.Atoi(z[3:5])
		if err1 != nil || err2 != nil || hh > 14 || mm > 59 {
			return time.Time{}, fmt.Errorf("cda: timestamp zone %q", z)
		}
		off := hh*3600 + mm*60
		if z[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	}
	frac := ""
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v, frac = v[:i], v[i+1:]
	}
	layouts := map[int]string{4: "2006", 6: "200601", 8: "20060102", 10: "2006010215", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(v)]
	if !ok {
		return time.Time{}, fmt.Errorf("cda: timestamp %q", v)
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("cda: timestamp %q: %w", v, err)
	}
	if frac != "" && len(v) == 14 && len(frac) <= 9 {
		if n, err := strconv.Atoi(frac); err == nil {
			for i := len(frac); i < 9; i++ {
				n *= 10
			}
			t = t.Add(time.Duration(n))
		}
	}
	return t, nil
}
