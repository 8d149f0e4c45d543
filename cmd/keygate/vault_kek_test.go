package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// keyForms is every way a KEK's key could be written into a database: raw,
// base64 in both alphabets with and without padding, and hex.
func keyForms(t *testing.T, kekURL string) [][]byte {
	t.Helper()
	key, err := base64.URLEncoding.DecodeString(strings.TrimPrefix(kekURL, "base64key://"))
	if err != nil || len(key) != 32 {
		t.Fatalf("test KEK URL: %v", err)
	}
	forms := [][]byte{key, []byte(hex.EncodeToString(key))}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		forms = append(forms, []byte(enc.EncodeToString(key)))
	}
	return forms
}

// databaseBytes returns everything keygate's database holds: for SQLite
// the raw bytes of every file in the data directory (database, WAL, shared
// memory), for PostgreSQL every value of every row of every table in its
// schema.
func databaseBytes(t *testing.T, cfg config.Config) []byte {
	t.Helper()
	if !strings.HasPrefix(cfg.Database, "postgres") {
		return filesUnder(t, cfg.DataDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 10 {
		t.Fatalf("tables in the test schema: %v, %v", tables, err)
	}
	var all bytes.Buffer
	for _, table := range tables {
		rows, err := conn.Query(ctx, "SELECT * FROM "+pgx.Identifier{table}.Sanitize())
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					all.Write(b)
				} else {
					fmt.Fprint(&all, v)
				}
				all.WriteByte(0)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return all.Bytes()
}

// assertKEKOpensNothing opens keygate's database with only the KEK at
// kekURL, allowed to open any KEK URL it finds in the database, as someone
// holding a leaked copy of that key and of the database could, and fails if
// it opens any stored version.
func assertKEKOpensNothing(t *testing.T, cfg config.Config, kekURL string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, cfg.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	open := func(ctx context.Context, url string) (vault.KEK, error) {
		o, err := vault.OpenKEK(ctx, url, vault.KEKOptions{Registry: st})
		return o.KEK, err
	}
	old, err := open(ctx, kekURL)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := st.ExportSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.SecretVersions) < 5 {
		t.Fatalf("only %d versions stored", len(snap.SecretVersions))
	}
	v := vault.New(old, st, vault.WithKEKOpener(open))
	for _, sv := range snap.SecretVersions {
		if pt, err := v.Open(ctx, sv); err == nil {
			clear(pt)
			t.Fatalf("the old KEK alone opened %s version %d (wrapped by %s)", sv.ID, sv.Version, sv.KEKID)
		}
	}
}

// TestKEKRotationProtectsAgainstALeakedOldKey: after `vault rotate-kek`
// away from the master key file has finished, that file (say, leaked) and
// a copy of the database open nothing: keygate will not start with it, the
// key alone opens no stored version, and the new KEK's key is nowhere in
// the database. With the new KEK configured, everything works, on SQLite
// and PostgreSQL.
func TestKEKRotationProtectsAgainstALeakedOldKey(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Database = db(t)
			in := start(t, cfg, "")
			up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
			in.register(up)
			values := map[string]string{}
			for i := range 4 {
				name, v := fmt.Sprintf("team/s%d", i), canary(fmt.Sprintf("s%d", i))
				in.mustCLI(map[string]string{"V": v}, "", "secret", "put", name, "--from-env", "V")
				values[name] = v
			}
			key := in.createKey("--name", "app")
			var before adminapi.VaultStatus
			decodeJSON(t, in.mustCLI(nil, "", "--json", "vault", "status"), &before)
			oldID, oldURL := before.KEKID, "file://"+cfg.MasterKeyPath()

			newURL := randomKeyURL(t)
			in.mustCLI(map[string]string{"NEW_KEK": newURL}, "", "vault", "rotate-kek", "--to-env", "NEW_KEK", "--wait")
			after := in.waitRotation()
			newID := after.KEKID
			status := in.mustCLI(nil, "", "vault", "status")
			if want := "Old KEK " + oldID + " (file, " + oldURL + "): opens nothing; it can be destroyed"; !strings.Contains(status, want) {
				t.Fatalf("vault status lacks %q:\n%s", want, status)
			}
			in.stop()

			data := databaseBytes(t, cfg)
			for _, f := range keyForms(t, newURL) {
				if bytes.Contains(data, f) {
					t.Fatalf("the new KEK's key is in the %s database", name)
				}
			}

			// Only the old key file: keygate refuses, naming the KEK it needs.
			var out, errb strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := serveOnce(ctx, cfg, &out, &errb)
			cancel()
			if err == nil || !strings.Contains(err.Error(), "needs KEK "+newID) || !strings.Contains(err.Error(), "point kek") {
				t.Fatalf("keygate with only the old KEK: %v", err)
			}
			assertKEKOpensNothing(t, cfg, oldURL)

			// The new KEK configured (written unpadded, as the README shows).
			cfg.KEK = strings.TrimRight(newURL, "=")
			b := start(t, cfg, in.admin)
			for name, v := range values {
				if got := strings.TrimSpace(b.mustCLI(nil, "", "secret", "get", name)); got != v {
					t.Fatalf("%s does not open with the new KEK", name)
				}
			}
			if code, body := postJSON(t, b.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`); code != 200 {
				t.Fatalf("the gateway with the new KEK: %d %s", code, body)
			}
			status = b.mustCLI(nil, "", "vault", "status")
			if !strings.Contains(status, "Current KEK "+newID+" (kms, base64key://REDACTED)") || !strings.Contains(status, "Old KEK "+oldID) {
				t.Fatalf("vault status after the restart:\n%s", status)
			}
			if strings.Contains(in.stderr.String()+b.stderr.String()+errb.String()+err.Error(), strings.TrimPrefix(newURL, "base64key://")[:20]) {
				t.Fatal("the new KEK's key reached keygate's output")
			}
		})
	}
}

// TestUpgradeDeletesAStoredKEKKey: a database from an older keygate holds
// the new KEK's base64key:// URL, key included, sealed under the old KEK.
// Started with the old KEK, keygate still opens the vault (an upgrade
// locks no one out) but says the old KEK opens it; started with the new
// KEK configured, it deletes the stored key, and the old KEK opens nothing.
func TestUpgradeDeletesAStoredKEKKey(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Database = db(t)
			in := start(t, cfg, "")
			value := canary("upgraded")
			in.mustCLI(map[string]string{"V": value}, "", "secret", "put", "team/db", "--from-env", "V")
			for i := range 4 {
				in.mustCLI(map[string]string{"V": canary("filler")}, "", "secret", "put", fmt.Sprintf("team/f%d", i), "--from-env", "V")
			}
			oldURL, newURL := "file://"+cfg.MasterKeyPath(), randomKeyURL(t)
			in.mustCLI(map[string]string{"NEW_KEK": newURL}, "", "vault", "rotate-kek", "--to-env", "NEW_KEK", "--wait")
			newID := in.waitRotation().KEKID
			in.stop()

			// What an older keygate wrote: the new KEK's URL sealed under the old.
			ctx := context.Background()
			st, err := store.Open(ctx, cfg.DatabaseURL())
			if err != nil {
				t.Fatal(err)
			}
			old, err := vault.OpenKEK(ctx, oldURL, vault.KEKOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sv, err := vault.SealVersion(ctx, old.KEK, "system/kek-url/"+newID, 1, []byte(newURL))
			if err != nil {
				t.Fatal(err)
			}
			sv.CreatedAt = time.Now().UTC()
			if err := st.PutSecretVersion(ctx, sv); err != nil {
				t.Fatal(err)
			}
			st.Close()

			// With only the old KEK: keygate opens the vault through the
			// stored key, warns, and the status says the old KEK opens it.
			a := start(t, cfg, in.admin)
			if got := strings.TrimSpace(a.mustCLI(nil, "", "secret", "get", "team/db")); got != value {
				t.Fatal("the upgraded keygate does not open the vault")
			}
			status := a.mustCLI(nil, "", "vault", "status")
			if !strings.Contains(status, "still opens 1 record (1 stored key of a newer KEK, written by an older keygate") {
				t.Fatalf("vault status with a stored key:\n%s", status)
			}
			a.stop() // flushes the log
			if !strings.Contains(a.stderr.String(), "holds the key of KEK "+newID) {
				t.Fatalf("no warning about the stored key:\n%s", a.stderr.String())
			}

			// With the new KEK configured, the stored key is deleted at start.
			cfg.KEK = newURL
			b := start(t, cfg, in.admin)
			if got := strings.TrimSpace(b.mustCLI(nil, "", "secret", "get", "team/db")); got != value {
				t.Fatal("the secret does not open with the new KEK")
			}
			status = b.mustCLI(nil, "", "vault", "status")
			if !strings.Contains(status, ": opens nothing; it can be destroyed") {
				t.Fatalf("vault status after the stored key was deleted:\n%s", status)
			}
			b.stop()
			st, err = store.Open(ctx, cfg.DatabaseURL())
			if err != nil {
				t.Fatal(err)
			}
			left, err := st.ListSecretVersions(ctx, "system/kek-url/"+newID)
			st.Close()
			if err != nil || len(left) != 0 {
				t.Fatalf("%d stored keys left (%v)", len(left), err)
			}
			cfg.KEK = ""
			assertKEKOpensNothing(t, cfg, oldURL)
		})
	}
}

// runProc runs keygate as a separate process that is expected to exit by
// itself, and returns its output and exit error.
func runProc(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	a, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KEYGATE_TEST_MAIN="+string(a), "HOME="+t.TempDir())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
