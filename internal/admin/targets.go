package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// reqState is what the middleware learns about a request, for the
// handler: who asked, and the resource its route resolved.
type reqState struct {
	principal rbac.Principal
	token     store.AdminToken // the admin credential used, if one was
	session   *store.Session   // the session used, if one was
	public    bool             // a sign-in route: no principal
	route     string
	perm      rbac.Permission
	resource  rbac.Resource

	key  *store.Key        // the key a /keys/{ref} route resolved
	team *store.Team       // the team a /teams/{name} route resolved
	cred *store.AdminToken // the credential /admin-tokens/{id} resolved
	// invitation is the invitation /invitations/{id} resolved.
	invitation *store.Invitation
	newTeam    string // the team a new key goes to ("" for none)
}

type stateKey struct{}

// state returns the request's state; authentication puts it there.
func state(r *http.Request) *reqState {
	if s, ok := r.Context().Value(stateKey{}).(*reqState); ok {
		return s
	}
	return &reqState{}
}

func withState(ctx context.Context, s *reqState) context.Context {
	return context.WithValue(ctx, stateKey{}, s)
}

// principal returns who made the request.
func principal(r *http.Request) rbac.Principal { return state(r).principal }

// httpError is an answer a target resolver (or a check) gives instead of
// going on: its message is for the client.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e httpError) Error() string { return e.msg }

func notFound(kind, name string) error {
	return httpError{http.StatusNotFound, "not_found", fmt.Sprintf("no %s named %q", kind, name)}
}

func badRequestf(format string, args ...any) error {
	return httpError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

// targetError answers a resolver's error.
func (a *API) targetError(w http.ResponseWriter, err error) {
	var he httpError
	if errors.As(err, &he) {
		writeError(w, he.status, he.code, he.msg)
		return
	}
	a.internal(w, "look up what the request acts on", err)
}

// keyTarget resolves /keys/{ref} to the key and its team and owner.
func (a *API) keyTarget(r *http.Request) (resolved, error) {
	ref := r.PathValue("ref")
	k, err := a.lookupKey(r.Context(), ref)
	if errors.Is(err, store.ErrNotFound) {
		return resolved{}, notFound("key", ref)
	}
	if err != nil {
		return resolved{}, err
	}
	state(r).key = &k
	return resolved{res: rbac.Resource{Team: k.Team, Owner: k.Owner}, kind: "key", name: ref}, nil
}

// newKeyTarget resolves POST /keys to the team the new key will belong
// to: the body's team, else the caller's only team, else none.
func (a *API) newKeyTarget(r *http.Request) (resolved, error) {
	body, err := peekBody(r)
	if err != nil {
		return resolved{}, badRequestf("%v", err)
	}
	var req struct {
		Team string `json:"team"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return resolved{}, badRequestf("request body is not valid JSON: %v", err)
		}
	}
	p := principal(r)
	team := strings.TrimSpace(req.Team)
	if team == "" && len(p.Teams) == 1 {
		team = p.Teams[0].Team
	}
	if team == "" && len(p.Teams) > 1 && !a.global(r, rbac.KeysCreate) {
		names := make([]string, len(p.Teams))
		for i, m := range p.Teams {
			names[i] = m.Team
		}
		return resolved{}, badRequestf("team: you are in teams %s; say which the key belongs to (keygate key create --team NAME)", strings.Join(names, ", "))
	}
	if team != "" {
		if _, err := a.opts.People.GetTeam(r.Context(), team); errors.Is(err, store.ErrNotFound) {
			return resolved{}, notFound("team", team)
		} else if err != nil {
			return resolved{}, err
		}
	}
	state(r).newTeam = team
	return resolved{res: rbac.Resource{Team: team, Owner: p.UserID}, kind: "team", name: team}, nil
}

// teamTarget resolves /teams/{name}.
func (a *API) teamTarget(r *http.Request) (resolved, error) {
	name := r.PathValue("name")
	t, err := a.opts.People.GetTeam(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return resolved{}, notFound("team", name)
	}
	if err != nil {
		return resolved{}, err
	}
	state(r).team = &t
	return resolved{res: rbac.Resource{Team: t.Name}, kind: "team", name: name}, nil
}

// tokenTarget resolves /admin-tokens/{id} to the credential and its owner.
func (a *API) tokenTarget(r *http.Request) (resolved, error) {
	id := r.PathValue("id")
	t, err := a.opts.Credentials.GetAdminToken(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return resolved{}, notFound("admin credential", id)
	}
	if err != nil {
		return resolved{}, err
	}
	state(r).cred = &t
	p := principal(r)
	self := t.UserID != "" && t.UserID == p.UserID || t.ID == p.Credential
	return resolved{res: rbac.Resource{Owner: t.UserID}, kind: "admin credential", name: id, self: self}, nil
}

// selfTarget is the caller itself: POST /me/tokens.
func (a *API) selfTarget(r *http.Request) (resolved, error) {
	p := principal(r)
	return resolved{res: rbac.Resource{Owner: p.UserID}, kind: "user", name: p.Name, self: true}, nil
}

// approvalTarget resolves /approvals/{id}; its owner is its requester.
func (a *API) approvalTarget(r *http.Request) (resolved, error) {
	id := r.PathValue("id")
	ap, err := a.opts.Approvals.GetApproval(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return resolved{}, notFound("approval", id)
	}
	if err != nil {
		return resolved{}, err
	}
	return resolved{res: rbac.Resource{Owner: ap.Requester}, kind: "approval", name: id, self: ap.Requester == principal(r).ID}, nil
}

// peekBody reads the request body, up to the admin limit, and puts it
// back for the handler.
func peekBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the request body: %w", err)
	}
	if len(b) > maxAdminBody {
		return nil, fmt.Errorf("the request body is larger than %d bytes", maxAdminBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, nil
}

// requestID returns the request's id, for logs.
func requestID(r *http.Request) string { return web.RequestID(r.Context()) }
