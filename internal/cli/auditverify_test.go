package cli

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParsePublicKey: the pinned key is taken as hex (what keygate audit
// public-key prints), base64 or PEM, given inline or as a file; anything
// else is refused with a message that says what to give.
func TestParsePublicKey(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.pub")
	os.WriteFile(file, []byte(hex.EncodeToString(pub)+"\n"), 0o600)
	pemFile := filepath.Join(dir, "audit.pem")
	os.WriteFile(pemFile, []byte(pemText), 0o600)
	for name, in := range map[string]string{
		"hex": hex.EncodeToString(pub), "base64": base64.StdEncoding.EncodeToString(pub),
		"raw url base64": base64.RawURLEncoding.EncodeToString(pub), "pem": pemText,
		"hex file": file, "pem file": pemFile,
	} {
		got, err := parsePublicKey(in)
		if err != nil || !got.Equal(pub) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, in := range map[string]string{
		"short hex": hex.EncodeToString(pub[:31]), "missing file": filepath.Join(dir, "nope.pub"), "empty": "",
	} {
		if _, err := parsePublicKey(in); err == nil || !strings.Contains(err.Error(), "keygate audit public-key") {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
