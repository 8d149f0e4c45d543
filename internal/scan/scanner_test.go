package scan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/keygate/keygate/internal/scan"
	"github.com/keygate/keygate/internal/scan/scantest"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newScanner(t *testing.T, o scan.Options) *scan.Scanner {
	t.Helper()
	s, err := scan.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func collect(t *testing.T, f func(emit func(scan.Finding)) (scan.Stats, error)) ([]scan.Finding, scan.Stats) {
	t.Helper()
	var out []scan.Finding
	st, err := f(func(fd scan.Finding) { out = append(out, fd) })
	if err != nil {
		t.Fatal(err)
	}
	scan.Sort(out)
	return out, st
}

// TestScanPaths scans a directory tree: planted keys are found with their
// line and column; binary, oversized and .git files are skipped; inline
// keygate:allow, the allow-list and a baseline take findings out.
func TestScanPaths(t *testing.T) {
	g := scantest.NewGen(11)
	dir := t.TempDir()
	gh := g.CRC32Token("ghp_")
	kg := g.KeygateKey("live")
	aws := g.Positive("aws-access-key-id").Secret
	write(t, dir, "app/config.py", "import os\n\nGITHUB_TOKEN = \""+gh+"\"\n")
	write(t, dir, "app/.env", "KEYGATE_KEY="+kg+"\n")
	write(t, dir, "docs/allowed.md", "token: "+g.CRC32Token("ghp_")+" # keygate:allow\n")
	write(t, dir, "fixtures/keys.txt", aws+"\n")
	write(t, dir, "image.bin", "\x00\x01"+g.CRC32Token("ghp_"))
	write(t, dir, ".git/config", g.CRC32Token("ghp_"))
	write(t, dir, "big.txt", strings.Repeat("a", 2048)+g.CRC32Token("ghp_"))

	s := newScanner(t, scan.Options{Root: dir, MaxFileSize: 1024})
	got, st := collect(t, func(e func(scan.Finding)) (scan.Stats, error) {
		return s.ScanPaths(context.Background(), []string{dir}, e)
	})
	if len(got) != 3 {
		t.Fatalf("want 3 findings (config.py, .env, keys.txt), got %d: %+v", len(got), got)
	}
	f := got[1]
	if f.File != "app/config.py" || f.Line != 3 || f.Column != 17 || f.RuleID != "github-pat" || f.EndColumn != 16+len(gh) {
		t.Fatalf("finding: %+v", f)
	}
	if got[0].RuleID != "keygate-api-key" || !got[0].Keygate || got[2].RuleID != "aws-access-key-id" {
		t.Fatalf("findings: %+v", got)
	}
	if st.Skipped != 2 || st.Files != 4 || st.Allowed != 1 {
		t.Fatalf("stats: %+v (want 4 files, 2 skipped: binary and too large; 1 allowed inline)", st)
	}

	allow := filepath.Join(dir, "allow.yaml")
	write(t, dir, "allow.yaml", "paths: [\"fixtures/**\"]\nrules: [keygate-api-key]\n")
	al, err := scan.LoadAllowList(allow)
	if err != nil {
		t.Fatal(err)
	}
	var base bytes.Buffer
	if err := scan.WriteReport(&base, scan.FormatJSON, scan.Report{Findings: got[1:2]}); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "baseline.json", base.String())
	bl, err := scan.LoadBaseline(filepath.Join(dir, "baseline.json"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "app/new.go", "var key = \""+gh+"\"\n") // the baselined secret, in a new file: new
	s = newScanner(t, scan.Options{Root: dir, Allow: al, Baseline: bl})
	got, _ = collect(t, func(e func(scan.Finding)) (scan.Stats, error) {
		return s.ScanPaths(context.Background(), []string{dir}, e)
	})
	if len(got) != 1 || got[0].File != "app/new.go" {
		t.Fatalf("with allow-list and baseline, want only app/new.go: %+v", got)
	}

	if _, err := scan.LoadAllowList(filepath.Join(dir, "app/config.py")); err == nil {
		t.Fatal("a file that is not an allow-list was accepted")
	}
}

// TestOutputNeverPrintsTheSecret writes every format and looks for the
// secret.
func TestOutputNeverPrintsTheSecret(t *testing.T) {
	g := scantest.NewGen(12)
	sec := g.Positive("openai-project-key").Secret
	s := newScanner(t, scan.Options{})
	got, st := collect(t, func(e func(scan.Finding)) (scan.Stats, error) {
		return s.ScanReader(context.Background(), "-", strings.NewReader("OPENAI_API_KEY="+sec+"\n"), e)
	})
	if len(got) != 1 || got[0].File != "-" || got[0].Secret.Reveal() != sec {
		t.Fatalf("stdin: %+v", got)
	}
	for _, format := range []string{"text", "json", "sarif"} {
		var b bytes.Buffer
		if err := scan.WriteReport(&b, format, scan.Report{Findings: got, Stats: st, Rules: s.Matcher().Rules()}); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), sec) || strings.Contains(b.String(), sec[8:30]) {
			t.Fatalf("%s output holds the secret:\n%s", format, b.String())
		}
		if !strings.Contains(b.String(), "openai-project-key") {
			t.Fatalf("%s output does not name the rule:\n%s", format, b.String())
		}
	}
}

