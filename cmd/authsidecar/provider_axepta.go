package main

// axeptaProvider: BNP Paribas Axepta on Computop Paygate, every call sealed
// in the encrypted envelope with the merchant's passwords (seed 003).
var axeptaProvider = provider{
	name: "axepta",
	settings: func(func(string) string) map[string]string {
		return map[string]string{
			"UPSTREAM_URL":   "https://paymentpage.axepta.bnpparibas",
			"TOKEN_SOURCE":   "none",
			"INJECT":         "paygate",
			"PAYGATE_CIPHER": "blowfish",
		}
	},
}
