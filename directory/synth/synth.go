// Package synth writes synthetic national directory files in the exact
// formats of the real ones (shared/samples/national-files.md): the RPPS
// extraction PS_LibreAcces_Personne_activite, the MSSanté extraction
// Extraction_Correspondance_MSSante and the trust list
// listeblanchemssante.xml. The output is deterministic for a seed.
//
// Everything is synthetic: names are random combinations of common first
// and last names, identifiers are drawn from ranges chosen not to be the
// national registries' (RPPS numbers starting 199, ADELI numbers of the
// department 99, FINESS numbers with 9 as third digit, SIREN numbers
// starting 99), domains and operators are invented.
package synth

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"unicode"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"
)

// Options of a generated file.
type Options struct {
	Rows int    // data lines (trust list: Domaine elements)
	Seed uint64 // same seed, same file
	// Windows1252 writes the pipe-separated files in Windows-1252 instead
	// of UTF-8, as some RPPS extractions were.
	Windows1252 bool
}

// RPPSHeader is the header line of PS_LibreAcces_Personne_activite (52
// columns and a trailing '|').
var RPPSHeader = []string{
	"Type d'identifiant PP", "Identifiant PP", "Identification nationale PP", "Code civilité d'exercice",
	"Libellé civilité d'exercice", "Code civilité", "Libellé civilité", "Nom d'exercice", "Prénom d'exercice",
	"Code profession", "Libellé profession", "Code catégorie professionnelle", "Libellé catégorie professionnelle",
	"Code type savoir-faire", "Libellé type savoir-faire", "Code savoir-faire", "Libellé savoir-faire",
	"Code mode exercice", "Libellé mode exercice", "Numéro SIRET site", "Numéro SIREN site", "Numéro FINESS site",
	"Numéro FINESS établissement juridique", "Identifiant technique de la structure", "Raison sociale site",
	"Enseigne commerciale site", "Complément destinataire (coord. structure)",
	"Complément point géographique (coord. structure)", "Numéro Voie (coord. structure)",
	"Indice répétition voie (coord. structure)", "Code type de voie (coord. structure)",
	"Libellé type de voie (coord. structure)", "Libellé Voie (coord. structure)",
	"Mention distribution (coord. structure)", "Bureau cedex (coord. structure)",
	"Code postal (coord. structure)", "Code commune (coord. structure)", "Libellé commune (coord. structure)",
	"Code pays (coord. structure)", "Libellé pays (coord. structure)", "Téléphone (coord. structure)",
	"Téléphone 2 (coord. structure)", "Télécopie (coord. structure)", "Adresse e-mail (coord. structure)",
	"Code Département (structure)", "Libellé Département (structure)", "Ancien identifiant de la structure",
	"Autorité d'enregistrement", "Code secteur d'activité", "Libellé secteur d'activité",
	"Code section tableau pharmaciens", "Libellé section tableau pharmaciens",
}

// MSSanteHeader is the header line of Extraction_Correspondance_MSSante
// (31 columns).
var MSSanteHeader = []string{
	"Type de BAL", "Adresse BAL", "Type Identifiant PP", "Identifiant PP", "Identification nationale PP",
	"Type identifiant structure", "Identification Structure", "Service de rattachement",
	"Civilité d'exercice", "Nom d'exercice", "Prénom d'exercice", "Catégorie profession",
	"Libellé de catégorie profession", "Code Profession", "Libellé Profession", "Code savoir-faire",
	"Libellé savoir-faire", "Dématérialisation", "Raison Sociale structure BAL",
	"Enseigne commerciale structure BAL", "L2COMPLEMENTLOCALISATION", "L3COMPLEMENTDISTRIBUTION",
	"L4NUMEROVOIE", "L4COMPLEMENTNUMEROVOIE", "NL4TYPEVOIE", "L4LIBELLEVOIE", "L5LIEUDITMENTION",
	"L6LIGNEACHEMINEMENT", "Code postal", "Département", "Pays",
}

