package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

const (
	refreshPrefix  = "kgr_"
	refreshBodyLen = 43 // 256 bits in base62
	refreshLen     = len(refreshPrefix) + refreshBodyLen

	familyPrefix = "fam_"

	// ReasonReuse is the revocation reason of a family whose spent refresh
	// token was presented again.
	ReasonReuse = "refresh token reuse"
)

// Family is a refresh token family as Families keeps it: the key it was
// exchanged for, its scope, how its holder authenticated, its
// certificate binding.
type Family = store.TokenFamily

// FamilyStore persists refresh families, refresh token hashes and the
// revocations every node applies. keygate's database store implements it.
type FamilyStore interface {
	// CreateTokenFamily stores a new family.
	CreateTokenFamily(ctx context.Context, f store.TokenFamily) error
	// GetTokenFamily returns a family, or an error wrapping store.ErrNotFound.
	GetTokenFamily(ctx context.Context, id string) (store.TokenFamily, error)
	// RevokeTokenFamily revokes a family; the first revocation keeps its
	// time and reason. An unknown family is store.ErrNotFound.
	RevokeTokenFamily(ctx context.Context, id string, at time.Time, reason string) error
	// RevokeKeyFamilies revokes every live family of a key and returns how many.
	RevokeKeyFamilies(ctx context.Context, keyID string, at time.Time, reason string) (int, error)
	// PutRefreshToken stores a refresh token's hash.
	PutRefreshToken(ctx context.Context, t store.RefreshToken) error
	// UseRefreshToken atomically marks the token with the given hash used
	// and returns it. An unknown hash is store.ErrNotFound; a token already
	// used gives its record and an error wrapping store.ErrTokenReused.
	UseRefreshToken(ctx context.Context, hash []byte, at time.Time) (store.RefreshToken, error)
	// AddRevocation records a revocation for every node and returns its
	// sequence number.
	AddRevocation(ctx context.Context, r store.Revocation) (int64, error)
	// GetRefreshToken returns a refresh token's record by its hash, or an
	// error wrapping store.ErrNotFound.
	GetRefreshToken(ctx context.Context, hash []byte) (store.RefreshToken, error)
}

// Hasher computes the value stored for a refresh token: an HMAC under a
// secret pepper. *apikey.Hasher implements it; give refresh tokens their own
// pepper.
type Hasher interface {
	Hash(raw string) [32]byte
}

// FamilyOptions configures Families. Zero fields take the defaults.
type FamilyOptions struct {
	// Lifetime is a family's absolute lifetime when the family passed to
	// Start has no ExpiresAt (DefaultFamilyLifetime); at most MaxFamilyLifetime.
	Lifetime time.Duration
	// RefreshTTL is how long each refresh token stays exchangeable, within
	// its family's lifetime (DefaultRefreshTTL).
	RefreshTTL time.Duration
	// Now is the clock Start uses when the family has no CreatedAt (time.Now).
	Now func() time.Time
}

// Families issues and exchanges opaque, single-use refresh tokens. Each
// exchange spends the presented token and issues the next one of the same
// family; presenting a spent token revokes the family, cutting off both the
// thief and the legitimate holder, who must authenticate again. It is safe
// for concurrent use.
type Families struct {
	st       FamilyStore
	hash     Hasher
	lifetime time.Duration
	ttl      time.Duration
	now      func() time.Time
}

// NewFamilies returns Families over st, storing refresh tokens as h's hashes.
func NewFamilies(st FamilyStore, h Hasher, opts FamilyOptions) (*Families, error) {
	if st == nil || h == nil {
		return nil, errors.New("token: refresh families need a store and a hasher")
	}
	f := &Families{
		st:       st,
		hash:     h,
		lifetime: orDefault(opts.Lifetime, DefaultFamilyLifetime),
		ttl:      orDefault(opts.RefreshTTL, DefaultRefreshTTL),
		now:      opts.Now,
	}
	if f.lifetime < 0 || f.lifetime > MaxFamilyLifetime {
		return nil, fmt.Errorf("token: refresh family lifetime %s must be between 0 and %s", f.lifetime, MaxFamilyLifetime)
	}
	if f.ttl < 0 {
		return nil, fmt.Errorf("token: refresh token lifetime %s must not be negative", f.ttl)
	}
	if f.now == nil {
		f.now = time.Now
	}
	return f, nil
}

