package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// maxIdentityToken bounds an identity token read from a file, a command
// or the GitHub Actions runner.
const maxIdentityToken = 64 << 10

// identityToken reads the workload's identity token from its source.
func (a *Agent) identityToken(ctx context.Context) (string, error) {
	id := a.cfg.Identity
	var raw []byte
	var err error
	switch {
	case id.TokenFile != "":
		raw, err = readBounded(id.TokenFile)
		if err != nil {
			return "", fmt.Errorf("read the identity token: %w", err)
		}
	case len(id.Command) > 0:
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, id.Command[0], id.Command[1:]...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &limited{w: &out, n: maxIdentityToken}, &limited{w: &errb, n: 4 << 10}
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("identity command %s: %w: %s", id.Command[0], err, strings.TrimSpace(errb.String()))
		}
		raw = out.Bytes()
	default:
		return a.githubActionsToken(ctx, id.GitHubActionsAudience)
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" {
		return "", errors.New("the identity token is empty")
	}
	return tok, nil
}

// githubActionsToken asks the GitHub Actions runner for an ID token for
// audience, as actions/core getIDToken does.
func (a *Agent) githubActionsToken(ctx context.Context, audience string) (string, error) {
	reqURL, bearer := a.getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), a.getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	if reqURL == "" || bearer == "" {
		return "", errors.New("ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set: run in a GitHub Actions job with permissions: id-token: write")
	}
	u, err := url.Parse(reqURL)
	if err != nil {
		return "", fmt.Errorf("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL: %w", err)
	}
	q := u.Query()
	q.Set("audience", audience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Accept", "application/json")
	resp, err := a.idClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("ask the GitHub Actions runner for an identity token: %w", err)
	}
	defer resp.Body.Close()
	var ans struct {
		Value string `json:"value"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, maxIdentityToken)).Decode(&ans) != nil || ans.Value == "" {
		return "", fmt.Errorf("the GitHub Actions runner answered %s without a token", resp.Status)
	}
	return ans.Value, nil
}

// readBounded reads a file of at most maxIdentityToken bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxIdentityToken+1))
	if err == nil && len(b) > maxIdentityToken {
		err = fmt.Errorf("%s is larger than %d bytes: not an identity token", path, maxIdentityToken)
	}
	return b, err
}

// limited keeps at most n bytes of what is written to it.
type limited struct {
	w io.Writer
	n int
}

// Write keeps what fits and reports all of p written, so a chatty
// command is not cut off.
func (l *limited) Write(p []byte) (int, error) {
	k := min(len(p), l.n)
	if k > 0 {
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
