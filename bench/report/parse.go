package main

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// wrkResult is what the report takes from one wrk run.
type wrkResult struct {
	RPS      float64 // Requests/sec
	P50, P99 float64 // microseconds; zero without --latency
	Errors   int     // non-2xx/3xx responses plus socket errors
}

// parseWrk reads wrk's text output.
func parseWrk(r io.Reader) (wrkResult, error) {
	var res wrkResult
	var seenRPS bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return res, fmt.Errorf("wrk: Requests/sec: %w", err)
			}
			res.RPS, seenRPS = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			v, err := parseWrkDuration(f[1])
			if err != nil {
				return res, err
			}
			if f[0] == "50%" {
				res.P50 = v
			} else {
				res.P99 = v
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			n, _ := strconv.Atoi(f[4])
			res.Errors += n
		case len(f) > 2 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 3; i < len(f); i += 2 {
				n, _ := strconv.Atoi(strings.TrimSuffix(f[i], ","))
				res.Errors += n
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, err
	}
	if !seenRPS {
		return res, fmt.Errorf("wrk: no Requests/sec line")
	}
	return res, nil
}

// parseWrkDuration converts wrk's "166.00us", "3.86ms", "1.20s", "2.00m" to
// microseconds.
func parseWrkDuration(s string) (float64, error) {
	units := []struct {
		suffix string
		us     float64
	}{{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}, {"h", 3600e6}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk: duration %q: %w", s, err)
			}
			return v * u.us, nil
		}
	}
	return 0, fmt.Errorf("wrk: duration %q: unknown unit", s)
}

// heyResult is what the report takes from one hey run.
type heyResult struct {
	Responses int            // responses of any status
	Status    map[string]int // by status code
	Errors    int            // requests that got no response
	Fastest   float64        // seconds
	Slowest   float64        // seconds
}

// OK returns how many responses had status 200.
func (h heyResult) OK() int { return h.Status["200"] }

// parseHey reads hey's default summary output.
func parseHey(r io.Reader) (heyResult, error) {
	res := heyResult{Status: map[string]int{}}
	section := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case !strings.HasPrefix(line, " "):
			section = strings.TrimSuffix(line, ":")
		case len(f) == 3 && (f[0] == "Fastest:" || f[0] == "Slowest:") && section == "Summary":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return res, fmt.Errorf("hey: %s %w", f[0], err)
			}
			if f[0] == "Fastest:" {
				res.Fastest = v
			} else {
				res.Slowest = v
			}
		case section == "Status code distribution" && len(f) == 3:
			n, err := strconv.Atoi(f[1])
			if err != nil {
				return res, fmt.Errorf("hey: status line %q: %w", line, err)
			}
			res.Status[strings.Trim(f[0], "[]")] += n
			res.Responses += n
		case section == "Error distribution" && len(f) > 1:
			n, err := strconv.Atoi(strings.Trim(f[0], "[]"))
			if err != nil {
				return res, fmt.Errorf("hey: error line %q: %w", line, err)
			}
			res.Errors += n
		}
	}
	if err := sc.Err(); err != nil {
		return res, err
	}
	if res.Responses == 0 && res.Errors == 0 {
		return res, fmt.Errorf("hey: no status code or error distribution")
	}
	return res, nil
}

// goBench is one `go test -bench -benchmem` result line.
type goBench struct {
	Name                 string // without the -GOMAXPROCS suffix
	NsOp, BytesOp, Alloc float64
}

// parseGoBench reads the result lines of `go test -bench -benchmem`.
func parseGoBench(r io.Reader) ([]goBench, error) {
	var out []goBench
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		b := goBench{Name: f[0]}
		if i := strings.LastIndexByte(b.Name, '-'); i > 0 {
			if _, err := strconv.Atoi(b.Name[i+1:]); err == nil {
				b.Name = b.Name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				b.NsOp = v
			case "B/op":
				b.BytesOp = v
			case "allocs/op":
				b.Alloc = v
			}
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

// median returns the median of vs; zero for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
