package directory

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/relais-mssante/relais/storage"
)

// Columns of Extraction_Correspondance_MSSante (the MSSanté mailboxes of
// the Annuaire Santé, 31 columns); see shared/samples/national-files.md.
const (
	mType = iota
	mAddress
	mPPType
	mPPID
	mNatID
	mStructType
	mStructID
	mService
	mCivility
	mFamily
	mGiven
	mProfCode
	mProf
	mSFCode
	mSF
	mDigitization
	mName
	mTrade
	mL2
	mL3
	mL4Number
	mL4Repetition
	mL4Type
	mL4Street
	mL5
	mL6
	mPostal
	mDept
	mCountry
)

var mssanteColumns = []column{
	mType:         {names: []string{"typedebal", "typebal"}, required: true},
	mAddress:      {names: []string{"adressebal"}, required: true},
	mPPType:       {names: []string{"typeidentifiantpp", "typedidentifiantpp"}},
	mPPID:         {names: []string{"identifiantpp"}},
	mNatID:        {names: []string{"identificationnationalepp"}},
	mStructType:   {names: []string{"typeidentifiantstructure"}},
	mStructID:     {names: []string{"identificationstructure", "identifiantstructure"}},
	mService:      {names: []string{"servicederattachement"}},
	mCivility:     {names: []string{"civilitedexercice"}},
	mFamily:       {names: []string{"nomdexercice"}},
	mGiven:        {names: []string{"prenomdexercice"}},
	mProfCode:     {names: []string{"codeprofession"}},
	mProf:         {names: []string{"libelleprofession"}},
	mSFCode:       {names: []string{"codesavoirfaire"}},
	mSF:           {names: []string{"libellesavoirfaire"}},
	mDigitization: {names: []string{"dematerialisation"}},
	mName:         {names: []string{"raisonsociale"}},
	mTrade:        {names: []string{"enseignecommerciale"}},
	mL2:           {names: []string{"l2complementlocalisation"}},
	mL3:           {names: []string{"l3complementdistribution"}},
	mL4Number:     {names: []string{"l4numerovoie"}},
	mL4Repetition: {names: []string{"l4complementnumerovoie"}},
	mL4Type:       {names: []string{"nl4typevoie", "l4typevoie"}},
	mL4Street:     {names: []string{"l4libellevoie"}},
	mL5:           {names: []string{"l5lieuditmention"}},
	mL6:           {names: []string{"l6ligneacheminement"}},
	mPostal:       {names: []string{"codepostal"}},
	mDept:         {names: []string{"departement"}},
	mCountry:      {names: []string{"pays"}},
}

// maxAddress is the longest address accepted (RFC 5321 4.5.3.1.3 path
// limit, less the brackets).
const maxAddress = 254

// checkAddress validates the address of a mailbox: local@domain, no
// space, at most one '@'.
func checkAddress(a string) error {
	local, domain, ok := strings.Cut(a, "@")
	switch {
	case a == "":
		return errors.New("empty \"Adresse BAL\"")
	case len(a) > maxAddress:
		return fmt.Errorf("address longer than %d bytes", maxAddress)
	case !ok || local == "" || domain == "" || strings.Contains(domain, "@"):
		return fmt.Errorf("bad address %q", a)
	case strings.ContainsAny(a, " \t\"<>,;"):
		return fmt.Errorf("bad character in address %q", a)
	case !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, "."):
		return fmt.Errorf("bad domain in address %q", a)
	}
	return nil
}

// parseMSSanteRow reads one line of the MSSanté extraction.
func parseMSSanteRow(idx []int, f []string) (storage.MailboxEntry, *rowError) {
	g := func(c int) string { return get(f, idx, c) }
	addr := g(mAddress)
	key := ""
	if checkAddress(addr) == nil {
		key = strings.ToLower(addr)
	}
	if err := checkAddress(addr); err != nil {
		return storage.MailboxEntry{}, &rowError{key, err.Error()}
	}
	typ := strings.ToUpper(g(mType))
	switch typ {
	case storage.MailboxPersonal, storage.MailboxOrganisational, storage.MailboxApplicative, storage.MailboxPractice:
	default:
		return storage.MailboxEntry{}, &rowError{key, fmt.Sprintf("bad \"Type de BAL\" %q (want PER, ORG, APP or CAB)", g(mType))}
	}
	m := storage.MailboxEntry{
		Address: addr, Type: typ,
		Professional: g(mNatID),
		Service:      g(mService),
		Civility:     g(mCivility), FamilyName: g(mFamily), GivenName: g(mGiven),
		ProfessionCode: g(mProfCode), Profession: g(mProf),
		SpecialtyCode: g(mSFCode), Specialty: g(mSF),
		OrganisationName: g(mName),
		Digitization:     yes(g(mDigitization)),
		StructureAddress: storage.PostalAddress{
			Recipient: g(mL2), Location: g(mL3),
			Number: g(mL4Number), Repetition: g(mL4Repetition), StreetType: g(mL4Type), Street: g(mL4Street),
			Distribution: g(mL5), Cedex: g(mL6),
			PostalCode: g(mPostal), Department: g(mDept), Country: g(mCountry),
		},
	}
	if m.Professional == "" && g(mPPType) != "" && g(mPPID) != "" {
		m.Professional = g(mPPType) + g(mPPID)
	}
	if t, id := g(mStructType), g(mStructID); t != "" && id != "" {
		m.Organisation = t + id // the storage.Organisation convention: type digit + value
	}
	if trade := g(mTrade); trade != "" && trade != m.OrganisationName {
		m.Description = trade
	}
	// The L6 line is "postcode CITY [CEDEX n]" (AFNOR XP Z10-011).
	postal, city := splitL6(m.StructureAddress.Cedex)
	if m.StructureAddress.PostalCode == "" {
		m.StructureAddress.PostalCode = postal
	}
	m.StructureAddress.City = city
	m.Hash = mailboxHash(&m)
	return m, nil
}

