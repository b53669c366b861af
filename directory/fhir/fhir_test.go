package fhir

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/internal/httpauth"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// Synthetic directory: 25 general practitioners "BERTHIER" (RPPS), each
// salaried at the Centre Hospitalier des Glycines and the odd ones also
// liberal at a practice; one ADELI nurse; an organisational mailbox.
const (
	user      = "fhir@relais.test"
	password  = "s3cret-fhir"
	nPros     = 25
	chID      = "F750000001"
	chFINESS  = "750000001"
	chSIRET   = "99999999900037"
	cabID     = "C750000002"
	orgMail   = "accueil@glycines.mssante.test"
	nurseID   = "0751234567"
	nurseMail = "noa.vasseur@glycines.mssante.test"
)

func proID(i int) string   { return fmt.Sprintf("8102000000%02d", i) }
func proMail(i int) string { return fmt.Sprintf("camille%02d.berthier@glycines.mssante.test", i) }

func fill(t *testing.T, st *sqlite.Store) {
	t.Helper()
	ctx := context.Background()
	_, err := st.AddDomain(ctx, "relais.test")
	require.NoError(t, err)
	h, err := authn.HashPassword(password, authn.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	require.NoError(t, err)
	_, err = st.CreateAccount(ctx, user, "FHIR client", h)
	require.NoError(t, err)

	chAddr := storage.PostalAddress{Number: "3", StreetType: "Avenue", Street: "des Glycines", PostalCode: "75014", City: "Paris", Country: "France"}
	b := storage.DirectoryBatch{Source: storage.SourceRPPS}
	b.Organisations = []storage.Organisation{
		{ID: chID, FINESS: chFINESS, SIRET: chSIRET, Name: "CENTRE HOSPITALIER DES GLYCINES", TradeName: "CH GLYCINES", Address: chAddr, Phone: "0100000001", Fax: "0100000002", SectorCode: "SA01", Sector: "Etablissement public de santé"},
		{ID: cabID, SIRET: "99999999900045", Name: "CABINET DES LILAS", Address: storage.PostalAddress{Street: "Rue des Lilas", PostalCode: "92100", City: "Boulogne-Billancourt"}},
	}
	for i := 1; i <= nPros; i++ {
		id := proID(i)
		b.Professionals = append(b.Professionals, storage.Professional{
			ID: id, IDType: storage.IDTypeRPPS, Identifier: id[1:], CivilityCode: "DR", Civility: "Docteur",
			FamilyName: "BERTHIER", GivenName: fmt.Sprintf("Camille%02d", i), ProfessionCode: "10", Profession: "Médecin",
			CategoryCode: "C", Category: "Civil", SpecialtyCode: "SM54", Specialty: "Médecine générale",
		})
		b.Activities = append(b.Activities, storage.Activity{Professional: id, Key: "s1", Organisation: chID, ModeCode: "S", Mode: "Salarié", PostalCode: "75014", City: "Paris"})
		if i%2 == 1 {
			b.Activities = append(b.Activities, storage.Activity{Professional: id, Key: "l1", Organisation: cabID, ModeCode: "L", Mode: "Libéral", PostalCode: "92100", City: "Boulogne-Billancourt"})
		}
	}
	b.Professionals = append(b.Professionals, storage.Professional{ID: nurseID, IDType: storage.IDTypeADELI, Identifier: nurseID[1:],
		FamilyName: "VASSEUR", GivenName: "Noa", ProfessionCode: "60", Profession: "Infirmier", CategoryCode: "C"})
	// An activity key that is not a FHIR id: the role id falls back to a digest.
	b.Activities = append(b.Activities, storage.Activity{Professional: nurseID, Key: "clé/éà 1", Organisation: chID, ModeCode: "S", PostalCode: "75014", City: "Paris"})
	require.NoError(t, st.ApplyDirectory(ctx, b))

	m := storage.DirectoryBatch{Source: storage.SourceMSSante}
	for i := 1; i <= nPros; i++ {
		m.Mailboxes = append(m.Mailboxes, storage.MailboxEntry{Address: proMail(i), Type: storage.MailboxPersonal, Professional: proID(i),
			Organisation: chID, FamilyName: "BERTHIER", GivenName: fmt.Sprintf("Camille%02d", i), ProfessionCode: "10", Digitization: true,
			OrganisationName: "CENTRE HOSPITALIER DES GLYCINES", StructureAddress: chAddr})
	}
	m.Mailboxes = append(m.Mailboxes,
		storage.MailboxEntry{Address: orgMail, Type: storage.MailboxOrganisational, Organisation: chID, Service: "Accueil",
			Description: "Accueil des urgences", OrganisationName: "CENTRE HOSPITALIER DES GLYCINES", StructureAddress: chAddr},
		storage.MailboxEntry{Address: nurseMail, Type: storage.MailboxPersonal, Professional: nurseID, Organisation: chID,
			FamilyName: "VASSEUR", GivenName: "Noa", ProfessionCode: "60", StructureAddress: chAddr})
	require.NoError(t, st.ApplyDirectory(ctx, m))
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func mount(st *sqlite.Store) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Prefix+"/", httpauth.New(authn.New(st, nil), httpauth.Options{}).Wrap(Handler(st, slog.New(slog.DiscardHandler))))
	return mux
}

