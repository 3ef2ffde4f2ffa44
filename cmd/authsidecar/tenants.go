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

	"github.com/authsidecar/authsidecar/metrics"
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
	"signing_key.pem":          {"SIGNING_KEY_FILE", func(c *Config) *string { return &c.SigningKeyFile }},
	"paygate_key":              {"PAYGATE_KEY_FILE", func(c *Config) *string { return &c.PaygateKeyFile }},
	"paygate_hmac_key":         {"PAYGATE_HMAC_KEY_FILE", func(c *Config) *string { return &c.PaygateHMACKeyFile }},
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

// ownCredentials reports whether the route has credentials of its own: it
// serves no tenants, or requests without TENANT_HEADER use the route's.
// Without, the credentials' settings are each tenant's, checked with the
// tenants.
func (c Config) ownCredentials() bool { return !c.tenanted() || c.tenantDefault() }

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
	case !mode.needsToken && !mode.tenantCredentials && !(sourceOK && source.keyed != nil):
		p.add("INJECT", "tenants are served with the modes that put a token on requests (%s) and with %s, got %q",
			modeNames(func(m injectMode) bool { return m.needsToken }), modeNames(func(m injectMode) bool { return m.tenantCredentials }), c.Inject)
	}
	switch {
	case grantKinds[c.TokenSource] != nil:
		// Their credential is the pod's own identity: every tenant would
		// get the route's.
		p.add("TOKEN_SOURCE", "%s asks with the pod's own identity, which would be every tenant's: tenants need credentials of their own (%s)", c.TokenSource,
			sourceNames(func(k sourceKind) bool { return k.build != nil && grantKinds[k.name] == nil }))
	case c.OAuth2AuthStyle == "client-assertion-file":
		p.add("OAUTH2_AUTH_STYLE", "client-assertion-file authenticates with the pod's own identity, which would be every tenant's: use a secret or private-key-jwt (client_assertion_key.pem) per tenant")
	}
	if c.SharedCache != "" && !c.tenantDefault() {
		p.add("SHARED_CACHE", "the tenants' tokens are not shared through it, and the route has none of its own without %sTENANT_DEFAULT=route", envPrefix)
	}
	if sourceOK && source.keyed != nil && c.tenantDefault() {
		// One cache holds every tenant's customers under tenant/customer:
		// the route's own customers' ids could be taken for those keys.
		p.add("TENANT_DEFAULT", "not with %sTOKEN_SOURCE=%s: every request must name its tenant", envPrefix, c.TokenSource)
	}
	if c.TenantsDir == "" || p.names("TENANTS_DIR") || p.names("TOKEN_SOURCE") || p.names("INJECT") || p.names("PAYGATE_CIPHER") || !sourceOK || !modeOK {
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
		tc.checkCredentials(&tp, source, mode)
		for _, e := range tp {
			msgs = append(msgs, fmt.Sprintf("tenant %s: %s", name, tenantProblem(e)))
		}
	}
	if len(msgs) > 0 {
		p.add("TENANTS_DIR", "%s", strings.Join(msgs, "; "))
	}
}

