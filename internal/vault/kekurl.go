package vault

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"gocloud.dev/secrets"
	"gocloud.dev/secrets/localsecrets"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// The kinds of KEK keygate can run with, as OpenedKEK.Kind and
// store.KEKRecord.Kind name them.
const (
	KEKKindFile       = "file"       // a master key file on local disk
	KEKKindPassphrase = "passphrase" // derived from an operator's passphrase
	KEKKindKMS        = "kms"        // held by a key management service
)

// KEKRegistry persists what keygate needs to re-derive a passphrase KEK
// (never the key). keygate's store implements it.
type KEKRegistry interface {
	// ListKEKRecords returns every recorded KEK.
	ListKEKRecords(ctx context.Context) ([]store.KEKRecord, error)
	// PutKEKRecord records a new KEK. Its error wraps store.ErrConflict
	// when a record with r.ID already exists.
	PutKEKRecord(ctx context.Context, r store.KEKRecord) error
}

// KEKOptions tunes OpenKEK.
type KEKOptions struct {
	// DataDir is where the default KEK lives: an empty URL means
	// file://<DataDir>/master.key.
	DataDir string
	// Create allows creating a missing key file, or a new passphrase KEK
	// (with a new salt) when the passphrase opens none of those recorded.
	Create bool
	// Getenv reads the variable of passphrase://?env=NAME; nil means os.Getenv.
	Getenv func(string) string
	// Prompt asks on the terminal for the passphrase of a passphrase:// URL
	// without env= or file=. nil means there is no terminal.
	Prompt func(prompt string) (secret.String, error)
	// Registry records passphrase KEKs; it is required for them.
	Registry KEKRegistry
	// Argon2 is the cost of a new passphrase KEK; nil means DefaultArgon2.
	Argon2 *Argon2Params
}

// OpenedKEK is a KEK together with where it came from.
type OpenedKEK struct {
	KEK     KEK          // the key, ready to wrap and unwrap data keys
	Kind    string       // KEKKindFile, KEKKindPassphrase or KEKKindKMS
	URL     string       // the KEK URL with every secret part redacted, safe to print
	Created bool         // whether OpenKEK created the key file or the passphrase KEK
	Close   func() error // releases the KEK (a KMS client); call it when done with KEK
}

// OpenKEK opens the KEK that rawURL names:
//
//   - "" is file://<DataDir>/master.key;
//   - file:///abs/path/master.key, or the bare absolute path, is a master key
//     file (created when missing if o.Create);
//   - passphrase://?env=NAME, passphrase://?file=/path and
//     passphrase://?prompt (or passphrase://) derive a key from a passphrase
//     recorded in o.Registry;
//   - any other scheme is a gocloud.dev/secrets keeper URL (base64key://,
//     awskms://, gcpkms://, azurekeyvault://, hashivault://) whose driver
//     this keygate build includes.
//
// OpenKEK then wraps and unwraps a random key to prove the KEK works, so a
// wrong or unreachable KMS fails here rather than at the first secret. Its
// errors name the redacted URL, never a key or passphrase.
func OpenKEK(ctx context.Context, rawURL string, o KEKOptions) (OpenedKEK, error) {
	rawURL = strings.TrimSpace(rawURL)
	if rawURL == "" && o.DataDir != "" {
		path, err := filepath.Abs(filepath.Join(o.DataDir, "master.key"))
		if err != nil {
			return OpenedKEK{}, fmt.Errorf("vault: open the default KEK in data directory %s: %w; keygate will not run without its key-encryption key", o.DataDir, err)
		}
		rawURL = path
	}
	redacted := RedactKEKURL(rawURL)
	if isBarePath(rawURL) {
		redacted = fileURL(rawURL)
	}
	fail := func(err error) (OpenedKEK, error) {
		return OpenedKEK{}, fmt.Errorf("vault: open KEK %s: %w; keygate will not run without its key-encryption key and never falls back to storing secrets unencrypted", redacted, err)
	}
	opened, scrub, err := openKEK(ctx, rawURL, o)
	if err != nil {
		return fail(err)
	}
	opened.URL = redacted
	if err := probeKEK(ctx, opened.KEK); err != nil {
		_ = opened.Close()
		return fail(scrub(err))
	}
	return opened, nil
}

