package storagetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

// The directory fixture: synthetic professionals, organisations and
// addresses (invented names and identifiers, in the national formats).

func dirOrganisations() []storage.Organisation {
	return []storage.Organisation{
		{ID: "S990000011", FINESS: "990000011", LegalFINESS: "990000029", SIRET: "99900000100011", SIREN: "999000001",
			Name: "Centre Hospitalier de Valmont", Hash: 11,
			Address: storage.PostalAddress{Number: "12", StreetType: "Rue", Street: "des Lilas", PostalCode: "75011", City: "PARIS"}},
		{ID: "S990000037", FINESS: "990000037", Name: "Cabinet Médical des Tilleuls", TradeName: "Maison de Santé Les Tilleuls", Hash: 12,
			Address: storage.PostalAddress{Street: "Place du Marché", PostalCode: "69003", City: "LYON"}},
		{ID: "S990000045", Name: "Martinet Santé", Hash: 13,
			Address: storage.PostalAddress{PostalCode: "33000", City: "BORDEAUX"}},
	}
}

func dirProfessionals() []storage.Professional {
	p := func(id, idType, ident, family, given, prof, spec string, h uint64) storage.Professional {
		return storage.Professional{ID: id, IDType: idType, Identifier: ident, FamilyName: family, GivenName: given,
			CivilityCode: "DR", Civility: "Docteur", ProfessionCode: prof, SpecialtyCode: spec, Hash: h}
	}
	return []storage.Professional{
		p("899900000011", storage.IDTypeRPPS, "99900000011", "MARTIN", "Claire", "10", "SM54", 1),
		p("899900000029", storage.IDTypeRPPS, "99900000029", "DUPRÉ", "ELEONORE", "10", "SM26", 2),
		p("899900000037", storage.IDTypeRPPS, "99900000037", "MARTIN-DUBOIS", "Jean-Pierre", "60", "", 3),
		p("899900000045", storage.IDTypeRPPS, "99900000045", "MARTINEZ", "Paul", "10", "SM26", 4),
		p("0999123456", storage.IDTypeADELI, "999123456", "Martin", "Sophie", "60", "", 5),
		p("899900000052", storage.IDTypeRPPS, "99900000052", "MARTIN DU GARD", "Roger", "40", "", 6),
	}
}

func dirActivities() []storage.Activity {
	return []storage.Activity{
		{Professional: "899900000011", Key: "a1", Organisation: "S990000011", ModeCode: "S", PostalCode: "75011", City: "PARIS", Hash: 21},
		{Professional: "899900000011", Key: "a2", Organisation: "S990000037", ModeCode: "L", PostalCode: "69003", City: "LYON", Hash: 22},
		{Professional: "899900000037", Key: "a1", Organisation: "S990000037", ModeCode: "L", PostalCode: "69003", City: "LYON", Hash: 23},
		{Professional: "899900000045", Key: "a1", ModeCode: "L", PostalCode: "13001", City: "MARSEILLE", Hash: 24},
		{Professional: "0999123456", Key: "a1", Organisation: "S990000011", ModeCode: "S", PostalCode: "75011", City: "PARIS", Hash: 25},
		{Professional: "899900000052", Key: "a1", ModeCode: "L", PostalCode: "33000", City: "Bordeaux", Hash: 26},
	}
}

func dirMailboxes() []storage.MailboxEntry {
	return []storage.MailboxEntry{
		{Address: "Claire.Martin@valmont.mssante.example", Type: storage.MailboxPersonal, Professional: "899900000011",
			Organisation: "S990000011", FamilyName: "MARTIN", GivenName: "Claire", ProfessionCode: "10", Hash: 31,
			StructureAddress: storage.PostalAddress{PostalCode: "75011", City: "PARIS"}},
		{Address: "secretariat@valmont.mssante.example", Type: storage.MailboxOrganisational, Organisation: "S990000011",
			Service: "Secrétariat", OrganisationName: "Centre Hospitalier de Valmont", Hash: 32,
			StructureAddress: storage.PostalAddress{PostalCode: "75011", City: "PARIS"}},
		{Address: "lucie.bernard@pro.mssante.example", Type: storage.MailboxPersonal, Professional: "899900099999",
			FamilyName: "BERNARD", GivenName: "Lucie", ProfessionCode: "50", Digitization: true, Hash: 33,
			StructureAddress: storage.PostalAddress{PostalCode: "33000", City: "BORDEAUX"}},
	}
}

