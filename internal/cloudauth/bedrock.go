package cloudauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/translate"
)

// BedrockAnthropicVersion is the anthropic_version Bedrock's Anthropic
// models take in an InvokeModel body.
const BedrockAnthropicVersion = "bedrock-2023-05-31"

// maxBody bounds a request body the Authorizers read to sign or adapt.
const maxBody = 32 << 20

// Values of Credential.BedrockAPI: which Bedrock runtime API an Anthropic
// Messages request (or an OpenAI chat request, translated to Messages by
// the gateway) becomes.
const (
	// BedrockAPIAuto sends Anthropic models (a model id holding
	// "anthropic.", inference profiles such as us.anthropic.claude-...
	// included) to InvokeModel in Anthropic's own body, which keeps every
	// Messages feature, and every other model (Amazon Nova, Meta Llama,
	// Mistral, Cohere, an application inference profile's ARN) to Converse.
	BedrockAPIAuto = "auto"
	// BedrockAPIConverse sends every model to Converse.
	BedrockAPIConverse = "converse"
	// BedrockAPIInvoke sends every model to InvokeModel in Anthropic's
	// body: for an application inference profile of a Claude model.
	BedrockAPIInvoke = "invoke"
)

// bedrock signs requests to the Bedrock runtime with SigV4. An Anthropic
// Messages request (POST .../v1/messages) becomes InvokeModel (or
// InvokeModelWithResponseStream), whose event stream is turned back into
// Anthropic server-sent events, or Converse (ConverseStream), translated
// both ways (internal/translate), as api says; Bedrock's own paths
// (/model/{id}/invoke, /converse, /converse-stream, ...) are signed and
// passed through for clients that speak them.
type bedrock struct {
	region string
	api    string // a BedrockAPI* value
	creds  aws.CredentialsProvider
	signer *v4.Signer
	now    func() time.Time
	// converse shapes the Converse calls made from Messages requests
	// (the provider's guardrail).
	converse translate.ConverseOptions
}

// bedrockAPI checks a credential document's bedrock_api.
func bedrockAPI(v string) (string, error) {
	switch v {
	case "", BedrockAPIAuto:
		return BedrockAPIAuto, nil
	case BedrockAPIConverse, BedrockAPIInvoke:
		return v, nil
	}
	return "", fmt.Errorf("aws: bedrock_api %q is not auto, converse or invoke", v)
}

// CheckMessages implements MessagesChecker: a Messages request for a model
// reached through Converse must translate to it.
func (b *bedrock) CheckMessages(body []byte) error {
	if !b.usesConverse(requestModel(body)) {
		return nil
	}
	_, _, _, err := translate.MessagesToConverseRequestWith(body, b.converse)
	return err
}

// usesConverse reports whether a Messages request for model goes to
// Converse rather than InvokeModel.
func (b *bedrock) usesConverse(model string) bool {
	switch b.api {
	case BedrockAPIConverse:
		return true
	case BedrockAPIInvoke:
		return false
	}
	return !strings.Contains(model, "anthropic.")
}

func newBedrock(ctx context.Context, c Credential, o Options) (*bedrock, error) {
	id := AWSIdentity{Region: c.Region, AccessKeyID: c.AccessKeyID, SecretAccessKey: secret.New(c.SecretAccessKey), SessionToken: secret.New(c.SessionToken),
		RoleARN: c.RoleARN, ExternalID: c.ExternalID, WebIdentityTokenFile: c.WebIdentityTokenFile, STSEndpoint: c.STSEndpoint}
	api, err := bedrockAPI(c.BedrockAPI)
	if err != nil {
		return nil, err
	}
	conv := translate.ConverseOptions{Guardrail: c.BedrockGuardrail}
	if err := conv.Check(); err != nil {
		return nil, fmt.Errorf("aws: %w", err)
	}
	creds, err := id.Credentials(ctx, o.HTTP)
	if err != nil {
		return nil, err
	}
	return &bedrock{region: c.Region, api: api, creds: creds, signer: v4.NewSigner(), now: time.Now, converse: conv}, nil
}

// NewBedrock returns the Bedrock Authorizer for an AWS identity (exported
// for tests and tools that hold an identity rather than a document).
func NewBedrock(ctx context.Context, id AWSIdentity, hc *http.Client) (Authorizer, error) {
	creds, err := id.Credentials(ctx, hc)
	if err != nil {
		return nil, err
	}
	return &bedrock{region: id.Region, api: BedrockAPIAuto, creds: creds, signer: v4.NewSigner(), now: time.Now}, nil
}

