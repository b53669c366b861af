package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/storage"
)

func runDirectorySearch(e *env, args []string) error {
	fs := newFlags(e, "directory search", "QUERY... [--data DIR] [--limit N] [--page N] [--json]",
		`search the directory: name prefixes ("mart cla"), an identifier (RPPS, FINESS, SIRET), an address prefix (x@), a postcode or département, or key:value terms (profession:10 specialty:SM54 city:lyon)`)
	data := dataFlag(fs)
	limit := fs.Int("limit", 20, "results per page (at most 200)")
	page := fs.Int("page", 1, "page `N` of the results")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || *limit < 1 || *limit > 200 || *page < 1 {
		fs.Usage()
		return errUsage
	}
	q := directory.ParseQuery(strings.Join(pos, " "))
	q.Limit = *limit
	q.Offset = (*page - 1) * *limit
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := st.SearchDirectory(context.Background(), q)
	if errors.Is(err, storage.ErrInvalid) {
		return fmt.Errorf("nothing to search for in %q", strings.Join(pos, " "))
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if len(res.Hits) == 0 {
		fmt.Fprintln(e.stdout, "no match")
		return nil
	}
	for _, h := range res.Hits {
		printHit(e.stdout, h)
	}
	if res.More {
		fmt.Fprintf(e.stdout, "more results: --page %d\n", *page+1)
	}
	return nil
}

// printHit writes one result as a short block: who, what, where, addresses.
func printHit(w io.Writer, h storage.DirectoryHit) {
	switch h.Kind {
	case storage.KindProfessional:
		p := h.Professional
		fmt.Fprintf(w, "%s  %s %s", joinNonEmpty(" ", p.Civility, p.GivenName, p.FamilyName), p.IDType, p.Identifier)
		fmt.Fprintln(w)
		if what := joinNonEmpty(", ", p.Profession, p.Specialty); what != "" {
			fmt.Fprintf(w, "    %s\n", what)
		}
		sites := map[string]storage.Organisation{}
		for _, o := range h.Sites {
			sites[o.ID] = o
		}
		for _, a := range h.Activities {
			o := sites[a.Organisation]
			fmt.Fprintf(w, "    %s\n", joinNonEmpty(", ", a.Mode, o.Name, joinNonEmpty(" ", a.PostalCode, a.City)))
		}
	case storage.KindOrganisation:
		o := h.Organisation
		fmt.Fprintf(w, "%s  %s\n", joinNonEmpty(" / ", o.Name, o.TradeName), joinNonEmpty(" ", prefixed("FINESS ", o.FINESS), prefixed("SIRET ", o.SIRET)))
		if where := joinNonEmpty(" ", o.Address.PostalCode, o.Address.City); where != "" {
			fmt.Fprintf(w, "    %s\n", where)
		}
	case storage.KindMailbox:
		m := h.Mailbox
		name := joinNonEmpty(" ", m.Civility, m.GivenName, m.FamilyName)
		if name == "" {
			name = m.OrganisationName
		}
		fmt.Fprintf(w, "%s  <%s> %s\n", name, m.Address, m.Type)
		if what := joinNonEmpty(", ", m.Profession, m.Specialty, m.Service); what != "" {
			fmt.Fprintf(w, "    %s\n", what)
		}
	}
	for _, m := range h.Mailboxes {
		fmt.Fprintf(w, "    <%s> %s\n", m.Address, m.Type)
	}
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func runCertAdd(e *env, args []string) error {
	fs := newFlags(e, "directory cert add", "ADDRESS FILE [--data DIR]",
		"attach a certificate (PEM or DER) to an address: the LDAP address book publishes it as userCertificate;binary")
	data := dataFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return errUsage
	}
	address, err := normalizeAddress(pos[0])
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(pos[1])
	if err != nil {
		return fmt.Errorf("reading the certificate: %w", err)
	}
	certs, err := pki.ParseCertificates(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[1], err)
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, c := range certs {
		// A subject that is not a DN still attaches, without its text.
		rec, _ := directoryCertificate(address, c)
		if err := st.PutCertificate(context.Background(), rec); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "attached to %s: %s (sha256 %s, valid until %s)\n", address, rec.Subject, rec.Fingerprint, c.NotAfter.Format(time.DateOnly))
	}
	return nil
}

func runCertList(e *env, args []string) error {
	fs := newFlags(e, "directory cert list", "ADDRESS [--data DIR]", "list the certificates attached to an address")
	data := dataFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	certs, err := st.Certificates(context.Background(), pos[0])
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHA-256\tNOT AFTER\tSUBJECT")
	for _, c := range certs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Fingerprint, c.NotAfter.Format(time.DateOnly), c.Subject)
	}
	return tw.Flush()
}

func runCertRemove(e *env, args []string) error {
	fs := newFlags(e, "directory cert remove", "ADDRESS SHA256 [--data DIR]", "detach a certificate from an address")
	data := dataFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return errUsage
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.DeleteCertificate(context.Background(), pos[0], strings.ToLower(pos[1])); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no certificate %s on %s", pos[1], pos[0])
		}
		return err
	}
	fmt.Fprintf(e.stdout, "certificate %s removed from %s\n", pos[1], pos[0])
	return nil
}

