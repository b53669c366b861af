package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/storage"
)

// PKIDir is the authority's directory inside the data directory.
const PKIDir = "pki"

// pkiCommands are the "relais pki" subcommands; runPKI dispatches to them.
func pkiCommands() []command {
	return []command{
		{"pki init", "[--name ORG] [--base-url URL]", "create the certificate authority: a root and the ORGANISATIONS and PERSONNES intermediates", runPKIInit},
		{"pki issue", "--kind server|person|organisation --email ADDR | --dns NAME... [--cn CN] [--rpps N] [--out-cert FILE] [--publish]", "issue a certificate and its key", runPKIIssue},
		{"pki renew", "SERIAL", "issue a new certificate with the same subject and names, and a new key", runPKIRenew},
		{"pki revoke", "SERIAL [--reason REASON]", "revoke a certificate and publish the new CRL", runPKIRevoke},
		{"pki list", "[--all] [--kind KIND]", "list the certificates (valid ones unless --all)", runPKIList},
		{"pki import", "--cert FILE --key FILE [--kind KIND]", "import an external certificate (IGC-Santé...) and its private key, both PEM", runPKIImport},
		{"pki anchor add", "FILE", "trust the CA certificates of FILE (IGC-Santé roots, another operator's root)", runPKIAnchorAdd},
		{"pki anchor list", "", "list the imported trust anchors", runPKIAnchorList},
		{"pki export", "--serial SERIAL [--out FILE] [--with-key --yes-export-unencrypted-key]", "write a certificate (and on request its key) in PEM", runPKIExport},
	}
}

// pkiFlags are the flags every pki subcommand takes.
type pkiFlags struct {
	fs       *flag.FlagSet
	data     *storeLocation
	config   *string
	passFile *string
}

func addPKIFlags(fs *flag.FlagSet) *pkiFlags {
	return &pkiFlags{
		fs:       fs,
		data:     dataFlag(fs),
		config:   fs.String("config", "", "configuration `FILE` (for the data directory, host name and HTTP address)"),
		passFile: fs.String("passphrase-file", "", "`FILE` whose first line is the passphrase of the private keys (default: $"+pki.PassphraseEnv+")"),
	}
}

// config returns the configuration: the file's when --config is given,
// with --data on top when given explicitly.
func (f *pkiFlags) configuration() (Config, error) {
	cfg := DefaultConfig()
	if *f.config != "" {
		var err error
		if cfg, err = LoadConfig(*f.config); err != nil {
			return cfg, err
		}
		f.fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "data":
				cfg.Data = f.data.Data
			case "database":
				cfg.Database = f.data.Database
			}
		})
		return cfg, nil
	}
	cfg.Data, cfg.Database = f.data.Data, f.data.Database
	return cfg, nil
}

// open opens the authority of the data directory.
func (f *pkiFlags) open(e *env) (*pki.Authority, Config, error) {
	cfg, err := f.configuration()
	if err != nil {
		return nil, cfg, err
	}
	a, err := openAuthority(cfg, *f.passFile, pkiLogger(e), false)
	return a, cfg, err
}

func pkiLogger(e *env) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// pkiPassphrase is the passphrase of the key store: the file's first line
// when a file is given, else $RELAIS_PKI_PASSPHRASE, else none (the key
// store then uses its secret file).
func pkiPassphrase(passFile string) ([]byte, error) {
	if passFile != "" {
		return pki.ReadPassphraseFile(passFile)
	}
	return []byte(os.Getenv(pki.PassphraseEnv)), nil
}

// pkiOptions are the authority's options for a configuration.
func pkiOptions(cfg Config, passFile string, log *slog.Logger) (pki.Options, error) {
	if passFile == "" {
		passFile = cfg.PKI.PassphraseFile
	}
	pass, err := pkiPassphrase(passFile)
	if err != nil {
		return pki.Options{}, err
	}
	return pki.Options{
		Dir:         filepath.Join(cfg.Data, PKIDir),
		Passphrase:  pass,
		BaseURL:     pkiBaseURL(cfg),
		PublishRoot: filepath.Join(cfg.Data, pki.CACertFile),
		LegacyDir:   cfg.Data,
		Logger:      log,
	}, nil
}

