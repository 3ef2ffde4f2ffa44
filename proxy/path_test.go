package proxy_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// resolve removes dot segments (RFC 3986 5.2.4) from the segments of an
// absolute path, as split by split, and returns the path left, "/"-joined.
func resolve(p string, split func(string) []string) string {
	var out []string
	segs := split(p)[1:] // p starts with "/"
	for i, seg := range segs {
		switch seg {
		case ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
			continue
		}
		if i == len(segs)-1 {
			out = append(out, "") // a trailing dot segment leaves a directory
		}
	}
	return "/" + strings.Join(out, "/")
}

// bySlash splits a path into its "/"-separated segments, as RFC 3986 does.
func bySlash(p string) []string { return strings.Split(p, "/") }

// asServlet splits a path as servers that are laxer than RFC 3986 do:
// Windows and IIS also at backslashes, and Java servlet containers (Tomcat,
// Jetty) drop each segment's ";" parameters before resolving dot segments,
// so that "..;" climbs like "..".
func asServlet(p string) []string {
	segs := strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' })
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	return append([]string{""}, segs...)
}

// checkUnderBase checks that a request-target stays under base however the
// upstream reads it: as sent, once percent-decoded with "/" separators, and
// once decoded as laxer servers split it.
func checkUnderBase(t *testing.T, target, base string) {
	t.Helper()
	p, _, _ := strings.Cut(target, "?")
	if !strings.HasPrefix(p, base+"/") {
		t.Errorf("upstream path %q does not start with %s/", p, base)
	}
	decoded, err := url.PathUnescape(p)
	if err != nil {
		t.Errorf("upstream path %q does not decode: %v", p, err)
		return
	}
	for _, view := range []struct {
		name  string
		split func(string) []string
	}{{"decoded, split at /", bySlash}, {"decoded, split at / and \\, ;params dropped", asServlet}} {
		if r := resolve(decoded, view.split); r != base && !strings.HasPrefix(r, base+"/") {
			t.Errorf("upstream path %q (%s) resolves to %q, outside %s", p, view.name, r, base)
		}
	}
}

func TestResolve(t *testing.T) {
	tests := []struct{ p, slash, servlet string }{
		{"/api/v1/a/../b", "/api/v1/b", "/api/v1/b"},
		{"/api/v1/..", "/api/", "/api/"},
		{"/api/v1/../../x", "/x", "/x"},
		{"/api/v1/..;/x", "/api/v1/..;/x", "/api/x"},
		{"/api/v1/..\\x", "/api/v1/..\\x", "/api/x"},
		{"/api/v1/./x/.", "/api/v1/x/", "/api/v1/x/"},
	}
	for _, tc := range tests {
		if got := resolve(tc.p, bySlash); got != tc.slash {
			t.Errorf("resolve(%q, bySlash) = %q, want %q", tc.p, got, tc.slash)
		}
		if got := resolve(tc.p, asServlet); got != tc.servlet {
			t.Errorf("resolve(%q, asServlet) = %q, want %q", tc.p, got, tc.servlet)
		}
	}
}

