package cli

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

// fakeVault is the vault side of fakeAdmin: secrets, provider key rotation,
// KEK rotation and backups, following the adminapi contract.
type fakeVault struct {
	secrets    []*fakeSecret
	gatewayURL string // reported by GET /status
	rotation   *adminapi.KEKRotation
	kekTo      string // the last RotateKEKRequest.To received
	backup     []byte // what GET /vault/backup sends
	cutBackup  bool   // drop the connection half-way through a backup
	rotations  []adminapi.RotateProviderRequest
}

type fakeSecret struct {
	meta   adminapi.Secret
	values []string // values[i] is version i+1
}

// fakeTime is the fake's clock: a fixed time plus n minutes.
func fakeTime(n int) time.Time {
	return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute)
}

func (f *fakeAdmin) vaultRoutes(mux *http.ServeMux) {
	p := adminapi.Prefix
	f.vault.gatewayURL = "https://gateway.test:8787"
	mux.HandleFunc("GET "+p+"/status", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSONBody(w, http.StatusOK, adminapi.Status{Version: "test", GatewayURL: f.vault.gatewayURL, KEKID: "kek_test1"})
	})
	mux.HandleFunc("GET "+p+"/secrets", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := adminapi.SecretList{Secrets: []adminapi.Secret{}}
		for _, s := range f.vault.secrets {
			if s.meta.DeletedAt == nil || r.URL.Query().Get("deleted") == "true" {
				out.Secrets = append(out.Secrets, s.meta)
			}
		}
		writeJSONBody(w, http.StatusOK, out)
	})
	mux.HandleFunc("PUT "+p+"/secrets/{rest...}", f.putSecret)
	mux.HandleFunc("GET "+p+"/secrets/{rest...}", f.getSecret)
	mux.HandleFunc("POST "+p+"/secrets/{rest...}", f.postSecret)
	mux.HandleFunc("DELETE "+p+"/secrets/{rest...}", f.deleteSecret)
	mux.HandleFunc("POST "+p+"/providers/{name}/rotate", f.rotateProvider)
	mux.HandleFunc("POST "+p+"/vault/rotate-kek", f.rotateKEK)
	mux.HandleFunc("GET "+p+"/vault/status", f.vaultStatus)
	mux.HandleFunc("GET "+p+"/vault/backup", f.backup)
}

// findSecret returns the secret called name, or nil; f.mu must be held.
func (f *fakeAdmin) findSecret(name string) *fakeSecret {
	for _, s := range f.vault.secrets {
		if s.meta.Name == name {
			return s
		}
	}
	return nil
}

// secretTarget splits {rest...} into a valid name and an action, or answers with an error.
func secretTarget(w http.ResponseWriter, r *http.Request) (name, action string, ok bool) {
	name, action, _ = strings.Cut(r.PathValue("rest"), ":")
	if err := adminapi.ValidSecretName(name); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return "", "", false
	}
	return name, action, true
}

func (f *fakeAdmin) putSecret(w http.ResponseWriter, r *http.Request) {
	name, action, ok := secretTarget(w, r)
	if !ok {
		return
	}
	if action != "" {
		writeError(w, http.StatusNotFound, "not_found", "no such admin API route")
		return
	}
	var req adminapi.PutSecretRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Value == "" || len(req.Value) > 64<<10 {
		writeError(w, http.StatusBadRequest, "bad_request", "value must be 1 byte to 64 KiB")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.findSecret(name)
	status := http.StatusOK
	if s == nil {
		status = http.StatusCreated
		s = &fakeSecret{meta: adminapi.Secret{Name: name, CreatedAt: fakeTime(0)}}
		f.vault.secrets = append(f.vault.secrets, s)
	}
	s.values = append(s.values, req.Value)
	s.meta.CurrentVersion, s.meta.Versions = len(s.values), len(s.values)
	s.meta.UpdatedAt = fakeTime(len(s.values))
	writeJSONBody(w, status, s.meta)
}

func (f *fakeAdmin) getSecret(w http.ResponseWriter, r *http.Request) {
	name, action, ok := secretTarget(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.findSecret(name)
	if s == nil || (s.meta.DeletedAt != nil && action != "") {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no secret named %q", name))
		return
	}
	switch action {
	case "":
		writeJSONBody(w, http.StatusOK, s.meta)
	case "versions":
		out := adminapi.SecretVersionList{Name: name}
		for i := range s.values {
			v := adminapi.SecretVersion{Version: i + 1, Current: i+1 == s.meta.CurrentVersion, KEKID: "kek_test1", Format: 1, CreatedAt: fakeTime(i + 1)}
			if !v.Current {
				d := fakeTime(i + 1).Add(30 * 24 * time.Hour)
				v.DestroyAt = &d
			}
			out.Versions = append(out.Versions, v)
		}
		writeJSONBody(w, http.StatusOK, out)
	case "value":
		if f.role == adminapi.RoleOperator {
			writeError(w, http.StatusForbidden, "forbidden", "operator credentials may not read secret values")
			return
		}
		version := s.meta.CurrentVersion
		if q := r.URL.Query().Get("version"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 1 || n > len(s.values) {
				writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("secret %q has no version %s", name, q))
				return
			}
			version = n
		}
		writeJSONBody(w, http.StatusOK, adminapi.SecretValue{Name: name, Version: version, Value: s.values[version-1]})
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such admin API route")
	}
}

func (f *fakeAdmin) postSecret(w http.ResponseWriter, r *http.Request) {
	name, action, ok := secretTarget(w, r)
	if !ok {
		return
	}
	var req adminapi.RollbackSecretRequest
	if action == "rollback" && !decodeBody(w, r, &req) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.findSecret(name)
	if s == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no secret named %q", name))
		return
	}
	switch action {
	case "rollback":
		if req.Version < 1 || req.Version > len(s.values) {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("secret %q has no version %d", name, req.Version))
			return
		}
		s.values = append(s.values, s.values[req.Version-1])
		s.meta.CurrentVersion, s.meta.Versions = len(s.values), len(s.values)
		s.meta.UpdatedAt = fakeTime(len(s.values))
	case "restore":
		if s.meta.DeletedAt == nil {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("secret %q is not deleted", name))
			return
		}
		s.meta.DeletedAt, s.meta.PurgeAt = nil, nil
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such admin API route")
		return
	}
	writeJSONBody(w, http.StatusOK, s.meta)
}

