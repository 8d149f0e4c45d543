package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/zalando/go-keyring"
	"golang.org/x/term"

	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/secret"
)

// KeyringService is the service name the admin credential is saved under in
// the OS keychain; the account is the admin URL.
const KeyringService = "keygate"

// maxSecretInput caps how much is read from stdin for a credential or key.
const maxSecretInput = 64 << 10

// Keyring is a credential store keyed by service and user, like the OS keychain.
// Get returns keyring.ErrNotFound (github.com/zalando/go-keyring) for a missing entry.
type Keyring interface {
	Get(service, user string) (string, error)
	Set(service, user, password string) error
	Delete(service, user string) error
}

// OSKeyring returns the operating system's keychain: the macOS Keychain, the
// Windows Credential Manager, or the Secret Service over D-Bus on Linux.
func OSKeyring() Keyring { return osKeyring{} }

type osKeyring struct{}

func (osKeyring) Get(service, user string) (string, error) { return keyring.Get(service, user) }
func (osKeyring) Set(service, user, password string) error {
	return keyring.Set(service, user, password)
}
func (osKeyring) Delete(service, user string) error { return keyring.Delete(service, user) }

// credential is an admin credential and where it came from.
type credential struct {
	token  secret.String
	source string // for messages: "KEYGATE_ADMIN_TOKEN", "the OS keychain", "/home/x/.config/keygate/admin-token"
}

// tokenFile returns the path of the fallback token file.
func (a *app) tokenFile() (string, error) {
	if a.io.HomeDir == "" {
		return "", errors.New("no home directory is known, so there is no admin token file: set " + EnvAdminToken)
	}
	return filepath.Join(a.io.HomeDir, ".config", "keygate", "admin-token"), nil
}

// loadCredential finds the admin credential for adminURL: the environment,
// then the OS keychain, then the fallback file.
func (a *app) loadCredential(adminURL string) (*credential, error) {
	if v := strings.TrimSpace(a.io.Getenv(EnvAdminToken)); v != "" {
		return &credential{token: secret.New(v), source: EnvAdminToken}, nil
	}
	// Any keychain error (none installed, locked, no D-Bus) falls through to
	// the file, which is where `keygate login` saves in that case.
	if v, err := a.io.Keyring.Get(KeyringService, adminURL); err == nil && strings.TrimSpace(v) != "" {
		return &credential{token: secret.New(strings.TrimSpace(v)), source: "the OS keychain"}, nil
	}
	path, err := a.tokenFile()
	if err == nil {
		tok, found, err := readTokenFile(path)
		if err != nil {
			return nil, err
		}
		if found {
			return &credential{token: tok, source: path}, nil
		}
	}
	return nil, fmt.Errorf("no admin credential for %s: run `keygate login` and paste the admin credential, or set %s "+
		"(the first `keygate serve` printed a bootstrap admin credential)", adminURL, EnvAdminToken)
}

// readTokenFile reads the fallback token file, refusing one that other users could read.
func readTokenFile(path string) (secret.String, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return secret.String{}, false, nil
	}
	if err != nil {
		return secret.String{}, false, fmt.Errorf("read admin token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return secret.String{}, false, fmt.Errorf("read admin token file: %w", err)
	}
	if st.IsDir() {
		return secret.String{}, false, fmt.Errorf("admin token file %s is a directory: remove it and run `keygate login`", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return secret.String{}, false, fmt.Errorf("refusing to read admin token file %s: its mode %04o lets other users read or change it; run `chmod 600 %s` (and consider replacing the credential)", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretInput))
	if err != nil {
		return secret.String{}, false, fmt.Errorf("read admin token file: %w", err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return secret.String{}, false, fmt.Errorf("admin token file %s is empty: run `keygate login`, or remove the file", path)
	}
	return secret.New(v), true, nil
}

// writeTokenFile saves tok to path with mode 0600 in a 0700 directory,
// replacing any earlier file in one step.
func writeTokenFile(path string, tok secret.String) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save admin token file: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("save admin token file: %w", err)
	}
	f, err := os.CreateTemp(dir, ".admin-token-*")
	if err != nil {
		return fmt.Errorf("save admin token file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save admin token file: %w", err)
	}
	if _, err := f.WriteString(tok.Reveal() + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("save admin token file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save admin token file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save admin token file: %w", err)
	}
	return nil
}

