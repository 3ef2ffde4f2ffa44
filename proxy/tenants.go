package proxy

import "net/http"

// Tenants picks the credentials of one merchant among many, by the value of
// a request header: with Config.Tenants, each request's token comes from
// Config.TenantTokens under its tenant's key.
type Tenants interface {
	// Key returns the key of the tenant named name in TenantTokens, or a
	// *TenantError saying why the request cannot be served: a bad name,
	// an unknown tenant, one whose credentials are incomplete. It must be
	// cheap and must not touch the file system with name.
	Key(name string) (string, error)
}

// TenantError is a tenant the sidecar cannot serve: answered with Status and
// {"error":Code,"message":Message}, and nothing sent upstream.
type TenantError struct {
	Status        int
	Code, Message string
}

func (e *TenantError) Error() string { return "proxy: " + e.Message }

// checkTenant refuses a request whose tenant cannot be served; ok is false
// when it was answered. The header stays on the request: the transport
// reads it, and removes it before anything is sent.
func (h *handler) checkTenant(w http.ResponseWriter, r *http.Request) bool {
	values := r.Header[h.tenantHeader]
	switch {
	case len(values) == 0 && h.tenantDefault:
		return true // the route's own credentials
	case len(values) == 0:
		h.reject(w, http.StatusBadRequest, "no_tenant", "the request lacks the "+h.tenantHeader+" header naming its tenant")
		return false
	case len(values) > 1:
		h.reject(w, http.StatusBadRequest, "bad_tenant", "the request names its tenant more than once ("+h.tenantHeader+")")
		return false
	}
	if _, err := h.tenants.Key(values[0]); err != nil {
		if te, ok := err.(*TenantError); ok {
			h.reject(w, te.Status, te.Code, te.Message)
		} else {
			h.reject(w, http.StatusInternalServerError, "tenant_error", "proxy: "+err.Error())
		}
		return false
	}
	return true
}

// tenantSource takes the tenant header off an outbound request and returns
// the token source of the tenant it names; nil for a request without one
// (TenantDefault). checkTenant has accepted the name.
func (t *authTransport) tenantSource(req *http.Request) (TokenSource, error) {
	values := req.Header[t.tenantHeader]
	delete(req.Header, t.tenantHeader)
	if len(values) == 0 {
		return nil, nil
	}
	key, err := t.tenantKeys.Key(values[0])
	if err != nil {
		return nil, err
	}
	return &keyBound{src: t.tenants, key: key}, nil
}
