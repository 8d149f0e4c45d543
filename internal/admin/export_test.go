package admin

import "net/http"

// RouteInfo describes one route of the table, for the permission matrix.
type RouteInfo struct {
	ID, Method, Path, Action, Permission, Visible, Scope string
}

// NewStubbed builds the API with every route's handler replaced by stub,
// so a test sees the permission decisions alone.
func NewStubbed(opts Options, stub http.HandlerFunc) (*API, error) { return build(opts, stub) }

// Routes lists the route table.
func Routes(a *API) []RouteInfo {
	names := map[scope]string{scopeAnyone: "anyone", scopeGlobal: "global", scopeList: "list", scopeTarget: "target", scopePublic: "public"}
	out := make([]RouteInfo, len(a.table))
	for i, rt := range a.table {
		out[i] = RouteInfo{ID: rt.ID(), Method: rt.method, Path: rt.path, Action: rt.action, Permission: string(rt.perm), Visible: string(rt.visible), Scope: names[rt.scope]}
	}
	return out
}
