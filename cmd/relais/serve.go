package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/relais-mssante/relais/chat"
	"github.com/relais-mssante/relais/chat/web"
	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/directory/ldapd"
	"github.com/relais-mssante/relais/imap/imapd"
	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/internal/metrics"
	"github.com/relais-mssante/relais/smtp/docs"
	"github.com/relais-mssante/relais/smtp/queue"
	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/postgres"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// The wiring: only this package knows both sides of each boundary.
var (
	_ imapd.Store          = (*sqlite.Store)(nil)
	_ smtpd.Store          = (*sqlite.Store)(nil)
	_ storage.Store        = (*sqlite.Store)(nil)
	_ authn.Accounts       = (*sqlite.Store)(nil)
	_ ldapd.Directory      = (*sqlite.Store)(nil)
	_ httpStore            = (*sqlite.Store)(nil)
	_ directory.TrustStore = (*sqlite.Store)(nil)
	_ chat.Store           = (*sqlite.Store)(nil)
	_ imapd.Store          = (*postgres.Store)(nil)
	_ smtpd.Store          = (*postgres.Store)(nil)
	_ storage.Store        = (*postgres.Store)(nil)
	_ authn.Accounts       = (*postgres.Store)(nil)
	_ ldapd.Directory      = (*postgres.Store)(nil)
	_ httpStore            = (*postgres.Store)(nil)
	_ directory.TrustStore = (*postgres.Store)(nil)
	_ chat.Store           = (*postgres.Store)(nil)
	_ chat.Authenticator   = (*web.Sessions)(nil)
)

// shutdownGrace is how long in-flight transactions get to finish after
// SIGINT/SIGTERM.
const shutdownGrace = 20 * time.Second

func runServe(e *env, args []string) error {
	fs := newFlags(e, "serve", "[flags]",
		"run the mail server; with no --config it runs the embedded default: SQLite in the data directory, the demo domain "+DemoDomain+" with demo practitioners, and a self-made certificate authority")
	configPath := fs.String("config", "", "configuration `FILE` (TOML); see \"relais config example\"")
	def := DefaultConfig()
	var over Config
	fs.StringVar(&over.Data, "data", def.Data, "`DIR` holding the database, the CA and the certificates")
	fs.StringVar(&over.Database, "database", def.Database, "PostgreSQL `URL` holding the data instead of SQLite in --data (default $RELAIS_DATABASE); every node of a cluster names the same")
	fs.StringVar(&over.Hostname, "hostname", def.Hostname, "host `NAME` in greetings, Received headers and the TLS certificate")
	fs.StringVar(&over.Listen.SMTP, "smtp", def.Listen.SMTP, "`ADDR` (host:port) of inbound SMTP, STARTTLS; \"\" disables a listener, :0 picks a port")
	fs.StringVar(&over.Listen.Submission, "submission", def.Listen.Submission, "`ADDR` of submission, STARTTLS")
	fs.StringVar(&over.Listen.Submissions, "submissions", def.Listen.Submissions, "`ADDR` of submission, implicit TLS")
	fs.StringVar(&over.Listen.IMAP, "imap", def.Listen.IMAP, "`ADDR` of IMAP, STARTTLS")
	fs.StringVar(&over.Listen.IMAPS, "imaps", def.Listen.IMAPS, "`ADDR` of IMAP, implicit TLS")
	fs.StringVar(&over.Listen.HTTP, "http", def.Listen.HTTP, "`ADDR` of HTTPS")
	fs.StringVar(&over.Listen.LDAP, "ldap", def.Listen.LDAP, "`ADDR` of the LDAP address book, StartTLS")
	fs.StringVar(&over.Listen.LDAPS, "ldaps", def.Listen.LDAPS, "`ADDR` of the LDAP address book, implicit TLS")
	fs.StringVar(&over.Log, "log", def.Log, "log `LEVEL`: debug, info, warn, error")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fs.Usage()
		return errUsage
	}

	cfg := def
	if *configPath != "" {
		if cfg, err = LoadConfig(*configPath); err != nil {
			return err
		}
	}
	// Flags given on the command line win over the file.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data":
			cfg.Data = over.Data
		case "database":
			cfg.Database = over.Database
		case "hostname":
			cfg.Hostname = over.Hostname
		case "smtp":
			cfg.Listen.SMTP = over.Listen.SMTP
		case "submission":
			cfg.Listen.Submission = over.Listen.Submission
		case "submissions":
			cfg.Listen.Submissions = over.Listen.Submissions
		case "imap":
			cfg.Listen.IMAP = over.Listen.IMAP
		case "imaps":
			cfg.Listen.IMAPS = over.Listen.IMAPS
		case "http":
			cfg.Listen.HTTP = over.Listen.HTTP
		case "ldap":
			cfg.Listen.LDAP = over.Listen.LDAP
		case "ldaps":
			cfg.Listen.LDAPS = over.Listen.LDAPS
		case "log":
			cfg.Log = over.Log
		}
	})
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, e, cfg)
}

