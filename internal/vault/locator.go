package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// KEK locators.
//
// A rotation leaves, for each of its two KEKs, a locator record: the KEK's
// URL sealed under the other KEK (record system/kek-url/<id>). A node still
// configured with the old KEK follows the rotation through it, and a node
// configured with the new one finishes rewrapping records under the old.
//
// A locator only ever holds a URL that names where a key is, never a key:
// a KMS key (awskms://, gcpkms://, azurekeyvault://, hashivault://), a key
// file's path, or where a passphrase comes from. A URL that is the key
// (base64key://) or carries a secret (a token or password in it) is never
// stored, sealed or not: the operator supplies that KEK at every start, as
// with the first one, and keygate says which KEK it needs. Sealing a
// locator is not for secrecy (the same URL is kept in clear, for messages,
// in the KEK registry); it is for integrity: keygate follows only a
// locator that a KEK it already holds vouches for, so whoever can write to
// the database cannot point keygate at a key of their own.
//
// Once a rotation has settled (finished, plus a grace for nodes still on
// the old KEK to follow), every locator is deleted: the old KEK then opens
// nothing at all, so a leaked old key, even with a copy of the database,
// leads neither to the new KEK nor to any data key. A node started with only
// the old KEK after that refuses to start and names the KEK it needs.

// kekURLRecord is the vault record locating the KEK with the given ID.
func kekURLRecord(id string) string { return kekURLPrefix + id }

const (
	kekURLPrefix = "system/kek-url/"
	// kekURLPattern matches every KEK locator record in SQL LIKE syntax.
	// They are never rewrapped: each stays sealed under the KEK that
	// vouches for it.
	kekURLPattern  = kekURLPrefix + "%"
	maxResolveHops = 4
)

// errNoLocator means no configured KEK has the ID asked for and no locator
// record leads to it.
var errNoLocator = errors.New("no locator record leads to it")

// storableKEKURL reports whether a KEK URL may be kept in keygate's
// database: it locates a key without being one. A base64key:// URL is the
// key itself, and a URL with any part RedactKEKURL hides (a token, a
// password, a passphrase written into it) carries a secret; neither is ever
// stored.
func storableKEKURL(raw string) bool {
	raw = strings.TrimSpace(raw)
	if raw == "" || isBase64KeyURL(raw) {
		return false
	}
	red := RedactKEKURL(raw)
	if red == "" || strings.HasPrefix(red, "<") {
		return false
	}
	return strings.Count(red, redactedMark) == strings.Count(raw, redactedMark)
}

// Resolve returns the KEK with the given ID: from the ring, or by opening
// the URL in a locator record sealed under a KEK the ring holds (following
// up to a few rotations back). A resolved KEK joins the ring.
func (v *Vault) Resolve(ctx context.Context, id string) (KEK, error) {
	return v.resolve(ctx, id, maxResolveHops)
}