// openKEK dispatches on the URL scheme. scrub removes secret parts of the
// URL from a provider's error.
func openKEK(ctx context.Context, rawURL string, o KEKOptions) (opened OpenedKEK, scrub func(error) error, err error) {
	keep := func(err error) error { return err }
	noClose := func() error { return nil }
	if rawURL == "" {
		return opened, keep, errors.New("no KEK URL and no data directory are configured; set the data directory or a KEK URL")
	}
	if isBarePath(rawURL) {
		return openFileKEK(rawURL, o.Create)
	}
	if isBase64KeyURL(rawURL) {
		return openBase64KeyKEK(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return opened, keep, errors.New("the KEK URL cannot be parsed; write it as scheme://... (file:///path, passphrase://?env=NAME, or a KMS URL)")
	}
	scheme := keeperScheme(u.Scheme)
	switch scheme {
	case "":
		return opened, keep, errors.New("the KEK URL has no scheme; use file:///absolute/path/master.key, passphrase://?env=NAME, or a KMS URL such as awskms://")
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return opened, keep, errors.New("a file KEK URL needs an absolute path with an empty host: file:///absolute/path/master.key")
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return opened, keep, errors.New("a file KEK URL takes no query, fragment or user; use file:///absolute/path/master.key")
		}
		path := filepath.FromSlash(u.Path)
		if u.Opaque != "" || !filepath.IsAbs(path) {
			return opened, keep, errors.New("a file KEK URL needs an absolute path: file:///absolute/path/master.key")
		}
		return openFileKEK(path, o.Create)
	case "passphrase":
		pass, src, err := readPassphrase(u, o)
		if err != nil {
			return opened, keep, err
		}
		b := []byte(pass.Reveal())
		defer clear(b)
		kek, created, err := openPassphraseKEK(ctx, b, src, o)
		if err != nil {
			return opened, keep, err
		}
		return OpenedKEK{KEK: kek, Kind: KEKKindPassphrase, Created: created, Close: noClose}, keep, nil
	}
	scrub = scrubber(rawURL, u)
	mux := secrets.DefaultURLMux()
	if !mux.ValidKeeperScheme(scheme) {
		if slices.Contains([]string{"awskms", "azurekeyvault", "base64key", "gcpkms", "hashivault"}, scheme) {
			return opened, keep, fmt.Errorf("this keygate build does not include the %s KMS driver; supported KEK URL schemes here: %s", scheme, supportedSchemes())
		}
		return opened, keep, fmt.Errorf("unsupported KEK URL scheme %q; supported schemes: %s", scheme, supportedSchemes())
	}
	keeper, err := mux.OpenKeeperURL(ctx, u)
	if err != nil {
		return opened, keep, fmt.Errorf("open the %s KMS key: %w; check the KEK URL and the credentials keygate runs with", scheme, scrub(err))
	}
	kek := NewKeeperKEK(keeper, rawURL)
	return OpenedKEK{KEK: kek, Kind: KEKKindKMS, Close: kek.Close}, scrub, nil
}

// openBase64KeyKEK opens a base64key:// URL with gocloud.dev's local keeper
// (NaCl secretbox), parsing the key itself so that every base64 form of it
// works and gives the same KEK ID.
func openBase64KeyKEK(rawURL string) (OpenedKEK, func(error) error, error) {
	keep := func(err error) error { return err }
	key, canonical, err := parseBase64KeyURL(rawURL)
	if err != nil {
		return OpenedKEK{}, keep, err
	}
	var k [MasterKeySize]byte
	copy(k[:], key)
	clear(key)
	kek := NewKeeperKEK(localsecrets.NewKeeper(k), canonical)
	clear(k[:])
	return OpenedKEK{KEK: kek, Kind: KEKKindKMS, Close: kek.Close}, keep, nil
}