// TestSARIFValidates checks the SARIF output against the SARIF 2.1.0 JSON
// schema (testdata/sarif-schema-2.1.0.json, the OASIS schema), with file
// locations as relative URIs.
func TestSARIFValidates(t *testing.T) {
	g := scantest.NewGen(13)
	dir := t.TempDir()
	write(t, dir, "dir with space/conf ig.env", "A_TOKEN="+g.CRC32Token("ghp_")+"\nSTRIPE="+g.Positive("stripe-secret-key").Secret+"\n")
	write(t, dir, "b.pem", g.Positive("private-key-ec").Secret+"\n")
	s := newScanner(t, scan.Options{Root: dir})
	got, st := collect(t, func(e func(scan.Finding)) (scan.Stats, error) {
		return s.ScanPaths(context.Background(), []string{dir}, e)
	})
	if len(got) != 3 {
		t.Fatalf("findings: %+v", got)
	}
	got[0].Commit, got[0].Author, got[0].Email = "0123456789abcdef0123456789abcdef01234567", "A", "a@example.com"
	var out bytes.Buffer
	if err := scan.WriteReport(&out, scan.FormatSARIF, scan.Report{Findings: got, Stats: st, Rules: s.Matcher().Rules(), Version: "v0.0.0-test"}); err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("SARIF output does not validate: %v\n%s", err, out.String())
	}
	var log struct {
		Runs []struct {
			Results []struct {
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine, EndColumn int }
					}
				}
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	uris := map[string]bool{}
	for _, r := range log.Runs[0].Results {
		uris[r.Locations[0].PhysicalLocation.ArtifactLocation.URI] = true
	}
	if !uris["dir%20with%20space/conf%20ig.env"] || !uris["b.pem"] {
		t.Fatalf("artifact URIs must be relative and percent-encoded: %v", uris)
	}

	// A broken log must not validate: the check has teeth.
	bad := bytes.Replace(out.Bytes(), []byte(`"version": "2.1.0"`), []byte(`"version": "2.0"`), 1)
	doc, _ = jsonschema.UnmarshalJSON(bytes.NewReader(bad))
	if sch.Validate(doc) == nil {
		t.Fatal("an invalid SARIF log validated")
	}
}

