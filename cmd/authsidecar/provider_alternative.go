package main

// alternativeProvider: Alternative Payments' public API, OAuth2 client
// credentials sent with HTTP Basic to {base}/oauth/token (seed 004).
var alternativeProvider = provider{
	name: "alternative-payments",
	settings: func(get func(string) string) map[string]string {
		return map[string]string{
			"UPSTREAM_URL":      "https://public-api.alternativepayments.io",
			"TOKEN_SOURCE":      "oauth2",
			"OAUTH2_AUTH_STYLE": "header",
			"TOKEN_URL":         join(get("UPSTREAM_URL"), "/oauth/token"),
		}
	},
}
