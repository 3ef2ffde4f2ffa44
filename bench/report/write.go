package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// check is one of the targets, measured.
type check struct {
	name, measured, target string
	ok                     bool
}

// write prints the report as Markdown and returns the target checks.
func (r *report) write(w io.Writer) []check {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# Benchmark results\n\nWritten by `bench/run.sh` (via `bench/report`) from a real run; do not edit by hand.\n\n")
	p("## Machine and run\n\n| | |\n| --- | --- |\n")
	for _, kv := range r.meta {
		p("| %s | %s |\n", kv[0], strings.ReplaceAll(kv[1], "|", `\|`))
	}
	p("\n## Commands\n\n```sh\n%s\n```\n", r.commands)

	rps := medians(r.tput, func(w wrkResult) float64 { return w.RPS })
	p("\n## Throughput, 128 connections (`wrk -t1 -c128`)\n\n")
	if len(r.tput["routes"]) > 0 {
		p("routes is a sidecar with three routes (tezpay on its own port, juspay and alt under /juspay and /alt), measured on alt, the prefix looked up last.\n\n")
	}
	p("| target | req/s (median) | runs | errors |\n| --- | ---: | --- | ---: |\n")
	for _, t := range targets {
		if len(r.tput[t]) == 0 {
			continue
		}
		p("| %s | %.0f | %s | %d |\n", t, rps[t], joinRuns(r.tput[t], func(w wrkResult) float64 { return w.RPS }, "%.0f"), wrkErrors(r.tput[t]))
	}
	p("\n| ratio | value |\n| --- | ---: |\n")
	for _, d := range []string{"baseline", "nginx", "direct"} {
		p("| sidecar / %s | %.3f |\n", d, ratio(rps["sidecar"], rps[d]))
	}
	if len(r.tput["routes"]) > 0 {
		p("| routes / sidecar | %.3f |\n", ratio(rps["routes"], rps["sidecar"]))
	}

	p50 := medians(r.lat, func(w wrkResult) float64 { return w.P50 })
	p99 := medians(r.lat, func(w wrkResult) float64 { return w.P99 })
	p("\n## Latency, 8 connections (`wrk -t1 -c8 --latency`), µs\n\n| target | p50 (median) | p99 (median) | p50 runs | p99 runs | errors |\n| --- | ---: | ---: | --- | --- | ---: |\n")
	for _, t := range targets {
		if len(r.lat[t]) == 0 {
			continue
		}
		p("| %s | %.0f | %.0f | %s | %s | %d |\n", t, p50[t], p99[t],
			joinRuns(r.lat[t], func(w wrkResult) float64 { return w.P50 }, "%.0f"),
			joinRuns(r.lat[t], func(w wrkResult) float64 { return w.P99 }, "%.0f"), wrkErrors(r.lat[t]))
	}

	cpu := medians(r.cpu, func(c cpuRun) float64 { return c.usPerReq })
	p("\n## CPU and memory at 1000 req/s (`hey -c 10 -q 100`)\n\n")
	p("CPU is the process's utime+stime from `/proc/<pid>/stat` over the run, divided by the responses hey counted. ")
	p("Peak RSS is `VmHWM` from `/proc/<pid>/status`: after this phase (which runs first, on fresh processes), and at the end of the whole run (after the 128-connection runs).\n\n")
	p("| target | CPU µs/request (median) | runs | vCPU per 1000 req/s | responses (non-200, errors) | peak RSS MiB at 1000 req/s | peak RSS MiB whole run |\n| --- | ---: | --- | ---: | --- | ---: | ---: |\n")
	for _, t := range targets {
		if len(r.cpu[t]) == 0 {
			continue
		}
		var resp, bad int
		for _, c := range r.cpu[t] {
			resp += c.hey.Responses
			bad += c.hey.Responses - c.hey.OK() + c.hey.Errors
		}
		p("| %s | %.1f | %s | %.3f | %d (%d) | %.1f | %.1f |\n", t, cpu[t],
			joinRuns(r.cpu[t], func(c cpuRun) float64 { return c.usPerReq }, "%.1f"),
			cpu[t]/1000, resp, bad, r.rss[t][0]/1024, r.rss[t][1]/1024)
	}

	p("\n## Token endpoint calls\n\n| | calls | |\n| --- | ---: | --- |\n")
	p("| whole run (one sidecar, every phase above) | %d | |\n", r.tokens["whole_run"])
	p("| cold start: a fresh sidecar, 1024 concurrent connections the moment its port accepts | %d | %d/%d responses 200, %d errors; fastest %.0f ms, slowest %.0f ms |\n",
		r.tokens["cold_start"], r.cold.OK(), r.cold.Responses+r.cold.Errors, r.cold.Errors, r.cold.Fastest*1000, r.cold.Slowest*1000)

	gb := map[string]goBench{}
	if len(r.gobench) > 0 {
		p("\n## Go benchmarks, in-memory transport (`go test -bench`), medians\n\n| benchmark | ns/op | B/op | allocs/op | runs |\n| --- | ---: | ---: | ---: | ---: |\n")
		var names []string
		runs := map[string][]goBench{}
		for _, b := range r.gobench {
			if _, ok := runs[b.Name]; !ok {
				names = append(names, b.Name)
			}
			runs[b.Name] = append(runs[b.Name], b)
		}
		for _, n := range names {
			m := goBench{Name: n}
			m.NsOp = median(collect(runs[n], func(b goBench) float64 { return b.NsOp }))
			m.BytesOp = median(collect(runs[n], func(b goBench) float64 { return b.BytesOp }))
			m.Alloc = median(collect(runs[n], func(b goBench) float64 { return b.Alloc }))
			gb[n] = m
			p("| %s | %.0f | %.0f | %.0f | %d |\n", n, m.NsOp, m.BytesOp, m.Alloc, len(runs[n]))
		}
	}

	checks := r.checks(rps, p99, cpu, gb)
	p("\n## Targets (issues 6, 13 and 16)\n\nOn a machine whose cores are shared with the load generators (and neighbours), the runs' spread can exceed the throughput and p99 margins: read a pass or fail there together with the ranges.\n\n| check | measured | target | result |\n| --- | --- | --- | --- |\n")
	for _, c := range checks {
		p("| %s | %s | %s | %s |\n", c.name, c.measured, c.target, passFail(c.ok))
	}
	return checks
}

