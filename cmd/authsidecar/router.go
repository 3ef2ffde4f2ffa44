package main

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/authsidecar/authsidecar/proxy"
)

// prefixRouter serves the routes under a path prefix on the main listener:
// a request goes to the route whose prefix its path starts with, on a
// segment boundary, with the prefix stripped; a path under no prefix is
// answered 404 no_route, and nothing is forwarded.
type prefixRouter struct {
	routes []prefixRoute // longest prefix first
}

type prefixRoute struct {
	prefix string
	h      http.Handler
}

func newPrefixRouter(routes []*sidecar) http.Handler {
	r := &prefixRouter{}
	for _, s := range routes {
		r.routes = append(r.routes, prefixRoute{prefix: s.cfg.PathPrefix, h: proxy.New(s.proxy)})
	}
	// Prefixes never overlap (checkRoutes), so the order only makes the
	// lookup deterministic.
	slices.SortFunc(r.routes, func(a, b prefixRoute) int { return cmp.Compare(len(b.prefix), len(a.prefix)) })
	return r
}

func (rt *prefixRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, route := range rt.routes {
		rest, ok := under(r.URL.Path, route.prefix)
		if !ok {
			continue
		}
		raw := ""
		if r.URL.RawPath != "" {
			// The escaped path must start with the prefix as written too:
			// a prefix spelt with escapes (/%74ezpay) routes nowhere.
			if raw, ok = under(r.URL.RawPath, route.prefix); !ok {
				break
			}
		}
		// The request is this router's to pass on: its URL is changed in
		// place rather than copied, so that routing allocates nothing.
		r.URL.Path, r.URL.RawPath = rest, raw
		route.h.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusNotFound)
	json.NewEncoder(w).Encode(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{"no_route", "the path is under no route's " + routePrefix + "*_PATH_PREFIX"})
}

// under returns path without prefix, when path is prefix or below it on a
// segment boundary; "/" for the prefix itself.
func under(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix)
	switch {
	case !ok:
		return "", false
	case rest == "":
		return "/", true
	case rest[0] == '/':
		return rest, true
	}
	return "", false
}
