package tokens

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// OAuth2Config describes an RFC 6749 client-credentials grant.
type OAuth2Config struct {
	// TokenURL is the token endpoint.
	TokenURL string
	// ClientID and ClientSecret authenticate the client.
	ClientID, ClientSecret Secret
	// Scopes are sent space-separated as scope; omitted when empty.
	Scopes []string
	// Params are extra form parameters (audience, resource, …).
	Params url.Values
	// AuthStyle says how the client authenticates; the zero value detects it.
	AuthStyle oauth2.AuthStyle
	// DefaultTTL is the lifetime used when the answer has no expires_in and the
	// token is not a JWT with exp. If zero, DefaultTTL is used.
	DefaultTTL time.Duration
	// Client makes the request. If nil, http.DefaultClient is used.
	Client *http.Client
	// Clock dates the token. If nil, SystemClock is used.
	Clock Clock
}

// NewOAuth2Source returns a Source that runs the client-credentials grant of
// golang.org/x/oauth2/clientcredentials. The credentials are read at every
// fetch, so rotated secret files take effect at the next one.
func NewOAuth2Source(c OAuth2Config) Source {
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	c.Clock = clockOr(c.Clock)
	return &oauth2Source{c: c}
}

type oauth2Source struct {
	c OAuth2Config

	mu  sync.Mutex
	cfg *clientcredentials.Config // kept while the credentials stay the same, so that an auto-detected auth style is remembered
}

// config returns the grant's configuration for these credentials.
func (s *oauth2Source) config(id, secret string) *clientcredentials.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil || s.cfg.ClientID != id || s.cfg.ClientSecret != secret {
		s.cfg = &clientcredentials.Config{
			ClientID:       id,
			ClientSecret:   secret,
			TokenURL:       s.c.TokenURL,
			Scopes:         s.c.Scopes,
			EndpointParams: s.c.Params,
			AuthStyle:      s.c.AuthStyle,
		}
	}
	return s.cfg
}

func (s *oauth2Source) Token(ctx context.Context) (*Token, error) {
	id, err := s.c.ClientID.Read()
	if err != nil {
		return nil, err
	}
	secret, err := s.c.ClientSecret.Read()
	if err != nil {
		return nil, err
	}
	t, err := s.config(id, secret).Token(context.WithValue(ctx, oauth2.HTTPClient, s.c.Client))
	if err != nil {
		// A provider may echo the request back, Basic credential included.
		basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			e := &RetrieveError{
				Code:        cleanDescription(re.ErrorCode, secret, basic),
				Description: cleanDescription(re.ErrorDescription, secret, basic),
			}
			if re.Response != nil {
				e.Status = re.Response.StatusCode
				e.RetryAfter = retryAfter(re.Response.Header.Get("Retry-After"))
			}
			if e.Code == "" && e.Description == "" {
				e.Description = cleanDescription(string(re.Body), secret, basic)
			}
			return nil, e
		}
		return nil, fmt.Errorf("tokens: token request: %w", err)
	}
	now := s.c.Clock.Now()
	// x/oauth2 dates Expiry by the system clock, and clientcredentials drops
	// ExpiresIn: read expires_in from the answer, to date it by our clock.
	var given time.Time
	if d, err := seconds(t.Extra("expires_in")); err == nil {
		given = now.Add(d)
	} else if !t.Expiry.IsZero() {
		given = now.Add(time.Until(t.Expiry))
	}
	return &Token{Value: t.AccessToken, Expiry: expiryOf(t.AccessToken, given, now, s.c.DefaultTTL)}, nil
}
