package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/authsidecar/authsidecar/tokens"
)

// RequestError is an app request the sidecar cannot authenticate as it is.
// It is answered 400 (413 for a body too large to rewrite) and never sent
// upstream.
type RequestError struct {
	// Reason is a short fixed word, the metric label: not_json_object,
	// no_payload, no_customer_id, bad_field, too_large.
	Reason string
	// Message tells the app what is wrong.
	Message string
}

func (e *RequestError) Error() string { return "proxy: " + e.Message }

// expiryLayout is RFC 3339 in UTC with milliseconds, as Juspay's authExpiry.
const expiryLayout = "2006-01-02T15:04:05.000Z"

// JSONBody returns the injector that writes the token into the JSON body at
// the dotted path tokenField, and its expiry at expiryField (RFC 3339, UTC,
// milliseconds) unless expiryField is empty. All else the app sent is kept;
// no header is set.
func JSONBody(tokenField, expiryField string) Injector {
	j := &jsonBodyInjector{tokenPath: splitPath(tokenField)}
	if expiryField != "" {
		j.expiryPath = splitPath(expiryField)
	}
	return j
}

type jsonBodyInjector struct {
	tokenPath, expiryPath []string
}

func (j *jsonBodyInjector) Inject(_ http.Header, tok *tokens.Token, body []byte) ([]byte, error) {
	doc, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	return j.injectDoc(tok, doc)
}

// injectDoc writes tok into doc, the body already decoded (to find its
// customer), and encodes it. Writing again with another token replaces
// the same fields, so a replay may reuse doc.
func (j *jsonBodyInjector) injectDoc(tok *tokens.Token, doc map[string]any) ([]byte, error) {
	if tok != nil {
		if err := setPath(doc, j.tokenPath, tok.Value); err != nil {
			return nil, err
		}
		if j.expiryPath != nil {
			if err := setPath(doc, j.expiryPath, tok.Expiry.UTC().Format(expiryLayout)); err != nil {
				return nil, err
			}
		}
	}
	return encodeJSON(doc)
}

func (j *jsonBodyInjector) Body() BodyUse { return BodyPerToken }

func splitPath(dotted string) []string { return strings.Split(dotted, ".") }

// decodeObject reads a body that must be one JSON object, keeping numbers
// exactly as sent.
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil || doc == nil {
		return nil, &RequestError{Reason: "not_json_object", Message: "the request body must be a JSON object"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &RequestError{Reason: "not_json_object", Message: "the request body must be a single JSON object"}
	}
	if !keepsText(body) {
		return nil, &RequestError{Reason: "not_json_object", Message: `the request body must be valid UTF-8 without \u escapes of unpaired surrogates (\uD800-\uDFFF): they would reach the upstream changed to U+FFFD`}
	}
	return doc, nil
}

// keepsText reports whether decoding the JSON text b keeps every string as
// written: b is valid UTF-8, and each \u escape of a surrogate is a high one
// followed by a low one. encoding/json replaces anything else with U+FFFD,
// so that the body sent upstream, or signed, would not be the app's. b must
// already have decoded without error: in valid JSON a backslash occurs only
// in strings, and each one starts an escape.
func keepsText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for i := bytes.IndexByte(b, '\\'); i >= 0; {
		if i+1 == len(b) {
			return false
		}
		n := 2 // \", \\, \/, \b, \f, \n, \r, \t
		if b[i+1] == 'u' {
			r, ok := hex4(b, i+2)
			switch {
			case !ok:
				return false
			case utf16.IsSurrogate(r):
				lo, ok := hex4(b, i+8)
				if !ok || b[i+6] != '\\' || b[i+7] != 'u' || utf16.DecodeRune(r, lo) == utf8.RuneError {
					return false
				}
				n = 12
			default:
				n = 6
			}
		}
		j := bytes.IndexByte(b[i+n:], '\\')
		if j < 0 {
			break
		}
		i += n + j
	}
	return true
}

// hex4 reads the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// encodeJSON writes doc without HTML escaping and without a trailing newline.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("proxy: encode body: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// setPath sets doc[path...] = v, creating the intermediate objects.
func setPath(doc map[string]any, path []string, v any) error {
	for i, key := range path[:len(path)-1] {
		next, ok := doc[key]
		if !ok || next == nil {
			m := map[string]any{}
			doc[key], doc = m, m
			continue
		}
		if doc, ok = next.(map[string]any); !ok {
			return &RequestError{Reason: "bad_field", Message: fmt.Sprintf("%s in the request body is not an object", strings.Join(path[:i+1], "."))}
		}
	}
	doc[path[len(path)-1]] = v
	return nil
}