// pkiBaseURL is the URL the CRLs are published under: the HTTPS listener
// reached by the host name.
func pkiBaseURL(cfg Config) string {
	if cfg.PKI.BaseURL != "" {
		return strings.TrimSuffix(cfg.PKI.BaseURL, "/")
	}
	port := "443"
	if _, p, err := net.SplitHostPort(cfg.Listen.HTTP); err == nil && p != "" && p != "0" {
		port = p
	}
	if port == "443" {
		return "https://" + cfg.Hostname
	}
	return "https://" + net.JoinHostPort(cfg.Hostname, port)
}

// openAuthority opens the authority in cfg.Data/pki; with create, it makes
// it when absent (relais serve and the demo), named after the host.
// relais serve calls it with create=true.
func openAuthority(cfg Config, passFile string, log *slog.Logger, create bool) (*pki.Authority, error) {
	opts, err := pkiOptions(cfg, passFile, log)
	if err != nil {
		return nil, err
	}
	if !create {
		return pki.Open(opts)
	}
	a, created, err := pki.OpenOrInit(opts, cfg.Hostname)
	if err == nil && created {
		log.Info("created the certificate authority", "dir", opts.Dir, "root", opts.PublishRoot)
	}
	return a, err
}

func runPKIInit(e *env, args []string) error {
	fs := newFlags(e, "pki init", "[--name ORG] [--base-url URL] [--data DIR] [--config FILE] [--passphrase-file FILE]",
		"create the certificate authority in DIR/pki: the root \"AC RACINE RELAIS <ORG>\" and the intermediates \"AC RELAIS <ORG> ORGANISATIONS\" (servers, organisations) and \"AC RELAIS <ORG> PERSONNES\" (practitioners), as IGC-Santé is organised; an existing DIR/ca.pem with its key becomes the root")
	pf := addPKIFlags(fs)
	name := fs.String("name", "", "`ORG`anisation that runs this authority (default: the host name)")
	baseURL := fs.String("base-url", "", "`URL` of this server's HTTPS listener, written in the certificates' CRL distribution points (default: https://HOSTNAME:PORT of the configuration)")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return orUsage(fs, err)
	}
	cfg, err := pf.configuration()
	if err != nil {
		return err
	}
	opts, err := pkiOptions(cfg, *pf.passFile, pkiLogger(e))
	if err != nil {
		return err
	}
	if *baseURL != "" {
		opts.BaseURL = *baseURL
	}
	org := *name
	if org == "" {
		org = cfg.Hostname
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	a, err := pki.Init(opts, org)
	if errors.Is(err, pki.ErrExists) {
		return fmt.Errorf("a certificate authority exists already in %s", opts.Dir)
	}
	if err != nil {
		return err
	}
	list, err := a.List()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "certificate authority created in %s\n", opts.Dir)
	printPKICertificates(e.stdout, list)
	fmt.Fprintf(e.stdout, "root certificate for mail clients: %s\n", opts.PublishRoot)
	return nil
}

// pkiNamesFlag is a repeatable flag.
type pkiNamesFlag []string

