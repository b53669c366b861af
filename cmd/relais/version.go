package main

import (
	"fmt"
	"io"
	"log/slog"

	"runtime/debug"

	"github.com/BurntSushi/toml"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func versionString() string {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return v
}

func runVersion(e *env, args []string) error {
	fs := newFlags(e, "version", "", "print the version")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	bi, _ := debug.ReadBuildInfo()
	goVersion := "unknown"
	if bi != nil {
		goVersion = bi.GoVersion
	}
	fmt.Fprintf(e.stdout, "relais %s (%s)\n", versionString(), goVersion)
	return nil
}

func runConfigCheck(e *env, args []string) error {
	fs := newFlags(e, "config check", "--config FILE", "validate a configuration file and report every problem")
	path := fs.String("config", "", "configuration `FILE` (TOML)")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 || *path == "" {
		return orUsage(fs, err)
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s:\n%w", *path, err)
	}
	fmt.Fprintf(e.stdout, "%s: OK\n", *path)
	return nil
}

func runConfigExample(e *env, args []string) error {
	fs := newFlags(e, "config example", "", "print a configuration file with every setting at its default")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "# relais configuration (TOML). Every value shown is the default of the embedded setup.")
	cfg := DefaultConfig()
	cfg.Database = "" // $RELAIS_DATABASE may hold a password
	return toml.NewEncoder(e.stdout).Encode(cfg)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