func (e *env) loadDirectory(t *testing.T) {
	t.Helper()
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceRPPS,
		Professionals: dirProfessionals(), Organisations: dirOrganisations(), Activities: dirActivities()}))
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceMSSante, Mailboxes: dirMailboxes()}))
}

func (e *env) hashes(t *testing.T, kind storage.EntryKind, source string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	require.NoError(t, e.s.DirectoryHashes(e.ctx, kind, source, func(k string, h uint64) error {
		out[k] = h
		return nil
	}))
	n, err := e.s.DirectoryCount(e.ctx, kind, source)
	require.NoError(t, err)
	assert.Equal(t, len(out), n, "DirectoryCount and DirectoryHashes disagree on %s/%s", kind, source)
	return out
}

func (e *env) search(t *testing.T, q storage.DirectoryQuery) storage.DirectoryPage {
	t.Helper()
	p, err := e.s.SearchDirectory(e.ctx, q)
	require.NoError(t, err, "%+v", q)
	return p
}

// hitNames names each hit: "P:family given", "O:name", "M:address".
func hitNames(p storage.DirectoryPage) []string {
	out := []string{}
	for _, h := range p.Hits {
		switch h.Kind {
		case storage.KindProfessional:
			out = append(out, "P:"+h.Professional.FamilyName+" "+h.Professional.GivenName)
		case storage.KindOrganisation:
			out = append(out, "O:"+h.Organisation.Name)
		case storage.KindMailbox:
			out = append(out, "M:"+h.Mailbox.Address)
		default:
			out = append(out, "?:"+string(h.Kind))
		}
	}
	return out
}

func testDirectoryApply(t *testing.T, e *env) {
	e.loadDirectory(t)
	hp := e.hashes(t, storage.KindProfessional, storage.SourceRPPS)
	assert.Len(t, hp, 6)
	assert.Equal(t, uint64(1), hp["899900000011"])
	ha := e.hashes(t, storage.KindActivity, storage.SourceRPPS)
	assert.Len(t, ha, 6)
	assert.Equal(t, uint64(22), ha["899900000011/a2"])
	ho := e.hashes(t, storage.KindOrganisation, storage.SourceRPPS)
	assert.Equal(t, map[string]uint64{"S990000011": 11, "S990000037": 12, "S990000045": 13}, ho)
	hm := e.hashes(t, storage.KindMailbox, storage.SourceMSSante)
	assert.Equal(t, uint64(31), hm["claire.martin@valmont.mssante.example"], "mailbox keys are lower-cased addresses")
	assert.Len(t, hm, 3)
	assert.Empty(t, e.hashes(t, storage.KindProfessional, storage.SourceMSSante))
	n, err := e.s.DirectoryCount(e.ctx, storage.KindMailbox, "")
	require.NoError(t, err)
	assert.Equal(t, 5, n, "three national addresses and the two local accounts")

	// Hash as a full uint64 survives the round trip.
	big := dirProfessionals()[0]
	big.Hash = 1<<64 - 3
	big.GivenName = "Claire-Anne"
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceRPPS, Professionals: []storage.Professional{big}}))
	assert.Equal(t, uint64(1<<64-3), e.hashes(t, storage.KindProfessional, storage.SourceRPPS)["899900000011"])

	p, err := e.s.Professional(e.ctx, "899900000011")
	require.NoError(t, err)
	assert.Equal(t, "Claire-Anne", p.GivenName)
	assert.Equal(t, storage.SourceRPPS, p.Source)
	assert.Equal(t, "SM54", p.SpecialtyCode)
	byNumber, err := e.s.Professional(e.ctx, "99900000011")
	require.NoError(t, err)
	assert.Equal(t, p, byNumber)
	adeli, err := e.s.Professional(e.ctx, "999123456")
	require.NoError(t, err)
	assert.Equal(t, "0999123456", adeli.ID)
	_, err = e.s.Professional(e.ctx, "899999999999")
	require.ErrorIs(t, err, storage.ErrNotFound)

	o, err := e.s.Organisation(e.ctx, "990000011")
	require.NoError(t, err)
	assert.Equal(t, dirOrganisations()[0].Address, o.Address)
	assert.Equal(t, "Centre Hospitalier de Valmont", o.Name)
	for _, id := range []string{"S990000011", "99900000100011", "990000029"} {
		o2, err := e.s.Organisation(e.ctx, id)
		require.NoError(t, err, id)
		assert.Equal(t, o.ID, o2.ID)
	}
	_, err = e.s.Organisation(e.ctx, "nope")
	require.ErrorIs(t, err, storage.ErrNotFound)

	acts, err := e.s.Activities(e.ctx, "899900000011")
	require.NoError(t, err)
	require.Len(t, acts, 2)
	assert.Equal(t, "a1", acts[0].Key)
	assert.Equal(t, "S990000037", acts[1].Organisation)

	mb, err := e.s.MailboxEntries(e.ctx, "LUCIE.BERNARD@pro.mssante.example")
	require.NoError(t, err)
	require.Len(t, mb, 1)
	assert.True(t, mb[0].Digitization)
	assert.Equal(t, "lucie.bernard@pro.mssante.example", mb[0].Address)
	assert.Equal(t, storage.SourceMSSante, mb[0].Source)
	_, err = e.s.MailboxEntries(e.ctx, "nobody@pro.mssante.example")
	require.ErrorIs(t, err, storage.ErrNotFound)

	// Deletes: a professional takes its activities along; an activity
	// alone; absent entries are not an error.
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceRPPS, Delete: []storage.EntryRef{
		{Kind: storage.KindProfessional, Key: "899900000011"},
		{Kind: storage.KindActivity, Key: "899900000045/a1"},
		{Kind: storage.KindProfessional, Key: "899999999999"},
		{Kind: storage.KindOrganisation, Key: "S990000045"},
	}}))
	_, err = e.s.Professional(e.ctx, "899900000011")
	require.ErrorIs(t, err, storage.ErrNotFound)
	acts, err = e.s.Activities(e.ctx, "899900000011")
	require.NoError(t, err)
	assert.Empty(t, acts)
	ha = e.hashes(t, storage.KindActivity, storage.SourceRPPS)
	assert.Len(t, ha, 3)
	assert.NotContains(t, ha, "899900000045/a1")
	assert.Len(t, e.hashes(t, storage.KindOrganisation, storage.SourceRPPS), 2)
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceMSSante,
		Delete: []storage.EntryRef{{Kind: storage.KindMailbox, Key: "Lucie.Bernard@pro.mssante.example"}}}))
	_, err = e.s.MailboxEntries(e.ctx, "lucie.bernard@pro.mssante.example")
	require.ErrorIs(t, err, storage.ErrNotFound)

	// Committed batches survive a reopen.
	e.reopen(t)
	assert.Len(t, e.hashes(t, storage.KindProfessional, storage.SourceRPPS), 5)
}

