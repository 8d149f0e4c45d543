package adminclient

import (
	"context"
	"net/http"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
)

// NewSignIn returns a client that carries no credential, for the sign-in
// routes (they take the credential to sign in with in the request). The
// same rules as New hold for the URL: no plain http:// to another machine
// without AllowPlainHTTP, since a password is sent.
func NewSignIn(baseURL string, opts ...Option) (*Client, error) {
	c, err := New(baseURL, secret.New("sign-in"), opts...)
	if err != nil {
		return nil, err
	}
	c.token = secret.String{}
	return c, nil
}

// Login signs a local user in and returns the new session (its token in
// the answer unless a cookie was asked for). An *APIError with code
// otp_required asks for the one-time password.
func (c *Client) Login(ctx context.Context, req adminapi.LoginRequest) (adminapi.LoginResponse, error) {
	var out adminapi.LoginResponse
	err := c.do(ctx, http.MethodPost, "/auth/login", req, &out)
	return out, err
}

// SignInMethods says how people can sign in at this admin URL.
func (c *Client) SignInMethods(ctx context.Context) (adminapi.SignInMethods, error) {
	var out adminapi.SignInMethods
	err := c.do(ctx, http.MethodGet, "/auth/methods", nil, &out)
	return out, err
}

// ExchangeSSO trades the one-time code the single-sign-on callback handed
// the CLI's loopback listener, with the verifier only the CLI knows, for
// the session.
func (c *Client) ExchangeSSO(ctx context.Context, req adminapi.SSOExchangeRequest) (adminapi.LoginResponse, error) {
	var out adminapi.LoginResponse
	err := c.do(ctx, http.MethodPost, "/auth/oidc/exchange", req, &out)
	return out, err
}

// StartDeviceSSO begins a single sign-on for a machine without a browser:
// the person enters the answer's user code at its verification URI.
func (c *Client) StartDeviceSSO(ctx context.Context) (adminapi.DeviceSignIn, error) {
	var out adminapi.DeviceSignIn
	err := c.do(ctx, http.MethodPost, "/auth/oidc/device", nil, &out)
	return out, err
}

// WaitDeviceSSO asks how a device sign-in went; the server waits up to
// about 20 seconds for the person. pending says to ask again.
func (c *Client) WaitDeviceSSO(ctx context.Context, handle string) (out adminapi.LoginResponse, pending bool, err error) {
	var both struct {
		adminapi.LoginResponse
		adminapi.DevicePending
	}
	if err := c.do(ctx, http.MethodPost, "/auth/oidc/device/token", adminapi.DeviceTokenRequest{Handle: handle}, &both); err != nil {
		return adminapi.LoginResponse{}, false, err
	}
	if both.Status == "authorization_pending" {
		return adminapi.LoginResponse{}, true, nil
	}
	return both.LoginResponse, false, nil
}

// Session describes the session the client signs in with.
func (c *Client) Session(ctx context.Context) (adminapi.SessionInfo, error) {
	var out adminapi.SessionInfo
	err := c.do(ctx, http.MethodGet, "/auth/session", nil, &out)
	return out, err
}

// Logout ends the session the client signs in with.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/auth/logout", nil, nil)
}

// SetUserPassword sets another user's password (their sessions end).
func (c *Client) SetUserPassword(ctx context.Context, name string, pw secret.String) error {
	p, err := segment("/users/", "user name", name)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPut, p+"/password", adminapi.PasswordRequest{Password: pw.Reveal()}, nil)
}

// SetOwnPassword changes the caller's own password.
func (c *Client) SetOwnPassword(ctx context.Context, current, pw secret.String) error {
	return c.do(ctx, http.MethodPut, "/me/password", adminapi.PasswordRequest{Current: current.Reveal(), Password: pw.Reveal()}, nil)
}

// EnrolTOTP starts the caller's TOTP enrolment (code: a current one, when
// replacing a confirmed enrolment) and returns the secret, shown once.
func (c *Client) EnrolTOTP(ctx context.Context, code string) (adminapi.UserTOTPEnrollment, error) {
	var out adminapi.UserTOTPEnrollment
	err := c.do(ctx, http.MethodPost, "/me/totp", adminapi.TOTPRequest{OTP: code}, &out)
	return out, err
}

// ConfirmTOTP confirms the caller's TOTP enrolment with a first code.
func (c *Client) ConfirmTOTP(ctx context.Context, code string) error {
	return c.do(ctx, http.MethodPost, "/me/totp/confirm", adminapi.TOTPRequest{OTP: code}, nil)
}
