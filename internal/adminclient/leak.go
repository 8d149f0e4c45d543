package adminclient

import (
	"context"
	"errors"
	"net/http"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
)

// ReportLeak tells keygate that the keygate credential key was found
// where it should not be (where: a URL or file:line). keygate revokes or
// suspends it and raises an alert; a credential keygate never issued is a
// false positive and changes nothing.
func (c *Client) ReportLeak(ctx context.Context, key secret.String, where string) (adminapi.ReportLeakResult, error) {
	var out adminapi.ReportLeakResult
	if key.IsZero() {
		return out, errors.New("keygate admin client: the reported key is empty")
	}
	err := c.do(ctx, http.MethodPost, "/leaks", adminapi.ReportLeakRequest{Key: key.Reveal(), Where: where}, &out)
	return out, err
}
