package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadEnvFiles parses dotenv files the way keygate run reads them, and
// names the file and line of a bad one without repeating its values.
func TestReadEnvFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ".env")
	os.WriteFile(p, []byte("# comment\n\nexport A=1\nB = \"two words\\n\"\nC='keygate://secret/x/y'\nD=plain # trailing comment\n"), 0o600)
	vs, err := readEnvFiles([]string{p})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range vs {
		got[v.name] = v.value
	}
	if got["A"] != "1" || got["B"] != "two words\n" || got["C"] != "keygate://secret/x/y" || got["D"] != "plain" || len(got) != 4 {
		t.Fatalf("parsed %q", got)
	}
	if hasProviderRef(vs) || !hasProviderRef([]envFileVar{{value: refProvider + "openai"}}) {
		t.Fatal("hasProviderRef")
	}
	os.WriteFile(p, []byte("OK=1\nnot a line s3cr3t-value\n"), 0o600)
	_, err = readEnvFiles([]string{p})
	if err == nil || !strings.Contains(err.Error(), ".env:2") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("bad line: %v", err)
	}
}
