// Command relais is the Relais secure health messaging server: an MSSanté
// mail operator (SMTP, submission, IMAP) in one binary, and its
// administration commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one subcommand: a path of words ("admin user add"), a
// one-line summary, and what runs it.
type command struct {
	path    string
	args    string // synopsis of the arguments after the flags
	summary string
	run     func(env *env, args []string) error
}

// env is what commands read and write, so tests can run them in-process.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// errUsage means the usage was printed already; exit status 2.
var errUsage = errors.New("usage")

func commands() []command {
	var cmds []command
	cmds = append(cmds, []command{
		{"serve", "[--data DIR] [--config FILE] [--smtp ADDR] ...", "run the mail server (the embedded default when no config is given)", runServe},
		{"admin domain add", "DOMAIN", "add a mail domain served here", runDomainAdd},
		{"admin domain list", "", "list the domains served here", runDomainList},
		{"admin user add", "ADDRESS [--name NAME] [--password-stdin]", "create an account with the default folders", runUserAdd},
		{"admin user list", "", "list the accounts", runUserList},
		{"admin user passwd", "ADDRESS --password-stdin", "set an account's password", runUserPasswd},
		{"directory import", "--kind rpps|mssante|trustlist FILE", "import a national file (RPPS extraction, MSSanté addresses, trust list); a re-import applies the differences", runDirectoryImport},
		{"directory search", "QUERY...", "search the professional directory", runDirectorySearch},
		{"directory cert add", "ADDRESS FILE", "attach a certificate to an address", runCertAdd},
		{"directory cert list", "ADDRESS", "list an address's certificates", runCertList},
		{"directory cert remove", "ADDRESS SHA256", "detach a certificate from an address", runCertRemove},
		{"trust list", "[--operators]", "list the domains (or operators) of the MSSanté trust space", runTrustList},
		{"trust show", "DOMAIN", "show a domain's trust-list entries", runTrustShow},
	}...)
	cmds = append(cmds, pkiCommands()...)
	cmds = append(cmds, queueCommands()...)
	cmds = append(cmds, tokenCommands()...)
	cmds = append(cmds, auditCommands()...)
	return append(cmds, []command{
		{"migrate", "--from sqlite:DIR --to postgres://...", "move an embedded installation to PostgreSQL (server stopped, target empty)", runMigrate},
		{"config check", "--config FILE", "validate a configuration file and report every problem", runConfigCheck},
		{"config example", "", "print a configuration file with every setting at its default", runConfigExample},
		{"version", "", "print the version", runVersion},
	}...)
}

func main() {
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	err := run(e, os.Args[1:])
	switch {
	case err == nil:
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	default:
		fmt.Fprintln(e.stderr, "relais:", err)
		os.Exit(1)
	}
}

// run finds the longest command path that prefixes args and runs it.
func run(e *env, args []string) error {
	var best *command
	bestLen := 0
	cmds := commands()
	for i := range cmds {
		words := strings.Fields(cmds[i].path)
		if len(words) <= len(args) && len(words) > bestLen && equalWords(words, args[:len(words)]) {
			best, bestLen = &cmds[i], len(words)
		}
	}
	if best == nil {
		if len(args) > 0 && args[0] != "help" && args[0] != "-h" && args[0] != "--help" {
			fmt.Fprintf(e.stderr, "relais: unknown command %q\n\n", strings.Join(args, " "))
			printUsage(e.stderr, cmds, args)
			return errUsage
		}
		printUsage(e.stdout, cmds, nil)
		return nil
	}
	return best.run(e, args[bestLen:])
}

func equalWords(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func printUsage(w io.Writer, cmds []command, prefix []string) {
	fmt.Fprintln(w, "Relais: a secure health messaging server (MSSanté mail operator).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: relais COMMAND [flags] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range cmds {
		if len(prefix) > 0 && !strings.HasPrefix(c.path, prefix[0]) {
			continue
		}
		fmt.Fprintf(w, "  %-22s %s\n", c.path, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "relais COMMAND --help" for a command's flags.`)
}

// newFlags returns a FlagSet whose --help prints the command's synopsis,
// summary and flags.
func newFlags(e *env, path, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("relais "+path, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: relais %s %s\n\n%s.\n", path, args, upperFirst(summary))
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(out, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses flags placed before or after the positional arguments
// ("user add ADDR --name X" and "user add --name X ADDR" both work).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(os.Stdout) // asked-for help goes to stdout, errors to stderr
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, flag.ErrHelp
			}
			return nil, errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if rest[0] == "--" {
			return append(positional, rest[1:]...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
