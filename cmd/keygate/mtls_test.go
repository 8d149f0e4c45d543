package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// testCA makes a client-certificate CA and two client certificates at run
// time: one for the agent's SPIFFE ID and one for another workload.
func testCA(t *testing.T) (caFile string, agent, other tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keygate test client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	caFile = filepath.Join(t.TempDir(), "client-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, spiffe string) tls.Certificate {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		u, _ := url.Parse(spiffe)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "workload"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	return caFile, leaf(2, "spiffe://keygate.test/agent"), leaf(3, "spiffe://keygate.test/other")
}

// TestMutualTLSAndBoundTokens: a key that requires a client certificate
// works only over mutual TLS with that certificate, and a token minted over
// such a connection is bound to it (RFC 8705): a stolen copy is useless
// without the certificate's private key.
func TestMutualTLSAndBoundTokens(t *testing.T) {
	caFile, agent, other := testCA(t)
	cfg := testConfig(t, t.TempDir())
	cfg.TLS.SelfSigned = true
	cfg.TLS.ClientCA = caFile
	in := start(t, cfg, "")
	certPath := filepath.Join(cfg.DataDir, "tls", "self-signed.crt")
	env := map[string]string{"KEYGATE_ADMIN_CA": certPath}
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.mustCLI(map[string]string{"KEYGATE_ADMIN_CA": certPath, "K": up.openaiKey}, "",
		"provider", "add", "openai", "--base-url", up.openaiURL, "--api-key-env", "K", "--models", "gpt-*")
	out := in.mustCLI(env, "", "--json", "key", "create", "--name", "workload")
	var created struct {
		Secret string `json:"secret"`
	}
	decodeJSON(t, out, &created)
	key := created.Secret
	in.mustCLI(env, "", "key", "update", "workload", "--client-cert", "uri:spiffe://keygate.test/agent")

	pemBytes, _ := os.ReadFile(certPath)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}
	call := func(c *http.Client, bearer string) int {
		req, _ := http.NewRequest("POST", in.addrs.Gateway+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[]}`))
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := call(client(), key); c != 401 {
		t.Fatalf("without a client certificate: %d", c)
	}
	if c := call(client(other), key); c != 401 {
		t.Fatalf("with another workload's certificate: %d", c)
	}
	if c := call(client(agent), key); c != 200 {
		t.Fatalf("with the agent's certificate: %d", c)
	}

	// Exchange over mutual TLS: the token is bound to the agent's certificate.
	form := url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}}
	resp, err := client(agent).PostForm(in.addrs.Gateway+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok tokenAnswer
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.AccessToken == "" {
		t.Fatalf("exchange over mutual TLS: %d %+v", resp.StatusCode, tok)
	}
	if c := call(client(agent), tok.AccessToken); c != 200 {
		t.Fatalf("the bound token with its certificate: %d", c)
	}
	if c := call(client(other), tok.AccessToken); c != 401 {
		t.Fatalf("the bound token with another certificate: %d", c)
	}
	if c := call(client(), tok.AccessToken); c != 401 {
		t.Fatalf("the bound token without a certificate: %d", c)
	}
	// The key cannot be exchanged without its certificate either.
	resp, err = client().PostForm(in.addrs.Gateway+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("exchange without the certificate: %d", resp.StatusCode)
	}
}
