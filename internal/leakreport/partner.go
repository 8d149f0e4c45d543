package leakreport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// GitHub's secret scanning partner program: where it publishes its keys,
// and the headers that carry a report's key identifier and signature.
const (
	GitHubKeysURL         = "https://api.github.com/meta/public_keys/secret_scanning"
	GitHubKeyIDHeader     = "Github-Public-Key-Identifier"
	GitHubSignatureHeader = "Github-Public-Key-Signature"
)

// PartnerOptions configure a PartnerHandler.
type PartnerOptions struct {
	// Responder acts on each reported token. Required.
	Responder *Responder
	// KeysURL is where the reporter publishes its public keys, as
	// {"public_keys":[{"key_identifier":..., "key": PEM, "is_current": bool}]}.
	// Empty means GitHubKeysURL.
	KeysURL string
	// KeysToken, if set, is sent as a bearer token when fetching the keys
	// (GitHub rate-limits anonymous requests).
	KeysToken secret.String
	// Client fetches the keys; nil means a client with a 10-second timeout.
	// Give it keygate's egress policy.
	Client *http.Client
	// Reporter names the reporter in alerts and audit events; empty means
	// "github".
	Reporter string
	// KeyIDHeader and SignatureHeader name the request headers; empty
	// means GitHub's.
	KeyIDHeader, SignatureHeader string
	// KeysTTL is how long fetched keys are used before they are fetched
	// again (1 hour when zero). A report signed by a key not in the cache
	// makes the handler fetch the keys at once, at most once a
	// RefetchEvery (1 minute when zero).
	KeysTTL, RefetchEvery time.Duration
	// MaxBody (1 MiB when zero) and MaxTokens (1000 when zero) bound a
	// report.
	MaxBody   int64
	MaxTokens int
	Log       *slog.Logger
	Now       func() time.Time
}

// PartnerHandler receives leak reports in the format of GitHub's secret
// scanning partner program: a POSTed JSON list of found tokens, signed
// with ECDSA P-256 over SHA-256 of the raw body (the signature in base64
// DER in one header, the signing key's identifier in another), the keys
// published at the reporter's key URL. A report whose signature does not
// verify changes nothing and is answered 401. A verified one is acted on
// token by token and answered with GitHub's feedback format: for each token
// its SHA-256 in hex, its type, and "true_positive" or "false_positive".
// The handler is meant to be mounted on the gateway listener (the reporter
// must reach it); it needs no keygate credential, only the signature.
type PartnerHandler struct {
	o PartnerOptions

	mu        sync.Mutex
	keys      map[string]*ecdsa.PublicKey
	fetchedAt time.Time
	triedAt   time.Time
}

