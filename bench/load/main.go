// Command load is the load client of bench/compare.sh (issue 7): the same
// workloads, over the same protocols, against Postfix+Dovecot and against
// Relais. It is written in Go so that the client is never the bottleneck.
//
//	load ingest -smtp ADDR -imap ADDR -from ADDR -to A,B,... -n 2000 -c 8
//	load imap   -imap ADDR -users A,B,... -clients 50 -duration 30s
//	load idle   -imap ADDR -users A,B,... -n 1000 -ready FILE
//	load mem PID          (RSS and PSS of PID and its descendants, KiB)
//	load ports N          (N free loopback TCP ports)
//	load wait ADDR...     (until each address accepts TCP connections)
//
// Every workload speaks TLS (STARTTLS, RFC 3207 for SMTP, RFC 9051 6.2.1
// for IMAP) and authenticates with a password (AUTH PLAIN, RFC 4954 and
// RFC 4616; IMAP LOGIN), as a mail client does. Certificates are not
// verified: both servers use certificates made for the run. Results are
// printed as "RESULT key=value..." lines for the script to read.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("load: ")
	if len(os.Args) < 2 {
		usage()
	}
	cmds := map[string]func([]string) error{
		"ingest": runIngest,
		"imap":   runIMAP,
		"idle":   runIdle,
		"mem":    runMem,
		"ports":  runPorts,
		"wait":   runWait,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		usage()
	}
	if err := run(os.Args[2:]); err != nil {
		log.Fatalf("%s: %v", os.Args[1], err)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: load ingest|imap|idle|mem|ports|wait [flags] (load CMD -h for the flags)")
	os.Exit(2)
}

// clientTLS is the TLS configuration of every connection: the servers'
// certificates are made for the run, so they are not verified.
func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
}

// dialIMAP connects with STARTTLS and logs in.
func dialIMAP(addr, user, password string) (*imapclient.Client, error) {
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: clientTLS()})
	if err != nil {
		return nil, fmt.Errorf("imap: dial %s: %w", addr, err)
	}
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap: login %s: %w", user, err)
	}
	return c, nil
}

// list splits a comma-separated flag value.
func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// accountFlags are the flags every IMAP workload shares.
type accountFlags struct {
	imap     *string
	users    *string
	password *string
}

func addAccountFlags(fs *flag.FlagSet) accountFlags {
	return accountFlags{
		imap:     fs.String("imap", "", "IMAP `ADDR` (STARTTLS)"),
		users:    fs.String("users", "", "comma-separated account addresses"),
		password: fs.String("password", "", "password of every account (default $LOAD_PASSWORD)"),
	}
}

func (a accountFlags) check() ([]string, error) {
	users := list(*a.users)
	if *a.password == "" {
		*a.password = envPassword()
	}
	if *a.imap == "" || len(users) == 0 || *a.password == "" {
		return nil, fmt.Errorf("-imap, -users and a password are required")
	}
	return users, nil
}

// envPassword is the password when no -password is given, so that it
// does not show in the process list.
func envPassword() string { return os.Getenv("LOAD_PASSWORD") }

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