func (r *report) checks(rps, p99, cpu map[string]float64, gb map[string]goBench) []check {
	const mib = 1024.0
	tr := ratio(rps["sidecar"], rps["baseline"])
	dp99 := p99["sidecar"] - p99["baseline"]
	cr := ratio(cpu["sidecar"], cpu["baseline"])
	rss := r.rss["sidecar"][0] / mib
	errs := 0
	for _, t := range targets {
		errs += wrkErrors(r.tput[t]) + wrkErrors(r.lat[t])
		for _, c := range r.cpu[t] {
			errs += c.hey.Responses - c.hey.OK() + c.hey.Errors
		}
	}
	rpsOf := func(w wrkResult) float64 { return w.RPS }
	p99Of := func(w wrkResult) float64 { return w.P99 }
	cpuOf := func(c cpuRun) float64 { return c.usPerReq }
	cs := []check{
		{"throughput, sidecar / baseline", fmt.Sprintf("%.3f (runs: sidecar %s, baseline %s req/s)", tr,
			span(r.tput["sidecar"], rpsOf), span(r.tput["baseline"], rpsOf)), "≥ 0.95", tr >= 0.95},
		{"p99 at 8 connections, sidecar − baseline", fmt.Sprintf("%+.0f µs (runs: sidecar %s, baseline %s µs)", dp99,
			span(r.lat["sidecar"], p99Of), span(r.lat["baseline"], p99Of)), "≤ +100 µs", len(r.lat["sidecar"]) > 0 && dp99 <= 100},
		{"CPU per request at 1000 req/s, sidecar / baseline", fmt.Sprintf("%.3f (%.1f / %.1f µs; runs: sidecar %s, baseline %s µs)", cr,
			cpu["sidecar"], cpu["baseline"], span(r.cpu["sidecar"], cpuOf), span(r.cpu["baseline"], cpuOf)), "≤ 1.05", cr > 0 && cr <= 1.05},
		{"peak RSS of the sidecar at 1000 req/s", fmt.Sprintf("%.1f MiB", rss), "≤ 20 MiB", rss > 0 && rss <= 20},
		{"token endpoint calls, whole run", fmt.Sprint(r.tokens["whole_run"]), "1", r.tokens["whole_run"] == 1},
		{"token endpoint calls, cold start under 1024 connections", fmt.Sprintf("%d (%d/1024 answered 200)", r.tokens["cold_start"], r.cold.OK()), "1, all 200", r.tokens["cold_start"] == 1 && r.cold.OK() == 1024},
	}
	if len(r.tput["routes"]) > 0 {
		rr := ratio(rps["routes"], rps["sidecar"])
		cs = append(cs, check{"throughput, three-route sidecar (alt, by prefix) / sidecar", fmt.Sprintf("%.3f (runs: routes %s, sidecar %s req/s)", rr,
			span(r.tput["routes"], rpsOf), span(r.tput["sidecar"], rpsOf)), "≥ 0.95", rr >= 0.95})
	}
	bare, ok1 := gb["BenchmarkBareReverseProxy"]
	side, ok2 := gb["BenchmarkSidecar"]
	if ok1 && ok2 {
		d := side.Alloc - bare.Alloc
		cs = append(cs, check{"allocations per request, sidecar − bare ReverseProxy", fmt.Sprintf("%+.0f (%.0f vs %.0f)", d, side.Alloc, bare.Alloc), "≤ 0", d <= 0})
	}
	if router, ok := gb["BenchmarkPrefixRouter"]; ok {
		cs = append(cs, check{"allocations per request of the routes' prefix router", fmt.Sprintf("%.0f (%.0f ns/op)", router.Alloc, router.NsOp), "0", router.Alloc == 0})
	}
	return append(cs, check{"load runs without errors (non-2xx, socket, hey)", fmt.Sprint(errs), "0", errs == 0})
}

func medians[T any](m map[string][]T, f func(T) float64) map[string]float64 {
	out := map[string]float64{}
	for t, rs := range m {
		out[t] = median(collect(rs, f))
	}
	return out
}

func collect[T any](rs []T, f func(T) float64) []float64 {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	return vs
}

func joinRuns[T any](rs []T, f func(T) float64, format string) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprintf(format, f(r))
	}
	return strings.Join(s, ", ")
}

// span returns "min–max" of the runs' values.
func span[T any](rs []T, f func(T) float64) string {
	vs := collect(rs, f)
	if len(vs) == 0 {
		return "none"
	}
	lo, hi := slices.Min(vs), slices.Max(vs)
	return fmt.Sprintf("%.0f–%.0f", lo, hi)
}

func wrkErrors(rs []wrkResult) int {
	n := 0
	for _, r := range rs {
		n += r.Errors
	}
	return n
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
