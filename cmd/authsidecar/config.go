package main

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
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
	"unicode/utf8"

	"github.com/caarlos0/env/v11"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/oauth2"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// envPrefix is put before every variable name, so that Kubernetes' injected
// <SERVICE>_PORT variables cannot collide with ours.
const envPrefix = "AUTHSIDECAR_"

// Config is authsidecar's whole configuration, read from the environment.
// The unexported fields are derived from the others by validate.
type Config struct {
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
	TokenTTL                time.Duration `env:"TOKEN_TTL" envDefault:"15m"`
	TokenFile               string        `env:"TOKEN_FILE"`
	AssertionKeyFile        string        `env:"CLIENT_ASSERTION_KEY_FILE"`
	AssertionAlg            string        `env:"CLIENT_ASSERTION_ALG" envDefault:"RS256"`
	AssertionKeyID          string        `env:"CLIENT_ASSERTION_KEY_ID"`
	InjectLabelHeader       string        `env:"INJECT_LABEL_HEADER"`
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

	upstream  *url.URL
	scopes    []string
	params    url.Values
	authStyle oauth2.AuthStyle
	refreshOn []int
	logLevel  slog.Level
	tls       *tls.Config
	assertion *tokens.ClientAssertion
	sharedKey []byte
	sharedTLS *tls.Config
}

