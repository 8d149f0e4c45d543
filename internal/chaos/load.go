package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// kind is one kind of call the load makes.
type kind string

const (
	kindChat       kind = "chat"
	kindStream     kind = "chat, streamed"
	kindEmbed      kind = "embeddings"
	kindToAnthr    kind = "OpenAI call to an Anthropic alias"
	kindToOpenAI   kind = "Anthropic call to an OpenAI alias"
	kindPassthru   kind = "passthrough service"
	kindToken      kind = "token exchange or refresh"
	kindTokenChat  kind = "chat with an access token"
	kindChurnChat  kind = "chat with a churned key"
	kindBudgetChat kind = "chat with a limited key"
)

// share is one kind's part of the load.
type share struct {
	k     kind
	parts int
}

// loadMix is the share of each kind in the load, in parts.
func loadMix() []share {
	return []share{
		{kindChat, 22}, {kindStream, 14}, {kindEmbed, 8}, {kindToAnthr, 8}, {kindToOpenAI, 6},
		{kindPassthru, 8}, {kindToken, 3}, {kindTokenChat, 7}, {kindChurnChat, 6}, {kindBudgetChat, 18},
	}
}

// result is one call as its client saw it.
type result struct {
	start, end time.Time
	kind       kind
	class      keyClass
	status     int
	ok         bool   // answered correctly: a right 2xx, or a right refusal
	refused    bool   // a refusal by design (part of ok)
	why        string // what was wrong, for a failure
	requestID  string
	micro      int64 // cost in the answer's usage (admitted model calls)
	seq        int64 // the call's number, in its prompt
	key        *apiKey
}

// admitted says keygate let the call through and answered it.
func (r *result) admitted() bool { return r.status >= 200 && r.status < 300 }

// tokenHolder is a client that works with short-lived tokens exchanged
// for its key: it refreshes one at a time, as refresh tokens are single use.
type tokenHolder struct {
	key     *apiKey
	mu      sync.Mutex // held across a refresh
	access  string
	refresh string
}

// loader drives the gateway with a steady, bounded mixed load.
type loader struct {
	base    string // the load balancer
	rate    float64
	workers int
	keys    *keyring
	holders []*tokenHolder
	client  *http.Client
	mix     []share

	mu       sync.Mutex
	results  []result
	skipped  atomic.Int64 // ticks dropped because every worker was busy
	seq      atomic.Int64
	inflight atomic.Int64
}

// inFlight is how many calls are waiting for their answer now.
func (l *loader) inFlight() int64 { return l.inflight.Load() }

func newLoader(base string, rate float64, workers int, keys *keyring, holders []*tokenHolder) *loader {
	return &loader{
		base: base, rate: rate, workers: workers, keys: keys, holders: holders, mix: loadMix(),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: workers * 2, MaxIdleConnsPerHost: workers * 2, IdleConnTimeout: 20 * time.Second,
		}},
	}
}

// run drives the load until ctx ends: a pacer offers a call every 1/rate
// seconds to a fixed pool of workers, and drops it when all are busy, so
// the load never grows past the pool whatever the gateway does. Calls in
// flight when ctx ends run to their answer (the client's timeout bounds
// them): the suite stopping is not a failure of keygate's.
func (l *loader) run(ctx context.Context) {
	callCtx := context.WithoutCancel(ctx)
	work := make(chan struct{})
	var wg sync.WaitGroup
	for w := range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for range work {
				l.inflight.Add(1)
				r := l.one(callCtx, rng)
				l.inflight.Add(-1)
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
			}
		}()
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / l.rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			close(work)
			wg.Wait()
			return
		case <-tick.C:
			select {
			case work <- struct{}{}:
			default:
				l.skipped.Add(1)
			}
		}
	}
}

// snapshot returns the results so far.
func (l *loader) snapshot() []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]result(nil), l.results...)
}

func pickKind(rng *rand.Rand, mix []share) kind {
	total := 0
	for _, m := range mix {
		total += m.parts
	}
	n := rng.IntN(total)
	for _, m := range mix {
		if n < m.parts {
			return m.k
		}
		n -= m.parts
	}
	return kindChat
}

func (l *loader) one(ctx context.Context, rng *rand.Rand) result {
	n := l.seq.Add(1)
	r := l.oneCall(ctx, rng, n)
	r.seq = n
	return r
}

