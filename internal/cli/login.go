package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/secret"
)

func (a *app) loginCmd() *cobra.Command {
	var user string
	var sso, device bool
	cmd := &cobra.Command{
		Use:   "login [--user NAME | --sso]",
		Short: "Sign in, or save the admin credential, for this admin URL",
		Long: `Reads the admin credential from standard input (a hidden prompt on a terminal),
checks it against the admin API, and saves it in the OS keychain under the
admin URL's origin (scheme://host:port). Where no keychain is available, as on
most servers, it is saved to ~/.config/keygate/admin-credentials.json (mode
0600) instead. Each admin URL keeps its own credential: logging in to a second
keygate does not replace the first one's, and no command sends a credential
to a server it was not saved for.

With --user, signs in as a local user instead: the password (and, when the
user has one, the one-time password from the authenticator app) is asked for
on the terminal, or read from standard input, one per line, never from the
command line. With --sso, signs in with the single-sign-on provider in the
browser: keygate listens on 127.0.0.1 for the browser's return, and prints the
URL to open if it cannot open one. With --sso --device, for a machine
without a browser (a server over SSH), it prints a short code and where to
enter it, in a browser on any device, and waits while you approve it. Either way what is saved is a session
token (kg_session_...) for this admin URL, short-lived and refreshed while
used; keygate logout ends it.

  keygate login
  printf '%s\n' "$ADMIN_CREDENTIAL" | keygate login --admin-url https://keygate.internal:8788
  keygate login --user alice
  keygate login --sso
  keygate login --sso --device`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := a.target(cmd, true)
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			switch {
			case device && !sso:
				return errors.New("login: --device goes with --sso: keygate login --sso --device")
			case user != "" && sso:
				return errors.New("login: give --user or --sso, not both")
			case user != "":
				return a.loginUser(cmd, t, user)
			case sso && device:
				return a.loginDevice(cmd, t)
			case sso:
				return a.loginSSO(cmd, t)
			}
			tok, err := readSecret(cmd.InOrStdin(), cmd.ErrOrStderr(), "Admin credential for "+t.url+": ", false)
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			if tok.IsZero() {
				return errors.New("login: no admin credential given: paste the one the first `keygate serve` printed")
			}
			if v := tok.Reveal(); strings.HasPrefix(v, "kg_") && !strings.HasPrefix(v, "kg_admin_") {
				return errors.New("login: that looks like a keygate API key, not an admin credential (admin credentials start with kg_admin_)")
			}
			c, err := adminclient.New(t.url, tok, a.clientOptions(cmd)...)
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			who, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return fmt.Errorf("login: checking the admin credential: %w", err)
			}
			if err := a.saveCredential(cmd, t, tok, "admin credential"); err != nil {
				return fmt.Errorf("login: %w", err)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), who)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s (%s).\n", t.url, who.Name, who.TokenID)
			return err
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "sign in as this local user, with a password and a second factor")
	cmd.Flags().BoolVar(&sso, "sso", false, "sign in with the single-sign-on provider, in the browser")
	cmd.Flags().BoolVar(&device, "device", false, "with --sso: sign in from a browser on another device, for a machine without one")
	return cmd
}

// saveCredential keeps tok for t's origin in the OS keychain, or, where
// there is none, in the 0600 credentials file with a warning.
func (a *app) saveCredential(cmd *cobra.Command, t adminTarget, tok secret.String, what string) error {
	errOut := cmd.ErrOrStderr()
	if kerr := a.io.Keyring.Set(KeyringService, t.origin, tok.Reveal()); kerr == nil {
		if typed := keychainAccounts(t); len(typed) > 1 {
			_ = a.io.Keyring.Delete(KeyringService, typed[1]) // an entry of an earlier version
		}
		fmt.Fprintf(errOut, "Saved the %s for %s in the OS keychain.\n", what, t.origin)
		return nil
	} else {
		path, err := a.updateCredentialsFile(func(saved map[string]string) { saved[t.origin] = tok.Reveal() })
		if err != nil {
			return fmt.Errorf("the OS keychain is not available (%v), and: %w", kerr, err)
		}
		fmt.Fprintf(errOut, "warning: no OS keychain is available (%v).\n"+
			"warning: saved the %s for %s to %s, protected only by its file permissions (0600).\n", kerr, what, t.origin, path)
	}
	return nil
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the admin credential saved for this admin URL",
		Long: `Removes the admin credential saved for this admin URL from the OS keychain and
from ~/.config/keygate/admin-credentials.json. Credentials saved for other
admin URLs stay.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := a.target(cmd, false)
			if err != nil {
				return fmt.Errorf("logout: %w", err)
			}
			out := cmd.OutOrStdout()
			if a.json {
				out = cmd.ErrOrStderr()
			}
			a.endSavedSession(cmd, t)
			removed := false
			for _, account := range keychainAccounts(t) {
				if err := a.io.Keyring.Delete(KeyringService, account); err == nil && !removed {
					removed = true
					fmt.Fprintf(out, "Removed the admin credential for %s from the OS keychain.\n", t.origin)
				}
			}
			inFile := false
			path, err := a.updateCredentialsFile(func(saved map[string]string) {
				_, inFile = saved[t.origin]
				delete(saved, t.origin)
			})
			switch {
			case err != nil && a.io.HomeDir != "":
				return fmt.Errorf("logout: %w", err)
			case inFile:
				removed = true
				fmt.Fprintf(out, "Removed the admin credential for %s from %s.\n", t.origin, path)
			}
			if !removed {
				fmt.Fprintf(out, "No saved admin credential for %s.\n", t.origin)
			}
			if a.io.Getenv(EnvAdminToken) != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is still set in this environment and keygate will keep using it.\n", EnvAdminToken)
			}
			return nil
		},
	}
}
