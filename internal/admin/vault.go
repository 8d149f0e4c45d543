package admin

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/vault"
	"github.com/keygate/keygate/internal/web"
)

// rotateProvider makes a new upstream key current. Requests already in
// flight keep the key they started with; the previous key is kept for a
// grace period (so a rotation can be undone) and then destroyed.
func (a *API) rotateProvider(w http.ResponseWriter, r *http.Request) {
	var req adminapi.RotateProviderRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	key := secret.New(strings.TrimSpace(req.APIKey))
	req.APIKey = ""
	if key.IsZero() {
		writeError(w, http.StatusBadRequest, "bad_request", "api_key is required: the provider's new API key")
		return
	}
	grace := a.opts.ProviderKeyGrace
	if req.Grace != "" {
		d, err := adminapi.ParseDuration(req.Grace)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "grace: "+err.Error())
			return
		}
		grace = d
	}
	ctx := r.Context()
	p, err := a.opts.Store.GetProvider(ctx, r.PathValue("name"))
	if err != nil {
		a.lookupError(w, "provider", r.PathValue("name"), err)
		return
	}
	if ref, err := a.sourceOf(ctx, p.SecretID); err != nil || ref != nil {
		if err != nil {
			a.internal(w, "read the provider's reference", err)
			return
		}
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("provider %s's key is kept in %s: rotate it there, and keygate follows (at once with keygate source refresh provider:%s)", p.Name, ref.Ref, p.Name))
		return
	}
	ver, err := a.opts.Vault.Put(ctx, p.SecretID, key)
	if err != nil {
		a.internal(w, "store the provider's new key", err)
		return
	}
	destroyAt := a.opts.Now().UTC().Add(grace)
	if _, err := a.opts.Store.ScheduleDestroy(ctx, p.SecretID, ver, destroyAt); err != nil {
		a.opts.Log.Error("provider key rotated but the previous key was not scheduled for destruction; rotate again to retry", "provider", p.Name, "err", err)
	}
	a.providersChanged(r)
	a.opts.Log.Info("provider key rotated", "actor", principal(r).ID, "provider", p.Name, "version", ver, "previous_destroy_at", destroyAt)
	web.WriteJSON(w, http.StatusOK, adminapi.ProviderRotation{
		Provider: providerView(p), Version: ver, PreviousVersion: ver - 1, PreviousDestroyAt: destroyAt,
	})
}

func (a *API) rotateKEK(w http.ResponseWriter, r *http.Request) {
	if a.opts.Rotator == nil || a.opts.OpenKEK == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate cannot rotate its key-encryption key")
		return
	}
	var req adminapi.RotateKEKRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	url := secret.New(strings.TrimSpace(req.To))
	req.To = ""
	if url.IsZero() {
		writeError(w, http.StatusBadRequest, "bad_request", "to is required: the URL of the new key-encryption key, such as awskms://..., gcpkms://..., file:///path or passphrase://?env=NAME")
		return
	}
	if req.BatchSize < 0 || req.BatchSize > vault.MaxBatchSize {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("batch_size must be 1 to %d", vault.MaxBatchSize))
		return
	}
	var interval time.Duration
	if req.BatchInterval != "" {
		d, err := time.ParseDuration(req.BatchInterval)
		if err != nil || d < 0 || d > time.Minute {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("batch_interval %q must be a duration from 0 to 1m, such as 10ms", req.BatchInterval))
			return
		}
		interval = d
	}
	ctx := r.Context()
	kek, err := a.opts.OpenKEK(ctx, url.Reveal())
	if err != nil {
		// OpenKEK's errors name the URL redacted and never hold key material.
		writeError(w, http.StatusBadRequest, "bad_request", "cannot use the new key-encryption key: "+err.Error())
		return
	}
	rot, err := a.opts.Rotator.Start(ctx, kek, url, req.BatchSize, interval)
	switch {
	case errors.Is(err, vault.ErrRotationRunning), errors.Is(err, vault.ErrSameKEK):
		writeError(w, http.StatusConflict, "conflict", err.Error())
		return
	case err != nil:
		a.internal(w, "start the key-encryption key rotation", err)
		return
	}
	a.opts.Log.Info("key-encryption key rotation requested", "actor", principal(r).ID, "from", rot.FromKEK, "to", rot.ToKEK)
	st, err := a.opts.Rotator.Status(ctx)
	if err != nil {
		a.internal(w, "read the rotation's status", err)
		return
	}
	web.WriteJSON(w, http.StatusAccepted, rotationView(st))
}

