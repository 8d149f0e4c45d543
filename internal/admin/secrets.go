package admin

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// maxSecretValue bounds a stored secret's size.
const maxSecretValue = 64 << 10

// secretHandler serves one action on /secrets/{name}[:action] (the route
// table dispatches by method and action; names hold slashes, so the action
// follows a colon, which names cannot contain).
func (a *API) secretHandler(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, _, _ := strings.Cut(r.PathValue("path"), ":")
		if err := adminapi.ValidSecretName(name); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if r.Method != http.MethodGet {
			// A passthrough service's credential is a secret: a change reaches
			// routing at once on this node (on others within provider_refresh).
			sw := &web.StatusWriter{ResponseWriter: w}
			w = sw
			defer func() {
				if sw.Status >= 200 && sw.Status < 300 {
					a.providersChanged(r)
				}
			}()
		}
		h(w, r, name)
	}
}

// secretRef identifies a secret in logs by an HMAC of its name, never the
// name itself: names can say more than they should ("acme/merger-db").
func (a *API) secretRef(name string) string {
	h := a.opts.Hasher.Hash("secret-name:" + name)
	return hex.EncodeToString(h[:8])
}

// redactPath replaces a secret's name in a logged path with its reference.
func (a *API) redactPath(p string) string {
	rest, ok := strings.CutPrefix(p, adminapi.Prefix+"/secrets/")
	if !ok || rest == "" {
		return p
	}
	name, action, hasAction := strings.Cut(rest, ":")
	out := adminapi.Prefix + "/secrets/ref:" + a.secretRef(name)
	if hasAction {
		out += ":" + action
	}
	return out
}

func (a *API) putSecret(w http.ResponseWriter, r *http.Request, name string) {
	var req adminapi.PutSecretRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	val := secret.New(req.Value)
	req.Value = ""
	if ref := strings.TrimSpace(req.Ref); ref != "" {
		if !val.IsZero() {
			writeError(w, http.StatusBadRequest, "bad_request", "give value or ref, not both")
			return
		}
		a.putSecretRef(w, r, name, ref, req)
		return
	}
	switch {
	case val.IsZero():
		writeError(w, http.StatusBadRequest, "bad_request", "value is required and must not be empty")
		return
	case len(val.Reveal()) > maxSecretValue:
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("value is %d bytes; keygate stores secrets up to %d bytes", len(val.Reveal()), maxSecretValue))
		return
	}
	// A value stored by hand replaces a reference: keygate stops following
	// the secret's source.
	if m, err := a.opts.Store.GetSecretMeta(r.Context(), name); err == nil {
		a.forgetSource(r.Context(), m.RecordID)
	}
	created, err := a.storeSecret(r.Context(), name, val)
	var deleted deletedSecret
	if errors.As(err, &deleted) {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("secret %q was deleted at %s; restore it (keygate secret restore %s) or purge it (keygate secret delete %s --purge) before storing it again",
			name, deleted.at.Format(time.RFC3339), name, name))
		return
	}
	if err != nil {
		a.internal(w, "store the secret", err)
		return
	}
	ver := created.version
	a.opts.Log.Info("secret stored", "actor", principal(r).ID, "secret_ref", a.secretRef(name), "version", ver)
	status := http.StatusOK
	if created.isNew {
		status = http.StatusCreated
	}
	a.writeSecretMeta(w, r, name, status)
}

func (a *API) writeSecretMeta(w http.ResponseWriter, r *http.Request, name string, status int) {
	m, err := a.opts.Store.GetSecretMeta(r.Context(), name)
	if err != nil {
		a.secretLookupError(w, name, err)
		return
	}
	v := secretView(m)
	if ref, err := a.sourceOf(r.Context(), m.RecordID); err == nil && ref != nil {
		sv := a.sourceView(*ref)
		v.Source = &sv
	}
	web.WriteJSON(w, status, v)
}

func secretView(m store.SecretMeta) adminapi.Secret {
	return adminapi.Secret{
		Name: m.Name, CurrentVersion: m.CurrentVersion, Versions: m.Versions,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, DeletedAt: m.DeletedAt, PurgeAt: m.PurgeAt,
	}
}

func (a *API) secretLookupError(w http.ResponseWriter, name string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no secret named %q", name))
		return
	}
	a.internal(w, "read the secret", err)
}

// liveSecret returns a secret that is not soft-deleted, or answers the
// request and returns false.
func (a *API) liveSecret(w http.ResponseWriter, r *http.Request, name string) (store.SecretMeta, bool) {
	m, err := a.opts.Store.GetSecretMeta(r.Context(), name)
	if err != nil {
		a.secretLookupError(w, name, err)
		return m, false
	}
	if m.DeletedAt != nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("secret %q was deleted at %s; restore it with keygate secret restore %s until %s",
			name, m.DeletedAt.Format(time.RFC3339), name, m.PurgeAt.Format(time.RFC3339)))
		return m, false
	}
	return m, true
}

func (a *API) getSecret(w http.ResponseWriter, r *http.Request, name string) {
	a.writeSecretMeta(w, r, name, http.StatusOK)
}