var (
	givenNames = []string{
		"Claire", "Hélène", "Zoé", "Jérôme", "Anaïs", "François", "Noël", "Chloé", "Mélanie", "Loïc",
		"Gaëlle", "Jean-Pierre", "Marie-Hélène", "Étienne", "Céline", "Benoît", "Inès", "Raphaël",
		"Thérèse", "Joël", "Léa", "Maëlys", "Hugo", "Camille", "Nathalie", "Sébastien", "Aurélie",
		"Grégoire", "Solène", "Mathéo", "Agnès", "Frédéric", "Béatrice", "Cédric", "Élodie", "Yannick",
		"Josiane", "Kévin", "Sandrine", "Amélie", "Paul", "Lucie", "Thomas", "Manon", "Nicolas", "Sarah",
	}
	familyNames = []string{
		"MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND", "LEROY", "MOREAU",
		"SIMON", "LAURENT", "LEFÈVRE", "MICHEL", "GARCIA", "DAVID", "BERTRAND", "ROUX", "VINCENT", "FOURNIER",
		"MOREL", "GIRARD", "ANDRÉ", "MERCIER", "DUPONT", "LAMBERT", "BONNET", "FRANÇOIS", "MARTINEZ",
		"LE GALL", "LE ROUX", "DE LA FONTAINE", "DE SAINT-JUST", "LECŒUR", "BÉRANGER", "KERGOAT",
		"NGUYEN", "CHÂTEAU", "ÉVRARD", "MÜLLER", "DELACROIX", "FAURE-MARTEL", "PÉRÈS", "HÉBERT",
	}
	professions = []struct{ code, label string }{
		{"10", "Médecin"}, {"10", "Médecin"}, {"10", "Médecin"}, {"21", "Pharmacien"},
		{"40", "Chirurgien-Dentiste"}, {"50", "Sage-Femme"}, {"60", "Infirmier"}, {"60", "Infirmier"},
		{"60", "Infirmier"}, {"70", "Masseur-Kinésithérapeute"}, {"80", "Pédicure-Podologue"}, {"91", "Orthophoniste"},
	}
	specialties = []struct{ code, label string }{
		{"SM54", "Médecine générale"}, {"SM54", "Médecine générale"}, {"SM54", "Médecine générale"},
		{"SM04", "Cardiologie et maladies vasculaires"}, {"SM15", "Dermatologie et vénéréologie"},
		{"SM19", "Gynécologie-obstétrique"}, {"SM40", "Pédiatrie"}, {"SM42", "Psychiatrie"},
		{"SM38", "Ophtalmologie"}, {"SM02", "Anesthésie-réanimation"}, {"SM32", "Neurologie"},
	}
	modes = []struct{ code, label string }{
		{"L", "Libéral, indépendant, artisan, commerçant"}, {"S", "Salarié"}, {"L", "Libéral, indépendant, artisan, commerçant"}, {"B", "Bénévole"},
	}
	places = []struct{ postal, cityCode, city, dept, deptLabel string }{
		{"75011", "75111", "PARIS", "75", "Paris"}, {"69003", "69383", "LYON", "69", "Rhône"},
		{"13005", "13205", "MARSEILLE", "13", "Bouches-du-Rhône"}, {"31000", "31555", "TOULOUSE", "31", "Haute-Garonne"},
		{"33000", "33063", "BORDEAUX", "33", "Gironde"}, {"59000", "59350", "LILLE", "59", "Nord"},
		{"44000", "44109", "NANTES", "44", "Loire-Atlantique"}, {"67000", "67482", "STRASBOURG", "67", "Bas-Rhin"},
		{"34000", "34172", "MONTPELLIER", "34", "Hérault"}, {"35000", "35238", "RENNES", "35", "Ille-et-Vilaine"},
		{"29200", "29019", "BREST", "29", "Finistère"}, {"63000", "63113", "CLERMONT-FERRAND", "63", "Puy-de-Dôme"},
		{"21000", "21231", "DIJON", "21", "Côte-d'Or"}, {"87000", "87085", "LIMOGES", "87", "Haute-Vienne"},
		{"20000", "2A004", "AJACCIO", "2A", "Corse-du-Sud"}, {"97400", "97411", "SAINT-DENIS", "974", "La Réunion"},
		{"06000", "06088", "NICE", "06", "Alpes-Maritimes"}, {"38000", "38185", "GRENOBLE", "38", "Isère"},
		{"76000", "76540", "ROUEN", "76", "Seine-Maritime"}, {"14000", "14118", "CAEN", "14", "Calvados"},
	}
	streetTypes = []struct{ code, label string }{
		{"R", "Rue"}, {"AV", "Avenue"}, {"BD", "Boulevard"}, {"PL", "Place"}, {"CHE", "Chemin"}, {"ALL", "Allée"},
	}
	streets = []string{
		"de la République", "Victor Hugo", "des Lilas", "du Moulin", "Pasteur", "Jean Jaurès", "de la Gare",
		"des Écoles", "Émile Zola", "du Général de Gaulle", "des Tilleuls", "Saint-Éloi", "de l'Église",
	}
	structureKinds = []struct{ name, sectorCode, sector string }{
		{"CABINET MEDICAL", "SA07", "Cabinet individuel"}, {"CABINET DE GROUPE", "SA08", "Cabinet de groupe"},
		{"PHARMACIE", "SA33", "Pharmacie d'officine"}, {"CENTRE HOSPITALIER", "SA01", "Etablissement public de santé"},
		{"CLINIQUE", "SA05", "Etablissement privé non PSPH"}, {"MAISON DE SANTE", "SA52", "Maison de santé"},
		{"EHPAD", "SA29", "Etablissement d'hébergement pour personnes âgées"},
	}
	services = []string{"Cardiologie", "Urgences", "Médecine interne", "Secrétariat", "Pédiatrie", "Gériatrie", "Radiologie"}
)

