package tenants

import (
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"plain", "merchant-1", true},
		{"underscore and dot", "m_2.prod", true},
		{"digits", "12345", true},
		{"128 bytes", strings.Repeat("a", 128), true},
		{"dot inside", "a..b", true},
		{"parent", "../x", false},
		{"slash", "a/b", false},
		{"absolute", "/etc/passwd", false},
		{"encoded parent", "%2e%2e", false},
		{"encoded slash", "..%2fcanary", false},
		{"10 KB", strings.Repeat("a", 10240), false},
		{"129 bytes", strings.Repeat("a", 129), false},
		{"empty", "", false},
		{"NUL", "m1\x00", false},
		{"newline", "m1\n", false},
		{"tab", "m\t1", false},
		{"DEL", "m1\x7f", false},
		{"dot", ".", false},
		{"dot dot", "..", false},
		{"hidden", ".hidden", false},
		{"kubelet's ..data", "..data", false},
		{"unicode", "mérchant", false},
		{"fullwidth dot", "．．", false},
		{"space", "m 1", false},
		{"backslash", `a\b`, false},
		{"colon", "c:", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidName(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidName(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadName) {
				t.Errorf("ValidName(%q) = %v, want an ErrBadName", tc.in, err)
			}
		})
	}
}

func TestValidNameAllocs(t *testing.T) {
	long := strings.Repeat("a", 10240)
	if n := testing.AllocsPerRun(100, func() {
		ValidName("merchant-1")
		ValidName("../x")
		ValidName(long)
		ValidName("")
	}); n != 0 {
		t.Errorf("ValidName allocates %v times, want 0", n)
	}
}

// validRef is ValidName's rule written another way.
var validRef = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// FuzzValidName checks ValidName against a regular expression, and that a
// name it accepts stays inside the directory it is joined to.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"merchant-1", "m_2.prod", "../x", "a/b", "%2e%2e", "", ".", "..", "..data", "\x00", "é", strings.Repeat("a", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidName(name)
		if want := validRef.MatchString(name); (err == nil) != want {
			t.Fatalf("ValidName(%q) = %v, want ok=%v", name, err, want)
		}
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("ValidName(%q) = %v, want an ErrBadName", name, err)
			}
			return
		}
		p := filepath.Join("/tenants", name)
		if filepath.Dir(p) != "/tenants" || filepath.Base(p) != name {
			t.Fatalf("ValidName(%q) = nil, but it joins to %q", name, p)
		}
	})
}