// splitL6 splits an AFNOR line 6 ("75011 PARIS", "69437 LYON CEDEX 03")
// into its postcode and its city.
func splitL6(l6 string) (postal, city string) {
	l6 = strings.Join(strings.Fields(l6), " ")
	if len(l6) >= 5 && allDigits(l6[:5]) && (len(l6) == 5 || l6[5] == ' ') {
		postal, l6 = l6[:5], strings.TrimSpace(l6[5:])
	} else if len(l6) >= 5 && (l6[:2] == "2A" || l6[:2] == "2B") && allDigits(l6[2:5]) {
		postal, l6 = l6[:5], strings.TrimSpace(l6[5:])
	}
	if i := strings.Index(strings.ToUpper(l6), " CEDEX"); i >= 0 {
		l6 = l6[:i]
	} else if strings.EqualFold(l6, "CEDEX") || strings.HasPrefix(strings.ToUpper(l6), "CEDEX ") {
		l6 = ""
	}
	return postal, l6
}

func yes(s string) bool {
	switch strings.ToUpper(s) {
	case "O", "OUI", "Y", "YES", "TRUE", "VRAI", "1":
		return true
	}
	return false
}

func mailboxHash(m *storage.MailboxEntry) uint64 {
	h := newHasher()
	h.add(m.Address, m.Type, m.Professional, m.Organisation, m.Service, m.Description,
		m.Civility, m.FamilyName, m.GivenName, m.ProfessionCode, m.Profession, m.SpecialtyCode, m.Specialty,
		m.OrganisationName, strconv.FormatBool(m.Digitization), strconv.FormatInt(int64(m.Account), 10))
	h.addAddress(&m.StructureAddress)
	return h.sum()
}

func (im *importer) importMSSante(r io.Reader) error {
	if err := im.load(storage.KindMailbox); err != nil {
		return err
	}
	pf, header, err := openPipeFile(r, im.opts.MaxLine)
	if err != nil {
		return err
	}
	im.sum.Encoding = pf.lr.Encoding()
	im.bytes = pf.lr.Bytes
	idx, err := headerIndex(header, mssanteColumns)
	if err != nil {
		return err
	}
	boxes := im.tables[storage.KindMailbox]
	for {
		row, err := pf.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := im.row(); err != nil {
			return err
		}
		if row.reason != "" {
			key := ""
			if i := idx[mAddress]; i < len(row.raw) && checkAddress(strings.TrimSpace(row.raw[i])) == nil {
				key = strings.ToLower(strings.TrimSpace(row.raw[i]))
			}
			im.rejectKey(boxes, row.num, key, row.reason)
			continue
		}
		m, rerr := parseMSSanteRow(idx, row.fields)
		if rerr != nil {
			im.rejectKey(boxes, row.num, rerr.key, rerr.reason)
			continue
		}
		key := strings.ToLower(m.Address)
		st, h := boxes.lookup(key)
		if st.flags&seen != 0 && st.flags&protected == 0 {
			im.reject(row.num, key, fmt.Sprintf("duplicate address (first at line %d)", st.line))
			continue
		}
		if boxes.record(h, st, m.Hash, row.num, 0) {
			im.batch.Mailboxes = append(im.batch.Mailboxes, m)
			im.pending++
			if err := im.maybeFlush(); err != nil {
				return err
			}
		}
	}
}

// rejectKey rejects a row and protects the entry it names from removal.
func (im *importer) rejectKey(t *table, line int, key, reason string) {
	im.reject(line, key, reason)
	if key != "" {
		t.protect(key)
	}
}
