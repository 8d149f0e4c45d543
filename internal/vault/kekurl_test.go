package vault_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	_ "gocloud.dev/secrets/localsecrets"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
	"github.com/keygate/keygate/internal/vault/kektest"
)

// cheapArgon2 keeps passphrase tests fast; it is the lowest cost keygate accepts.
var cheapArgon2 = vault.Argon2Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}

// memRegistry is an in-memory vault.KEKRegistry.
type memRegistry struct {
	mu   sync.Mutex
	recs map[string]store.KEKRecord
}

func newMemRegistry() *memRegistry { return &memRegistry{recs: map[string]store.KEKRecord{}} }

func (r *memRegistry) ListKEKRecords(context.Context) ([]store.KEKRecord, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]store.KEKRecord, 0, len(r.recs))
	for _, rec := range r.recs {
		out = append(out, rec)
	}
	return out, nil
}

func (r *memRegistry) PutKEKRecord(_ context.Context, rec store.KEKRecord) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.recs[rec.ID]; ok {
		return fmt.Errorf("KEK record %s: %w", rec.ID, store.ErrConflict)
	}
	r.recs[rec.ID] = rec
	return nil
}

func (r *memRegistry) list() []store.KEKRecord {
	recs, _ := r.ListKEKRecords(context.Background())
	return recs
}

// randomSecret returns a passphrase generated at run time.
func randomSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pp-" + base64.RawURLEncoding.EncodeToString(b)
}

// randomKeyURL returns a base64key:// URL holding a key generated at run
// time, and the key part of the URL.
func randomKeyURL(t testing.TB) (rawURL, key string) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	key = base64.URLEncoding.EncodeToString(b)
	return "base64key://" + key, key
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func mustOpen(t *testing.T, rawURL string, o vault.KEKOptions) vault.OpenedKEK {
	t.Helper()
	k, err := vault.OpenKEK(context.Background(), rawURL, o)
	if err != nil {
		t.Fatalf("OpenKEK(%s): %v", vault.RedactKEKURL(rawURL), err)
	}
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k
}

// assertNoSecret fails when err's text holds any of the secrets.
func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error")
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error reveals a secret: %v", err)
		}
	}
}

func TestKEKConformance(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		dir, otherDir := t.TempDir(), t.TempDir()
		path := filepath.Join(dir, "master.key")
		kektest.Run(t,
			func(t *testing.T) vault.KEK {
				return mustOpen(t, "file://"+path, vault.KEKOptions{Create: true}).KEK
			},
			func(t *testing.T) vault.KEK { return mustOpen(t, path, vault.KEKOptions{}).KEK },
			func(t *testing.T) vault.KEK {
				return mustOpen(t, "", vault.KEKOptions{DataDir: otherDir, Create: true}).KEK
			})
	})

	t.Run("passphrase", func(t *testing.T) {
		reg := newMemRegistry()
		env := envOf(map[string]string{"KG_PASS": randomSecret(t), "KG_OTHER": randomSecret(t)})
		opts := func(create bool) vault.KEKOptions {
			return vault.KEKOptions{Create: create, Getenv: env, Registry: reg, Argon2: &cheapArgon2}
		}
		kektest.Run(t,
			func(t *testing.T) vault.KEK { return mustOpen(t, "passphrase://?env=KG_PASS", opts(true)).KEK },
			func(t *testing.T) vault.KEK { return mustOpen(t, "passphrase://?env=KG_PASS", opts(false)).KEK },
			func(t *testing.T) vault.KEK { return mustOpen(t, "passphrase://?env=KG_OTHER", opts(true)).KEK })
	})

	t.Run("base64key", func(t *testing.T) {
		u, key := randomKeyURL(t)
		otherURL, _ := randomKeyURL(t)
		kektest.Run(t,
			func(t *testing.T) vault.KEK {
				k := mustOpen(t, u, vault.KEKOptions{})
				if strings.Contains(k.KEK.ID(), key) || strings.Contains(k.URL, key) {
					t.Fatalf("the KEK's ID or URL holds its key")
				}
				return k.KEK
			},
			func(t *testing.T) vault.KEK { return mustOpen(t, u, vault.KEKOptions{}).KEK },
			func(t *testing.T) vault.KEK { return mustOpen(t, otherURL, vault.KEKOptions{}).KEK })
	})
}