type client struct {
	t   *testing.T
	srv *httptest.Server
}

func setup(t *testing.T) client {
	st := openStore(t)
	fill(t, st)
	srv := httptest.NewTLSServer(mount(st))
	t.Cleanup(srv.Close)
	return client{t, srv}
}

// do GETs a path or an absolute URL and returns the status and the
// decoded, validated resource.
func (c client) do(target string, hdr http.Header) (int, map[string]any) {
	c.t.Helper()
	if !strings.HasPrefix(target, "https://") {
		target = c.srv.URL + target
	}
	req, err := http.NewRequest("GET", target, nil)
	require.NoError(c.t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.SetBasicAuth(user, password)
	resp, err := c.srv.Client().Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	require.Equal(c.t, "application/fhir+json; charset=utf-8", resp.Header.Get("Content-Type"), "%s", body)
	var res map[string]any
	require.NoError(c.t, json.Unmarshal(body, &res), "%s", body)
	require.Empty(c.t, validate(res), "invalid FHIR from %s:\n%s", target, body)
	return resp.StatusCode, res
}

func (c client) get(target string, wantStatus int) map[string]any {
	c.t.Helper()
	status, res := c.do(target, nil)
	require.Equal(c.t, wantStatus, status, "%s: %v", target, res)
	return res
}

// Small views of the JSON, for assertions.

func decode[T any](t *testing.T, m map[string]any) T {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	var v T
	require.NoError(t, json.Unmarshal(b, &v))
	return v
}

type bundleView struct {
	ResourceType string
	Type         string
	Total        *int
	Link         []BundleLink
	Entry        []struct {
		FullURL  string `json:"fullUrl"`
		Resource map[string]any
		Search   struct{ Mode string }
	}
}

func (b bundleView) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

// walk follows next links from a first search URL, checking each page,
// and returns the resources in order.
func (c client) walk(first string, pageSize int) []map[string]any {
	c.t.Helper()
	var all []map[string]any
	next := first
	for pages := 0; next != ""; pages++ {
		require.Less(c.t, pages, 100, "too many pages")
		b := decode[bundleView](c.t, c.get(next, 200))
		require.Equal(c.t, "Bundle", b.ResourceType)
		require.Equal(c.t, "searchset", b.Type)
		require.NotEmpty(c.t, b.link("self"))
		require.LessOrEqual(c.t, len(b.Entry), pageSize)
		for _, e := range b.Entry {
			assert.Equal(c.t, "match", e.Search.Mode)
			typ, _ := e.Resource["resourceType"].(string)
			id, _ := e.Resource["id"].(string)
			assert.True(c.t, strings.HasPrefix(e.FullURL, c.srv.URL+Prefix+"/"), e.FullURL)
			assert.True(c.t, strings.HasSuffix(e.FullURL, "/"+typ+"/"+id), "fullUrl %s for %s/%s", e.FullURL, typ, id)
			all = append(all, e.Resource)
		}
		next = b.link("next")
		if next != "" {
			require.Equal(c.t, pageSize, len(b.Entry), "a page before the last is full here")
			assert.True(c.t, strings.HasPrefix(next, c.srv.URL+Prefix+"/"), "absolute next link %s", next)
		}
	}
	return all
}

func ids(rs []map[string]any) map[string]bool {
	out := map[string]bool{}
	for _, r := range rs {
		out[r["id"].(string)] = true
	}
	return out
}

type practitionerView struct {
	ResourceType string
	ID           string
	Meta         Meta
	Identifier   []Identifier
	Name         []HumanName
	Telecom      []ContactPoint
}

func TestUnauthenticated(t *testing.T) {
	c := setup(t)
	resp, err := c.srv.Client().Get(c.srv.URL + Prefix + "/Practitioner?family=berthier")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestMetadata(t *testing.T) {
	c := setup(t)
	cs := decode[CapabilityStatement](t, c.get(Prefix+"/metadata", 200))
	assert.Equal(t, "CapabilityStatement", cs.ResourceType)
	assert.Equal(t, "4.0.1", cs.FHIRVersion)
	require.Len(t, cs.Rest, 1)
	types := map[string]CapResource{}
	for _, r := range cs.Rest[0].Resource {
		types[r.Type] = r
	}
	require.Contains(t, types, "Practitioner")
	require.Contains(t, types, "PractitionerRole")
	require.Contains(t, types, "Organization")
	assert.Equal(t, profilePractitioner, types["Practitioner"].Profile)
	var names []string
	for _, sp := range types["Practitioner"].SearchParam {
		names = append(names, sp.Name)
	}
	assert.Subset(t, names, []string{"family", "given", "name", "identifier", "mailbox-mss", "_count"})
}

func TestReadPractitioner(t *testing.T) {
	c := setup(t)
	p := decode[practitionerView](t, c.get(Prefix+"/Practitioner/"+proID(4), 200))
	assert.Equal(t, "Practitioner", p.ResourceType)
	assert.Equal(t, proID(4), p.ID)
	assert.Equal(t, []string{"https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-practitioner"}, p.Meta.Profile)
	require.Len(t, p.Identifier, 2)
	assert.Equal(t, "urn:oid:1.2.250.1.71.4.2.1", p.Identifier[0].System)
	assert.Equal(t, proID(4), p.Identifier[0].Value)
	assert.Equal(t, "IDNPS", p.Identifier[0].Type.Coding[0].Code)
	assert.Equal(t, "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", p.Identifier[0].Type.Coding[0].System)
	assert.Equal(t, "https://rpps.esante.gouv.fr", p.Identifier[1].System)
	assert.Equal(t, proID(4)[1:], p.Identifier[1].Value)
	require.Len(t, p.Name, 1)
	assert.Equal(t, "BERTHIER", p.Name[0].Family)
	assert.Equal(t, []string{"Camille04"}, p.Name[0].Given)

	require.Len(t, p.Telecom, 1)
	mb := p.Telecom[0]
	assert.Equal(t, "email", mb.System)
	assert.Equal(t, proMail(4), mb.Value)
	require.Len(t, mb.Extension, 2)
	assert.Equal(t, "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type", mb.Extension[0].URL)
	assert.Equal(t, "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie", mb.Extension[0].ValueCoding.System)
	assert.Equal(t, "MSSANTE", mb.Extension[0].ValueCoding.Code)
	assert.Equal(t, "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-mailbox-mss-metadata", mb.Extension[1].URL)
	sub := map[string]Extension{}
	for _, e := range mb.Extension[1].Extension {
		sub[e.URL] = e
	}
	require.Contains(t, sub, "type")
	assert.Equal(t, "PER", sub["type"].ValueCodeableConcept.Coding[0].Code)
	assert.Equal(t, "https://mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL", sub["type"].ValueCodeableConcept.Coding[0].System)
	require.NotNil(t, sub["digitization"].ValueBoolean)
	assert.True(t, *sub["digitization"].ValueBoolean)

	// ADELI nurse.
	n := decode[practitionerView](t, c.get(Prefix+"/Practitioner/"+nurseID, 200))
	assert.Equal(t, "https://adeli.esante.gouv.fr", n.Identifier[1].System)

	// Reads are by logical id only: the RPPS number alone is not an id.
	oo := c.get(Prefix+"/Practitioner/"+proID(4)[1:], 404)
	assert.Equal(t, "OperationOutcome", oo["resourceType"])
	c.get(Prefix+"/Practitioner/nobody", 404)
	c.get(Prefix+"/Patient/1", 404)
}

func TestReadOrganization(t *testing.T) {
	c := setup(t)
	o := decode[Organization](t, c.get(Prefix+"/Organization/"+chID, 200))
	assert.Equal(t, chID, o.ID)
	assert.Equal(t, []string{profileOrganization}, o.Meta.Profile)
	sys := map[string]string{}
	for _, id := range o.Identifier {
		sys[id.Type.Coding[0].Code] = id.System + "|" + id.Value
	}
	assert.Equal(t, "urn:oid:1.2.250.1.71.4.2.2|1"+chFINESS, sys["IDNST"])
	assert.Equal(t, "https://finess.esante.gouv.fr|"+chFINESS, sys["FINEG"])
	assert.Equal(t, "https://sirene.fr|"+chSIRET, sys["SIRET"])
	assert.Equal(t, []string{"CH GLYCINES"}, o.Alias)
	require.Len(t, o.Address, 1)
	assert.Equal(t, []string{"3 Avenue des Glycines"}, o.Address[0].Line)
	assert.Equal(t, "75014", o.Address[0].PostalCode)
	var mss []ContactPoint
	for _, tc := range o.Telecom {
		if len(tc.Extension) > 0 {
			mss = append(mss, tc)
		}
	}
	require.Len(t, mss, 1)
	assert.Equal(t, orgMail, mss[0].Value)
	c.get(Prefix+"/Organization/"+chFINESS, 404) // the FINESS is an identifier, not the id
}

func TestReadPractitionerRole(t *testing.T) {
	c := setup(t)
	r := decode[PractitionerRole](t, c.get(Prefix+"/PractitionerRole/"+proID(3)+"-l1", 200))
	assert.Equal(t, "Practitioner/"+proID(3), r.Practitioner.Reference)
	assert.Equal(t, "Organization/"+cabID, r.Organization.Reference)
	assert.Equal(t, []string{profilePractitionerRole}, r.Meta.Profile)
	codes := map[string]string{}
	for _, cc := range r.Code {
		for _, cd := range cc.Coding {
			codes[cd.System] = cd.Code
		}
	}
	assert.Equal(t, "10", codes[csProfession])
	assert.Equal(t, "L", codes[csMode])
	require.Len(t, r.Specialty, 1)
	assert.Equal(t, Coding{System: csSpecialty, Code: "SM54", Display: "Médecine générale"}, r.Specialty[0].Coding[0])
	assert.Empty(t, r.Telecom, "the mailbox is at the hospital, not at the practice")

	r = decode[PractitionerRole](t, c.get(Prefix+"/PractitionerRole/"+proID(3)+"-s1", 200))
	require.Len(t, r.Telecom, 1)
	assert.Equal(t, proMail(3), r.Telecom[0].Value)

	// The references resolve.
	c.get(Prefix+"/"+r.Practitioner.Reference, 200)
	c.get(Prefix+"/"+r.Organization.Reference, 200)

	// A key that is not id-safe gets a digest id, which reads back.
	b := decode[bundleView](t, c.get(Prefix+"/PractitionerRole?practitioner=Practitioner/"+nurseID, 200))
	require.Len(t, b.Entry, 1)
	nid := b.Entry[0].Resource["id"].(string)
	assert.True(t, strings.HasPrefix(nid, nurseID+"-h"), nid)
	c.get(Prefix+"/PractitionerRole/"+nid, 200)

	c.get(Prefix+"/PractitionerRole/"+proID(3)+"-zz", 404)
	c.get(Prefix+"/PractitionerRole/nodash", 404)
}

func TestSearchPractitionerPaging(t *testing.T) {
	c := setup(t)
	all := c.walk(Prefix+"/Practitioner?family=berthier&_count=10", 10)
	assert.Len(t, all, nPros)
	assert.Len(t, ids(all), nPros, "no duplicates across pages")

	// Page 2 links back; the whole result in one page has a total.
	b := decode[bundleView](t, c.get(Prefix+"/Practitioner?family=berthier&_count=10&_offset=10", 200))
	assert.NotEmpty(t, b.link("previous"))
	assert.Nil(t, b.Total)
	b = decode[bundleView](t, c.get(Prefix+"/Practitioner?family=berthier&given=camille0&_count=50", 200))
	require.NotNil(t, b.Total)
	assert.Equal(t, 9, *b.Total)
	assert.Empty(t, b.link("next"))
	assert.Len(t, b.Entry, 9)

	// _count above the maximum is lowered.
	b = decode[bundleView](t, c.get(Prefix+"/Practitioner?name=berthier&_count=500", 200))
	assert.Contains(t, b.link("self"), "_count=100")
}

func TestSearchPractitionerCriteria(t *testing.T) {
	c := setup(t)
	one := func(q string) practitionerView {
		t.Helper()
		b := decode[bundleView](t, c.get(Prefix+"/Practitioner?"+q, 200))
		require.Len(t, b.Entry, 1, q)
		return decode[practitionerView](t, b.Entry[0].Resource)
	}
	assert.Equal(t, proID(12), one("identifier="+proID(12)).ID)
	assert.Equal(t, proID(12), one("identifier="+url.QueryEscape(sysRPPS+"|"+proID(12)[1:])).ID)
	assert.Equal(t, proID(12), one("identifier="+url.QueryEscape(sysIDNatPS+"|"+proID(12))).ID)
	assert.Equal(t, proID(7), one("mailbox-mss:exact="+url.QueryEscape(proMail(7))).ID)
	assert.Equal(t, nurseID, one("mailbox-mss=noa.").ID)
	assert.Equal(t, nurseID, one("name=vass").ID)

	// The identifier's system must match.
	b := decode[bundleView](t, c.get(Prefix+"/Practitioner?identifier="+url.QueryEscape(sysADELI+"|"+proID(12)[1:]), 200))
	assert.Empty(t, b.Entry)
	require.NotNil(t, b.Total)
	assert.Equal(t, 0, *b.Total)
	// :exact wants the whole address.
	b = decode[bundleView](t, c.get(Prefix+"/Practitioner?mailbox-mss:exact=camille07", 200))
	assert.Empty(t, b.Entry)
}

func TestSearchParameterHandling(t *testing.T) {
	c := setup(t)
	// Lenient by default: an unknown parameter is ignored and left out of
	// the self link (search.html#errors).
	b := decode[bundleView](t, c.get(Prefix+"/Practitioner?family=berthier&gender=female&family:contains=x&_count=5", 200))
	self := b.link("self")
	assert.Contains(t, self, "family=berthier")
	assert.NotContains(t, self, "gender")
	assert.NotContains(t, self, "contains")
	assert.Len(t, b.Entry, 5)

	// Strict on request.
	status, oo := c.do(Prefix+"/Practitioner?family=berthier&gender=female", http.Header{"Prefer": {"handling=strict"}})
	assert.Equal(t, 400, status)
	assert.Equal(t, "OperationOutcome", oo["resourceType"])

	for _, q := range []string{
		"/Practitioner?family=berthier&_count=abc", "/Practitioner?family=berthier&_count=0",
		"/Practitioner?family=berthier&_offset=-1", "/Practitioner?_count=10", "/Organization",
		"/PractitionerRole?organization=Organization/" + cabID, "/PractitionerRole?role=10&_cursor=x",
		"/PractitionerRole?role=L", // a mode alone is no store criterion
		"/Practitioner?identifier=a,b",
	} {
		oo := c.get(Prefix+q, 400)
		assert.Equal(t, "OperationOutcome", oo["resourceType"], q)
	}
}

func TestSearchPractitionerRole(t *testing.T) {
	c := setup(t)
	// Every doctor at the hospital and the odd ones at the practice:
	// 25 + 13 roles, paged 7 by 7 through opaque cursors.
	all := c.walk(Prefix+"/PractitionerRole?role=10&_count=7", 7)
	assert.Len(t, all, nPros+(nPros+1)/2)
	assert.Len(t, ids(all), nPros+(nPros+1)/2)
	for _, r := range all {
		assert.Equal(t, "PractitionerRole", r["resourceType"])
	}

	count := func(q string) int {
		t.Helper()
		return len(c.walk(Prefix+"/PractitionerRole?"+q+"&_count=100", 100))
	}
	assert.Equal(t, (nPros+1)/2, count("role=10&organization=Organization/"+cabID))
	assert.Equal(t, (nPros+1)/2, count("role=L&address-postalcode=9"))
	assert.Equal(t, (nPros+1)/2, count("role="+url.QueryEscape(csMode+"|L")+"&specialty=SM54"))
	assert.Equal(t, (nPros+1)/2, count("address-postalcode=92"))
	assert.Equal(t, (nPros+1)/2, count("address-city=boulogne"))
	assert.Equal(t, nPros+1, count("address-postalcode=75014"), "the nurse works there too")
	assert.Equal(t, 2, count("practitioner=Practitioner/"+proID(1)))
	assert.Equal(t, 1, count("practitioner="+proID(2)))
	assert.Equal(t, 1, count("practitioner="+proID(1)+"&organization="+cabID))
	assert.Equal(t, 1, count("mailbox-mss="+url.QueryEscape(proMail(9))))
	assert.Equal(t, 0, count("practitioner=Practitioner/810299999999"))
	assert.Equal(t, 0, count("role=http://example.test/cs|10"))
}

func TestSearchOrganization(t *testing.T) {
	c := setup(t)
	one := func(q string) Organization {
		t.Helper()
		b := decode[bundleView](t, c.get(Prefix+"/Organization?"+q, 200))
		require.Len(t, b.Entry, 1, q)
		return decode[Organization](t, b.Entry[0].Resource)
	}
	assert.Equal(t, chID, one("identifier="+url.QueryEscape(sysIDNatSt+"|1"+chFINESS)).ID)
	assert.Equal(t, chID, one("identifier="+url.QueryEscape(sysFINESS+"|"+chFINESS)).ID)
	assert.Equal(t, chID, one("identifier="+url.QueryEscape(sysSIRENE+"|"+chSIRET)).ID)
	assert.Equal(t, chID, one("name=centre+hosp").ID)
	assert.Equal(t, cabID, one("address-city=boulogne").ID)
	assert.Equal(t, cabID, one("address-postalcode=921").ID)
	assert.Equal(t, chID, one("mailbox-mss=accueil%40").ID)
	assert.Equal(t, chID, one("mailbox-mss:exact="+url.QueryEscape(orgMail)).ID)
	b := decode[bundleView](t, c.get(Prefix+"/Organization?identifier="+url.QueryEscape("http://other.test|"+chFINESS), 200))
	assert.Empty(t, b.Entry)
}

func TestIDs(t *testing.T) {
	for _, raw := range []string{"F750000001", "810200000001", "with space", "a/b", "z.tricky", strings.Repeat("x", 30)} {
		id := resourceID(raw)
		require.True(t, validID(id), "%q -> %q", raw, id)
		back, ok := directoryID(id)
		require.True(t, ok)
		assert.Equal(t, raw, back)
	}
	assert.Equal(t, "", resourceID(strings.Repeat("é", 40)), "too long to encode")
	assert.True(t, validID(roleID("810200000001", strings.Repeat("k", 80))))
}

// TestCurl reads the FHIR API with curl over a real TLS listener.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	st := openStore(t)
	fill(t, st)
	ca, err := pki.NewCA("Relais Test CA")
	require.NoError(t, err)
	cert, err := ca.IssueServer("127.0.0.1")
	require.NoError(t, err)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.CertPEM(), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mount(st), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(tls.NewListener(ln, pki.ServerTLSConfig(cert)))
	t.Cleanup(func() { srv.Close() })
	base := "https://" + ln.Addr().String() + Prefix

	out, err := exec.Command(curl, "-sS", "--fail-with-body", "--cacert", caFile, "-u", user+":"+password,
		"-H", "Accept: application/fhir+json", base+"/Practitioner?family=berthier&_count=2").CombinedOutput()
	require.NoError(t, err, "%s", out)
	var res map[string]any
	require.NoError(t, json.Unmarshal(out, &res), "%s", out)
	require.Empty(t, validate(res))
	b := decode[bundleView](t, res)
	assert.Len(t, b.Entry, 2)
	assert.True(t, strings.HasPrefix(b.link("next"), base+"/Practitioner?"), b.link("next"))

	out, err = exec.Command(curl, "-sS", "--fail-with-body", "--cacert", caFile, "-u", user+":"+password, base+"/metadata").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, json.Unmarshal(out, &res))
	assert.Equal(t, "CapabilityStatement", res["resourceType"])
}