func testDirectoryOwnership(t *testing.T, e *env) {
	e.loadDirectory(t)
	// Another source naming the same structure neither replaces nor
	// deletes it; its own entries are its own.
	other := dirOrganisations()[0]
	other.Name = "Renamed by another source"
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceMSSante,
		Organisations: []storage.Organisation{other, {ID: "M1234", Name: "Structure MSSanté seule"}},
		Delete:        []storage.EntryRef{{Kind: storage.KindProfessional, Key: "899900000011"}}}))
	o, err := e.s.Organisation(e.ctx, "S990000011")
	require.NoError(t, err)
	assert.Equal(t, "Centre Hospitalier de Valmont", o.Name)
	assert.Equal(t, storage.SourceRPPS, o.Source)
	_, err = e.s.Professional(e.ctx, "899900000011")
	require.NoError(t, err)
	assert.Equal(t, map[string]uint64{"M1234": 0}, e.hashes(t, storage.KindOrganisation, storage.SourceMSSante))
	n, err := e.s.DirectoryCount(e.ctx, storage.KindOrganisation, "")
	require.NoError(t, err)
	assert.Equal(t, 4, n)
}

func testDirectoryValidation(t *testing.T, e *env) {
	for name, b := range map[string]storage.DirectoryBatch{
		"no source":        {Professionals: dirProfessionals()},
		"local source":     {Source: storage.SourceLocal, Mailboxes: dirMailboxes()},
		"empty id":         {Source: storage.SourceRPPS, Professionals: []storage.Professional{{FamilyName: "X"}}},
		"empty org id":     {Source: storage.SourceRPPS, Organisations: []storage.Organisation{{Name: "X"}}},
		"activity key":     {Source: storage.SourceRPPS, Activities: []storage.Activity{{Professional: "899900000011"}}},
		"bad address":      {Source: storage.SourceMSSante, Mailboxes: []storage.MailboxEntry{{Address: "no-at-sign"}}},
		"trust without op": {Source: storage.SourceTrustList, Trust: []storage.TrustEntry{{Domain: "a.example"}}},
		"bad delete kind":  {Source: storage.SourceRPPS, Delete: []storage.EntryRef{{Kind: "patient", Key: "1"}}},
		"empty delete key": {Source: storage.SourceRPPS, Delete: []storage.EntryRef{{Kind: storage.KindProfessional}}},
	} {
		require.ErrorIs(t, e.s.ApplyDirectory(e.ctx, b), storage.ErrInvalid, name)
	}
	// A rejected batch writes nothing.
	n, err := e.s.DirectoryCount(e.ctx, storage.KindProfessional, "")
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = e.s.DirectoryCount(e.ctx, "patient", "")
	require.ErrorIs(t, err, storage.ErrInvalid)
	require.ErrorIs(t, e.s.DirectoryHashes(e.ctx, "patient", storage.SourceRPPS, func(string, uint64) error { return nil }), storage.ErrInvalid)

	for name, q := range map[string]storage.DirectoryQuery{
		"empty":         {},
		"only paging":   {Limit: 10, Offset: 5},
		"only punct":    {Name: " -'. "},
		"bad kind":      {Name: "martin", Kinds: []storage.EntryKind{storage.KindActivity}},
		"negative page": {Name: "martin", Offset: -1},
	} {
		_, err := e.s.SearchDirectory(e.ctx, q)
		require.ErrorIs(t, err, storage.ErrInvalid, name)
	}
	// An error from the callback stops the walk and comes back.
	e.loadDirectory(t)
	stop := errors.New("stop")
	calls := 0
	err = e.s.DirectoryHashes(e.ctx, storage.KindProfessional, storage.SourceRPPS, func(string, uint64) error {
		calls++
		return stop
	})
	require.ErrorIs(t, err, stop)
	assert.Equal(t, 1, calls)
}

