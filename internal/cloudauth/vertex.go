package cloudauth

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate/internal/secret"
)

// VertexAnthropicVersion is the anthropic_version Vertex AI's Anthropic
// models take in a rawPredict body.
const VertexAnthropicVersion = "vertex-2023-10-16"

// vertex adds a Google access token to each request. For Anthropic models
// a Messages request (POST .../v1/messages) becomes rawPredict, or
// streamRawPredict when it streams, on the publisher model under the
// provider's base URL (.../v1/projects/P/locations/L); Gemini's
// OpenAI-compatible endpoint needs only the token.
type vertex struct {
	ts        oauth2.TokenSource
	anthropic bool
}

func newVertex(ctx context.Context, c Credential, anthropic bool, o Options) (*vertex, error) {
	id := GoogleIdentity{}
	if len(c.ServiceAccount) > 0 {
		id.ServiceAccountJSON = secret.New(string(c.ServiceAccount))
	}
	ts, err := id.TokenSource(ctx, o.HTTP)
	if err != nil {
		return nil, err
	}
	return &vertex{ts: ts, anthropic: anthropic}, nil
}

func (v *vertex) RoundTrip(req *http.Request, next http.RoundTripper) (*http.Response, error) {
	out := req.Clone(req.Context())
	stripCredential(out.Header)
	adapted := false
	if v.anthropic {
		if !strings.HasSuffix(out.URL.Path, "/v1/messages") {
			return nil, fmt.Errorf("vertex: keygate forwards POST /v1/messages to Anthropic models on Vertex AI, not %s", out.URL.Path)
		}
		body, err := readAll(req)
		if err != nil {
			return nil, err
		}
		betas := out.Header.Values("Anthropic-Beta")
		for k := range out.Header {
			if strings.HasPrefix(k, "Anthropic-") {
				delete(out.Header, k)
			}
		}
		body, model, stream, err := adaptMessages(body, "vertex", VertexAnthropicVersion, betas, false)
		if err != nil {
			return nil, err
		}
		op := ":rawPredict"
		if stream {
			op = ":streamRawPredict"
		}
		base := strings.TrimSuffix(out.URL.Path, "/v1/messages")
		out.URL.Path = base + "/publishers/anthropic/models/" + model + op
		out.URL.RawPath = base + "/publishers/anthropic/models/" + url.PathEscape(model) + op
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.Header.Set("Content-Length", strconv.Itoa(len(body)))
		out.GetBody = nil
		adapted = true
	}
	tok, err := v.ts.Token()
	if err != nil {
		return nil, fmt.Errorf("vertex: get a Google access token: %w", err)
	}
	tok.SetAuthHeader(out)
	resp, err := next.RoundTrip(out)
	if err == nil && adapted && resp.StatusCode >= 400 {
		return anthropicError(resp), nil
	}
	return resp, err
}