func TestOpenKEKURLs(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "keys", "master.key")
	passFile := filepath.Join(dir, "passphrase")
	pass := randomSecret(t)
	if err := os.WriteFile(passFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyURL, key := randomKeyURL(t)
	env := envOf(map[string]string{"KG_PASS": pass})
	prompt := func(string) (secret.String, error) { return secret.New(pass), nil }
	// One registry for the passphrase cases: the first creates the KEK, the
	// others (file, prompt) open the same one.
	reg := newMemRegistry()

	for _, tc := range []struct {
		name, url, kind, shown string
		created                bool
	}{
		{"default", "", vault.KEKKindFile, "file://" + dir + "/master.key", true},
		{"file URL", "file://" + keyPath, vault.KEKKindFile, "file://" + keyPath, true},
		{"bare path", keyPath, vault.KEKKindFile, "file://" + keyPath, false},
		{"padded with spaces", "  file://" + keyPath + "\n", vault.KEKKindFile, "file://" + keyPath, false},
		{"passphrase env", "passphrase://?env=KG_PASS", vault.KEKKindPassphrase, "passphrase://?env=KG_PASS", true},
		{"passphrase file", "passphrase://?file=" + passFile, vault.KEKKindPassphrase, "passphrase://?file=" + passFile, false},
		{"passphrase prompt", "passphrase://?prompt", vault.KEKKindPassphrase, "passphrase://?prompt", false},
		{"passphrase default prompt", "passphrase://", vault.KEKKindPassphrase, "passphrase://", false},
		{"base64key", keyURL, vault.KEKKindKMS, "base64key://REDACTED", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := mustOpen(t, tc.url, vault.KEKOptions{DataDir: dir, Create: true, Getenv: env, Prompt: prompt, Registry: reg, Argon2: &cheapArgon2})
			if k.Kind != tc.kind || k.URL != tc.shown || k.Created != tc.created {
				t.Fatalf("got kind %q URL %q created %v, want %q %q %v", k.Kind, k.URL, k.Created, tc.kind, tc.shown, tc.created)
			}
			if strings.Contains(k.URL, key) || strings.Contains(k.URL, pass) {
				t.Fatal("the shown URL holds a secret")
			}
			want := map[string]string{vault.KEKKindFile: "local:", vault.KEKKindPassphrase: "passphrase:", vault.KEKKindKMS: "kms:"}[tc.kind]
			if !strings.HasPrefix(k.KEK.ID(), want) {
				t.Fatalf("KEK ID %q, want prefix %q", k.KEK.ID(), want)
			}
		})
	}
	// The passphrase from the file (newline trimmed) and from the prompt
	// opened the KEK the environment variable created.
	if recs := reg.list(); len(recs) != 1 {
		t.Fatalf("%d passphrase KEKs recorded, want 1 (file and prompt should open the one env created)", len(recs))
	}
}

