package vault

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// Argon2Params is the argon2id cost of deriving a passphrase KEK. keygate
// records it, with the salt, so the same passphrase derives the same key on
// every start.
type Argon2Params struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // degree of parallelism
}

// DefaultArgon2 is the cost keygate uses for a new passphrase KEK: the second
// recommended option of RFC 9106 (t=3, 64 MiB, p=4). Treat it as a constant.
var DefaultArgon2 = Argon2Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

const (
	passphraseIDPrefix = "passphrase:"
	passphraseIDLabel  = "keygate passphrase kek id"
	passphraseSaltSize = 16
	maxPassphraseFile  = 4096

	// The floor below which keygate refuses a recorded cost, and a ceiling
	// that keeps a corrupted record from exhausting the host.
	minArgon2Time      = 1
	maxArgon2Time      = 64
	minArgon2MemoryKiB = 8 * 1024
	maxArgon2MemoryKiB = 4 * 1024 * 1024
	minArgon2Threads   = 1
)

// PassphraseKEK is a KEK derived from an operator's passphrase with argon2id
// under a random salt. It wraps data keys with AES-256-GCM exactly as
// LocalKEK does. Neither the passphrase nor the derived key is stored: keygate
// records only the salt and the argon2id cost (see KEKRegistry).
type PassphraseKEK struct {
	gcm *gcmWrapper
}

// ID returns "passphrase:" followed by 16 hex characters derived from the
// key by HMAC-SHA256. It reveals nothing about the passphrase.
func (k *PassphraseKEK) ID() string { return k.gcm.id }

// Wrap encrypts a data key: the output is nonce || ciphertext || tag. It
// refuses once this process has wrapped 2^32 data keys under the key.
func (k *PassphraseKEK) Wrap(_ context.Context, dek []byte) ([]byte, error) {
	return k.gcm.wrap(dek)
}

// Unwrap decrypts a data key produced by Wrap under the same passphrase and
// salt. The error wraps ErrTampered when the input is truncated, modified, or
// was wrapped by another key.
func (k *PassphraseKEK) Unwrap(_ context.Context, wrapped []byte) ([]byte, error) {
	return k.gcm.unwrap(wrapped)
}

