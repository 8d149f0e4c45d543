package fakecloud

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Clouds is every fake running on loopback TLS servers, with credentials
// generated at run time. Client trusts all of them.
type Clouds struct {
	Client *http.Client
	CAPEM  []byte // the fakes' TLS certificate, PEM, for a CA file

	AWSKey aws.Credentials // a static key every AWS fake accepts
	SM     *SecretsManager
	SMURL  string
	STS    *STS
	STSURL string

	Entra     *Entra
	EntraURL  string
	KeyVault  *KeyVault
	KVURL     string
	GoogleKey *rsa.PrivateKey
	SAJSON    []byte // a service-account key file for sa@PROJECT, token_uri the fake
	Google    *GoogleToken
	GCPSM     *SecretManager
	GCPSMURL  string
	Vault     *HCVault
	VaultURL  string
}

// GCPProject is the project the fake service account belongs to.
const GCPProject = "keygate-test"

// Start runs every fake until the test ends.
func Start(t testing.TB) *Clouds {
	t.Helper()
	c := &Clouds{}
	c.AWSKey = aws.Credentials{AccessKeyID: "AKIAFAKE" + strings.ToUpper(randomID()[:12]), SecretAccessKey: "fake-secret-" + randomID()}
	c.SM = &SecretsManager{}
	c.SM.Keys.Add(c.AWSKey)
	c.STS = &STS{Issue: &c.SM.Keys}
	c.STS.Keys.Add(c.AWSKey)
	c.SMURL = serve(t, c.SM)
	c.STSURL = serve(t, c.STS)

	c.Entra = &Entra{TenantID: "fake-tenant", ClientID: "fake-client-" + randomID()[:8], ClientSecret: "fake-secret-" + randomID()}
	c.EntraURL = serve(t, c.Entra)
	c.Entra.URL = c.EntraURL
	c.KeyVault = &KeyVault{Entra: c.Entra}
	c.KVURL = serve(t, c.KeyVault)
	c.KeyVault.URL = c.KVURL

	c.Google = &GoogleToken{}
	gurl := serve(t, c.Google)
	c.Google.URL = gurl + "/token"
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c.GoogleKey = key
	c.SAJSON = c.Google.ServiceAccountJSON("keygate@"+GCPProject+".iam.gserviceaccount.com", GCPProject, key)
	c.GCPSM = &SecretManager{Token: c.Google}
	c.GCPSMURL = serve(t, c.GCPSM)

	c.Vault = &HCVault{Token: "hvs.fake" + randomID()}
	c.VaultURL = serve(t, c.Vault)

	srv := httptest.NewTLSServer(http.NotFoundHandler())
	c.Client = srv.Client()
	c.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	srv.Close()
	return c
}

func serve(t testing.TB, h http.Handler) string {
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
