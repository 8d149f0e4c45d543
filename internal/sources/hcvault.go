package sources

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/keygate/keygate/internal/secret"
)

// VaultConfig reaches HashiCorp Vault or OpenBao.
type VaultConfig struct {
	Address string
	// Token authenticates directly; else RoleID and SecretID log in with AppRole.
	Token     secret.String
	RoleID    string
	SecretID  secret.String
	Namespace string
	HTTP      *http.Client
}

type vaultSource struct{ c *vaultapi.Client }

func (s *Sources) vaultSource(ctx context.Context) (*vaultSource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vault != nil {
		return s.vault, nil
	}
	vc := s.cfg.Vault
	if vc.Address == "" {
		return nil, errors.New("vault: no address: set the Vault address (VAULT_ADDR)")
	}
	cfg := vaultapi.DefaultConfig()
	cfg.Address = vc.Address
	cfg.HttpClient = httpClient(vc.HTTP, s.cfg.Timeout)
	cfg.Timeout = s.cfg.Timeout
	cfg.MaxRetries = 2
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	c.ClearToken()
	if vc.Namespace != "" {
		c.SetNamespace(vc.Namespace)
	}
	switch {
	case !vc.Token.IsZero():
		c.SetToken(vc.Token.Reveal())
	case vc.RoleID != "":
		sec, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": vc.RoleID, "secret_id": vc.SecretID.Reveal()})
		if err != nil {
			return nil, fmt.Errorf("vault: AppRole login: %w", vaultErr(err))
		}
		if sec == nil || sec.Auth == nil {
			return nil, errors.New("vault: AppRole login returned no token")
		}
		c.SetToken(sec.Auth.ClientToken)
	default:
		return nil, errors.New("vault: no credential: set a token (VAULT_TOKEN) or AppRole role and secret ids")
	}
	s.vault = &vaultSource{c: c}
	return s.vault, nil
}

func (v *vaultSource) read(ctx context.Context, mount, path string) (map[string]any, string, error) {
	kv, err := v.c.KVv2(mount).Get(ctx, path)
	if err != nil {
		if errors.Is(err, vaultapi.ErrSecretNotFound) {
			return nil, "", ErrNotFound
		}
		return nil, "", vaultErr(err)
	}
	version := ""
	if kv.VersionMetadata != nil {
		version = fmt.Sprint(kv.VersionMetadata.Version)
	}
	return kv.Data, version, nil
}

// list returns every secret path under dir, recursively.
func (v *vaultSource) list(ctx context.Context, mount, dir string) ([]string, error) {
	dir = strings.Trim(dir, "/")
	sec, err := v.c.Logical().ListWithContext(ctx, mount+"/metadata/"+dir)
	if err != nil {
		return nil, vaultErr(err)
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	keys, _ := sec.Data["keys"].([]any)
	var out []string
	for _, k := range keys {
		name, _ := k.(string)
		full := strings.TrimPrefix(dir+"/"+name, "/")
		if strings.HasSuffix(name, "/") {
			sub, err := v.list(ctx, mount, full)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		out = append(out, full)
	}
	return out, nil
}

// vaultErr keeps Vault's status and error list, without the request URL's
// query or headers.
func vaultErr(err error) error {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("vault answered %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return err
}
