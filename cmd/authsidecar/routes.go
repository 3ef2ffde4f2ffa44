package main

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"
)

// routePrefix starts the variables of one route: AUTHSIDECAR_ROUTE_<NAME>_….
const routePrefix = envPrefix + "ROUTE_"

// processWide are the settings of the process, not of a route: with ROUTES
// they are set once, unprefixed. LISTEN_ADDR is also a route's own listener.
var processWide = map[string]bool{
	"ROUTES": true, "LISTEN_ADDR": true, "ADMIN_ADDR": true, "LOG_LEVEL": true, "LOG_FORMAT": true,
	"SHUTDOWN_TIMEOUT": true, "SHUTDOWN_DELAY": true, "MAX_CONNECTIONS": true, "PPROF": true, "REQUIRE_HEADER": true,
}

// route is one provider the sidecar serves: its name and its whole
// configuration, process-wide settings included.
type route struct {
	name string
	cfg  Config
	// ownListener: the route listens on its own LISTEN_ADDR; otherwise on
	// the main one, under its PATH_PREFIX (or alone, without ROUTES).
	ownListener bool
}

// setup is the whole configuration: the process-wide settings, and the
// routes. Without ROUTES there is one route, "default", with every setting.
type setup struct {
	global Config
	routes []route
	// environ is each route's environment as its settings were read from
	// it (unprefixed), for -check.
	environ map[string]map[string]string
	// own is each route's own variables (unprefixed), for naming them in
	// problems; nil without ROUTES.
	own map[string]map[string]string
}

// routed reports whether ROUTES is set.
func (s setup) routed() bool { return s.own != nil }

// defaultRoute is the name of the one route of a sidecar without ROUTES.
const defaultRoute = "default"

var routeName = regexp.MustCompile(`^[a-z0-9]+$`)

// loadSetup reads the configuration from environ: one route, or with ROUTES
// one per name, each from its AUTHSIDECAR_ROUTE_<NAME>_… variables and the
// process-wide ones. Every problem of every route is reported at once, each
// naming its variable.
func loadSetup(environ map[string]string) (setup, error) {
	names, routesSet := environ[envPrefix+"ROUTES"]
	if !routesSet {
		var problems []error
		for _, k := range slices.Sorted(maps.Keys(environ)) {
			if k == envPrefix+"PATH_PREFIX" || strings.HasPrefix(k, routePrefix) {
				problems = append(problems, fmt.Errorf("%s: only with %sROUTES (one provider per route)", k, envPrefix))
			}
		}
		env := maps.Clone(environ)
		delete(env, envPrefix+"PATH_PREFIX")
		for k := range env {
			if strings.HasPrefix(k, routePrefix) {
				delete(env, k)
			}
		}
		cfg, err := loadConfig(env)
		if err != nil {
			problems = append(problems, err)
		}
		return setup{global: cfg, routes: []route{{name: defaultRoute, cfg: cfg}}, environ: map[string]map[string]string{defaultRoute: env}}, errors.Join(problems...)
	}

	var p problems
	var list []string
	for n := range strings.SplitSeq(names, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case !routeName.MatchString(n):
			p.add("ROUTES", "route names are lower-case letters and digits, got %q", n)
		case slices.Contains(list, n):
			p.add("ROUTES", "route %q is named twice", n)
		default:
			list = append(list, n)
		}
	}
	if len(list) == 0 && !p.names("ROUTES") {
		p.add("ROUTES", "names no route: want a comma-separated list such as tezpay,juspay")
	}

	// Sort the variables: process-wide, a route's, or misplaced.
	global := map[string]string{}
	perRoute := map[string]map[string]string{}
	for _, n := range list {
		perRoute[n] = map[string]string{}
	}
	for _, k := range slices.Sorted(maps.Keys(environ)) {
		if !strings.HasPrefix(k, envPrefix) || serviceLinks.MatchString(k) {
			continue
		}
		name := strings.TrimPrefix(k, envPrefix)
		if rest, ok := strings.CutPrefix(k, routePrefix); ok {
			upper, setting, _ := strings.Cut(rest, "_")
			r, known := perRoute[strings.ToLower(upper)]
			switch {
			case !known || upper != strings.ToUpper(upper) || setting == "":
				p.addRaw(k, "names no route of %sROUTES (%s)", envPrefix, strings.Join(list, ", "))
			case processWide[setting] && setting != "LISTEN_ADDR":
				p.addRaw(k, "%s%s is the process's, not a route's: set it once, unprefixed", envPrefix, setting)
			default:
				r[envPrefix+setting] = environ[k]
			}
			continue
		}
		if processWide[name] {
			global[k] = environ[k]
			continue
		}
		p.addRaw(k, "with %sROUTES, each provider's settings are a route's: set %s<NAME>_%s for the route that needs it", envPrefix, routePrefix, name)
	}

	s := setup{environ: map[string]map[string]string{}, own: perRoute}
	var problems []error = p
	seen := map[string]bool{}
	for _, n := range list {
		env := maps.Clone(global)
		delete(env, envPrefix+"ROUTES")
		maps.Copy(env, perRoute[n])
		s.environ[n] = env
		_, ownListener := perRoute[n][envPrefix+"LISTEN_ADDR"]
		cfg, err := loadConfig(env)
		for _, e := range flatten(err) {
			e = routeProblem(e, n, perRoute[n])
			if !seen[e.Error()] { // a process-wide problem is reported once
				seen[e.Error()] = true
				problems = append(problems, e)
			}
		}
		s.routes = append(s.routes, route{name: n, cfg: cfg, ownListener: ownListener})
	}
	s.global, _ = parseOnly(global)
	problems = append(problems, checkRoutes(s)...)
	return s, errors.Join(problems...)
}