func runTrustList(e *env, args []string) error {
	fs := newFlags(e, "trust list", "[--data DIR] [--operators]", "list the domains of the MSSanté trust space (import it with \"relais directory import --kind trustlist\")")
	data := dataFlag(fs)
	operators := fs.Bool("operators", false, "list the operators (certificate DNs) and their number of domains instead")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return orUsage(fs, err)
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	n := 0
	if *operators {
		counts := map[string]int{}
		var order []string
		err = st.TrustEntries(context.Background(), func(t storage.TrustEntry) error {
			if _, ok := counts[t.OperatorDN]; !ok {
				order = append(order, t.OperatorDN)
			}
			counts[t.OperatorDN]++
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "DOMAINS\tOPERATOR CERTIFICATE DN")
		for _, dn := range order {
			fmt.Fprintf(tw, "%d\t%s\n", counts[dn], dn)
		}
		n = len(order)
	} else {
		fmt.Fprintln(tw, "DOMAIN\tDESCRIPTION\tOPERATOR CERTIFICATE DN")
		err = st.TrustEntries(context.Background(), func(t storage.TrustEntry) error {
			n++
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Domain, t.Description, t.OperatorDN)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(e.stderr, "the trust list is empty: import it with \"relais directory import --kind trustlist listeblanchemssante.xml\"")
	}
	return nil
}

func runTrustShow(e *env, args []string) error {
	fs := newFlags(e, "trust show", "DOMAIN [--data DIR]", "show a domain's trust-list entries: its operators' certificate DNs and contacts")
	data := dataFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	domain, err := normalizeDomain(pos[0])
	if err != nil {
		return err
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	entries, err := st.TrustByDomain(context.Background(), domain)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if len(entries) == 0 {
		return fmt.Errorf("%s is not in the MSSanté trust space", domain)
	}
	for i, t := range entries {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprintf(e.stdout, "domain:       %s\n", t.Domain)
		fmt.Fprintf(e.stdout, "description:  %s\n", t.Description)
		fmt.Fprintf(e.stdout, "operator DN:  %s\n", t.OperatorDN)
		fmt.Fprintf(e.stdout, "responsible:  %s\n", t.ResponsibleContact)
		fmt.Fprintf(e.stdout, "support:      %s\n", t.SupportContact)
		if !t.Updated.IsZero() {
			fmt.Fprintf(e.stdout, "updated:      %s\n", t.Updated.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func runDirectoryImport(e *env, args []string) error {
	fs := newFlags(e, "directory import", "--kind rpps|mssante|trustlist FILE [--data DIR]",
		"import a national file into the directory: the RPPS extraction (PS_LibreAcces_Personne_activite), the MSSanté addresses (Extraction_Correspondance_MSSante) or the trust list (listeblanchemssante.xml); FILE may be the published ZIP. A re-import applies the differences")
	data := dataFlag(fs)
	kind := fs.String("kind", "", "`KIND` of file: rpps, mssante or trustlist")
	allowMass := fs.Bool("allow-mass-removal", false, "remove the entries absent from the file even when they are many (more than 10%) or when some rejected lines had no readable identifier")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *kind == "" {
		fs.Usage()
		return errUsage
	}
	format, err := directory.ParseFormat(*kind)
	if err != nil {
		return err
	}
	in, size, closeIn, err := openNationalFile(pos[0], format)
	if err != nil {
		return err
	}
	defer closeIn()
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()

	bar := newProgressBar(e.stderr)
	sum, err := directory.Import(context.Background(), st, format, in, directory.Options{
		AllowMassRemoval: *allowMass,
		Total:            size,
		Progress:         func(p directory.Progress) { bar.update(p.Bytes, p.Total, p.Rows, p.Phase) },
	})
	bar.finish()
	if err != nil {
		return fmt.Errorf("importing %s: %w", pos[0], err)
	}
	fmt.Fprint(e.stdout, sum.String())
	if !strings.HasSuffix(sum.String(), "\n") {
		fmt.Fprintln(e.stdout)
	}
	return nil
}

// openNationalFile opens FILE, or "-" for standard input, or the national
// file inside a published ZIP (the extractions come zipped: the entry whose
// name fits the format, or the only entry). size is what the progress bar
// counts against (0 when unknown).
func openNationalFile(path string, format directory.Format) (r io.Reader, size int64, closeFn func(), err error) {
	if path == "-" {
		return os.Stdin, 0, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("opening the file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, fmt.Errorf("opening the file: %w", err)
	}
	if !strings.EqualFold(filepath.Ext(path), ".zip") {
		return f, st.Size(), func() { f.Close() }, nil
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, 0, nil, fmt.Errorf("reading the ZIP archive: %w", err)
	}
	want := map[directory.Format]string{
		directory.FormatRPPS:      "ps_libreacces_personne_activite",
		directory.FormatMSSante:   "extraction_correspondance_mssante",
		directory.FormatTrustList: "listeblanchemssante",
	}[format]
	var entry *zip.File
	for _, zf := range zr.File {
		if strings.Contains(strings.ToLower(filepath.Base(zf.Name)), want) {
			entry = zf
			break
		}
	}
	if entry == nil && len(zr.File) == 1 {
		entry = zr.File[0]
	}
	if entry == nil {
		f.Close()
		return nil, 0, nil, fmt.Errorf("no %s file in the ZIP archive %s", want, path)
	}
	rc, err := entry.Open()
	if err != nil {
		f.Close()
		return nil, 0, nil, fmt.Errorf("opening %s in the archive: %w", entry.Name, err)
	}
	return rc, int64(entry.UncompressedSize64), func() { rc.Close(); f.Close() }, nil
}