func (b *bedrock) RoundTrip(req *http.Request, next http.RoundTripper) (*http.Response, error) {
	body, err := readAll(req)
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	stripCredential(out.Header)
	betas := out.Header.Values("Anthropic-Beta")
	for k := range out.Header {
		if strings.HasPrefix(k, "Anthropic-") {
			delete(out.Header, k)
		}
	}
	var stream, adapted, converse bool
	var model string
	switch {
	case strings.HasSuffix(out.URL.Path, "/v1/messages"):
		base := strings.TrimSuffix(out.URL.Path, "/v1/messages")
		op := "invoke"
		if converse = b.usesConverse(requestModel(body)); converse {
			op = "converse"
			body, model, stream, err = translate.MessagesToConverseRequestWith(body, b.converse)
			if err != nil {
				return refusal(req, err), nil
			}
		} else {
			body, model, stream, err = adaptMessages(body, "bedrock", BedrockAnthropicVersion, betas, true)
			if err != nil {
				return nil, err
			}
		}
		switch {
		case stream && converse:
			op = "converse-stream"
		case stream:
			op = "invoke-with-response-stream"
		}
		if stream {
			out.Header.Set("Accept", "application/vnd.amazon.eventstream")
		} else {
			out.Header.Set("Accept", "application/json")
		}
		out.URL.Path = base + "/model/" + model + "/" + op
		out.URL.RawPath = base + "/model/" + url.PathEscape(model) + "/" + op
		adapted = true
	case strings.Contains(out.URL.Path, "/model/"):
		// Bedrock's own API, as a client speaking it sent it.
	default:
		return nil, fmt.Errorf("bedrock: keygate forwards POST /v1/messages and Bedrock's /model/{id}/... paths, not %s", out.URL.Path)
	}
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	out.Header.Set("Content-Type", "application/json")
	out.GetBody = nil
	creds, err := b.creds.Retrieve(out.Context())
	if err != nil {
		return nil, fmt.Errorf("bedrock: get AWS credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := b.signer.SignHTTP(out.Context(), creds, out, hex.EncodeToString(sum[:]), "bedrock", b.region, b.now()); err != nil {
		return nil, fmt.Errorf("bedrock: sign the request: %w", err)
	}
	resp, err := next.RoundTrip(out)
	if err != nil || !adapted {
		return resp, err
	}
	switch {
	case resp.StatusCode >= 400:
		return anthropicError(resp), nil
	case converse:
		return converseAnswer(resp, model, stream)
	case stream:
		resp.Body = eventStreamToSSE(resp.Body)
		resp.Header.Set("Content-Type", "text/event-stream")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	}
	return resp, nil
}

// adaptMessages rewrites an Anthropic Messages body for a cloud: the model
// moves to the URL, anthropic_version goes into the body, and the beta
// headers become anthropic_beta. dropStream removes "stream" (Bedrock picks
// streaming by path; Vertex keeps it).
func adaptMessages(body []byte, cloud, version string, betas []string, dropStream bool) ([]byte, string, bool, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, "", false, fmt.Errorf("%s: the Messages request is not a JSON object", cloud)
	}
	var model string
	if err := json.Unmarshal(m["model"], &model); err != nil || model == "" || strings.ContainsAny(model, "/?#") {
		return nil, "", false, fmt.Errorf("%s: the request names no model id keygate can put in a URL", cloud)
	}
	var stream bool
	_ = json.Unmarshal(m["stream"], &stream)
	delete(m, "model")
	if dropStream {
		delete(m, "stream")
	}
	m["anthropic_version"], _ = json.Marshal(version)
	if len(betas) > 0 {
		var list []string
		for _, b := range betas {
			for _, x := range strings.Split(b, ",") {
				if x = strings.TrimSpace(x); x != "" {
					list = append(list, x)
				}
			}
		}
		m["anthropic_beta"], _ = json.Marshal(list)
	}
	out, err := json.Marshal(m)
	return out, model, stream, err
}

func readAll(req *http.Request) ([]byte, error) {
	if req.Body == nil {
		return nil, nil
	}
	defer req.Body.Close()
	b, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, errors.New("cloudauth: the request body is larger than 32 MiB")
	}
	return b, nil
}

