package main

// juspayProvider: Juspay's server API (seeds 000, 001). Filled in once
// INJECT=basic and TOKEN_SOURCE=juspay-customer exist.
var juspayProvider = provider{
	name: "juspay",
	settings: func(get func(string) string) map[string]string {
		s := map[string]string{"UPSTREAM_URL": "https://api.juspay.in"}
		if get("INJECT") == "signature" {
			s["TOKEN_SOURCE"] = "none"
			s["SERVICE"] = "in.juspay.hyperapi"
		}
		return s
	},
}