// structure is a synthetic place of activity.
type structure struct {
	techID, finess, legalFiness, siret, siren   string
	name, trade                                 string
	number, repetition, streetType, streetLabel string
	street                                      string
	place                                       int
	phone, fax, sectorCode, sector              string
}

type gen struct {
	r       *rand.Rand
	seed    uint64
	structs []structure
}

func newGen(seed uint64, rows int) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x5EED)), seed: seed}
	n := max(rows/4, 8)
	g.structs = make([]structure, n)
	for i := range g.structs {
		g.structs[i] = g.structure(i)
	}
	return g
}

func (g *gen) pick(n int) int { return g.r.IntN(n) }

func (g *gen) digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + g.r.IntN(10)))
	}
	return b.String()
}

func (g *gen) structure(i int) structure {
	k := structureKinds[g.pick(len(structureKinds))]
	p := g.pick(len(places))
	st := streetTypes[g.pick(len(streetTypes))]
	dept := places[p].dept
	if len(dept) == 3 {
		dept = "97"
	}
	s := structure{
		name:       k.name + " " + strings.ToUpper(streets[g.pick(len(streets))]),
		number:     fmt.Sprint(1 + g.pick(120)),
		streetType: st.code, streetLabel: st.label,
		street:     strings.ToUpper(streets[g.pick(len(streets))]),
		place:      p,
		phone:      "0" + fmt.Sprint(1+g.pick(5)) + g.digits(8),
		sectorCode: k.sectorCode, sector: k.sector,
	}
	if g.pick(8) == 0 {
		s.repetition = "B"
	}
	if g.pick(3) == 0 {
		s.fax = "0" + fmt.Sprint(1+g.pick(5)) + g.digits(8)
	}
	if g.pick(4) == 0 {
		s.trade = "ESPACE SANTE " + places[p].city
	}
	// Synthetic identifiers: FINESS with 9 as third digit, SIREN from 99.
	switch {
	case k.sectorCode == "SA01" || k.sectorCode == "SA05" || k.sectorCode == "SA29" || k.sectorCode == "SA33":
		s.finess = dept + "9" + fmt.Sprintf("%06d", i%1000000)
		s.legalFiness = dept + "9" + fmt.Sprintf("%06d", (i+500000)%1000000)
		s.siren = "99" + fmt.Sprintf("%07d", i%10000000)
		s.siret = s.siren + g.digits(5)
		s.techID = "F" + s.finess
	case g.pick(2) == 0:
		s.siren = "99" + fmt.Sprintf("%07d", i%10000000)
		s.siret = s.siren + g.digits(5)
		s.techID = "S" + s.siret
	default:
		s.techID = "R" + fmt.Sprintf("10%010d", i)
	}
	return s
}