func TestOpenKEKURLErrors(t *testing.T) {
	dir := t.TempDir()
	pass := randomSecret(t)
	_, key := randomKeyURL(t)
	for _, tc := range []struct {
		name, url string
		o         vault.KEKOptions
		want      []string // substrings of the error
	}{
		{"unknown scheme", "ftp://example.com/key", vault.KEKOptions{}, []string{"ftp", "file://", "passphrase://", "base64key://"}},
		{"no scheme", "master.key", vault.KEKOptions{}, []string{"no scheme", "file:///"}},
		{"pasted key", key, vault.KEKOptions{}, []string{"no scheme"}},
		{"no URL and no data dir", "", vault.KEKOptions{}, []string{"data directory"}},
		{"missing key file", "file://" + dir + "/none/master.key", vault.KEKOptions{}, []string{"no master key file", dir + "/none/master.key", "backup"}},
		{"file URL with host", "file://host/master.key", vault.KEKOptions{}, []string{"absolute path"}},
		{"relative file URL", "file:master.key", vault.KEKOptions{}, []string{"absolute path"}},
		{"passphrase env empty name", "passphrase://?env=", vault.KEKOptions{Registry: newMemRegistry()}, []string{"env="}},
		{"passphrase env unset", "passphrase://?env=KG_UNSET", vault.KEKOptions{Registry: newMemRegistry(), Getenv: envOf(nil)}, []string{"KG_UNSET", "empty or unset"}},
		{"passphrase two sources", "passphrase://?env=A&file=/b", vault.KEKOptions{Registry: newMemRegistry()}, []string{"several sources"}},
		{"passphrase unknown parameter", "passphrase://?passphrase=" + pass, vault.KEKOptions{Registry: newMemRegistry()}, []string{"unknown parameter"}},
		{"passphrase with host", "passphrase://" + pass, vault.KEKOptions{Registry: newMemRegistry()}, []string{"only a query"}},
		{"passphrase relative file", "passphrase://?file=pass.txt", vault.KEKOptions{Registry: newMemRegistry()}, []string{"absolute"}},
		{"passphrase no terminal", "passphrase://?prompt", vault.KEKOptions{Registry: newMemRegistry()}, []string{"no terminal", "?env=", "?file="}},
		{"passphrase no registry", "passphrase://?env=KG_PASS", vault.KEKOptions{Getenv: envOf(map[string]string{"KG_PASS": pass})}, []string{"registry"}},
		{"base64key without key", "base64key://", vault.KEKOptions{}, []string{"needs its key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vault.OpenKEK(context.Background(), tc.url, tc.o)
			assertNoSecret(t, err, pass, key)
			for _, w := range append(tc.want, "will not run without its key-encryption key") {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error does not mention %q: %v", w, err)
				}
			}
		})
	}
}

func TestPassphraseWrong(t *testing.T) {
	reg := newMemRegistry()
	right, wrong := randomSecret(t), randomSecret(t)
	o := vault.KEKOptions{Create: true, Registry: reg, Argon2: &cheapArgon2, Getenv: envOf(map[string]string{"KG_PASS": right})}
	mustOpen(t, "passphrase://?env=KG_PASS", o)

	o = vault.KEKOptions{Registry: reg, Getenv: envOf(map[string]string{"KG_PASS": wrong})}
	_, err := vault.OpenKEK(context.Background(), "passphrase://?env=KG_PASS", o)
	assertNoSecret(t, err, right, wrong)
	for _, w := range []string{"does not open this keygate vault", "environment variable KG_PASS", "passphrase://?env=KG_PASS"} {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error does not mention %q: %v", w, err)
		}
	}
	if len(reg.list()) != 1 {
		t.Fatal("a wrong passphrase without Create recorded a new KEK")
	}
}

func TestPassphraseNoRecord(t *testing.T) {
	pass := randomSecret(t)
	o := vault.KEKOptions{Registry: newMemRegistry(), Getenv: envOf(map[string]string{"KG_PASS": pass})}
	_, err := vault.OpenKEK(context.Background(), "passphrase://?env=KG_PASS", o)
	assertNoSecret(t, err, pass)
	if !strings.Contains(err.Error(), "no passphrase KEK has been set up") {
		t.Fatalf("error does not say no KEK is set up: %v", err)
	}
}

