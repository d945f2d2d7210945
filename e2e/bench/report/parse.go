package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Results holds every sample of one raw output: per benchmark name (without
// the "Benchmark" prefix and the -GOMAXPROCS suffix), per unit, the values
// in the order the runs printed them.
type Results map[string]map[string][]float64

// resultLine is a result line of `go test -bench`: the name, the iteration
// count, then value/unit pairs separated by tabs.
var resultLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)

// Parse reads `go test -bench` output and returns its samples. Lines that
// are not result lines (headers, PASS, logs) are skipped.
func Parse(r io.Reader) (Results, error) {
	res := Results{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		m := resultLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		fields := strings.Fields(m[3])
		if len(fields)%2 != 0 {
			continue // a log line that happens to start like a result
		}
		units := map[string]float64{}
		ok := true
		for i := 0; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				ok = false
				break
			}
			units[fields[i+1]] = v
		}
		if !ok {
			continue
		}
		if res[m[1]] == nil {
			res[m[1]] = map[string][]float64{}
		}
		for u, v := range units {
			res[m[1]][u] = append(res[m[1]][u], v)
		}
	}
	return res, sc.Err()
}

// Merge adds every sample of other to r.
func (r Results) Merge(other Results) {
	for name, units := range other {
		if r[name] == nil {
			r[name] = map[string][]float64{}
		}
		for u, vs := range units {
			r[name][u] = append(r[name][u], vs...)
		}
	}
}

// Stat is the median, minimum and maximum of a set of samples; N is 0 when
// there were none.
type Stat struct {
	Median, Min, Max float64
	N                int
}

// Get returns the Stat of name's samples in unit.
func (r Results) Get(name, unit string) Stat { return statOf(r[name][unit]) }

// Paired returns the Stat of the ratios name/base, sample by sample, in
// unit: for runs where the i-th sample of each was measured side by side.
// If the two do not have as many samples, a run failed and the pairs are
// lost: it returns the ratio of the medians alone.
func (r Results) Paired(name, base, unit string) Stat {
	vs, bs := r[name][unit], r[base][unit]
	if len(vs) != len(bs) || len(vs) == 0 {
		ratio := r.Get(name, unit).Ratio(r.Get(base, unit))
		if math.IsNaN(ratio) {
			return Stat{}
		}
		return Stat{Median: ratio, Min: ratio, Max: ratio, N: 1}
	}
	ratios := make([]float64, len(vs))
	for i := range vs {
		ratios[i] = vs[i] / bs[i]
	}
	return statOf(ratios)
}

func statOf(samples []float64) Stat {
	vs := slices.Clone(samples)
	if len(vs) == 0 {
		return Stat{}
	}
	slices.Sort(vs)
	med := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		med = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return Stat{Median: med, Min: vs[0], Max: vs[len(vs)-1], N: len(vs)}
}

// Ratio returns s's median over base's, NaN if either is missing.
func (s Stat) Ratio(base Stat) float64 {
	if s.N == 0 || base.N == 0 || base.Median == 0 {
		return math.NaN()
	}
	return s.Median / base.Median
}

// Format prints the median and, when there were several samples, the range,
// each value scaled by div and printed with f.
func (s Stat) Format(div float64, f func(float64) string) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 || s.Min == s.Max {
		return f(s.Median / div)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median/div), f(s.Min/div), f(s.Max/div))
}