func testDirectorySearchName(t *testing.T, e *env) {
	e.loadDirectory(t)
	for _, tc := range []struct {
		name  string
		q     storage.DirectoryQuery
		first string
	}{
		{"family given prefix", storage.DirectoryQuery{Name: "mart cla"}, "P:MARTIN Claire"},
		{"given family prefix", storage.DirectoryQuery{Name: "claire m"}, "P:MARTIN Claire"},
		{"both words prefixes, given first", storage.DirectoryQuery{Name: "sop mart"}, "P:Martin Sophie"},
		{"initials", storage.DirectoryQuery{Name: "m. c."}, "P:MARTIN Claire"},
		{"family in words", storage.DirectoryQuery{Name: "martin du g"}, "P:MARTIN DU GARD Roger"},
		{"case and accents", storage.DirectoryQuery{Name: "éléonore"}, "P:DUPRÉ ELEONORE"},
		{"accented query on plain key", storage.DirectoryQuery{Name: "DUPRE"}, "P:DUPRÉ ELEONORE"},
		{"hyphenated given", storage.DirectoryQuery{Name: "jean-pierre"}, "P:MARTIN-DUBOIS Jean-Pierre"},
		{"hyphenated given with family", storage.DirectoryQuery{Name: "Jean Pierre Martin"}, "P:MARTIN-DUBOIS Jean-Pierre"},
		{"hyphenated family", storage.DirectoryQuery{Name: "martin dubois j"}, "P:MARTIN-DUBOIS Jean-Pierre"},
		{"organisation", storage.DirectoryQuery{Name: "centre hosp"}, "O:Centre Hospitalier de Valmont"},
		{"trade name", storage.DirectoryQuery{Name: "maison de sante"}, "O:Cabinet Médical des Tilleuls"},
		{"unimported owner", storage.DirectoryQuery{Name: "bernard"}, "M:lucie.bernard@pro.mssante.example"},
		{"identifier rpps", storage.DirectoryQuery{Identifier: "99900000011"}, "P:MARTIN Claire"},
		{"identifier national", storage.DirectoryQuery{Identifier: "899900000011"}, "P:MARTIN Claire"},
		{"identifier adeli", storage.DirectoryQuery{Identifier: "999123456"}, "P:Martin Sophie"},
		{"identifier finess", storage.DirectoryQuery{Identifier: "990000029"}, "O:Centre Hospitalier de Valmont"},
		{"identifier siren", storage.DirectoryQuery{Identifier: "999000001"}, "O:Centre Hospitalier de Valmont"},
		{"address of a professional", storage.DirectoryQuery{Address: "CLAIRE.MARTIN@"}, "P:MARTIN Claire"},
		{"address of an organisation", storage.DirectoryQuery{Address: "secretariat@valmont"}, "M:secretariat@valmont.mssante.example"},
	} {
		p := e.search(t, tc.q)
		names := hitNames(p)
		require.NotEmpty(t, names, tc.name)
		assert.Equal(t, tc.first, names[0], "%s: %v", tc.name, names)
	}
	assert.Empty(t, e.search(t, storage.DirectoryQuery{Name: "zzyzx"}).Hits)
	assert.Empty(t, e.search(t, storage.DirectoryQuery{Identifier: "000"}).Hits)

	// A professional's hit is filled: activities, their sites, addresses;
	// the address of an imported professional is not a hit of its own.
	p := e.search(t, storage.DirectoryQuery{Name: "claire martin"})
	require.Equal(t, []string{"P:MARTIN Claire"}, hitNames(p))
	h := p.Hits[0]
	require.Len(t, h.Activities, 2)
	require.Len(t, h.Sites, 2)
	assert.ElementsMatch(t, []string{"Centre Hospitalier de Valmont", "Cabinet Médical des Tilleuls"}, []string{h.Sites[0].Name, h.Sites[1].Name})
	require.Len(t, h.Mailboxes, 1)
	assert.Equal(t, "Claire.Martin@valmont.mssante.example", h.Mailboxes[0].Address)

	p = e.search(t, storage.DirectoryQuery{Name: "centre hospitalier de valmont"})
	require.NotEmpty(t, p.Hits)
	assert.Equal(t, "O:Centre Hospitalier de Valmont", hitNames(p)[0])
	require.Len(t, p.Hits[0].Mailboxes, 2, "the organisation's addresses: its secretariat and Claire's")
	assert.Contains(t, hitNames(p), "M:secretariat@valmont.mssante.example")
}

