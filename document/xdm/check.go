package xdm

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/relais-mssante/relais/document/cda"
)

// IsCDA reports whether an entry is a CDA document (CI-SIS: mimeType
// text/xml; application/xslt+xml for a self-presenting CDA).
func (e Entry) IsCDA() bool {
	return e.MimeType == "text/xml" || e.MimeType == "application/xml" || e.MimeType == "application/xslt+xml"
}

// CDAEntries returns the indexes in p.Entries of the CDA documents.
func (p *Package) CDAEntries() []int {
	var out []int
	for i, e := range p.Entries {
		if e.IsCDA() {
			out = append(out, i)
		}
	}
	return out
}

// Headers parses the CDA documents of the package (in CDAEntries order)
// with lim; a document that fails to parse yields a Problem and a zero
// header.
func (p *Package) Headers(lim cda.Limits) ([]cda.Header, []Problem) {
	var hs []cda.Header
	var probs []Problem
	for _, i := range p.CDAEntries() {
		e := p.Entries[i]
		h, err := cda.Parse(bytes.NewReader(p.Files[e.URI]), lim)
		if err != nil {
			probs = append(probs, Problem{e.URI, "document", err.Error()})
		}
		hs = append(hs, h)
	}
	return hs, probs
}

// Check compares the metadata with the CDA documents it describes and
// returns every contradiction (an empty result means they agree). headers
// are the parsed headers of the CDA entries in CDAEntries order; nil parses
// them from p.Files with default limits. The checks follow the CI-SIS
// mapping of CDA header to XDS metadata: uniqueId, patientId (INS), typeCode,
// creationTime, title, confidentialityCode, languageCode, formatCode,
// authors; plus hash and size against the bytes, and the submission set's
// patientId against each entry's. Details never quote patient data.
func (p *Package) Check(headers []cda.Header) []Problem {
	var probs []Problem
	if headers == nil {
		headers, probs = p.Headers(cda.Limits{})
	}
	idx := p.CDAEntries()
	if len(headers) != len(idx) {
		return append(probs, Problem{"", "documents", fmt.Sprintf("%d CDA entries, %d headers given", len(idx), len(headers))})
	}
	add := func(e Entry, field, detail string) { probs = append(probs, Problem{e.URI, field, detail}) }
	for _, e := range p.Entries {
		if data, ok := p.Files[e.URI]; ok {
			sum := sha1.Sum(data)
			if !strings.EqualFold(e.Hash, hex.EncodeToString(sum[:])) {
				add(e, "hash", "SHA-1 of the document differs")
			}
			if e.Size != int64(len(data)) {
				add(e, "size", fmt.Sprintf("metadata %d, document %d bytes", e.Size, len(data)))
			}
		} else {
			add(e, "URI", "document missing")
		}
		if p.SubmissionSet.PatientID != "" && e.PatientID != "" && ParseCX(e.PatientID) != ParseCX(p.SubmissionSet.PatientID) {
			add(e, "patientId", "differs from the submission set's patientId")
		}
	}
	for k, i := range idx {
		e, h := p.Entries[i], headers[k]
		if h.Type.Code == "" && h.ID.Root == "" {
			continue // unparsable, already reported
		}
		want := EntryFromCDA(h)
		if e.UniqueID != want.UniqueID {
			add(e, "uniqueId", "differs from ClinicalDocument/id")
		}
		if h.Patient.INS == nil {
			add(e, "patientId", "the CDA carries no INS (MSSanté code 903)")
		} else if ParseCX(e.PatientID) != (cda.ID{Root: h.Patient.INS.Root, Extension: h.Patient.INS.Extension}) {
			add(e, "patientId", "differs from the INS in recordTarget (MSSanté code 904)")
		}
		if e.TypeCode.Code != h.Type.Code || (e.TypeCode.System != "" && e.TypeCode.System != h.Type.System) {
			add(e, "typeCode", fmt.Sprintf("metadata %q, CDA %q", e.TypeCode.Code, h.Type.Code))
		}
		if !h.EffectiveTime.IsZero() && !e.CreationTime.Equal(h.EffectiveTime.Truncate(1e9)) {
			add(e, "creationTime", "differs from ClinicalDocument/effectiveTime")
		}
		if e.Title != h.Title {
			add(e, "title", "differs from ClinicalDocument/title")
		}
		if h.Confidentiality.Code != "" && (len(e.ConfidentialityCode) == 0 || e.ConfidentialityCode[0].Code != h.Confidentiality.Code) {
			add(e, "confidentialityCode", "first code differs from ClinicalDocument/confidentialityCode")
		}
		if h.Language != "" && !strings.EqualFold(e.LanguageCode, h.Language) {
			add(e, "languageCode", fmt.Sprintf("metadata %q, CDA %q", e.LanguageCode, h.Language))
		}
		if h.Format.Code != "" && e.FormatCode.Code != "" && e.FormatCode.Code != h.Format.Code {
			add(e, "formatCode", fmt.Sprintf("metadata %q, CDA model %q", e.FormatCode.Code, h.Format.Code))
		}
		for _, a := range h.Authors {
			if a.ID.Extension == "" {
				continue
			}
			found := false
			for _, x := range e.Authors {
				if strings.HasPrefix(x.Person, v2(a.ID.Extension)+"^") {
					found = true
				}
			}
			if !found {
				add(e, "author", "a CDA author ("+a.ID.Root+") is missing from the metadata")
			}
		}
	}
	return probs
}

