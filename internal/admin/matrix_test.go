package admin_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
)

var update = flag.Bool("update", false, "rewrite testdata/permission_matrix.golden from the routes as they decide")

// reached is the status the stubbed handlers answer: the request passed
// its permission decision.
const reached = 299

// matrixRow is one principal of the matrix: a role's user (a team role's
// as a member of team alpha), the bootstrap credential, and an admin's
// credential capped at auditor.
type matrixRow struct {
	name  string
	p     rbac.Principal
	token string
	// own resources: a key of alpha it owns, a second credential of its
	// own, an approval it asked for.
	ownKey, ownToken, ownApproval string
}

// situation is one target a route is tried on, and its resource.
type situation struct {
	name, path, body string
	res              rbac.Resource
	self             bool // the principal's own: it knows it exists
}

// TestPermissionMatrix runs every principal against every admin route,
// generated from the route table, and holds each answer to what the role
// table says: the handler is reached when allowed; otherwise 403 when the
// principal may know the target exists, else 404 as for a target that does
// not. A route with no sample situation fails the test, so a new route
// cannot go untested; the whole matrix is also kept in a golden file, so
// every change to who may do what shows in review (go test -update).
func TestPermissionMatrix(t *testing.T) {
	h := newHarness(t, func(o *admin.Options) { o.Metrics = http.NotFoundHandler() })
	ctx := context.Background()
	roles, err := rbac.NewTable(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.addTeam("alpha", "")
	h.addTeam("beta", "")
	h.addKey("alpha-team", "alpha", "")
	h.addKey("beta-key", "beta", "")
	h.addKey("loose", "", "")
	stranger := h.addPerson("stranger", store.UserPerson, rbac.Viewer, nil, "")
	h.addApproval("apr_other", stranger.id)
	h.addInvitation("inv_alpha", "alpha")
	h.addInvitation("inv_beta", "beta")
	h.secondToken(stranger.id)

	var rows []matrixRow
	addRow := func(name string, pr person, role string, teams []rbac.Membership, capRole string) {
		p := rbac.Principal{ID: pr.id, UserID: pr.id, Name: pr.name, Kind: rbac.KindUser, Role: role, Teams: teams, Cap: capRole}
		row := matrixRow{name: name, p: p, token: pr.token, ownKey: "own-" + name, ownApproval: "apr_own_" + strings.ReplaceAll(name, "-", "_")}
		h.addKey(row.ownKey, "alpha", pr.id)
		row.ownToken = h.secondToken(pr.id)
		h.addApproval(row.ownApproval, pr.id)
		rows = append(rows, row)
	}
	for _, r := range roles.Roles() {
		if r.Team {
			addRow(r.Name, h.addPerson(r.Name, store.UserPerson, r.Name, map[string]string{"alpha": r.Name}, ""), r.Name, []rbac.Membership{{Team: "alpha", Role: r.Name}}, "")
		} else {
			addRow(r.Name, h.addPerson(r.Name, store.UserPerson, r.Name, nil, ""), r.Name, nil, "")
		}
	}
	addRow("admin-capped-auditor", h.addPerson("capped", store.UserPerson, rbac.Admin, nil, rbac.Auditor), rbac.Admin, nil, rbac.Auditor)
	boot, err := h.st.GetAdminTokenByHash(ctx, func() []byte { s := h.hasher.Hash(h.token); return s[:] }())
	if err != nil {
		t.Fatal(err)
	}
	bootRow := matrixRow{name: "bootstrap", token: h.token, p: rbac.Principal{ID: boot.ID, Name: boot.Name, Kind: rbac.KindToken, Role: rbac.Owner, Credential: boot.ID},
		ownKey: "alpha-team", ownToken: h.secondToken(""), ownApproval: "apr_own_bootstrap"}
	h.addApproval(bootRow.ownApproval, boot.ID)
	rows = append(rows, bootRow)

	api, err := admin.NewStubbed(h.opts, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(reached) })
	if err != nil {
		t.Fatal(err)
	}
	h.api = api
	var golden strings.Builder
	for _, rt := range admin.Routes(api) {
		sits := situations(rt, rows)
		if len(sits) == 0 {
			t.Errorf("route %s has no sample situation in the permission matrix test; add one to situations()", rt.ID)
			continue
		}
		for si := range sits[0] {
			fmt.Fprintf(&golden, "%s [%s]:", rt.ID, sits[0][si].name)
			for ri, row := range rows {
				sit := sits[ri][si]
				want := expected(roles, rt, row, sit)
				w := h.call(rt.Method, sit.path, sit.body, "Bearer "+row.token)
				got := fmt.Sprint(w.Code)
				if w.Code == reached {
					got = "allow"
				}
				if got != want {
					t.Errorf("%s %s as %s: %s, want %s (%s)", rt.ID, sit.name, row.name, got, want, strings.TrimSpace(w.Body.String()))
				}
				fmt.Fprintf(&golden, " %s=%s", row.name, got)
			}
			golden.WriteString("\n")
		}
	}
	checkGolden(t, filepath.Join("testdata", "permission_matrix.golden"), golden.String())
}