// NewPartnerHandler checks o and returns the handler.
func NewPartnerHandler(o PartnerOptions) (*PartnerHandler, error) {
	if o.Responder == nil || o.Responder.Store == nil || o.Responder.Hasher == nil {
		return nil, errors.New("leakreport: the partner endpoint needs a Responder with a Store and a Hasher")
	}
	if o.KeysURL == "" {
		o.KeysURL = GitHubKeysURL
	}
	if !strings.HasPrefix(o.KeysURL, "https://") && !strings.HasPrefix(o.KeysURL, "http://") {
		return nil, fmt.Errorf("leakreport: keys URL %q must be an http(s) URL, such as %s", o.KeysURL, GitHubKeysURL)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Reporter == "" {
		o.Reporter = "github"
	}
	if o.KeyIDHeader == "" {
		o.KeyIDHeader = GitHubKeyIDHeader
	}
	if o.SignatureHeader == "" {
		o.SignatureHeader = GitHubSignatureHeader
	}
	if o.KeysTTL <= 0 {
		o.KeysTTL = time.Hour
	}
	if o.RefetchEvery <= 0 {
		o.RefetchEvery = time.Minute
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 1000
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &PartnerHandler{o: o}, nil
}

// reportedToken is one element of a report.
type reportedToken struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// Feedback is one element of the answer: GitHub's false-positive feedback
// format, with the token hashed.
type Feedback struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"` // "true_positive" or "false_positive"
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ServeHTTP verifies and acts on one report.
func (h *PartnerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		httpError(w, http.StatusMethodNotAllowed, "POST a signed report")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.o.MaxBody+1))
	if err != nil {
		httpError(w, http.StatusBadRequest, "could not read the report")
		return
	}
	if int64(len(body)) > h.o.MaxBody {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a report is at most %d bytes; send fewer tokens at once", h.o.MaxBody))
		return
	}
	kid := strings.TrimSpace(r.Header.Get(h.o.KeyIDHeader))
	sig := strings.TrimSpace(r.Header.Get(h.o.SignatureHeader))
	if kid == "" || sig == "" {
		h.o.Log.Warn("leak report refused: unsigned", "remote", r.RemoteAddr)
		httpError(w, http.StatusUnauthorized, "the report must be signed: send "+h.o.KeyIDHeader+" and "+h.o.SignatureHeader)
		return
	}
	if err := h.verify(r.Context(), kid, sig, body); err != nil {
		h.o.Log.Warn("leak report refused: bad signature", "remote", r.RemoteAddr, "key_identifier", kid, "err", err)
		httpError(w, http.StatusUnauthorized, "the signature does not verify against the reporter's published keys")
		return
	}
	var toks []reportedToken
	if err := json.Unmarshal(body, &toks); err != nil {
		httpError(w, http.StatusBadRequest, "the report must be a JSON list of {token, type, url, source}")
		return
	}
	if len(toks) > h.o.MaxTokens {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a report holds at most %d tokens", h.o.MaxTokens))
		return
	}
	out := make([]Feedback, 0, len(toks))
	for _, t := range toks {
		res, err := h.o.Responder.Handle(r.Context(), Report{Token: secret.New(t.Token), Type: t.Type, URL: t.URL, Source: t.Source, Reporter: h.o.Reporter})
		if err != nil {
			h.o.Log.Error("a leak report could not be acted on; the reporter will retry", "err", err)
			httpError(w, http.StatusServiceUnavailable, "keygate could not act on the report; try again")
			return
		}
		sum := sha256.Sum256([]byte(t.Token))
		label := "false_positive"
		if res.TruePositive {
			label = "true_positive"
		}
		out = append(out, Feedback{TokenHash: hex.EncodeToString(sum[:]), TokenType: t.Type, Label: label})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// verify checks an ECDSA P-256 SHA-256 signature (base64 of ASN.1 DER)
// over body with the reporter's key kid.
func (h *PartnerHandler) verify(ctx context.Context, kid, sig string, body []byte) error {
	der, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return errors.New("the signature is not base64")
	}
	pub, err := h.key(ctx, kid)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, digest[:], der) {
		return errors.New("the signature does not match the body")
	}
	return nil
}

// key returns the reporter's public key kid, fetching the published keys
// when the cache is stale or does not have it (at most once a
// RefetchEvery).
func (h *PartnerHandler) key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.o.Now()
	k, ok := h.keys[kid]
	stale := now.Sub(h.fetchedAt) > h.o.KeysTTL
	if ok && !stale {
		return k, nil
	}
	if !h.triedAt.IsZero() && now.Sub(h.triedAt) < h.o.RefetchEvery {
		// Fetched a moment ago: a report naming a key the reporter did not
		// publish then does not make keygate fetch again.
		if ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown key identifier %q", kid)
	}
	h.triedAt = now
	keys, err := h.fetch(ctx)
	if err != nil {
		if ok {
			return k, nil // keep using a known key while the reporter is unreachable
		}
		return nil, err
	}
	h.keys, h.fetchedAt = keys, now
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown key identifier %q", kid)
}

// fetch reads the reporter's published keys.
func (h *PartnerHandler) fetch(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.o.KeysURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if !h.o.KeysToken.IsZero() {
		req.Header.Set("Authorization", "Bearer "+h.o.KeysToken.Reveal())
	}
	resp, err := h.o.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the reporter's keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the reporter's keys: %s answered %d", h.o.KeysURL, resp.StatusCode)
	}
	var doc struct {
		PublicKeys []struct {
			KeyIdentifier string `json:"key_identifier"`
			Key           string `json:"key"`
			IsCurrent     bool   `json:"is_current"`
		} `json:"public_keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("the reporter's keys at %s are not {\"public_keys\":[...]}: %w", h.o.KeysURL, err)
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, pk := range doc.PublicKeys {
		block, _ := pem.Decode([]byte(pk.Key))
		if block == nil {
			continue
		}
		parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			continue
		}
		if ec, ok := parsed.(*ecdsa.PublicKey); ok && ec.Curve == elliptic.P256() && pk.KeyIdentifier != "" {
			keys[pk.KeyIdentifier] = ec
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("the reporter's keys at %s hold no ECDSA P-256 key", h.o.KeysURL)
	}
	h.o.Log.Info("fetched the leak reporter's public keys", "url", h.o.KeysURL, "keys", len(keys))
	return keys, nil
}

// newID returns a random alert identifier.
func newID() string { return rand.Text() }
