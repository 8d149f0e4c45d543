// Package agent is `keygate agent`: a sidecar or VM service that signs in
// to keygate as its workload and keeps an app's credentials in files. It
// reads the workload's OIDC identity token (a Kubernetes projected
// service-account token, a command's output, the GitHub Actions runner),
// exchanges it at the gateway's /oauth/token for a short-lived keygate
// access token, reads the vault secrets the templates ask for at the
// gateway's /secrets, and writes the files, atomically and with mode 0600.
// It renews at two thirds of the token's life: with the refresh token
// while the identity token is the one it exchanged, by a new exchange once
// the platform has rotated it (so a token with a jti is never presented
// twice). When a file's contents change it signals the app or runs a
// command. What it holds lives only in memory and in those files.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Token exchange parameters (RFC 8693) the gateway takes.
const (
	grantExchange  = "urn:ietf:params:oauth:grant-type:token-exchange"
	subjectTypeJWT = "urn:ietf:params:oauth:token-type:jwt"
)

// Renewal timing.
const (
	minRenew   = 10 * time.Second // never renew more often than this
	maxBackoff = 30 * time.Second // the longest wait between failed attempts
)

// Options configures an Agent besides its Config.
type Options struct {
	Log *slog.Logger
	// Getenv reads the environment (the GitHub Actions runner's
	// variables); nil reads none.
	Getenv func(string) string
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Agent keeps an app's keygate credentials and secrets in files.
type Agent struct {
	cfg      Config
	gw       string
	hc       *http.Client // to the gateway
	idClient *http.Client // to the GitHub Actions runner
	log      *slog.Logger
	getenv   func(string) string
	now      func() time.Time

	// What the last renewal left: the identity token exchanged, the
	// access and refresh tokens, and when the access token expires.
	exchanged string
	access    string
	refresh   string
	expires   time.Time
}

// New builds an agent for a validated configuration.
func New(cfg Config, o Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("agent: ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("agent: ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Agent{
		cfg: cfg, gw: strings.TrimRight(strings.TrimSpace(cfg.Gateway), "/"),
		hc:       &http.Client{Transport: tr, Timeout: 30 * time.Second, CheckRedirect: noRedirect},
		idClient: &http.Client{Timeout: 30 * time.Second},
		log:      o.Log, getenv: o.Getenv, now: o.Now,
	}, nil
}

// Run renews and writes until ctx ends. A failed renewal is retried with
// backoff; the files keep what they held.
func (a *Agent) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		wait, err := a.Once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			a.log.Error("keygate agent: renewal failed; the files keep their contents, retrying", "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(2*backoff, maxBackoff)
		} else {
			backoff = time.Second
			a.log.Info("keygate agent: credentials renewed", "expires_at", a.expires.UTC(), "next_renewal_in", wait.Round(time.Second))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Once renews the token, renders every output and writes those that
// changed, then tells the app if any did. It returns how long to wait
// before the next renewal. Nothing is written unless every output
// rendered.
func (a *Agent) Once(ctx context.Context) (time.Duration, error) {
	if err := a.renew(ctx); err != nil {
		return 0, err
	}
	secrets := map[string]string{}
	read := func(name string) (string, error) {
		if v, ok := secrets[name]; ok {
			return v, nil
		}
		v, err := a.secret(ctx, name)
		if err != nil {
			return "", err
		}
		secrets[name] = v
		return v, nil
	}
	v := view{Token: a.access, Gateway: a.gw}
	files := make([][]byte, len(a.cfg.Outputs))
	for i, o := range a.cfg.Outputs {
		b, err := render(o, v, read)
		if err != nil {
			return 0, fmt.Errorf("outputs[%d] (%s): %w", i, o.Path, err)
		}
		files[i] = b
	}
	var changed []string
	for i, o := range a.cfg.Outputs {
		wrote, err := writeFile(o.Path, files[i])
		if err != nil {
			return 0, err
		}
		if wrote {
			changed = append(changed, o.Path)
		}
	}
	if len(changed) > 0 {
		a.notify(ctx, changed)
	}
	life := a.expires.Sub(a.now())
	return max(life*2/3, minRenew), nil
}

// renew gets a fresh access token: with the refresh token when the
// identity token is still the one exchanged, else by exchanging the
// identity token.
func (a *Agent) renew(ctx context.Context) error {
	id, err := a.identityToken(ctx)
	if err != nil {
		return err
	}
	if id == a.exchanged && a.refresh != "" {
		err := a.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.refresh}})
		if err == nil {
			return nil
		}
		a.log.Warn("keygate agent: refreshing failed; exchanging the identity token again", "err", err)
	}
	if err := a.token(ctx, url.Values{"grant_type": {grantExchange}, "subject_token": {id}, "subject_token_type": {subjectTypeJWT}}); err != nil {
		return err
	}
	a.exchanged = id
	return nil
}

// token posts form to /oauth/token and keeps the tokens it answers.
func (a *Agent) token(ctx context.Context, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.gw+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach the gateway: %w", err)
	}
	defer resp.Body.Close()
	var ans struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int    `json:"expires_in"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ans); err != nil {
		return fmt.Errorf("the gateway answered %s, not a token", resp.Status)
	}
	if resp.StatusCode != http.StatusOK || ans.AccessToken == "" {
		return fmt.Errorf("the gateway refused the %s: %s: %s", form.Get("grant_type"), ans.Error, ans.Description)
	}
	a.access, a.refresh = ans.AccessToken, ans.RefreshToken
	a.expires = a.now().Add(time.Duration(ans.ExpiresIn) * time.Second)
	return nil
}

// secret reads a vault secret's current value at /secrets.
func (a *Agent) secret(ctx context.Context, name string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.gw+"/secrets?name="+url.QueryEscape(name), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+a.access)
	resp, err := a.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("secret %q: reach the gateway: %w", name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return "", fmt.Errorf("secret %q: the gateway answered %s: %s", name, resp.Status, e.Error.Message)
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("secret %q: the gateway's answer is not a secret", name)
	}
	return v.Value, nil
}

// notify tells the app that files changed: the signal, then the command.
// Failures are logged; the files stay written.
func (a *Agent) notify(ctx context.Context, changed []string) {
	oc := a.cfg.OnChange
	if oc.Signal != "" {
		if err := a.signal(oc); err != nil {
			a.log.Error("keygate agent: could not signal the app", "signal", oc.Signal, "err", err)
		}
	}
	if len(oc.Command) > 0 {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, oc.Command[0], oc.Command[1:]...)
		cmd.Env = append(os.Environ(), "KEYGATE_CHANGED="+strings.Join(changed, ":"))
		if out, err := cmd.CombinedOutput(); err != nil {
			a.log.Error("keygate agent: the on-change command failed", "command", oc.Command[0], "err", err, "output", strings.TrimSpace(string(out)))
		}
	}
}

func (a *Agent) signal(oc OnChange) error {
	sig, err := parseSignal(oc.Signal)
	if err != nil {
		return err
	}
	pid := oc.PID
	if oc.PIDFile != "" {
		b, err := readBounded(oc.PIDFile)
		if err != nil {
			return err
		}
		if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || pid <= 0 {
			return fmt.Errorf("%s does not hold a process id", oc.PIDFile)
		}
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := p.Signal(sig); err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	return nil
}
