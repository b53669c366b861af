package xdm

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-mssante/relais/document/cda"
)

var update = flag.Bool("update", false, "rewrite golden files")

// METADATA.XML as Build writes it for the synthetic CDA, kept as a golden
// file so that any change to the ebRIM output is reviewed.
func TestMetadataGolden(t *testing.T) {
	_, p := build(t)
	golden := filepath.Join("testdata", "METADATA.golden.xml")
	if *update {
		if err := os.WriteFile(golden, p.Metadata, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(p.Metadata, want) {
		t.Errorf("METADATA.XML differs from %s (go test -run Golden -update to accept)", golden)
	}
}

// The real ANS example packed, re-read and checked against its own header.
func TestRealLDLSESPackage(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "samples", "LDL-SES_2022.01.xml"))
	if err != nil {
		t.Skipf("real sample absent: %v", err)
	}
	h, err := cda.Parse(bytes.NewReader(b), cda.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	in := buildInput(t)
	in.Documents = []Document{{Data: b, Header: h, ClassCode: testClass}}
	in.SourceID = ""
	z, _, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Read(z, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if probs := p.Check(nil); len(probs) != 0 {
		t.Errorf("Check: %v", probs)
	}
	e := p.Entries[0]
	if e.PatientID != "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH" || e.TypeCode.Code != "11490-0" ||
		!strings.HasPrefix(e.Authors[0].Person, "801234567897^DAVID^Charles^") {
		t.Errorf("entry %+v", e)
	}
	// Default sourceId from the custodian (FINESS).
	if p.SubmissionSet.SourceID != "1.2.250.1.71.4.2.2.1750803447" {
		t.Errorf("sourceId %q", p.SubmissionSet.SourceID)
	}
	if probs := p.Validate(); len(probs) != 0 {
		t.Errorf("Validate: %v", probs)
	}
}

// A CDA with a DOCTYPE inside a well-formed package: Read (which does not
// parse documents) accepts the package, Check flags the document.
func TestCheckFlagsHostileCDA(t *testing.T) {
	in := buildInput(t)
	in.Documents[0].Data = []byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ClinicalDocument xmlns="urn:hl7-org:v3">&e;</ClinicalDocument>`)
	z, _, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Read(z, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	probs := p.Check(nil)
	if len(probs) == 0 || probs[0].Field != "document" || !strings.Contains(probs[0].Detail, "DOCTYPE") {
		t.Errorf("Check = %v", probs)
	}
}
