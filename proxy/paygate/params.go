package paygate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Param is one Key=value pair of a Paygate call or answer.
type Param struct {
	Key, Value string
}

// Params are a call's or an answer's parameters, in order. Paygate does not
// escape inside Data, so neither names nor values may hold '&' or '='.
type Params []Param

// Get returns the value of the first parameter whose name equals name,
// ignoring case: Paygate may answer mid or MID, Status or status.
func (p Params) Get(name string) (string, bool) {
	for _, kv := range p {
		if strings.EqualFold(kv.Key, name) {
			return kv.Value, true
		}
	}
	return "", false
}

// Encode writes params as Key=value&Key=value… with no escaping. It refuses
// an empty name, and a name or value holding '&', '=' or an ASCII control
// character, since Paygate could not tell where such a value ends. Errors
// name the parameter, never its value.
func Encode(params Params) (string, error) {
	b, err := appendParams(nil, params)
	return string(b), err
}

// appendParams appends params to dst as Encode writes them, with a leading
// '&' when dst is not empty.
func appendParams(dst []byte, params Params) ([]byte, error) {
	for _, kv := range params {
		if kv.Key == "" {
			return nil, errors.New("paygate: parameter with an empty name")
		}
		if !plainText(kv.Key) {
			return nil, errors.New("paygate: parameter name holds '&', '=' or a control character")
		}
		if !plainText(kv.Value) {
			return nil, fmt.Errorf("paygate: parameter %s: value holds '&', '=' or a control character", kv.Key)
		}
	}
	dst = slices.Grow(dst, paramsLen(params))
	for _, kv := range params {
		if len(dst) > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, kv.Key...)
		dst = append(dst, '=')
		dst = append(dst, kv.Value...)
	}
	return dst, nil
}

func plainText(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '&', c == '=', c < 0x20, c == 0x7f:
			return false
		}
	}
	return true
}

// Parse splits a decrypted Key=value&… text. A value runs from the first
// '=' of its pair to the next '&'; empty pairs (a trailing '&') are
// skipped; a pair without '=', with an empty name, or holding an ASCII
// control character (which Encode refuses too) is an error wrapping
// ErrMalformed. Data decrypted with the wrong password, or cut to a wrong
// Len, reads as such bytes, so that it is refused rather than taken for
// parameters.
func Parse(plain string) (Params, error) {
	if plain == "" {
		return nil, nil
	}
	params := make(Params, 0, strings.Count(plain, "&")+1)
	for pair := range strings.SplitSeq(plain, "&") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("%w: parameter without '='", ErrMalformed)
		}
		if k == "" {
			return nil, fmt.Errorf("%w: parameter with an empty name", ErrMalformed)
		}
		if hasControl(pair) {
			return nil, fmt.Errorf("%w: parameter holds a control character", ErrMalformed)
		}
		params = append(params, Param{Key: k, Value: v})
	}
	return params, nil
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// paramsLen is the length of params as Encode writes them.
func paramsLen(params Params) int {
	n := 0
	for _, kv := range params {
		n += len(kv.Key) + len(kv.Value) + 2
	}
	return n
}
