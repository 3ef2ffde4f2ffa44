package proxy

import (
	"maps"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// pairs is the parameters name, value, name, value….
func pairs(kv ...string) paygate.Params {
	var p paygate.Params
	for i := 0; i+1 < len(kv); i += 2 {
		p = append(p, paygate.Param{Key: kv[i], Value: kv[i+1]})
	}
	return p
}

func TestParseForm(t *testing.T) {
	tests := []struct {
		in      string
		want    paygate.Params
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "a=1&b=2", want: pairs("a", "1", "b", "2")},
		{in: "b=2&a=1&b=3", want: pairs("b", "2", "a", "1", "b", "3")},
		{in: "&&a=1&", want: pairs("a", "1")},
		{in: "flag&a=", want: pairs("flag", "", "a", "")},
		{in: "=v", want: pairs("", "v")},
		{in: "a=x%26y&b=c%3Dd", want: pairs("a", "x&y", "b", "c=d")},
		{in: "Desc=Zahlung+f%C3%BCr+Caf%C3%A9", want: pairs("Desc", "Zahlung für Café")},
		{in: "a=b=c", want: pairs("a", "b=c")},
		{in: "a;b=1", want: pairs("a;b", "1")},
		{in: "a=%zz", wantErr: true},
		{in: "%=1", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseForm(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("parseForm(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseFormBound(t *testing.T) {
	atBound := strings.Repeat("a=1&", maxFormPairs-1) + "a=1"
	if got, err := parseForm(atBound); err != nil || len(got) != maxFormPairs {
		t.Errorf("parseForm(%d pairs) = %d pairs, %v; want %d, no error", maxFormPairs, len(got), err, maxFormPairs)
	}
	for _, s := range []string{atBound + "&", strings.Repeat("&", 1<<20), strings.Repeat("a&", 1<<19)} {
		if got, err := parseForm(s); err == nil {
			t.Errorf("parseForm(%d bytes, %d '&') = %d pairs, no error; want an error", len(s), strings.Count(s, "&"), len(got))
		}
	}
	big := strings.Repeat("&", 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	parseForm(big)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("parseForm(1 MiB of '&') allocated %d bytes, want at most 64 KiB", n)
	}
}

func TestAppendForm(t *testing.T) {
	params := pairs("PayID", "a b", "x&y", "1=2", "Desc", "für", "", "")
	want := "PayID=a+b&x%26y=1%3D2&Desc=f%C3%BCr&="
	if got := string(appendForm([]byte("prefix:"), params)); got != "prefix:"+want {
		t.Errorf("appendForm() = %q, want %q", got, "prefix:"+want)
	}
	if got := appendForm(nil, nil); len(got) != 0 {
		t.Errorf("appendForm(nil) = %q, want empty", got)
	}
}

func TestIsForm(t *testing.T) {
	tests := []struct {
		ct   string
		want bool
	}{
		{"application/x-www-form-urlencoded", true},
		{"Application/X-WWW-Form-URLEncoded; charset=UTF-8", true},
		{"application/x-www-form-urlencoded ; charset=utf-8", true},
		{"", false},
		{"application/json", false},
		{"multipart/form-data; boundary=x", false},
		{"application/x-www-form-urlencoded-foo", false},
		{"application/x-www-form-urlencoded; charset", false}, // not a media type
	}
	for _, tc := range tests {
		if got := isForm(tc.ct); got != tc.want {
			t.Errorf("isForm(%q) = %v, want %v", tc.ct, got, tc.want)
		}
	}
}

// FuzzParseForm checks parseForm against net/url's reading of the same
// text, and that appendForm writes what parseForm reads back.
func FuzzParseForm(f *testing.F) {
	for _, s := range []string{
		"", "PayID=abc&TransID=t-1&Amount=100&Currency=EUR", "a=x%26y&b=c%3Dd", "&&a&=&b==",
		"Desc=Zahlung+f%C3%BCr+Caf%C3%A9", "a=%zz", "a=%2", "a;b=1&c=2", "%00=%FF", "a=b\x00c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		params, err := parseForm(s)
		if strings.Count(s, "&")+1 > maxFormPairs {
			if err == nil {
				t.Fatalf("parseForm(%d pairs) = %d parameters, no error; want an error", strings.Count(s, "&")+1, len(params))
			}
			return
		}

		// url.ParseQuery reads the same pairs, grouped by name, except
		// that it refuses ';' where parseForm keeps it as text.
		if !strings.Contains(s, ";") {
			ref, refErr := url.ParseQuery(s)
			if (err != nil) != (refErr != nil) {
				t.Fatalf("parseForm(%q) error = %v, url.ParseQuery error = %v", s, err, refErr)
			}
			if err == nil {
				got := url.Values{}
				for _, kv := range params {
					got[kv.Key] = append(got[kv.Key], kv.Value)
				}
				if !maps.EqualFunc(got, ref, slices.Equal) {
					t.Fatalf("parseForm(%q) = %q, url.ParseQuery = %q", s, params, ref)
				}
			}
		}
		if err != nil {
			return
		}

		out := appendForm(nil, params)
		back, err := parseForm(string(out))
		if err != nil {
			t.Fatalf("parseForm(appendForm(%q)) error = %v", params, err)
		}
		if len(params) == 0 && len(back) == 0 {
			return
		}
		if !slices.Equal(back, params) {
			t.Fatalf("parseForm(appendForm(parseForm(%q))) = %q, want %q", s, back, params)
		}
	})
}
