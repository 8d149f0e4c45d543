package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

var providerName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func (a *API) createProvider(w http.ResponseWriter, r *http.Request) {
	var req adminapi.CreateProviderRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	apiKey := secret.New(strings.TrimSpace(req.APIKey))
	req.APIKey = ""
	if err := validateProvider(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	ref := strings.TrimSpace(req.APIKeyRef)
	switch {
	case ref != "" && !apiKey.IsZero():
		writeError(w, http.StatusBadRequest, "bad_request", "give api_key or api_key_ref, not both")
		return
	case ref == "" && apiKey.IsZero():
		writeError(w, http.StatusBadRequest, "bad_request", "api_key is required: the provider's real API key, which keygate stores encrypted (or api_key_ref, where keygate reads it)")
		return
	}
	ctx := r.Context()
	if cp, ok := cloudauth.LookupPreset(req.Preset); ok && !apiKey.IsZero() {
		if err := checkCloudCredential(ctx, cp, req.BaseURL, apiKey); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	existing, err := a.opts.Store.ListProviders(ctx)
	if err != nil {
		a.internal(w, "list providers", err)
		return
	}
	for _, p := range existing {
		if p.Name == req.Name {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("a provider named %q already exists; remove it first or choose another name", req.Name))
			return
		}
		if req.Default && p.IsDefault && p.Dialect == req.Dialect {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("provider %q is already the default for the %s API; add this one without default", p.Name, p.Dialect))
			return
		}
	}
	p := store.Provider{
		ID: newID("prv_"), Name: req.Name, Dialect: req.Dialect, BaseURL: req.BaseURL,
		Models: req.Models, IsDefault: req.Default, CreatedAt: a.opts.Now().UTC(), Env: req.Env,
		Preset: req.Preset, APIVersion: req.APIVersion,
	}
	p.SecretID = "provider/" + p.ID
	var sref store.SourceRef
	if ref != "" {
		// The reference is recorded before the provider, so a node that
		// loads the provider in between finds it unavailable, not broken.
		if sref, err = a.newSourceRef(p.SecretID, "provider:"+p.Name, ref, req.RefRefresh, req.RefGrace); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "api_key_ref: "+err.Error())
			return
		}
		if err := a.opts.Sources.Refs.PutSourceRef(ctx, sref); err != nil {
			a.internal(w, "record the reference", err)
			return
		}
	} else if _, err := a.opts.Vault.Put(ctx, p.SecretID, apiKey); err != nil {
		a.internal(w, "store provider key", err)
		return
	}
	if err := a.opts.Store.CreateProvider(ctx, p); err != nil {
		_ = a.opts.Store.DeleteSecret(ctx, p.SecretID)
		a.forgetSource(ctx, p.SecretID)
		if errors.Is(err, store.ErrConflict) {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("a provider named %q already exists", req.Name))
			return
		}
		a.internal(w, "create provider", err)
		return
	}
	if ref != "" {
		if err := a.followSource(ctx, sref); err != nil {
			_ = a.opts.Store.DeleteProvider(ctx, p.Name)
			_ = a.opts.Store.DeleteSecret(ctx, p.SecretID)
			a.writeSourceError(w, "key of provider "+p.Name, err)
			return
		}
	}
	a.providersChanged(r)
	web.WriteJSON(w, http.StatusCreated, a.providerView(ctx, p))
}

// checkCloudCredential checks the credential document of a cloud-identity
// provider by building its Authorizer, which calls no cloud. Errors name
// what is wrong and never quote the document.
func checkCloudCredential(ctx context.Context, cp cloudauth.Preset, baseURL string, doc secret.String) error {
	u, err := url.Parse(baseURL)
	if err != nil {
		return fmt.Errorf("base_url %q is not a URL", baseURL)
	}
	if _, err := cloudauth.New(ctx, cp, u, doc, cloudauth.Options{}); err != nil {
		return fmt.Errorf("api_key must be preset %s's credential document, a JSON object with \"kind\":%q (see keygate provider presets): %v", cp.Name, cp.Kind, err)
	}
	return nil
}