func TestPassphraseEmpty(t *testing.T) {
	o := vault.KEKOptions{Create: true, Registry: newMemRegistry(), Argon2: &cheapArgon2,
		Prompt: func(string) (secret.String, error) { return secret.String{}, nil }}
	_, err := vault.OpenKEK(context.Background(), "passphrase://?prompt", o)
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("an empty typed passphrase: %v", err)
	}
	path := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = vault.OpenKEK(context.Background(), "passphrase://?file="+path, o)
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("an empty passphrase file: %v", err)
	}
}

func TestPassphraseTwoKEKs(t *testing.T) {
	reg := newMemRegistry()
	a, b := randomSecret(t), randomSecret(t)
	env := envOf(map[string]string{"KG_A": a, "KG_B": b})
	create := vault.KEKOptions{Create: true, Registry: reg, Argon2: &cheapArgon2, Getenv: env}
	ka := mustOpen(t, "passphrase://?env=KG_A", create)
	kb := mustOpen(t, "passphrase://?env=KG_B", create)
	if !ka.Created || !kb.Created {
		t.Fatal("Created is false for new passphrase KEKs")
	}
	if ka.KEK.ID() == kb.KEK.ID() {
		t.Fatal("two passphrases gave the same KEK")
	}
	recs := reg.list()
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for _, r := range recs {
		if r.Kind != vault.KEKKindPassphrase || r.CreatedAt.IsZero() || (r.ID != ka.KEK.ID() && r.ID != kb.KEK.ID()) {
			t.Fatalf("unexpected record %+v", r)
		}
		if strings.Contains(string(r.Params), a) || strings.Contains(string(r.Params), b) {
			t.Fatal("a record holds the passphrase")
		}
		var p struct {
			Salt      []byte `json:"salt"`
			Time      uint32 `json:"time"`
			MemoryKiB uint32 `json:"memory_kib"`
			Threads   uint8  `json:"threads"`
		}
		if err := json.Unmarshal(r.Params, &p); err != nil {
			t.Fatalf("params %s: %v", r.Params, err)
		}
		if len(p.Salt) != 16 || p.Time != cheapArgon2.Time || p.MemoryKiB != cheapArgon2.MemoryKiB || p.Threads != cheapArgon2.Threads {
			t.Fatalf("params %s do not record a 16-byte salt and the requested cost", r.Params)
		}
	}
	open := vault.KEKOptions{Registry: reg, Getenv: env}
	for _, tc := range []struct{ url, want string }{{"passphrase://?env=KG_A", ka.KEK.ID()}, {"passphrase://?env=KG_B", kb.KEK.ID()}} {
		k := mustOpen(t, tc.url, open)
		if k.KEK.ID() != tc.want || k.Created {
			t.Fatalf("%s opened %s (created %v), want %s", tc.url, k.KEK.ID(), k.Created, tc.want)
		}
	}
	// Reopening with Create set finds the existing KEK instead of adding one.
	if k := mustOpen(t, "passphrase://?env=KG_A", create); k.Created || k.KEK.ID() != ka.KEK.ID() {
		t.Fatal("reopening with Create made a new KEK")
	}
	if len(reg.list()) != 2 {
		t.Fatal("reopening recorded another KEK")
	}
}

func TestPassphrasePromptConfirms(t *testing.T) {
	first, second := randomSecret(t), randomSecret(t)
	answers := []string{first, second}
	var asked []string
	o := vault.KEKOptions{Create: true, Registry: newMemRegistry(), Argon2: &cheapArgon2,
		Prompt: func(p string) (secret.String, error) {
			asked = append(asked, p)
			a := answers[0]
			answers = answers[1:]
			return secret.New(a), nil
		}}
	_, err := vault.OpenKEK(context.Background(), "passphrase://", o)
	assertNoSecret(t, err, first, second)
	if !strings.Contains(err.Error(), "differ") || len(asked) != 2 {
		t.Fatalf("mismatched confirmation: asked %d times, err %v", len(asked), err)
	}
	answers, asked = []string{first, first}, nil
	k := mustOpen(t, "passphrase://", o)
	if !k.Created || len(asked) != 2 {
		t.Fatalf("matching confirmation: created %v, asked %d times", k.Created, len(asked))
	}
	answers, asked = []string{first}, nil
	o.Create = false
	if k2 := mustOpen(t, "passphrase://", o); k2.KEK.ID() != k.KEK.ID() || len(asked) != 1 {
		t.Fatal("opening an existing KEK should ask once and open it")
	}
}

func TestPassphraseFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes do not apply on Windows")
	}
	pass := randomSecret(t)
	path := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(path, []byte(pass+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := newMemRegistry()
	o := vault.KEKOptions{Create: true, Registry: reg, Argon2: &cheapArgon2}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := vault.OpenKEK(context.Background(), "passphrase://?file="+path, o)
		assertNoSecret(t, err, pass)
		if !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Fatalf("mode %04o: error does not say how to fix it: %v", mode, err)
		}
	}
	if len(reg.list()) != 0 {
		t.Fatal("a refused passphrase file recorded a KEK")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile := mustOpen(t, "passphrase://?file="+path, o)
	o.Getenv = envOf(map[string]string{"KG_PASS": pass})
	fromEnv := mustOpen(t, "passphrase://?env=KG_PASS", o)
	if fromFile.KEK.ID() != fromEnv.KEK.ID() {
		t.Fatal("the file's trailing line break became part of the passphrase")
	}
}

func TestPassphraseInvalidRecordReported(t *testing.T) {
	reg := newMemRegistry()
	weak := store.KEKRecord{ID: "passphrase:0123456789abcdef", Kind: vault.KEKKindPassphrase,
		Params: []byte(`{"salt":"AAAAAAAAAAAAAAAAAAAAAA==","time":1,"memory_kib":1024,"threads":1}`)}
	if err := reg.PutKEKRecord(context.Background(), weak); err != nil {
		t.Fatal(err)
	}
	pass := randomSecret(t)
	_, err := vault.OpenKEK(context.Background(), "passphrase://?env=KG_PASS", vault.KEKOptions{Registry: reg, Getenv: envOf(map[string]string{"KG_PASS": pass})})
	assertNoSecret(t, err, pass)
	if !strings.Contains(err.Error(), "invalid parameters") || !strings.Contains(err.Error(), weak.ID) {
		t.Fatalf("error does not report the invalid record: %v", err)
	}
}

func TestPassphraseRefusesCheapCost(t *testing.T) {
	pass := randomSecret(t)
	for _, p := range []vault.Argon2Params{{Time: 0, MemoryKiB: 8 * 1024, Threads: 1}, {Time: 1, MemoryKiB: 1024, Threads: 1}, {Time: 1, MemoryKiB: 8 * 1024}} {
		o := vault.KEKOptions{Create: true, Registry: newMemRegistry(), Argon2: &p, Getenv: envOf(map[string]string{"KG_PASS": pass})}
		_, err := vault.OpenKEK(context.Background(), "passphrase://?env=KG_PASS", o)
		assertNoSecret(t, err, pass)
		if !strings.Contains(err.Error(), "argon2id") {
			t.Fatalf("cost %+v: %v", p, err)
		}
	}
}

