package mint

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// Anthropic acts on API keys through Anthropic's Admin API, which lists
// keys and updates their name and status but creates and deletes none
// (keys are made in the Claude Console): keygate cannot mint or rotate an
// Anthropic key, but it can disable one found leaked.
type Anthropic struct {
	BaseURL  string        // default https://api.anthropic.com
	AdminKey secret.String // an Admin API key (sk-ant-admin...)
	HTTP     *http.Client
}

const anthropicAPI = "anthropic admin API"

func (a *Anthropic) do(ctx context.Context, method, path string, in, out any) error {
	auth := func(h http.Header) {
		h.Set("X-Api-Key", a.AdminKey.Reveal())
		h.Set("Anthropic-Version", "2023-06-01")
	}
	return callJSON(ctx, a.HTTP, anthropicAPI, orDefault(a.BaseURL, "https://api.anthropic.com"), auth, method, path, in, out)
}

// anthropicKey is an API key as the Admin API lists it: never its value,
// only a hint of its first and last characters.
type anthropicKey struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Hint   string `json:"partial_key_hint"`
	Status string `json:"status"`
}

// matches reports whether key fits the hint ("sk-ant-api03-R2D...igAA").
func (k anthropicKey) matches(key string) bool {
	head, tail, ok := strings.Cut(k.Hint, "...")
	return ok && head != "" && tail != "" && len(key) > len(head)+len(tail) && strings.HasPrefix(key, head) && strings.HasSuffix(key, tail)
}

// ErrNoKeyFits means no active key of the organization fits the key's
// hint: it is disabled already, or belongs to another organization.
var ErrNoKeyFits = errors.New(anthropicAPI + ": no active API key of the organization fits this key (disabled already, or of another organization)")

// ErrAmbiguous means more than one active key fits a key's hint, so
// keygate cannot tell which to disable.
var ErrAmbiguous = errors.New("more than one active Anthropic API key fits this key's hint")

// Disable finds the active API key whose hint fits key and sets it
// inactive, and returns its id and name. It disables nothing when no key
// or more than one fits (ErrAmbiguous).
func (a *Anthropic) Disable(ctx context.Context, key secret.String) (id, name string, err error) {
	var found []anthropicKey
	after := ""
	for page := 0; page < 50; page++ {
		var list struct {
			Data    []anthropicKey `json:"data"`
			HasMore bool           `json:"has_more"`
			LastID  string         `json:"last_id"`
		}
		q := url.Values{"limit": {"1000"}, "status": {"active"}}
		if after != "" {
			q.Set("after_id", after)
		}
		if err := a.do(ctx, http.MethodGet, "/v1/organizations/api_keys?"+q.Encode(), nil, &list); err != nil {
			return "", "", err
		}
		for _, k := range list.Data {
			if k.Status == "active" && k.matches(key.Reveal()) {
				found = append(found, k)
			}
		}
		if !list.HasMore || list.LastID == "" {
			break
		}
		after = list.LastID
	}
	switch len(found) {
	case 0:
		return "", "", ErrNoKeyFits
	case 1:
	default:
		return "", "", fmt.Errorf("%s: %w (%d do); disable it in the Claude Console", anthropicAPI, ErrAmbiguous, len(found))
	}
	k := found[0]
	if err := a.do(ctx, http.MethodPost, "/v1/organizations/api_keys/"+url.PathEscape(k.ID), map[string]string{"status": "inactive"}, nil); err != nil {
		return "", "", err
	}
	return k.ID, k.Name, nil
}