// TestPathTricks sends path tricks through the proxy to an upstream whose
// UPSTREAM_URL has the base path /api/v1: each is refused with 400, or
// forwarded as a path that stays under /api/v1/.
func TestPathTricks(t *testing.T) {
	const base = "/api/v1"
	tests := []struct {
		name, target string
		// want is the request-target the upstream receives; empty means the
		// request is refused with 400, by the sidecar (JSON) unless byServer.
		want     string
		byServer bool
		// mayRefuse accepts the sidecar's 400 as well as want.
		mayRefuse bool
	}{
		{name: "plain", target: "/pay?x=1", want: "/api/v1/pay?x=1"},
		{name: "root", target: "/", want: "/api/v1/"},
		{name: "dot-dot", target: "/../admin"},
		{name: "dot-dot deep", target: "/a/../../admin"},
		{name: "trailing dot-dot", target: "/a/.."},
		{name: "dot", target: "/./admin"},
		{name: "trailing dot", target: "/a/."},
		{name: "encoded dot-dot lower case", target: "/%2e%2e/admin"},
		{name: "encoded dot-dot-slash upper case", target: "/%2E%2E%2Fadmin"},
		{name: "half-encoded dot-dot", target: "/.%2e/admin"},
		{name: "encoded dot", target: "/%2e/admin"},
		{name: "dot-dot encoded slash", target: "/..%2fadmin"},
		{name: "encoded slash dot-dot", target: "/a/%2f.."},
		{name: "encoded slash dot-dot deep", target: "/a%2F..%2F..%2Fadmin"},
		{name: "encoded slash", target: "/a%2Fb", want: "/api/v1/a%2Fb"},
		{name: "encoded slash upper and lower", target: "/a%2fb%2Fc", want: "/api/v1/a%2fb%2Fc"},
		{name: "double-encoded dot-dot", target: "/%252e%252e/admin", want: "/api/v1/%252e%252e/admin"},
		{name: "double-encoded dot-dot-slash", target: "/%252e%252e%252fadmin", want: "/api/v1/%252e%252e%252fadmin"},
		{name: "backslash", target: "/a\\b", want: "/api/v1/a%5Cb"},
		{name: "encoded backslash", target: "/a%5cb", want: "/api/v1/a%5cb"},
		{name: "double slashes", target: "//double//slashes", want: "/api/v1//double//slashes"},
		{name: "path parameter", target: "/pay;jsessionid=1/x", want: "/api/v1/pay;jsessionid=1/x"},
		{name: "dot with a parameter", target: "/.;/admin", want: "/api/v1/.;/admin", mayRefuse: true},
		{name: "dot-dot in the query", target: "/pay?next=/../../admin", want: "/api/v1/pay?next=/../../admin"},
		{name: "dots in a name", target: "/a..b/...", want: "/api/v1/a..b/..."},
		{name: "overlong UTF-8 dots", target: "/%c0%ae%c0%ae/admin", want: "/api/v1/%c0%ae%c0%ae/admin"},
		{name: "absolute-form naming the upstream, dot-dot", target: "http://{up}/../admin"},
		{name: "bad escape", target: "/%zz", byServer: true},
		{name: "truncated escape", target: "/a%2", byServer: true},
		// Java servlet containers drop ";" parameters before resolving dot
		// segments, and IIS splits at backslashes: each of these climbs
		// above /api/v1 there.
		{name: "dot-dot with a parameter", target: "/..;/..;/admin"},
		{name: "encoded dot-dot with a parameter", target: "/%2e%2e;/%2e%2e;/admin"},
		{name: "dot-dot backslash", target: "/..\\..\\admin"},
		{name: "dot-dot encoded backslash", target: "/..%5c..%5cadmin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, base, runLimits)
			target := strings.ReplaceAll(tc.target, "{up}", r.up.Listener.Addr().String())
			ex := r.send(t, "GET "+target+" HTTP/1.1\r\nHost: sidecar.local\r\n\r\n")
			if len(ex.responses) != 1 {
				t.Fatalf("the client got %d responses, want 1", len(ex.responses))
			}
			resp := ex.responses[0]
			if tc.want == "" {
				r.checkNothingSent(t)
				if tc.byServer {
					if resp.Status != http.StatusBadRequest {
						t.Errorf("status = %d, want 400 (body %q)", resp.Status, resp.Body)
					}
					return
				}
				checkSidecarError(t, &http.Response{StatusCode: resp.Status, Header: resp.Header}, resp.Body, http.StatusBadRequest, "bad_request")
				return
			}
			if tc.mayRefuse && resp.Status == http.StatusBadRequest {
				r.checkNothingSent(t)
				checkSidecarError(t, &http.Response{StatusCode: resp.Status, Header: resp.Header}, resp.Body, http.StatusBadRequest, "bad_request")
				return
			}
			if resp.Status != http.StatusOK {
				t.Fatalf("status = %d, want 200 (body %q)", resp.Status, resp.Body)
			}
			got := r.checkOneRequest(t)
			if got.RequestURI != tc.want {
				t.Errorf("upstream request-target = %q, want %q", got.RequestURI, tc.want)
			}
			checkUnderBase(t, got.RequestURI, base)
			t.Logf("forwarded as %q (RawPath %q)", got.RequestURI, got.RawPath)
		})
	}
}
