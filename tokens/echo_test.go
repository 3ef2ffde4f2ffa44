package tokens

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// maxErrorLen is the longest error a provider's answer may cause: a few
// hundred bytes, whatever the answer's size.
const maxErrorLen = 400

// bigValue is 800 KB, the size of the expires_in that once became an 800 KB
// 503 body.
var bigValue = strings.Repeat("4", 800<<10)

// swappedToken is a real-looking token found where a lifetime was expected:
// JSON_TOKEN_FIELD and JSON_EXPIRES_IN_FIELD swapped by mistake.
var swappedToken = tezpayExampleToken

// malformedStatusLine answers with a status line that is not HTTP, which
// net/http quotes in its error.
func malformedStatusLine(line string) answer {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		buf.WriteString(line + "\r\n\r\n")
		buf.Flush()
	}
}

// TestProviderValuesInErrorsAreCutShort is finding 3 of issue 13: a value
// taken from a provider's answer appears in an error at most 64 bytes long,
// redacted, and never when it may be a token.
func TestProviderValuesInErrorsAreCutShort(t *testing.T) {
	tests := []struct {
		name    string
		source  func(e *endpoint) Source
		answer  answer
		wantErr string // the error must still say what is wrong
		never   string // must not appear in the error, not even in part
	}{
		{"JSON: 800 KB expires_in", newJSONTestSource(jsonFields{}),
			reply(200, `{"access_token":"tok","expires_in":"`+bigValue+`"}`), `"expires_in": not a positive number of seconds`, bigValue[:maxEchoed+1]},
		{"JSON: 800 KB expires_in as a number", newJSONTestSource(jsonFields{}),
			reply(200, `{"access_token":"tok","expires_in":`+bigValue+`}`), `"expires_in": not a positive number of seconds`, bigValue[:maxEchoed+1]},
		{"JSON: token and expires_in fields swapped", newJSONTestSource(jsonFields{token: "expires_in", expiresIn: "access_token"}),
			reply(200, `{"access_token":"`+swappedToken+`","expires_in":"43200"}`), `"access_token": not a number of seconds`, swappedToken[:12]},
		{"JSON: client secret in expires_in", newJSONTestSource(jsonFields{}),
			reply(200, `{"access_token":"tok","expires_in":"-1`+tezpaySecret+`"}`), `"expires_in"`, tezpaySecret},
		{"JSON: malformed status line", newJSONTestSource(jsonFields{}),
			malformedStatusLine(bigValue), "tokens: token request: ", bigValue[:maxDescription+1]},
		{"OAuth2: 800 KB expires_in", newOAuth2Test(),
			reply(200, `{"access_token":"tok","token_type":"bearer","expires_in":"`+bigValue+`"}`), "tokens: token request: oauth2: cannot parse json", bigValue[:maxEchoed+1]},
		{"OAuth2: a token in expires_in", newOAuth2Test(),
			reply(200, `{"access_token":"tok","token_type":"bearer","expires_in":"`+swappedToken+`"}`), "tokens: token request: oauth2: cannot parse json", swappedToken[:12]},
		{"OAuth2: malformed status line", newOAuth2Test(),
			malformedStatusLine(bigValue), "tokens: token request: ", bigValue[:maxDescription+1]},
		{"Juspay: 800 KB expiry", newJuspayTest(),
			reply(200, `{"juspay":{"client_auth_token":"tkn_1","client_auth_token_expiry":"`+bigValue+`"}}`), "client_auth_token_expiry", bigValue[:maxEchoed+1]},
		{"Juspay: 800 KB error_message", newJuspayTest(),
			reply(401, `{"error_code":"access_denied","error_message":"`+bigValue+`"}`), "status 401: access_denied", bigValue[:maxDescription+1]},
		{"Juspay: 800 KB unknown customer message", newJuspayTest(),
			reply(404, `{"error_message":"`+bigValue+`"}`), "does not know the customer", bigValue[:maxDescription+1]},
		{"Juspay: malformed status line", newJuspayTest(),
			malformedStatusLine(bigValue), "tokens: customer request: ", bigValue[:maxDescription+1]},
		{"registration: 300 KB MID", newAxeptaTest(),
			sealedReply(testBlowfish, func(paygate.Params) paygate.Params {
				return p("MID", bigValue[:300<<10], "Status", "OK")
			}), "registration answer is for merchant", bigValue[:maxEchoed+1]},
		{"registration: malformed status line", newAxeptaTest(),
			malformedStatusLine(bigValue), "tokens: registration request: ", bigValue[:maxDescription+1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, tc.answer)
			tok, err := tc.source(e).Token(context.Background())
			if err == nil {
				t.Fatalf("Token() = %v, nil; want an error containing %q", tok, tc.wantErr)
			}
			msg := err.Error()
			if len(msg) > maxErrorLen {
				t.Errorf("Token() error is %d bytes long, want at most %d: %.200q…", len(msg), maxErrorLen, msg)
			}
			if !strings.Contains(msg, tc.wantErr) {
				t.Errorf("Token() error = %.500q, want it to contain %q", msg, tc.wantErr)
			}
			if strings.Contains(msg, tc.never) {
				t.Errorf("Token() error = %.500q, which quotes %.40q…", msg, tc.never)
			}
		})
	}
}

// TestEcho: one value is quoted cut to maxEchoed bytes, at a rune boundary,
// without the secrets given.
func TestEcho(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{"short", "3600s", nil, `"3600s"`},
		{"cut", strings.Repeat("9", 100), nil, `"` + strings.Repeat("9", maxEchoed) + `…"`},
		{"cut inside a rune", strings.Repeat("9", maxEchoed-1) + "€", nil, `"` + strings.Repeat("9", maxEchoed-1) + `…"`},
		{"secret redacted", "mid-" + tezpaySecret, []string{tezpaySecret}, `"mid-[redacted]"`},
		{"control characters escaped", "a\r\nb", nil, `"a\r\nb"`},
		{"invalid UTF-8 dropped", "a\xffb", nil, `"ab"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := echo(tc.in, tc.secrets...); got != tc.want {
				t.Errorf("echo(%.80q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func newJSONTestSource(f jsonFields) func(e *endpoint) Source {
	return func(e *endpoint) Source {
		return NewJSONSource(JSONConfig{
			URL: e.url(), ClientID: Literal(tezpayID), ClientSecret: Literal(tezpaySecret),
			TokenField: f.token, ExpiresInField: f.expiresIn, Client: e.client(),
		})
	}
}

func newOAuth2Test() func(e *endpoint) Source {
	return func(e *endpoint) Source {
		return newOAuth2TestSource(e, OAuth2Config{AuthStyle: oauth2.AuthStyleInParams})
	}
}

// newAxeptaTest adapts an Axepta registrar to a Source, for the tables of
// Sources' errors.
func newAxeptaTest() func(e *endpoint) Source {
	return func(e *endpoint) Source {
		r := newRegistrar(e, testMerchant(testBlowfish, nil), 0)
		return SourceFunc(func(ctx context.Context) (*Token, error) {
			a, err := r.Register(ctx)
			if err != nil {
				return nil, err
			}
			return &Token{Value: a.AuthToken, Label: a.AuthLabel}, nil
		})
	}
}

// newJuspayTest adapts a Juspay customer source to a Source, for the tables
// of Sources' errors.
func newJuspayTest() func(e *endpoint) Source {
	return func(e *endpoint) Source {
		src := newJuspayTestSource(e)
		return SourceFunc(func(ctx context.Context) (*Token, error) { return src.Token(ctx, "cust-0001") })
	}
}
