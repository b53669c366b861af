package xdm

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-mssante/relais/document/cda"
)

func seqUUID() func() string {
	n := 0
	return func() string {
		n++
		return fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012d", n)
	}
}

func fixture(t testing.TB) ([]byte, cda.Header) {
	t.Helper()
	b, err := os.ReadFile("testdata/cda-synthetic.xml")
	if err != nil {
		t.Fatal(err)
	}
	h, err := cda.Parse(bytes.NewReader(b), cda.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

var testClass = cda.Code{Code: "XX", System: "1.2.250.1.999.99", Display: "Classe de test"}

func buildInput(t testing.TB) BuildInput {
	data, h := fixture(t)
	return BuildInput{
		Documents: []Document{{Data: data, Header: h, ClassCode: testClass}},
		Sender: XDSAuthor{
			Person:      XCN(cda.ID{Root: cda.OIDRPPS, Extension: "899900000011"}, "EXEMPLE", "Jean", "DR"),
			Institution: []string{XON(cda.ID{Root: cda.OIDFINESS, Extension: "1999000001"}, "Hôpital de Test")},
		},
		Recipients: []string{"medecin.test@test.mssante.fr"},
		SourceID:   "1.2.250.1.999.42",
		Now:        time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC),
		UUID:       seqUUID(),
	}
}

func build(t testing.TB) ([]byte, *Package) {
	t.Helper()
	z, p, err := Build(buildInput(t))
	if err != nil {
		t.Fatal(err)
	}
	return z, p
}

func TestBuildReadRoundTrip(t *testing.T) {
	z, built := build(t)
	p, err := Read(z, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Subset != "IHE_XDM/SUBSET01" || len(p.Entries) != 1 || len(p.Files) != 1 {
		t.Fatalf("package = %+v", p)
	}
	e, b := p.Entries[0], built.Entries[0]
	if e.UniqueID != "1.2.250.1.999.1.2.3^DOC-0001" || e.PatientID != "180017512345678^^^&1.2.250.1.213.1.4.10&ISO^NH" {
		t.Errorf("ids: %q %q", e.UniqueID, e.PatientID)
	}
	if e.SourcePatientID != "IPP42^^^&1.2.250.1.999.7&ISO^PI" {
		t.Errorf("sourcePatientId %q", e.SourcePatientID)
	}
	if e.TypeCode.Code != "11490-0" || e.FormatCode.Code != "urn:asip:ci-sis:ldl-ses:2017" || e.ClassCode != testClass {
		t.Errorf("codes: %+v %+v %+v", e.TypeCode, e.FormatCode, e.ClassCode)
	}
	if !e.CreationTime.Equal(time.Date(2026, 1, 15, 8, 30, 0, 0, time.UTC)) || !e.ServiceStart.Equal(time.Date(2026, 1, 10, 7, 0, 0, 0, time.UTC)) {
		t.Errorf("times: %v %v", e.CreationTime, e.ServiceStart)
	}
	if e.Hash != b.Hash || e.Size != b.Size || e.URI != "DOC0001.XML" || e.MimeType != "text/xml" {
		t.Errorf("entry %+v", e)
	}
	if len(e.Authors) != 1 || !strings.HasPrefix(e.Authors[0].Person, "899900000011^EXEMPLE^Jean^") || len(e.Authors[0].Specialty) != 1 {
		t.Errorf("authors %+v", e.Authors)
	}
	if len(e.SourcePatientInfo) != 4 || e.SourcePatientInfo[2] != "PID-7|19800101" {
		t.Errorf("sourcePatientInfo %q", e.SourcePatientInfo)
	}
	ss := p.SubmissionSet
	if ss.PatientID != e.PatientID || ss.SourceID != "1.2.250.1.999.42" || !strings.HasPrefix(ss.UniqueID, "2.25.") ||
		ss.IntendedRecipients[0] != "|^^Internet^medecin.test@test.mssante.fr" || ss.ContentTypeCode.Code != "SA01" ||
		!ss.SubmissionTime.Equal(time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("submission set %+v", ss)
	}
	if !bytes.Equal(p.Metadata, built.Metadata) || !bytes.Equal(p.Readme, built.Readme) || !bytes.Equal(p.Index, built.Index) {
		t.Error("package files differ after re-reading")
	}
	if probs := p.Check(nil); len(probs) != 0 {
		t.Errorf("Check: %v", probs)
	}
	if probs := p.Validate(); len(probs) != 0 {
		t.Errorf("Validate: %v", probs)
	}
	// Build is deterministic given the clock and the UUID source.
	z2, _ := build(t)
	if !bytes.Equal(z, z2) {
		t.Error("Build not deterministic")
	}
}

func TestBuildWithPDF(t *testing.T) {
	in := buildInput(t)
	pdf := []byte("%PDF-1.4\n% synthetic\n%%EOF\n")
	in.Documents = append(in.Documents, Document{Data: pdf, MimeType: "application/pdf", ClassCode: testClass})
	z, _, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Read(z, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 2 || p.Entries[1].URI != "DOC0002.PDF" || p.Entries[1].FormatCode.Code != "urn:ihe:iti:xds-sd:pdf:2008" {
		t.Fatalf("entries %+v", p.Entries)
	}
	if !bytes.Equal(p.Files["DOC0002.PDF"], pdf) || p.Entries[1].PatientID != p.Entries[0].PatientID {
		t.Error("pdf entry")
	}
	if probs := p.Check(nil); len(probs) != 0 {
		t.Errorf("Check: %v", probs)
	}
}

func TestBuildErrors(t *testing.T) {
	in := buildInput(t)
	in.Documents = nil
	if _, _, err := Build(in); err == nil {
		t.Error("no documents accepted")
	}
	in = buildInput(t)
	in.Documents[0].Name = "../x.xml"
	if _, _, err := Build(in); err == nil {
		t.Error("bad name accepted")
	}
	in = buildInput(t)
	other := in.Documents[0]
	ins := cda.ID{Root: cda.OIDINSNIRTest, Extension: "299999999999999"}
	other.Header.Patient.INS = &ins
	other.Name = "DOC0002.XML"
	in.Documents = append(in.Documents, other)
	if _, _, err := Build(in); err == nil {
		t.Error("two patients accepted")
	}
}

// unzip (Info-ZIP) must accept what Build writes.
func TestUnzipAcceptsBuild(t *testing.T) {
	unzip, err := exec.LookPath("unzip")
	if err != nil {
		t.Skip("unzip not installed")
	}
	z, p := build(t)
	f := filepath.Join(t.TempDir(), "IHE_XDM.ZIP")
	if err := os.WriteFile(f, z, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(unzip, "-t", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Fatalf("unzip -t: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if out, err := exec.Command(unzip, "-q", f, "-d", dir).CombinedOutput(); err != nil {
		t.Fatalf("unzip: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "IHE_XDM", "SUBSET01", "DOC0001.XML"))
	if err != nil || !bytes.Equal(got, p.Files["DOC0001.XML"]) {
		t.Fatalf("extracted document differs: %v", err)
	}
}

type zentry struct {
	name string
	data []byte
	hdr  *zip.FileHeader
	raw  bool // data written as is (already compressed) with hdr's sizes
}

func mkzip(t testing.TB, entries ...zentry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h == nil {
			h = &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		}
		var w interface{ Write([]byte) (int, error) }
		var err error
		if e.raw {
			w, err = zw.CreateRaw(h)
		} else {
			w, err = zw.CreateHeader(h)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rezip re-packs a built package under another layout, replacing entries.
func rezip(t testing.TB, p *Package, subset string, override map[string][]byte) []byte {
	files := map[string][]byte{"README.TXT": p.Readme, "INDEX.HTM": p.Index, subset + "/METADATA.XML": p.Metadata}
	for uri, b := range p.Files {
		files[subset+"/"+uri] = b
	}
	for k, v := range override {
		if v == nil {
			delete(files, k)
		} else {
			files[k] = v
		}
	}
	var es []zentry
	for _, n := range []string{"README.TXT", "INDEX.HTM", subset + "/METADATA.XML", subset + "/DOC0001.XML"} {
		if b, ok := files[n]; ok {
			es = append(es, zentry{name: n, data: b})
		}
	}
	return mkzip(t, es...)
}

func TestReadOtherSubset(t *testing.T) {
	_, p := build(t)
	z := rezip(t, p, "IHE_XDM/SS000001", nil)
	got, err := Read(z, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Subset != "IHE_XDM/SS000001" || !bytes.Equal(got.Files["DOC0001.XML"], p.Files["DOC0001.XML"]) {
		t.Fatalf("subset %q", got.Subset)
	}
}

func TestReadRejects(t *testing.T) {
	_, p := build(t)
	zeros := make([]byte, 5<<20)
	symlink := &zip.FileHeader{Name: "IHE_XDM/SUBSET01/DOC0001.XML"}
	symlink.SetMode(fs.ModeSymlink | 0o777)
	tampered := bytes.Repeat([]byte("x"), len(p.Files["DOC0001.XML"]))

	// A header that lies: declares 10 bytes, inflates to 5 MiB.
	var comp bytes.Buffer
	{
		zw := zip.NewWriter(&comp)
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "x", Method: zip.Deflate})
		_, _ = w.Write(zeros)
		_ = zw.Close()
	}
	zr, err := zip.NewReader(bytes.NewReader(comp.Bytes()), int64(comp.Len()))
	if err != nil {
		t.Fatal(err)
	}
	rawComp, err := zr.File[0].OpenRaw()
	if err != nil {
		t.Fatal(err)
	}
	var rawData bytes.Buffer
	_, _ = rawData.ReadFrom(rawComp)
	lying := &zip.FileHeader{Name: "IHE_XDM/SUBSET01/METADATA.XML", Method: zip.Deflate,
		CRC32: zr.File[0].CRC32, CompressedSize64: uint64(rawData.Len()), UncompressedSize64: 10}

	many := []zentry{}
	for i := 0; i < 1001; i++ {
		many = append(many, zentry{name: fmt.Sprintf("F%04d.TXT", i), data: []byte("x")})
	}

	cases := []struct {
		name string
		zip  []byte
		lim  Limits
		want error
	}{
		{"not a zip", []byte("PK\x03\x04 not really"), Limits{}, ErrNotZip},
		{"empty", nil, Limits{}, ErrNotZip},
		{"ratio bomb", mkzip(t, zentry{name: "IHE_XDM/SUBSET01/BOMB.BIN", data: zeros}), Limits{}, ErrZipBomb},
		{"declared too large", mkzip(t, zentry{name: "A.BIN", data: zeros}), Limits{MaxFile: 1 << 20, MaxRatio: 1 << 20}, ErrZipBomb},
		{"total too large", mkzip(t, zentry{name: "A", data: zeros[:3<<20]}, zentry{name: "B", data: zeros[:3<<20]}), Limits{MaxTotal: 5 << 20, MaxRatio: 1 << 20}, ErrZipBomb},
		{"lying header", mkzip(t, zentry{hdr: lying, data: rawData.Bytes(), raw: true}), Limits{}, ErrZipBomb},
		{"dot dot", mkzip(t, zentry{name: "../../etc/cron.d/x", data: []byte("x")}), Limits{}, ErrPathEscape},
		{"inner dot dot", mkzip(t, zentry{name: "IHE_XDM/../../x", data: []byte("x")}), Limits{}, ErrPathEscape},
		{"absolute", mkzip(t, zentry{name: "/etc/passwd", data: []byte("x")}), Limits{}, ErrPathEscape},
		{"drive", mkzip(t, zentry{name: "C:/x", data: []byte("x")}), Limits{}, ErrPathEscape},
		{"backslash", mkzip(t, zentry{name: `..\..\x`, data: []byte("x")}), Limits{}, ErrPathEscape},
		{"symlink", mkzip(t, zentry{hdr: symlink, data: []byte("/etc/passwd")}), Limits{}, ErrSymlink},
		{"too many", mkzip(t, many...), Limits{}, ErrTooMany},
		{"too many (limit)", mkzip(t, many[:6]...), Limits{MaxEntries: 5}, ErrTooMany},
		{"no metadata", rezip(t, p, "IHE_XDM/SUBSET01", map[string][]byte{"IHE_XDM/SUBSET01/METADATA.XML": nil}), Limits{}, ErrNoMetadata},
		{"metadata at wrong depth", mkzip(t, zentry{name: "METADATA.XML", data: p.Metadata}), Limits{}, ErrNoMetadata},
		{"missing document", rezip(t, p, "IHE_XDM/SUBSET01", map[string][]byte{"IHE_XDM/SUBSET01/DOC0001.XML": nil}), Limits{}, ErrMissingFile},
		{"hash mismatch", rezip(t, p, "IHE_XDM/SUBSET01", map[string][]byte{"IHE_XDM/SUBSET01/DOC0001.XML": tampered}), Limits{}, ErrHash},
		{"size mismatch", rezip(t, p, "IHE_XDM/SUBSET01", map[string][]byte{"IHE_XDM/SUBSET01/DOC0001.XML": append(tampered, 'y')}), Limits{}, ErrHash},
		{"metadata doctype", rezip(t, p, "IHE_XDM/SUBSET01", map[string][]byte{"IHE_XDM/SUBSET01/METADATA.XML": []byte(`<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>`)}), Limits{}, cda.ErrDoctype},
		{"metadata not ebRIM", rezip(t, p, "IHE_XDM/SUBSET01", map[string][]byte{"IHE_XDM/SUBSET01/METADATA.XML": []byte(`<x/>`)}), Limits{}, ErrMetadata},
		{"metadata URI escape", rezip(t, p, "IHE_XDM/SUBSET01", map[string][]byte{"IHE_XDM/SUBSET01/METADATA.XML": bytes.Replace(p.Metadata, []byte(">DOC0001.XML<"), []byte(">../../README.TXT<"), 1)}), Limits{}, ErrPathEscape},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(c.zip, c.lim)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// Metadata built from one header but carrying another CDA: Read accepts it
// (hashes match), Check names every contradiction.
func TestCheckContradiction(t *testing.T) {
	in := buildInput(t)
	h := in.Documents[0].Header
	ins := cda.ID{Root: cda.OIDINSNIRTest, Extension: "299999999999999"}
	h.Patient.INS = &ins
	h.Type = cda.Code{Code: "34133-9", System: cda.OIDLOINC}
	h.ID.Extension = "OTHER"
	h.Title = "Autre titre"
	in.Documents[0].Header = h
	z, _, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Read(z, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, pr := range p.Check(nil) {
		got[pr.Field] = true
		if strings.Contains(pr.Detail, "299999999999999") || strings.Contains(pr.Detail, "180017512345678") {
			t.Errorf("problem leaks an INS: %v", pr)
		}
	}
	for _, f := range []string{"patientId", "typeCode", "uniqueId", "title"} {
		if !got[f] {
			t.Errorf("Check did not report %s (got %v)", f, got)
		}
	}
}

func TestValidateReportsMissing(t *testing.T) {
	in := buildInput(t)
	in.Documents[0].ClassCode = cda.Code{}
	_, p, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	probs := p.Validate()
	if len(probs) != 1 || probs[0].Field != "classCode" {
		t.Errorf("Validate = %v", probs)
	}
}

func TestCX(t *testing.T) {
	id := cda.ID{Root: cda.OIDINSNIR, Extension: "123"}
	if s := CX(id, "NH"); s != "123^^^&1.2.250.1.213.1.4.8&ISO^NH" || ParseCX(s) != id {
		t.Errorf("CX %q", s)
	}
	if o := UUIDToOID("urn:uuid:00000000-0000-4000-8000-000000000001"); o != "2.25.302240678275694148452353" {
		t.Errorf("oid %q", o)
	}
}

func FuzzRead(f *testing.F) {
	z, p := build(f)
	f.Add(z)
	f.Add(rezip(f, p, "IHE_XDM/SS000001", nil))
	f.Add(mkzip(f, zentry{name: "../x", data: []byte("x")}))
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Read(b, Limits{MaxEntries: 50, MaxTotal: 4 << 20, MaxFile: 1 << 20})
		if err != nil {
			return
		}
		if len(p.Entries) == 0 {
			t.Fatal("package without entries accepted")
		}
		for _, e := range p.Entries {
			if _, ok := p.Files[e.URI]; !ok {
				t.Fatalf("entry %q without file", e.URI)
			}
		}
		_ = p.Check(nil)
		_ = p.Validate()
	})
}
