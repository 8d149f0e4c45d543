package console

import (
	"net/http"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
)

// A user whose role needs a second factor and who has none yet (a new
// member who just accepted an invitation, or a user an admin added with a
// password) gets a session that may only enrol one: every page sends them
// here until they have. They add the secret to an authenticator app and
// confirm it with a first code.

// enrolData is what the enrolment page shows.
type enrolData struct {
	Required bool // the session may do nothing else yet
	// TOTP is a new secret to add to an authenticator app, shown this once.
	TOTP *adminapi.UserTOTPEnrollment
}

func (c *Console) enrolPage(r *http.Request, v *view) error {
	var s adminapi.SessionInfo
	if err := c.api.get(r, "/auth/session", &s); err != nil && statusOf(err) != http.StatusNotFound {
		return err
	}
	v.Data = enrolData{Required: s.MFAEnrolmentRequired}
	return nil
}

// enrolTOTP makes a new TOTP secret and shows it once, with the form that
// confirms it.
func (c *Console) enrolTOTP(w http.ResponseWriter, r *http.Request) {
	v, ok := c.begin(w, r, "Second factor")
	if !ok {
		return
	}
	var e adminapi.UserTOTPEnrollment
	if _, err := c.api.do(r, http.MethodPost, "/me/totp", adminapi.TOTPRequest{}, &e); err != nil {
		c.fail(w, r, v, err)
		return
	}
	v.Data = enrolData{TOTP: &e}
	c.render(w, r, http.StatusCreated, "enrol", v)
}

// confirmTOTP confirms the enrolment with a first code; the session is
// then complete.
func (c *Console) confirmTOTP(r *http.Request, v *view) (string, error) {
	code := strings.TrimSpace(r.PostForm.Get("otp"))
	if _, err := c.api.do(r, http.MethodPost, "/me/totp/confirm", adminapi.TOTPRequest{OTP: code}, nil); err != nil {
		return "", err
	}
	return "/?done=enrolled", nil
}