func TestRedactKEKURL(t *testing.T) {
	_, key := randomKeyURL(t)
	pw := randomSecret(t)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"base64key://" + key, "base64key://REDACTED"},
		{"BASE64KEY://" + key, "base64key://REDACTED"},
		{"secrets+base64key://" + key, "base64key://REDACTED"},
		{"base64key:" + key, "base64key://REDACTED"},
		{"base64key://" + key + "%zz", "base64key://REDACTED"},
		{"base64key://", "base64key://REDACTED"},
		{"file:///var/lib/keygate/master.key", "file:///var/lib/keygate/master.key"},
		{"/var/lib/keygate/master.key", "/var/lib/keygate/master.key"},
		{"passphrase://?env=KEYGATE_PASSPHRASE", "passphrase://?env=KEYGATE_PASSPHRASE"},
		{"passphrase://?file=/etc/keygate/pass", "passphrase://?file=/etc/keygate/pass"},
		{"passphrase://?prompt", "passphrase://?prompt"},
		{"passphrase://", "passphrase://"},
		{"awskms://alias/keygate?region=us-east-1", "awskms://alias/keygate?region=us-east-1"},
		{"gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k", "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k"},
		{"hashivault://keygate?token=" + pw, "hashivault://keygate?token=REDACTED"},
		{"azurekeyvault://v.vault.azure.net/keys/k?algorithm=RSA-OAEP-256&client_secret=" + pw, "azurekeyvault://v.vault.azure.net/keys/k?algorithm=RSA-OAEP-256&client_secret=REDACTED"},
		{"hashivault://u:" + pw + "@vault:8200/keygate", "hashivault://u:REDACTED@vault:8200/keygate"},
		{"kms://h/k?apiKey=" + pw + "&region=x", "kms://h/k?apiKey=REDACTED&region=x"},
		{"kms://h/k?Password=" + pw, "kms://h/k?Password=REDACTED"},
		{"passphrase://" + pw, "passphrase://REDACTED"},
		{"passphrase:///" + pw, "passphrase:///REDACTED"},
		{"passphrase://?env=X&value=" + pw, "passphrase://?env=X&value=REDACTED"},
		{"passphrase://" + pw + "@", "passphrase://REDACTED@"},
		{"kms://h/k#" + pw, "kms://h/k#REDACTED"},
		{"kms:" + pw, "kms:REDACTED"},
		{key, "<KEK URL without a scheme>"},
		{"kms://h/%zz?token=" + pw, "<unparsable KEK URL>"},
		{"kms://h/k?token=" + pw + ";x", "kms://h/k?REDACTED"},
	} {
		got := vault.RedactKEKURL(tc.in)
		if got != tc.want {
			t.Errorf("RedactKEKURL(%s) = %q, want %q", vault.RedactKEKURL(tc.in), got, tc.want)
		}
		if strings.Contains(got, key) || strings.Contains(got, pw) {
			t.Errorf("RedactKEKURL output %q holds a secret", got)
		}
	}
}

func TestOpenKEKBadKMSURL(t *testing.T) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	short := base64.URLEncoding.EncodeToString(b)
	_, key := randomKeyURL(t)
	for _, tc := range []struct{ name, url, secret string }{
		{"not base64", "base64key://not-valid-base64!" + key[:8], key[:8]},
		{"short key", "base64key://" + short, short},
		{"mixed base64 alphabets", "base64key://+-" + key[2:], key[2:]},
		{"unsupported query", "base64key://" + key + "?region=x", key},
		{"unparsable", "base64key://" + key + "%zz", key},
		{"secrets prefix", "secrets+base64key://" + short, short},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vault.OpenKEK(context.Background(), tc.url, vault.KEKOptions{})
			assertNoSecret(t, err, tc.secret)
			if !strings.Contains(err.Error(), "base64key://REDACTED") {
				t.Fatalf("error does not name the redacted URL: %v", err)
			}
		})
	}
}