func openFileKEK(path string, create bool) (OpenedKEK, func(error) error, error) {
	keep := func(err error) error { return err }
	var (
		kek     *LocalKEK
		created bool
		err     error
	)
	if create {
		kek, created, err = LoadOrCreateKeyFile(path)
	} else {
		kek, err = loadKeyFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("there is no master key file at %s; restore it from your backup, or point keygate at the data directory that holds it", path)
		}
	}
	if err != nil {
		return OpenedKEK{}, keep, err
	}
	return OpenedKEK{KEK: kek, Kind: KEKKindFile, Created: created, Close: func() error { return nil }}, keep, nil
}

// probeKEK wraps and unwraps a random value, proving the KEK can do both.
func probeKEK(ctx context.Context, k KEK) error {
	v := make([]byte, dekSize)
	defer clear(v)
	if _, err := rand.Read(v); err != nil {
		return fmt.Errorf("generate a test key: %w", err)
	}
	w, err := k.Wrap(ctx, v)
	if err != nil {
		return fmt.Errorf("the KEK could not wrap a test key: %w", err)
	}
	got, err := k.Unwrap(ctx, w)
	defer clear(got)
	if err != nil {
		return fmt.Errorf("the KEK could not unwrap a test key it had just wrapped: %w", err)
	}
	if subtle.ConstantTimeCompare(got, v) != 1 {
		return errors.New("the KEK unwrapped a test key it had just wrapped to different bytes; it cannot be trusted with keygate's data keys")
	}
	return nil
}

func supportedSchemes() string {
	s := []string{"file://", "passphrase://"}
	for _, k := range secrets.DefaultURLMux().KeeperSchemes() {
		s = append(s, k+"://")
	}
	return strings.Join(s, ", ")
}

// keeperScheme lower-cases scheme and drops the optional "secrets+" and
// "secrets+keeper+" prefixes gocloud.dev accepts.
func keeperScheme(scheme string) string {
	scheme = strings.ToLower(scheme)
	scheme = strings.TrimPrefix(scheme, "secrets+keeper+")
	return strings.TrimPrefix(scheme, "secrets+")
}

// isBase64KeyURL reports whether raw uses the base64key scheme, whose host is
// the key itself.
func isBase64KeyURL(raw string) bool {
	scheme, _, ok := strings.Cut(raw, ":")
	return ok && keeperScheme(strings.TrimSpace(scheme)) == "base64key"
}

// isBarePath reports whether raw is an absolute file path rather than a URL.
func isBarePath(raw string) bool {
	return filepath.IsAbs(raw) && !strings.Contains(raw, "://")
}

// fileURL returns the file:// URL of an absolute path.
func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

const redactedMark = "REDACTED"

