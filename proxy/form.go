package proxy

import (
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strings"

	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// formType is the media type of Paygate's calls and answers.
const formType = "application/x-www-form-urlencoded"

// maxFormPairs bounds the pairs parseForm reads. Paygate's calls and
// answers hold a few dozen; a pair costs 32 bytes of Params for as little
// as one byte of text, so a megabyte of "&" would otherwise take 32 MiB.
// (url.ParseQuery stops at 10,000.)
const maxFormPairs = 1000

// parseForm reads a form-urlencoded text into parameters, in order and with
// their names as sent. Empty pairs are skipped; a pair without '=' is a
// name with an empty value, as url.ParseQuery reads it. A text of more
// than maxFormPairs pairs, empty ones included, is an error.
func parseForm(s string) (paygate.Params, error) {
	if s == "" {
		return nil, nil
	}
	n := strings.Count(s, "&") + 1
	if n > maxFormPairs {
		return nil, fmt.Errorf("more than %d parameters", maxFormPairs)
	}
	params := make(paygate.Params, 0, n)
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
	n := len(dst)
	for _, kv := range params {
		n += len(kv.Key) + len(kv.Value) + 2
	}
	dst = slices.Grow(dst, n+n/8) // a little room for escapes
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
	if contentType == formType {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == formType
}