// TestBase64KeyForms: a base64key:// key may be written in standard or
// URL-safe base64, with or without padding; every form is the same KEK
// (same ID, and what one wraps the others unwrap). A key of the wrong
// length, or text that is not base64, is refused with an error that says
// what a key must be and never quotes it.
func TestBase64KeyForms(t *testing.T) {
	key := make([]byte, vault.MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	// The first bytes encode to characters that differ between the two
	// alphabets ("+/" against "-_"), so every form below is distinct.
	key[0], key[1] = 0xfb, 0xff
	canonical := "base64key://" + base64.URLEncoding.EncodeToString(key)
	forms := map[string]string{
		"URL-safe, padded":   canonical,
		"URL-safe, unpadded": "base64key://" + base64.RawURLEncoding.EncodeToString(key),
		"standard, padded":   "base64key://" + base64.StdEncoding.EncodeToString(key),
		"standard, unpadded": "base64key://" + base64.RawStdEncoding.EncodeToString(key),
		"secrets+ prefix":    "secrets+base64key://" + base64.RawURLEncoding.EncodeToString(key),
		"surrounding spaces": "  base64key://" + base64.RawStdEncoding.EncodeToString(key) + "\n",
	}
	ref := mustOpen(t, canonical, vault.KEKOptions{})
	wrapped, err := ref.KEK.Wrap(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for name, u := range forms {
		t.Run(name, func(t *testing.T) {
			k := mustOpen(t, u, vault.KEKOptions{})
			if k.KEK.ID() != ref.KEK.ID() {
				t.Fatalf("KEK ID %s, want %s: one key must have one ID however it is written", k.KEK.ID(), ref.KEK.ID())
			}
			if k.URL != "base64key://REDACTED" {
				t.Fatalf("shown URL %q", k.URL)
			}
			got, err := k.KEK.Unwrap(context.Background(), wrapped)
			if err != nil || string(got) != string(key) {
				t.Fatalf("the %s form does not unwrap what the canonical form wrapped: %v", name, err)
			}
		})
	}

	enc := base64.RawURLEncoding.EncodeToString
	keyText := enc(key)
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"31 bytes", "base64key://" + enc(key[:31]), []string{"31 bytes", "32 bytes"}},
		{"33 bytes", "base64key://" + enc(append(append([]byte(nil), key...), 7)), []string{"33 bytes", "32 bytes"}},
		{"16 bytes, padded", "base64key://" + base64.StdEncoding.EncodeToString(key[:16]), []string{"16 bytes", "32 bytes"}},
		{"only padding", "base64key://==", []string{"needs its key"}},
		{"not base64", "base64key://" + keyText[:40] + "!!!", []string{"not base64"}},
		{"mixed alphabets", "base64key://+-" + keyText[2:], []string{"not base64", "mixes"}},
		{"padding inside", "base64key://" + keyText[:20] + "=" + keyText[21:], []string{"not base64"}},
		{"too much padding", "base64key://" + keyText + "===", []string{"not base64"}},
		{"a query", "base64key://" + keyText + "?x=1", []string{"takes no query"}},
		{"a path", "base64key://" + keyText + "/more", []string{"not base64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vault.OpenKEK(context.Background(), tc.url, vault.KEKOptions{})
			assertNoSecret(t, err, keyText[:20], keyText[20:], base64.StdEncoding.EncodeToString(key)[:20])
			for _, w := range append(tc.want, "base64key://REDACTED") {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error does not mention %q: %v", w, err)
				}
			}
		})
	}
}

func TestOpenKEKBadKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := vault.OpenKEK(context.Background(), path, vault.KEKOptions{Create: true})
	if err == nil || !strings.Contains(err.Error(), "file://"+path) || !strings.Contains(err.Error(), "keygate's format") {
		t.Fatalf("a malformed key file: %v", err)
	}
}

func TestKeeperKEKWrongKeyIsTampered(t *testing.T) {
	a, _ := randomKeyURL(t)
	other, _ := randomKeyURL(t)
	ka := mustOpen(t, a, vault.KEKOptions{})
	kb := mustOpen(t, other, vault.KEKOptions{})
	w, err := ka.KEK.Wrap(context.Background(), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	_, err = kb.KEK.Unwrap(context.Background(), w)
	if !errors.Is(err, vault.ErrTampered) || !strings.Contains(err.Error(), "cannot tell") {
		t.Fatalf("unwrap under another KMS key: %v", err)
	}
}