func (s *pkiNamesFlag) String() string { return strings.Join(*s, ",") }
func (s *pkiNamesFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

func runPKIIssue(e *env, args []string) error {
	fs := newFlags(e, "pki issue", "--kind server|person|organisation --email ADDR | --dns NAME... [--cn CN] [--rpps N] [--given NAME] [--surname NAME] [--title T] [--days N] [--out-cert FILE] [--publish] [--data DIR]",
		"issue a certificate with a new key kept (encrypted) in the authority: server (TLS server and client, from ORGANISATIONS), organisation (S/MIME for a mailbox, from ORGANISATIONS) or person (S/MIME for a practitioner, RPPS in the subject, from PERSONNES)")
	pf := addPKIFlags(fs)
	kindName := fs.String("kind", "", "`KIND` of certificate: server, person or organisation")
	var emails, dns pkiNamesFlag
	fs.Var(&emails, "email", "mail `ADDRESS` of a person or organisation certificate (repeatable)")
	fs.Var(&dns, "dns", "DNS `NAME` or IP address of a server certificate (repeatable)")
	cn := fs.String("cn", "", "common `NAME` of the subject (default: 8+RPPS for a person, the address, the first DNS name)")
	rpps := fs.String("rpps", "", "11-digit RPPS `NUMBER` of a practitioner")
	given := fs.String("given", "", "given `NAME` of a person")
	surname := fs.String("surname", "", "family `NAME` of a person")
	title := fs.String("title", "", "profession of a person (`TITLE`, e.g. Médecin)")
	org := fs.String("org", "", "`ORG`anisation in the subject (default: the authority's)")
	days := fs.Int("days", 0, "validity in `DAYS` (default: 3 years for S/MIME, 397 days for servers)")
	outCert := fs.String("out-cert", "", "also write the certificate and its intermediate to `FILE` (PEM)")
	publish := fs.Bool("publish", false, "attach the S/MIME certificate to its address in the directory (LDAP address book)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *kindName == "" || *days < 0 {
		fs.Usage()
		return errUsage
	}
	kind, err := pki.ParseKind(*kindName)
	if err != nil {
		return err
	}
	switch {
	case kind == pki.KindServer && (len(dns) == 0 || len(emails) > 0):
		return errors.New("a server certificate takes --dns names and no --email")
	case kind != pki.KindServer && (len(emails) == 0 || len(dns) > 0):
		return fmt.Errorf("a %s certificate takes --email addresses and no --dns", kind)
	case kind != pki.KindPerson && (*rpps != "" || *given != "" || *surname != "" || *title != ""):
		return errors.New("--rpps, --given, --surname and --title are for person certificates")
	}
	for i, a := range emails {
		if emails[i], err = normalizeAddress(a); err != nil {
			return err
		}
	}
	a, cfg, err := pf.open(e)
	if err != nil {
		return err
	}
	c, err := a.Issue(pki.Request{
		Kind: kind, Emails: emails, DNSNames: dns, CommonName: *cn, RPPS: *rpps, GivenName: *given,
		Surname: *surname, Title: *title, Organisation: *org, Validity: time.Duration(*days) * 24 * time.Hour,
	})
	if err != nil {
		return err
	}
	printPKIIssued(e.stdout, "issued", c)
	if *outCert != "" {
		if err := pkiWriteChain(*outCert, c); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "certificate written to %s\n", *outCert)
	}
	if kind == pki.KindServer {
		return nil
	}
	if !*publish {
		fmt.Fprintf(e.stdout, "publish it in the address book: relais pki issue ... --publish, or relais directory cert add %s FILE\n", c.Emails[0])
		return nil
	}
	st, err := openStore(cfg.store(), discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := publishCertificate(context.Background(), st, c); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "published in the directory for %s\n", strings.Join(c.Emails, ", "))
	return nil
}

// certPublisher is what publishCertificate needs of the store.
type certPublisher interface {
	PutCertificate(ctx context.Context, c storage.Certificate) error
}

// publishCertificate attaches an S/MIME certificate to each of its
// addresses in the directory, so that the LDAP address book and the
// encryption to remote recipients find it. The demo bootstrap calls it for
// its practitioners.
func publishCertificate(ctx context.Context, st certPublisher, c pki.Certificate) error {
	for _, addr := range c.Emails {
		rec, err := directoryCertificate(addr, c.Certificate)
		if err != nil {
			return err
		}
		if err := st.PutCertificate(ctx, rec); err != nil {
			return fmt.Errorf("publishing the certificate of %s: %w", addr, err)
		}
	}
	return nil
}

