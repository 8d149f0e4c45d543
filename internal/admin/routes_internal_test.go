package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/rbac"
)

// TestUndecidedRouteIsRefused: a route added without a permission
// decision (or with a scope that names no way to find its resource) stops
// the admin API from being built, so it can never serve undecided.
func TestUndecidedRouteIsRefused(t *testing.T) {
	h := func(http.ResponseWriter, *http.Request) {}
	for name, rt := range map[string]endpoint{
		"no permission":     {method: "GET", path: "/api/v1/new", scope: scopeGlobal, handler: h},
		"unknown one":       {method: "GET", path: "/api/v1/new", perm: "keys.obliterate", scope: scopeGlobal, handler: h},
		"no scope":          {method: "GET", path: "/api/v1/new", perm: rbac.KeysRead, handler: h},
		"target, no finder": {method: "GET", path: "/api/v1/new/{id}", perm: rbac.KeysRead, scope: scopeTarget, visible: rbac.KeysRead, handler: h},
	} {
		a := &API{}
		err := a.register(http.NewServeMux(), []endpoint{rt})
		if err == nil || !strings.Contains(err.Error(), "/api/v1/new") {
			t.Errorf("%s: register answered %v, want an error naming the route", name, err)
		}
	}
}
