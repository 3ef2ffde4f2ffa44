package proxy

import (
	"mime"
	"net/url"
	"strings"

	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// formType is the media type of Paygate's calls and answers.
const formType = "application/x-www-form-urlencoded"

// parseForm reads a form-urlencoded text into parameters, in order and with
// their names as sent. Empty pairs are skipped; a pair without '=' is a
// name with an empty value, as url.ParseQuery reads it.
func parseForm(s string) (paygate.Params, error) {
	if s == "" {
		return nil, nil
	}
	params := make(paygate.Params, 0, strings.Count(s, "&")+1)
	for pair := range strings.SplitSeq(s, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, err
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, err
		}
		params = append(params, paygate.Param{Key: key, Value: value})
	}
	return params, nil
}

// appendForm appends params to dst form-urlencoded, in order.
func appendForm(dst []byte, params paygate.Params) []byte {
	for i, kv := range params {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, url.QueryEscape(kv.Key)...)
		dst = append(dst, '=')
		dst = append(dst, url.QueryEscape(kv.Value)...)
	}
	return dst
}

// isForm reports whether a Content-Type is form-urlencoded; an empty one is
// not.
func isForm(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == formType
}