// loadConfig reads the configuration from environ and validates it as a
// whole: the error lists every problem, each naming its variable.
func loadConfig(environ map[string]string) (Config, error) {
	var c Config
	var problems []error
	if err := env.ParseWithOptions(&c, env.Options{Prefix: envPrefix, Environment: environ}); err != nil {
		problems = append(problems, parseProblems(err)...)
	}
	if c.Inject == "" {
		c.Inject = "bearer"
		if c.TokenSource == "none" {
			c.Inject = "none"
		}
	}
	if _, set := environ[envPrefix+"BODY_EXPIRY_FIELD"]; !set {
		c.BodyExpiryField = "payload.authExpiry"
	}
	problems = append(problems, unknownVariables(environ)...)
	for _, e := range c.validate() {
		if !sameVariable(problems, e) { // a value that did not parse is reported once
			problems = append(problems, e)
		}
	}
	return c, errors.Join(problems...)
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

// validate checks every field and fills the derived ones, returning every
// problem found.
func (c *Config) validate() []error {
	var p problems
	c.upstream = p.url("UPSTREAM_URL", c.UpstreamURL)
	p.addr("LISTEN_ADDR", c.ListenAddr)
	p.addr("ADMIN_ADDR", c.AdminAddr)
	if c.ListenAddr == c.AdminAddr {
		p.add("ADMIN_ADDR", "must differ from %sLISTEN_ADDR", envPrefix)
	}

	switch c.TokenSource {
	case "json", "oauth2":
		p.url("TOKEN_URL", c.TokenURL)
		p.oneOf("CLIENT_ID", c.ClientID, c.ClientIDFile)
		if c.TokenSource == "json" && c.OAuth2AuthStyle == "private-key-jwt" {
			p.add("OAUTH2_AUTH_STYLE", "private-key-jwt goes with %sTOKEN_SOURCE=oauth2, not json", envPrefix)
		}
		if c.TokenSource == "oauth2" && c.OAuth2AuthStyle == "private-key-jwt" {
			c.validateAssertion(&p)
		} else {
			p.oneOf("CLIENT_SECRET", c.ClientSecret, c.ClientSecretFile)
		}
	case "registered":
		p.url("TOKEN_URL", c.TokenURL)
		if c.MerchantID == "" {
			p.add("MERCHANT_ID", "required with %sTOKEN_SOURCE=registered: tokens are registered for it", envPrefix)
		}
		if c.TokenTTL <= 0 || c.TokenTTL > 24*time.Hour {
			p.add("TOKEN_TTL", "must be positive and at most 24h (the provider's limit), got %s", c.TokenTTL)
		}
	case "file":
		if c.TokenFile == "" {
			p.add("TOKEN_FILE", "required with %sTOKEN_SOURCE=file", envPrefix)
		} else if _, err := tokens.ReadFile(c.TokenFile); err != nil {
			p.add("TOKEN_FILE", "%v", err)
		}
	case "none":
	case "":
		p.add("TOKEN_SOURCE", "required: json, oauth2, registered, file or none")
	default:
		p.add("TOKEN_SOURCE", "must be json, oauth2, registered, file or none, got %q", c.TokenSource)
	}
	if c.HandoffPath != "" {
		switch {
		case !strings.HasPrefix(c.HandoffPath, "/"):
			p.add("HANDOFF_PATH", "must be a path starting with /, got %q", c.HandoffPath)
		case strings.ContainsAny(c.HandoffPath, "?#") || proxy.HasDotSegment(c.HandoffPath):
			p.add("HANDOFF_PATH", "must be a plain path, without dot segments, ? or #, got %q", c.HandoffPath)
		case c.HandoffPath == c.SignPath:
			p.add("HANDOFF_PATH", "must differ from %sSIGN_PATH", envPrefix)
		case c.TokenSource == "none":
			p.add("HANDOFF_PATH", "needs a token source: %sTOKEN_SOURCE is none", envPrefix)
		}
	}
	for s := range strings.SplitSeq(c.Scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.scopes = append(c.scopes, s)
		}
	}
	var err error
	if c.params, err = parseParams(c.TokenParams); err != nil {
		p.add("TOKEN_PARAMS", "%v", err)
	}
	for _, k := range []string{"grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type", "scope"} {
		if c.params.Has(k) && (k != "scope" || len(c.scopes) > 0) {
			p.add("TOKEN_PARAMS", "%q is set by the sidecar (use %sSCOPES for scope)", k, envPrefix)
		}
	}
	switch c.OAuth2AuthStyle {
	case "auto":
		c.authStyle = oauth2.AuthStyleAutoDetect
	case "header":
		c.authStyle = oauth2.AuthStyleInHeader
	case "params", "private-key-jwt":
		c.authStyle = oauth2.AuthStyleInParams
	default:
		p.add("OAUTH2_AUTH_STYLE", "must be auto, header, params or private-key-jwt, got %q", c.OAuth2AuthStyle)
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
			strings.EqualFold(h, c.InjectHeader), strings.EqualFold(h, c.InjectLabelHeader):
			p.add("REQUIRE_HEADER", "%q is a header HTTP or authsidecar itself sets: choose a name of your own, such as X-Authsidecar-Request", h)
		}
	}
	if c.ShutdownDelay < 0 {
		p.add("SHUTDOWN_DELAY", "must not be negative, got %v", c.ShutdownDelay)
	}
	if !(c.RenewAt > 0 && c.RenewAt < 1) {
		p.add("RENEW_AT", "must be a fraction between 0 and 1 (exclusive), got %v", c.RenewAt)
	}
	if c.refreshOn, err = parseStatuses(c.RefreshOnStatus); err != nil {
		p.add("REFRESH_ON_STATUS", "%v", err)
	}
	if c.MaxReplayBody < 0 {
		p.add("MAX_REPLAY_BODY", "must not be negative, got %d", c.MaxReplayBody)
	}
	if err := c.logLevel.UnmarshalText([]byte(c.LogLevel)); err != nil {
		p.add("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		p.add("LOG_FORMAT", "must be json or text, got %q", c.LogFormat)
	}
	c.validateInjection(&p)
	c.validateSharedCache(&p)
	c.tls = c.tlsConfig(&p)
	return p
}