// parseOnly reads environ into a Config without checking it.
func parseOnly(environ map[string]string) (Config, error) {
	var c Config
	err := parseEnv(&c, environ)
	return c, err
}

// flatten lists the problems a loadConfig error joins.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// settingName matches a variable named in a problem.
var settingName = regexp.MustCompile(envPrefix + `[A-Z0-9_]+`)

// routeProblem renames, in a problem of route name, the route's settings
// after their route variables: AUTHSIDECAR_TOKEN_URL becomes
// AUTHSIDECAR_ROUTE_<NAME>_TOKEN_URL. Process-wide settings keep their
// names, and so does LISTEN_ADDR when the route has none of its own.
func routeProblem(e error, name string, own map[string]string) error {
	upper := strings.ToUpper(name)
	return errors.New(settingName.ReplaceAllStringFunc(e.Error(), func(v string) string {
		setting := strings.TrimPrefix(v, envPrefix)
		if _, set := own[v]; processWide[setting] && !set {
			return v
		}
		return routePrefix + upper + "_" + setting
	}))
}

// checkRoutes checks what the routes share: each listens on its own address
// or under its own path prefix on the main one, never both or neither, and
// no two on one address or under overlapping prefixes.
func checkRoutes(s setup) []error {
	var p problems
	type listener struct{ addr, owner string }
	var listeners []listener
	addListener := func(addr, owner string) {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
			return // a bad address is reported with its variable; port 0 is always free
		}
		for _, l := range listeners {
			if sameAddr(l.addr, addr) {
				p.addRaw(owner, "%s is also %s's address", addr, l.owner)
				return
			}
		}
		listeners = append(listeners, listener{addr, owner})
	}
	// ADMIN_ADDR against a route's listener: loadConfig checks it per route.
	mainUsed := false
	var prefixes []route
	for _, r := range s.routes {
		if len(s.routes) == 1 && r.name == defaultRoute {
			continue // without ROUTES, loadConfig checked it all
		}
		v := routePrefix + strings.ToUpper(r.name) + "_"
		switch {
		case r.ownListener && r.cfg.PathPrefix != "":
			p.addRaw(v+"PATH_PREFIX", "a route listens on its own %sLISTEN_ADDR or under a path prefix on %sLISTEN_ADDR, not both", v, envPrefix)
		case r.ownListener:
			addListener(r.cfg.ListenAddr, v+"LISTEN_ADDR")
		case r.cfg.PathPrefix == "":
			p.addRaw(v+"PATH_PREFIX", "required: set it (e.g. /%s) to route requests on %sLISTEN_ADDR by their path, or give the route its own %sLISTEN_ADDR", r.name, envPrefix, v)
		default:
			mainUsed = true
			if err := checkPathPrefix(r.cfg.PathPrefix); err != nil {
				p.addRaw(v+"PATH_PREFIX", "%v", err)
				continue
			}
			for _, o := range prefixes {
				if overlaps(o.cfg.PathPrefix, r.cfg.PathPrefix) {
					p.addRaw(v+"PATH_PREFIX", "%s overlaps route %s's %s: a request would match both", r.cfg.PathPrefix, o.name, o.cfg.PathPrefix)
				}
			}
			prefixes = append(prefixes, r)
		}
	}
	if mainUsed {
		addListener(s.global.ListenAddr, envPrefix+"LISTEN_ADDR")
	}
	return p
}

// checkPathPrefix reports why p cannot be a route's path prefix: it must be
// "/" followed by segments of letters, digits, '-', '.', '_' or '~', without
// a trailing slash or a dot segment.
func checkPathPrefix(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" || strings.HasSuffix(p, "/") {
		return fmt.Errorf("must be a path such as /tezpay: a / and segments, no trailing /, got %q", p)
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsFunc(seg, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r))
		}) {
			return fmt.Errorf("segments are letters, digits, '-', '.', '_' or '~' (no dot segments), got %q", p)
		}
	}
	return nil
}

// overlaps reports whether one prefix is the other, or the other's parent.
func overlaps(a, b string) bool {
	return a == b || strings.HasPrefix(b, a+"/") || strings.HasPrefix(a, b+"/")
}

// sameAddr reports whether two listen addresses would collide: the same
// port on the same host, or on all interfaces for either.
func sameAddr(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wildcard(ha) || wildcard(hb)
}