func (v *Vault) resolve(ctx context.Context, id string, hops int) (KEK, error) {
	if k, ok := v.KEK(id); ok {
		return k, nil
	}
	if v.openURL == nil || hops == 0 {
		return nil, fmt.Errorf("keygate is not configured with KEK %q: %w", id, errNoLocator)
	}
	versions, err := v.st.ListSecretVersions(ctx, kekURLRecord(id))
	if err != nil {
		return nil, fmt.Errorf("look for a locator of KEK %q: %w", id, err)
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("keygate is not configured with KEK %q and %w (keygate never stores a KEK whose URL holds key material, and deletes locators once a rotation has settled); configure its URL as kek, or as kek_previous while a rotation away from it runs", id, errNoLocator)
	}
	var errs []error
	// Prefer versions sealed under a KEK already in the ring.
	for pass := 0; pass < 2; pass++ {
		for i := len(versions) - 1; i >= 0; i-- {
			sv := versions[i]
			_, inRing := v.KEK(sv.KEKID)
			if (pass == 0) != inRing {
				continue
			}
			if pass == 1 {
				if _, err := v.resolve(ctx, sv.KEKID, hops-1); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			k, err := v.openKEKURL(ctx, id, sv)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			return k, nil
		}
	}
	return nil, errors.Join(errs...)
}

// openKEKURL opens the KEK a locator record names. A record written by an
// older keygate may hold a URL with key material; it is still followed, so
// an upgrade never locks an operator out of a vault, and Rotator.Sync warns
// and deletes it once the KEK it names is configured.
func (v *Vault) openKEKURL(ctx context.Context, id string, sv store.SecretVersion) (KEK, error) {
	kek, _ := v.KEK(sv.KEKID)
	pt, err := OpenVersion(ctx, kek, sv)
	if err != nil {
		return nil, err
	}
	url := secret.New(string(pt))
	clear(pt)
	k, err := v.openURL(ctx, url.Reveal())
	if err != nil {
		return nil, fmt.Errorf("open KEK %q from its locator: %w", id, err)
	}
	if k.ID() != id {
		return nil, fmt.Errorf("the locator of KEK %q opens KEK %q instead: %w", id, k.ID(), ErrWrongKEK)
	}
	v.AddKEK(k)
	v.SetKEKURL(id, url)
	return k, nil
}

// recordKEKURL seals url, the address of KEK id, under the KEK under, so a
// keygate holding under can find id. A URL that holds key material is not
// recorded (see storableKEKURL); it reports whether it recorded.
func (v *Vault) recordKEKURL(ctx context.Context, id string, url secret.String, under KEK) (bool, error) {
	if !storableKEKURL(url.Reveal()) {
		return false, nil
	}
	versions, err := v.st.ListSecretVersions(ctx, kekURLRecord(id))
	if err != nil {
		return false, fmt.Errorf("vault: read the locators of KEK %q: %w", id, err)
	}
	for _, sv := range versions {
		if sv.KEKID == under.ID() {
			return true, nil // already findable from under
		}
	}
	_, err = v.putUnder(ctx, under, kekURLRecord(id), url, nil)
	return err == nil, err
}

// locator is one locator record as keygate sees it.
type locator struct {
	sv     store.SecretVersion
	target string // the ID of the KEK it locates
	opened bool   // whether keygate knows what it holds (a KEK in the ring opened it)
	hasKey bool   // it holds key material (written by an older keygate)
}

// locators reads every locator record, opening those a KEK in the ring
// can open to tell whether they hold key material.
func (r *Rotator) locators(ctx context.Context) ([]locator, error) {
	vs, err := r.st.ListSecretVersionsLike(ctx, kekURLPattern)
	if err != nil {
		return nil, fmt.Errorf("vault: read the KEK locators: %w", err)
	}
	out := make([]locator, 0, len(vs))
	for _, sv := range vs {
		l := locator{sv: sv, target: strings.TrimPrefix(sv.ID, kekURLPrefix)}
		if kek, ok := r.v.KEK(sv.KEKID); ok {
			if pt, err := OpenVersion(ctx, kek, sv); err == nil {
				l.opened, l.hasKey = true, !storableKEKURL(string(pt))
				clear(pt)
			}
		}
		if u, ok := r.v.kekURL(l.target); ok && !l.opened && !storableKEKURL(u.Reveal()) {
			// This keygate knows the KEK's URL holds key material, so a
			// locator of it can only be an older keygate's stored key.
			l.opened, l.hasKey = true, true
		}
		out = append(out, l)
	}
	return out, nil
}

// prune deletes the locator records nothing needs any more. settled says
// that no rotation is running and nodes have had their grace to follow the
// last one.
//
//   - A locator holding key material (from an older keygate) goes as soon
//     as the KEK it names is configured on this node, or wraps nothing: it
//     is kept only while it may be the operator's one way to that KEK.
//   - A locator holding a plain URL goes once the rotation has settled.
//   - A locator this node cannot open goes once the rotation has settled,
//     unless it may be the one way to a KEK that still wraps data.
//
// It returns how many locators it kept.
func (r *Rotator) prune(ctx context.Context, settled bool) (int, error) {
	ls, err := r.locators(ctx)
	if err != nil || len(ls) == 0 {
		return 0, err
	}
	data, err := r.dataByKEK(ctx, ls)
	if err != nil {
		return 0, err
	}
	kept := 0
	current := r.v.KEKID()
	for _, l := range ls {
		needed := !r.v.Supplied(l.target) && (l.target == current || data[l.target] > 0)
		var drop bool
		switch {
		case l.hasKey:
			drop = !needed
		case l.opened:
			drop = settled
		default:
			drop = settled && !needed
		}
		if !drop {
			kept++
			if l.hasKey && r.firstWarning(l.sv.ID+"@"+l.sv.KEKID) {
				r.log.Warn("the vault holds the key of KEK "+l.target+", sealed under KEK "+l.sv.KEKID+" by an older keygate: anyone with that KEK and a copy of the database can open every secret. "+
					"Set kek (KEYGATE_KEK) to KEK "+l.target+"'s URL and restart; keygate then deletes the stored key", "kek", l.target, "sealed_under", l.sv.KEKID)
			}
			continue
		}
		ok, err := r.st.DeleteSecretVersion(ctx, l.sv)
		if err != nil {
			return kept, fmt.Errorf("vault: delete the locator of KEK %s: %w", l.target, err)
		}
		if ok {
			r.v.Forget(l.sv.ID)
			what := "locator"
			if l.hasKey {
				what = "stored key (written by an older keygate)"
			}
			r.log.Info("vault: deleted a KEK "+what+" no longer needed", "kek", l.target, "sealed_under", l.sv.KEKID)
		}
	}
	return kept, nil
}

// firstWarning reports whether key has not been warned about before in this
// process, and remembers it.
func (r *Rotator) firstWarning(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.warned[key] {
		return false
	}
	r.warned[key] = true
	return true
}

// dataByKEK returns, by KEK ID, how many stored versions other than
// locators it wraps.
func (r *Rotator) dataByKEK(ctx context.Context, ls []locator) (map[string]int, error) {
	counts, err := r.st.CountByKEK(ctx)
	if err != nil {
		return nil, fmt.Errorf("vault: count versions by KEK: %w", err)
	}
	data := map[string]int{}
	for _, c := range counts {
		data[c.KEKID] += c.Versions
	}
	for _, l := range ls {
		data[l.sv.KEKID]--
	}
	return data, nil
}

// kekParams is what the KEK registry keeps about a file or KMS KEK: where it
// is, redacted, for messages and `vault status`. It is never followed.
type kekParams struct {
	URL string `json:"url"`
}

// register records KEK id in the registry with its redacted URL, so keygate
// can later say which KEK a vault needs and where it was. A passphrase KEK
// is recorded when it is created (with its salt) and is left alone.
func (r *Rotator) register(ctx context.Context, id, rawURL string) error {
	kind := KEKKind(id)
	if kind == KEKKindPassphrase || kind == "unknown" {
		return nil
	}
	params, err := json.Marshal(kekParams{URL: RedactKEKURL(rawURL)})
	if err != nil {
		return err
	}
	err = r.st.PutKEKRecord(ctx, store.KEKRecord{ID: id, Kind: kind, Params: params, CreatedAt: r.now().UTC()})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("vault: record KEK %s: %w", id, err)
	}
	return nil
}

