// Command gen-directory writes a synthetic national directory file to
// standard output, for benchmarks:
//
//	go run ./bench/gen-directory --kind rpps --rows 2000000 > rpps.txt
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/relais-mssante/relais/directory/synth"
)

func main() {
	kind := flag.String("kind", "rpps", "file to generate: rpps, mssante or trustlist")
	rows := flag.Int("rows", 1000, "data lines (trustlist: Domaine elements)")
	seed := flag.Uint64("seed", 1, "random seed: the same seed writes the same file")
	win := flag.Bool("windows-1252", false, "write rpps or mssante in Windows-1252 instead of UTF-8")
	flag.Parse()
	o := synth.Options{Rows: *rows, Seed: *seed, Windows1252: *win}
	var err error
	switch *kind {
	case "rpps":
		err = synth.RPPS(os.Stdout, o)
	case "mssante":
		err = synth.MSSante(os.Stdout, o)
	case "trustlist":
		err = synth.TrustList(os.Stdout, o)
	default:
		err = fmt.Errorf("unknown kind %q (want rpps, mssante or trustlist)", *kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen-directory:", err)
		os.Exit(1)
	}
}
