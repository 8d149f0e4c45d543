package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/zalando/go-keyring"
	"golang.org/x/term"

	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/secret"
)

// KeyringService is the service name admin credentials are saved under in
// the OS keychain; the account is the admin URL's origin (scheme://host:port).
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
	source string // for messages: "KEYGATE_ADMIN_TOKEN", "the OS keychain", "/home/x/.config/keygate/admin-credentials.json"
}

// The fallback files under ~/.config/keygate. The credentials file maps
// each admin origin to its credential. The legacy file, written by keygate
// versions that kept one credential for every admin URL, holds a single
// credential: it is read for the default admin URL only, and folded into
// the credentials file at the next login or logout.
const (
	credentialsFileName = "admin-credentials.json"
	legacyTokenFileName = "admin-token"
)

// credentialsFile is the JSON form of the credentials file.
type credentialsFile struct {
	Credentials map[string]string `json:"credentials"` // admin origin -> admin credential
}

// defaultOrigin is the origin the legacy file's credential belongs to.
func defaultOrigin() string {
	o, _ := adminclient.Origin(DefaultAdminURL)
	return o
}

// adminTarget is the admin API a command talks to.
type adminTarget struct {
	url    string // as given (flag, environment or default): the client's base URL
	origin string // scheme://host:port: the key its credential is saved under
}

// target resolves the admin URL. With sending true it also refuses plain
// http:// to another machine, unless --insecure-http overrides that, in
// which case it warns on stderr.
func (a *app) target(cmd *cobra.Command, sending bool) (adminTarget, error) {
	raw := a.resolvedURL(cmd)
	origin, err := adminclient.Origin(raw)
	if err != nil {
		return adminTarget{}, err
	}
	t := adminTarget{url: raw, origin: origin}
	if !sending {
		return t, nil
	}
	u, _ := url.Parse(strings.TrimSpace(raw)) // Origin has parsed it
	if err := a.checkCleartext(cmd, u, "the admin credential",
		"serve keygate over HTTPS (tls.cert and tls.key, or --tls-self-signed with --admin-ca here) and use an https:// --admin-url"); err != nil {
		return adminTarget{}, err
	}
	return t, nil
}

// checkCleartext refuses to send what over plain http:// to a host that is
// not this machine, unless --insecure-http was given; then it warns. fix
// says how to reach the server over HTTPS instead.
func (a *app) checkCleartext(cmd *cobra.Command, u *url.URL, what, fix string) error {
	err := adminclient.CheckCleartext(u)
	if err == nil {
		return nil
	}
	if a.insecureHTTP {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: sending %s over plain HTTP to %s, as --insecure-http allows; anyone on the network between can read it.\n", what, u.Host)
		return nil
	}
	return fmt.Errorf("refusing to send %s to %s: %w\n"+
		"%s, or pass --insecure-http if the network in between is trusted to protect it (such as a service mesh that encrypts every connection)",
		what, u.Redacted(), err, fix)
}

// clientOptions are the admin client options the persistent flags ask for.
func (a *app) clientOptions(cmd *cobra.Command) []adminclient.Option {
	var opts []adminclient.Option
	if ca := a.resolvedCA(cmd); ca != "" {
		opts = append(opts, adminclient.WithCAFile(ca))
	}
	if a.insecureHTTP {
		opts = append(opts, adminclient.AllowPlainHTTP())
	}
	if a.approval != "" {
		opts = append(opts, adminclient.WithApproval(a.approval))
	}
	return opts
}

// configDir is where the fallback files live.
func (a *app) configDir() (string, error) {
	if a.io.HomeDir == "" {
		return "", errors.New("no home directory is known, so there is no admin credentials file: set " + EnvAdminToken)
	}
	return filepath.Join(a.io.HomeDir, ".config", "keygate"), nil
}

// loadCredential finds the admin credential for t: the environment, then
// the OS keychain, then the credentials file, then, for the default admin
// URL only, the legacy single-credential file. A credential saved for one
// admin origin is never used for another.
func (a *app) loadCredential(t adminTarget) (*credential, error) {
	if v := strings.TrimSpace(a.io.Getenv(EnvAdminToken)); v != "" {
		return &credential{token: secret.New(v), source: EnvAdminToken}, nil
	}
	// Any keychain error (none installed, locked, no D-Bus) falls through to
	// the file, which is where `keygate login` saves in that case. Earlier
	// versions saved under the URL as typed, which names the same server.
	for _, account := range keychainAccounts(t) {
		if v, err := a.io.Keyring.Get(KeyringService, account); err == nil && strings.TrimSpace(v) != "" {
			return &credential{token: secret.New(strings.TrimSpace(v)), source: "the OS keychain"}, nil
		}
	}
	var hints []string
	if dir, err := a.configDir(); err == nil {
		path := filepath.Join(dir, credentialsFileName)
		saved, err := readCredentialsFile(path)
		if err != nil {
			return nil, err
		}
		if v := strings.TrimSpace(saved[t.origin]); v != "" {
			return &credential{token: secret.New(v), source: path}, nil
		}
		if len(saved) > 0 {
			hints = append(hints, fmt.Sprintf("%s holds credentials for %s only", path, strings.Join(slices.Sorted(maps.Keys(saved)), ", ")))
		}
		legacy := filepath.Join(dir, legacyTokenFileName)
		tok, found, err := readTokenFile(legacy)
		if err != nil {
			return nil, err
		}
		switch {
		case found && t.origin == defaultOrigin():
			return &credential{token: tok, source: legacy}, nil
		case found:
			hints = append(hints, fmt.Sprintf("%s, from an earlier keygate, is used only for %s", legacy, DefaultAdminURL))
		}
	}
	msg := fmt.Sprintf("no admin credential for %s: run `keygate login --admin-url %s` and paste the admin credential, or set %s "+
		"(the first `keygate serve` printed a bootstrap admin credential)", t.url, t.url, EnvAdminToken)
	for _, h := range hints {
		msg += "\nnote: " + h
	}
	return nil, errors.New(msg)
}

