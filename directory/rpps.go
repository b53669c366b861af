package directory

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/relais-mssante/relais/storage"
)

// Columns of PS_LibreAcces_Personne_activite (the RPPS/ADELI extraction of
// the Annuaire Santé, 52 columns with a trailing '|'); see
// shared/samples/national-files.md. Indices into rppsColumns.
const (
	rTypeID = iota
	rID
	rNatID
	rCivCode
	rCiv
	rFamily
	rGiven
	rProfCode
	rProf
	rCatCode
	rCat
	rSFCode
	rSF
	rModeCode
	rMode
	rSIRET
	rSIREN
	rFINESS
	rLegalFINESS
	rStructID
	rName
	rTrade
	rRecipient
	rLocation
	rNumber
	rRepetition
	rStreetType
	rStreet
	rDistribution
	rCedex
	rPostal
	rCityCode
	rCity
	rCountry
	rPhone
	rFax
	rEmail
	rDept
	rSectorCode
	rSector
	rSectionCode
	rSection
)

var rppsColumns = []column{
	rTypeID:       {names: []string{"typedidentifiantpp", "typeidentifiantpp"}, required: true},
	rID:           {names: []string{"identifiantpp"}, required: true},
	rNatID:        {names: []string{"identificationnationalepp"}, required: true},
	rCivCode:      {names: []string{"codecivilitedexercice"}},
	rCiv:          {names: []string{"libellecivilitedexercice"}},
	rFamily:       {names: []string{"nomdexercice"}, required: true},
	rGiven:        {names: []string{"prenomdexercice"}, required: true},
	rProfCode:     {names: []string{"codeprofession"}},
	rProf:         {names: []string{"libelleprofession"}},
	rCatCode:      {names: []string{"codecategorieprofessionnelle"}},
	rCat:          {names: []string{"libellecategorieprofessionnelle"}},
	rSFCode:       {names: []string{"codesavoirfaire"}},
	rSF:           {names: []string{"libellesavoirfaire"}},
	rModeCode:     {names: []string{"codemodeexercice"}},
	rMode:         {names: []string{"libellemodeexercice"}},
	rSIRET:        {names: []string{"numerosiretsite"}},
	rSIREN:        {names: []string{"numerosirensite"}},
	rFINESS:       {names: []string{"numerofinesssite"}},
	rLegalFINESS:  {names: []string{"numerofinessetablissementjuridique"}},
	rStructID:     {names: []string{"identifianttechniquedelastructure"}},
	rName:         {names: []string{"raisonsocialesite"}},
	rTrade:        {names: []string{"enseignecommercialesite"}},
	rRecipient:    {names: []string{"complementdestinataire"}},
	rLocation:     {names: []string{"complementpointgeographique"}},
	rNumber:       {names: []string{"numerovoie"}},
	rRepetition:   {names: []string{"indicerepetitionvoie"}},
	rStreetType:   {names: []string{"libelletypedevoie"}},
	rStreet:       {names: []string{"libellevoie"}},
	rDistribution: {names: []string{"mentiondistribution"}},
	rCedex:        {names: []string{"bureaucedex"}},
	rPostal:       {names: []string{"codepostal"}},
	rCityCode:     {names: []string{"codecommune"}},
	rCity:         {names: []string{"libellecommune"}},
	rCountry:      {names: []string{"libellepays"}},
	rPhone:        {names: []string{"telephone"}},
	rFax:          {names: []string{"telecopie"}},
	rEmail:        {names: []string{"adresseemail"}},
	rDept:         {names: []string{"libelledepartementstructure", "libelledepartement", "codedepartementstructure", "codedepartement"}},
	rSectorCode:   {names: []string{"codesecteurdactivite"}},
	rSector:       {names: []string{"libellesecteurdactivite"}},
	rSectionCode:  {names: []string{"codesectiontableaupharmaciens"}},
	rSection:      {names: []string{"libellesectiontableaupharmaciens"}},
}