// UnrecordedFamily is the family of an access token issued while the
// database cannot record a new family (an outage): it has an ID, so the
// token can carry one and its audit event can name it, but it is stored
// nowhere and has no refresh token. Such a token lives only its own short
// lifetime and is refused with its key like any other.
func UnrecordedFamily(fam Family) (Family, error) {
	id, err := randomID(familyPrefix)
	if err != nil {
		return Family{}, fmt.Errorf("token: generate family ID: %w", err)
	}
	fam.ID = id
	fam.CreatedAt = fam.CreatedAt.UTC()
	return fam, nil
}

// Start creates a family for fam.KeyID and returns it as stored with its
// first refresh token, which is shown to the client once. Zero fields of fam
// are filled: ID ("fam_" and 128 random bits), CreatedAt (the clock) and
// ExpiresAt (CreatedAt plus the family lifetime). An ExpiresAt later than
// MaxFamilyLifetime after CreatedAt is refused. The caller puts the family's
// ID in the access tokens it issues (Claims.FamilyID).
func (f *Families) Start(ctx context.Context, fam store.TokenFamily) (store.TokenFamily, secret.String, error) {
	if fam.KeyID == "" {
		return store.TokenFamily{}, secret.String{}, errors.New("token: a refresh family needs the ID of the keygate key it belongs to")
	}
	if fam.ID == "" {
		id, err := randomID(familyPrefix)
		if err != nil {
			return store.TokenFamily{}, secret.String{}, fmt.Errorf("token: generate family ID: %w", err)
		}
		fam.ID = id
	}
	if fam.CreatedAt.IsZero() {
		fam.CreatedAt = f.now()
	}
	fam.CreatedAt = fam.CreatedAt.UTC()
	if fam.ExpiresAt.IsZero() {
		fam.ExpiresAt = fam.CreatedAt.Add(f.lifetime)
	}
	fam.ExpiresAt = fam.ExpiresAt.UTC()
	if life := fam.ExpiresAt.Sub(fam.CreatedAt); life <= 0 || life > MaxFamilyLifetime {
		return store.TokenFamily{}, secret.String{}, fmt.Errorf("token: refresh family lifetime %s must be more than 0 and at most %s", life, MaxFamilyLifetime)
	}
	fam.RevokedAt, fam.Reason = nil, ""
	if err := f.st.CreateTokenFamily(ctx, fam); err != nil {
		return store.TokenFamily{}, secret.String{}, fmt.Errorf("token: create refresh family for key %q: %w", fam.KeyID, err)
	}
	rt, err := f.issue(ctx, fam, fam.CreatedAt)
	if err != nil {
		return store.TokenFamily{}, secret.String{}, err
	}
	return fam, rt, nil
}

