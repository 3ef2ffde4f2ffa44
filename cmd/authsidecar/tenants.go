package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/tenants"
)

// tenantFile is a file a tenant's directory may hold: the setting it stands
// for in the tenant's configuration, and that setting's field.
type tenantFile struct {
	setting string
	field   func(c *Config) *string
}

// tenantFiles are the files a tenant's directory may hold, by name.
var tenantFiles = map[string]tenantFile{
	"client_id":                {"CLIENT_ID_FILE", func(c *Config) *string { return &c.ClientIDFile }},
	"client_secret":            {"CLIENT_SECRET_FILE", func(c *Config) *string { return &c.ClientSecretFile }},
	"client_assertion_key.pem": {"CLIENT_ASSERTION_KEY_FILE", func(c *Config) *string { return &c.AssertionKeyFile }},
	"token":                    {"TOKEN_FILE", func(c *Config) *string { return &c.TokenFile }},
	"basic_user":               {"BASIC_USER_FILE", func(c *Config) *string { return &c.BasicUserFile }},
	"basic_password":           {"BASIC_PASSWORD_FILE", func(c *Config) *string { return &c.BasicPasswordFile }},
	"api_key":                  {"API_KEY_FILE", func(c *Config) *string { return &c.APIKeyFile }},
}

// tenantSettingFields are the keys a tenant's settings file may hold, the
// non-secret settings that differ between merchants, and their fields.
var tenantSettingFields = map[string]func(c *Config) *string{
	"CLIENT_ID":      func(c *Config) *string { return &c.ClientID },
	"SCOPES":         func(c *Config) *string { return &c.Scopes },
	"TOKEN_PARAMS":   func(c *Config) *string { return &c.TokenParams },
	"MERCHANT_ID":    func(c *Config) *string { return &c.MerchantID },
	"SIGNING_KEY_ID": func(c *Config) *string { return &c.SigningKeyID },
}

// tenantSettings are the keys of tenantSettingFields, sorted.
var tenantSettings = slices.Sorted(maps.Keys(tenantSettingFields))

// tenanted reports whether the route serves tenants.
func (c Config) tenanted() bool { return c.TenantHeader != "" || c.TenantsDir != "" }

// tenantDefault reports whether a request without TENANT_HEADER uses the
// route's own credentials.
func (c Config) tenantDefault() bool { return c.TenantDefault == "route" }

// checkTenants checks TENANT_HEADER, TENANTS_DIR and TENANT_DEFAULT, and
// every tenant the directory holds, as its configuration would be built.
func (c *Config) checkTenants(p *problems, source sourceKind, sourceOK bool) {
	if !c.tenanted() {
		if c.TenantDefault != "" {
			p.add("TENANT_DEFAULT", "only with %sTENANT_HEADER and %sTENANTS_DIR", envPrefix, envPrefix)
		}
		return
	}
	switch h := c.TenantHeader; {
	case h == "":
		p.add("TENANT_HEADER", "required with %sTENANTS_DIR: the request header naming the tenant (e.g. X-Merchant)", envPrefix)
	case !validHeaderName(h), credentialHeaders[http.CanonicalHeaderKey(h)], strings.EqualFold(h, c.InjectHeader), strings.EqualFold(h, c.RequireHeader):
		p.add("TENANT_HEADER", "%q is a header HTTP or authsidecar itself uses: choose a name of your own, such as X-Merchant", h)
	}
	if c.TenantsDir == "" {
		p.add("TENANTS_DIR", "required with %sTENANT_HEADER: the directory of one subdirectory per tenant", envPrefix)
	}
	if c.TenantDefault != "" && c.TenantDefault != "route" {
		p.add("TENANT_DEFAULT", "must be route (requests without %sTENANT_HEADER use the route's own credentials) or empty, got %q", envPrefix, c.TenantDefault)
	}
	mode, modeOK := lookupMode(c.Inject)
	switch {
	case !modeOK:
	case mode.needsToken && sourceOK && source.build == nil:
		p.add("TOKEN_SOURCE", "tenants need a source of one token per set of credentials: %s, got %q", sourceNames(func(k sourceKind) bool { return k.build != nil }), c.TokenSource)
	case !mode.needsToken && !mode.tenantCredentials:
		p.add("INJECT", "tenants are served with the modes that put a token on requests (%s) and with %s for now, got %q",
			modeNames(func(m injectMode) bool { return m.needsToken }), modeNames(func(m injectMode) bool { return m.tenantCredentials }), c.Inject)
	}
	if c.TenantsDir == "" || p.names("TENANTS_DIR") || p.names("TOKEN_SOURCE") || p.names("INJECT") || !sourceOK || !modeOK {
		return
	}
	d, err := tenants.Open(tenants.Config{Dir: c.TenantsDir, Optional: tenantFileNames(), Settings: tenantSettings})
	if err != nil {
		p.add("TENANTS_DIR", "%v", err)
		return
	}
	// loadConfig keeps one problem per variable: every tenant's problems
	// go on one line, each naming its tenant.
	var msgs []string
	if err := d.Err(); err != nil {
		errs := []error{err}
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			errs = joined.Unwrap()
		}
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
	}
	for _, name := range d.Names() {
		t, err := d.Lookup(name)
		if err != nil {
			continue // reported with d.Err
		}
		tc := c.forTenant(t)
		var tp problems
		if source.check != nil {
			source.check(&tc, &tp)
		}
		if mode.tenantCredentials && mode.check != nil {
			mode.check(&tc, &tp)
		}
		for _, e := range tp {
			msgs = append(msgs, fmt.Sprintf("tenant %s: %s", name, tenantProblem(e)))
		}
	}
	if len(msgs) > 0 {
		p.add("TENANTS_DIR", "%s", strings.Join(msgs, "; "))
	}
}

