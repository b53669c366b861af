// Package layering holds the test that keeps imports flowing one way
// (shared/STYLE.md 2): leaves know nothing of protocols, protocols know
// storage only through interfaces, and only cmd/relais wires everything.
package layering

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/relais-mssante/relais"

// forbidden maps a package prefix (relative to the module) to the module
// packages it must never depend on, directly or not. Only cmd/relais knows
// Prometheus (internal/metrics): the components declare observers.
var forbidden = map[string][]string{
	"storage":        {"cmd", "smtp", "imap", "chat", "directory", "document", "crypto", "internal/authn", "internal/metrics"},
	"crypto":         {"cmd", "smtp", "imap", "chat", "directory", "document", "storage", "internal/metrics"},
	"document":       {"cmd", "smtp", "imap", "chat", "directory", "storage", "crypto", "internal/metrics"},
	"smtp":           {"cmd", "imap", "chat", "storage/sqlite", "storage/postgres", "internal/metrics"},
	"imap":           {"cmd", "smtp", "chat", "directory", "document", "crypto", "storage/sqlite", "storage/postgres", "internal/metrics"},
	"chat":           {"cmd", "smtp", "imap", "storage/sqlite", "storage/postgres", "internal/metrics"},
	"directory":      {"cmd", "smtp", "imap", "chat", "storage/sqlite", "storage/postgres", "internal/metrics"},
	"internal/authn": {"cmd", "smtp", "imap", "chat", "storage/sqlite", "storage/postgres", "internal/metrics"},
}

type pkg struct {
	ImportPath string
	Deps       []string
}

func TestImportsFlowOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for prefix, bans := range forbidden {
			if rel != prefix && !strings.HasPrefix(rel, prefix+"/") {
				continue
			}
			checked++
			for _, dep := range p.Deps {
				if !strings.HasPrefix(dep, module+"/") {
					continue
				}
				drel := strings.TrimPrefix(dep, module+"/")
				for _, ban := range bans {
					if drel == ban || strings.HasPrefix(drel, ban+"/") {
						t.Errorf("%s depends on %s (forbidden: %s must not reach %s)", rel, drel, prefix, ban)
					}
				}
			}
		}
		// Nothing but cmd/relais may import cmd.
		for _, dep := range p.Deps {
			if strings.HasPrefix(dep, module+"/cmd") && !strings.HasPrefix(rel, "cmd") {
				t.Errorf("%s imports %s: only cmd/relais wires components", rel, dep)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package checked: go list returned nothing under the module")
	}
}