// Exchange spends refresh and returns its family with the family's next
// refresh token. Errors match ErrInvalid and:
//   - ErrMalformed: not shaped like a keygate refresh token;
//   - ErrRefreshUnknown: keygate never issued it;
//   - ErrRefreshReused: it was spent before, so the family is now revoked
//     (log it as a security event); the family is returned with it;
//   - ErrFamilyRevoked: its family was revoked;
//   - ErrExpired: it or its family has expired.
//
// Exchange does not check the keygate key the family belongs to; the
// caller must, before issuing an access token for it.
func (f *Families) Exchange(ctx context.Context, refresh string, now time.Time) (store.TokenFamily, secret.String, error) {
	if !wellFormedRefresh(refresh) {
		return store.TokenFamily{}, secret.String{}, refuse(ErrMalformed, "not a keygate refresh token (they look like kgr_ and 43 letters and digits)")
	}
	h := f.hash.Hash(refresh)
	rt, err := f.st.UseRefreshToken(ctx, h[:], now)
	switch {
	case errors.Is(err, store.ErrTokenReused):
		// The family is returned with the error, so the caller can refuse
		// its access tokens at once and say whose family it was.
		fam, rerr := f.reused(ctx, rt.FamilyID, now)
		return fam, secret.String{}, rerr
	case errors.Is(err, store.ErrNotFound):
		return store.TokenFamily{}, secret.String{}, refuse(ErrRefreshUnknown, "no such refresh token")
	case err != nil:
		return store.TokenFamily{}, secret.String{}, fmt.Errorf("token: spend refresh token: %w", err)
	}
	fam, err := f.st.GetTokenFamily(ctx, rt.FamilyID)
	if err != nil {
		return store.TokenFamily{}, secret.String{}, fmt.Errorf("token: read refresh family %q: %w", rt.FamilyID, err)
	}
	if fam.RevokedAt != nil {
		return store.TokenFamily{}, secret.String{}, refuse(ErrFamilyRevoked, fmt.Sprintf("family %q was revoked at %s: %s",
			fam.ID, fam.RevokedAt.UTC().Format(time.RFC3339), fam.Reason))
	}
	if !now.Before(fam.ExpiresAt) {
		return store.TokenFamily{}, secret.String{}, refuse(ErrExpired, fmt.Sprintf("family %q reached the end of its lifetime at %s",
			fam.ID, fam.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	if !now.Before(rt.ExpiresAt) {
		return store.TokenFamily{}, secret.String{}, refuse(ErrExpired, fmt.Sprintf("refresh token of family %q expired at %s",
			fam.ID, rt.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	next, err := f.issue(ctx, fam, now)
	if err != nil {
		return store.TokenFamily{}, secret.String{}, err
	}
	return fam, next, nil
}

// FamilyOf returns the family of an unspent refresh token without
// spending it, so a request can be checked against what the family
// grants before the token is rotated. A token that is malformed, unknown
// or already spent is an error wrapping ErrInvalid; whether the family is
// still live is left to Exchange.
func (f *Families) FamilyOf(ctx context.Context, refresh string) (store.TokenFamily, error) {
	if !wellFormedRefresh(refresh) {
		return store.TokenFamily{}, refuse(ErrMalformed, "not a keygate refresh token (they look like kgr_ and 43 letters and digits)")
	}
	h := f.hash.Hash(refresh)
	rt, err := f.st.GetRefreshToken(ctx, h[:])
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.TokenFamily{}, refuse(ErrRefreshUnknown, "no such refresh token")
	case err != nil:
		return store.TokenFamily{}, fmt.Errorf("token: read refresh token: %w", err)
	case rt.UsedAt != nil:
		return store.TokenFamily{}, refuse(ErrRefreshReused, "the refresh token was already spent")
	}
	fam, err := f.st.GetTokenFamily(ctx, rt.FamilyID)
	if err != nil {
		return store.TokenFamily{}, fmt.Errorf("token: read refresh family %q: %w", rt.FamilyID, err)
	}
	return fam, nil
}

// reused handles a spent refresh token presented again: it revokes the
// family and tells every node, unless the family was already revoked. It
// returns the family (its ID at least) with the error.
func (f *Families) reused(ctx context.Context, famID string, now time.Time) (store.TokenFamily, error) {
	bad := refuse(ErrRefreshReused, fmt.Sprintf("a spent refresh token of family %q was presented again", famID))
	if famID == "" {
		return store.TokenFamily{}, errors.Join(bad, errors.New("token: the store did not say which family the reused refresh token belongs to"))
	}
	fam, err := f.st.GetTokenFamily(ctx, famID)
	if err != nil {
		return store.TokenFamily{ID: famID}, errors.Join(bad, fmt.Errorf("token: revoke family %q after refresh token reuse: %w", famID, err))
	}
	if fam.RevokedAt != nil {
		return fam, bad
	}
	if err := f.revoke(ctx, fam, ReasonReuse, now); err != nil {
		return fam, errors.Join(bad, err)
	}
	return fam, bad
}

// issue stores and returns a new refresh token of fam, valid from now.
func (f *Families) issue(ctx context.Context, fam store.TokenFamily, now time.Time) (secret.String, error) {
	body, err := randomBase62(32, refreshBodyLen)
	if err != nil {
		return secret.String{}, fmt.Errorf("token: generate refresh token: %w", err)
	}
	raw := secret.New(refreshPrefix + string(body))
	clear(body)
	h := f.hash.Hash(raw.Reveal())
	expires := now.Add(f.ttl)
	if fam.ExpiresAt.Before(expires) {
		expires = fam.ExpiresAt
	}
	err = f.st.PutRefreshToken(ctx, store.RefreshToken{
		Hash:      h[:],
		FamilyID:  fam.ID,
		CreatedAt: now.UTC(),
		ExpiresAt: expires.UTC(),
	})
	if err != nil {
		return secret.String{}, fmt.Errorf("token: store refresh token of family %q: %w", fam.ID, err)
	}
	return raw, nil
}

// RevokeFamily revokes a family so none of its refresh tokens exchange
// again, and records the revocation for every node, which then refuse the
// family's access tokens. Revoking a revoked family does nothing. An unknown
// family gives an error wrapping store.ErrNotFound.
func (f *Families) RevokeFamily(ctx context.Context, id, reason string, now time.Time) error {
	fam, err := f.st.GetTokenFamily(ctx, id)
	if err != nil {
		return fmt.Errorf("token: revoke refresh family %q: %w", id, err)
	}
	if fam.RevokedAt != nil {
		return nil
	}
	return f.revoke(ctx, fam, reason, now)
}

func (f *Families) revoke(ctx context.Context, fam store.TokenFamily, reason string, now time.Time) error {
	if err := f.st.RevokeTokenFamily(ctx, fam.ID, now, reason); err != nil {
		return fmt.Errorf("token: revoke refresh family %q: %w", fam.ID, err)
	}
	// The family's access tokens were issued before its end and live at
	// most MaxLifetime.
	end := fam.ExpiresAt
	if end.Before(now) {
		end = now
	}
	_, err := f.st.AddRevocation(ctx, store.Revocation{
		Kind:    RevokedFamily,
		Subject: fam.ID,
		At:      now.UTC(),
		Until:   end.Add(MaxLifetime + Leeway).UTC(),
	})
	if err != nil {
		return fmt.Errorf("token: announce revocation of refresh family %q: %w", fam.ID, err)
	}
	return nil
}

// RevokeKey revokes every family of a keygate key and records a key
// revocation for every node, which then refuse the key's access tokens. It
// returns how many families it revoked.
func (f *Families) RevokeKey(ctx context.Context, keyID, reason string, now time.Time) (int, error) {
	n, err := f.st.RevokeKeyFamilies(ctx, keyID, now, reason)
	if err != nil {
		return 0, fmt.Errorf("token: revoke refresh families of key %q: %w", keyID, err)
	}
	// Families live at most MaxFamilyLifetime and their access tokens
	// MaxLifetime more; after that nothing of the key's can be presented.
	_, err = f.st.AddRevocation(ctx, store.Revocation{
		Kind:    RevokedKey,
		Subject: keyID,
		At:      now.UTC(),
		Until:   now.Add(MaxFamilyLifetime + MaxLifetime + Leeway).UTC(),
	})
	if err != nil {
		return n, fmt.Errorf("token: announce revocation of key %q: %w", keyID, err)
	}
	return n, nil
}

// wellFormedRefresh reports whether raw is shaped like a refresh token:
// "kgr_" and 43 base62 characters.
func wellFormedRefresh(raw string) bool {
	if len(raw) != refreshLen || raw[:len(refreshPrefix)] != refreshPrefix {
		return false
	}
	for i := len(refreshPrefix); i < len(raw); i++ {
		if !isBase62(raw[i]) {
			return false
		}
	}
	return true
}

// RevokeRefresh revokes the family of a presented refresh token (RFC 7009:
// revoking a refresh token revokes what it grants). An unknown or malformed
// token is not an error: there is nothing to revoke. It returns the id of
// the family revoked, or "" when there was none.
func (f *Families) RevokeRefresh(ctx context.Context, refresh, reason string, now time.Time) (familyID string, err error) {
	if !wellFormedRefresh(refresh) {
		return "", nil
	}
	h := f.hash.Hash(refresh)
	t, err := f.st.GetRefreshToken(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("token: revoke a refresh token: %w", err)
	}
	if err := f.RevokeFamily(ctx, t.FamilyID, reason, now); err != nil {
		return "", err
	}
	return t.FamilyID, nil
}

// IsRefresh reports whether raw is shaped like a keygate refresh token.
func IsRefresh(raw string) bool { return wellFormedRefresh(raw) }