// expected is what the role table says a principal gets from a route.
func expected(roles *rbac.Table, rt admin.RouteInfo, row matrixRow, sit situation) string {
	perm, allow := rbac.Permission(rt.Permission), false
	switch rt.Scope {
	case "anyone", "public":
		allow = true
	case "global":
		allow = roles.AllowedGlobally(row.p, perm)
	case "list":
		allow = roles.AllowedSomewhere(row.p, perm)
	case "target":
		allow = roles.Allowed(row.p, perm, sit.res)
		if !allow && !sit.self && !roles.Allowed(row.p, rbac.Permission(rt.Visible), sit.res) {
			return "404"
		}
	}
	if allow {
		return "allow"
	}
	return "403"
}

// situations returns, per row, the targets a route is tried on (the same
// names in the same order for every row), or nil for a route it does not
// know.
func situations(rt admin.RouteInfo, rows []matrixRow) [][]situation {
	const p = "/api/v1"
	one := func(path, body string) [][]situation {
		out := make([][]situation, len(rows))
		for i := range rows {
			out[i] = []situation{{name: "-", path: path, body: body}}
		}
		return out
	}
	per := func(f func(row matrixRow) []situation) [][]situation {
		out := make([][]situation, len(rows))
		for i, row := range rows {
			out[i] = f(row)
		}
		return out
	}
	fill := func(pattern, value string) string {
		return strings.NewReplacer("{ref}", value, "{name}", value, "{id}", value, "{user}", "stranger").Replace(pattern)
	}
	switch {
	case rt.Scope != "target" && strings.Contains(rt.Path, "{path...}"):
		path := p + "/secrets/app/db"
		if rt.Action != "" {
			path += ":" + rt.Action
		}
		return one(path, `{"value":"v","version":1}`)
	case rt.Scope != "target":
		path := strings.NewReplacer("{name}", "thing", "{id}", "apr_other", "{ref}", "thing", "{kind}", "aliases", "{name...}", "thing").Replace(rt.Path)
		return one(path, "{}")
	case rt.ID == "POST "+p+"/keys":
		return per(func(row matrixRow) []situation {
			def := ""
			if len(row.p.Teams) == 1 {
				def = row.p.Teams[0].Team
			}
			return []situation{
				{name: "in team alpha", path: rt.Path, body: `{"team":"alpha"}`, res: rbac.Resource{Team: "alpha", Owner: row.p.UserID}},
				{name: "in team beta", path: rt.Path, body: `{"team":"beta"}`, res: rbac.Resource{Team: "beta", Owner: row.p.UserID}},
				{name: "in the caller's team or none", path: rt.Path, body: `{}`, res: rbac.Resource{Team: def, Owner: row.p.UserID}},
			}
		})
	case strings.HasPrefix(rt.Path, p+"/keys/{ref}"):
		return per(func(row matrixRow) []situation {
			owner := row.p.UserID
			return []situation{
				{name: "its own key in alpha", path: fill(rt.Path, row.ownKey), body: "{}", res: rbac.Resource{Team: "alpha", Owner: owner}},
				{name: "a key of team alpha", path: fill(rt.Path, "alpha-team"), body: "{}", res: rbac.Resource{Team: "alpha"}},
				{name: "a key of team beta", path: fill(rt.Path, "beta-key"), body: "{}", res: rbac.Resource{Team: "beta"}},
				{name: "a key of no team", path: fill(rt.Path, "loose"), body: "{}", res: rbac.Resource{}},
			}
		})
	case strings.HasPrefix(rt.Path, p+"/teams/{name}"):
		return per(func(row matrixRow) []situation {
			return []situation{
				{name: "team alpha", path: fill(rt.Path, "alpha"), body: "{}", res: rbac.Resource{Team: "alpha"}},
				{name: "team beta", path: fill(rt.Path, "beta"), body: "{}", res: rbac.Resource{Team: "beta"}},
			}
		})
	case rt.ID == "POST "+p+"/me/tokens":
		return per(func(row matrixRow) []situation {
			return []situation{{name: "itself", path: rt.Path, body: "{}", res: rbac.Resource{Owner: row.p.UserID}, self: true}}
		})
	case strings.HasPrefix(rt.Path, p+"/admin-tokens/{id}"):
		return per(func(row matrixRow) []situation {
			return []situation{
				{name: "its own credential", path: fill(rt.Path, row.ownToken), res: rbac.Resource{Owner: row.p.UserID}, self: row.p.UserID != ""},
				{name: "another user's credential", path: fill(rt.Path, "adm_stranger_second"), res: rbac.Resource{Owner: "usr_stranger"}},
			}
		})
	case strings.HasPrefix(rt.Path, p+"/invitations/{id}"):
		return per(func(row matrixRow) []situation {
			return []situation{
				{name: "an invitation to team alpha", path: fill(rt.Path, "inv_alpha"), res: rbac.Resource{Team: "alpha"}},
				{name: "an invitation to team beta", path: fill(rt.Path, "inv_beta"), res: rbac.Resource{Team: "beta"}},
			}
		})
	case strings.HasPrefix(rt.Path, p+"/approvals/{id}"):
		return per(func(row matrixRow) []situation {
			return []situation{
				{name: "its own request", path: fill(rt.Path, row.ownApproval), res: rbac.Resource{Owner: row.p.ID}, self: true},
				{name: "another's request", path: fill(rt.Path, "apr_other"), res: rbac.Resource{Owner: "usr_stranger"}},
			}
		})
	}
	return nil
}