// validateInjection checks the injection mode and what it needs.
func (c *Config) validateInjection(p *problems) {
	switch c.Inject {
	case "bearer", "header", "json-body":
		if c.TokenSource == "none" {
			p.add("INJECT", "%s needs a token: set %sTOKEN_SOURCE to json or oauth2, or use signature or none", c.Inject, envPrefix)
		}
	case "signature", "none":
	default:
		p.add("INJECT", "must be bearer, header, json-body, signature or none, got %q", c.Inject)
	}
	tokenHeader := map[string]string{"bearer": "Authorization", "header": c.InjectHeader}[c.Inject]
	switch label := c.InjectLabelHeader; {
	case label == "":
	case !validHeaderName(label):
		p.add("INJECT_LABEL_HEADER", "not a valid header name: %q", label)
	case http.CanonicalHeaderKey(label) == http.CanonicalHeaderKey(tokenHeader):
		p.add("INJECT_LABEL_HEADER", "%q is the header the token goes in with %sINJECT=%s: the label would replace the token", label, envPrefix, c.Inject)
	case c.Inject == "signature":
		p.add("INJECT_LABEL_HEADER", "not used with %sINJECT=signature, which sends no token", envPrefix)
	}
	if c.Inject == "header" && !validHeaderName(c.InjectHeader) {
		p.add("INJECT_HEADER", "not a valid header name: %q", c.InjectHeader)
	}
	if c.Inject == "header" && strings.ContainsFunc(c.InjectPrefix, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		p.add("INJECT_PREFIX", "must not hold control characters")
	}
	if c.Inject == "json-body" {
		p.dottedPath("BODY_TOKEN_FIELD", c.BodyTokenField, true)
		p.dottedPath("BODY_EXPIRY_FIELD", c.BodyExpiryField, false)
		if tok, exp := c.BodyTokenField+".", c.BodyExpiryField+"."; c.BodyExpiryField != "" && (strings.HasPrefix(tok, exp) || strings.HasPrefix(exp, tok)) {
			p.add("BODY_EXPIRY_FIELD", "%q overlaps %sBODY_TOKEN_FIELD %q: the two must be separate fields", c.BodyExpiryField, envPrefix, c.BodyTokenField)
		}
	}
	p.dottedPath("JSON_EXPIRES_AT_FIELD", c.JSONExpiresAtField, false)
	if c.Inject == "signature" || c.SignPath != "" {
		c.validateSigning(p)
	}
	if c.MaxReplayBody == 0 && (c.Inject == "json-body" || c.Inject == "signature" || c.SignPath != "") {
		p.add("MAX_REPLAY_BODY", "must be positive with %sINJECT=%s or %sSIGN_PATH: bodies are rewritten in memory", envPrefix, c.Inject, envPrefix)
	}
	if c.SignPath != "" && !strings.HasPrefix(c.SignPath, "/") {
		p.add("SIGN_PATH", "must be a path starting with /, got %q", c.SignPath)
	} else if strings.ContainsAny(c.SignPath, "?#") || proxy.HasDotSegment(c.SignPath) {
		p.add("SIGN_PATH", "must be a plain path, without dot segments, ? or #, got %q", c.SignPath)
	}
}

// validateAssertion checks private_key_jwt client authentication.
func (c *Config) validateAssertion(p *problems) {
	if c.ClientSecret != "" || c.ClientSecretFile != "" {
		p.add("CLIENT_SECRET", "not used with %sOAUTH2_AUTH_STYLE=private-key-jwt: unset it (and %sCLIENT_SECRET_FILE)", envPrefix, envPrefix)
	}
	if c.AssertionKeyFile == "" {
		p.add("CLIENT_ASSERTION_KEY_FILE", "required with %sOAUTH2_AUTH_STYLE=private-key-jwt", envPrefix)
		return
	}
	key, err := tokens.LoadKeyFile(c.AssertionKeyFile, nil)
	if err != nil {
		p.add("CLIENT_ASSERTION_KEY_FILE", "%v", err)
		return
	}
	c.assertion = &tokens.ClientAssertion{Key: key, Alg: c.AssertionAlg, KeyID: c.AssertionKeyID}
	if err := c.assertion.Check(); err != nil {
		p.add("CLIENT_ASSERTION_ALG", "%v", err)
	}
}

