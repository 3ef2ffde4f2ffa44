package main

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/caarlos0/env/v11"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/oauth2"

	"github.com/authsidecar/authsidecar/proxy"
)

// envPrefix is put before every variable name, so that Kubernetes' injected
// <SERVICE>_PORT variables cannot collide with ours.
const envPrefix = "AUTHSIDECAR_"

// Config is authsidecar's whole configuration, as read from the environment.
// loadConfig checks it; build constructs the sidecar from it.
type Config struct {
	Routes                  string        `env:"ROUTES"`      // several providers: one route each (see routes.go)
	PathPrefix              string        `env:"PATH_PREFIX"` // a route's path prefix on the main listener
	Provider                string        `env:"PROVIDER"`    // a preset: fills in what the provider documents
	UpstreamURL             string        `env:"UPSTREAM_URL"`
	ListenAddr              string        `env:"LISTEN_ADDR" envDefault:"127.0.0.1:8080"`
	AdminAddr               string        `env:"ADMIN_ADDR" envDefault:":9090"`
	TokenSource             string        `env:"TOKEN_SOURCE"`
	TokenURL                string        `env:"TOKEN_URL"`
	ClientID                string        `env:"CLIENT_ID"`
	ClientIDFile            string        `env:"CLIENT_ID_FILE"`
	ClientSecret            string        `env:"CLIENT_SECRET"`
	ClientSecretFile        string        `env:"CLIENT_SECRET_FILE"`
	Scopes                  string        `env:"SCOPES"`
	TokenParams             string        `env:"TOKEN_PARAMS"`
	OAuth2AuthStyle         string        `env:"OAUTH2_AUTH_STYLE" envDefault:"auto"`
	JSONTokenField          string        `env:"JSON_TOKEN_FIELD" envDefault:"access_token"`
	JSONExpiresInField      string        `env:"JSON_EXPIRES_IN_FIELD" envDefault:"expires_in"`
	TokenDefaultTTL         time.Duration `env:"TOKEN_DEFAULT_TTL" envDefault:"15m"`
	TokenTimeout            time.Duration `env:"TOKEN_TIMEOUT" envDefault:"10s"`
	TokenWait               time.Duration `env:"TOKEN_WAIT" envDefault:"10s"`
	RenewAt                 float64       `env:"RENEW_AT" envDefault:"0.8"`
	ForcedRefreshInterval   time.Duration `env:"FORCED_REFRESH_INTERVAL" envDefault:"10s"`
	RefreshOnStatus         string        `env:"REFRESH_ON_STATUS" envDefault:"401"`
	MaxReplayBody           int64         `env:"MAX_REPLAY_BODY" envDefault:"1048576"`
	UpstreamTimeout         time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"60s"`
	LogLevel                string        `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat               string        `env:"LOG_FORMAT" envDefault:"json"`
	ShutdownTimeout         time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"25s"`
	ShutdownDelay           time.Duration `env:"SHUTDOWN_DELAY"` // keep serving this long after SIGTERM before draining
	Inject                  string        `env:"INJECT"`         // default set in loadConfig: bearer, or none without a token source
	InjectHeader            string        `env:"INJECT_HEADER" envDefault:"Authorization"`
	InjectPrefix            string        `env:"INJECT_PREFIX"`
	BodyTokenField          string        `env:"BODY_TOKEN_FIELD" envDefault:"payload.clientAuthToken"`
	BodyExpiryField         string        `env:"BODY_EXPIRY_FIELD"` // default set in loadConfig: empty means "don't set"
	JSONExpiresAtField      string        `env:"JSON_EXPIRES_AT_FIELD"`
	SigningKeyFile          string        `env:"SIGNING_KEY_FILE"`
	SigningKeyID            string        `env:"SIGNING_KEY_ID"`
	MerchantID              string        `env:"MERCHANT_ID"`
	Service                 string        `env:"SERVICE"`
	SignPath                string        `env:"SIGN_PATH"`
	TokenFile               string        `env:"TOKEN_FILE"`
	AssertionKeyFile        string        `env:"CLIENT_ASSERTION_KEY_FILE"`
	AssertionAlg            string        `env:"CLIENT_ASSERTION_ALG" envDefault:"RS256"`
	AssertionKeyID          string        `env:"CLIENT_ASSERTION_KEY_ID"`
	HandoffPath             string        `env:"HANDOFF_PATH"`
	UpstreamCAFile          string        `env:"UPSTREAM_CA_FILE"`
	ClientCertFile          string        `env:"CLIENT_CERT_FILE"`
	ClientKeyFile           string        `env:"CLIENT_KEY_FILE"`
	Pprof                   bool          `env:"PPROF"` // serve net/http/pprof on the admin listener
	RequireHeader           string        `env:"REQUIRE_HEADER"`
	MaxConnections          int           `env:"MAX_CONNECTIONS" envDefault:"1024"`
	SharedCache             string        `env:"SHARED_CACHE"` // redis:// or rediss://: one token for the fleet
	SharedCacheKeyFile      string        `env:"SHARED_CACHE_KEY_FILE"`
	SharedCachePasswordFile string        `env:"SHARED_CACHE_PASSWORD_FILE"`
	SharedCacheCAFile       string        `env:"SHARED_CACHE_CA_FILE"`
	APIKey                  string        `env:"API_KEY"`
	APIKeyFile              string        `env:"API_KEY_FILE"`
	TokenCacheSize          int           `env:"TOKEN_CACHE_SIZE" envDefault:"10000"`
	BodyCustomerField       string        `env:"BODY_CUSTOMER_FIELD"`
	ClientAuthTokenPath     string        `env:"CLIENT_AUTH_TOKEN_PATH"`
	TenantHeader            string        `env:"TENANT_HEADER"`
	TenantsDir              string        `env:"TENANTS_DIR"`
	TenantDefault           string        `env:"TENANT_DEFAULT"`
	PaygateCipher           string        `env:"PAYGATE_CIPHER" envDefault:"blowfish"`
	PaygateKeyFile          string        `env:"PAYGATE_KEY_FILE"`
	PaygateHMACKeyFile      string        `env:"PAYGATE_HMAC_KEY_FILE"`
	PaygatePath             string        `env:"PAYGATE_PATH"`
	SDKAuthPath             string        `env:"SDK_AUTH_PATH"`
	SDKAuthURL              string        `env:"SDK_AUTH_URL"`
	SDKAuthTTL              time.Duration `env:"SDK_AUTH_TTL" envDefault:"15m"`
	SDKAuthMaxInflight      int           `env:"SDK_AUTH_MAX_INFLIGHT" envDefault:"16"`
	BasicUser               string        `env:"BASIC_USER"`
	BasicUserFile           string        `env:"BASIC_USER_FILE"`
	BasicPassword           string        `env:"BASIC_PASSWORD"`
	BasicPasswordFile       string        `env:"BASIC_PASSWORD_FILE"`
	SetHeaders              string        `env:"SET_HEADERS"` // name=value,name=value
	MerchantIDHeader        string        `env:"MERCHANT_ID_HEADER"`
	ClientAssertionFile     string        `env:"CLIENT_ASSERTION_FILE"`
	AssertionFile           string        `env:"ASSERTION_FILE"`
	AssertionIssuer         string        `env:"ASSERTION_ISSUER"`
	AssertionSubject        string        `env:"ASSERTION_SUBJECT"`
	AssertionAudience       string        `env:"ASSERTION_AUDIENCE"`
	SubjectTokenFile        string        `env:"SUBJECT_TOKEN_FILE"`
	SubjectTokenType        string        `env:"SUBJECT_TOKEN_TYPE" envDefault:"urn:ietf:params:oauth:token-type:jwt"`
	ActorTokenFile          string        `env:"ACTOR_TOKEN_FILE"`
	ActorTokenType          string        `env:"ACTOR_TOKEN_TYPE"`
	RequestedTokenType      string        `env:"REQUESTED_TOKEN_TYPE"`
}

// loadConfig reads the configuration from environ and validates it as a
// whole: the error lists every problem, each naming its variable.
func loadConfig(environ map[string]string) (Config, error) {
	var c Config
	var problems []error
	set := environ
	environ, _ = withPreset(environ)
	if err := parseEnv(&c, environ); err != nil {
		problems = append(problems, parseProblems(err)...)
	}
	if c.Inject == "" {
		c.Inject = defaultInject(c.TokenSource)
	}
	if _, set := environ[envPrefix+"BODY_EXPIRY_FIELD"]; !set {
		c.BodyExpiryField = "payload.authExpiry"
	}
	problems = append(problems, unknownVariables(set)...)
	for _, e := range c.check() {
		if !sameVariable(problems, e) { // a value that did not parse is reported once
			problems = append(problems, e)
		}
	}
	return c, errors.Join(problems...)
}

// parseEnv reads the AUTHSIDECAR_* variables of environ into c.
func parseEnv(c *Config, environ map[string]string) error {
	return env.ParseWithOptions(c, env.Options{Prefix: envPrefix, Environment: environ})
}

// framingHeaders are set by HTTP itself: no setting may name one.
var framingHeaders = map[string]bool{
	"Connection": true, "Content-Length": true, "Transfer-Encoding": true, "Host": true, "Te": true,
	"Trailer": true, "Upgrade": true, "Keep-Alive": true, "Proxy-Connection": true,
}

// credentialHeaders carry credentials or the body's type: REQUIRE_HEADER,
// which authsidecar removes, may not name one either.
var credentialHeaders = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Content-Type": true, "Forwarded": true,
}

// serviceLinks matches the variables Kubernetes injects for a Service named
// authsidecar or authsidecar-… (AUTHSIDECAR_SERVICE_HOST,
// AUTHSIDECAR_METRICS_PORT_9090_TCP, …).
var serviceLinks = regexp.MustCompile(`^` + envPrefix + `([A-Z0-9_]+_)?(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$`)

// unknownVariables reports AUTHSIDECAR_* variables that configure nothing:
// a misspelt name would otherwise leave a setting at its default unnoticed.
// Kubernetes' service links are not ours and are left alone.
func unknownVariables(environ map[string]string) []error {
	known := map[string]bool{}
	for f := range reflect.TypeFor[Config]().Fields() {
		if name, ok := f.Tag.Lookup("env"); ok {
			known[envPrefix+name] = true
		}
	}
	var problems []error
	for _, name := range slices.Sorted(maps.Keys(environ)) {
		if strings.HasPrefix(name, envPrefix) && !known[name] && !serviceLinks.MatchString(name) {
			problems = append(problems, fmt.Errorf("%s: not a setting of authsidecar (misspelt?)", name))
		}
	}
	return problems
}

func sameVariable(problems []error, e error) bool {
	name, _, _ := strings.Cut(e.Error(), ":")
	for _, p := range problems {
		if strings.HasPrefix(p.Error(), name+":") {
			return true
		}
	}
	return false
}

// parseProblems renames env's parse errors after the variables they concern.
func parseProblems(err error) []error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return []error{err}
	}
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			f, _ := reflect.TypeFor[Config]().FieldByName(pe.Name)
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			want := "a number"
			switch pe.Type {
			case reflect.TypeFor[time.Duration]():
				want = "a duration (e.g. 30s, 15m, 12h)"
			case reflect.TypeFor[int64]():
				want = "a whole number"
			}
			e = fmt.Errorf("%s%s: not %s", envPrefix, name, want)
		}
		out = append(out, e)
	}
	return out
}

// check reports every problem of the configuration. It reads the files the
// settings name and parses them to check them, but keeps nothing: build
// constructs the parts.
func (c *Config) check() []error {
	var p problems
	if _, ok := lookupProvider(c.Provider); c.Provider != "" && !ok {
		p.add("PROVIDER", "must be %s, got %q", providerNames(), c.Provider)
	}
	p.url("UPSTREAM_URL", c.UpstreamURL)
	p.addr("LISTEN_ADDR", c.ListenAddr)
	p.addr("ADMIN_ADDR", c.AdminAddr)
	if _, port, _ := net.SplitHostPort(c.ListenAddr); c.ListenAddr == c.AdminAddr && port != "0" {
		p.add("ADMIN_ADDR", "must differ from %sLISTEN_ADDR", envPrefix)
	}
	source, sourceOK := c.checkSource(&p)
	if c.HandoffPath != "" {
		switch err := proxy.CheckEndpointPath(c.HandoffPath); {
		case err != nil:
			p.add("HANDOFF_PATH", "%v", err)
		case sourceOK && !fetchesTokens(source):
			p.add("HANDOFF_PATH", "needs a token source: %sTOKEN_SOURCE is %s", envPrefix, c.TokenSource)
		}
	}
	params, err := parseParams(c.TokenParams)
	if err != nil {
		p.add("TOKEN_PARAMS", "%v", err)
	}
	for _, k := range []string{"grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type", "scope"} {
		if params.Has(k) && (k != "scope" || len(c.scopes()) > 0) {
			p.add("TOKEN_PARAMS", "%q is set by the sidecar (use %sSCOPES for scope)", k, envPrefix)
		}
	}
	if _, ok := authStyles[c.OAuth2AuthStyle]; !ok {
		p.add("OAUTH2_AUTH_STYLE", "must be auto, header, params, private-key-jwt or client-assertion-file, got %q", c.OAuth2AuthStyle)
	}
	if strings.TrimSpace(c.JSONTokenField) == "" {
		p.add("JSON_TOKEN_FIELD", "must not be empty")
	} else {
		p.dottedPath("JSON_TOKEN_FIELD", c.JSONTokenField, true)
	}
	if strings.TrimSpace(c.JSONExpiresInField) == "" {
		p.add("JSON_EXPIRES_IN_FIELD", "must not be empty")
	}
	p.positive("TOKEN_DEFAULT_TTL", c.TokenDefaultTTL)
	p.positive("TOKEN_TIMEOUT", c.TokenTimeout)
	p.positive("TOKEN_WAIT", c.TokenWait)
	p.positive("FORCED_REFRESH_INTERVAL", c.ForcedRefreshInterval)
	p.positive("UPSTREAM_TIMEOUT", c.UpstreamTimeout)
	p.positive("SHUTDOWN_TIMEOUT", c.ShutdownTimeout)
	if c.MaxConnections < 1 {
		p.add("MAX_CONNECTIONS", "must be at least 1, got %d", c.MaxConnections)
	}
	if h := c.RequireHeader; h != "" {
		switch {
		case !httpguts.ValidHeaderFieldName(h):
			p.add("REQUIRE_HEADER", "%q is not a valid header name", h)
		case !validHeaderName(h), credentialHeaders[http.CanonicalHeaderKey(h)],
			strings.EqualFold(h, c.InjectHeader):
			p.add("REQUIRE_HEADER", "%q is a header HTTP or authsidecar itself sets: choose a name of your own, such as X-Authsidecar-Request", h)
		}
	}
	if c.ShutdownDelay < 0 {
		p.add("SHUTDOWN_DELAY", "must not be negative, got %v", c.ShutdownDelay)
	}
	if !(c.RenewAt > 0 && c.RenewAt < 1) {
		p.add("RENEW_AT", "must be a fraction between 0 and 1 (exclusive), got %v", c.RenewAt)
	}
	if _, err := parseStatuses(c.RefreshOnStatus); err != nil {
		p.add("REFRESH_ON_STATUS", "%v", err)
	}
	if c.MaxReplayBody < 0 {
		p.add("MAX_REPLAY_BODY", "must not be negative, got %d", c.MaxReplayBody)
	}
	if _, err := c.logLevel(); err != nil {
		p.add("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		p.add("LOG_FORMAT", "must be json or text, got %q", c.LogFormat)
	}
	c.checkInjection(&p, source, sourceOK)
	c.checkKeyed(&p, source, sourceOK)
	c.checkTenants(&p, source, sourceOK)
	c.setHeaders(&p)
	c.checkPaygate(&p)
	c.checkSDKAuth(&p)
	c.checkEndpoints(&p)
	c.checkSharedCache(&p, source, sourceOK)
	c.upstreamTLS(&p)
	return p
}

// authStyles maps OAUTH2_AUTH_STYLE to how the client authenticates.
var authStyles = map[string]oauth2.AuthStyle{
	"auto":            oauth2.AuthStyleAutoDetect,
	"header":          oauth2.AuthStyleInHeader,
	"params":          oauth2.AuthStyleInParams,
	"private-key-jwt": oauth2.AuthStyleInParams,
	// The client_assertion in the body.
	"client-assertion-file": oauth2.AuthStyleInParams,
}

// scopes is SCOPES as a list: separated by commas or white space (OAuth2's
// own separator is a space).
func (c Config) scopes() []string {
	return strings.FieldsFunc(c.Scopes, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// tokenParams is TOKEN_PARAMS, checked by check.
func (c Config) tokenParams() url.Values {
	v, _ := parseParams(c.TokenParams)
	return v
}

// logLevel is LOG_LEVEL.
func (c Config) logLevel() (slog.Level, error) {
	var l slog.Level
	return l, l.UnmarshalText([]byte(c.LogLevel))
}

// validHeaderName reports whether name is an HTTP token that is not a
// hop-by-hop or framing header.
func validHeaderName(name string) bool {
	return httpguts.ValidHeaderFieldName(name) && !framingHeaders[http.CanonicalHeaderKey(name)]
}

// parseParams reads "k=v,k=v".
func parseParams(s string) (url.Values, error) {
	v := url.Values{}
	for kv := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, val, ok := strings.Cut(kv, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return nil, fmt.Errorf("want k=v,k=v, got %q", kv)
		}
		v.Add(k, strings.TrimSpace(val))
	}
	return v, nil
}

// parseStatuses reads a comma-separated list of HTTP statuses (400–599).
func parseStatuses(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 400 || n > 599 {
			return nil, fmt.Errorf("want HTTP statuses from 400 to 599, got %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}