func testDirectorySearchRanking(t *testing.T, e *env) {
	e.loadDirectory(t)
	// Exact family name first, alphabetical; then the prefix matches of
	// every kind, merged alphabetically.
	got := hitNames(e.search(t, storage.DirectoryQuery{Name: "MARTIN"}))
	assert.Equal(t, []string{
		"P:MARTIN Claire", "P:Martin Sophie",
		"P:MARTIN DU GARD Roger", "P:MARTIN-DUBOIS Jean-Pierre", "O:Martinet Santé", "P:MARTINEZ Paul",
	}, got)
	// The whole key exactly, in either order, before a longer name.
	got = hitNames(e.search(t, storage.DirectoryQuery{Name: "roger martin du gard"}))
	assert.Equal(t, []string{"P:MARTIN DU GARD Roger"}, got)
	got = hitNames(e.search(t, storage.DirectoryQuery{Name: "martin claire"}))
	assert.Equal(t, []string{"P:MARTIN Claire"}, got)
	got = hitNames(e.search(t, storage.DirectoryQuery{Name: "mar", Kinds: []storage.EntryKind{storage.KindOrganisation}}))
	assert.Equal(t, []string{"O:Martinet Santé"}, got)
}

func testDirectorySearchFilters(t *testing.T, e *env) {
	e.loadDirectory(t)
	prof := []storage.EntryKind{storage.KindProfessional}
	for _, tc := range []struct {
		name string
		q    storage.DirectoryQuery
		want []string
	}{
		{"profession and name", storage.DirectoryQuery{Name: "martin", ProfessionCode: "60"},
			[]string{"P:Martin Sophie", "P:MARTIN-DUBOIS Jean-Pierre"}},
		{"specialty and name", storage.DirectoryQuery{Name: "mar", SpecialtyCode: "SM26"}, []string{"P:MARTINEZ Paul"}},
		{"specialty alone", storage.DirectoryQuery{SpecialtyCode: "SM26", Kinds: prof}, []string{"P:DUPRÉ ELEONORE", "P:MARTINEZ Paul"}},
		{"profession alone", storage.DirectoryQuery{ProfessionCode: "60"}, []string{"P:Martin Sophie", "P:MARTIN-DUBOIS Jean-Pierre"}},
		{"postcode prefix", storage.DirectoryQuery{PostalCode: "75", Kinds: prof}, []string{"P:MARTIN Claire", "P:Martin Sophie"}},
		{"postcode with name", storage.DirectoryQuery{PostalCode: "690", Name: "mart"}, []string{"P:MARTIN Claire", "P:MARTIN-DUBOIS Jean-Pierre"}},
		{"city", storage.DirectoryQuery{City: "lyon"}, []string{"P:MARTIN Claire", "P:MARTIN-DUBOIS Jean-Pierre", "O:Cabinet Médical des Tilleuls"}},
		{"city folded prefix", storage.DirectoryQuery{City: "BORD", Kinds: prof}, []string{"P:MARTIN DU GARD Roger"}},
		{"city and name", storage.DirectoryQuery{City: "bordeaux", Name: "mar"}, []string{"P:MARTIN DU GARD Roger", "O:Martinet Santé"}},
		{"postcode, every kind", storage.DirectoryQuery{PostalCode: "33"},
			[]string{"P:MARTIN DU GARD Roger", "O:Martinet Santé", "M:lucie.bernard@pro.mssante.example"}},
		{"identifier and profession disagree", storage.DirectoryQuery{Identifier: "99900000011", ProfessionCode: "60"}, []string{}},
		{"address and name", storage.DirectoryQuery{Address: "claire", Name: "martin"}, []string{"P:MARTIN Claire"}},
		{"kinds", storage.DirectoryQuery{Name: "martin", Kinds: []storage.EntryKind{storage.KindOrganisation}}, []string{"O:Martinet Santé"}},
	} {
		got := hitNames(e.search(t, tc.q))
		if tc.name == "postcode prefix" || tc.name == "city" || tc.name == "postcode, every kind" {
			// Without a name the order is the postcode's; compare as sets.
			assert.ElementsMatch(t, tc.want, got, tc.name)
			continue
		}
		assert.Equal(t, tc.want, got, tc.name)
	}
}