// oneCall makes call number n, of a kind picked from the mix.
func (l *loader) oneCall(ctx context.Context, rng *rand.Rand, n int64) result {
	k := pickKind(rng, l.mix)
	prompt := fmt.Sprintf("chaos call %d: say something short", n)
	chat := `{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":` + quote(prompt) + `}]}`
	switch k {
	case kindStream:
		return l.call(ctx, k, l.keys.pick(plainKey, rng), "POST", "/v1/chat/completions",
			`{"model":"chat","max_tokens":64,"stream":true,"messages":[{"role":"user","content":`+quote(prompt)+`}]}`, "data: [DONE]", nil)
	case kindEmbed:
		return l.call(ctx, k, l.keys.pick(plainKey, rng), "POST", "/v1/embeddings", `{"model":"embed","input":`+quote(prompt)+`}`, `"embedding"`, nil)
	case kindToAnthr:
		return l.call(ctx, k, l.keys.pick(plainKey, rng), "POST", "/v1/chat/completions",
			`{"model":"claude","max_tokens":64,"messages":[{"role":"user","content":`+quote(prompt)+`}]}`, `"chat.completion"`, nil)
	case kindToOpenAI:
		return l.call(ctx, k, l.keys.pick(plainKey, rng), "POST", "/v1/messages",
			`{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":`+quote(prompt)+`}]}`, `"type":"message"`,
			http.Header{"Anthropic-Version": {"2023-06-01"}})
	case kindPassthru:
		c := plainKey
		if rng.IntN(3) == 0 {
			c = ratedKey
		}
		return l.call(ctx, k, l.keys.pick(c, rng), "GET", "/proxy/echo/v1/ping", "", `"pong"`, nil)
	case kindToken:
		h := l.holders[rng.IntN(len(l.holders))]
		if !h.mu.TryLock() {
			// Another worker is refreshing this holder's single-use
			// refresh token: make a plain call instead.
			return l.call(ctx, kindChat, h.key, "POST", "/v1/chat/completions", chat, `"chat.completion"`, nil)
		}
		defer h.mu.Unlock()
		return l.token(ctx, h)
	case kindTokenChat:
		h := l.holders[rng.IntN(len(l.holders))]
		if !h.mu.TryLock() { // a refresh is under way
			return l.call(ctx, kindChat, h.key, "POST", "/v1/chat/completions", chat, `"chat.completion"`, nil)
		}
		access := h.access
		h.mu.Unlock()
		if access == "" {
			return l.call(ctx, kindChat, h.key, "POST", "/v1/chat/completions", chat, `"chat.completion"`, nil)
		}
		r := l.do(ctx, k, h.key, access, "POST", "/v1/chat/completions", chat, `"chat.completion"`, nil)
		if !r.ok && h.mu.TryLock() {
			if h.access == access {
				h.access, h.refresh = "", "" // exchange again next time
			}
			h.mu.Unlock()
		}
		return r
	case kindChurnChat:
		key := l.keys.pick(churnKey, rng)
		if key == nil {
			key = l.keys.pick(plainKey, rng)
		}
		return l.call(ctx, k, key, "POST", "/v1/chat/completions", chat, `"chat.completion"`, nil)
	case kindBudgetChat:
		c := []keyClass{ratedKey, quotaKey, budgetKey}[rng.IntN(3)]
		return l.call(ctx, k, l.keys.pick(c, rng), "POST", "/v1/chat/completions", chat, `"chat.completion"`, nil)
	}
	return l.call(ctx, kindChat, l.keys.pick(plainKey, rng), "POST", "/v1/chat/completions", chat, `"chat.completion"`, nil)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (l *loader) call(ctx context.Context, k kind, key *apiKey, method, path, body, want string, h http.Header) result {
	return l.do(ctx, k, key, key.secret, method, path, body, want, h)
}

// do sends one call with credential and judges the answer.
func (l *loader) do(ctx context.Context, k kind, key *apiKey, credential, method, path, body, want string, h http.Header) result {
	r := result{start: time.Now(), kind: k, class: key.class, key: key}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, rd)
	if err != nil {
		r.end, r.why = time.Now(), err.Error()
		return r
	}
	for name, v := range h {
		req.Header[name] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if path == "/v1/messages" {
		req.Header.Set("x-api-key", credential)
	} else {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		r.end = time.Now()
		r.why = "no answer: " + shortErr(err)
		return r
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end = time.Now()
	r.status = resp.StatusCode
	r.requestID = resp.Header.Get("X-Request-Id")
	if rerr != nil {
		r.why = fmt.Sprintf("%d, answer cut off: %s", resp.StatusCode, shortErr(rerr))
		return r
	}
	judge(&r, key, b, want)
	return r
}

// judge decides whether an answer is right for the key that asked.
func judge(r *result, key *apiKey, body []byte, want string) {
	retiring, retired := key.state()
	code := errorCode(body)
	switch {
	case r.admitted():
		if !bytes.Contains(body, []byte(want)) {
			r.why = fmt.Sprintf("%d without %s in the answer: %.80q", r.status, want, body)
			return
		}
		if !retired.IsZero() && r.start.After(retired.Add(time.Second)) {
			r.why = fmt.Sprintf("%d for a key retired %v before the call", r.status, r.start.Sub(retired).Round(time.Millisecond))
			return
		}
		r.ok = true
		r.micro = costOf(body)
		key.admitted.Add(1)
		key.spent.Add(r.micro)
	case r.status == http.StatusUnauthorized && !retiring.IsZero() && r.end.After(retiring):
		r.ok, r.refused = true, true
	case r.status == http.StatusTooManyRequests && rightRefusal(key.class, code):
		r.ok, r.refused = true, true
	case r.status == http.StatusServiceUnavailable && code == "limits_unavailable" && key.spentOut():
		// Spent as its clients saw it: refused either way. A node that
		// lost Redis and never saw it spent cannot tell, so it says
		// unavailable rather than spent; no call is lost.
		r.ok, r.refused = true, true
	default:
		if code == "" {
			code = plainBody(body)
		}
		r.why = fmt.Sprintf("%d %s", r.status, code)
	}
}

// rightRefusal says whether a 429 with code is what a key of class c
// should meet by design.
func rightRefusal(c keyClass, code string) bool {
	switch c {
	case ratedKey:
		return code == "rate_limit_exceeded"
	case quotaKey:
		return code == "insufficient_quota"
	case budgetKey:
		return code == "budget_exceeded"
	}
	return false
}

// errorCode reads the code of an OpenAI-, Anthropic- or OAuth-shaped error.
func errorCode(body []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(e.Error, &s) == nil {
		return s // OAuth: {"error":"invalid_grant"}
	}
	var d struct {
		Code any    `json:"code"`
		Type string `json:"type"`
	}
	_ = json.Unmarshal(e.Error, &d)
	if c, ok := d.Code.(string); ok && c != "" {
		return c
	}
	return d.Type
}

// plainBody is a short one-line form of an answer that is not an API
// error, such as the load balancer's own page.
func plainBody(body []byte) string {
	if bytes.Contains(body, []byte("No server is available")) {
		return "from HAProxy: no node in service (every /readyz failing)"
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s) > 80 {
		s = s[i+2:]
	}
	return s
}

// token exchanges the holder's key for tokens, or refreshes them; the
// caller holds h.mu. A refresh that fails falls back to an exchange in the
// same call, as keygate agent does: while the database is down a refresh
// cannot be recorded, but an exchange still issues an access token.
func (l *loader) token(ctx context.Context, h *tokenHolder) result {
	start := time.Now()
	if h.refresh != "" {
		r := l.tokenCall(ctx, h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {h.refresh}})
		if r.ok || ctx.Err() != nil {
			return r
		}
	}
	r := l.tokenCall(ctx, h, url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"},
		"subject_token":      {h.key.secret},
	})
	r.start = start
	return r
}

// tokenCall posts one grant to /oauth/token and keeps what it answers.
func (l *loader) tokenCall(ctx context.Context, h *tokenHolder, form url.Values) result {
	r := result{start: time.Now(), kind: kindToken, class: h.key.class, key: h.key}
	req, _ := http.NewRequestWithContext(ctx, "POST", l.base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := l.client.Do(req)
	if err != nil {
		r.end, r.why = time.Now(), "no answer: "+shortErr(err)
		h.access, h.refresh = "", "" // the refresh token may be spent: start over
		return r
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end, r.status, r.requestID = time.Now(), resp.StatusCode, resp.Header.Get("X-Request-Id")
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if resp.StatusCode == http.StatusOK && json.Unmarshal(b, &tok) == nil && tok.AccessToken != "" {
		h.access, h.refresh = tok.AccessToken, tok.RefreshToken
		r.ok = true
		return r
	}
	h.access, h.refresh = "", ""
	r.why = fmt.Sprintf("%d %s", resp.StatusCode, errorCode(b))
	return r
}