// recordedURL returns the redacted URL the registry holds for KEK id, or "".
func recordedURL(recs []store.KEKRecord, id string) string {
	for _, rec := range recs {
		if rec.ID == id && rec.Kind != KEKKindPassphrase {
			var p kekParams
			if json.Unmarshal(rec.Params, &p) == nil {
				return p.URL
			}
		}
	}
	return ""
}

// needKEK explains that this vault needs KEK id, which this keygate cannot
// open (cause says why), and what the operator should configure.
func (r *Rotator) needKEK(ctx context.Context, rot store.KEKRotation, cause error) error {
	recs, _ := r.st.ListKEKRecords(ctx)
	where := recordedURL(recs, rot.ToKEK)
	var msg string
	switch {
	case strings.Contains(where, redactedMark):
		msg = fmt.Sprintf("this vault needs KEK %s (%s), whose URL holds key material that keygate never stores; point kek (KEYGATE_KEK) at it", rot.ToKEK, where)
	case where != "":
		msg = fmt.Sprintf("this vault needs KEK %s (%s); point kek (KEYGATE_KEK) at it", rot.ToKEK, where)
	case KEKKind(rot.ToKEK) == KEKKindPassphrase:
		msg = fmt.Sprintf("this vault needs the passphrase KEK %s; point kek (KEYGATE_KEK) at a passphrase:// URL that gives its passphrase", rot.ToKEK)
	default:
		msg = fmt.Sprintf("this vault needs KEK %s; point kek (KEYGATE_KEK) at it", rot.ToKEK)
	}
	if rot.FinishedAt == nil {
		msg += fmt.Sprintf(", and keep KEK %s as kek_previous until `keygate vault status` shows the rotation finished", rot.FromKEK)
	}
	if !errors.Is(cause, errNoLocator) {
		msg += fmt.Sprintf(" (%v)", cause)
	}
	return fmt.Errorf("vault: the vault was rotated to another key-encryption key: %s", msg)
}
