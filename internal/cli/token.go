package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// keyTOTPCmd is `keygate key totp KEY`: enroll a one-time password for
// step-up.
func (a *app) keyTOTPCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "totp KEY",
		Short: "Give a key a one-time password for step-up (shown once)",
		Long: `Enroll a TOTP secret for the key, replacing any earlier one, for its owner to
add to an authenticator app. When keygate's risk rules want a second factor for
a request (a use from an unusual place), the owner exchanges the key with a
current code for an access token that passes them:

  keygate token issue --key-env MY_KEYGATE_KEY --totp 123456`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			enr, err := c.EnrollTOTP(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("key totp: %w", err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), enr)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret: %s\nurl:    %s\n", enr.Secret, enr.URL)
			fmt.Fprintln(cmd.ErrOrStderr(), "Add it to the key owner's authenticator app now; keygate does not show it again.")
			return nil
		},
	}
}

// tokenCmd is `keygate token issue`: exchange a keygate key for a
// short-lived access token at the gateway.
func (a *app) tokenCmd() *cobra.Command {
	var keyEnv, totpCode, scope, gateway string
	issue := &cobra.Command{
		Use:   "issue --key-env VAR [--totp CODE] [--scope 'model:gpt-4o-mini provider:openai']",
		Short: "Exchange a keygate key for a short-lived access token",
		Long: `Exchange a keygate key (read from an environment variable, never a flag) for an
access token of 15 minutes and a refresh token, at the gateway's /oauth/token.
--scope narrows the token (provider:NAME, model:PATTERN, path:METHOD:/path);
--totp adds a one-time password, so the token passes step-up risk rules.
The access token is printed on stdout; --json prints the whole answer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyEnv == "" {
				return errors.New("token issue: --key-env VAR is required: the name of the environment variable holding your keygate key")
			}
			key := strings.TrimSpace(a.io.Getenv(keyEnv))
			if key == "" {
				return fmt.Errorf("token issue: the environment variable %s is empty or unset", keyEnv)
			}
			gw := strings.TrimSpace(gateway)
			if gw == "" {
				gw = strings.TrimSpace(a.io.Getenv(EnvGatewayURL))
			}
			if gw == "" {
				return fmt.Errorf("token issue: pass --gateway URL or set %s", EnvGatewayURL)
			}
			gw, err := gatewayURL(gw)
			if err != nil {
				return fmt.Errorf("token issue: %w", err)
			}
			u, _ := url.Parse(gw)
			if err := a.checkCleartext(cmd, u, "your keygate key", gatewayFix); err != nil {
				return fmt.Errorf("token issue: %w", err)
			}
			form := url.Values{
				"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token":      {key},
				"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"},
			}
			if totpCode != "" {
				form.Set("totp", totpCode)
			}
			if scope != "" {
				form.Set("scope", scope)
			}
			hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: noRedirects}
			resp, err := hc.PostForm(gw+"/oauth/token", form)
			if err != nil {
				return fmt.Errorf("token issue: reach the gateway: %w", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			if err != nil {
				return fmt.Errorf("token issue: read the answer: %w", err)
			}
			var ans struct {
				AccessToken string `json:"access_token"`
				Error       string `json:"error"`
				Description string `json:"error_description"`
				ExpiresIn   int    `json:"expires_in"`
			}
			if err := json.Unmarshal(body, &ans); err != nil {
				return fmt.Errorf("token issue: the gateway answered %d with something that is not a token answer", resp.StatusCode)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("token issue: %s: %s", ans.Error, ans.Description)
			}
			if a.json {
				_, err := cmd.OutOrStdout().Write(append(body, '\n'))
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ans.AccessToken)
			fmt.Fprintf(cmd.ErrOrStderr(), "Access token valid for %s. Send it as 'Authorization: Bearer ...' wherever you send your key.\n", time.Duration(ans.ExpiresIn)*time.Second)
			return nil
		},
	}
	f := issue.Flags()
	f.StringVar(&keyEnv, "key-env", "", "environment `VAR` holding your keygate key")
	f.StringVar(&totpCode, "totp", "", "a current one-time password from your authenticator app (step-up)")
	f.StringVar(&scope, "scope", "", "narrow the token: space-separated provider:NAME, model:PATTERN, path:METHOD:/path")
	f.StringVar(&gateway, "gateway", "", "the gateway's base `URL` (env "+EnvGatewayURL+")")
	cmd := &cobra.Command{Use: "token", Short: "Short-lived access tokens"}
	cmd.AddCommand(issue)
	return cmd
}
