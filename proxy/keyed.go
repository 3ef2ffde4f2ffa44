package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/authsidecar/authsidecar/tokens"
)

// KeyedTokenSource is what the proxy needs of a cache of tokens per key
// (Juspay's clientAuthToken per customer); *tokens.KeyedCache is one. Its
// methods are TokenSource's, for one key.
type KeyedTokenSource interface {
	Token(ctx context.Context, key string) (*tokens.Token, error)
	Invalidate(key string, tok *tokens.Token) bool
	Accepted(key string, tok *tokens.Token)
	Replayed(key string, tok *tokens.Token, accepted bool)
}

// keyBound is a KeyedTokenSource bound to one key: the TokenSource of one
// request.
type keyBound struct {
	src KeyedTokenSource
	key string
}

func (k *keyBound) Token(ctx context.Context) (*tokens.Token, error) { return k.src.Token(ctx, k.key) }
func (k *keyBound) Invalidate(tok *tokens.Token) bool                { return k.src.Invalidate(k.key, tok) }
func (k *keyBound) Accepted(tok *tokens.Token)                       { k.src.Accepted(k.key, tok) }
func (k *keyBound) Replayed(tok *tokens.Token, accepted bool)        { k.src.Replayed(k.key, tok, accepted) }

// customerKey finds a request's customer in its JSON body: at path if set,
// else payload.customerId, else payload.customer_id. The id is a non-empty
// string, or a number as written.
type customerKey struct {
	path []string // nil: the two payload fields
}

// maxCustomerID bounds a customer id, so that the keys a cache of tokens
// per customer holds stay small (Juspay's customer ids are at most 128
// characters).
const maxCustomerID = 256

// checkCustomerID refuses an id a provider could not take as one: too long,
// holding a control character, or a path step ("." or "..").
func checkCustomerID(id string) error {
	switch {
	case len(id) > maxCustomerID:
		return &RequestError{Reason: "no_customer_id", Message: fmt.Sprintf("the customer id is over %d bytes", maxCustomerID)}
	case id == "." || id == "..":
		return &RequestError{Reason: "no_customer_id", Message: `the customer id may not be "." or ".."`}
	case strings.ContainsFunc(id, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return &RequestError{Reason: "no_customer_id", Message: "the customer id holds a control character"}
	}
	return nil
}

// of returns the customer of body, and body decoded, so that the injector
// need not decode it again.
func (k customerKey) of(body []byte) (string, map[string]any, error) {
	if body == nil {
		return "", nil, &RequestError{Reason: "not_json_object", Message: "the request has no body: a JSON object naming the customer is needed"}
	}
	doc, err := decodeObject(body)
	if err != nil {
		return "", nil, err
	}
	id, err := k.find(doc)
	if err == nil {
		err = checkCustomerID(id)
	}
	return id, doc, err
}

func (k customerKey) find(doc map[string]any) (string, error) {
	if k.path == nil {
		payload, _ := doc["payload"].(map[string]any)
		if id, ok := customerID(payload); ok {
			return id, nil
		}
		return "", &RequestError{Reason: "no_customer_id", Message: `the payload has no "customerId" or "customer_id": the token is the customer's`}
	}
	var v any = doc
	for _, name := range k.path {
		m, _ := v.(map[string]any)
		v = m[name]
	}
	switch v := v.(type) {
	case string:
		if v != "" {
			return v, nil
		}
	case json.Number:
		return v.String(), nil
	}
	return "", &RequestError{Reason: "no_customer_id", Message: "the body has no customer id at " + strings.Join(k.path, ".") + ": the token is the customer's"}
}