// passphraseParams is the non-secret JSON keygate records for a passphrase
// KEK. encoding/json writes Salt as standard base64.
type passphraseParams struct {
	Salt      []byte `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

func (p passphraseParams) validate() error {
	switch {
	case len(p.Salt) != passphraseSaltSize:
		return fmt.Errorf("salt is %d bytes, want %d", len(p.Salt), passphraseSaltSize)
	case p.Time < minArgon2Time || p.Time > maxArgon2Time:
		return fmt.Errorf("argon2id time %d is outside %d..%d", p.Time, minArgon2Time, maxArgon2Time)
	case p.MemoryKiB < minArgon2MemoryKiB || p.MemoryKiB > maxArgon2MemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB is outside %d..%d KiB", p.MemoryKiB, minArgon2MemoryKiB, maxArgon2MemoryKiB)
	case p.Threads < minArgon2Threads:
		return fmt.Errorf("argon2id threads %d is below %d", p.Threads, minArgon2Threads)
	}
	return nil
}

// derivePassphraseKEK derives the KEK for passphrase under p, which the
// caller has validated. The derived key is cleared before returning.
func derivePassphraseKEK(passphrase []byte, p passphraseParams) (*PassphraseKEK, error) {
	key := argon2.IDKey(passphrase, p.Salt, p.Time, p.MemoryKiB, p.Threads, MasterKeySize)
	defer clear(key)
	gcm, err := newGCMWrapper(key, passphraseIDPrefix, passphraseIDLabel, "passphrase")
	if err != nil {
		return nil, err
	}
	return &PassphraseKEK{gcm: gcm}, nil
}

// passphraseSource says where a passphrase came from, for error messages,
// and can ask for it a second time when a new KEK is set up interactively.
type passphraseSource struct {
	where   string                        // "read from environment variable NAME", "typed at the prompt"
	check   string                        // what the operator should check when it opens nothing
	confirm func() (secret.String, error) // nil unless the passphrase was typed
}

// openPassphraseKEK finds the recorded passphrase KEK that passphrase opens
// or, with o.Create, records a new one. created reports the latter.
func openPassphraseKEK(ctx context.Context, passphrase []byte, src passphraseSource, o KEKOptions) (kek *PassphraseKEK, created bool, err error) {
	if len(passphrase) == 0 {
		return nil, false, fmt.Errorf("the passphrase %s is empty; keygate needs a non-empty passphrase", src.where)
	}
	if o.Registry == nil {
		return nil, false, errors.New("no KEK registry is configured; a passphrase KEK needs keygate's database to record its salt")
	}
	m := passphraseMatcher{reg: o.Registry, passphrase: passphrase, tried: map[string]bool{}}
	kek, err = m.match(ctx)
	if err != nil || kek != nil {
		return kek, false, err
	}
	if !o.Create {
		if m.recorded == 0 {
			return nil, false, fmt.Errorf("no passphrase KEK has been set up in keygate's database yet%s; keygate sets one up on the first start of a new installation, or with `keygate vault rotate-kek`", m.invalidNote())
		}
		return nil, false, fmt.Errorf("the passphrase does not open this keygate vault (it was set up with a different passphrase)%s; check %s", m.invalidNote(), src.check)
	}
	if src.confirm != nil {
		again, err := src.confirm()
		if err != nil {
			return nil, false, fmt.Errorf("read the passphrase again to confirm it: %w", err)
		}
		b := []byte(again.Reveal())
		same := subtle.ConstantTimeCompare(b, passphrase) == 1
		clear(b)
		if !same {
			return nil, false, errors.New("the two passphrases typed differ; nothing was set up, start again")
		}
	}
	kek, err = createPassphraseKEK(ctx, o, passphrase)
	if err != nil {
		return nil, false, err
	}
	// Another keygate may have recorded a KEK for the same passphrase at the
	// same moment: match again so every process settles on the earliest one.
	m.known = kek
	winner, err := m.match(ctx)
	if err != nil {
		return nil, false, err
	}
	if winner == nil {
		return nil, false, fmt.Errorf("recorded passphrase KEK %s, but keygate's database does not list it; check the database", kek.ID())
	}
	return winner, winner.ID() == kek.ID(), nil
}

// createPassphraseKEK derives a KEK under a new random salt and records it.
func createPassphraseKEK(ctx context.Context, o KEKOptions, passphrase []byte) (*PassphraseKEK, error) {
	cost := DefaultArgon2
	if o.Argon2 != nil {
		cost = *o.Argon2
	}
	p := passphraseParams{Salt: make([]byte, passphraseSaltSize), Time: cost.Time, MemoryKiB: cost.MemoryKiB, Threads: cost.Threads}
	if _, err := rand.Read(p.Salt); err != nil {
		return nil, fmt.Errorf("generate a salt for the passphrase KEK: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("the argon2id cost configured for a new passphrase KEK is refused: %w; use at least t=%d, %d KiB, p=%d", err, minArgon2Time, minArgon2MemoryKiB, minArgon2Threads)
	}
	kek, err := derivePassphraseKEK(passphrase, p)
	if err != nil {
		return nil, err
	}
	params, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode passphrase KEK parameters: %w", err)
	}
	rec := store.KEKRecord{ID: kek.ID(), Kind: KEKKindPassphrase, Params: params, CreatedAt: time.Now().UTC()}
	if err := o.Registry.PutKEKRecord(ctx, rec); err != nil && !errors.Is(err, store.ErrConflict) {
		return nil, fmt.Errorf("record the new passphrase KEK %s in keygate's database: %w", kek.ID(), err)
	}
	return kek, nil
}

// passphraseMatcher tries one passphrase against the recorded passphrase
// KEKs, deriving each record at most once across calls to match.
type passphraseMatcher struct {
	reg        KEKRegistry
	passphrase []byte
	known      *PassphraseKEK  // already derived; used for its own record
	tried      map[string]bool // records derived that did not match
	recorded   int             // passphrase records seen by the last match
	invalid    []string        // records skipped, with the reason
}

// match returns the first recorded passphrase KEK, in creation order, whose
// ID the passphrase derives, or nil when none does.
func (m *passphraseMatcher) match(ctx context.Context) (*PassphraseKEK, error) {
	all, err := m.reg.ListKEKRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the KEKs recorded in keygate's database: %w", err)
	}
	recs := slices.DeleteFunc(slices.Clone(all), func(r store.KEKRecord) bool { return r.Kind != KEKKindPassphrase })
	slices.SortFunc(recs, func(a, b store.KEKRecord) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	m.recorded = len(recs)
	m.invalid = m.invalid[:0]
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if m.known != nil && r.ID == m.known.ID() {
			return m.known, nil
		}
		if m.tried[r.ID] {
			continue
		}
		var p passphraseParams
		if err := json.Unmarshal(r.Params, &p); err != nil {
			m.invalid = append(m.invalid, fmt.Sprintf("%s (parameters are not valid JSON)", r.ID))
			continue
		}
		if err := p.validate(); err != nil {
			m.invalid = append(m.invalid, fmt.Sprintf("%s (%v)", r.ID, err))
			continue
		}
		kek, err := derivePassphraseKEK(m.passphrase, p)
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare([]byte(kek.ID()), []byte(r.ID)) == 1 {
			return kek, nil
		}
		m.tried[r.ID] = true
	}
	return nil, nil
}

// invalidNote describes the records match skipped, or is empty.
func (m *passphraseMatcher) invalidNote() string {
	if len(m.invalid) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d recorded passphrase KEK(s) have invalid parameters and were not tried: %s)", len(m.invalid), strings.Join(m.invalid, "; "))
}

// passphrasePrompt is what keygate asks on the terminal.
const passphrasePrompt = "keygate vault passphrase: "

// readPassphrase reads the passphrase a passphrase:// URL names: the
// environment variable of ?env=NAME, the file of ?file=/path, or, with no
// parameter or ?prompt, what the operator types.
func readPassphrase(u *url.URL, o KEKOptions) (secret.String, passphraseSource, error) {
	var none secret.String
	if u.Host != "" || u.User != nil || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return none, passphraseSource{}, errors.New("a passphrase KEK URL takes only a query: passphrase://?env=NAME, passphrase://?file=/path or passphrase://?prompt")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return none, passphraseSource{}, errors.New("the query of the passphrase KEK URL is malformed; use passphrase://?env=NAME, passphrase://?file=/path or passphrase://?prompt")
	}
	var given []string
	for name, vals := range q {
		switch name {
		case "env", "file", "prompt":
		default:
			return none, passphraseSource{}, fmt.Errorf("unknown parameter %q in the passphrase KEK URL; it takes one of env=NAME, file=/path or prompt", name)
		}
		if len(vals) != 1 {
			return none, passphraseSource{}, fmt.Errorf("parameter %q appears %d times in the passphrase KEK URL; give it once", name, len(vals))
		}
		given = append(given, name)
	}
	if len(given) > 1 {
		slices.Sort(given)
		return none, passphraseSource{}, fmt.Errorf("the passphrase KEK URL names several sources (%s); give exactly one of env=, file= or prompt", strings.Join(given, ", "))
	}
	switch {
	case q.Has("env"):
		name := q.Get("env")
		if name == "" {
			return none, passphraseSource{}, errors.New("passphrase://?env= needs the name of an environment variable")
		}
		getenv := o.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		src := passphraseSource{where: "read from environment variable " + name, check: "environment variable " + name}
		v := secret.New(getenv(name))
		if v.IsZero() {
			return none, src, fmt.Errorf("environment variable %s is empty or unset; set it to keygate's vault passphrase", name)
		}
		return v, src, nil
	case q.Has("file"):
		path := q.Get("file")
		src := passphraseSource{where: "read from file " + path, check: "the passphrase file " + path}
		v, err := readPassphraseFile(path)
		return v, src, err
	default:
		if q.Get("prompt") != "" {
			return none, passphraseSource{}, errors.New("passphrase://?prompt takes no value")
		}
		src := passphraseSource{where: "typed at the prompt", check: "the passphrase you typed"}
		if o.Prompt == nil {
			return none, src, errors.New("no terminal to ask for the passphrase; use passphrase://?env=NAME or passphrase://?file=/path")
		}
		v, err := o.Prompt(passphrasePrompt)
		if err != nil {
			return none, src, fmt.Errorf("read the passphrase from the terminal: %w", err)
		}
		src.confirm = func() (secret.String, error) { return o.Prompt("repeat the new " + passphrasePrompt) }
		return v, src, nil
	}
}

// readPassphraseFile reads a passphrase file, refusing one that other users
// can read or write. Trailing line breaks are not part of the passphrase.
func readPassphraseFile(path string) (secret.String, error) {
	var none secret.String
	if !filepath.IsAbs(path) {
		return none, fmt.Errorf("passphrase file %q is not an absolute path; use passphrase://?file=/absolute/path", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return none, fmt.Errorf("open passphrase file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return none, fmt.Errorf("passphrase file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return none, fmt.Errorf("passphrase file %s is not a regular file; point keygate at the file itself", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return none, fmt.Errorf("passphrase file %s is accessible to other users (mode %04o); restrict it with: chmod 600 %s", path, perm, path)
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile+1))
	defer clear(buf)
	if err != nil {
		return none, fmt.Errorf("read passphrase file %s: %w", path, err)
	}
	if len(buf) > maxPassphraseFile {
		return none, fmt.Errorf("passphrase file %s is larger than %d bytes; it should hold only the passphrase", path, maxPassphraseFile)
	}
	v := bytes.TrimRight(buf, "\r\n")
	if len(v) == 0 {
		return none, fmt.Errorf("passphrase file %s is empty; write keygate's vault passphrase into it", path)
	}
	return secret.New(string(v)), nil
}
