// Package workload verifies the OIDC identity tokens workloads present
// instead of a keygate key (a GitHub Actions or GitLab CI job, a
// Kubernetes pod's service-account token, a cloud workload identity) and
// decides, by the trust policies in keygate's configuration, what each is
// worth: the keygate key its tokens stand for and the scope they carry.
// Nothing else passes.
//
// A token is checked in this order, each step refusing with a reason the
// caller may read (a *Refusal) and changing nothing:
//
//  1. its shape: a signed JWT of at most 16 KiB whose algorithm is
//     asymmetric ("none" and HMAC are refused before anything else);
//  2. its issuer must be one a policy names, exactly: keygate never
//     fetches anything from an issuer it was not told to trust;
//  3. its audience must hold a policy's audience for that issuer, and it
//     must not have expired: both read before any key is fetched;
//  4. go-oidc (github.com/coreos/go-oidc/v3) verifies it against the
//     issuer's published keys, found through discovery and cached, read
//     again when the issuer rotates: signature, issuer, audience, expiry
//     and not-before;
//  5. the first policy whose subject and claim patterns it satisfies, and
//     whose scope template its claims can fill, decides;
//  6. a token carrying a jti is exchanged once: a replay within its life
//     is refused (ReplayGuard, shared by every node through the store).
//
// An issuer that cannot be reached is not a refusal: Verify returns an
// error matching ErrUnavailable, and the caller may try again.
package workload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// maxTokenSize bounds the identity tokens Verify reads, in bytes.
const maxTokenSize = 16 << 10

// Defaults for Options.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultRefreshInterval = 10 * time.Second
)

// ErrUnavailable matches the error of a token that could not be checked
// because its issuer's keys could not be read.
var ErrUnavailable = errors.New("workload: the issuer's keys cannot be read right now")

// Policy is one trust policy (config.TrustPolicy).
type Policy struct {
	Name     string
	Issuer   string              // the token's iss, exactly
	Audience string              // must be in the token's aud
	Subject  string              // a Match pattern for sub; "" any
	Claims   map[string][]string // claim name or path -> Match patterns, one of which must match
	KeyID    string              // the keygate key the tokens stand for
	Scope    string              // the tokens' scope, with ${claim} placeholders
}

// IssuerOptions tunes how an issuer's keys are read.
type IssuerOptions struct {
	JWKSURL string // read the keys here, without discovery
	CAFile  string // PEM CAs to trust for the issuer, besides the system's
}

// Options configures a Verifier.
type Options struct {
	Policies []Policy
	Issuers  map[string]IssuerOptions
	// Replay remembers exchanged tokens (default: this node's memory).
	Replay ReplayGuard
	// ValidateScope checks a scope's grammar (the gateway's); each
	// policy's template is checked with it when the Verifier is built.
	ValidateScope func(string) error
	Log           *slog.Logger
	// Timeout bounds each request to an issuer (DefaultTimeout).
	Timeout time.Duration
	// RefreshInterval is the least time between two reads of one issuer
	// URL (DefaultRefreshInterval).
	RefreshInterval time.Duration
}

// Identity is a verified workload and what its policy grants it.
type Identity struct {
	Issuer, Subject string
	Policy          string
	KeyID           string
	Scope           string    // the policy's scope, claims filled in
	Expiry          time.Time // the identity token's exp
}

// Refusal is Verify's error for a token it refuses.
type Refusal struct {
	// Code names what failed: malformed, unsupported_alg, unknown_issuer,
	// wrong_audience, expired, not_yet_valid, bad_signature, no_policy or
	// replayed.
	Code string
	// Reason says what failed, for the caller; it never quotes the token.
	Reason string
	// Issuer and Subject are what the token claims (unverified unless
	// the refusal came after verification), at most 256 bytes each.
	Issuer, Subject string
	detail          error
}

// Error returns the reason.
func (r *Refusal) Error() string { return r.Reason }

// Unwrap returns what go-oidc said, for logs.
func (r *Refusal) Unwrap() error { return r.detail }