// Validate reports the metadata the CI-SIS requires (volet Transmission de
// documents CDA, table "métadonnées XDS": R = requis) and that are missing.
// "Requis si connu" attributes (authorInstitution, authorRole, ...) are not
// reported.
func (p *Package) Validate() []Problem {
	var probs []Problem
	ss := p.SubmissionSet
	miss := func(uri, field string) { probs = append(probs, Problem{uri, field, "required, missing"}) }
	if len(ss.Authors) == 0 || ss.Authors[0].Person == "" && len(ss.Authors[0].Institution) == 0 {
		miss("", "submissionSet.author")
	}
	if ss.ContentTypeCode.Code == "" {
		miss("", "submissionSet.contentTypeCode")
	}
	if ss.PatientID == "" {
		miss("", "submissionSet.patientId")
	}
	if ss.SourceID == "" {
		miss("", "submissionSet.sourceId")
	}
	if ss.SubmissionTime.IsZero() {
		miss("", "submissionSet.submissionTime")
	}
	if ss.UniqueID == "" {
		miss("", "submissionSet.uniqueId")
	}
	for _, e := range p.Entries {
		checks := []struct {
			ok    bool
			field string
		}{
			{len(e.Authors) > 0 && e.Authors[0].Person != "", "authorPerson"},
			{e.ClassCode.Code != "", "classCode"},
			{len(e.ConfidentialityCode) > 0, "confidentialityCode"},
			{!e.CreationTime.IsZero(), "creationTime"},
			{e.EntryUUID != "", "entryUUID"},
			{e.FormatCode.Code != "", "formatCode"},
			{e.Hash != "", "hash"},
			{e.HealthcareFacilityTypeCode.Code != "", "healthcareFacilityTypeCode"},
			{e.LanguageCode != "", "languageCode"},
			{e.LegalAuthenticator != "", "legalAuthenticator"},
			{e.MimeType != "", "mimeType"},
			{e.PatientID != "", "patientId"},
			{e.PracticeSettingCode.Code != "", "practiceSettingCode"},
			{!e.ServiceStart.IsZero(), "serviceStartTime"},
			{e.Size >= 0, "size"},
			{e.SourcePatientID != "", "sourcePatientId"},
			{e.Title != "", "title"},
			{e.TypeCode.Code != "", "typeCode"},
			{e.UniqueID != "", "uniqueId"},
		}
		for _, c := range checks {
			if !c.ok {
				miss(e.URI, c.field)
			}
		}
	}
	return probs
}
