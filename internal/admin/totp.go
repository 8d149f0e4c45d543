package admin

import (
	"net/http"

	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/web"
)

// enrollTOTP gives a key a one-time-password secret for step-up, replacing
// any earlier one. The secret is shown once, for the key's owner to add to
// an authenticator app; keygate keeps it in the vault.
func (a *API) enrollTOTP(w http.ResponseWriter, r *http.Request) {
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	otpKey, err := totp.Generate(totp.GenerateOpts{Issuer: "keygate", AccountName: k.Name})
	if err != nil {
		a.internal(w, "make a one-time-password secret", err)
		return
	}
	if _, err := a.opts.Vault.Put(r.Context(), "totp/"+k.ID, secret.New(otpKey.Secret())); err != nil {
		a.internal(w, "store the one-time-password secret", err)
		return
	}
	a.opts.Log.Info("one-time password enrolled", "actor", principal(r).ID, "key_id", k.ID)
	web.WriteJSON(w, http.StatusCreated, adminapi.TOTPEnrollment{KeyID: k.ID, Secret: otpKey.Secret(), URL: otpKey.URL()})
}
