package cda

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRealLDLSES(t *testing.T) {
	p := filepath.Join("..", "..", "..", "shared", "samples", "LDL-SES_2022.01.xml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("real sample absent: %v", err)
	}
	h, err := Parse(bytes.NewReader(b), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Patient.INS == nil || h.Patient.INS.Root != OIDINSNIRTest || h.Patient.INS.Extension != "279035121518989" || h.Patient.INSKind != "NIR-test" {
		t.Errorf("INS = %+v kind %q", h.Patient.INS, h.Patient.INSKind)
	}
	if len(h.Patient.IDs) != 2 {
		t.Errorf("patient ids = %v", h.Patient.IDs)
	}
	if h.Type.Code != "11490-0" || h.Type.System != OIDLOINC {
		t.Errorf("type = %+v", h.Type)
	}
	if len(h.Authors) != 1 || h.Authors[0].ID != (ID{OIDRPPS, "801234567897"}) || h.Authors[0].Family != "DAVID" {
		t.Errorf("authors = %+v", h.Authors)
	}
	if h.Custodian.ID != (ID{OIDFINESS, "1750803447"}) || !strings.Contains(h.Custodian.Name, "Pompidou") {
		t.Errorf("custodian = %+v", h.Custodian)
	}
	paris := time.FixedZone("", 3600)
	if want := time.Date(2019, 12, 3, 13, 30, 0, 0, paris); !h.EffectiveTime.Equal(want) {
		t.Errorf("effectiveTime = %v", h.EffectiveTime)
	}
	if want := time.Date(2019, 10, 29, 11, 17, 0, 0, paris); !h.EncounterStart.Equal(want) {
		t.Errorf("encounter start = %v", h.EncounterStart)
	}
	if !h.EncounterEnd.Equal(h.EffectiveTime) {
		t.Errorf("encounter end = %v", h.EncounterEnd)
	}
	if h.Confidentiality.Code != "N" || h.Language != "fr-FR" || h.Patient.BirthDate != "19790328" || h.Patient.Gender != "F" {
		t.Errorf("header = %+v", h)
	}
	if h.Patient.BirthName != "PAT-TROIS" || h.Patient.Family != "PAT-TROIS" || h.Patient.FirstGiven != "DOMINIQUE" {
		t.Errorf("names = %+v", h.Patient)
	}
	if h.Format.Code != "urn:asip:ci-sis:ldl-ses:2017" || !h.StructuredBody {
		t.Errorf("format = %+v structured %v", h.Format, h.StructuredBody)
	}
	if h.FacilityType.Code != "SA01" || h.PracticeSetting.Code != "ETABLISSEMENT" {
		t.Errorf("facility %+v practice %+v", h.FacilityType, h.PracticeSetting)
	}
	if h.ID.Root != "1.2.250.1.213.1.1.1.29.2022.1.1" || h.LegalAuth == nil || h.LegalAuth.Family != "AUGUIN" {
		t.Errorf("id %+v legal %+v", h.ID, h.LegalAuth)
	}
}

func TestParseSynthetic(t *testing.T) {
	h, err := Parse(bytes.NewReader(mustRead(t, "testdata/synthetic.xml")), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Patient.INS == nil || *h.Patient.INS != (ID{OIDINSNIRTest, "180017512345678"}) {
		t.Errorf("INS = %+v", h.Patient.INS)
	}
	if h.Patient.Family != "TESTUSAGE" || h.Patient.BirthName != "TESTNAISSANCE" || h.Patient.UsedGiven != "ALICE" || len(h.Patient.Given) != 1 {
		t.Errorf("patient = %+v", h.Patient)
	}
	if h.Title != "Lettre de liaison de sortie (test)" || h.Version != "1" || h.SetID.Extension != "SET-0001" {
		t.Errorf("header = %+v", h)
	}
	if len(h.Events) != 1 || h.Events[0].Code != "IMP" || h.ServiceStart.IsZero() || h.ServiceStop.IsZero() {
		t.Errorf("events %+v service %v-%v", h.Events, h.ServiceStart, h.ServiceStop)
	}
	if h.Authors[0].Specialty.Code != "G15_10/SM26" || h.Authors[0].OrgID.Extension != "1999000001" {
		t.Errorf("author = %+v", h.Authors[0])
	}
}

func TestParseNonXMLBody(t *testing.T) {
	doc := strings.Replace(string(mustRead(t, "testdata/synthetic.xml")),
		"<structuredBody>", `<nonXMLBody><text mediaType="application/pdf" representation="B64">JVBERi0=</text></nonXMLBody><structuredBodyX>`, 1)
	doc = strings.Replace(doc, "</structuredBody>", "</structuredBodyX>", 1)
	// Keep it well-formed: component holds nonXMLBody then a junk sibling.
	h, err := Parse(strings.NewReader(doc), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if h.StructuredBody || h.BodyMediaType != "application/pdf" || h.Format.Code != "urn:ihe:iti:xds-sd:pdf:2008" {
		t.Errorf("structured %v media %q format %+v", h.StructuredBody, h.BodyMediaType, h.Format)
	}
}

func TestParseRejects(t *testing.T) {
	synth := string(mustRead(t, "testdata/synthetic.xml"))
	deep := `<ClinicalDocument xmlns="urn:hl7-org:v3">` + strings.Repeat("<a>", 300) + strings.Repeat("</a>", 300) + `</ClinicalDocument>`
	cases := []struct {
		name string
		doc  string
		lim  Limits
		want error
	}{
		{"doctype", `<?xml version="1.0"?><!DOCTYPE ClinicalDocument><ClinicalDocument xmlns="urn:hl7-org:v3"/>`, Limits{}, ErrDoctype},
		{"external entity", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>`, Limits{}, ErrDoctype},
		{"billion laughs", `<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><ClinicalDocument xmlns="urn:hl7-org:v3">&b;</ClinicalDocument>`, Limits{}, ErrDoctype},
		{"undeclared entity", `<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>`, Limits{}, ErrMalformed},
		{"deep", deep, Limits{}, ErrTooDeep},
		{"tokens", synth, Limits{MaxTokens: 50}, ErrTooMany},
		{"size", synth, Limits{MaxBytes: 1000}, ErrTooLarge},
		{"not cda namespace", `<ClinicalDocument><title/></ClinicalDocument>`, Limits{}, ErrNotCDA},
		{"not cda root", `<html xmlns="urn:hl7-org:v3"/>`, Limits{}, ErrNotCDA},
		{"empty", ``, Limits{}, ErrMalformed},
		{"truncated", synth[:len(synth)/2], Limits{}, ErrMalformed},
		{"two roots", `<ClinicalDocument xmlns="urn:hl7-org:v3"/><x/>`, Limits{}, ErrMalformed},
		{"bad encoding", `<?xml version="1.0" encoding="EBCDIC"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>`, Limits{}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.doc), c.lim)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// A 50 MB document is refused by size (default limit 20 MiB) without being
// held in memory: the generator streams it.
func TestParse50MB(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, `<ClinicalDocument xmlns="urn:hl7-org:v3"><component><structuredBody>`)
		chunk := strings.Repeat("<component><section><text>"+strings.Repeat("padding ", 128)+"</text></section></component>\n", 100)
		for n := 0; n < 50<<20; n += len(chunk) {
			if _, err := io.WriteString(pw, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(pw, `</structuredBody></component></ClinicalDocument>`)
		pw.Close()
	}()
	_, err := Parse(pr, Limits{})
	pr.Close()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestLatin1(t *testing.T) {
	doc := []byte("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><ClinicalDocument xmlns=\"urn:hl7-org:v3\"><title>H\xf4pital</title></ClinicalDocument>")
	h, err := Parse(bytes.NewReader(doc), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Title != "Hôpital" {
		t.Errorf("title = %q", h.Title)
	}
}

func TestParseTS(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"20191203133000+0100", time.Date(2019, 12, 3, 12, 30, 0, 0, time.UTC), true},
		{"20191203", time.Date(2019, 12, 3, 0, 0, 0, 0, time.UTC), true},
		{"2019", time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"20191203133000.5-0500", time.Date(2019, 12, 3, 18, 30, 0, 5e8, time.UTC), true},
		{"2019120", time.Time{}, false},
		{"20191203133000+01", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, err := ParseTS(c.in)
		if (err == nil) != c.ok || (c.ok && !got.Equal(c.want)) {
			t.Errorf("ParseTS(%q) = %v, %v", c.in, got, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(mustRead(f, "testdata/synthetic.xml"))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><ClinicalDocument xmlns="urn:hl7-org:v3"/>`))
	f.Add([]byte(`<ClinicalDocument xmlns="urn:hl7-org:v3"><recordTarget><patientRole><id root="1.2.250.1.213.1.4.10" extension="1"/></patientRole></recordTarget></ClinicalDocument>`))
	f.Add([]byte(`<?xml version="1.0" encoding="latin1"?><a>` + "\xe9" + `</a>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(bytes.NewReader(b), Limits{MaxBytes: 1 << 20, MaxDepth: 64, MaxTokens: 100000})
		if err == nil && h.Patient.INS != nil && INSKind(h.Patient.INS.Root) == "" {
			t.Fatalf("INS with non-INS root %q", h.Patient.INS.Root)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	doc := mustRead(b, "testdata/synthetic.xml")
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(doc), Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTreeNodeLimit(t *testing.T) {
	doc := `<ClinicalDocument xmlns="urn:hl7-org:v3">` + strings.Repeat("<a/>", MaxTreeNodes) + `</ClinicalDocument>`
	_, err := Parse(strings.NewReader(doc), Limits{})
	if !errors.Is(err, ErrTooMany) {
		t.Fatalf("err = %v, want ErrTooMany", err)
	}
	// The same elements inside the body are checked, not kept: accepted.
	doc = `<ClinicalDocument xmlns="urn:hl7-org:v3"><component>` + strings.Repeat("<a/>", MaxTreeNodes) + `</component></ClinicalDocument>`
	if _, err := Parse(strings.NewReader(doc), Limits{}); err != nil {
		t.Fatal(err)
	}
}
