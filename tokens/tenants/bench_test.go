package tenants

import (
	"fmt"
	"runtime"
	"testing"
)

// tenantsDir makes a directory of n tenants, each with two files and a
// settings file, and returns it with the tenants' names.
func tenantsDir(b *testing.B, n int) (string, []string) {
	dir := b.TempDir()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("merchant-%05d", i)
		files := creds("id-"+names[i], "secret-"+names[i])
		files["settings"] = "MERCHANT_ID=" + names[i]
		writeTenant(b, dir, names[i], files)
	}
	return dir, names
}

// BenchmarkLookup looks up tenants among 10,000, and reports the heap that
// the tenants directory holds for each.
func BenchmarkLookup(b *testing.B) {
	dir, names := tenantsDir(b, 10_000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d := open(b, dir, nil, 0)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := d.Lookup(names[i%len(names)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(names)), "heap-B/tenant")
	runtime.KeepAlive(d)
}

// BenchmarkRescan scans 10,000 unchanged tenants again: what Watch costs
// every Rescan.
func BenchmarkRescan(b *testing.B) {
	dir, _ := tenantsDir(b, 10_000)
	d := open(b, dir, nil, 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.scan("rescan"); err != nil {
			b.Fatal(err)
		}
	}
}