// RedactKEKURL returns a KEK URL that is safe to print: a base64key:// URL
// becomes "base64key://REDACTED", a userinfo password and every query
// parameter whose name suggests a secret (token, key, secret, password...)
// are replaced by REDACTED. file:// and passphrase:// URLs, which only name a
// file or an environment variable, are kept, except for any part of a
// passphrase URL other than env=, file= and prompt. An unparsable URL gives
// "<unparsable KEK URL>".
func RedactKEKURL(raw string) string {
	raw = strings.TrimSpace(raw)
	switch {
	case raw == "":
		return ""
	case isBase64KeyURL(raw):
		return "base64key://" + redactedMark
	case isBarePath(raw):
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable KEK URL>"
	}
	if u.Scheme == "" {
		// Not a URL keygate accepts, and possibly a key pasted on its own.
		return "<KEK URL without a scheme>"
	}
	if u.Opaque != "" {
		u.Opaque = redactedMark
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redactedMark)
		}
	}
	isSecret := isSecretParam
	if u.Scheme == "passphrase" {
		// A passphrase URL names its source only in env=, file= or prompt;
		// anything else may be a passphrase written into the URL.
		if u.User != nil {
			u.User = url.User(redactedMark)
		}
		if u.Host != "" {
			u.Host = redactedMark
		}
		if u.Path != "" && u.Path != "/" {
			u.Path, u.RawPath = "/"+redactedMark, ""
		}
		isSecret = func(name string) bool { return name != "env" && name != "file" && name != "prompt" }
	}
	u.RawQuery = redactQuery(u.RawQuery, isSecret)
	u.ForceQuery = false
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = redactedMark, ""
	}
	out := u.String()
	// url.URL.String drops "//" when the host and path are empty
	// ("passphrase://?env=X"); keep the form the operator wrote.
	if rest := raw[len(u.Scheme)+1:]; strings.HasPrefix(rest, "//") && !strings.HasPrefix(out[len(u.Scheme)+1:], "//") {
		out = out[:len(u.Scheme)+1] + "//" + out[len(u.Scheme)+1:]
	}
	return out
}

// redactQuery replaces the values of query parameters whose name suggests a
// secret, keeping the others and their order as written.
func redactQuery(raw string, isSecret func(name string) bool) string {
	if raw == "" {
		return ""
	}
	if strings.Contains(raw, ";") {
		return redactedMark
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		name, _, _ := strings.Cut(p, "=")
		dec, err := url.QueryUnescape(name)
		if err != nil {
			return redactedMark
		}
		if isSecret(dec) {
			parts[i] = name + "=" + redactedMark
		}
	}
	return strings.Join(parts, "&")
}

// isSecretParam reports whether a query parameter name suggests a secret.
func isSecretParam(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"token", "key", "secret", "pass", "pwd", "credential", "auth", "sig"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// scrubber returns a function that rewrites an error's text with every
// secret part of the KEK URL replaced, for errors from KMS drivers that may
// quote the URL. The result does not wrap the original error, whose text
// would still hold the secret.
func scrubber(raw string, u *url.URL) func(error) error {
	var secretParts []string
	add := func(s string) {
		if s != "" {
			secretParts = append(secretParts, s, url.QueryEscape(s), url.PathEscape(s))
		}
	}
	add(raw)
	if isBase64KeyURL(raw) {
		add(u.Host)
		add(u.Opaque)
	}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
	}
	if q, err := url.ParseQuery(u.RawQuery); err == nil {
		for name, vals := range q {
			if isSecretParam(name) {
				for _, v := range vals {
					add(v)
				}
			}
		}
	} else {
		add(u.RawQuery)
	}
	// Longest first, so a part inside another is not replaced halfway.
	slices.SortFunc(secretParts, func(a, b string) int { return len(b) - len(a) })
	redacted := RedactKEKURL(raw)
	return func(err error) error {
		if err == nil {
			return nil
		}
		msg := err.Error()
		if strings.Contains(msg, raw) {
			msg = strings.ReplaceAll(msg, raw, redacted)
		}
		for _, s := range secretParts {
			msg = strings.ReplaceAll(msg, s, redactedMark)
		}
		e := &scrubbedError{msg: msg}
		for _, target := range []error{ErrTampered, context.Canceled, context.DeadlineExceeded} {
			if errors.Is(err, target) {
				e.is = append(e.is, target)
			}
		}
		return e
	}
}

// scrubbedError is a provider's error with the secrets removed from its text.
// It matches ErrTampered and the context errors when the original did, but
// does not unwrap to the original.
type scrubbedError struct {
	msg string
	is  []error
}

func (e *scrubbedError) Error() string { return e.msg }

func (e *scrubbedError) Is(target error) bool { return slices.Contains(e.is, target) }