// person is a synthetic professional.
type person struct {
	typ, id              string
	civCode, civ         string
	sexCode, sex         string
	family, given        string
	profCode, prof       string
	sfType, sfTypeLabel  string
	sfCode, sf           string
	sectionCode, section string
}

// person is the i-th professional of a seed: drawn from its own random
// stream, so that the RPPS and MSSanté files of one seed agree on who
// person i is (the same names behind the same identifier).
func (g *gen) person(i int) person {
	r := rand.New(rand.NewPCG(g.seed, uint64(i)^0x9E3779B97F4A7C15))
	p := person{family: familyNames[r.IntN(len(familyNames))], given: givenNames[r.IntN(len(givenNames))]}
	if r.IntN(10) == 0 {
		p.typ, p.id = "0", "99"+fmt.Sprintf("%07d", i%10000000) // ADELI, department 99
	} else {
		p.typ, p.id = "8", "199"+fmt.Sprintf("%08d", i%100000000) // RPPS from 199
	}
	if r.IntN(2) == 0 {
		p.sexCode, p.sex = "M", "Monsieur"
	} else {
		p.sexCode, p.sex = "MME", "Madame"
	}
	pr := professions[r.IntN(len(professions))]
	p.profCode, p.prof = pr.code, pr.label
	switch pr.code {
	case "10":
		p.civCode, p.civ = "DR", "Docteur"
		sf := specialties[r.IntN(len(specialties))]
		p.sfType, p.sfTypeLabel, p.sfCode, p.sf = "S", "Spécialité ordinale", sf.code, sf.label
	case "40":
		p.civCode, p.civ = "DR", "Docteur"
	case "21":
		if r.IntN(2) == 0 {
			p.civCode, p.civ = "DR", "Docteur"
		}
		if r.IntN(2) == 0 {
			p.sectionCode, p.section = "A", "Pharmacien titulaire d'officine"
		} else {
			p.sectionCode, p.section = "D", "Pharmacien adjoint, gérant, remplaçant"
		}
	}
	return p
}

// writer writes lines in the file's encoding.
type writer struct {
	bw  *bufio.Writer
	enc func(string) string
	err error
}

func newWriter(w io.Writer, win bool) *writer {
	wr := &writer{bw: bufio.NewWriterSize(w, 256<<10), enc: func(s string) string { return s }}
	if win {
		e := charmap.Windows1252.NewEncoder()
		wr.enc = func(s string) string {
			out, err := e.String(s)
			if err != nil {
				return s
			}
			return out
		}
	}
	return wr
}

func (w *writer) line(fields []string, trailing bool) {
	if w.err != nil {
		return
	}
	s := strings.Join(fields, "|")
	if trailing {
		s += "|"
	}
	_, w.err = w.bw.WriteString(w.enc(s) + "\n")
}

func (w *writer) flush() error {
	if w.err != nil {
		return w.err
	}
	return w.bw.Flush()
}

