package cda

// Code systems of XDS formatCode values in France (CI-SIS, JDV_J10
// XdsFormatCode-CISIS): ANS codes in TRE_A06-FormatCodeComplementaire, IHE
// codes in TRE_A11-IheFormatCode.
const (
	OIDFormatANS = "1.2.250.1.213.1.1.4.2.282" // TRE_A06-FormatCodeComplementaire
	OIDFormatIHE = "1.3.6.1.4.1.19376.1.2.3"   // TRE_A11-IheFormatCode
)

// formatByTemplate is the ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS
// association (NOS, OID 1.2.250.1.213.1.1.4.331): when the CDA body is
// structured, the XDS formatCode follows from the document model's
// templateId. Subset: the models Relais is likely to carry; extend as needed.
var formatByTemplate = map[string]Code{
	"1.2.250.1.213.1.1.1.5.1":  {"urn:asip:ci-sis:cse-cs8:2017", OIDFormatANS, "Certificat de santé de l'enfant (8e jour)"},
	"1.2.250.1.213.1.1.1.5.2":  {"urn:asip:ci-sis:cse-cs9:2017", OIDFormatANS, "Certificat de santé de l'enfant (9e mois)"},
	"1.2.250.1.213.1.1.1.5.3":  {"urn:asip:ci-sis:cse-cs24:2017", OIDFormatANS, "Certificat de santé de l'enfant (24e mois)"},
	"1.2.250.1.213.1.1.1.8":    {"urn:asip:ci-sis:frcp:2011", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.9":    {"urn:asip:ci-sis:idap:2011", OIDFormatANS, "Information et directives anticipées du patient"},
	"1.2.250.1.213.1.1.1.10":   {"urn:asip:ci-sis:cva:2017", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.13":   {"urn:asip:ci-sis:vsm:2012", OIDFormatANS, "Volet de synthèse médicale"},
	"1.2.250.1.213.1.1.1.18":   {"urn:asip:ci-sis:crrtn:2013", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.20":   {"urn:asip:ci-sis:pps-paerpa:2017", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.21":   {"urn:asip:ci-sis:ldl-ees:2017", OIDFormatANS, "Lettre de Liaison à l'entrée d'un établissement de santé"},
	"1.2.250.1.213.1.1.1.22":   {"urn:asip:ci-sis:dlu:2015", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.25":   {"urn:asip:ci-sis:pavc:2016", OIDFormatANS, "Compte-rendu de consultation d'évaluation pluri-professionnelle post AVC"},
	"1.2.250.1.213.1.1.1.26":   {"urn:asip:ci-sis:pps-cancer:2017", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.29":   {"urn:asip:ci-sis:ldl-ses:2017", OIDFormatANS, "Lettre de Liaison à la sortie de l'établissement de santé"},
	"1.2.250.1.213.1.1.1.30":   {"urn:asip:ci-sis:sdm-mr:2017", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.32":   {"urn:asip:ci-sis:crgm:2018", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.36":   {"urn:asip:ci-sis:hr:2019", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.37":   {"urn:asip:ci-sis:vac:2019", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.38":   {"urn:asip:ci-sis:tlm-da:2020", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.40":   {"urn:asip:ci-sis:cr-anest:2020", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.41":   {"urn:asip:ci-sis:cr-cpa:2020", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.46":   {"urn:asip:ci-sis:vac-note:2021", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.47":   {"urn:ans:ci-sis:img-da:2022", OIDFormatANS, "Demande d'actes d'imagerie"},
	"1.2.250.1.213.1.1.1.52":   {"urn:ans:ci-sis:bio-ep-bio:2022", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.39":   {"urn:ihe:pharm:pre:2010", OIDFormatIHE, ""},
	"1.2.250.1.213.1.1.1.54":   {"urn:ihe:pharm:dis:2010", OIDFormatIHE, ""},
	"1.2.250.1.213.1.1.1.45":   {"urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013", OIDFormatIHE, ""},
	"1.2.250.1.213.1.1.1.55":   {"urn:ihe:lab:xd-lab:2008", OIDFormatIHE, ""},
	"1.3.6.1.4.1.19376.1.3.3":  {"urn:ihe:lab:xd-lab:2008", OIDFormatIHE, ""},
	"1.2.250.1.213.1.1.1.51":   {"urn:ihe:pcc:ips:2020", OIDFormatIHE, ""},
	"1.2.250.1.213.1.1.1.57":   {"urn:ihe:palm:apsr:2016", OIDFormatIHE, ""},
	"1.2.250.1.213.1.1.1.56":   {"urn:asip:ci-sis:ppp:2023", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.58":   {"urn:asip:ci-sis:export-dui:2023", OIDFormatANS, ""},
	"1.2.250.1.213.1.1.1.12.1": {"urn:asip:ci-sis:obp-sap:2023", OIDFormatANS, ""},
}

// formatByMedia covers unstructured bodies (CDA level 1, IHE XDS-SD):
// ASS_A12-CorresMediaTypeCDANonStructure-XdsFormatCode-CISIS.
var formatByMedia = map[string]Code{
	"application/pdf": {"urn:ihe:iti:xds-sd:pdf:2008", OIDFormatIHE, "Document à corps non structuré en PDF/A-1"},
	"text/plain":      {"urn:ihe:iti:xds-sd:text:2008", OIDFormatIHE, "Document à corps non structuré en texte brut"},
}

// FormatForMedia returns the XDS formatCode of a document with an
// unstructured body of this media type (zero Code if unknown).
func FormatForMedia(mediaType string) Code { return formatByMedia[mediaType] }

func formatCode(templates []string, structured bool, media string) Code {
	if !structured && media != "" {
		return formatByMedia[media]
	}
	// The document model is the most specific templateId: try from the last.
	for i := len(templates) - 1; i >= 0; i-- {
		if c, ok := formatByTemplate[templates[i]]; ok {
			return c
		}
	}
	return Code{}
}