// tenantProblem is a problem of a tenant's configuration in the tenant's
// terms: a credential's setting is the file of the tenant's directory.
func tenantProblem(e error) string {
	msg := e.Error()
	name, rest, ok := strings.Cut(strings.TrimPrefix(msg, envPrefix), ": ")
	if !ok || !strings.HasPrefix(msg, envPrefix) {
		return msg
	}
	for file, tf := range tenantFiles {
		if name != tf.setting && name+"_FILE" != tf.setting {
			continue
		}
		if strings.HasPrefix(rest, "required") {
			if name == "CLIENT_ID" {
				return "no " + file + " file (nor CLIENT_ID in its settings file)"
			}
			return "no " + file + " file"
		}
		return file + ": " + rest
	}
	return msg
}

func tenantFileNames() []string {
	names := make([]string, 0, len(tenantFiles))
	for n := range tenantFiles {
		names = append(names, n)
	}
	return names
}

// forTenant is c with tenant t's files and settings in place of the
// route's.
//
// The route's credentials are never a tenant's: they are another
// merchant's, so a tenant lacking one is incomplete.
func (c Config) forTenant(t *tenants.Tenant) Config {
	// None of the route's credentials is the tenant's: its own files, or
	// nothing.
	c.ClientID, c.ClientSecret, c.BasicUser, c.BasicPassword, c.APIKey = "", "", "", "", ""
	for file, tf := range tenantFiles {
		*tf.field(&c) = t.Files[file]
	}
	if c.Inject == basicMode.name && c.BasicUserFile == "" {
		c.BasicUserFile = c.APIKeyFile // Juspay's API key is the Basic user
	}
	for k, v := range t.Settings {
		if field, ok := tenantSettingFields[k]; ok {
			*field(&c) = v
		}
	}
	if c.ClientID != "" {
		c.ClientIDFile = "" // CLIENT_ID in the settings wins over a client_id file
	}
	return c
}

// tenantSources is the source of each tenant's tokens, a tokens.KeyedSource
// keyed by tenant name, and the proxy's view of the tenants. A tenant's
// source is built at its first request, and again when its files or
// settings change.
type tenantSources struct {
	dir  *tenants.Dir
	kind sourceKind
	cfg  Config
	b    *builder
	log  *slog.Logger
	// built holds each tenant's builtTenant, read without a lock on the hot
	// path; mu serializes builds and pruning, n counts the entries.
	built sync.Map
	mu    sync.Mutex
	n     int
}

type builtTenant struct {
	t   *tenants.Tenant
	src tokens.Source
	inj proxy.Injector
}

// Key implements proxy.Tenants: the name itself, once the directory knows
// it; never a file opened for a name the directory does not list.
func (s *tenantSources) Key(name string) (string, error) {
	if _, err := s.dir.Lookup(name); err != nil {
		return "", tenantError(name, err)
	}
	return name, nil
}

func tenantError(name string, err error) error {
	var inc *tenants.IncompleteError
	switch {
	case errors.Is(err, tenants.ErrBadName):
		return &proxy.TenantError{Status: http.StatusBadRequest, Code: "bad_tenant", Message: "the tenant header's value is not a tenant name (letters, digits, '-', '_', '.')"}
	case errors.Is(err, tenants.ErrUnknownTenant):
		return &proxy.TenantError{Status: http.StatusForbidden, Code: "unknown_tenant", Message: fmt.Sprintf("no tenant %s in %sTENANTS_DIR", name, envPrefix)}
	case errors.As(err, &inc):
		return &proxy.TenantError{Status: http.StatusInternalServerError, Code: "incomplete_tenant", Message: inc.Error()}
	}
	return &proxy.TenantError{Status: http.StatusInternalServerError, Code: "tenant_error", Message: err.Error()}
}