// directoryCertificate is the directory's record of c attached to address
// by an administrator. The error says the subject could not be written as
// a DN (the record is still usable, with an empty Subject).
func directoryCertificate(address string, c *x509.Certificate) (storage.Certificate, error) {
	sum := sha256.Sum256(c.Raw)
	subject, err := directory.SubjectDN(c)
	return storage.Certificate{
		Address: address, DER: c.Raw, Fingerprint: hex.EncodeToString(sum[:]), Subject: subject,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Source: storage.SourceAdmin,
	}, err
}

func pkiWriteChain(path string, c pki.Certificate) error {
	out := c.PEM()
	for _, ch := range c.Chain {
		out = append(out, pki.Certificate{Certificate: ch}.PEM()...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func printPKIIssued(w io.Writer, verb string, c pki.Certificate) {
	fmt.Fprintf(w, "%s %s certificate %s\n", verb, c.Kind, c.Serial)
	fmt.Fprintf(w, "  subject:    %s\n", c.Subject)
	if names := pkiCertNames(c); names != "" {
		fmt.Fprintf(w, "  names:      %s\n", names)
	}
	fmt.Fprintf(w, "  issuer:     %s\n", pkiIssuerName(c))
	fmt.Fprintf(w, "  valid:      %s to %s\n", c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly))
	if len(c.Certificate.CRLDistributionPoints) > 0 {
		fmt.Fprintf(w, "  CRL:        %s\n", c.Certificate.CRLDistributionPoints[0])
	}
}

func pkiIssuerName(c pki.Certificate) string {
	if c.Imported {
		return c.Certificate.Issuer.String() + " (imported)"
	}
	if c.Issuer == "" {
		return "self-signed"
	}
	return c.Issuer
}

func pkiCertNames(c pki.Certificate) string {
	return strings.Join(append(append([]string{}, c.Emails...), c.DNSNames...), ", ")
}

func runPKIRenew(e *env, args []string) error {
	fs := newFlags(e, "pki renew", "SERIAL [--out-cert FILE] [--data DIR]",
		"issue a new certificate with the same subject and names as SERIAL, with a new key; the old one stays valid until it expires (revoke it with reason superseded if needed)")
	pf := addPKIFlags(fs)
	outCert := fs.String("out-cert", "", "also write the certificate and its intermediate to `FILE` (PEM)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	a, _, err := pf.open(e)
	if err != nil {
		return err
	}
	c, err := a.Renew(pos[0])
	if err != nil {
		return err
	}
	printPKIIssued(e.stdout, "renewed "+c.Renews+" as", c)
	if *outCert != "" {
		if err := pkiWriteChain(*outCert, c); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "certificate written to %s\n", *outCert)
	}
	return nil
}

func runPKIRevoke(e *env, args []string) error {
	fs := newFlags(e, "pki revoke", "SERIAL [--reason REASON] [--data DIR]",
		"revoke a certificate: it is listed at once on its CA's CRL, served at /pki/crl/NAME.crl")
	pf := addPKIFlags(fs)
	reasonName := fs.String("reason", "unspecified", "RFC 5280 `REASON`: unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, certificateHold")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	reason, err := pki.ParseReason(*reasonName)
	if err != nil {
		return err
	}
	a, cfg, err := pf.open(e)
	if err != nil {
		return err
	}
	c, err := a.Revoke(pos[0], reason)
	if err != nil {
		return err
	}
	auditAdminLocation(e, cfg.store(), auditPKIRevoke, "certificate:"+c.Serial, "reason "+reason.String())
	fmt.Fprintf(e.stdout, "certificate %s revoked (%s): %s\n", c.Serial, reason, c.Subject)
	return nil
}

func runPKIList(e *env, args []string) error {
	fs := newFlags(e, "pki list", "[--all] [--kind KIND] [--data DIR]", "list the certificates of the authority: the CAs and the valid certificates, or all with --all")
	pf := addPKIFlags(fs)
	all := fs.Bool("all", false, "include expired and revoked certificates")
	kindName := fs.String("kind", "", "only this `KIND`: ca, server, person or organisation")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return orUsage(fs, err)
	}
	a, _, err := pf.open(e)
	if err != nil {
		return err
	}
	list, err := a.List()
	if err != nil {
		return err
	}
	var shown []pki.Certificate
	for _, c := range list {
		if (*all || c.Status == pki.StatusValid) && (*kindName == "" || strings.EqualFold(*kindName, string(c.Kind))) {
			shown = append(shown, c)
		}
	}
	printPKICertificates(e.stdout, shown)
	return nil
}

func printPKICertificates(w io.Writer, list []pki.Certificate) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tKIND\tSTATUS\tNOT AFTER\tISSUER\tNAMES\tSUBJECT")
	for _, c := range list {
		kind := string(c.Kind)
		if c.Kind == pki.KindCA {
			kind = "ca " + c.CAName
		}
		status := string(c.Status)
		if c.Status == pki.StatusRevoked {
			status += " (" + c.Reason.String() + ")"
		}
		issuer := c.Issuer
		switch {
		case c.Imported:
			issuer = "imported"
		case issuer == "":
			issuer = "-"
		}
		names := pkiCertNames(c)
		if names == "" {
			names = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Serial, kind, status, c.NotAfter.UTC().Format(time.DateOnly), issuer, names, c.Subject)
	}
	tw.Flush()
}

