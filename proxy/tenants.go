package proxy

import (
	"context"
	"net/http"
)

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

// tenantKey is the context key of a request's tenant key.
type tenantKey struct{}

// withTenant resolves r's tenant, removes its header (never forwarded) and
// returns r with the tenant's key in its context; ok is false when the
// request was answered.
func (h *handler) withTenant(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	values := r.Header[h.tenantHeader]
	delete(r.Header, h.tenantHeader)
	if len(values) == 0 {
		if h.tenantDefault {
			return r, true // the route's own credentials
		}
		h.reject(w, http.StatusBadRequest, "no_tenant", "the request lacks the "+h.tenantHeader+" header naming its tenant")
		return nil, false
	}
	if len(values) > 1 {
		h.reject(w, http.StatusBadRequest, "bad_tenant", "the request names its tenant more than once ("+h.tenantHeader+")")
		return nil, false
	}
	key, err := h.tenants.Key(values[0])
	if err != nil {
		if te, ok := err.(*TenantError); ok {
			h.reject(w, te.Status, te.Code, te.Message)
		} else {
			h.reject(w, http.StatusInternalServerError, "tenant_error", "proxy: "+err.Error())
		}
		return nil, false
	}
	return r.WithContext(context.WithValue(r.Context(), tenantKey{}, key)), true
}

// requestTenant is the tenant key withTenant put in ctx, if any.
func requestTenant(ctx context.Context) (string, bool) {
	k, ok := ctx.Value(tenantKey{}).(string)
	return k, ok
}