func testDirectorySearchPaging(t *testing.T, e *env) {
	e.loadDirectory(t)
	var ps []storage.Professional
	for i := range 45 {
		ps = append(ps, storage.Professional{ID: fmt.Sprintf("8%011d", 500+i), Identifier: fmt.Sprintf("%011d", 500+i),
			FamilyName: "PAGINOT", GivenName: fmt.Sprintf("Prénom%02d", i), ProfessionCode: "10"})
	}
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceRPPS, Professionals: ps}))
	full := e.search(t, storage.DirectoryQuery{Name: "paginot", Limit: 200})
	require.Len(t, full.Hits, 45)
	assert.False(t, full.More)
	def := e.search(t, storage.DirectoryQuery{Name: "paginot"})
	assert.Len(t, def.Hits, 20, "default limit")
	assert.True(t, def.More)
	big := e.search(t, storage.DirectoryQuery{Name: "paginot", Limit: 100000})
	assert.Len(t, big.Hits, 45, "limit capped, not refused")

	var pages []string
	for off := 0; ; off += 10 {
		p := e.search(t, storage.DirectoryQuery{Name: "PAGI", Offset: off, Limit: 10})
		pages = append(pages, hitNames(p)...)
		if !p.More {
			assert.Len(t, p.Hits, 5)
			break
		}
		require.Len(t, p.Hits, 10)
	}
	assert.Equal(t, hitNames(full), pages)
	for i := 1; i < len(pages); i++ {
		assert.Less(t, pages[i-1], pages[i], "alphabetical")
	}
	p := e.search(t, storage.DirectoryQuery{Name: "paginot", Offset: 45, Limit: 10})
	assert.Empty(t, p.Hits)
	assert.False(t, p.More)
	p = e.search(t, storage.DirectoryQuery{ProfessionCode: "10", Kinds: []storage.EntryKind{storage.KindProfessional}, Offset: 40, Limit: 5})
	assert.Len(t, p.Hits, 5)
	assert.True(t, p.More)
}

