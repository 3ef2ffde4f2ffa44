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

// TenantInjectors is implemented by Tenants whose tenants authenticate with
// credentials of their own beyond a token (HTTP Basic): Injector returns
// the injector of the tenant key, used in place of Config.Injector. It must
// use bodies as Config.Injector does.
type TenantInjectors interface {
	Injector(key string) (Injector, error)
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

// tenant takes the tenant header off an outbound request and returns the
// token source and the injector of the tenant it names; nil, nil for a
// request without one (TenantDefault), or for what the tenant does not have
// of its own. checkTenant has accepted the name.
func (t *authTransport) tenant(req *http.Request) (TokenSource, Injector, error) {
	values := req.Header[t.tenantHeader]
	delete(req.Header, t.tenantHeader)
	if len(values) == 0 {
		return nil, nil, nil
	}
	key, err := t.tenantKeys.Key(values[0])
	if err != nil {
		return nil, nil, err
	}
	var ts TokenSource
	if t.tenants != nil {
		ts = &keyBound{src: t.tenants, key: key}
	}
	var inj Injector
	if ti, ok := t.tenantKeys.(TenantInjectors); ok {
		if inj, err = ti.Injector(key); err != nil {
			return nil, nil, err
		}
	}
	return ts, inj, nil
}
