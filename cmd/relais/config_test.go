package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "relais.toml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

func TestLoadConfigOverridesDefaults(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, `
data = "/var/lib/relais"
hostname = "mail.hopital.test"
[listen]
imaps = "0.0.0.0:993"
smtp = ""
[limits]
max_recipients = 20
`))
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "/var/lib/relais", cfg.Data)
	assert.Equal(t, "0.0.0.0:993", cfg.Listen.IMAPS)
	assert.Equal(t, "", cfg.Listen.SMTP, "an empty address disables the listener")
	assert.Equal(t, DefaultConfig().Listen.Submission, cfg.Listen.Submission, "unset keys keep their default")
	assert.Equal(t, 20, cfg.Limits.MaxRecipients)
	assert.False(t, cfg.Demo, "a configuration file runs without the demo unless it asks")
}

func TestLoadConfigRefusesUnknownKeys(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, "hostnme = \"typo\"\n[listen]\nimapz = \":1\"\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "hostnme")
	assert.Contains(t, err.Error(), "listen.imapz")
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Hostname = "bad host"
	cfg.Listen.IMAP = "no-port"
	cfg.Limits.MaxMessageBytes = 10
	cfg.Log = "loud"
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{"hostname", "listen.imap", "limits.max_message_bytes", "log"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestConfigCommands(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &out}
	require.NoError(t, run(e, []string{"config", "example"}))
	example := writeConfig(t, out.String())
	out.Reset()
	require.NoError(t, run(e, []string{"config", "check", "--config", example}), "the example must pass its own check")
	assert.Contains(t, out.String(), "OK")

	bad := writeConfig(t, "log = \"loud\"\n")
	err := run(e, []string{"config", "check", "--config", bad})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "log")
}