// secondToken stores another credential of userID ("" for one of no
// user) and returns its id.
func (h *harness) secondToken(userID string) string {
	h.t.Helper()
	id := "adm_" + strings.TrimPrefix(userID, "usr_") + "_second"
	if userID == "" {
		id = "adm_unowned_second"
	}
	sum := h.hasher.Hash(id)
	role := ""
	if userID == "" {
		role = rbac.Owner
	}
	if err := h.st.CreateAdminToken(context.Background(), store.AdminToken{ID: id, Name: "second", Hash: sum[:], Role: role, UserID: userID, CreatedAt: h.now}); err != nil {
		h.t.Fatal(err)
	}
	return id
}

// addApproval stores a pending approval asked for by requester.
func (h *harness) addApproval(id, requester string) {
	h.t.Helper()
	sum := h.hasher.Hash(id)
	if err := h.st.CreateApproval(context.Background(), store.Approval{ID: id, Permission: string(rbac.SecretsReadValue), Method: "GET", Path: "/x",
		RequestHash: sum[:], Requester: requester, RequesterName: requester, Status: store.ApprovalPending, CreatedAt: h.now, ExpiresAt: h.now.Add(time.Hour)}); err != nil {
		h.t.Fatal(err)
	}
}

// addInvitation stores a pending invitation to team, to a viewer.
func (h *harness) addInvitation(id, team string) {
	h.t.Helper()
	sum := h.hasher.Hash(id)
	if err := h.st.CreateInvitation(context.Background(), store.Invitation{ID: id, Hash: sum[:], Email: id + "@example.com", Team: team, Role: rbac.Viewer,
		CreatedBy: "adm_x", CreatedAt: h.now, ExpiresAt: h.now.Add(time.Hour)}); err != nil {
		h.t.Fatal(err)
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestPermissionMatrix -update to write it)", err)
	}
	if string(want) != got {
		wl, gl := strings.Split(string(want), "\n"), strings.Split(got, "\n")
		for i := range max(len(wl), len(gl)) {
			var a, b string
			if i < len(wl) {
				a = wl[i]
			}
			if i < len(gl) {
				b = gl[i]
			}
			if a != b {
				t.Errorf("permission matrix changed at line %d:\n  was: %s\n  now: %s", i+1, a, b)
			}
		}
		t.Fatal("the permission matrix differs from " + path + "; if the change is meant, review it and run go test -run TestPermissionMatrix -update")
	}
}

