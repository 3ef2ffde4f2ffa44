package main

// juspayProvider: Juspay (seeds 000, 001). Its server API takes HTTP Basic
// with the API key as user name and an empty password, and x-merchantid on
// every call. With TOKEN_SOURCE=juspay-customer, each customer's
// clientAuthToken comes from the Customers API at the same base URL, is
// written into bodies and answered at CLIENT_AUTH_TOKEN_PATH for the SDK.
// With INJECT=signature, the seed's signature payload instead.
var juspayProvider = provider{
	name: "juspay",
	settings: func(get func(string) string) map[string]string {
		s := map[string]string{"UPSTREAM_URL": "https://api.juspay.in"}
		switch {
		case get("INJECT") == signatureMode.name:
			s["TOKEN_SOURCE"] = noSource.name
			s["SERVICE"] = "in.juspay.hyperapi"
			return s
		case get("TOKEN_SOURCE") == juspayCustomerSource.name:
			s["TOKEN_URL"] = get("UPSTREAM_URL")
			s["CLIENT_AUTH_TOKEN_PATH"] = "/juspay/client-auth-token"
		default:
			s["TOKEN_SOURCE"] = noSource.name
			s["INJECT"] = basicMode.name
		}
		// The server API's Basic credential, whenever INJECT is basic (the
		// preset's, on its next pass, or the environment's beside
		// juspay-customer).
		if get("INJECT") == basicMode.name {
			s["BASIC_USER"] = get("API_KEY")
			s["BASIC_USER_FILE"] = get("API_KEY_FILE")
		}
		// x-merchantid: the route's MERCHANT_ID, or each tenant's.
		s["MERCHANT_ID_HEADER"] = "x-merchantid"
		return s
	},
}
