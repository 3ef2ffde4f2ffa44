// Command report turns the raw outputs that bench/run.sh collects (wrk, hey,
// /proc readings, go test -bench) into bench/RESULTS.md: medians, ratios and
// the target checks.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The targets, in the order the tables list them. routes, the three-route
// sidecar, is measured for throughput only.
var targets = []string{"direct", "nginx", "baseline", "sidecar", "routes"}

type cpuRun struct {
	usPerReq float64
	hey      heyResult
}

type report struct {
	meta     [][2]string // key, value; in file order
	commands string
	tput     map[string][]wrkResult
	lat      map[string][]wrkResult
	cpu      map[string][]cpuRun
	rss      map[string][2]float64 // kB: peak after the fixed-rate phase, peak over the whole run
	tokens   map[string]int        // whole_run, cold_start
	cold     heyResult
	gobench  []goBench
}

func main() {
	dir := flag.String("dir", "", "raw results directory written by bench/run.sh")
	out := flag.String("out", "bench/RESULTS.md", "report to write")
	clk := flag.Float64("clk-tck", 100, "kernel clock ticks per second (getconf CLK_TCK)")
	strict := flag.Bool("strict", false, "exit 1 when a target is missed")
	flag.Parse()
	if *dir == "" {
		log.Fatal("report: -dir is required")
	}
	r, err := load(*dir, *clk)
	if err != nil {
		log.Fatalf("report: %v", err)
	}
	var buf bytes.Buffer
	checks := r.write(&buf)
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		log.Fatalf("report: %v", err)
	}
	failed := 0
	for _, c := range checks {
		fmt.Printf("%-4s %s: %s (target %s)\n", passFail(c.ok), c.name, c.measured, c.target)
		if !c.ok {
			failed++
		}
	}
	fmt.Printf("wrote %s\n", *out)
	if *strict && failed > 0 {
		os.Exit(1)
	}
}

func load(dir string, clk float64) (*report, error) {
	r := &report{
		tput: map[string][]wrkResult{}, lat: map[string][]wrkResult{},
		cpu: map[string][]cpuRun{}, rss: map[string][2]float64{}, tokens: map[string]int{},
	}
	var err error
	if r.meta, err = readPairs(filepath.Join(dir, "meta.tsv"), "\t"); err != nil {
		return nil, err
	}
	cmds, err := os.ReadFile(filepath.Join(dir, "commands.txt"))
	if err != nil {
		return nil, err
	}
	r.commands = strings.TrimSpace(string(cmds))
	for _, t := range targets {
		for _, phase := range []struct {
			name string
			into map[string][]wrkResult
		}{{"tput", r.tput}, {"lat", r.lat}} {
			for _, f := range runFiles(dir, phase.name, t, ".txt") {
				w, err := parseFile(f, parseWrk)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", f, err)
				}
				phase.into[t] = append(phase.into[t], w)
			}
		}
		for _, f := range runFiles(dir, "cpu", t, ".txt") {
			h, err := parseFile(f, parseHey)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			ticks, err := readNumbers(strings.TrimSuffix(f, ".txt")+".ticks", 2)
			if err != nil {
				return nil, err
			}
			run := cpuRun{hey: h}
			if h.Responses > 0 {
				run.usPerReq = (ticks[1] - ticks[0]) / clk * 1e6 / float64(h.Responses)
			}
			r.cpu[t] = append(r.cpu[t], run)
		}
		if kb, err := readNumbers(filepath.Join(dir, "rss", t), 2); err == nil {
			r.rss[t] = [2]float64{kb[0], kb[1]}
		}
	}
	tok, err := readPairs(filepath.Join(dir, "tokens"), " ")
	if err != nil {
		return nil, err
	}
	for _, kv := range tok {
		n, err := strconv.Atoi(kv[1])
		if err != nil {
			return nil, fmt.Errorf("tokens: %q: %w", kv[1], err)
		}
		r.tokens[kv[0]] = n
	}
	if r.cold, err = parseFile(filepath.Join(dir, "cold.txt"), parseHey); err != nil {
		return nil, fmt.Errorf("cold.txt: %w", err)
	}
	if f, err := os.Open(filepath.Join(dir, "gobench.txt")); err == nil {
		r.gobench, err = parseGoBench(f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// runFiles returns dir/phase/target.N.ext, ordered by N.
func runFiles(dir, phase, target, ext string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, phase, target+".*"+ext))
	run := func(f string) int {
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), target+"."), ext))
		return n
	}
	sort.Slice(files, func(i, j int) bool { return run(files[i]) < run(files[j]) })
	return files
}

func parseFile[T any](name string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(name)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f)
}

// readPairs reads "key<sep>value" lines.
func readPairs(name, sep string) ([][2]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), sep); ok {
			out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return out, sc.Err()
}

// readNumbers reads n whitespace-separated numbers from a file.
func readNumbers(name string, n int) ([]float64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(b))
	if len(f) != n {
		return nil, fmt.Errorf("%s: %d numbers, want %d", name, len(f), n)
	}
	out := make([]float64, n)
	for i, s := range f {
		if out[i], err = strconv.ParseFloat(s, 64); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return out, nil
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}
