package fhir

import (
	"net/http"
	"sort"
)

// CapabilityStatement (FHIR R4 capabilitystatement.html), with only the
// elements this server fills.
type CapabilityStatement struct {
	ResourceType   string             `json:"resourceType"`
	Status         string             `json:"status"`
	Date           string             `json:"date"`
	Publisher      string             `json:"publisher,omitempty"`
	Kind           string             `json:"kind"`
	Software       *CapSoftware       `json:"software,omitempty"`
	Implementation *CapImplementation `json:"implementation,omitempty"`
	FHIRVersion    string             `json:"fhirVersion"`
	Format         []string           `json:"format"`
	Rest           []CapRest          `json:"rest"`
}

type CapSoftware struct {
	Name string `json:"name"`
}

type CapImplementation struct {
	Description string `json:"description"`
	URL         string `json:"url,omitempty"`
}

type CapRest struct {
	Mode     string        `json:"mode"`
	Resource []CapResource `json:"resource"`
}

type CapResource struct {
	Type        string           `json:"type"`
	Profile     string           `json:"profile,omitempty"`
	Interaction []CapInteraction `json:"interaction"`
	SearchParam []CapSearchParam `json:"searchParam,omitempty"`
}

type CapInteraction struct {
	Code string `json:"code"`
}

type CapSearchParam struct {
	Name          string `json:"name"`
	Definition    string `json:"definition,omitempty"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

// capabilityDate is the date of this statement (its content changes with
// the code, not at run time).
const capabilityDate = "2026-11-23"

// spDefinition: the definitions of the search parameters, the base FHIR
// ones and the IG's mailbox-mss (as-sp-mailbox-mss).
func spDefinition(typ, name string) string {
	if name == "mailbox-mss" {
		return "https://interop.esante.gouv.fr/ig/fhir/annuaire/SearchParameter/as-sp-mailbox-mss"
	}
	switch name {
	case "address-postalcode", "address-city":
		if typ == "Organization" {
			return "http://hl7.org/fhir/SearchParameter/Organization-" + name
		}
		return "" // applied to the activity's place: Relais-specific
	case "name", "family", "given", "identifier", "practitioner", "organization", "role", "specialty":
		return "http://hl7.org/fhir/SearchParameter/" + typ + "-" + name
	}
	return ""
}

func capResource(typ, profile string, specs map[string]paramSpec, docs map[string]string) CapResource {
	res := CapResource{Type: typ, Profile: profile,
		Interaction: []CapInteraction{{Code: "read"}, {Code: "search-type"}}}
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := map[paramKind]string{pString: "string", pToken: "token", pReference: "reference"}[specs[n].kind]
		res.SearchParam = append(res.SearchParam, CapSearchParam{Name: n, Definition: spDefinition(typ, n), Type: t, Documentation: docs[n]})
	}
	res.SearchParam = append(res.SearchParam, CapSearchParam{Name: "_count", Type: "number",
		Documentation: "page size, default 20, at most 100"})
	if typ != "PractitionerRole" {
		res.SearchParam = append(res.SearchParam, CapSearchParam{Name: "_offset", Type: "number",
			Documentation: "index of the first result"})
	}
	return res
}

func (s *server) metadata(w http.ResponseWriter, r *http.Request) {
	cs := CapabilityStatement{
		ResourceType: "CapabilityStatement",
		Status:       "active",
		Date:         capabilityDate,
		Publisher:    "Relais",
		Kind:         "instance",
		Software:     &CapSoftware{Name: "Relais"},
		Implementation: &CapImplementation{
			Description: "Relais directory: health professionals, their activities and organisations, in the shape of the Annuaire Santé FHIR API",
			URL:         baseURL(r),
		},
		FHIRVersion: "4.0.1",
		Format:      []string{"application/fhir+json", "json"},
		Rest: []CapRest{{Mode: "server", Resource: []CapResource{
			capResource("Practitioner", profilePractitioner, practitionerParams, map[string]string{
				"identifier":  "idNatPs (urn:oid:1.2.250.1.71.4.2.1), RPPS or ADELI; system|value or value",
				"mailbox-mss": "start of an MSSanté address; :exact for the whole address",
			}),
			capResource("PractitionerRole", profilePractitionerRole, roleParams, map[string]string{
				"role":               "profession (TRE_G15) or mode d'exercice (TRE_R23)",
				"specialty":          "savoir-faire (TRE_R38)",
				"address-postalcode": "start of the postal code of the place of activity",
				"address-city":       "start of the city of the place of activity",
			}),
			capResource("Organization", profileOrganization, organizationParams, map[string]string{
				"identifier": "idNatSt (urn:oid:1.2.250.1.71.4.2.2), FINESS, SIRET, SIREN or technical id",
			}),
		}}},
	}
	writeResource(w, cs)
}