func (f *fakeAdmin) deleteSecret(w http.ResponseWriter, r *http.Request) {
	name, action, ok := secretTarget(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.findSecret(name)
	if s == nil || action != "" {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no secret named %q", name))
		return
	}
	if r.URL.Query().Get("purge") == "true" {
		for i, x := range f.vault.secrets {
			if x == s {
				f.vault.secrets = append(f.vault.secrets[:i], f.vault.secrets[i+1:]...)
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	del, purge := fakeTime(100), fakeTime(100).Add(7*24*time.Hour)
	s.meta.DeletedAt, s.meta.PurgeAt = &del, &purge
	writeJSONBody(w, http.StatusOK, s.meta)
}

func (f *fakeAdmin) rotateProvider(w http.ResponseWriter, r *http.Request) {
	var req adminapi.RotateProviderRequest
	if !decodeBody(w, r, &req) {
		return
	}
	grace := 24 * time.Hour
	if req.Grace != "" {
		d, err := adminapi.ParseDuration(req.Grace)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		grace = d
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.providers {
		if p.Name == r.PathValue("name") {
			f.upstream[p.Name] = req.APIKey
			f.vault.rotations = append(f.vault.rotations, req)
			writeJSONBody(w, http.StatusOK, adminapi.ProviderRotation{
				Provider: p, Version: 1 + len(f.vault.rotations), PreviousVersion: len(f.vault.rotations),
				PreviousDestroyAt: fakeTime(0).Add(grace),
			})
			return
		}
	}
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no provider named %q", r.PathValue("name")))
}

func (f *fakeAdmin) rotateKEK(w http.ResponseWriter, r *http.Request) {
	var req adminapi.RotateKEKRequest
	if !decodeBody(w, r, &req) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vault.kekTo = req.To
	f.vault.rotation = &adminapi.KEKRotation{ID: "rot_test1", From: "kek_test1", To: "kek_test2", State: "running", Remaining: 4, StartedAt: fakeTime(0)}
	writeJSONBody(w, http.StatusAccepted, f.vault.rotation)
}

// vaultStatus moves a running rotation on by two data keys per call: the
// first call reports it stuck, the next ones carry on until it finishes.
func (f *fakeAdmin) vaultStatus(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := adminapi.VaultStatus{KEKID: "kek_test1", KEKKind: "file", Counts: []adminapi.KEKCount{{KEKID: "kek_test1", Format: 1, Versions: 4}},
		KEKs: []adminapi.KEKState{{KEKID: "kek_test1", Kind: "file", URL: "file:///var/lib/keygate/master.key", Current: true, Opens: 4, Verdict: "wraps 4 records"}}}
	if rot := f.vault.rotation; rot != nil && rot.State != "finished" {
		switch {
		case rot.Rewrapped == 0 && rot.Error == "":
			rot.Error = "kms: rate limited (test)"
		default:
			rot.Error = ""
			rot.Rewrapped, rot.Remaining = rot.Rewrapped+2, rot.Remaining-2
			if rot.Remaining == 0 {
				fin := fakeTime(5)
				rot.State, rot.FinishedAt = "finished", &fin
			}
		}
	}
	if rot := f.vault.rotation; rot != nil {
		c := *rot
		st.Rotation = &c
		if rot.State == "finished" {
			st.KEKID = rot.To
			st.Counts = []adminapi.KEKCount{{KEKID: rot.To, Format: 1, Versions: 4}}
			st.KEKs = []adminapi.KEKState{
				{KEKID: rot.To, Kind: "kms", URL: "base64key://REDACTED", Current: true, Opens: 4, Verdict: "wraps 4 records"},
				{KEKID: rot.From, Kind: "file", URL: "file:///var/lib/keygate/master.key", Verdict: "opens nothing; it can be destroyed once no keygate is configured with it"},
			}
		}
	}
	writeJSONBody(w, http.StatusOK, st)
}

func (f *fakeAdmin) backup(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	role, data, cut := f.role, f.vault.backup, f.vault.cutBackup
	f.mu.Unlock()
	if role == adminapi.RoleOperator {
		writeError(w, http.StatusForbidden, "forbidden", "operator credentials may not export backups")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if cut {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	_, _ = w.Write(data)
}
