package main

import (
	"strings"
	"testing"
)

const wrkOut = `Running 2s test @ http://127.0.0.1:18555/x
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   389.22us  736.08us   8.63ms   91.70%
    Req/Sec    33.81k     4.64k   40.43k    76.19%
  Latency Distribution
     50%  166.00us
     75%  265.00us
     90%  811.00us
     99%    3.86ms
  70531 requests in 2.10s, 76.28MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 1, read 2, write 0, timeout 4
Requests/sec:  33585.04
Transfer/sec:     36.32MB
`

func TestParseWrk(t *testing.T) {
	got, err := parseWrk(strings.NewReader(wrkOut))
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{RPS: 33585.04, P50: 166, P99: 3860, Errors: 10}
	if got != want {
		t.Errorf("parseWrk() = %+v, want %+v", got, want)
	}
	if _, err := parseWrk(strings.NewReader("unable to connect to 127.0.0.1:1 Connection refused\n")); err == nil {
		t.Error("parseWrk(connection refused) = nil error, want one")
	}
}

const heyOut = `
Summary:
  Total:	2.0130 secs
  Slowest:	0.2570 secs
  Fastest:	0.2501 secs
  Average:	0.0004 secs
  Requests/sec:	991.5374

Status code distribution:
  [200]	1996 responses
  [503]	2 responses

Error distribution:
  [3]	Get "http://127.0.0.1:1/": dial tcp 127.0.0.1:1: connect: connection refused
`

func TestParseHey(t *testing.T) {
	got, err := parseHey(strings.NewReader(heyOut))
	if err != nil {
		t.Fatal(err)
	}
	if got.Responses != 1998 || got.OK() != 1996 || got.Errors != 3 || got.Fastest != 0.2501 || got.Slowest != 0.257 {
		t.Errorf("parseHey() = %+v, want 1998 responses, 1996 OK, 3 errors, fastest 0.2501, slowest 0.257", got)
	}
}

func TestParseGoBench(t *testing.T) {
	in := "goos: linux\nBenchmarkSidecar-2   \t  300000\t      4000 ns/op\t    2500 B/op\t      40 allocs/op\nBenchmarkX/a-b\t10\t5 ns/op\t1 B/op\t2 allocs/op\nPASS\n"
	got, err := parseGoBench(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []goBench{{"BenchmarkSidecar", 4000, 2500, 40}, {"BenchmarkX/a-b", 5, 1, 2}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parseGoBench() = %+v, want %+v", got, want)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
