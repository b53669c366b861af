package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is relais serve's configuration: defaults in code (DefaultConfig),
// overridden by a TOML file, then by command-line flags. Field comments are
// the documentation of the file format.
type Config struct {
	// Data is the data directory: the SQLite database, the CA and the TLS
	// certificate live there.
	Data string `toml:"data"`
	// Database, when set, is the PostgreSQL database (a postgres:// URL)
	// that holds the data instead of SQLite in Data: every node of a
	// cluster names the same one. RELAIS_DATABASE sets it too.
	Database string `toml:"database"`
	// Hostname names this server in SMTP greetings, Received headers and its
	// TLS certificate.
	Hostname string `toml:"hostname"`
	// Demo creates the demo domain and its practitioners at first start.
	Demo bool `toml:"demo"`
	// Listen holds the listeners' host:port; an empty value disables one,
	// ":0" picks a free port.
	Listen Listen `toml:"listen"`
	// Limits bound what one client may send.
	Limits Limits `toml:"limits"`
	// Directory configures the professional directory's front ends.
	Directory Directory `toml:"directory"`
	// Relay configures the outbound queue to the other operators.
	Relay Relay `toml:"relay"`
	// PKI configures the certificate authority and the keys at rest.
	PKI PKI `toml:"pki"`
	// Metrics configures GET /metrics (Prometheus) on the HTTPS listener.
	Metrics Metrics `toml:"metrics"`
	// Log sets the logging level: debug, info, warn or error.
	Log string `toml:"log"`
}

// Metrics says who may read /metrics.
type Metrics struct {
	// Allow lists the networks (10.0.0.0/8) or addresses a scraper may
	// come from; empty means loopback only (127.0.0.0/8, ::1).
	Allow []string `toml:"allow"`
}

// Listen is where each service listens.
type Listen struct {
	SMTP        string `toml:"smtp"`        // inbound from other operators (25 in production), STARTTLS
	Submission  string `toml:"submission"`  // mail clients, STARTTLS (587)
	Submissions string `toml:"submissions"` // mail clients, implicit TLS (465)
	IMAP        string `toml:"imap"`        // STARTTLS (143)
	IMAPS       string `toml:"imaps"`       // implicit TLS (993)
	HTTP        string `toml:"http"`        // HTTPS: status page, CA download, directory API and FHIR, later the web app
	LDAP        string `toml:"ldap"`        // LDAP address book, StartTLS required before bind (389)
	LDAPS       string `toml:"ldaps"`       // LDAP address book, implicit TLS (636)
}

// Directory configures the directory's front ends.
type Directory struct {
	// LDAPBase is the base DN of the LDAP address book (advertised in the
	// root DSE's namingContexts): what users type as "Base DN" in their
	// mail client.
	LDAPBase string `toml:"ldap_base"`
}

// Relay configures delivery to the other operators of the trust space.
type Relay struct {
	// Routes sends a domain's mail to host:port instead of looking up its
	// MX (tests, private networks): routes = { "b.mssante.test" = "10.0.0.2:25" }.
	Routes map[string]string `toml:"routes"`
	// Expiry is how long a message is retried before it fails for good
	// and the sender gets a DSN ("120h"; RFC 5321 4.5.4.1 suggests 4-5 days).
	Expiry time.Duration `toml:"expiry"`
	// DelayNotice is when the sender gets one "delayed" DSN ("4h").
	DelayNotice time.Duration `toml:"delay_notice"`
	// RequireEncryption refuses to send to a recipient whose certificate
	// the directory does not have; otherwise such mail goes signed only.
	RequireEncryption bool `toml:"require_encryption"`
	// Workers is how many deliveries run at once.
	Workers int `toml:"workers"`
}

// PKI configures the certificate authority.
type PKI struct {
	// PassphraseFile holds the passphrase that encrypts the private keys
	// at rest. Empty: RELAIS_PKI_PASSPHRASE, or else a random secret kept
	// in the data directory (the demo default: keys are then only as safe
	// as that directory).
	PassphraseFile string `toml:"passphrase_file"`
	// BaseURL is where other parties fetch the CRLs, written in every
	// certificate issued ("https://relais.example.fr"); empty: https on
	// the hostname and the HTTP listener's port.
	BaseURL string `toml:"base_url"`
}

// Limits are per-message and per-transaction limits.
type Limits struct {
	MaxMessageBytes int64 `toml:"max_message_bytes"` // SMTP SIZE and IMAP APPENDLIMIT
	MaxRecipients   int   `toml:"max_recipients"`    // RCPT TO per transaction
}

// DemoDomain is the domain the embedded default serves.
const DemoDomain = "demo.mssante.test"

