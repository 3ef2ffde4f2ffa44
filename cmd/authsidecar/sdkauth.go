package main

import (
	"errors"
	"net/http"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/proxy/paygate"
	"github.com/authsidecar/authsidecar/tokens"
)

// axeptaFields names the variable of each field of tokens.AxeptaConfig.
var axeptaFields = map[string]string{"URL": "SDK_AUTH_URL", "TTL": "SDK_AUTH_TTL", "Merchant": "MERCHANT_ID"}

// checkSDKAuth checks the settings of SDK_AUTH_PATH, Axepta's mobile-SDK
// authentication endpoint: one fresh AuthToken registered per request.
func (c *Config) checkSDKAuth(p *problems) {
	if c.SDKAuthPath == "" {
		if c.SDKAuthURL != "" {
			p.add("SDK_AUTH_URL", "not used without %sSDK_AUTH_PATH", envPrefix)
		}
		return
	}
	if err := proxy.CheckEndpointPath(c.SDKAuthPath); err != nil {
		p.add("SDK_AUTH_PATH", "%v", err)
	}
	// The passwords are checkPaygate's; here only the merchant id counts,
	// and with tenants each has its own (checkTenants).
	id := c.MerchantID
	if !c.ownCredentials() {
		id = "each tenant's"
	}
	idOnly := func() *paygate.Merchant { return &paygate.Merchant{ID: id, Cipher: checkOnly{}} }
	p.fields(c.axeptaConfig(idOnly, nil).Check(), axeptaFields, "SDK_AUTH_PATH")
	if c.SDKAuthMaxInflight < 1 {
		p.add("SDK_AUTH_MAX_INFLIGHT", "must be at least 1, got %d", c.SDKAuthMaxInflight)
	}
}

func (c Config) axeptaConfig(merchant func() *paygate.Merchant, client *http.Client) tokens.AxeptaConfig {
	return tokens.AxeptaConfig{URL: c.SDKAuthURL, Merchant: merchant, TTL: c.SDKAuthTTL, Client: client}
}

// checkOnly stands for the cipher while the configuration is checked.
type checkOnly struct{}

func (checkOnly) Encrypt([]byte) (string, error)      { return "", errors.New("not a cipher") }
func (checkOnly) Decrypt(string, int) ([]byte, error) { return nil, errors.New("not a cipher") }
