package adminclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
)

// routingPath is the path of a kind of routing entry (deployment, alias,
// service), and of one entry when name is set.
func routingPath(kind, name string) (string, error) {
	plural := map[string]string{"deployment": "deployments", "alias": "aliases", "service": "services"}[kind]
	if plural == "" {
		return "", fmt.Errorf("keygate admin client: kind %q must be deployment, alias or service", kind)
	}
	p := "/routing/" + plural
	if name == "" {
		return p, nil
	}
	if strings.TrimSpace(name) == "" {
		return "", fmt.Errorf("keygate admin client: the %s name is empty", kind)
	}
	parts := strings.Split(name, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return p + "/" + strings.Join(parts, "/"), nil
}

func forceQuery(force bool) string {
	if force {
		return "?force=true"
	}
	return ""
}

// ListRouting returns every deployment, alias and service, from the
// configuration file and the database.
func (c *Client) ListRouting(ctx context.Context) (adminapi.RoutingList, error) {
	var out adminapi.RoutingList
	err := c.do(ctx, http.MethodGet, "/routing", nil, &out)
	return out, err
}

// GetRouting returns one routing entry.
func (c *Client) GetRouting(ctx context.Context, kind, name string) (adminapi.RoutingEntry, error) {
	var out adminapi.RoutingEntry
	p, err := routingPath(kind, name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// PutRouting creates a routing entry in the database, or with replace
// creates or replaces it. force makes a change that leaves keys with
// nothing to reach.
func (c *Client) PutRouting(ctx context.Context, e adminapi.RoutingEntry, replace, force bool) (adminapi.RoutingPlan, error) {
	var out adminapi.RoutingPlan
	method, name := http.MethodPost, ""
	if replace {
		method, name = http.MethodPut, e.Name
	}
	p, err := routingPath(e.Kind, name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, method, p+forceQuery(force), e, &out)
	return out, err
}

// DeleteRouting removes a routing entry from the database.
func (c *Client) DeleteRouting(ctx context.Context, kind, name string, force bool) (adminapi.RoutingPlan, error) {
	var out adminapi.RoutingPlan
	p, err := routingPath(kind, name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodDelete, p+forceQuery(force), nil, &out)
	return out, err
}

// ApplyRouting makes the database's routing what a document declares, or
// with DryRun shows the plan.
func (c *Client) ApplyRouting(ctx context.Context, req adminapi.ApplyRoutingRequest) (adminapi.RoutingPlan, error) {
	var out adminapi.RoutingPlan
	err := c.do(ctx, http.MethodPost, "/routing/apply", req, &out)
	return out, err
}
