package mcpoauth

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/egress"
)

// HTTPClient returns the client discovery, registration and token
// requests go through: it connects only where pol allows (checked on the
// address dialled, after DNS), except to privateHost, the host of an MCP
// server registered with allow_private, which may be private as the server
// itself may. It uses no proxy from the environment and follows no
// redirect.
func HTTPClient(pol egress.Policy, privateHost string, timeout time.Duration) *http.Client {
	guarded := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, ControlContext: pol.Control}
	open := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	privateHost = strings.Trim(strings.ToLower(privateHost), "[]")
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err == nil && privateHost != "" && strings.EqualFold(strings.Trim(host, "[]"), privateHost) {
			return open.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
	return &http.Client{
		Transport: &http.Transport{Proxy: nil, DialContext: dial, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second},
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