// checkCredentials checks what of c is a merchant's own: its token source's
// settings, its mode's, its signing key and its Paygate passwords.
func (c *Config) checkCredentials(p *problems, source sourceKind, mode injectMode) {
	if source.check != nil {
		source.check(c, p)
	}
	if mode.tenantCredentials && mode.check != nil {
		mode.check(c, p)
	}
	if c.signs() {
		c.checkSigning(p)
	}
	if c.usesPaygate() {
		c.checkPaygateMerchant(p)
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
	if _, ok := tenantSettingFields[name]; ok {
		return name + " (its settings file): " + rest
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
	// nothing; nor are the ids of the route's merchant and key.
	c.ClientID, c.ClientSecret, c.BasicUser, c.BasicPassword, c.APIKey = "", "", "", "", ""
	c.MerchantID, c.SigningKeyID = "", ""
	for file, tf := range tenantFiles {
		*tf.field(&c) = t.File(file)
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

// tenantSources is each tenant's credentials, built at its first request
// and again when its files or settings change: the proxy's Tenants, and the
// source of the keyed cache that holds the tenants' tokens, keyed by tenant
// name (by tenant/customer with a source of tokens per customer).
type tenantSources struct {
	dir     *tenants.Dir
	kind    sourceKind
	cfg     Config
	client  *http.Client // the token endpoint's
	log     *slog.Logger
	metrics *metrics.Metrics
	// cache holds the tenants' tokens; nil when the mode puts none on
	// requests.
	cache *tokens.KeyedCache
	// built holds each tenant's builtTenant, read without a lock on the hot
	// path; mu serializes builds and pruning, n counts the entries.
	built sync.Map
	mu    sync.Mutex
	n     int
}

// builtTenant is what was built of a tenant's files and settings, t, or
// why it could not be.
type builtTenant struct {
	t      *tenants.Tenant
	src    tokens.Source      // with a source of one token
	keyed  tokens.KeyedSource // with a source of tokens per customer
	tenant proxy.Tenant
	err    error // a *proxy.TenantError
}

// Tenant implements proxy.Tenants: the tenant's credentials, once the
// directory knows its name; never a file opened for a name it does not list.
func (s *tenantSources) Tenant(name string) (*proxy.Tenant, error) {
	bt, err := s.builtFor(name)
	if err != nil {
		return nil, err
	}
	return &bt.tenant, nil
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
	return &proxy.TenantError{Status: http.StatusInternalServerError, Code: "incomplete_tenant", Message: fmt.Sprintf("tenant %s: %v", name, err)}
}

// builtFor returns tenant name's built credentials, built at first use and
// again when the tenant's files or settings change. A tenant that cannot be
// built is logged once, and refused until it changes.
func (s *tenantSources) builtFor(name string) (*builtTenant, error) {
	t, err := s.dir.Lookup(name)
	if err != nil {
		return nil, tenantError(name, err)
	}
	if v, ok := s.built.Load(name); ok && v.(*builtTenant).t == t {
		return v.(*builtTenant), v.(*builtTenant).err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.built.Load(name); ok && v.(*builtTenant).t == t {
		return v.(*builtTenant), v.(*builtTenant).err // built meanwhile
	}
	bt, err := s.build(name, t)
	if err != nil {
		// In the tenant's terms: its files and settings, not the route's
		// variables.
		var msgs []string
		for _, e := range flatten(err) {
			msgs = append(msgs, tenantProblem(e))
		}
		problem := strings.Join(msgs, "; ")
		s.log.Warn("tenant's credentials incomplete: its requests get 500 incomplete_tenant", "tenant", name, "problem", problem)
		bt = &builtTenant{t: t, err: &proxy.TenantError{Status: http.StatusInternalServerError, Code: "incomplete_tenant", Message: fmt.Sprintf("tenant %s: %s", name, problem)}}
	}
	if _, loaded := s.built.Swap(name, bt); !loaded {
		s.n++
	}
	s.pruneLocked()
	return bt, bt.err
}

// build makes tenant name's credentials of its files and settings, t, as
// buildRoute makes the route's.
func (s *tenantSources) build(name string, t *tenants.Tenant) (*builtTenant, error) {
	tc := s.cfg.forTenant(t)
	bt := &builtTenant{t: t, tenant: proxy.Tenant{Key: name}}
	// A builder of its own: what a source would run beside the servers
	// (a token file's watch) cannot start once they run; the tenant's
	// files are read at each fetch.
	b := &builder{log: s.log, tokenClient: s.client}
	var err error
	switch {
	case s.kind.keyed != nil:
		bt.keyed, err = s.kind.keyed(tc, b)
	case s.kind.build != nil:
		bt.src, err = s.kind.build(tc, b)
		if s.cache != nil {
			bt.tenant.Tokens = proxy.BindKey(s.cache, name)
		}
	}
	if err != nil {
		return nil, err
	}
	parts, err := tc.credentialParts(s.log, s.metrics)
	if err != nil {
		return nil, err
	}
	pt := &bt.tenant
	var p problems
	if pt.SetHeaders = tc.setHeaders(&p); p.err() != nil {
		return nil, p.err()
	}
	pt.Signer, pt.PaygateMerchant = parts.signer, parts.merchant
	if tc.SDKAuthPath != "" {
		pt.SDKAuth, pt.SDKAuthMerchantID = tokens.NewAxeptaRegistrar(tc.axeptaConfig(parts.merchant, s.client)), tc.MerchantID
	}
	if m, _ := lookupMode(s.cfg.Inject); m.tenantCredentials {
		if pt.Injector, err = m.build(tc, parts); err != nil {
			return nil, err
		}
	}
	return bt, nil
}

// Token implements tokens.KeyedSource: a token of the tenant named key, or
// of customer c of tenant t for key t/c.
func (s *tenantSources) Token(ctx context.Context, key string) (*tokens.Token, error) {
	name, customer, _ := strings.Cut(key, "/")
	bt, err := s.builtFor(name)
	if err != nil {
		return nil, err
	}
	var tok *tokens.Token
	if bt.keyed != nil {
		tok, err = bt.keyed.Token(ctx, customer)
	} else {
		tok, err = bt.src.Token(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", name, err)
	}
	return tok, nil
}

// pruneLocked forgets the credentials of tenants the directory no longer
// holds, once they outnumber the tenants it does: what is built stays
// bounded by the directory, however many tenants come and go.
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

// buildTenants opens TENANTS_DIR and gives the proxy the tenants'
// credentials, their tokens in a keyed cache by tenant (by tenant/customer
// with a source of tokens per customer); the directory is watched beside
// the servers.
func (s *sidecar) buildTenants(kind sourceKind, b *builder, log *slog.Logger, m *metrics.Metrics) error {
	cfg := s.cfg
	d, err := tenants.Open(tenants.Config{Dir: cfg.TenantsDir, Optional: tenantFileNames(), Settings: tenantSettings, Logger: log})
	if err != nil {
		return fmt.Errorf("%sTENANTS_DIR: %w", envPrefix, err)
	}
	src := &tenantSources{dir: d, kind: kind, cfg: cfg, client: b.tokenClient, log: log, metrics: m}
	s.proxy.Tenants, s.proxy.TenantHeader, s.proxy.TenantDefault = src, cfg.TenantHeader, cfg.tenantDefault()
	s.background = append(s.background, d.Watch)
	s.registry.MustRegister(tenantsGauge(s.name, "known", d.Len))
	if !fetchesTokens(kind) {
		return nil // the tenants' credentials are their injectors'
	}
	src.cache = tokens.NewKeyedCache(src, tokens.KeyedCacheOptions{
		Size:                  cfg.TokenCacheSize,
		RenewAt:               cfg.RenewAt,
		FetchTimeout:          cfg.TokenTimeout,
		MaxWait:               cfg.TokenWait,
		ForcedRefreshInterval: cfg.ForcedRefreshInterval,
		Logger:                log,
		Observer:              m.Tenants(),
	})
	if kind.keyed != nil {
		s.proxy.ClientAuthTokens, s.proxy.ClientAuthTokenPath = src.cache, cfg.ClientAuthTokenPath
		if mode, _ := lookupMode(cfg.Inject); mode.needsToken {
			s.proxy.KeyedTokens, s.proxy.CustomerField = src.cache, cfg.BodyCustomerField
		}
		return nil
	}
	s.registry.MustRegister(tenantsGauge(s.name, "with_token", src.cache.Len))
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
