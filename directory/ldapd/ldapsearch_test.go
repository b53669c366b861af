package ldapd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-mssante/relais/directory/ldapd"
)

// OpenLDAP's ldapsearch (Debian ldap-utils, installed by
// scripts/test-deps.sh) as an independent client.

func ldapsearch(t *testing.T, e *env, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("ldapsearch")
	if err != nil {
		t.Skip("ldapsearch not installed (apt-get install ldap-utils)")
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, e.ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-LLL", "-o", "ldif-wrap=no"}, args...)...)
	cmd.Env = []string{
		"HOME=" + dir,                            // no ~/.ldaprc
		"LDAPCONF=" + filepath.Join(dir, "none"), // not /etc/ldap/ldap.conf
		"LDAPTLS_CACERT=" + caFile,
		"LDAPTLS_REQCERT=demand",
		"PATH=" + os.Getenv("PATH"),
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	if err != nil {
		t.Logf("ldapsearch %v: %v\n%s", args, err, stderr.String())
	}
	return out.String(), err
}

// ldifValues returns the values of attr in LDIF output, base64 decoded
// when the line is "attr:: ...".
func ldifValues(t *testing.T, ldif, attr string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, line := range strings.Split(ldif, "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(name, attr) {
			continue
		}
		if strings.HasPrefix(val, ": ") {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val[2:]))
			if err != nil {
				t.Fatalf("%s: bad base64: %v", attr, err)
			}
			out = append(out, b)
			continue
		}
		out = append(out, []byte(strings.TrimPrefix(val, " ")))
	}
	return out
}

func TestLdapsearchStartTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	out, err := ldapsearch(t, e, "-H", "ldap://"+e.plain, "-ZZ", "-x", "-D", userAddr, "-w", userPass,
		"-b", base, "(|(cn=mart*)(mail=mart*))", "cn", "mail")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, v := range ldifValues(t, out, "mail") {
		got[string(v)] = true
	}
	for _, want := range []string{remoteClair, remoteMarc, userAddr} {
		if !got[want] {
			t.Errorf("mail %s missing from ldapsearch output:\n%s", want, out)
		}
	}
	if got[remoteHel] {
		t.Errorf("%s should not match", remoteHel)
	}
	// cn has non-ASCII values (accents): ldapsearch prints them base64.
	if cns := ldifValues(t, out, "cn"); len(cns) == 0 {
		t.Errorf("no cn in output:\n%s", out)
	}
}

func TestLdapsearchLDAPSCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	out, err := ldapsearch(t, e, "-H", "ldaps://"+e.ldaps, "-x", "-D", userAddr, "-w", userPass,
		"-b", base, "(mail="+remoteClair+")", "userCertificate;binary")
	if err != nil {
		t.Fatal(err)
	}
	certs := ldifValues(t, out, "userCertificate;binary")
	if len(certs) != 1 || !bytes.Equal(certs[0], e.certDER) {
		t.Fatalf("userCertificate;binary: got %d values, want the stored DER; output:\n%s", len(certs), out)
	}
}

func TestLdapsearchRootDSE(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	out, err := ldapsearch(t, e, "-H", "ldap://"+e.plain, "-x", "-s", "base", "-b", "", "namingContexts")
	if err != nil {
		t.Fatal(err)
	}
	if v := ldifValues(t, out, "namingContexts"); len(v) != 1 || string(v[0]) != base {
		t.Fatalf("namingContexts: %q; output:\n%s", v, out)
	}
	// Anonymous search of the people is refused (exit code 50).
	_, err = ldapsearch(t, e, "-H", "ldap://"+e.plain, "-ZZ", "-x", "-b", base, "(cn=mart*)", "mail")
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 50 {
		t.Errorf("anonymous search: %v, want exit status 50 (insufficientAccessRights)", err)
	}
}
