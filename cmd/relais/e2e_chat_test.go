package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// chatE2EDir holds the browser script and its npm lock file;
// scripts/browser-deps.sh runs npm ci there.
var chatE2EDir = filepath.Join("testdata", "chat-e2e")

// chromiumPath is Debian's chromium (scripts/browser-deps.sh installs it).
const chromiumPath = "/usr/bin/chromium"

// TestChatBrowserEndToEnd drives the chat web app in headless Chromium
// with playwright-core (testdata/chat-e2e/chat.e2e.mjs): two practitioners
// in two browser contexts log in, Claire creates a patient room and adds
// Lucas from the directory search, they exchange messages and see each
// other's read markers; a discharge letter for that patient sent through
// the documents API (curl, an API token made by the administrator) to
// Claire appears as a document message in the room, for both, within 2 s
// (a Playwright wait, not a Go timer), with a notification for Claire.
// Screenshots go to $RELAIS_E2E_SCREENSHOTS, or the test's temporary
// directory.
func TestChatBrowserEndToEnd(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (make test-deps installs it)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("%s is not installed (make test-deps installs it)", chromiumPath)
	}
	if _, err := os.Stat(filepath.Join(chatE2EDir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Skip("playwright-core is not installed (make test-deps runs npm ci in cmd/relais/testdata/chat-e2e)")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed (make test-deps installs it)")
	}
	shots := os.Getenv("RELAIS_E2E_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(shots, 0o755))

	in := startRelais(t, "")
	out := in.relais("admin", "token", "create", "secretariat.chu@demo.mssante.test", "--name", "DPI de test")
	m := tokenLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	cda, err := filepath.Abs(filepath.Join("..", "..", "document", "testdata", "discharge.xml"))
	require.NoError(t, err)
	require.NotEmpty(t, in.passwords[claire])
	require.NotEmpty(t, in.passwords[lucas])

	// The whole browser run is bounded; the waits inside have their own
	// budgets (2 s for the document).
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "chat.e2e.mjs")
	cmd.Dir = chatE2EDir
	cmd.Env = append(os.Environ(),
		"RELAIS_BASE=https://"+in.addrs["http"],
		"RELAIS_USER_A="+claire, "RELAIS_PASS_A="+in.passwords[claire], "RELAIS_NAME_A=Claire Martin",
		"RELAIS_USER_B="+lucas, "RELAIS_PASS_B="+in.passwords[lucas], "RELAIS_NAME_B=Lucas Bernard",
		"RELAIS_TOKEN="+m[1], "RELAIS_CA="+in.caFile(), "RELAIS_CDA="+cda,
		"RELAIS_INS=285037512345688", // the synthetic patient of discharge.xml
		"RELAIS_SHOTS="+shots, "RELAIS_CHROMIUM="+chromiumPath,
	)
	output, err := cmd.CombinedOutput()
	t.Logf("browser run:\n%s", output)
	require.NoError(t, err, "the browser scenario failed (screenshots in %s)", shots)
	require.True(t, strings.HasSuffix(strings.TrimSpace(string(output)), "ok"))
	for _, name := range []string{"01-login", "04-room-a", "05-room-b", "06-document-a", "07-notifications"} {
		_, err := os.Stat(filepath.Join(shots, name+".png"))
		require.NoError(t, err, "screenshot %s", name)
	}
}
