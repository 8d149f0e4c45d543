package admin

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/session"
	"github.com/keygate/keygate/internal/sso"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// Single sign-on for a machine without a browser (keygate login --sso
// --device), the device authorization grant (RFC 8628) with keygate as
// the client:
//
//	POST /auth/oidc/device
//	  -> keygate asks the provider for a device sign-in and answers the
//	     user code, where to enter it, and a handle only the CLI holds.
//	POST /auth/oidc/device/token {"handle"}
//	  -> keygate polls the provider (at the interval it asked for) for up
//	     to deviceWaitMax; 202 while the person has not answered, else
//	     the ID token is verified (signature, issuer, audience, expiry),
//	     mapped to a user like any single sign-on, and the session answered.
//
// The device code never leaves keygate. It is stored sealed with a key
// derived from the handle, which is not stored (only its SHA-256 names the
// flow), so the database alone cannot finish anyone's sign-in. Each poll
// takes the flow and puts it back while pending, so two pollers cannot
// both finish it.

const (
	flowOIDCDevice = "oidc-device"
	deviceWaitMax  = 20 * time.Second
)

type deviceFlow struct {
	Sealed   []byte    `json:"sealed"` // the device code, AES-256-GCM
	Expiry   time.Time `json:"expiry"`
	Interval int64     `json:"interval"` // seconds
}

// deviceAEAD is the cipher that seals a device flow's code: AES-256-GCM
// under a key derived from the CLI's handle with the server's pepper.
func (a *API) deviceAEAD(handle string) cipher.AEAD {
	key := a.opts.Hasher.Hash("sso-device:" + handle)
	block, _ := aes.NewCipher(key[:]) // a 32-byte key cannot fail
	aead, _ := cipher.NewGCM(block)
	return aead
}

// deviceSSO is the device grant, when the configured provider offers it.
type deviceSSO interface {
	DeviceSupported() bool
	DeviceStart(ctx context.Context) (sso.DeviceAuth, error)
	DeviceWait(ctx context.Context, d sso.DeviceAuth) (sso.Identity, error)
}

func (a *API) deviceReady(w http.ResponseWriter) (deviceSSO, bool) {
	if !a.ssoReady(w) {
		return nil, false
	}
	d, ok := a.opts.SignIn.SSO.(deviceSSO)
	if !ok || !d.DeviceSupported() {
		writeError(w, http.StatusNotImplemented, "not_implemented", "the single-sign-on provider offers no device sign-in (no device_authorization_endpoint); sign in with keygate login --sso on a machine with a browser")
		return nil, false
	}
	return d, true
}

// oidcDeviceStart begins a device sign-in: POST /auth/oidc/device.
func (a *API) oidcDeviceStart(w http.ResponseWriter, r *http.Request) {
	d, ok := a.deviceReady(w)
	if !ok || !a.signInAllowed(w, r, session.MethodOIDC, "") {
		return
	}
	da, err := d.DeviceStart(r.Context())
	if errors.Is(err, sso.ErrVerify) {
		writeError(w, http.StatusBadGateway, "provider_refused", err.Error())
		return
	}
	if err != nil {
		a.opts.Log.Error("single sign-on: the provider could not be reached", "err", err)
		writeError(w, http.StatusBadGateway, "provider_unavailable", "keygate could not reach the single-sign-on provider; try again")
		return
	}
	handle := randomToken()
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	f := deviceFlow{Sealed: a.deviceAEAD(handle).Seal(nonce, nonce, []byte(da.DeviceCode), []byte(flowOIDCDevice)),
		Expiry: da.Expiry, Interval: int64(da.Interval / time.Second)}
	data, _ := json.Marshal(f)
	if err := a.opts.SignIn.Store.PutSignInFlow(r.Context(), flowID(handle), flowOIDCDevice, data, da.Expiry); err != nil {
		a.internal(w, "start the sign-in", err)
		return
	}
	web.WriteJSON(w, http.StatusOK, adminapi.DeviceSignIn{Handle: handle, UserCode: da.UserCode, VerificationURI: da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete, ExpiresAt: da.Expiry.UTC(), IntervalSeconds: int(f.Interval)})
}

// oidcDeviceToken answers how a device sign-in went: POST
// /auth/oidc/device/token.
func (a *API) oidcDeviceToken(w http.ResponseWriter, r *http.Request) {
	d, ok := a.deviceReady(w)
	if !ok {
		return
	}
	var req adminapi.DeviceTokenRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil || req.Handle == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"handle\": \"...\"} from POST /auth/oidc/device")
		return
	}
	if !a.signInAllowed(w, r, session.MethodOIDC, "") {
		return
	}
	ctx := r.Context()
	data, err := a.opts.SignIn.Store.TakeSignInFlow(ctx, flowID(req.Handle), flowOIDCDevice, a.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		a.signInFailed(w, r, session.MethodOIDC, "", "", "device_unknown", http.StatusUnauthorized, "unauthorized",
			"this device sign-in is unknown, finished, expired, or being polled by another request; run keygate login --sso --device again")
		return
	}
	if err != nil {
		a.internal(w, "finish the sign-in", err)
		return
	}
	var f deviceFlow
	if err := json.Unmarshal(data, &f); err != nil || len(f.Sealed) < 12 {
		a.internal(w, "read the sign-in", errors.New("unreadable device flow"))
		return
	}
	code, err := a.deviceAEAD(req.Handle).Open(nil, f.Sealed[:12], f.Sealed[12:], []byte(flowOIDCDevice))
	if err != nil { // cannot happen: the handle named the flow
		a.internal(w, "read the sign-in", errors.New("device flow does not open with its handle"))
		return
	}
	wait := a.opts.SignIn.DeviceWait
	if wait <= 0 {
		wait = deviceWaitMax
	}
	interval := time.Duration(f.Interval) * time.Second
	waitCtx, cancel := context.WithTimeout(ctx, max(wait, interval+time.Second))
	defer cancel()
	id, err := d.DeviceWait(waitCtx, sso.DeviceAuth{DeviceCode: string(code), Expiry: f.Expiry, Interval: interval})
	switch {
	case errors.Is(err, sso.ErrDevicePending) && ctx.Err() == nil:
		if err := a.opts.SignIn.Store.PutSignInFlow(ctx, flowID(req.Handle), flowOIDCDevice, data, f.Expiry); err != nil {
			a.internal(w, "keep the sign-in", err)
			return
		}
		web.WriteJSON(w, http.StatusAccepted, adminapi.DevicePending{Status: "authorization_pending"})
		return
	case errors.Is(err, sso.ErrVerify):
		a.signInFailed(w, r, session.MethodOIDC, "", "", "id_token_refused", http.StatusUnauthorized, "unauthorized", err.Error())
		return
	case err != nil:
		a.opts.Log.Error("single sign-on: the provider could not be reached", "err", err)
		writeError(w, http.StatusBadGateway, "provider_unavailable", "keygate could not reach the single-sign-on provider; try again")
		return
	}
	u, mfa, reason, msg, err := a.ssoUser(r, id)
	if err != nil {
		a.internal(w, "find the user", err)
		return
	}
	if reason != "" {
		a.signInFailed(w, r, session.MethodOIDC, id.Username, u.ID, reason, http.StatusForbidden, "forbidden", msg)
		return
	}
	a.startSession(w, r, session.Grant{UserID: u.ID, Method: session.MethodOIDC, MFA: mfa,
		Audience: session.Audience(r, a.opts.SignIn.TLS), Client: a.clientOf(r)}, u.Name, false)
}