func runPKIImport(e *env, args []string) error {
	fs := newFlags(e, "pki import", "--cert FILE --key FILE [--kind server|person|organisation] [--data DIR]",
		"import an external certificate (for example from IGC-Santé) with its private key, both PEM; the certificate file may carry the intermediates after it. Its CA's root must be trusted: relais pki anchor add")
	pf := addPKIFlags(fs)
	certFile := fs.String("cert", "", "certificate `FILE` (PEM, leaf first)")
	keyFile := fs.String("key", "", "private key `FILE` (PEM, unencrypted PKCS #8, PKCS #1 or SEC 1)")
	kindName := fs.String("kind", "", "`KIND` of certificate (default: guessed from its key usages)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *certFile == "" || *keyFile == "" {
		fs.Usage()
		return errUsage
	}
	var kind pki.Kind
	if *kindName != "" {
		if kind, err = pki.ParseKind(*kindName); err != nil {
			return err
		}
	}
	certPEM, err := os.ReadFile(*certFile)
	if err != nil {
		return fmt.Errorf("reading the certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("reading the key: %w", err)
	}
	a, _, err := pf.open(e)
	if err != nil {
		return err
	}
	c, err := a.Import(certPEM, keyPEM, kind)
	if err != nil {
		return err
	}
	printPKIIssued(e.stdout, "imported", c)
	if _, err := c.Certificate.Verify(pkiVerifyOptions(a, c)); err != nil {
		fmt.Fprintf(e.stderr, "warning: the certificate does not chain to a trusted root (%v): add its root with \"relais pki anchor add\"\n", err)
	}
	return nil
}

func pkiVerifyOptions(a *pki.Authority, c pki.Certificate) x509.VerifyOptions {
	opts := x509.VerifyOptions{Roots: a.Anchors(), Intermediates: a.Intermediates()}
	for _, ch := range c.Chain {
		opts.Intermediates.AddCert(ch)
	}
	opts.KeyUsages = c.Certificate.ExtKeyUsage
	return opts
}

func runPKIAnchorAdd(e *env, args []string) error {
	fs := newFlags(e, "pki anchor add", "FILE [--data DIR]",
		"trust the CA certificates of FILE (PEM or DER) to verify S/MIME signatures and peers: the IGC-Santé roots, another operator's root")
	pf := addPKIFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("reading %s: %w", pos[0], err)
	}
	a, _, err := pf.open(e)
	if err != nil {
		return err
	}
	n, err := a.AddAnchors(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	fmt.Fprintf(e.stdout, "%d trust anchor(s) added from %s\n", n, pos[0])
	return nil
}

func runPKIAnchorList(e *env, args []string) error {
	fs := newFlags(e, "pki anchor list", "[--data DIR]", "list the imported trust anchors (the authority's own root is always trusted)")
	pf := addPKIFlags(fs)
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return orUsage(fs, err)
	}
	a, _, err := pf.open(e)
	if err != nil {
		return err
	}
	anchors, err := a.AnchorCertificates()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHA-256\tNOT AFTER\tSUBJECT")
	for _, c := range anchors {
		sum := sha256.Sum256(c.Raw)
		subject, err := directory.SubjectDN(c)
		if err != nil {
			subject = c.Subject.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", hex.EncodeToString(sum[:]), c.NotAfter.UTC().Format(time.DateOnly), subject)
	}
	return tw.Flush()
}

func runPKIExport(e *env, args []string) error {
	fs := newFlags(e, "pki export", "--serial SERIAL [--chain] [--out FILE] [--with-key --yes-export-unencrypted-key] [--data DIR]",
		"write a certificate in PEM to standard output or FILE; the private key only with --with-key and the confirmation flag, unencrypted, for moving an identity to another system")
	pf := addPKIFlags(fs)
	serial := fs.String("serial", "", "`SERIAL` number of the certificate (hexadecimal, as relais pki list shows it)")
	chain := fs.Bool("chain", false, "add the intermediate certificate(s)")
	out := fs.String("out", "", "write to `FILE` instead of standard output (mode 0600 when it holds a key)")
	withKey := fs.Bool("with-key", false, "also write the private key, unencrypted")
	confirm := fs.Bool("yes-export-unencrypted-key", false, "confirm --with-key")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *serial == "" {
		fs.Usage()
		return errUsage
	}
	if *withKey && !*confirm {
		return errors.New("--with-key writes the private key unencrypted: add --yes-export-unencrypted-key to confirm")
	}
	a, _, err := pf.open(e)
	if err != nil {
		return err
	}
	c, err := a.Get(*serial)
	if err != nil {
		return err
	}
	data := c.PEM()
	if *chain {
		for _, ch := range c.Chain {
			data = append(data, pki.Certificate{Certificate: ch}.PEM()...)
		}
	}
	mode := os.FileMode(0o644)
	if *withKey {
		key, err := a.ExportKey(c.Serial)
		if err != nil {
			return err
		}
		data = append(data, key...)
		mode = 0o600
	}
	if *out == "" {
		_, err := e.stdout.Write(data)
		return err
	}
	if err := pkiWriteFile(*out, data, mode); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "certificate %s written to %s\n", c.Serial, *out)
	return nil
}

// pkiWriteFile writes data to path with mode, also when path exists with
// a wider mode (the mode is set before the data is written).
func pkiWriteFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// ensureIdentity gives req.Emails[0] an S/MIME identity: when the address
// has no valid certificate with a key, it issues one for req and publishes
// it in the directory. The demo bootstrap calls it for each practitioner
// (KindPerson, with a synthetic RPPS) and for the secretariat
// (KindOrganisation). issued reports whether a certificate was made.
func ensureIdentity(ctx context.Context, a *pki.Authority, st certPublisher, req pki.Request) (c pki.Certificate, issued bool, err error) {
	if len(req.Emails) == 0 {
		return pki.Certificate{}, false, errors.New("ensureIdentity: no address")
	}
	id, err := a.Identity(req.Emails[0])
	if err == nil {
		c, err = a.Get(id.Serial)
		return c, false, err
	}
	if !errors.Is(err, pki.ErrNotFound) {
		return pki.Certificate{}, false, err
	}
	if c, err = a.Issue(req); err != nil {
		return pki.Certificate{}, false, err
	}
	if err := publishCertificate(ctx, st, c); err != nil {
		return c, true, err
	}
	return c, true, nil
}