// readSecret reads a secret from in: with a hidden prompt on stderr when in
// is a terminal, else the first line (whole is false) or all of it (whole is true).
func readSecret(in io.Reader, errOut io.Writer, prompt string, whole bool) (secret.String, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(errOut, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(errOut)
		if err != nil {
			return secret.String{}, fmt.Errorf("read from the terminal: %w", err)
		}
		return secret.New(strings.TrimSpace(string(b))), nil
	}
	if in == nil {
		return secret.String{}, errors.New("no standard input to read from")
	}
	r := io.LimitReader(in, maxSecretInput)
	if whole {
		b, err := io.ReadAll(r)
		if err != nil {
			return secret.String{}, fmt.Errorf("read standard input: %w", err)
		}
		return secret.New(strings.TrimSpace(string(b))), nil
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return secret.String{}, fmt.Errorf("read standard input: %w", err)
	}
	return secret.New(strings.TrimSpace(line)), nil
}

func (a *app) loginCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "login",
		Short: "Save the admin credential for this admin URL",
		Long: `Reads the admin credential from standard input (a hidden prompt on a terminal),
checks it against the admin API, and saves it in the OS keychain under the
admin URL. Where no keychain is available, as on most servers, it is saved to
~/.config/keygate/admin-token with mode 0600 instead.

  keygate login
  printf '%s\n' "$ADMIN_CREDENTIAL" | keygate login --admin-url https://keygate.internal:8788`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url := a.resolvedURL(cmd)
			tok, err := readSecret(cmd.InOrStdin(), cmd.ErrOrStderr(), "Admin credential for "+url+": ", false)
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			if tok.IsZero() {
				return errors.New("login: no admin credential given: paste the one the first `keygate serve` printed")
			}
			if v := tok.Reveal(); strings.HasPrefix(v, "kg_") && !strings.HasPrefix(v, "kg_admin_") {
				return errors.New("login: that looks like a keygate API key, not an admin credential (admin credentials start with kg_admin_)")
			}
			var opts []adminclient.Option
			if ca := a.resolvedCA(cmd); ca != "" {
				opts = append(opts, adminclient.WithCAFile(ca))
			}
			c, err := adminclient.New(url, tok, opts...)
			if err != nil {
				return err
			}
			who, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return fmt.Errorf("login: checking the admin credential: %w", err)
			}
			errOut := cmd.ErrOrStderr()
			if kerr := a.io.Keyring.Set(KeyringService, url, tok.Reveal()); kerr == nil {
				fmt.Fprintf(errOut, "Saved the admin credential for %s in the OS keychain.\n", url)
			} else {
				path, err := a.tokenFile()
				if err != nil {
					return fmt.Errorf("login: the OS keychain is not available (%v) and %w", kerr, err)
				}
				if err := writeTokenFile(path, tok); err != nil {
					return fmt.Errorf("login: the OS keychain is not available (%v), and: %w", kerr, err)
				}
				fmt.Fprintf(errOut, "warning: no OS keychain is available (%v).\n"+
					"warning: saved the admin credential to %s, protected only by its file permissions (0600).\n", kerr, path)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), who)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s (%s).\n", url, who.Name, who.TokenID)
			return err
		},
	}
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Remove the saved admin credential from the OS keychain and the token file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url := a.resolvedURL(cmd)
			out := cmd.OutOrStdout()
			if a.json {
				out = cmd.ErrOrStderr()
			}
			removed := false
			if err := a.io.Keyring.Delete(KeyringService, url); err == nil {
				removed = true
				fmt.Fprintf(out, "Removed the admin credential for %s from the OS keychain.\n", url)
			}
			if path, err := a.tokenFile(); err == nil {
				err := os.Remove(path)
				switch {
				case err == nil:
					removed = true
					fmt.Fprintf(out, "Removed %s.\n", path)
				case !errors.Is(err, fs.ErrNotExist):
					return fmt.Errorf("logout: %w", err)
				}
			}
			if !removed {
				fmt.Fprintf(out, "No saved admin credential for %s.\n", url)
			}
			if a.io.Getenv(EnvAdminToken) != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is still set in this environment and keygate will keep using it.\n", EnvAdminToken)
			}
			return nil
		},
	}
}