// validateProvider normalizes and checks a provider registration.
func validateProvider(req *adminapi.CreateProviderRequest) error {
	req.Name = strings.TrimSpace(req.Name)
	if !providerName.MatchString(req.Name) {
		return fmt.Errorf("name %q must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name)
	}
	req.Preset, req.APIVersion = strings.TrimSpace(req.Preset), strings.TrimSpace(req.APIVersion)
	if cp, ok := cloudauth.LookupPreset(req.Preset); ok {
		if req.Dialect != "" && req.Dialect != cp.Dialect {
			return fmt.Errorf("preset %s speaks the %s API; leave dialect out or set it to %s", cp.Name, cp.Dialect, cp.Dialect)
		}
		req.Dialect = cp.Dialect
		if strings.TrimSpace(req.BaseURL) == "" {
			return fmt.Errorf("base_url is required with preset %s, as in %s", cp.Name, cp.BaseURLExample)
		}
		if req.APIVersion != "" && cp.Wire == "" {
			return fmt.Errorf("api_version is for preset %s; preset %s takes none", cloudauth.PresetAzureEntra, cp.Name)
		}
	} else if req.Preset != "" {
		p, ok := provider.LookupPreset(req.Preset)
		if !ok {
			names := make([]string, 0, 16)
			for _, p := range provider.Presets() {
				names = append(names, p.Name)
			}
			for _, p := range cloudauth.Presets() {
				names = append(names, p.Name)
			}
			return fmt.Errorf("preset %q is not known; use one of %s", req.Preset, strings.Join(names, ", "))
		}
		if req.Dialect != "" && req.Dialect != p.Dialect {
			return fmt.Errorf("preset %s speaks the %s API; leave dialect out or set it to %s", p.Name, p.Dialect, p.Dialect)
		}
		req.Dialect = p.Dialect
		if strings.TrimSpace(req.BaseURL) == "" {
			req.BaseURL = p.BaseURL
		}
		if err := p.Validate(req.BaseURL, true); err != nil {
			return err
		}
	} else if req.APIVersion != "" {
		return errors.New("api_version is for presets that want one (azure-openai); set preset too")
	}
	if req.Dialect == "" {
		req.Dialect = "openai"
		if req.Name == "anthropic" {
			req.Dialect = "anthropic"
		}
	}
	if req.Env != "" && !keyEnv.MatchString(req.Env) {
		return fmt.Errorf("env %q must be 2-10 lower-case letters or digits, such as prod or staging", req.Env)
	}
	if req.Dialect != "openai" && req.Dialect != "anthropic" && req.Dialect != "gemini" {
		return fmt.Errorf("dialect %q must be openai, anthropic or gemini", req.Dialect)
	}
	u, err := url.Parse(strings.TrimSpace(req.BaseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base_url %q must be an http or https URL, such as https://api.openai.com/v1", req.BaseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("base_url must not carry credentials, a query or a fragment; keygate injects the API key itself")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if req.Dialect == "gemini" && (strings.HasSuffix(u.Path, "/v1beta") || strings.HasSuffix(u.Path, "/v1") || strings.HasSuffix(u.Path, "/openai")) {
		return fmt.Errorf("base_url %q: a gemini provider takes the host only, as in https://generativelanguage.googleapis.com; clients name the API version (/v1beta) in their paths, and Google's OpenAI-compatible endpoint is preset gemini", req.BaseURL)
	}
	req.BaseURL = u.String()
	for _, m := range req.Models {
		if !route.ValidPattern(m) {
			return fmt.Errorf("models: %q is not a valid pattern (use * and ? wildcards, as in gpt-*)", m)
		}
	}
	return nil
}

func (a *API) listProviders(w http.ResponseWriter, r *http.Request) {
	ps, err := a.opts.Store.ListProviders(r.Context())
	if err != nil {
		a.internal(w, "list providers", err)
		return
	}
	out := adminapi.ProviderList{Providers: make([]adminapi.Provider, 0, len(ps))}
	for _, p := range ps {
		out.Providers = append(out.Providers, a.providerView(r.Context(), p))
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getProvider(w http.ResponseWriter, r *http.Request) {
	p, err := a.opts.Store.GetProvider(r.Context(), r.PathValue("name"))
	if err != nil {
		a.lookupError(w, "provider", r.PathValue("name"), err)
		return
	}
	web.WriteJSON(w, http.StatusOK, a.providerView(r.Context(), p))
}

func (a *API) deleteProvider(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, err := a.opts.Store.GetProvider(ctx, r.PathValue("name"))
	if err != nil {
		a.lookupError(w, "provider", r.PathValue("name"), err)
		return
	}
	if err := a.opts.Store.DeleteProvider(ctx, p.Name); err != nil {
		a.lookupError(w, "provider", p.Name, err)
		return
	}
	a.forgetSource(ctx, p.SecretID)
	if err := a.opts.Store.DeleteSecret(ctx, p.SecretID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.opts.Log.Error("provider removed but its stored key could not be deleted", "provider", p.Name, "err", err)
	}
	a.providersChanged(r)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) providersChanged(r *http.Request) {
	if err := a.opts.ProvidersChanged(r.Context()); err != nil {
		a.opts.Log.Error("could not reload the provider table after a change; it will be retried on the next refresh", "err", err)
	}
}

func providerView(p store.Provider) adminapi.Provider {
	models := p.Models
	if models == nil {
		models = []string{}
	}
	return adminapi.Provider{ID: p.ID, Name: p.Name, Dialect: p.Dialect, BaseURL: p.BaseURL, Models: models, Default: p.IsDefault, CreatedAt: p.CreatedAt, Env: p.Env,
		Preset: p.Preset, APIVersion: p.APIVersion}
}

// providerView is p with its reference, when its key is kept in a source.
func (a *API) providerView(ctx context.Context, p store.Provider) adminapi.Provider {
	v := providerView(p)
	if ref, err := a.sourceOf(ctx, p.SecretID); err == nil && ref != nil {
		sv := a.sourceView(*ref)
		v.Source = &sv
	}
	return v
}

// lookupError answers a failed read of a named record.
func (a *API) lookupError(w http.ResponseWriter, kind, name string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no %s named %q", kind, name))
		return
	}
	a.internal(w, "read "+kind, err)
}

func (a *API) internal(w http.ResponseWriter, what string, err error) {
	a.opts.Log.Error("admin API: "+what+" failed", "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "keygate could not "+what+"; see its log")
}