// rppsOrgID is the organisation of an activity line: "Identifiant
// technique de la structure"; without it the FINESS of the site, then the
// SIRET, each as its structure identifier type (1 FINESS, 3 SIRET) +
// value, as the MSSanté extraction names structures; "" for none.
func rppsOrgID(idx []int, f []string) string {
	switch {
	case get(f, idx, rStructID) != "":
		return get(f, idx, rStructID)
	case get(f, idx, rFINESS) != "":
		return "1" + get(f, idx, rFINESS)
	case get(f, idx, rSIRET) != "":
		return "3" + get(f, idx, rSIRET)
	}
	return ""
}

// rppsRecord is one valid line of the RPPS extraction.
type rppsRecord struct {
	prof storage.Professional
	org  storage.Organisation // ID "" when the activity has no structure
	act  storage.Activity
	line uint64 // digest of the whole line, to recognise a repeated line
}

// rowError is a rejected row: why, and the identifier read from it, if any.
type rowError struct {
	key    string
	reason string
}

// nationalID checks a professional identifier: type "8" with an 11-digit
// RPPS number, or type "0" with a 9-character ADELI number (digits, "2A"
// and "2B" for Corsica). It returns the ID type and the national ID.
func nationalID(typ, id string) (idType, natID string, err error) {
	switch typ {
	case "8":
		idType = storage.IDTypeRPPS
		if len(id) != 11 || !allDigits(id) {
			return "", "", fmt.Errorf("bad RPPS number %q (want 11 digits)", id)
		}
	case "0":
		idType = storage.IDTypeADELI
		if len(id) != 9 || !alnumUpper(id) {
			return "", "", fmt.Errorf("bad ADELI number %q (want 9 characters)", id)
		}
	default:
		return "", "", fmt.Errorf("bad identifier type %q (want 0 ADELI or 8 RPPS)", typ)
	}
	return idType, typ + id, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func alnumUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return s != ""
}

// validNatID reports whether s looks like an "Identification nationale
// PP", for reading the key of a row that is otherwise unusable.
func validNatID(s string) bool {
	if len(s) < 2 {
		return false
	}
	_, _, err := nationalID(s[:1], s[1:])
	return err == nil
}

// parseRPPSRow reads one line of the RPPS extraction (fields has exactly
// the header's width).
func parseRPPSRow(idx []int, f []string) (rppsRecord, *rowError) {
	g := func(c int) string { return get(f, idx, c) }
	typ, id, nat := g(rTypeID), g(rID), g(rNatID)
	key := ""
	if validNatID(nat) {
		key = nat
	}
	if id == "" {
		return rppsRecord{}, &rowError{key, "empty \"Identifiant PP\""}
	}
	idType, derived, err := nationalID(typ, id)
	if err != nil {
		return rppsRecord{}, &rowError{key, err.Error()}
	}
	if nat == "" {
		nat = derived
	} else if nat != derived {
		return rppsRecord{}, &rowError{key, fmt.Sprintf("\"Identification nationale PP\" %q is not type %q + identifier %q", nat, typ, id)}
	}
	var rec rppsRecord
	rec.prof = storage.Professional{
		ID: nat, IDType: idType, Identifier: id,
		CivilityCode: g(rCivCode), Civility: g(rCiv),
		FamilyName: g(rFamily), GivenName: g(rGiven),
		ProfessionCode: g(rProfCode), Profession: g(rProf),
		CategoryCode: g(rCatCode), Category: g(rCat),
		SpecialtyCode: g(rSFCode), Specialty: g(rSF),
	}
	if rec.prof.FamilyName == "" {
		return rppsRecord{}, &rowError{nat, "empty \"Nom d'exercice\""}
	}
	o := storage.Organisation{
		FINESS: g(rFINESS), LegalFINESS: g(rLegalFINESS), SIRET: g(rSIRET), SIREN: g(rSIREN),
		Name: g(rName), TradeName: g(rTrade),
		Address: storage.PostalAddress{
			Recipient: g(rRecipient), Location: g(rLocation), Number: g(rNumber), Repetition: g(rRepetition),
			StreetType: g(rStreetType), Street: g(rStreet), Distribution: g(rDistribution), Cedex: g(rCedex),
			PostalCode: g(rPostal), CityCode: g(rCityCode), City: g(rCity), Department: g(rDept), Country: g(rCountry),
		},
		Phone: g(rPhone), Fax: g(rFax), Email: g(rEmail),
		SectorCode: g(rSectorCode), Sector: g(rSector),
	}
	o.ID = rppsOrgID(idx, f)
	if o.ID != "" {
		h := newHasher()
		h.add(o.ID, o.FINESS, o.LegalFINESS, o.SIRET, o.SIREN, o.Name, o.TradeName)
		h.addAddress(&o.Address)
		h.add(o.Phone, o.Fax, o.Email, o.SectorCode, o.Sector)
		o.Hash = h.sum()
		rec.org = o
	}
	rec.act = storage.Activity{
		Professional: nat,
		Key:          o.ID + "|" + g(rModeCode) + "|" + g(rSectionCode),
		Organisation: o.ID,
		ModeCode:     g(rModeCode), Mode: g(rMode),
		SectionCode: g(rSectionCode), Section: g(rSection),
		PostalCode: o.Address.PostalCode, City: o.Address.City,
	}
	rec.act.Hash = activityHash(&rec.act)
	h := newHasher()
	h.add(f...)
	rec.line = h.sum()
	return rec, nil
}