// serve runs the server until ctx is cancelled, then shuts down gracefully.
func serve(ctx context.Context, e *env, cfg Config) error {
	log := newLogger(e.stderr, cfg.Log)
	meters := metrics.New(log.With("component", "metrics"))
	metricsAllow, err := metricsAllowList(cfg.Metrics.Allow)
	if err != nil {
		return err
	}
	// The store gets headroom over the SMTP limit for the trace headers
	// prepended at delivery.
	st, err := openStore(cfg.store(), log.With("component", "storage"), cfg.Limits.MaxMessageBytes+1<<20)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the database", "err", err)
		}
	}()

	ca, err := openAuthority(cfg, cfg.PKI.PassphraseFile, log.With("component", "pki"), true)
	if err != nil {
		return fmt.Errorf("certificate authority: %w", err)
	}
	serverNames := []string{"localhost", "127.0.0.1", "::1"}
	cert, err := ca.ServerCertificate(cfg.Hostname, serverNames...)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	tlsConfig := pki.ServerTLSConfig(cert)
	// A certificate renewed while we run is picked up at the next
	// handshake.
	tlsConfig.Certificates = nil
	tlsConfig.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := ca.ServerCertificate(cfg.Hostname, serverNames...)
		return &c, err
	}
	// Port 25: other operators present their server certificate as a TLS
	// client certificate, verified against the trust anchors (IGC-Santé
	// roots, imported with relais pki anchor add, and ours); smtpd then
	// requires its DN in the trust list.
	inboundTLS := tlsConfig.Clone()
	inboundTLS.ClientAuth = tls.VerifyClientCertIfGiven
	inboundTLS.ClientCAs = ca.Anchors()

	if cfg.Demo {
		if err := bootstrapDemo(ctx, e, st, ca); err != nil {
			return fmt.Errorf("demo domain: %w", err)
		}
	}

	trust := directory.NewTrust(st)
	sec := &mailSecurity{pki: ca, certs: st, hostname: cfg.Hostname, requireEncryption: cfg.Relay.RequireEncryption,
		log: log.With("component", "smime"), now: time.Now}
	relay, err := queue.New(queue.Config{
		Hostname: cfg.Hostname,
		Store:    st,
		Routes:   cfg.Relay.Routes,
		ClientCert: func() (*tls.Certificate, error) {
			c, err := ca.ServerCertificate(cfg.Hostname, serverNames...)
			return &c, err
		},
		RootCAs:     ca.Anchors(),
		Operators:   trust,
		Sealer:      sec,
		Expiry:      cfg.Relay.Expiry,
		DelayNotice: cfg.Relay.DelayNotice,
		Workers:     cfg.Relay.Workers,
		Logger:      log.With("service", "relay"),
		Observer:    meters,
	})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	reports := &queue.Reports{Hostname: cfg.Hostname, Store: st, Logger: log.With("service", "reports"), Relay: relay}
	documents := &docs.Inspector{Store: st, Hostname: cfg.Hostname, Signer: sec, Relay: relay,
		Logger: log.With("component", "documents"), Expiry: cfg.Relay.Expiry}

	auth := authn.New(st, nil)
	smtpCfg := smtpd.Config{
		Hostname:        cfg.Hostname,
		TLS:             inboundTLS,
		MaxMessageBytes: cfg.Limits.MaxMessageBytes,
		MaxRecipients:   cfg.Limits.MaxRecipients,
		Logger:          log.With("service", "smtp"),
		Trust:           trust,
		Operators:       trust,
		Opener:          sec,
		Reports:         reports,
		Documents:       documents,
		Observer:        meters,
	}
	inbound := smtpd.NewInbound(smtpCfg, st)
	smtpCfg = smtpd.Config{
		Hostname:        cfg.Hostname,
		TLS:             tlsConfig,
		MaxMessageBytes: cfg.Limits.MaxMessageBytes,
		MaxRecipients:   cfg.Limits.MaxRecipients,
		Logger:          log.With("service", "submission"),
		Trust:           trust,
		Relay:           relay,
		QueueExpiry:     cfg.Relay.Expiry,
		Signer:          sec,
		Reports:         reports,
		Documents:       documents,
		Observer:        meters,
	}
	submission := smtpd.NewSubmission(smtpCfg, st, auth)
	imapServer := imapd.New(imapd.Config{
		TLS:         tlsConfig,
		Logger:      log.With("service", "imap"),
		AppendLimit: uint32(min(cfg.Limits.MaxMessageBytes, 1<<32-1)),
		Observer:    meters,
	}, st, auth)
	ldapServer, err := ldapd.New(ldapd.Config{
		TLS:    tlsConfig,
		BaseDN: cfg.Directory.LDAPBase,
		Logger: log.With("service", "ldap"),
	}, st, auth)
	if err != nil {
		return fmt.Errorf("LDAP: %w", err)
	}
	sessions := web.NewSessions(web.SessionConfig{Auth: auth, Logger: log.With("component", "web")})
	chatServer, err := chat.New(chat.Config{Store: st, Sessions: sessions, Tokens: chat.BearerTokens{Store: st},
		Directory: st, Logger: log.With("service", "chat")})
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	// A document recorded on delivery becomes the chat's notifications.
	documents.Received = func(ctx context.Context, doc storage.DocumentRecord) {
		if err := chatServer.DocumentReceived(ctx, doc); err != nil {
			log.Warn("chat: document notification", "err", err)
		}
	}
	// HTTPS asks for a client certificate, without requiring one: hospital
	// software may authenticate to the documents API with its applicative
	// mailbox certificate instead of a token.
	httpTLS := tlsConfig.Clone()
	httpTLS.ClientAuth = tls.VerifyClientCertIfGiven
	httpTLS.ClientCAs = ca.Anchors()
	registerGauges(meters, served{inbound: inbound, submission: submission, imap: imapServer, ldap: ldapServer, chat: chatServer, store: st})
	httpServer := &http.Server{
		Handler: withMetrics(meters, metricsAllow, httpHandler(cfg, ca, st, auth, submission, web.Handler(sessions),
			web.DocumentsHandler(sessions, st, log.With("service", "web")), chatServer.Handler(), log.With("service", "http"))),
		TLSConfig:         httpTLS,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.With("service", "http").Handler(), slog.LevelWarn),
	}

	type listener struct {
		name, addr, mode string
		implicitTLS      bool // wrap the listener here (the server does not do it itself)
		serve            func(net.Listener) error
	}
	specs := []listener{
		{"smtp", cfg.Listen.SMTP, "SMTP from other operators, STARTTLS", false, inbound.Serve},
		{"submission", cfg.Listen.Submission, "submission, STARTTLS", false, submission.Serve},
		{"submissions", cfg.Listen.Submissions, "submission, implicit TLS", false, submission.ServeTLS},
		{"imap", cfg.Listen.IMAP, "IMAP, STARTTLS", false, imapServer.Serve},
		{"imaps", cfg.Listen.IMAPS, "IMAP, implicit TLS", true, imapServer.Serve},
		{"http", cfg.Listen.HTTP, "HTTPS", false, func(ln net.Listener) error { return httpServer.Serve(tls.NewListener(ln, httpTLS)) }},
		{"ldap", cfg.Listen.LDAP, "LDAP address book, StartTLS", false, ldapServer.Serve},
		{"ldaps", cfg.Listen.LDAPS, "LDAP address book, implicit TLS", false, ldapServer.ServeTLS},
	}
	// Bind every listener before serving any, so a port clash fails the start.
	lns := make([]net.Listener, len(specs))
	addrs := map[string]string{}
	for i, s := range specs {
		if s.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, l := range lns[:i] {
				if l != nil {
					l.Close()
				}
			}
			return fmt.Errorf("listen %s on %s: %w", s.name, s.addr, err)
		}
		addrs[s.name] = ln.Addr().String()
		if s.implicitTLS {
			ln = tls.NewListener(ln, tlsConfig)
		}
		lns[i] = ln
	}

	errc := make(chan error, len(specs)+1)
	var wg sync.WaitGroup
	relayCtx, stopRelay := context.WithCancel(context.Background())
	defer stopRelay()
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		if err := relay.Run(relayCtx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("relay: %w", err)
		}
	}()
	for i, s := range specs {
		if lns[i] == nil {
			continue
		}
		fmt.Fprintf(e.stdout, "listening: %-11s %-21s %s\n", s.name, addrs[s.name], s.mode)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serve(lns[i]); err != nil && !isClosedErr(err) {
				errc <- fmt.Errorf("%s: %w", s.name, err)
			}
		}()
	}
	printHowToConnect(e, cfg, addrs)
	log.Info("relais started", "version", versionString(), "data", cfg.Data)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: no new connections, finishing transactions in flight")
	case runErr = <-errc:
		log.Error("a listener failed, shutting down", "err", runErr)
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var sd sync.WaitGroup
	for _, f := range []func(context.Context) error{
		inbound.Shutdown,
		submission.Shutdown,
		func(context.Context) error { return imapServer.Close() },
		httpServer.Shutdown,
		// http.Server.Shutdown leaves hijacked connections (WebSockets).
		func(context.Context) error { return chatServer.Close() },
		ldapServer.Shutdown,
	} {
		sd.Add(1)
		go func() {
			defer sd.Done()
			if err := f(shutdownCtx); err != nil && !isClosedErr(err) {
				log.Warn("shutdown", "err", err)
			}
		}()
	}
	sd.Wait()
	wg.Wait()
	// The relay stops last: attempts in flight are abandoned, their
	// leases run out and the next start retries them.
	stopRelay()
	<-relayDone
	if n := inbound.Panics() + submission.Panics() + imapServer.Panics() + ldapServer.Panics(); n > 0 {
		log.Warn("sessions recovered from panics during this run", "count", n)
	}
	log.Info("stopped")
	return runErr
}

func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled)
}

func printHowToConnect(e *env, cfg Config, addrs map[string]string) {
	if ldaps := addrs["ldaps"]; ldaps != "" {
		fmt.Fprintf(e.stdout, "address book: LDAP %s (SSL/TLS), base DN %s, bind DN = full address, normal password\n", ldaps, cfg.Directory.LDAPBase)
	}
	imapAddr, smtpAddr := addrs["imaps"], addrs["submissions"]
	if imapAddr == "" || smtpAddr == "" {
		return
	}
	fmt.Fprintf(e.stdout, "mail client: IMAP %s (SSL/TLS), SMTP %s (SSL/TLS), user name = full address, normal password; trust the CA in %s\n",
		imapAddr, smtpAddr, filepath.Join(cfg.Data, pki.CACertFile))
}
