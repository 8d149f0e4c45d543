package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pkg/browser"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/secret"
)

// prompter asks for secrets one after another: on a terminal with hidden
// prompts, otherwise one line each from standard input (one reader, so a
// second answer piped after the first is not lost).
type prompter struct {
	in     io.Reader
	errOut io.Writer
	lines  *bufio.Reader
}

func newPrompter(in io.Reader, errOut io.Writer) *prompter {
	return &prompter{in: in, errOut: errOut}
}

func (p *prompter) terminal() bool {
	f, ok := p.in.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// secret asks for one secret.
func (p *prompter) secret(prompt string) (secret.String, error) {
	if p.terminal() || p.in == nil {
		return readSecret(p.in, p.errOut, prompt, false)
	}
	if p.lines == nil {
		p.lines = bufio.NewReader(io.LimitReader(p.in, maxSecretInput))
	}
	line, err := p.lines.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return secret.String{}, fmt.Errorf("read standard input: %w", err)
	}
	return secret.New(strings.TrimSpace(line)), nil
}

// loginUser signs a local user in: password, then the one-time password
// when the user has one, and saves the session for t.
func (a *app) loginUser(cmd *cobra.Command, t adminTarget, user string) error {
	c, err := adminclient.NewSignIn(t.url, a.clientOptions(cmd)...)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	ask := newPrompter(cmd.InOrStdin(), cmd.ErrOrStderr())
	pw, err := ask.secret(fmt.Sprintf("Password for %s at %s: ", user, t.url))
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if pw.IsZero() {
		return errors.New("login: no password given")
	}
	req := adminapi.LoginRequest{User: user, Password: pw.Reveal()}
	out, err := c.Login(cmd.Context(), req)
	var apiErr *adminclient.APIError
	if errors.As(err, &apiErr) && apiErr.Code == "otp_required" {
		code, err2 := ask.secret("One-time password: ")
		if err2 != nil {
			return fmt.Errorf("login: %w", err2)
		}
		if code.IsZero() {
			return errors.New("login: this user needs a one-time password from the authenticator app, and none was given")
		}
		req.OTP = code.Reveal()
		out, err = c.Login(cmd.Context(), req)
	}
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	return a.finishLogin(cmd, t, out)
}

// finishLogin saves a new session and says who signed in.
func (a *app) finishLogin(cmd *cobra.Command, t adminTarget, out adminapi.LoginResponse) error {
	if out.Token == "" {
		return errors.New("login: keygate answered without a session token")
	}
	if err := a.saveCredential(cmd, t, secret.New(out.Token), "session"); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if out.Session.MFAEnrolmentRequired {
		fmt.Fprintln(cmd.ErrOrStderr(), "note: your role needs a second factor: run `keygate user totp` to enrol one; until then only that works.")
	}
	if a.json {
		return writeJSON(cmd.OutOrStdout(), out.Session)
	}
	via := out.Session.Method
	if out.Session.MFA != "" {
		via += "+" + out.Session.MFA
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(), "Signed in to %s as %s (%s, %s) until %s at the latest.\n",
		t.url, out.Session.Name, out.Session.Role, via, out.Session.ExpiresAt.Local().Format(time.DateTime))
	return err
}

