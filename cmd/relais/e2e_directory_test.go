package main

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/crypto/pki"
)

// TestDirectoryEndToEnd is an administrator importing the national files
// into a running server, then a practitioner's address book (ldapsearch,
// as Thunderbird queries it), hospital software (the JSON API through curl)
// and a FHIR client finding a colleague.
func TestDirectoryEndToEnd(t *testing.T) {
	in := startRelais(t, "")
	password := in.passwords[claire]
	require.NotEmpty(t, password)
	relais := func(args ...string) string {
		cmd := exec.Command(relaisBin, append(args, "--data", in.dir)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "relais %v: %s", args, out)
		return string(out)
	}

	// The administrator imports the files while the server runs.
	out := relais("directory", "import", "--kind", "rpps", filepath.Join("..", "..", "directory", "testdata", "rpps.txt"))
	assert.Regexp(t, `rpps: \d+ rows read \(UTF-8\)`, out)
	assert.Regexp(t, `professional +added \d+`, out)
	out = relais("directory", "import", "--kind", "mssante", filepath.Join("..", "..", "directory", "testdata", "mssante.txt"))
	assert.Regexp(t, `mailbox +added \d+`, out)
	// A re-import changes nothing.
	out = relais("directory", "import", "--kind", "rpps", filepath.Join("..", "..", "directory", "testdata", "rpps.txt"))
	assert.Regexp(t, `professional +added 0, updated 0, unchanged \d+, removed 0`, out)

	out = relais("directory", "search", "martineau")
	assert.Contains(t, out, "Claire MARTINEAU")
	assert.Contains(t, out, "claire.martineau@ch-etang.mssante.fr")
	out = relais("directory", "search", "zzzzzz")
	assert.Contains(t, out, "no match")

	// A certificate attached to the demo practitioner's address.
	ca, err := pki.NewCA("Test S/MIME CA")
	require.NoError(t, err)
	cert, err := ca.IssueServer("claire.martin.smime.test")
	require.NoError(t, err)
	certFile := filepath.Join(t.TempDir(), "claire.pem")
	require.NoError(t, os.WriteFile(certFile, pemCert(cert.Certificate[0]), 0o600))
	assert.Contains(t, relais("directory", "cert", "add", claire, certFile), "attached to "+claire)
	assert.Contains(t, relais("directory", "cert", "list", claire), "CN=claire.martin.smime.test")

	t.Run("ldapsearch", func(t *testing.T) {
		env := append(os.Environ(), "LDAPTLS_CACERT="+in.caFile(), "LDAPTLS_REQCERT=demand")
		ldapsearch := func(args ...string) string {
			if _, err := exec.LookPath("ldapsearch"); err != nil {
				t.Skip("ldapsearch is not installed (make test-deps installs ldap-utils)")
			}
			cmd := exec.Command("ldapsearch", args...)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "ldapsearch %v: %s", args, out)
			return string(out)
		}
		// Anonymous: the root DSE tells the base.
		out := ldapsearch("-H", "ldap://"+in.addrs["ldap"], "-x", "-s", "base", "-b", "", "namingContexts")
		assert.Contains(t, out, "namingContexts: o=relais")
		// Thunderbird's autocomplete, over StartTLS, bound as the user.
		out = ldapsearch("-H", "ldap://"+in.addrs["ldap"], "-ZZ", "-x", "-D", claire, "-w", password, "-b", "o=relais",
			"(|(cn=mart*)(mail=mart*)(sn=mart*)(givenName=mart*))", "cn", "mail")
		assert.Contains(t, out, "mail: "+claire, "the local account is a directory entry")
		assert.Contains(t, out, "mail: claire.martineau@ch-etang.mssante.fr", "the national extraction too")
		// The certificate, over LDAPS, as a mail client fetches it to encrypt.
		out = ldapsearch("-H", "ldaps://"+in.addrs["ldaps"], "-x", "-D", claire, "-w", password, "-b", "o=relais",
			"(mail="+claire+")", "userCertificate;binary")
		m := regexp.MustCompile(`(?m)^userCertificate;binary:: (.+)$`).FindStringSubmatch(unfoldLDIF(out))
		require.NotNil(t, m, "no certificate in:\n%s", out)
		der, err := base64.StdEncoding.DecodeString(m[1])
		require.NoError(t, err)
		assert.Equal(t, cert.Certificate[0], der)
	})

	t.Run("curl JSON API", func(t *testing.T) {
		out, err := runTool(t, "", "curl", "--silent", "--show-error", "--fail", "--cacert", in.caFile(), "-u", claire+":"+password,
			"https://"+in.addrs["http"]+"/api/v1/directory/search?q="+url.QueryEscape("claire mart"))
		require.NoError(t, err, out)
		var res struct {
			Results []struct {
				Kind         string `json:"kind"`
				Professional *struct {
					FamilyName string `json:"familyName"`
				} `json:"professional"`
			} `json:"results"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &res), out)
		require.NotEmpty(t, res.Results)
		var families []string
		for _, r := range res.Results {
			if r.Professional != nil {
				families = append(families, r.Professional.FamilyName)
			}
		}
		assert.Contains(t, families, "MARTINEAU")
		// Without credentials: 401.
		out, _ = runTool(t, "", "curl", "--silent", "--cacert", in.caFile(), "-o", "/dev/null", "-w", "%{http_code}",
			"https://"+in.addrs["http"]+"/api/v1/directory/search?q=mart")
		assert.Equal(t, "401", strings.TrimSpace(out))
	})

	t.Run("curl FHIR", func(t *testing.T) {
		out, err := runTool(t, "", "curl", "--silent", "--show-error", "--fail", "--cacert", in.caFile(), "-u", claire+":"+password,
			"https://"+in.addrs["http"]+"/fhir/Practitioner?family=martineau")
		require.NoError(t, err, out)
		var bundle struct {
			ResourceType string `json:"resourceType"`
			Type         string `json:"type"`
			Entry        []struct {
				Resource struct {
					ResourceType string `json:"resourceType"`
					Name         []struct {
						Family string `json:"family"`
					} `json:"name"`
				} `json:"resource"`
			} `json:"entry"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &bundle), out)
		assert.Equal(t, "Bundle", bundle.ResourceType)
		assert.Equal(t, "searchset", bundle.Type)
		require.NotEmpty(t, bundle.Entry)
		assert.Equal(t, "Practitioner", bundle.Entry[0].Resource.ResourceType)
		assert.Equal(t, "MARTINEAU", bundle.Entry[0].Resource.Name[0].Family)
	})

	// The demo trust list is there, and answers for its domains.
	assert.Regexp(t, `DOMAIN +DESCRIPTION`, relais("trust", "list"))
	cmd := exec.Command(relaisBin, "trust", "show", "nowhere.example", "--data", in.dir)
	out2, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out2), "not in the MSSanté trust space")
}

// unfoldLDIF joins LDIF continuation lines (RFC 2849: a line starting with
// one space continues the previous one).
func unfoldLDIF(s string) string {
	return strings.ReplaceAll(s, "\n ", "")
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