// validateSigning checks the signing key and the ids that go with it.
func (c *Config) validateSigning(p *problems) {
	if c.SigningKeyFile == "" {
		p.add("SIGNING_KEY_FILE", "required for signing (%sINJECT=signature or %sSIGN_PATH)", envPrefix, envPrefix)
	} else if raw, err := tokens.ReadFile(c.SigningKeyFile); err != nil {
		p.add("SIGNING_KEY_FILE", "%v", err)
	} else if key, err := tokens.ParsePrivateKey(raw); err != nil {
		p.add("SIGNING_KEY_FILE", "%v", err)
	} else if _, ok := key.(*rsa.PrivateKey); !ok {
		p.add("SIGNING_KEY_FILE", "want an RSA private key, got %T", key)
	}
	if c.SigningKeyID == "" {
		p.add("SIGNING_KEY_ID", "required for signing: it becomes payload.merchantKeyId")
	}
	if c.MerchantID == "" {
		p.add("MERCHANT_ID", "required for signing: it becomes merchant_id in the signature payload")
	}
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

// tlsConfig builds the TLS settings shared by the upstream and the token
// endpoint: an extra CA and a client certificate, both optional.
func (c *Config) tlsConfig(p *problems) *tls.Config {
	if c.UpstreamCAFile == "" && c.ClientCertFile == "" && c.ClientKeyFile == "" {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.UpstreamCAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := tokens.ReadFile(c.UpstreamCAFile)
		switch {
		case err != nil:
			p.add("UPSTREAM_CA_FILE", "%v", err)
		case !pool.AppendCertsFromPEM(pem):
			p.add("UPSTREAM_CA_FILE", "no PEM certificate in %s", c.UpstreamCAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.ClientCertFile == "" && c.ClientKeyFile == "":
	case c.ClientCertFile == "" || c.ClientKeyFile == "":
		p.add("CLIENT_CERT_FILE", "%sCLIENT_CERT_FILE and %sCLIENT_KEY_FILE go together", envPrefix, envPrefix)
	default:
		cert, err := tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile)
		if err != nil {
			p.add("CLIENT_CERT_FILE", "load client certificate: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// problems collects configuration errors, each naming its variable.
type problems []error

func (p *problems) add(name, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s%s: %s", envPrefix, name, fmt.Sprintf(format, args...)))
}

func (p *problems) url(name, raw string) *url.URL {
	if raw == "" {
		p.add(name, "required")
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(name, "want an absolute http or https URL, got %q", raw)
		return nil
	}
	return u
}

func (p *problems) addr(name, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || (n == 0 && port != "0") {
		p.add(name, "want host:port with a port from 0 to 65535, got %q", addr)
	}
}

func (p *problems) oneOf(name, literal, file string) {
	switch {
	case literal != "" && file != "":
		p.add(name, "set either %s%s or %s%s_FILE, not both", envPrefix, name, envPrefix, name)
	case literal == "" && file == "":
		p.add(name, "required (or %s%s_FILE)", envPrefix, name)
	case file != "":
		if _, err := tokens.ReadFile(file); err != nil { // readable now; re-read at each use
			p.add(name+"_FILE", "%v", err)
		}
	}
}

// dottedPath checks a dotted JSON path such as payload.clientAuthToken.
func (p *problems) dottedPath(name, path string, required bool) {
	if path == "" {
		if required {
			p.add(name, "required")
		}
		return
	}
	if slices.Contains(strings.Split(path, "."), "") || !utf8.ValidString(path) ||
		strings.ContainsFunc(path, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		p.add(name, "want a dotted path such as payload.clientAuthToken, got %q", path)
	}
}

func (p *problems) positive(name string, d time.Duration) {
	if d <= 0 {
		p.add(name, "must be positive, got %s", d)
	}
}