// loginSSO signs in with the single-sign-on provider: the browser goes
// to keygate's start URL, signs in at the provider, and keygate's
// callback sends it back to a listener on 127.0.0.1 with a one-time code,
// which only this process (holding the verifier) can trade for the
// session.
func (a *app) loginSSO(cmd *cobra.Command, t adminTarget) error {
	c, err := adminclient.NewSignIn(t.url, a.clientOptions(cmd)...)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	m, err := c.SignInMethods(cmd.Context())
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if m.OIDC == nil {
		return fmt.Errorf("login: %s has no single sign-on configured (signin.oidc); sign in with --user, or an admin token", t.url)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	verifier := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(verifier))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("login: listen on 127.0.0.1 for the browser's return: %w", err)
	}
	defer ln.Close()
	redirect := fmt.Sprintf("http://%s/callback", ln.Addr())
	codes := make(chan string, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		code := r.URL.Query().Get("code")
		if msg := r.URL.Query().Get("error"); msg != "" || code == "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintln(w, "keygate sign-in failed: "+msg+". Go back to the terminal.")
			select {
			case codes <- "":
			default:
			}
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "Signed in to keygate. You can close this tab and go back to the terminal.")
		select {
		case codes <- code:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	start := strings.TrimRight(t.url, "/") + m.OIDC.StartURL + "?" + url.Values{
		"cli_redirect":  {redirect},
		"cli_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
	}.Encode()
	fmt.Fprintf(cmd.ErrOrStderr(), "Open this URL in a browser to sign in with %s:\n\n  %s\n\nWaiting for the browser...\n", m.OIDC.Name, start)
	if a.io.OpenBrowser != nil {
		_ = a.io.OpenBrowser(start)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
	defer cancel()
	var code string
	select {
	case code = <-codes:
	case <-ctx.Done():
		return errors.New("login: no sign-in came back from the browser within 5 minutes; run keygate login --sso again")
	}
	if code == "" {
		return errors.New("login: the single sign-on did not complete; see the browser for why")
	}
	out, err := c.ExchangeSSO(cmd.Context(), adminapi.SSOExchangeRequest{Code: code, Verifier: verifier})
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	return a.finishLogin(cmd, t, out)
}

// loginDevice signs in with single sign-on from a browser elsewhere: keygate
// starts the provider's device grant, the person enters the code it shows
// on any device, and the CLI waits for keygate to say how it went.
func (a *app) loginDevice(cmd *cobra.Command, t adminTarget) error {
	c, err := adminclient.NewSignIn(t.url, a.clientOptions(cmd)...)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	d, err := c.StartDeviceSSO(cmd.Context())
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	where := d.VerificationURI
	if d.VerificationURIComplete != "" {
		where = d.VerificationURIComplete
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "To sign in, open this URL in a browser on any device:\n\n  %s\n\nand enter the code  %s\n\nWaiting for you to approve it (until %s)...\n",
		where, d.UserCode, d.ExpiresAt.Local().Format(time.Kitchen))
	for {
		out, pending, err := c.WaitDeviceSSO(cmd.Context(), d.Handle)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		if !pending {
			return a.finishLogin(cmd, t, out)
		}
		if time.Now().After(d.ExpiresAt) {
			return errors.New("login: the code expired before the sign-in was approved; run keygate login --sso --device again")
		}
	}
}

// OpenBrowser opens url in the user's browser, where there is one.
func OpenBrowser(url string) error {
	browser.Stdout, browser.Stderr = io.Discard, io.Discard
	return browser.OpenURL(url)
}

// endSavedSession ends, at the server, the session saved for t, if what
// is saved is a session; an admin token saved there is left alone (it is
// revoked with keygate admin-token revoke).
func (a *app) endSavedSession(cmd *cobra.Command, t adminTarget) {
	cred, err := a.loadCredential(t)
	if err != nil || cred.source == EnvAdminToken || !strings.HasPrefix(cred.token.Reveal(), "kg_session_") {
		return
	}
	c, err := adminclient.New(t.url, cred.token, a.clientOptions(cmd)...)
	if err != nil {
		return
	}
	if err := c.Logout(cmd.Context()); err != nil {
		var apiErr *adminclient.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: could not end the session at %s (%v); it ends by itself when it expires.\n", t.url, err)
		}
		return
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Ended the session at %s.\n", t.url)
}

// userPasswordCmd is `user password NAME`: sets a user's password, or,
// for oneself, changes it with the current one.
func (a *app) userPasswordCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "password NAME",
		Short: "Set a local user's password (read from the terminal or standard input, never the command line)",
		Long: `Sets the password NAME signs in with (keygate login --user NAME). An admin
setting another user's password ends that user's sessions. For your own
user, the current password is asked for first. On a terminal the new
password is asked for twice, hidden; otherwise standard input gives the
current password (for your own user) and then the new one, one per line.
Passwords need at least 12 characters; keygate keeps only an argon2id hash.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return fmt.Errorf("user password: %w", err)
			}
			who, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return fmt.Errorf("user password: %w", explain(err, cred))
			}
			ask := newPrompter(cmd.InOrStdin(), cmd.ErrOrStderr())
			self := who.UserID != "" && who.Name == args[0]
			var current secret.String
			if self {
				if current, err = ask.secret("Current password (empty if none): "); err != nil {
					return fmt.Errorf("user password: %w", err)
				}
			}
			pw, err := ask.secret("New password for " + args[0] + ": ")
			if err != nil {
				return fmt.Errorf("user password: %w", err)
			}
			if ask.terminal() {
				again, err := ask.secret("Again: ")
				if err != nil {
					return fmt.Errorf("user password: %w", err)
				}
				if again.Reveal() != pw.Reveal() {
					return errors.New("user password: the two passwords differ; nothing was changed")
				}
			}
			if pw.IsZero() {
				return errors.New("user password: no password given; nothing was changed")
			}
			if self {
				err = c.SetOwnPassword(cmd.Context(), current, pw)
			} else {
				err = c.SetUserPassword(cmd.Context(), args[0], pw)
			}
			if err != nil {
				return fmt.Errorf("user password: %w", explain(err, cred))
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Password set for %s.\n", args[0])
			return err
		},
	}
}

// userTOTPCmd is `user totp`: enrols a TOTP second factor for oneself.
func (a *app) userTOTPCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "totp",
		Short: "Enrol a one-time-password app as your second factor",
		Long: `Prints a new TOTP secret (and its otpauth:// URL) for your own user, once:
add it to an authenticator app, then type the code the app shows to confirm.
From then on keygate login --user asks for a code after the password.
Replacing a confirmed one asks for a current code first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return fmt.Errorf("user totp: %w", err)
			}
			ask := newPrompter(cmd.InOrStdin(), cmd.ErrOrStderr())
			enr, err := c.EnrolTOTP(cmd.Context(), "")
			var apiErr *adminclient.APIError
			if errors.As(err, &apiErr) && apiErr.Code == "otp_required" {
				code, err2 := ask.secret("Current one-time password (to replace it): ")
				if err2 != nil {
					return fmt.Errorf("user totp: %w", err2)
				}
				enr, err = c.EnrolTOTP(cmd.Context(), code.Reveal())
			}
			if err != nil {
				return fmt.Errorf("user totp: %w", explain(err, cred))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Secret: %s\nURL:    %s\n", enr.Secret, enr.URL)
			code, err := ask.secret("Code from the app, to confirm: ")
			if err != nil {
				return fmt.Errorf("user totp: %w", err)
			}
			if err := c.ConfirmTOTP(cmd.Context(), code.Reveal()); err != nil {
				return fmt.Errorf("user totp: %w (run keygate user totp again)", explain(err, cred))
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "One-time password enrolled: keygate login --user asks for a code from now on.")
			return err
		},
	}
}
