package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/usage"
)

// call is the state of one gateway request, shared by the steps that handle
// it and read by the access log when it ends. Of secrets it holds only the
// credential the caller presented, to strip every copy of it from the
// upstream request; nothing logs it.
type call struct {
	dialect  provider.Dialect
	keyID    string
	model    string
	upstream *route.Upstream
	body     []byte // the body to send upstream
	// sentModel is the model named upstream (a preset's deployment).
	sentModel string
	denied    string     // the denial code, when keygate refused the call
	failure   string     // upstream_unreachable, upstream_timeout, client_gone
	est       estimate   // the worst case reserved for the call
	adm       *admission // the call's hold on its limits, when it has any
	admission admission  // backs adm
	early     *early     // concurrency slots taken before the body was read, until adm takes them
	// tokenScope is the narrowed scope of the access token that
	// authenticated the call, if one did.
	tokenScope  *token.Scope
	tokenNarrow authz.Scope // tokenScope's allowances, for authz
	tokenAMR    []string    // how the token's holder authenticated ("otp")
	tokenFamily string      // the refresh family of that token
	risk        string      // the risk rules' decision: allow, step-up or deny
	settled     sync.Once   // settle runs once
	used        usage.Usage // what the answer reported it used, once read
	sentAt      time.Time   // when the request went upstream
	microUSD    int64       // what the call cost, once settled
	budgetMicro int64       // the tightest spend budget of its key, if any
	limitRPS    float64     // the tightest request-rate limit of its key, req/s, if any
	turn        uint64      // the end of the conversation, hashed, for the loop detector (0: none)
	riskRules   []string    // the risk rules that flagged the call
	// What the outbound credential check found in the body (leaks.go):
	// the action taken, the rules and the vault records' names.
	leakAction, leakRules, leakValues string
	leakOverride                      leak.Action // the key's own leak action, "" for the policy's
	answerLeaks                       []leak.Hit  // credentials found in the answer (checkAnswer)
	answerTextLeaks                   []leak.Hit  // found in a stream's text, split across events (textGuard)
	// metered is set once the call was settled: meteredIn and meteredOut
	// tokens, costing microUSD when priced (settleOnce).
	metered               bool
	meteredIn, meteredOut int64
	// presentedPrefix is the public start of the credential presented
	// (kg_live_abcd), for spotting guesses aimed at one key.
	presentedPrefix string
	requestID       string // as the client sees it in X-Request-Id
	cred            string // the credential presented; see the type's comment
	memHeld         int64  // bytes of the body budget the call holds (memory.go)
	translated      bool   // the call holds memory for a translated copy of its body
	mayTranslate    bool   // an alias call has deployments of the other dialect

	// A call for a model alias: the deployments to try, in order, the
	// one that answered, and what each attempt's body is made from.
	alias      *route.Alias
	order      []*route.Deployment
	deployment *route.Deployment
	raw        []byte
	fields     jsonpeek.Fields
	path       string

	// A call answered by a provider of the other dialect: its dialect, and
	// what the client asked for, to translate the answer back.
	translate    bool
	upDialect    provider.Dialect
	clientModel  string
	includeUsage bool

	// A call to Gemini's native API: what its path names, the model in
	// particular, which the upstream's path is made with (gemini.go).
	gemini provider.GeminiCall
	// countOnly marks a call that counts tokens (countTokens): it is
	// charged as a request, never as tokens or spend.
	countOnly bool

	// ws marks the Responses API's WebSocket mode: the upgrade, or one
	// response.create served on it (responses_ws.go).
	ws bool
	// ownsResponse marks a call that creates a response whose id is
	// recorded as its key's (responses_owner.go); responseID is that id.
	ownsResponse bool
	responseID   string

	// A /proxy/ call: the service and the path after its name.
	service  *route.Service
	passRest string

	// A Bedrock runtime call (bedrock.go): its path upstream.
	bedrockPath string

	// Tracing and overhead (tracing.go): the request's span, its GenAI
	// operation, the model the answer named; when the call is timed, its
	// start, the time spent waiting on upstream attempts and what keygate
	// added before the answer's headers.
	span         trace.Span
	traced       bool                  // span is recording: the trace is sampled
	steps        [nSteps]time.Duration // the pipeline steps' durations, when traced
	op           string
	respModel    string
	timed        bool
	start        time.Time
	upstreamWait time.Duration
	overhead     time.Duration
}

type callKey struct{}

func callFrom(ctx context.Context) *call {
	if c, ok := ctx.Value(callKey{}).(*call); ok {
		return c
	}
	return &call{}
}

// logFields adds the call's facts to its access-log line.
func logFields(r *http.Request) []slog.Attr {
	c := callFrom(r.Context())
	attrs := make([]slog.Attr, 0, 6)
	if c.keyID != "" {
		attrs = append(attrs, slog.String("key_id", c.keyID))
	}
	if c.model != "" {
		attrs = append(attrs, slog.String("model", c.model))
	}
	if c.upstream != nil {
		attrs = append(attrs, slog.String("provider", c.upstream.Name))
	}
	if c.denied != "" {
		attrs = append(attrs, slog.String("denied", c.denied))
	}
	if c.failure != "" {
		attrs = append(attrs, slog.String("failure", c.failure))
	}
	if c.risk != "" {
		attrs = append(attrs, slog.String("risk", c.risk))
	}
	return attrs
}

// principal is who the call is made by, for authz: the key's grant and
// the access token's scope, if a token authenticated the call.
func (c *call) principal(key *principal.Principal) authz.Principal {
	p := authz.Principal{Grant: key.Grant}
	if c.tokenScope != nil {
		p.Token = &c.tokenNarrow
	}
	return p
}

// wireDialect is the dialect of the provider's own answer.
func (c *call) wireDialect() provider.Dialect {
	if c.translate {
		return c.upDialect
	}
	return c.dialect
}