// TestRoutesAreAllDecided: every route names a known permission (but the
// ones any principal may call: whoami, status, the API's description,
// reporting a leaked credential, which acts only on the key whose value
// the caller holds, and the caller's own sign-in, second factors and
// acceptance of an invitation addressed to it, and its own authorizations
// at MCP servers that act for a person), and every permission but
// the alert ones, whose routes are to come, decides some route.
func TestRoutesAreAllDecided(t *testing.T) {
	h := newHarness(t, func(o *admin.Options) { o.Metrics = http.NotFoundHandler() })
	used := map[rbac.Permission]bool{}
	for _, rt := range admin.Routes(h.api) {
		if rt.Scope == "anyone" {
			if !slices.Contains([]string{"GET /api/v1/whoami", "GET /api/v1/status", "GET /api/v1/openapi.json", "POST /api/v1/leaks",
				"POST /api/v1/auth/logout", "GET /api/v1/auth/session", "PUT /api/v1/me/password",
				"POST /api/v1/me/totp", "POST /api/v1/me/totp/confirm", "GET /api/v1/me/passkeys", "POST /api/v1/me/passkeys/begin",
				"POST /api/v1/me/passkeys/finish", "DELETE /api/v1/me/passkeys/{id}", "POST /api/v1/me/invitations/accept",
				"GET /api/v1/me/mcp/{name}/oauth", "GET /api/v1/me/mcp/{name}/oauth/start", "DELETE /api/v1/me/mcp/{name}/oauth"}, rt.ID) {
				t.Errorf("route %s is open to any principal; only whoami, status, openapi.json, leaks and the caller's own sign-in may be", rt.ID)
			}
			continue
		}
		if rt.Scope == "public" {
			if !strings.HasPrefix(rt.ID, "GET /api/v1/auth/") && !strings.HasPrefix(rt.ID, "POST /api/v1/auth/") {
				t.Errorf("route %s needs no credential; only the sign-in routes under /api/v1/auth/ may", rt.ID)
			}
			continue
		}
		if !rbac.Known(rbac.Permission(rt.Permission)) {
			t.Errorf("route %s has permission %q, which rbac does not know", rt.ID, rt.Permission)
		}
		used[rbac.Permission(rt.Permission)] = true
	}
	for _, p := range rbac.All() {
		if !used[p] && p != rbac.AlertsRead && p != rbac.AlertsResolve {
			t.Errorf("permission %s decides no route", p)
		}
	}
}
