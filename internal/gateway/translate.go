package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/translate"
)

// A chat request in one API dialect can be served by a provider of the
// other: an OpenAI client's /v1/chat/completions by an Anthropic model,
// an Anthropic client's /v1/messages by an OpenAI-compatible one. The
// request is translated on the way out (internal/translate) and the
// answer, stream or not, error or not, on the way back; usage is metered
// on the provider's own answer before translation.

// maxTranslatedBody bounds a non-streamed answer read whole to translate it.
const maxTranslatedBody = 32 << 20

// translatedPath is the provider-side path of a translatable client path,
// or "" when the path cannot be translated.
func translatedPath(clientPath string) string {
	switch clientPath {
	case "/v1/chat/completions":
		return "/v1/messages"
	case "/v1/messages":
		return "/v1/chat/completions"
	}
	return ""
}

// wire returns the dialect a provider speaks.
func (g *Gateway) wire(up *route.Upstream) provider.Dialect {
	switch up.Dialect {
	case g.anthropic.Name():
		return g.anthropic
	case g.gemini.Name():
		return g.gemini
	}
	return g.openai
}

// translatable reports whether keygate translates between the dialects
// called from and to: OpenAI's and Anthropic's chat APIs, each way.
// Gemini's native API is served only by its own providers.
func translatable(from, to string) bool {
	return from != to && (from == "openai" || from == "anthropic") && (to == "openai" || to == "anthropic")
}

// crossDialect reports whether a call to up needs translating, and
// refuses (false, err) one that would but cannot be.
func (g *Gateway) crossDialect(c *call, up *route.Upstream, clientPath string) (bool, error) {
	if up.Dialect == c.dialect.Name() {
		return false, nil
	}
	if translatedPath(clientPath) == "" || !translatable(c.dialect.Name(), up.Dialect) {
		return false, &route.WrongDialectError{Provider: up.Name, ProviderDialect: up.Dialect, RequestDialect: c.dialect.Name()}
	}
	return true, nil
}

// translateRequest turns the client's body into the provider's dialect,
// naming model.
func (g *Gateway) translateRequest(ctx context.Context, c *call, body []byte, model string) ([]byte, error) {
	if !c.translated {
		// Decoding, converting and re-encoding holds about two more
		// copies of the body while it runs (memory.go).
		if err := g.hold(ctx, c, 2*int64(len(body))); err != nil {
			return nil, err
		}
		c.translated = true
	}
	if c.dialect == g.openai {
		return translate.ChatToMessagesRequest(body, model, int(g.opts.Limits.DefaultMaxTokens))
	}
	return translate.MessagesToChatRequest(body, model)
}

// wantsStreamUsage reports whether an OpenAI client asked for the final
// usage chunk of its stream (stream_options.include_usage).
func wantsStreamUsage(body []byte) bool {
	if !bytes.Contains(body, []byte(`"include_usage"`)) {
		return false
	}
	var v struct {
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	return json.Unmarshal(body, &v) == nil && v.StreamOptions.IncludeUsage
}

// translateResponse turns the provider's answer into the client's
// dialect. Its body is already metered and scrubbed.
func (g *Gateway) translateResponse(resp *http.Response, c *call) error {
	toChat := c.dialect == g.openai
	closer := resp.Body.(io.Closer)
	if resp.StatusCode >= 400 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return fmt.Errorf("read upstream error body: %w", err)
		}
		if toChat {
			b = translate.MessagesToChatError(resp.StatusCode, b)
		} else {
			b = translate.ChatToMessagesError(resp.StatusCode, b)
		}
		setBody(resp, b, closer)
		return nil
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		if toChat {
			resp.Body = translate.MessagesToChatStream(resp.Body, c.clientModel, c.includeUsage)
		} else {
			resp.Body = translate.ChatToMessagesStream(resp.Body, c.clientModel)
		}
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxTranslatedBody))
	if err != nil {
		return fmt.Errorf("read upstream answer: %w", err)
	}
	if toChat {
		b, err = translate.MessagesToChatResponse(b, c.clientModel)
	} else {
		b, err = translate.ChatToMessagesResponse(b, c.clientModel)
	}
	if err != nil {
		return fmt.Errorf("translate the upstream answer: %w", err)
	}
	setBody(resp, b, closer)
	return nil
}

// setBody replaces a response's body with b; closing it closes the
// original (which settles the call).
func setBody(resp *http.Response, b []byte, closer io.Closer) {
	resp.Body = struct {
		io.Reader
		io.Closer
	}{bytes.NewReader(b), closer}
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Set("Content-Type", "application/json")
}
