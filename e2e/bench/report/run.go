package main

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Sections of a run, each with its raw output file <name>.txt and its
// commands <name>.cmd.
const (
	secSnapshot     = "snapshot"            // e2e/bench BenchmarkSnapshot, in rounds
	secSnapshotSeed = "snapshot-seed"       // e2e/seedbaseline BenchmarkSnapshot, in the same rounds
	secLarge        = "snapshot-large"      // the same at 10^6 keys (BENCH_LARGE=1)
	secLargeSeed    = "snapshot-large-seed" // e2e/seedbaseline's, in the same rounds
	secSim          = "sim"                 // e2e/bench BenchmarkSnapshotSim
	secSimSeed      = "sim-seed"            // e2e/seedbaseline BenchmarkSnapshotSim
	secWatch        = "watch"               // e2e/bench BenchmarkWatch
	secMerge        = "merge"               // e2e/bench BenchmarkMerge and BenchmarkPipeline
	secHwm          = "hwm"                 // hwm BenchmarkTracker
	secHwmSeed      = "hwm-seed"            // e2e/seedbaseline BenchmarkTracker
	secFanout       = "fanout"              // e2e/bench/fanout BenchmarkFanout
	secV3           = "v3"                  // e2e/bench BenchmarkSnapshotV3, in rounds
	secV3Large      = "v3-large"            // the same at 10^6 keys (BENCH_LARGE=1)
	secWatchV3      = "watch-v3"            // e2e/bench BenchmarkWatchV3
)

// Run is everything one bench.sh run left in its raw directory.
type Run struct {
	Meta     map[string]string
	Results  map[string]Results  // by section
	Commands map[string][]string // by section
	// NodeBuild is why the node binary could not be built; empty if it was.
	NodeBuild string
}

// Load reads a raw directory. Missing sections are left empty: the tables
// say "—" where a figure is missing.
func Load(dir string) (*Run, error) {
	run := &Run{Meta: map[string]string{}, Results: map[string]Results{}, Commands: map[string][]string{}}
	meta, err := os.ReadFile(filepath.Join(dir, "meta.txt"))
	if err != nil {
		return nil, err
	}
	for line := range strings.Lines(string(meta)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			run.Meta[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	for _, sec := range []string{secSnapshot, secSnapshotSeed, secLarge, secLargeSeed, secSim, secSimSeed, secWatch, secMerge, secHwm, secHwmSeed, secFanout, secV3, secV3Large, secWatchV3, secMigrate} {
		f, err := os.Open(filepath.Join(dir, sec+".txt"))
		if errors.Is(err, fs.ErrNotExist) {
			run.Results[sec] = Results{}
			continue
		}
		if err != nil {
			return nil, err
		}
		res, err := Parse(bufio.NewReader(f))
		f.Close()
		if err != nil {
			return nil, err
		}
		run.Results[sec] = res
		if cmds, err := os.ReadFile(filepath.Join(dir, sec+".cmd")); err == nil {
			for line := range strings.Lines(string(cmds)) {
				if line = strings.TrimRight(line, " \t\r\n"); line != "" {
					run.Commands[sec] = append(run.Commands[sec], line)
				}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "node-build.txt")); err == nil {
		run.NodeBuild = strings.TrimSpace(string(b))
	}
	return run, nil
}