// RPPS writes a PS_LibreAcces_Personne_activite file of o.Rows activity
// lines: about 1.5 lines per person, a person's lines consecutive.
func RPPS(w io.Writer, o Options) error {
	g := newGen(o.Seed, o.Rows)
	wr := newWriter(w, o.Windows1252)
	wr.line(RPPSHeader, true)
	row := make([]string, len(RPPSHeader))
	for i, n := 0, 0; n < o.Rows; i++ {
		p := g.person(i)
		lines := 1
		switch x := g.pick(10); {
		case x >= 9:
			lines = 3
		case x >= 6:
			lines = 2
		}
		used := map[int]bool{}
		for l := 0; l < lines && n < o.Rows; l++ {
			si := g.pick(len(g.structs))
			if used[si] {
				continue
			}
			used[si] = true
			s := &g.structs[si]
			pl := places[s.place]
			m := modes[g.pick(len(modes))]
			clear(row)
			row[0], row[1], row[2] = p.typ, p.id, p.typ+p.id
			row[3], row[4], row[5], row[6] = p.civCode, p.civ, p.sexCode, p.sex
			row[7], row[8] = p.family, p.given
			row[9], row[10], row[11], row[12] = p.profCode, p.prof, "C", "Civil"
			row[13], row[14], row[15], row[16] = p.sfType, p.sfTypeLabel, p.sfCode, p.sf
			row[17], row[18] = m.code, m.label
			row[19], row[20], row[21], row[22], row[23] = s.siret, s.siren, s.finess, s.legalFiness, s.techID
			row[24], row[25] = s.name, s.trade
			row[28], row[29], row[30], row[31], row[32] = s.number, s.repetition, s.streetType, s.streetLabel, s.street
			row[35], row[36], row[37], row[38], row[39] = pl.postal, pl.cityCode, pl.city, "99000", "France"
			row[40], row[42] = s.phone, s.fax
			row[44], row[45] = pl.dept, pl.deptLabel
			row[47] = "RPPS"
			row[48], row[49] = s.sectorCode, s.sector
			row[50], row[51] = p.sectionCode, p.section
			wr.line(row, true)
			n++
		}
	}
	return wr.flush()
}

