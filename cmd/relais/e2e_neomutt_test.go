package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNeomuttReadsMailbox drives a real terminal mail client: neomutt in a
// tmux session opens the IMAPS inbox, lists the message, and shows its body.
func TestNeomuttReadsMailbox(t *testing.T) {
	for _, tool := range []string{"neomutt", "tmux"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make test-deps installs it)", tool)
		}
	}
	in := startRelais(t, "")
	require.NoError(t, deliverInbound(in, lucas, "neomutt-1@other-operator.test", "Compte rendu pour neomutt"))

	dir := t.TempDir()
	muttrc := filepath.Join(dir, "muttrc")
	conf := fmt.Sprintf(`set folder="imaps://%s/"
set spoolfile="+INBOX"
set imap_user="%s"
set imap_pass="%s"
set ssl_ca_certificates_file="%s"
set ssl_force_tls=yes
set certificate_file="%s"
set header_cache=""
set message_cachedir=""
set imap_check_subscribed=no
set mail_check=5
set pager_stop=yes
set charset="utf-8"
set sort=date
`, in.addrs["imaps"], lucas, in.passwords[lucas], in.caFile(), filepath.Join(dir, "certificates"))
	require.NoError(t, os.WriteFile(muttrc, []byte(conf), 0o600))

	session := fmt.Sprintf("relais-neomutt-%d", os.Getpid())
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", args...).CombinedOutput()
		require.NoError(t, err, "tmux %v: %s", args, out)
		return string(out)
	}
	tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40",
		"env", "TERM=xterm-256color", "LANG=C.UTF-8", "HOME="+dir, "neomutt", "-n", "-F", muttrc)
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", session).Run() })

	waitScreen := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		var screen string
		for time.Now().Before(deadline) {
			screen = tmux("capture-pane", "-p", "-t", session)
			if strings.Contains(screen, want) {
				return screen
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("neomutt never showed %q; screen:\n%s", want, screen)
		return ""
	}
	waitScreen("Compte rendu pour neomutt")
	tmux("send-keys", "-t", session, "Enter")
	waitScreen("Corps du message neomutt-1@other-operator.test")
	tmux("send-keys", "-t", session, "q", "q")
}