// anthropicError rewrites a cloud's error answer into Anthropic's error
// shape, so Anthropic clients (and keygate's translation to OpenAI's)
// read it: {"type":"error","error":{"type":...,"message":...}}.
func anthropicError(resp *http.Response) *http.Response {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	var in struct {
		Message string `json:"message"`
		Error   struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &in)
	msg := in.Message
	if msg == "" {
		msg = in.Error.Message
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	typ := in.Error.Type
	if typ == "" {
		typ = map[int]string{400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
			429: "rate_limit_error", 529: "overloaded_error"}[resp.StatusCode]
		if typ == "" {
			typ = "api_error"
		}
	}
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Set("Content-Type", "application/json")
	return resp
}

// eventStreamToSSE decodes an AWS event stream of InvokeModelWithResponseStream
// chunks and writes each Anthropic event as a server-sent event, as it
// arrives.
func eventStreamToSSE(body io.ReadCloser) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		dec := eventstream.NewDecoder()
		var buf []byte
		for {
			msg, err := dec.Decode(body, buf)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				pw.CloseWithError(err)
				return
			}
			if err := writeEvent(pw, msg); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return &sseBody{PipeReader: pr, upstream: body}
}

type sseBody struct {
	*io.PipeReader
	upstream io.Closer
}

func (s *sseBody) Close() error {
	err := s.upstream.Close()
	s.PipeReader.Close()
	return err
}

func header(msg eventstream.Message, name string) string {
	if v := msg.Headers.Get(name); v != nil {
		return v.String()
	}
	return ""
}

func writeEvent(w io.Writer, msg eventstream.Message) error {
	switch header(msg, ":message-type") {
	case "event":
		if header(msg, ":event-type") != "chunk" {
			return nil
		}
		var chunk struct {
			Bytes string `json:"bytes"`
		}
		if err := json.Unmarshal(msg.Payload, &chunk); err != nil {
			return fmt.Errorf("bedrock: a stream chunk is not JSON: %w", err)
		}
		ev, err := base64.StdEncoding.DecodeString(chunk.Bytes)
		if err != nil {
			return fmt.Errorf("bedrock: a stream chunk's bytes are not base64: %w", err)
		}
		var typ struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(ev, &typ); err != nil || typ.Type == "" {
			return errors.New("bedrock: a stream chunk holds no Anthropic event")
		}
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ.Type, ev)
		return err
	case "exception", "error":
		var m struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(msg.Payload, &m)
		kind := header(msg, ":exception-type")
		if kind == "" {
			kind = header(msg, ":error-code")
		}
		b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": "api_error", "message": strings.TrimSpace(kind + ": " + m.Message)}})
		_, err := fmt.Fprintf(w, "event: error\ndata: %s\n\n", b)
		return err
	}
	return nil
}

// converseAnswer turns a successful Converse or ConverseStream answer into
// an Anthropic Messages answer: JSON, or server-sent events as the stream
// arrives. The message id is Bedrock's request id.
func converseAnswer(resp *http.Response, model string, stream bool) (*http.Response, error) {
	id := "msg_bdrk_" + messageIDPart(resp.Header.Get("X-Amzn-Requestid"))
	if stream {
		resp.Body = translate.ConverseStreamToMessages(resp.Body, id, model)
		resp.Header.Set("Content-Type", "text/event-stream")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		return resp, nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("bedrock: read the Converse answer: %w", err)
	}
	b, err := translate.ConverseToMessagesResponse(raw, id, model)
	if err != nil {
		return nil, fmt.Errorf("bedrock: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Set("Content-Type", "application/json")
	return resp, nil
}

// messageIDPart keeps the characters of an AWS request id that belong in
// a message id; a missing one is replaced by a random id.
func messageIDPart(requestID string) string {
	id := strings.Map(func(r rune) rune {
		if r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return -1
	}, requestID)
	if id == "" || len(id) > 64 {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	return id
}

// requestModel reads a Messages body's model without decoding the rest of
// it; "" when it names none.
func requestModel(body []byte) string {
	f, err := jsonpeek.Scan(body)
	if err != nil {
		return ""
	}
	return f.Model
}

// refusal answers a request keygate will not send upstream, in Anthropic's
// error shape (400 invalid_request_error), which the gateway passes to an
// Anthropic client and translates for an OpenAI one. Nothing went upstream.
func refusal(req *http.Request, err error) *http.Response {
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": "invalid_request_error",
		"message": strings.TrimPrefix(err.Error(), "translate: ")}})
	return &http.Response{StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(b))}}, Body: io.NopCloser(bytes.NewReader(b)),
		ContentLength: int64(len(b)), Request: req}
}
