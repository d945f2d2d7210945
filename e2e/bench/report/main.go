// Command report turns the raw outputs of e2e/bench/bench.sh into
// BENCHMARKS.md: it reads the run's description (meta.txt), each section's
// commands (<section>.cmd) and `go test -bench` output (<section>.txt) from
// -raw, and writes the tables to -o.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	raw := flag.String("raw", "", "directory holding bench.sh's raw outputs")
	out := flag.String("o", "BENCHMARKS.md", "file to (re)write")
	flag.Parse()
	if *raw == "" {
		fmt.Fprintln(os.Stderr, "report: -raw is required")
		os.Exit(2)
	}
	run, err := Load(*raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, []byte(Render(run)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}