func (a *API) vaultStatus(w http.ResponseWriter, r *http.Request) {
	if a.opts.Rotator == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate has no vault status")
		return
	}
	st, err := a.opts.Rotator.Status(r.Context())
	if err != nil {
		a.internal(w, "read the vault's status", err)
		return
	}
	out := adminapi.VaultStatus{KEKID: st.KEKID, KEKKind: vault.KEKKind(st.KEKID), Counts: make([]adminapi.KEKCount, 0, len(st.Counts))}
	for _, c := range st.Counts {
		out.Counts = append(out.Counts, adminapi.KEKCount{KEKID: c.KEKID, Format: c.Format, Versions: c.Versions})
	}
	out.KEKs = make([]adminapi.KEKState, 0, len(st.KEKs))
	for _, k := range st.KEKs {
		out.KEKs = append(out.KEKs, adminapi.KEKState{
			KEKID: k.ID, Kind: k.Kind, URL: k.URL, Current: k.Current,
			Opens: k.Versions, Locators: k.Locators, StoredKeys: k.StoredKeys, Verdict: kekVerdict(k),
		})
	}
	if st.Latest != nil {
		rv := rotationView(st)
		out.Rotation = &rv
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// kekVerdict says in one line what a KEK still opens and whether it can be
// destroyed.
func kekVerdict(k vault.KEKState) string {
	if k.Current {
		return fmt.Sprintf("wraps %s", plural(k.Versions, "record"))
	}
	if k.Versions == 0 {
		return "opens nothing; it can be destroyed once no keygate is configured with it"
	}
	var why []string
	if data := k.Versions - k.Locators; data > 0 {
		why = append(why, fmt.Sprintf("%s not yet rewrapped under the current KEK", plural(data, "data key")))
	}
	if n := k.Locators - k.StoredKeys; n > 0 {
		why = append(why, fmt.Sprintf("%s of a newer KEK, kept so nodes still on this one can follow the rotation, then deleted", plural(n, "locator")))
	}
	if k.StoredKeys > 0 {
		why = append(why, fmt.Sprintf("%s of a newer KEK, written by an older keygate: set kek to that KEK's URL and restart, and keygate deletes them", plural(k.StoredKeys, "stored key")))
	}
	return fmt.Sprintf("still opens %s (%s); keep it", plural(k.Versions, "record"), strings.Join(why, "; "))
}

// plural writes n of what, adding an s unless n is 1.
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func rotationView(st vault.RotationStatus) adminapi.KEKRotation {
	if st.Latest == nil {
		return adminapi.KEKRotation{}
	}
	l := st.Latest
	return adminapi.KEKRotation{
		ID: l.ID, From: l.FromKEK, To: l.ToKEK, State: st.State, Rewrapped: int(l.Rewrapped), Remaining: st.Remaining,
		StartedAt: l.StartedAt, FinishedAt: l.FinishedAt, Error: l.LastError,
	}
}

// backup streams an encrypted backup. It is built in memory first, so a
// failure is an error status rather than a truncated file.
func (a *API) backup(w http.ResponseWriter, r *http.Request) {
	if a.opts.Backup == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate cannot export backups")
		return
	}
	var buf bytes.Buffer
	if err := a.opts.Backup(r.Context(), &buf); err != nil {
		a.internal(w, "write the backup", err)
		return
	}
	a.opts.Log.Info("backup exported", "actor", principal(r).ID, "bytes", buf.Len())
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Header().Set("Content-Disposition", `attachment; filename="keygate-`+a.opts.Now().UTC().Format("20060102T150405Z")+`.kgbackup"`)
	w.WriteHeader(http.StatusOK)
	_, _ = buf.WriteTo(w)
}
