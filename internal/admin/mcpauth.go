package admin

import (
	"errors"
	"net/http"

	"github.com/keygate/keygate/internal/mcpauth"
	"github.com/keygate/keygate/internal/session"
)

// SignedInPerson returns the person whose session a browser's request
// carries, for keygate's authorization server for MCP clients
// (internal/mcpauth), whose consent page is on the admin listener beside
// the console. The session is checked as for any admin request (its
// audience, idle and absolute ends, a disabled user, a cross-origin
// change); one of an admin token with no person behind it is not signed
// in, and one still owing its second factor is told to enrol it at the
// console first, as the console itself requires.
func (a *API) SignedInPerson(r *http.Request) (mcpauth.Person, error) {
	p, s, ok, err := a.sessionPrincipal(r)
	var ae *authError
	switch {
	case !ok, errors.As(err, &ae):
		return mcpauth.Person{}, mcpauth.ErrNotSignedIn
	case err != nil:
		return mcpauth.Person{}, err
	case s == nil || s.UserID == "" || p.UserID == "":
		return mcpauth.Person{}, mcpauth.ErrNotSignedIn
	case s.MFAPending:
		return mcpauth.Person{}, mcpauth.ErrSecondFactorPending
	}
	return mcpauth.Person{ID: s.UserID, Name: p.Name, AMR: personAMR(s.Method, s.MFA), Session: s.ID}, nil
}

// personAMR names how a person signed in, in RFC 8176's terms: pwd, fed
// (single sign-on), hwk (a passkey) or kgt (an admin token), and mfa with
// a second factor. It never says "otp", which is what a key's own step-up
// code earns its tokens: a person's sign-in does not stand in for that.
func personAMR(method, mfa string) []string {
	var amr []string
	switch method {
	case session.MethodPassword:
		amr = []string{"pwd"}
	case session.MethodOIDC:
		amr = []string{"fed"}
	case session.MethodWebAuthn:
		amr = []string{"hwk"}
	default:
		amr = []string{"kgt"}
	}
	if mfa != "" {
		amr = append(amr, "mfa")
	}
	return amr
}
