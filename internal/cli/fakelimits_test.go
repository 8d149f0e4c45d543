package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

// fakeLimits is the limits side of fakeAdmin: key updates, key usage and
// groups, following the adminapi contract.
type fakeLimits struct {
	groups    []adminapi.Group
	usage     map[string][]adminapi.UsageRow // key id -> rows, newest day first
	patches   []string                       // raw bodies of PATCH /keys/{ref}, in order
	usageDays []string                       // the days query of each usage request
}

// fakeName is the admin API's form of key and group names.
var fakeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (f *fakeAdmin) limitRoutes(mux *http.ServeMux) {
	p := adminapi.Prefix
	f.limits.usage = map[string][]adminapi.UsageRow{}
	mux.HandleFunc("PATCH "+p+"/keys/{ref}", f.updateKey)
	mux.HandleFunc("GET "+p+"/keys/{ref}/usage", f.keyUsage)
	mux.HandleFunc("POST "+p+"/groups", f.createGroup)
	mux.HandleFunc("GET "+p+"/groups", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := adminapi.GroupList{Groups: []adminapi.Group{}}
		for i := range f.limits.groups {
			out.Groups = append(out.Groups, f.group(i))
		}
		writeJSONBody(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET "+p+"/groups/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if i := f.findGroup(r.PathValue("name")); i >= 0 {
			writeJSONBody(w, http.StatusOK, f.group(i))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no group named %q", r.PathValue("name")))
	})
	mux.HandleFunc("PATCH "+p+"/groups/{name}", f.updateGroup)
	mux.HandleFunc("DELETE "+p+"/groups/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		i := f.findGroup(r.PathValue("name"))
		if i < 0 {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no group named %q", r.PathValue("name")))
			return
		}
		if g := f.group(i); g.Keys > 0 {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("group %q still holds %d keys", g.Name, g.Keys))
			return
		}
		f.limits.groups = append(f.limits.groups[:i], f.limits.groups[i+1:]...)
		w.WriteHeader(http.StatusNoContent)
	})
}

// findGroup returns the index of the group called name, or -1; f.mu must be held.
func (f *fakeAdmin) findGroup(name string) int {
	for i, g := range f.limits.groups {
		if g.Name == name {
			return i
		}
	}
	return -1
}

// group returns group i with its count of keys; f.mu must be held.
func (f *fakeAdmin) group(i int) adminapi.Group {
	g := f.limits.groups[i]
	g.Keys = 0
	for _, k := range f.keys {
		if k.Group == g.Name {
			g.Keys++
		}
	}
	return g
}

// decodeRaw decodes a JSON body strictly, like decodeBody, and also returns it as sent.
func decodeRaw(w http.ResponseWriter, r *http.Request, v any) (string, bool) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "read body: "+err.Error())
		return "", false
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	if !decodeBody(w, r, v) {
		return "", false
	}
	return string(b), true
}

func (f *fakeAdmin) updateKey(w http.ResponseWriter, r *http.Request) {
	var req adminapi.UpdateKeyRequest
	raw, ok := decodeRaw(w, r, &req)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits.patches = append(f.limits.patches, strings.TrimSpace(raw))
	i := f.findKey(r.PathValue("ref"))
	if i < 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no key named %q", r.PathValue("ref")))
		return
	}
	if req.Limits != nil {
		if err := req.Limits.Validate(); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	if req.Group != nil && *req.Group != "" && f.findGroup(*req.Group) < 0 {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("no group named %q", *req.Group))
		return
	}
	if !f.updateScopes(w, i, req) {
		return
	}
	if req.Limits != nil {
		f.keys[i].Limits = *req.Limits
	}
	if req.Group != nil {
		f.keys[i].Group = *req.Group
	}
	writeJSONBody(w, http.StatusOK, f.keys[i])
}

func (f *fakeAdmin) keyUsage(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query().Get("days")
	f.limits.usageDays = append(f.limits.usageDays, q)
	if q != "" {
		if n, err := strconv.Atoi(q); err != nil || n < 1 || n > 400 {
			writeError(w, http.StatusBadRequest, "bad_request", "days must be 1 to 400")
			return
		}
	}
	i := f.findKey(r.PathValue("ref"))
	if i < 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no key named %q", r.PathValue("ref")))
		return
	}
	rows := append([]adminapi.UsageRow{}, f.limits.usage[f.keys[i].ID]...)
	writeJSONBody(w, http.StatusOK, adminapi.KeyUsage{Key: f.keys[i], Rows: rows})
}

func (f *fakeAdmin) createGroup(w http.ResponseWriter, r *http.Request) {
	var req adminapi.GroupRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if !fakeName.MatchString(req.Name) {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("group name %q is not valid", req.Name))
		return
	}
	if err := req.Limits.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.findGroup(req.Name) >= 0 {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("a group named %q already exists", req.Name))
		return
	}
	f.limits.groups = append(f.limits.groups, adminapi.Group{
		Name: req.Name, Limits: req.Limits, CreatedAt: time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC),
	})
	writeJSONBody(w, http.StatusCreated, f.group(len(f.limits.groups)-1))
}

func (f *fakeAdmin) updateGroup(w http.ResponseWriter, r *http.Request) {
	var req adminapi.GroupRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Name != "" {
		writeError(w, http.StatusBadRequest, "bad_request", "a group cannot be renamed")
		return
	}
	if err := req.Limits.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.findGroup(r.PathValue("name"))
	if i < 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no group named %q", r.PathValue("name")))
		return
	}
	f.limits.groups[i].Limits = req.Limits
	writeJSONBody(w, http.StatusOK, f.group(i))
}

// mustJSON encodes v for comparisons with what the fake received.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