func activityHash(a *storage.Activity) uint64 {
	h := newHasher()
	h.add(a.Professional, a.Key, a.Organisation, a.ModeCode, a.Mode, a.SectionCode, a.Section, a.Role, a.PostalCode, a.City)
	return h.sum()
}

func professionalHash(p *storage.Professional) uint64 {
	h := newHasher()
	h.add(p.ID, p.IDType, p.Identifier, p.CivilityCode, p.Civility, p.FamilyName, p.GivenName,
		p.ProfessionCode, p.Profession, p.CategoryCode, p.Category, p.SpecialtyCode, p.Specialty)
	return h.sum()
}

func namesHash(p *storage.Professional) uint64 {
	h := newHasher()
	h.add(p.FamilyName, p.GivenName)
	return h.sum()
}

// fillBlanks completes p with what another line of the same person gives.
func fillBlanks(p *storage.Professional, q *storage.Professional) {
	for _, f := range [][2]*string{
		{&p.CivilityCode, &q.CivilityCode}, {&p.Civility, &q.Civility},
		{&p.ProfessionCode, &q.ProfessionCode}, {&p.Profession, &q.Profession},
		{&p.CategoryCode, &q.CategoryCode}, {&p.Category, &q.Category},
		{&p.SpecialtyCode, &q.SpecialtyCode}, {&p.Specialty, &q.Specialty},
	} {
		if *f[0] == "" {
			*f[0] = *f[1]
		}
	}
}

// rppsRun is the run of consecutive lines of one person: the professional
// is written once the run ends (its lines may complete it), and its
// activities with it, so that a batch never holds an activity without its
// professional.
type rppsRun struct {
	prof  storage.Professional
	names uint64
	line  int
	acts  []storage.Activity
	open  bool
}