// builtFor returns tenant key's built parts: its token source (nil when the
// route's source fetches none) and its injector (nil when the mode's
// credentials are the route's), built at first use and again when the
// tenant's files or settings change.
func (s *tenantSources) builtFor(key string) (builtTenant, error) {
	t, err := s.dir.Lookup(key)
	if err != nil {
		return builtTenant{}, fmt.Errorf("tenant %s: %w", key, err)
	}
	if v, ok := s.built.Load(key); ok && v.(builtTenant).t == t {
		return v.(builtTenant), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.built.Load(key); ok && v.(builtTenant).t == t {
		return v.(builtTenant), nil // built meanwhile
	}
	tc := s.cfg.forTenant(t)
	bt := builtTenant{t: t}
	if s.kind.build != nil {
		if bt.src, err = s.kind.build(tc, s.b); err != nil {
			return builtTenant{}, fmt.Errorf("tenant %s: %w", key, err)
		}
	}
	if m, _ := lookupMode(s.cfg.Inject); m.tenantCredentials {
		if bt.inj, err = m.build(tc, modeParts{log: s.log}); err != nil {
			return builtTenant{}, &proxy.TenantError{Status: http.StatusInternalServerError, Code: "incomplete_tenant", Message: fmt.Sprintf("tenant %s: %v", key, err)}
		}
	}
	if _, loaded := s.built.Swap(key, bt); !loaded {
		s.n++
	}
	s.pruneLocked()
	return bt, nil
}

// Token implements tokens.KeyedSource: a token of the tenant named key.
func (s *tenantSources) Token(ctx context.Context, key string) (*tokens.Token, error) {
	bt, err := s.builtFor(key)
	if err != nil {
		return nil, err
	}
	tok, err := bt.src.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", key, err)
	}
	return tok, nil
}

// Injector implements proxy.TenantInjectors: the tenant's own injector with
// a mode whose credentials are each tenant's (basic), else nil (the
// route's).
func (s *tenantSources) Injector(key string) (proxy.Injector, error) {
	bt, err := s.builtFor(key)
	if err != nil {
		return nil, err
	}
	if bt.inj == nil {
		return nil, nil
	}
	return bt.inj, nil
}

// pruneLocked forgets the sources of tenants the directory no longer holds,
// once they outnumber the tenants it does: the built sources stay bounded by
// the directory, however many tenants come and go.
func (s *tenantSources) pruneLocked() {
	if s.n <= 2*s.dir.Len()+16 {
		return
	}
	s.built.Range(func(name, _ any) bool {
		if _, err := s.dir.Lookup(name.(string)); errors.Is(err, tenants.ErrUnknownTenant) {
			s.built.Delete(name)
			s.n--
		}
		return true
	})
}

// buildTenants opens TENANTS_DIR and gives the proxy the tenants' tokens,
// in a keyed cache by tenant; the directory is watched beside the servers.
func (s *sidecar) buildTenants(kind sourceKind, b *builder, log *slog.Logger, o tokens.Observer) error {
	cfg := s.cfg
	d, err := tenants.Open(tenants.Config{Dir: cfg.TenantsDir, Optional: tenantFileNames(), Settings: tenantSettings, Logger: log})
	if err != nil {
		return fmt.Errorf("%sTENANTS_DIR: %w", envPrefix, err)
	}
	src := &tenantSources{dir: d, kind: kind, cfg: cfg, b: b, log: log}
	s.proxy.Tenants, s.proxy.TenantHeader, s.proxy.TenantDefault = src, cfg.TenantHeader, cfg.tenantDefault()
	s.background = append(s.background, d.Watch)
	s.registry.MustRegister(tenantsGauge(s.name, "known", d.Len))
	if kind.build == nil {
		return nil // the tenants' credentials are their injectors' (basic)
	}
	cache := tokens.NewKeyedCache(src, tokens.KeyedCacheOptions{
		Size:                  cfg.TokenCacheSize,
		RenewAt:               cfg.RenewAt,
		FetchTimeout:          cfg.TokenTimeout,
		MaxWait:               cfg.TokenWait,
		ForcedRefreshInterval: cfg.ForcedRefreshInterval,
		Logger:                log,
		Observer:              o,
	})
	s.proxy.TenantTokens = cache
	s.registry.MustRegister(tenantsGauge(s.name, "with_token", cache.Len))
	return nil
}

// tenantsGauge is one series of authsidecar_tenants: the tenants of route in
// state (known, with_token), read at each scrape.
func tenantsGauge(route, state string, count func() int) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "authsidecar_tenants",
		Help:        "Tenants of a route (TENANT_HEADER, TENANTS_DIR), by state: known (in the directory, complete or not), with_token (holding a token in the cache).",
		ConstLabels: prometheus.Labels{"route": route, "state": state},
	}, func() float64 { return float64(count()) })
}
