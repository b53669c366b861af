package directory

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/relais-mssante/relais/storage"
)

var parseQueryTests = []struct {
	in   string
	want storage.DirectoryQuery
}{
	{"", storage.DirectoryQuery{}},
	{"   ", storage.DirectoryQuery{}},
	{"martin claire", storage.DirectoryQuery{Name: "martin claire"}},
	{"  Mart   Cl  ", storage.DirectoryQuery{Name: "Mart Cl"}},
	{"martin 69003", storage.DirectoryQuery{Name: "martin", PostalCode: "69003"}},
	{"martin 69", storage.DirectoryQuery{Name: "martin", PostalCode: "69"}},
	{"durand 974", storage.DirectoryQuery{Name: "durand", PostalCode: "974"}},
	{"durand 2A", storage.DirectoryQuery{Name: "durand", PostalCode: "20"}},
	{"durand 2b", storage.DirectoryQuery{Name: "durand", PostalCode: "20"}},
	{"claire.martin@", storage.DirectoryQuery{Address: "claire.martin@"}},
	{"c.martin@medecin.mssante.test", storage.DirectoryQuery{Address: "c.martin@medecin.mssante.test"}},
	{"10100000017", storage.DirectoryQuery{Identifier: "10100000017"}},       // RPPS
	{"810100000017", storage.DirectoryQuery{Identifier: "810100000017"}},     // idNat PP, RPPS
	{"123456789012", storage.DirectoryQuery{Name: "123456789012"}},           // 12 digits, neither 8 nor 0 first
	{"012345678901", storage.DirectoryQuery{Identifier: "012345678901"}},     // idNat PP, ADELI
	{"912345678901", storage.DirectoryQuery{Name: "912345678901"}},           // 12 digits, not an idNat PP
	{"690000001", storage.DirectoryQuery{Identifier: "690000001"}},           // FINESS
	{"99999999900011", storage.DirectoryQuery{Identifier: "99999999900011"}}, // SIRET
	{"1234", storage.DirectoryQuery{Name: "1234"}},
	{"1234567", storage.DirectoryQuery{Name: "1234567"}},
	{"profession:10 specialty:SM54 lyon", storage.DirectoryQuery{ProfessionCode: "10", SpecialtyCode: "SM54", Name: "lyon"}},
	{"city:lyon postcode:69003", storage.DirectoryQuery{City: "lyon", PostalCode: "69003"}},
	{"CITY:Saint-Étienne", storage.DirectoryQuery{City: "Saint-Étienne"}},
	{"cp:2A", storage.DirectoryQuery{PostalCode: "20"}},
	{"id:ABC-12 mail:secretariat@", storage.DirectoryQuery{Identifier: "ABC-12", Address: "secretariat@"}},
	{"name:10 dupont", storage.DirectoryQuery{Name: "10 dupont"}},
	{"kind:professional kind:org martin", storage.DirectoryQuery{Name: "martin", Kinds: []storage.EntryKind{storage.KindProfessional, storage.KindOrganisation}}},
	{"kind:spaceship", storage.DirectoryQuery{Name: "kind:spaceship"}},
	{"dr:house", storage.DirectoryQuery{Name: "dr:house"}},
	{"city:", storage.DirectoryQuery{Name: "city:"}},
	{"69001 69003", storage.DirectoryQuery{PostalCode: "69003"}}, // last wins
	{"Dr Jean-Paul L'Hôpital 75", storage.DirectoryQuery{Name: "Dr Jean-Paul L'Hôpital", PostalCode: "75"}},
}

func TestParseQuery(t *testing.T) {
	for _, tc := range parseQueryTests {
		got := ParseQuery(tc.in)
		assert.Equal(t, tc.want, got, "ParseQuery(%q)", tc.in)
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]storage.EntryKind{
		"professional": storage.KindProfessional, "Organisation": storage.KindOrganisation,
		"organization": storage.KindOrganisation, "BAL": storage.KindMailbox,
	} {
		got, ok := ParseKind(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	_, ok := ParseKind("trust")
	assert.False(t, ok)
}

func FuzzParseQuery(f *testing.F) {
	for _, tc := range parseQueryTests {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := ParseQuery(s)
		if q.Limit != 0 || q.Offset != 0 {
			t.Fatalf("ParseQuery set paging: %+v", q)
		}
		if len(q.Name) > len(s) {
			t.Fatalf("name %q longer than input %q", q.Name, s)
		}
	})
}