// PolicyError is New's error for a policy it cannot use: Index is the
// policy's place in Options.Policies, Field what is wrong with it (name,
// scope, or ca_file of its issuer's options).
type PolicyError struct {
	Index int
	Field string
	Err   error
}

// Error says which policy and what is wrong.
func (e *PolicyError) Error() string {
	return fmt.Sprintf("trust policy %d: %s: %v", e.Index, e.Field, e.Err)
}

// Unwrap returns the cause.
func (e *PolicyError) Unwrap() error { return e.Err }

// Verifier checks workload identity tokens against the trust policies. It
// is safe for concurrent use.
type Verifier struct {
	policies []policy
	issuers  map[string]*issuer
	replay   ReplayGuard
	log      *slog.Logger
}

// policy is a Policy compiled.
type policy struct {
	Policy
	claimPaths []string // Claims' keys, sorted
	scope      template
}

// New builds a Verifier. It reads nothing from the network: each issuer is
// discovered on its first token.
func New(o Options) (*Verifier, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Replay == nil {
		o.Replay = NewMemory()
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	v := &Verifier{issuers: map[string]*issuer{}, replay: o.Replay, log: o.Log}
	for i, p := range o.Policies {
		if p.Name == "" || p.Issuer == "" || p.Audience == "" || p.KeyID == "" {
			return nil, &PolicyError{Index: i, Field: "name", Err: errors.New("a trust policy needs a name, an issuer, an audience and a key")}
		}
		tpl, err := parseTemplate(p.Scope)
		if err == nil && o.ValidateScope != nil {
			err = o.ValidateScope(tpl.placeholders("x"))
		}
		if err != nil {
			return nil, &PolicyError{Index: i, Field: "scope", Err: err}
		}
		cp := policy{Policy: p, scope: tpl}
		for name := range p.Claims {
			cp.claimPaths = append(cp.claimPaths, name)
		}
		slices.Sort(cp.claimPaths)
		v.policies = append(v.policies, cp)
		if _, ok := v.issuers[p.Issuer]; !ok {
			is, err := newIssuer(p.Issuer, o.Issuers[p.Issuer], o.Timeout, o.RefreshInterval)
			if err != nil {
				return nil, &PolicyError{Index: i, Field: "ca_file", Err: err}
			}
			v.issuers[p.Issuer] = is
		}
	}
	return v, nil
}

// unverified is what Verify reads of a token before checking it.
type unverified struct {
	Issuer   string          `json:"iss"`
	Subject  string          `json:"sub"`
	Audience json.RawMessage `json:"aud"`
	Expiry   *json.Number    `json:"exp"`
}

// Verify checks raw as the package documentation says and returns the
// workload and its grant, a *Refusal, or an error matching ErrUnavailable.
func (v *Verifier) Verify(ctx context.Context, raw string, now time.Time) (Identity, error) {
	u, rf := peek(raw)
	if rf != nil {
		return Identity{}, v.refused(rf)
	}
	rf = &Refusal{Issuer: clip(u.Issuer), Subject: clip(u.Subject)}
	refuse := func(code, reason string, detail error) (Identity, error) {
		rf.Code, rf.Reason, rf.detail = code, reason, detail
		return Identity{}, v.refused(rf)
	}
	is, ok := v.issuers[u.Issuer]
	if !ok {
		return refuse("unknown_issuer", "its issuer is not one keygate trusts", nil)
	}
	aud := audiences(u.Audience)
	var candidates []*policy
	for i := range v.policies {
		if p := &v.policies[i]; p.Issuer == u.Issuer && slices.Contains(aud, p.Audience) {
			candidates = append(candidates, p)
		}
	}
	if len(candidates) == 0 {
		return refuse("wrong_audience", "its audience is not one keygate's trust policies for its issuer accept", nil)
	}
	if exp, ok := seconds(u.Expiry); !ok || !now.Before(exp) {
		return refuse("expired", "it has expired (or carries no exp)", nil)
	}
	tok, err := is.verify(ctx, raw, candidates[0].Audience, now)
	if r := (*Refusal)(nil); errors.As(err, &r) {
		return refuse(r.Code, r.Reason, r.detail)
	}
	if err != nil {
		return Identity{}, err
	}
	var body json.RawMessage
	if err := tok.Claims(&body); err != nil {
		return refuse("malformed", "its claims could not be read", err)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var cl claims
	if err := d.Decode(&cl); err != nil {
		return refuse("malformed", "its claims could not be read", err)
	}
	rf.Subject = clip(tok.Subject)
	p, scope := v.match(candidates, tok.Subject, cl)
	if p == nil {
		return refuse("no_policy", fmt.Sprintf("no trust policy accepts its subject %q and claims", clip(tok.Subject)), nil)
	}
	if jti, _ := cl["jti"].(string); jti != "" {
		sum := sha256.Sum256([]byte(u.Issuer + "\n" + jti))
		fresh, err := v.replay.Claim(ctx, "jti:"+hex.EncodeToString(sum[:]), tok.Expiry, now)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: the record of exchanged tokens cannot be read: %w", ErrUnavailable, err)
		}
		if !fresh {
			return refuse("replayed", "it was exchanged before (its jti was used); ask the platform for a new identity token", nil)
		}
	}
	return Identity{Issuer: u.Issuer, Subject: tok.Subject, Policy: p.Name, KeyID: p.KeyID, Scope: scope, Expiry: tok.Expiry}, nil
}

// match returns the first candidate whose subject and claim patterns the
// verified token satisfies and whose scope its claims fill, with that
// scope.
func (v *Verifier) match(candidates []*policy, sub string, cl claims) (*policy, string) {
	for _, p := range candidates {
		if p.Subject != "" && !Match(p.Subject, sub) {
			continue
		}
		ok := true
		for _, path := range p.claimPaths {
			if !cl.matches(path, p.Claims[path]) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		scope, err := p.scope.fill(cl)
		if err != nil {
			v.log.Warn("a workload matched a trust policy whose scope its claims cannot fill; trying the next policy", "policy", p.Name, "subject", clip(sub), "err", err)
			continue
		}
		return p, scope
	}
	return nil, ""
}

// refused logs a refusal with what go-oidc said, and returns it.
func (v *Verifier) refused(rf *Refusal) error {
	v.log.Info("a workload identity token was refused", "code", rf.Code, "issuer", rf.Issuer, "subject", rf.Subject, "detail", rf.detail)
	return rf
}

// peek reads a token's header and claims without checking them: its
// shape, its algorithm, and what Verify checks before fetching any key.
func peek(raw string) (unverified, *Refusal) {
	var u unverified
	malformed := &Refusal{Code: "malformed", Reason: "it is not a signed JWT (header.payload.signature, at most 16 KiB)"}
	if len(raw) > maxTokenSize || strings.Count(raw, ".") != 2 {
		return u, malformed
	}
	parts := strings.SplitN(raw, ".", 3)
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	var h struct {
		Alg string `json:"alg"`
	}
	if err1 != nil || err2 != nil || json.Unmarshal(hb, &h) != nil {
		return u, malformed
	}
	if !slices.Contains(asymmetricAlgs, h.Alg) {
		return u, &Refusal{Code: "unsupported_alg", Reason: fmt.Sprintf("its algorithm %q is not accepted: tokens must be signed with an asymmetric key (RS256, ES256, EdDSA...)", clip(h.Alg))}
	}
	if parts[2] == "" {
		return u, malformed
	}
	d := json.NewDecoder(bytes.NewReader(pb))
	d.UseNumber()
	if err := d.Decode(&u); err != nil {
		return u, malformed
	}
	return u, nil
}

// audiences reads aud: a string or a list of strings.
func audiences(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

// seconds reads a NumericDate.
func seconds(n *json.Number) (time.Time, bool) {
	if n == nil {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// clip bounds a claimed string kept for logs and the audit trail.
func clip(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}