func testDirectoryLocalAccounts(t *testing.T, e *env) {
	e.loadDirectory(t)
	// CreateAccount makes the account an entry of the directory.
	carol, err := e.s.CreateAccount(e.ctx, "Carol.Lefevre@example.org", "Carol Le Fèvre", "h")
	require.NoError(t, err)
	mb, err := e.s.MailboxEntries(e.ctx, "carol.lefevre@EXAMPLE.org")
	require.NoError(t, err)
	require.Len(t, mb, 1)
	assert.Equal(t, storage.MailboxEntry{Address: "Carol.Lefevre@example.org", Type: storage.MailboxPersonal, GivenName: "Carol",
		FamilyName: "Le Fèvre", Account: carol.ID, Source: storage.SourceLocal}, mb[0])
	assert.Equal(t, []string{"M:Carol.Lefevre@example.org"}, hitNames(e.search(t, storage.DirectoryQuery{Name: "le fevre"})))
	assert.Equal(t, []string{"M:Carol.Lefevre@example.org"}, hitNames(e.search(t, storage.DirectoryQuery{Name: "carol le"})))
	assert.Equal(t, []string{"M:alice@example.org"}, hitNames(e.search(t, storage.DirectoryQuery{Name: "alice"})), "one word: the family name")

	// The national extraction lists the same address: both entries are
	// kept, local first, and search shows the address once, local.
	national := storage.MailboxEntry{Address: "carol.lefevre@example.org", Type: storage.MailboxPersonal, FamilyName: "LEFEVRE",
		GivenName: "Carole", Professional: "899900077777", Hash: 9}
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceMSSante, Mailboxes: []storage.MailboxEntry{national}}))
	mb, err = e.s.MailboxEntries(e.ctx, "Carol.Lefevre@example.org")
	require.NoError(t, err)
	require.Len(t, mb, 2)
	assert.Equal(t, storage.SourceLocal, mb[0].Source)
	assert.Equal(t, storage.SourceMSSante, mb[1].Source)
	for _, q := range []storage.DirectoryQuery{{Name: "lefevre"}, {Name: "carol"}, {Address: "carol.lefevre@"}} {
		p := e.search(t, q)
		require.Len(t, p.Hits, 1, "%+v", q)
		assert.Equal(t, storage.SourceLocal, p.Hits[0].Mailbox.Source, "%+v", q)
		assert.Equal(t, carol.ID, p.Hits[0].Mailbox.Account)
	}
	assert.Equal(t, map[string]uint64{"carol.lefevre@example.org": 9}, filterKeys(e.hashes(t, storage.KindMailbox, storage.SourceMSSante), "example.org"))

	// When the professional is imported, the address belongs to their hit,
	// which lists the local and the national entries.
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceRPPS, Professionals: []storage.Professional{
		{ID: "899900077777", Identifier: "99900077777", FamilyName: "LEFEVRE", GivenName: "Carole", ProfessionCode: "10"}}}))
	p := e.search(t, storage.DirectoryQuery{Address: "carol.lefevre@example.org"})
	require.Equal(t, []string{"P:LEFEVRE Carole"}, hitNames(p))
	require.Len(t, p.Hits[0].Mailboxes, 2)
	assert.Equal(t, storage.SourceLocal, p.Hits[0].Mailboxes[0].Source)
	assert.Equal(t, []string{"P:LEFEVRE Carole"}, hitNames(e.search(t, storage.DirectoryQuery{Name: "lefevre"})))

	// Deleting the national entry leaves the local one alone.
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceMSSante,
		Delete: []storage.EntryRef{{Kind: storage.KindMailbox, Key: "carol.lefevre@example.org"}}}))
	mb, err = e.s.MailboxEntries(e.ctx, "carol.lefevre@example.org")
	require.NoError(t, err)
	require.Len(t, mb, 1)
	assert.Equal(t, storage.SourceLocal, mb[0].Source)
	assert.Len(t, e.hashes(t, storage.KindMailbox, storage.SourceLocal), 3)
}

func filterKeys(m map[string]uint64, suffix string) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if strings.HasSuffix(k, suffix) {
			out[k] = v
		}
	}
	return out
}