// DefaultConfig is the embedded default: everything on 127.0.0.1, on ports
// that need no privileges.
func DefaultConfig() Config {
	return Config{
		Data:     "./relais-data",
		Database: os.Getenv("RELAIS_DATABASE"),
		Hostname: "localhost",
		Demo:     true,
		Listen: Listen{
			SMTP:        "127.0.0.1:2525",
			Submission:  "127.0.0.1:5587",
			Submissions: "127.0.0.1:4465",
			IMAP:        "127.0.0.1:1143",
			IMAPS:       "127.0.0.1:9993",
			HTTP:        "127.0.0.1:8443",
			LDAP:        "127.0.0.1:3389",
			LDAPS:       "127.0.0.1:6636",
		},
		Directory: Directory{LDAPBase: "o=relais"},
		Relay:     Relay{Expiry: 5 * 24 * time.Hour, DelayNotice: 4 * time.Hour, Workers: 4},
		Limits:    Limits{MaxMessageBytes: 64 << 20, MaxRecipients: 100},
		Log:       "info",
	}
}

// LoadConfig reads a TOML file over the defaults. Unknown keys are errors,
// so that a typo never goes unnoticed. A file that does not say demo=true
// runs without the demo domain.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	cfg.Demo = false
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("reading config: %w", err)
	}
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return cfg, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return cfg, nil
}

// store is where the configuration keeps its data.
func (c Config) store() storeLocation {
	return storeLocation{Data: c.Data, Database: c.Database}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.Data == "" {
		errs = append(errs, errors.New("data: must name a directory"))
	}
	if c.Database != "" {
		if err := validDatabaseURL(c.Database); err != nil {
			errs = append(errs, fmt.Errorf("database: %w", err))
		}
	}
	if _, err := metricsAllowList(c.Metrics.Allow); err != nil {
		errs = append(errs, err)
	}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t/") {
		errs = append(errs, fmt.Errorf("hostname: %q is not a host name", c.Hostname))
	}
	for _, l := range []struct{ name, addr string }{
		{"smtp", c.Listen.SMTP}, {"submission", c.Listen.Submission}, {"submissions", c.Listen.Submissions},
		{"imap", c.Listen.IMAP}, {"imaps", c.Listen.IMAPS}, {"http", c.Listen.HTTP},
		{"ldap", c.Listen.LDAP}, {"ldaps", c.Listen.LDAPS},
	} {
		if l.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			errs = append(errs, fmt.Errorf("listen.%s: %q: %w", l.name, l.addr, err))
		}
	}
	if !validBaseDN(c.Directory.LDAPBase) {
		errs = append(errs, fmt.Errorf("directory.ldap_base: %q is not a DN such as o=relais or dc=example,dc=fr", c.Directory.LDAPBase))
	}
	if c.Limits.MaxMessageBytes < 1024 || c.Limits.MaxMessageBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("limits.max_message_bytes: %d is outside 1 KiB..1 GiB", c.Limits.MaxMessageBytes))
	}
	if c.Limits.MaxRecipients < 1 || c.Limits.MaxRecipients > 10000 {
		errs = append(errs, fmt.Errorf("limits.max_recipients: %d is outside 1..10000", c.Limits.MaxRecipients))
	}
	for domain, addr := range c.Relay.Routes {
		if _, _, err := net.SplitHostPort(addr); err != nil || domain == "" {
			errs = append(errs, fmt.Errorf("relay.routes: %q = %q: want a domain and a host:port", domain, addr))
		}
	}
	if c.Relay.Expiry < time.Minute {
		errs = append(errs, fmt.Errorf("relay.expiry: %s is shorter than a minute", c.Relay.Expiry))
	}
	if c.Relay.DelayNotice <= 0 || c.Relay.DelayNotice >= c.Relay.Expiry {
		errs = append(errs, fmt.Errorf("relay.delay_notice: %s must be positive and shorter than relay.expiry", c.Relay.DelayNotice))
	}
	if c.Relay.Workers < 1 || c.Relay.Workers > 256 {
		errs = append(errs, fmt.Errorf("relay.workers: %d is outside 1..256", c.Relay.Workers))
	}
	switch c.Log {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log: %q is not one of debug, info, warn, error", c.Log))
	}
	return errors.Join(errs...)
}

// validBaseDN accepts a plain RFC 4514 DN: attribute=value pairs separated
// by commas, without escapes (a base DN is the administrator's choice, not
// untrusted input, and a simple one keeps clients' settings simple).
func validBaseDN(dn string) bool {
	if dn == "" {
		return false
	}
	for _, rdn := range strings.Split(dn, ",") {
		typ, val, ok := strings.Cut(strings.TrimSpace(rdn), "=")
		if !ok || typ == "" || strings.TrimSpace(val) == "" || strings.ContainsAny(val, `+"\<>;=#`) {
			return false
		}
		for _, r := range typ {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				return false
			}
		}
	}
	return true
}