// The validator catches what it is meant to.
func TestValidatorRejects(t *testing.T) {
	for name, js := range map[string]string{
		"no type":        `{"resourceType":"Bundle","link":[{"relation":"self","url":"https://x/fhir"}]}`,
		"empty string":   `{"resourceType":"Organization","name":""}`,
		"org-1":          `{"resourceType":"Organization","active":true}`,
		"cpt-2":          `{"resourceType":"Practitioner","telecom":[{"value":"x@y"}]}`,
		"ext-1":          `{"resourceType":"Practitioner","telecom":[{"system":"email","value":"x@y","extension":[{"url":"u"}]}]}`,
		"bad id":         `{"resourceType":"Practitioner","id":"a b"}`,
		"relative link":  `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"/fhir"}]}`,
		"bad issue":      `{"resourceType":"OperationOutcome","issue":[{"severity":"bad","code":"x"}]}`,
		"no fullUrl":     `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Organization","name":"n"}}]}`,
		"qualification":  `{"resourceType":"Practitioner","qualification":[{"period":{"start":"2020"}}]}`,
		"null":           `{"resourceType":"Organization","name":"n","alias":null}`,
		"empty array":    `{"resourceType":"Organization","name":"n","alias":[]}`,
		"total in batch": `{"resourceType":"Bundle","type":"batch","total":3}`,
	} {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(js), &m), name)
		assert.NotEmpty(t, validate(m), name)
	}
}