func (im *importer) importRPPS(r io.Reader) error {
	if err := im.load(storage.KindActivity, storage.KindProfessional, storage.KindOrganisation); err != nil {
		return err
	}
	pf, header, err := openPipeFile(r, im.opts.MaxLine)
	if err != nil {
		return err
	}
	im.sum.Encoding = pf.lr.Encoding()
	im.bytes = pf.lr.Bytes
	idx, err := headerIndex(header, rppsColumns)
	if err != nil {
		return err
	}
	profs, acts, orgs := im.tables[storage.KindProfessional], im.tables[storage.KindActivity], im.tables[storage.KindOrganisation]
	var run rppsRun
	endRun := func() error {
		if !run.open {
			return nil
		}
		run.open = false
		run.prof.Hash = professionalHash(&run.prof)
		st, h := profs.lookup(run.prof.ID)
		if profs.record(h, st, run.prof.Hash, run.line, run.names) {
			im.batch.Professionals = append(im.batch.Professionals, run.prof)
			im.pending++
		}
		im.batch.Activities = append(im.batch.Activities, run.acts...)
		im.pending += len(run.acts)
		run.acts = run.acts[:0]
		return im.maybeFlush()
	}
	for {
		row, err := pf.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := im.row(); err != nil {
			return err
		}
		if row.reason != "" {
			key := ""
			if i := idx[rNatID]; i < len(row.raw) && validNatID(strings.TrimSpace(row.raw[i])) {
				key = strings.TrimSpace(row.raw[i])
			}
			im.rejectRPPS(row.num, key, "", "", false, row.reason)
			continue
		}
		rec, rerr := parseRPPSRow(idx, row.fields)
		if rerr != nil {
			im.rejectRPPS(row.num, rerr.key, "", rppsOrgID(idx, row.fields), true, rerr.reason)
			continue
		}
		actKey := rec.prof.ID + "/" + rec.act.Key
		names := namesHash(&rec.prof)
		if !run.open || run.prof.ID != rec.prof.ID {
			if err := endRun(); err != nil {
				return err
			}
			if st, _ := profs.lookup(rec.prof.ID); st.flags&seen != 0 && st.flags&protected == 0 {
				// The person again, after other people's lines: the
				// professional is written already.
				if st.aux != names {
					im.rejectRPPS(row.num, rec.prof.ID, actKey, rec.org.ID, true, fmt.Sprintf("names differ from line %d for the same person", st.line))
					continue
				}
			} else {
				run = rppsRun{prof: rec.prof, names: names, line: row.num, acts: run.acts[:0], open: true}
			}
		} else if run.names != names {
			im.rejectRPPS(row.num, rec.prof.ID, actKey, rec.org.ID, true, fmt.Sprintf("names differ from line %d for the same person", run.line))
			continue
		} else {
			fillBlanks(&run.prof, &rec.prof)
		}
		// The activity.
		st, h := acts.lookup(actKey)
		if st.flags&seen != 0 && st.flags&protected == 0 {
			if st.aux == rec.line {
				im.reject(row.num, actKey, fmt.Sprintf("duplicate of line %d", st.line))
			}
			// Otherwise the same activity with another savoir-faire: the
			// professional has it already.
			continue
		}
		if acts.record(h, st, rec.act.Hash, row.num, rec.line) {
			if run.open && run.prof.ID == rec.prof.ID {
				run.acts = append(run.acts, rec.act)
			} else {
				im.batch.Activities = append(im.batch.Activities, rec.act)
				im.pending++
			}
		}
		// Its organisation, the first time the file names it.
		if rec.org.ID != "" {
			ost, oh := orgs.lookup(rec.org.ID)
			if ost.flags&seen == 0 || ost.flags&protected != 0 {
				if orgs.record(oh, ost, rec.org.Hash, row.num, 0) {
					im.batch.Organisations = append(im.batch.Organisations, rec.org)
					im.pending++
				}
			}
		}
	}
	return endRun()
}

// rejectRPPS rejects a row and protects what it names from removal: the
// professional (and, lacking a readable activity, all its activities), and
// its organisation; when the organisation cannot be read, no organisation
// is removed, since the protected activities may refer to any.
func (im *importer) rejectRPPS(line int, profID, actKey, orgID string, orgKnown bool, reason string) {
	im.reject(line, profID, reason)
	if profID == "" {
		return
	}
	if orgID != "" {
		im.tables[storage.KindOrganisation].protect(orgID)
	}
	if !orgKnown && im.keep[storage.KindOrganisation] == "" {
		im.keep[storage.KindOrganisation] = "rejected rows may refer to them"
	}
	im.tables[storage.KindProfessional].protect(profID)
	if actKey != "" {
		im.tables[storage.KindActivity].protect(actKey)
		return
	}
	im.protectedProfs[profID] = true
}