func testDirectoryCertificates(t *testing.T, e *env) {
	addr := "Claire.Martin@valmont.mssante.example"
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	older := storage.Certificate{Address: addr, DER: []byte{0x30, 1, 1}, Fingerprint: "aa01", Subject: "CN=old",
		NotBefore: day, NotAfter: day.AddDate(3, 0, 0), Source: storage.SourceAdmin}
	newer := storage.Certificate{Address: addr, DER: []byte{0x30, 1, 2}, Fingerprint: "bb02", Subject: "CN=new",
		NotBefore: day.AddDate(1, 0, 0), NotAfter: day.AddDate(4, 0, 0), Source: storage.SourceAdmin}
	require.NoError(t, e.s.PutCertificate(e.ctx, older))
	require.NoError(t, e.s.PutCertificate(e.ctx, newer))
	cs, err := e.s.Certificates(e.ctx, "claire.martin@VALMONT.mssante.example")
	require.NoError(t, err)
	require.Len(t, cs, 2)
	assert.Equal(t, "bb02", cs[0].Fingerprint)
	assert.Equal(t, "aa01", cs[1].Fingerprint)
	assert.Equal(t, []byte{0x30, 1, 2}, cs[0].DER)
	assert.True(t, cs[0].NotBefore.Equal(newer.NotBefore))
	assert.True(t, cs[0].NotAfter.Equal(newer.NotAfter))
	assert.False(t, cs[0].Added.IsZero())

	// Same address (other case) and fingerprint: replaced.
	older.Subject = "CN=old, renewed metadata"
	older.Address = strings.ToUpper(addr)
	require.NoError(t, e.s.PutCertificate(e.ctx, older))
	cs, err = e.s.Certificates(e.ctx, addr)
	require.NoError(t, err)
	require.Len(t, cs, 2)
	assert.Equal(t, "CN=old, renewed metadata", cs[1].Subject)

	require.NoError(t, e.s.DeleteCertificate(e.ctx, strings.ToLower(addr), "bb02"))
	require.ErrorIs(t, e.s.DeleteCertificate(e.ctx, addr, "bb02"), storage.ErrNotFound)
	cs, err = e.s.Certificates(e.ctx, addr)
	require.NoError(t, err)
	require.Len(t, cs, 1)
	cs, err = e.s.Certificates(e.ctx, "other@valmont.mssante.example")
	require.NoError(t, err)
	assert.Empty(t, cs)
	require.ErrorIs(t, e.s.PutCertificate(e.ctx, storage.Certificate{Address: addr, Fingerprint: "cc"}), storage.ErrInvalid)
	require.ErrorIs(t, e.s.PutCertificate(e.ctx, storage.Certificate{Address: "nobody", DER: []byte{1}, Fingerprint: "cc"}), storage.ErrInvalid)
}

func testDirectoryTrust(t *testing.T, e *env) {
	updated := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	opA := "cn=mx.operateur-a.example,o=operateur a,c=fr"
	opB := "cn=relay.operateur-b.example,o=operateur b,c=fr"
	entries := []storage.TrustEntry{
		{Domain: "valmont.mssante.example", Description: "CH de Valmont", OperatorDN: "CN=mx.operateur-a.example,O=Operateur A,C=FR", OperatorKey: opA, Updated: updated, Hash: 41},
		{Domain: "Tilleuls.MSSante.example", Description: "MSP des Tilleuls", OperatorDN: "CN=mx.operateur-a.example, O=Operateur A, C=FR", OperatorKey: opA, Hash: 42},
		{Domain: "valmont.mssante.example", Description: "CH de Valmont (relais)", OperatorDN: "CN=relay.operateur-b.example,O=Operateur B,C=FR", OperatorKey: opB, Hash: 43},
		{Domain: "autre.mssante.example", OperatorDN: "CN=relay.operateur-b.example,O=Operateur B,C=FR", OperatorKey: opB, Hash: 44},
	}
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceTrustList, Trust: entries}))

	got, err := e.s.TrustByDomain(e.ctx, "VALMONT.mssante.example.")
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, opA, got[0].OperatorKey)
	assert.Equal(t, opB, got[1].OperatorKey)
	assert.True(t, got[0].Updated.Equal(updated))
	assert.Equal(t, "CH de Valmont", got[0].Description)
	_, err = e.s.TrustByDomain(e.ctx, "unknown.example")
	require.ErrorIs(t, err, storage.ErrNotFound)

	got, err = e.s.TrustByOperator(e.ctx, opA)
	require.NoError(t, err)
	var doms []string
	for _, te := range got {
		doms = append(doms, te.Domain)
	}
	assert.Equal(t, []string{"tilleuls.mssante.example", "valmont.mssante.example"}, doms)
	_, err = e.s.TrustByOperator(e.ctx, "cn=unknown")
	require.ErrorIs(t, err, storage.ErrNotFound)

	doms = nil
	require.NoError(t, e.s.TrustEntries(e.ctx, func(te storage.TrustEntry) error {
		doms = append(doms, te.Domain)
		return nil
	}))
	assert.Equal(t, []string{"autre.mssante.example", "tilleuls.mssante.example", "valmont.mssante.example", "valmont.mssante.example"}, doms)

	h := e.hashes(t, storage.KindTrust, storage.SourceTrustList)
	assert.Equal(t, uint64(43), h["valmont.mssante.example "+opB])
	require.NoError(t, e.s.ApplyDirectory(e.ctx, storage.DirectoryBatch{Source: storage.SourceTrustList,
		Delete: []storage.EntryRef{{Kind: storage.KindTrust, Key: "valmont.mssante.example " + opB}}}))
	got, err = e.s.TrustByDomain(e.ctx, "valmont.mssante.example")
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Len(t, e.hashes(t, storage.KindTrust, storage.SourceTrustList), 3)
}