func gitCmd(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func commit(t *testing.T, dir, msg, author, date string) string {
	env := []string{"GIT_AUTHOR_NAME=" + author, "GIT_AUTHOR_EMAIL=" + strings.ToLower(strings.Fields(author)[0]) + "@example.com",
		"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_NAME=ci", "GIT_COMMITTER_EMAIL=ci@example.com", "GIT_COMMITTER_DATE=" + date}
	gitCmd(t, dir, env, "add", "-A")
	gitCmd(t, dir, env, "commit", "-q", "-m", msg)
	return gitCmd(t, dir, nil, "rev-parse", "HEAD")
}

// TestScanGitHistory plants keys in commits, deletes one later and copies
// another: every secret is found once, with the commit that added it, its
// author and date, and every blob is read once.
func TestScanGitHistory(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	g := scantest.NewGen(14)
	dir := t.TempDir()
	gitCmd(t, dir, nil, "init", "-q", "-b", "main")
	gh := g.CRC32Token("ghp_")
	write(t, dir, "src/app.py", "TOKEN = \""+gh+"\"\n")
	write(t, dir, "README.md", "hello\n")
	first := commit(t, dir, "add app", "Ada Lovelace", "2024-03-01T10:00:00Z")
	write(t, dir, "src/app.py", "TOKEN = os.environ['TOKEN']\n") // the key is removed, but stays in history
	write(t, dir, "copy/app.py", "TOKEN = \""+gh+"\"\n")         // the same blob at another path
	commit(t, dir, "remove key", "Grace Hopper", "2024-03-02T10:00:00Z")
	gitCmd(t, dir, nil, "checkout", "-q", "-b", "feature")
	sk := g.Positive("stripe-secret-key").Secret
	write(t, dir, "pay.env", "STRIPE_KEY="+sk+"\n")
	third := commit(t, dir, "pay", "Alan Turing", "2024-03-03T10:00:00Z")
	gitCmd(t, dir, nil, "checkout", "-q", "main") // the feature branch is still scanned

	s := newScanner(t, scan.Options{Root: dir})
	got, st := collect(t, func(e func(scan.Finding)) (scan.Stats, error) {
		return s.ScanGit(context.Background(), dir, e)
	})
	if len(got) != 2 {
		t.Fatalf("want 2 findings, got %+v", got)
	}
	byRule := map[string]scan.Finding{}
	for _, f := range got {
		byRule[f.RuleID] = f
	}
	f := byRule["github-pat"]
	if f.Commit != first || f.Author != "Ada Lovelace" || f.Email != "ada@example.com" || f.Date.Format("2006-01-02") != "2024-03-01" || f.File != "src/app.py" || f.Line != 1 {
		t.Fatalf("github finding: %+v", f)
	}
	if f := byRule["stripe-secret-key"]; f.Commit != third || f.Author != "Alan Turing" {
		t.Fatalf("stripe finding: %+v", f)
	}
	// Blobs: app.py v1 (= copy/app.py), README.md, app.py v2, pay.env.
	if st.Files != 4 {
		t.Fatalf("%d blobs scanned; each of the 4 distinct blobs must be scanned once", st.Files)
	}
}

// TestScanStaged reports what the next commit adds, not what the
// repository already held.
func TestScanStaged(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	g := scantest.NewGen(15)
	dir := t.TempDir()
	gitCmd(t, dir, nil, "init", "-q", "-b", "main")
	old := g.CRC32Token("ghp_")
	write(t, dir, "a.env", "OLD="+old+"\n")
	commit(t, dir, "old", "Ada Lovelace", "2024-03-01T10:00:00Z")
	fresh := g.Positive("slack-bot-token").Secret
	write(t, dir, "a.env", "OLD="+old+"\nNEW="+fresh+"\n")
	write(t, dir, "b.py", "x = 1\n")
	unstaged := g.CRC32Token("ghp_")
	gitCmd(t, dir, nil, "add", "a.env", "b.py")
	write(t, dir, "c.py", "T = '"+unstaged+"'\n") // not staged: not part of the commit

	s := newScanner(t, scan.Options{Root: dir})
	got, _ := collect(t, func(e func(scan.Finding)) (scan.Stats, error) {
		return s.ScanStaged(context.Background(), dir, e)
	})
	if len(got) != 1 || got[0].RuleID != "slack-bot-token" || got[0].File != "a.env" || got[0].Line != 2 {
		t.Fatalf("staged scan: %+v", got)
	}
}