func (a *API) listSecrets(w http.ResponseWriter, r *http.Request) {
	ms, err := a.opts.Store.ListSecretMeta(r.Context(), r.URL.Query().Get("deleted") == "true")
	if err != nil {
		a.internal(w, "list secrets", err)
		return
	}
	out := adminapi.SecretList{Secrets: make([]adminapi.Secret, 0, len(ms))}
	for _, m := range ms {
		out.Secrets = append(out.Secrets, secretView(m))
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func (a *API) secretVersions(w http.ResponseWriter, r *http.Request, name string) {
	m, err := a.opts.Store.GetSecretMeta(r.Context(), name)
	if err != nil {
		a.secretLookupError(w, name, err)
		return
	}
	vs, err := a.opts.Store.ListSecretVersions(r.Context(), m.RecordID)
	if err != nil {
		a.internal(w, "list the secret's versions", err)
		return
	}
	out := adminapi.SecretVersionList{Name: name, Versions: make([]adminapi.SecretVersion, 0, len(vs))}
	for i, v := range vs {
		out.Versions = append(out.Versions, adminapi.SecretVersion{
			Version: v.Version, Current: i == len(vs)-1, KEKID: v.KEKID, Format: v.Format,
			CreatedAt: v.CreatedAt, DestroyAt: v.DestroyAt,
		})
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// secretValue is the one route that returns a secret in clear: it needs
// secrets.read_value, which only owner holds by default, and every call is
// logged and recorded with who asked.
func (a *API) secretValue(w http.ResponseWriter, r *http.Request, name string) {
	m, ok := a.liveSecret(w, r, name)
	if !ok {
		return
	}
	version := 0
	if q := r.URL.Query().Get("version"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("version %q must be a whole number from 1", q))
			return
		}
		version = n
	}
	var val secret.String
	var err error
	if version == 0 {
		val, version, err = a.opts.Vault.Get(r.Context(), m.RecordID)
	} else {
		val, err = a.opts.Vault.GetVersion(r.Context(), m.RecordID, version)
	}
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("secret %q has no version %d", name, version))
		return
	}
	if err != nil {
		a.internal(w, "open the secret", err)
		return
	}
	a.opts.Log.Info("secret value read", "actor", principal(r).ID, "secret_ref", a.secretRef(name), "version", version)
	a.auditSecretRead(r, name, version)
	web.WriteJSON(w, http.StatusOK, adminapi.SecretValue{Name: name, Version: version, Value: val.Reveal()})
}

func (a *API) rollbackSecret(w http.ResponseWriter, r *http.Request, name string) {
	var req adminapi.RollbackSecretRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	m, ok := a.liveSecret(w, r, name)
	if !ok {
		return
	}
	if req.Version < 1 || req.Version >= m.CurrentVersion {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("version must be an earlier version of %q, 1 to %d", name, m.CurrentVersion-1))
		return
	}
	ctx := r.Context()
	old, err := a.opts.Vault.GetVersion(ctx, m.RecordID, req.Version)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("secret %q has no version %d", name, req.Version))
		return
	}
	if err != nil {
		a.internal(w, "open the earlier version", err)
		return
	}
	ver, err := a.opts.Vault.Put(ctx, m.RecordID, old)
	if err != nil {
		a.internal(w, "store the rolled-back value", err)
		return
	}
	_ = a.opts.Store.TouchSecretMeta(ctx, name, a.opts.Now())
	a.opts.Log.Info("secret rolled back", "actor", principal(r).ID, "secret_ref", a.secretRef(name), "from_version", req.Version, "version", ver)
	a.writeSecretMeta(w, r, name, http.StatusOK)
}

func (a *API) deleteSecret(w http.ResponseWriter, r *http.Request, name string) {
	ctx := r.Context()
	m, err := a.opts.Store.GetSecretMeta(ctx, name)
	if err != nil {
		a.secretLookupError(w, name, err)
		return
	}
	// A deleted secret's source is no longer followed.
	a.forgetSource(ctx, m.RecordID)
	if r.URL.Query().Get("purge") == "true" {
		if err := a.opts.Store.PurgeSecret(ctx, name); err != nil {
			a.secretLookupError(w, name, err)
			return
		}
		a.opts.Vault.Forget(m.RecordID)
		a.opts.Log.Info("secret purged", "actor", principal(r).ID, "secret_ref", a.secretRef(name))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if m.DeletedAt != nil {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("secret %q is already deleted; purge it now with ?purge=true or restore it", name))
		return
	}
	now := a.opts.Now().UTC()
	if err := a.opts.Store.SoftDeleteSecret(ctx, name, now, now.Add(a.opts.SecretRecoveryWindow)); err != nil {
		a.secretLookupError(w, name, err)
		return
	}
	a.opts.Vault.Forget(m.RecordID)
	a.opts.Log.Info("secret deleted", "actor", principal(r).ID, "secret_ref", a.secretRef(name))
	a.writeSecretMeta(w, r, name, http.StatusOK)
}