// keychainAccounts lists the keychain accounts t's credential may be saved
// under: its origin, and the URL as typed, which earlier versions used.
func keychainAccounts(t adminTarget) []string {
	if typed := strings.TrimSpace(t.url); typed != t.origin {
		return []string{t.origin, typed}
	}
	return []string{t.origin}
}

// openPrivate opens a fallback file, refusing one that other users could
// read or change. found is false when there is no file.
func openPrivate(path, what string) (f *os.File, found bool, err error) {
	f, err = os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", what, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("read %s: %w", what, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, false, fmt.Errorf("%s %s is a directory: remove it and run `keygate login`", what, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		f.Close()
		return nil, false, fmt.Errorf("refusing to read %s %s: its mode %04o lets other users read or change it; run `chmod 600 %s` (and consider replacing the credentials in it)", what, path, perm, path)
	}
	return f, true, nil
}

// readCredentialsFile reads the credentials file; a missing file is empty.
func readCredentialsFile(path string) (map[string]string, error) {
	f, found, err := openPrivate(path, "admin credentials file")
	if !found || err != nil {
		return map[string]string{}, err
	}
	defer f.Close()
	var cf credentialsFile
	if err := json.NewDecoder(io.LimitReader(f, maxSecretInput)).Decode(&cf); err != nil {
		return nil, fmt.Errorf("admin credentials file %s is not the JSON keygate writes: remove it and run `keygate login` again", path)
	}
	if cf.Credentials == nil {
		cf.Credentials = map[string]string{}
	}
	return cf.Credentials, nil
}

// readTokenFile reads the legacy single-credential file.
func readTokenFile(path string) (secret.String, bool, error) {
	f, found, err := openPrivate(path, "admin token file")
	if !found || err != nil {
		return secret.String{}, false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretInput))
	if err != nil {
		return secret.String{}, false, fmt.Errorf("read admin token file: %w", err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return secret.String{}, false, fmt.Errorf("admin token file %s is empty: remove it", path)
	}
	return secret.New(v), true, nil
}

// updateCredentialsFile changes the credentials file with change, which
// gets the saved credentials by origin, the legacy file's credential
// folded in under the default origin. The file is rewritten in one step
// (or removed when nothing is left in it), and the legacy file removed.
// It returns the file's path.
func (a *app) updateCredentialsFile(change func(saved map[string]string)) (string, error) {
	dir, err := a.configDir()
	if err != nil {
		return "", err
	}
	path, legacy := filepath.Join(dir, credentialsFileName), filepath.Join(dir, legacyTokenFileName)
	saved, err := readCredentialsFile(path)
	if err != nil {
		return path, err
	}
	old, found, err := readTokenFile(legacy)
	if err != nil {
		return path, err
	}
	if _, ok := saved[defaultOrigin()]; found && !ok {
		saved[defaultOrigin()] = old.Reveal()
	}
	change(saved)
	if len(saved) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return path, fmt.Errorf("remove %s: %w", path, err)
		}
	} else {
		b, err := json.MarshalIndent(credentialsFile{Credentials: saved}, "", "  ")
		if err != nil {
			return path, fmt.Errorf("save admin credentials file: %w", err)
		}
		if err := writePrivateFile(path, append(b, '\n')); err != nil {
			return path, err
		}
	}
	if found {
		if err := os.Remove(legacy); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return path, fmt.Errorf("remove the old admin token file %s: %w", legacy, err)
		}
	}
	return path, nil
}

// writePrivateFile saves data to path with mode 0600 in a 0700 directory,
// replacing any earlier file in one step.
func writePrivateFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save admin credentials file: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("save admin credentials file: %w", err)
	}
	f, err := os.CreateTemp(dir, ".admin-credentials-*")
	if err != nil {
		return fmt.Errorf("save admin credentials file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save admin credentials file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save admin credentials file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save admin credentials file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save admin credentials file: %w", err)
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
