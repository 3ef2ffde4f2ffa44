package main

// tezpayProvider: TezPay's JWT, fetched with the client credentials from
// {base}/api/v1/tezpay/authenticate and sent as a Bearer token (seed 002).
var tezpayProvider = provider{
	name: "tezpay",
	settings: func(get func(string) string) map[string]string {
		return map[string]string{
			"TOKEN_SOURCE": "json",
			"TOKEN_URL":    join(get("UPSTREAM_URL"), "/api/v1/tezpay/authenticate"),
			"INJECT":       "bearer",
		}
	},
}