// ascii folds a name for an e-mail address: "Marie-Hélène" ->
// "marie-helene", "DE LA FONTAINE" -> "delafontaine".
func ascii(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case r == 'Œ' || r == 'œ':
			b.WriteString("oe")
		case r == '-':
			b.WriteByte('-')
		case r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// MSSante writes an Extraction_Correspondance_MSSante file of o.Rows
// mailboxes: about 85% personal (PER), the rest organisational (ORG).
func MSSante(w io.Writer, o Options) error {
	g := newGen(o.Seed, o.Rows)
	wr := newWriter(w, o.Windows1252)
	wr.line(MSSanteHeader, false)
	row := make([]string, len(MSSanteHeader))
	used := map[string]bool{}
	for i := 0; i < o.Rows; i++ {
		clear(row)
		s := &g.structs[g.pick(len(g.structs))]
		pl := places[s.place]
		domain := ascii(strings.ToLower(strings.Fields(s.name)[0])) + "-" + strings.ToLower(ascii(pl.city))
		if g.pick(3) == 0 {
			domain = "medecin"
		}
		var local string
		if g.pick(100) < 85 {
			p := g.person(i)
			local = ascii(p.given) + "." + ascii(p.family)
			row[0] = "PER"
			row[2], row[3], row[4] = p.typ, p.id, p.typ+p.id
			row[8], row[9], row[10] = p.civ, p.family, p.given
			row[11], row[12] = "C", "Civil"
			row[13], row[14], row[15], row[16] = p.profCode, p.prof, p.sfCode, p.sf
		} else {
			svc := services[g.pick(len(services))]
			local = "secretariat." + ascii(svc)
			row[0] = "ORG"
			row[7] = svc
		}
		addr := local + "@" + domain + ".mssante.fr"
		for k := 2; used[addr]; k++ {
			addr = fmt.Sprintf("%s%d@%s.mssante.fr", local, k, domain)
		}
		used[addr] = true
		row[1] = addr
		switch {
		case s.finess != "":
			row[5], row[6] = "1", s.finess
		case s.siret != "":
			row[5], row[6] = "3", s.siret
		default:
			row[5], row[6] = "4", s.techID[1:]
		}
		if g.pick(2) == 0 {
			row[17] = "O"
		} else {
			row[17] = "N"
		}
		row[18], row[19] = s.name, s.trade
		row[22], row[23], row[24], row[25] = s.number, s.repetition, s.streetLabel, s.street
		row[27] = pl.postal + " " + pl.city
		if g.pick(10) == 0 {
			row[27] += " CEDEX"
		}
		row[28], row[29], row[30] = pl.postal, pl.dept, "FRANCE"
		wr.line(row, false)
	}
	return wr.flush()
}

// TrustList writes a listeblanchemssante.xml of o.Rows Domaine elements
// for about o.Rows/16+1 operators; a few domains are listed under two
// operators, as in the real list.
func TrustList(w io.Writer, o Options) error {
	g := newGen(o.Seed, 32)
	bw := bufio.NewWriter(w)
	ops := max(o.Rows/16, 1)
	type op struct{ dn, resp, support string }
	operators := make([]op, ops)
	for i := range operators {
		pl := places[g.pick(len(places))]
		name := fmt.Sprintf("Opérateur Synthétique %d", i+1)
		host := fmt.Sprintf("mx%d.operateur-synth.example", i+1)
		operators[i] = op{
			dn:      fmt.Sprintf("CN=%s,OU=99%012d,O=%s,ST=%s (%s),C=FR", host, i, escapeDN(name), escapeDN(pl.deptLabel), pl.dept),
			resp:    fmt.Sprintf("01 99 00 %02d %02d, contact@operateur-synth-%d.example", i/100%100, i%100, i+1),
			support: fmt.Sprintf("01 99 01 %02d %02d, support@operateur-synth-%d.example", i/100%100, i%100, i+1),
		}
	}
	fmt.Fprintf(bw, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListeBlancheMSSante xmlns=\"https://listeblanche.mssante.fr/schema\">\n")
	fmt.Fprintf(bw, "    <DateDeGeneration>2026-01-15T08:00:00Z</DateDeGeneration>\n    <ListeDomaines>\n")
	domain, prev, reused := "", -1, false
	for i := 0; i < o.Rows; i++ {
		oi := g.pick(len(operators))
		if domain != "" && !reused && g.pick(20) == 0 && len(operators) > 1 {
			// The same domain under a second operator.
			if oi == prev {
				oi = (oi + 1) % len(operators)
			}
			reused = true
		} else {
			reused = false
			s := g.structs[g.pick(len(g.structs))]
			domain = fmt.Sprintf("%s-%d.mssante.fr", ascii(strings.ToLower(strings.Fields(s.name)[0])), i)
		}
		prev = oi
		op := operators[oi]
		desc := strings.ToUpper(structureKinds[g.pick(len(structureKinds))].name + " " + streets[g.pick(len(streets))])
		fmt.Fprintf(bw, "        <Domaine>\n            <Nom>%s</Nom>\n            <Description>%s</Description>\n", domain, xmlEscape(desc))
		fmt.Fprintf(bw, "            <DNCertificatOperateur>%s</DNCertificatOperateur>\n", xmlEscape(op.dn))
		fmt.Fprintf(bw, "            <ResponsableContact>%s</ResponsableContact>\n            <SupportContact>%s</SupportContact>\n", op.resp, op.support)
		fmt.Fprintf(bw, "            <DateMAJ>2026-01-%02dT%02d:00:00Z</DateMAJ>\n        </Domaine>\n", 1+g.pick(14), g.pick(24))
	}
	fmt.Fprintf(bw, "    </ListeDomaines>\n</ListeBlancheMSSante>\n")
	return bw.Flush()
}

func escapeDN(s string) string {
	return strings.NewReplacer(",", `\,`, "+", `\+`, ";", `\;`).Replace(s)
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
