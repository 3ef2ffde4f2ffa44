package proxy

import (
	"net/http"
	"strings"

	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// Tenants picks the credentials of one merchant among many, by the value of
// a request header (Config.TenantHeader).
type Tenants interface {
	// Tenant returns the credentials of the tenant named name, or a
	// *TenantError saying why the request cannot be served: a bad name, an
	// unknown tenant, one whose credentials are incomplete. It is called
	// more than once per request: once a tenant was served it must be
	// cheap, and it must never touch the file system with a name it does
	// not know.
	Tenant(name string) (*Tenant, error)
}

// Tenant is one tenant's credentials. A nil field is the route's own: the
// field of Config it stands for.
type Tenant struct {
	// Key is the tenant's key. With KeyedTokens (a token per customer),
	// each customer's token is KeyedTokens' under Key + "/" + its id; a
	// tenant's key holds no "/".
	Key string
	// Tokens is the tenant's TokenSource (see BindKey); nil with
	// KeyedTokens, or when the route's mode puts no token on requests.
	Tokens TokenSource
	// Injector puts the tenant's credentials on requests in place of
	// Config.Injector; a transport-wrapping injector (Paygate) included.
	Injector Injector
	// Signer serves SignPath for the tenant.
	Signer *Signer
	// PaygateMerchant serves PaygatePath for the tenant.
	PaygateMerchant func() *paygate.Merchant
	// SDKAuth and SDKAuthMerchantID serve SDKAuthPath for the tenant.
	SDKAuth           Registrar
	SDKAuthMerchantID string
	// SetHeaders are the fixed headers of the tenant's requests, by
	// canonical name, in place of Config.SetHeaders: none of the route's
	// is sent for a tenant (a merchant id among them).
	SetHeaders http.Header
}

// BindKey returns src's tokens of key as a TokenSource: a tenant's Tokens.
func BindKey(src KeyedTokenSource, key string) TokenSource {
	return &keyBound{src: src, key: key}
}

// TenantError is a tenant the sidecar cannot serve: answered with Status and
// {"error":Code,"message":Message}, and nothing sent upstream.
type TenantError struct {
	Status        int
	Code, Message string
}

func (e *TenantError) Error() string { return "proxy: " + e.Message }

// checkTenant returns the request's tenant, nil for a request without one
// that gets the route's credentials (TenantDefault); ok is false when the
// request was refused, and answered. The header stays on the request: the
// transport reads it, and removes it before anything is sent.
func (h *handler) checkTenant(w http.ResponseWriter, r *http.Request) (t *Tenant, ok bool) {
	values := r.Header[h.tenantHeader]
	switch {
	case len(values) == 0 && h.tenantDefault:
		return nil, true // the route's own credentials
	case len(values) == 0:
		h.reject(w, http.StatusBadRequest, "no_tenant", "the request lacks the "+h.tenantHeader+" header naming its tenant")
		return nil, false
	case len(values) > 1:
		h.reject(w, http.StatusBadRequest, "bad_tenant", "the request names its tenant more than once ("+h.tenantHeader+")")
		return nil, false
	case len(values) == 0:
		return nil, true
	case namedInConnection(r.Header, h.tenantHeader):
		// ReverseProxy drops the headers Connection names before the
		// transport reads the tenant: it would be the route's, or none.
		h.reject(w, http.StatusBadRequest, "bad_tenant", "the request names "+h.tenantHeader+" in Connection, as a hop-by-hop header: the tenant is the sidecar's to read")
		return nil, false
	}
	t, err := h.tenants.Tenant(values[0])
	if err != nil {
		if te, ok := err.(*TenantError); ok {
			h.reject(w, te.Status, te.Code, te.Message)
		} else {
			h.reject(w, http.StatusInternalServerError, "tenant_error", "proxy: "+err.Error())
		}
		return nil, false
	}
	return t, true
}

// namedInConnection reports whether the Connection header lists name.
func namedInConnection(h http.Header, name string) bool {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(f)) == name {
				return true
			}
		}
	}
	return false
}

// tenant takes the tenant header off an outbound request and returns the
// tenant it names, its fixed headers in place of the route's; nil for a
// request without one (TenantDefault). checkTenant has accepted the name.
func (t *authTransport) tenant(req *http.Request) (*Tenant, error) {
	values := req.Header[t.tenantHeader]
	delete(req.Header, t.tenantHeader)
	if len(values) == 0 {
		if !t.tenantDefault {
			// checkTenant refused such a request: never send it with no
			// one's credentials.
			return nil, &TenantError{Status: http.StatusBadRequest, Code: "no_tenant", Message: "the request lost its " + t.tenantHeader + " header on its way to the upstream"}
		}
		return nil, nil
	}
	tn, err := t.tenants.Tenant(values[0])
	if err != nil {
		return nil, err
	}
	for _, f := range t.setHeaders {
		delete(req.Header, f.name)
	}
	for name, v := range tn.SetHeaders {
		req.Header[name] = v
	}
	return tn, nil
}