func (a *API) restoreSecret(w http.ResponseWriter, r *http.Request, name string) {
	if err := a.opts.Store.RestoreSecretMeta(r.Context(), name, a.opts.Now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no deleted secret named %q (a purged secret cannot be restored)", name))
			return
		}
		a.internal(w, "restore the secret", err)
		return
	}
	a.opts.Log.Info("secret restored", "actor", principal(r).ID, "secret_ref", a.secretRef(name))
	a.writeSecretMeta(w, r, name, http.StatusOK)
}

// deletedSecret is storeSecret's refusal to write to a soft-deleted secret.
type deletedSecret struct{ at time.Time }

func (d deletedSecret) Error() string { return "the secret is deleted" }

// stored says what storeSecret wrote.
type stored struct {
	isNew   bool
	version int
}

// notOwner is a delivery's refusal to write into a secret it did not
// create.
type notOwner struct{ name, owner string }

func (e notOwner) Error() string {
	who := "a person (keygate secret put)"
	if e.owner != "" {
		who = strings.TrimPrefix(e.owner, "rotation:") + "'s rotation"
	}
	return fmt.Sprintf("secret %q was created by %s, and a key's rotation writes only into a secret it created itself; deliver to a new secret name", e.name, who)
}

// storeSecret stores val as the next version of secret name, creating the
// secret if it does not exist. A person's put (owner "") may write into
// any secret; a rotation (owner "rotation:NAME") only into one that does
// not exist yet or that the same rotation created.
func (a *API) storeSecret(ctx context.Context, name string, val secret.String) (stored, error) {
	return a.storeSecretAs(ctx, name, "", val)
}

func (a *API) storeSecretAs(ctx context.Context, name, owner string, val secret.String) (stored, error) {
	now := a.opts.Now().UTC()
	m, err := a.opts.Store.GetSecretMeta(ctx, name)
	created := false
	if errors.Is(err, store.ErrNotFound) {
		m = store.SecretMeta{Name: name, RecordID: "secret/" + newID("sec_"), CreatedAt: now, UpdatedAt: now, Owner: owner}
		err = a.opts.Store.CreateSecretMeta(ctx, m)
		created = err == nil
		if errors.Is(err, store.ErrConflict) { // another writer created it first
			m, err = a.opts.Store.GetSecretMeta(ctx, name)
		}
	}
	if err != nil {
		return stored{}, err
	}
	if m.DeletedAt != nil {
		return stored{}, deletedSecret{*m.DeletedAt}
	}
	if owner != "" && m.Owner != owner {
		return stored{}, notOwner{name: name, owner: m.Owner}
	}
	ver, err := a.opts.Vault.Put(ctx, m.RecordID, val)
	if err != nil {
		return stored{}, err
	}
	if err := a.opts.Store.TouchSecretMeta(ctx, name, now); err != nil {
		a.opts.Log.Warn("secret stored but its update time was not", "secret_ref", a.secretRef(name), "err", err)
	}
	return stored{isNew: created, version: ver}, nil
}

// putSecretRef makes secret name a reference to its source, read now and
// followed from then on.
func (a *API) putSecretRef(w http.ResponseWriter, r *http.Request, name, ref string, req adminapi.PutSecretRequest) {
	ctx := r.Context()
	now := a.opts.Now().UTC()
	m, err := a.opts.Store.GetSecretMeta(ctx, name)
	created := false
	if errors.Is(err, store.ErrNotFound) {
		m = store.SecretMeta{Name: name, RecordID: "secret/" + newID("sec_"), CreatedAt: now, UpdatedAt: now}
		err = a.opts.Store.CreateSecretMeta(ctx, m)
		created = err == nil
	}
	if err != nil {
		a.internal(w, "store the secret", err)
		return
	}
	if m.DeletedAt != nil {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("secret %q was deleted at %s; restore or purge it first", name, m.DeletedAt.Format(time.RFC3339)))
		return
	}
	sref, err := a.newSourceRef(m.RecordID, "secret:"+name, ref, req.RefRefresh, req.RefGrace)
	if err == nil {
		err = a.followSource(ctx, sref)
	} else {
		err = badRef{err}
	}
	if err != nil {
		if created {
			_ = a.opts.Store.PurgeSecret(ctx, name)
		}
		if br, ok := err.(badRef); ok {
			writeError(w, http.StatusBadRequest, "bad_request", "ref: "+br.err.Error())
			return
		}
		a.writeSourceError(w, "secret", err)
		return
	}
	if err := a.opts.Store.TouchSecretMeta(ctx, name, now); err != nil {
		a.opts.Log.Warn("secret stored but its update time was not", "secret_ref", a.secretRef(name), "err", err)
	}
	a.opts.Log.Info("secret follows its source", "actor", principal(r).ID, "secret_ref", a.secretRef(name))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	a.writeSecretMeta(w, r, name, status)
}

// badRef is a reference refused before anything was read.
type badRef struct{ err error }

func (e badRef) Error() string { return e.err.Error() }
